/**
 * The script of Seedbed's web page (see `page.ts`): a small Transmission RPC client (with the session-id
 * handshake) and the page's behaviour. Everything from the session is shown with `textContent`.
 *
 * @module
 */

/** The page's JavaScript. */
export const PAGE_JS: string = String.raw`"use strict";
(function () {
  var RPC = "/transmission/rpc";
  var REFRESH_MS = 1500;
  var LIST_FIELDS = ["id", "name", "status", "error", "errorString", "percentDone", "recheckProgress",
    "rateDownload", "rateUpload", "peersConnected", "peersSendingToUs", "peersGettingFromUs", "eta",
    "sizeWhenDone", "leftUntilDone", "totalSize", "uploadRatio", "isFinished", "metadataPercentComplete",
    "queuePosition", "hashString", "addedDate", "downloadDir"];
  var DETAIL_FIELDS = ["id", "name", "hashString", "downloadDir", "totalSize", "sizeWhenDone", "leftUntilDone",
    "haveValid", "uploadedEver", "downloadedEver", "uploadRatio", "addedDate", "doneDate", "dateCreated",
    "comment", "creator", "pieceCount", "pieceSize", "isPrivate", "magnetLink", "error", "errorString",
    "status", "eta", "files", "fileStats", "peers", "trackerStats", "corruptEver", "isFinished",
    "recheckProgress", "percentDone", "metadataPercentComplete"];

  var sessionId = "";
  var torrents = [];
  var byId = new Map();
  var session = {};
  var selected = null;
  var detailTab = "overview";
  var filter = "all";
  var search = "";
  var removing = null;
  var failures = 0;
  var timer = 0;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // ------------------------------------------------------------ RPC
  function rpc(method, args) {
    var attempt = function (n) {
      return fetch(RPC, {
        method: "POST",
        headers: { "X-Transmission-Session-Id": sessionId, "Content-Type": "application/json" },
        body: JSON.stringify({ method: method, arguments: args || {} }),
        credentials: "same-origin",
      }).then(function (res) {
        if (res.status === 409 && n < 2) {
          sessionId = res.headers.get("X-Transmission-Session-Id") || "";
          return attempt(n + 1);
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json().then(function (body) {
          if (body.result !== "success") throw new Error(body.result);
          return body.arguments || {};
        });
      });
    };
    return attempt(0);
  }

  // ------------------------------------------------------------ formatting
  var UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];
  function size(n) {
    if (!(n > 0)) return "0 B";
    var i = 0;
    while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + UNITS[i];
  }
  function mem(n) {
    var units = ["B", "KiB", "MiB", "GiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (Math.round(n * 10) / 10) + " " + units[i];
  }
  function speed(n) { return n >= 1 ? size(n) + "/s" : "–"; }
  function duration(s) {
    if (s < 0) return "–";
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    var h = Math.floor(m / 60);
    if (h < 48) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function percent(x) {
    var p = Math.floor(x * 1000) / 10;
    return (p === 100 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + "%";
  }
  function ratio(r) { return r === -1 ? "–" : r === -2 ? "∞" : r.toFixed(2); }
  function date(s) { return s > 0 ? new Date(s * 1000).toLocaleString() : "–"; }

  function kind(t) {
    if (t.error === 3) return "error";
    switch (t.status) {
      case 1: case 2: return "checking";
      case 3: case 5: return "queued";
      case 4: return "downloading";
      case 6: return "seeding";
      default: return "stopped";
    }
  }
  function stateText(t) {
    switch (t.status) {
      case 0: return t.isFinished ? "Finished" : t.percentDone >= 1 ? "Stopped, complete" : "Stopped";
      case 1: return "Waiting to verify";
      case 2: return "Verifying " + percent(t.recheckProgress || 0);
      case 3: return "Queued";
      case 4: return t.metadataPercentComplete < 1 ? "Fetching metadata" : "Downloading";
      case 5: return "Queued to seed";
      case 6: return "Seeding";
      default: return "Unknown";
    }
  }
  function detailText(t) {
    var parts = [];
    if (t.status === 4 && t.metadataPercentComplete >= 1) {
      parts.push("from " + t.peersSendingToUs + " of " + t.peersConnected + " peers");
    } else if (t.status === 6) {
      parts.push("to " + t.peersGettingFromUs + " of " + t.peersConnected + " peers");
    }
    if (t.sizeWhenDone > 0) {
      parts.push(t.leftUntilDone > 0
        ? size(t.sizeWhenDone - t.leftUntilDone) + " of " + size(t.sizeWhenDone)
        : size(t.sizeWhenDone));
    }
    if (t.uploadRatio >= 0 || t.uploadRatio === -2) parts.push("ratio " + ratio(t.uploadRatio));
    return parts.join(" · ");
  }

  // ------------------------------------------------------------ icons (constant markup)
  var ICONS = {
    start: '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M8 5.5v13a1 1 0 0 0 1.5.86l10.5-6.5a1 1 0 0 0 0-1.72L9.5 4.64A1 1 0 0 0 8 5.5z"/></svg>',
    stop: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect fill="currentColor" x="6" y="5" width="4" height="14" rx="1.2"/><rect fill="currentColor" x="14" y="5" width="4" height="14" rx="1.2"/></svg>',
    verify: '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" d="M4 12a8 8 0 0 1 13.7-5.6L20 8.5M20 4v4.5h-4.5M20 12a8 8 0 0 1-13.7 5.6L4 15.5M4 20v-4.5h4.5"/></svg>',
    remove: '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M5 7h14M10 11v6M14 11v6M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12M9 7V4h6v3"/></svg>',
  };
  function iconButton(kindName, label, onClick) {
    var b = el("button", kindName);
    b.type = "button";
    b.innerHTML = ICONS[kindName];
    b.setAttribute("aria-label", label);
    b.title = label.split(" “")[0];
    b.addEventListener("click", function (ev) { ev.stopPropagation(); onClick(); });
    return b;
  }

  // ------------------------------------------------------------ the list
  function matches(t) {
    if (search && t.name.toLowerCase().indexOf(search) < 0) return false;
    var k = kind(t);
    if (filter === "downloading") return t.status === 4 || t.status === 3;
    if (filter === "seeding") return t.status === 6 || t.status === 5;
    if (filter === "stopped") return t.status === 0;
    if (filter === "error") return k === "error" || t.error > 0;
    return true;
  }

  var rows = new Map();
  function rowFor(t) {
    var r = rows.get(t.id);
    if (r) return r;
    var tr = el("tr");
    tr.dataset.id = String(t.id);
    var name = el("td");
    var nameButton = el("button", "name-button");
    nameButton.type = "button";
    nameButton.addEventListener("click", function () { openDetails(t.id); });
    var status = el("div", "status");
    var state = el("span", "state");
    var detail = el("span", "detail");
    status.append(state, document.createTextNode(" "), detail);
    name.append(nameButton, status);
    var progressCell = el("td");
    var bar = el("progress");
    bar.max = 1;
    var pct = el("div", "percent");
    var pctText = el("span");
    var errText = el("span", "error");
    pct.append(pctText, errText);
    progressCell.append(bar, pct);
    var down = el("td", "num"), up = el("td", "num"), peers = el("td", "num"), eta = el("td", "num");
    var actions = el("td");
    var box = el("div", "actions");
    actions.append(box);
    tr.append(name, progressCell, down, up, peers, eta, actions);
    r = { tr: tr, nameButton: nameButton, state: state, detail: detail, bar: bar, pctText: pctText,
      errText: errText, down: down, up: up, peers: peers, eta: eta, box: box, running: null };
    rows.set(t.id, r);
    return r;
  }

  function renderRow(t) {
    var r = rowFor(t);
    var k = kind(t);
    var done = t.percentDone >= 1;
    r.tr.className = k + (done ? " done" : "") + (selected === t.id ? " selected" : "");
    r.nameButton.textContent = t.name;
    r.nameButton.setAttribute("aria-label", "Details of " + t.name);
    r.state.textContent = stateText(t);
    r.detail.textContent = detailText(t);
    var p = t.status === 2 ? (t.recheckProgress || 0) : t.percentDone;
    r.bar.value = p;
    r.bar.setAttribute("aria-label", t.name + ": " + percent(p));
    r.pctText.textContent = percent(t.percentDone);
    r.errText.textContent = t.error ? t.errorString : "";
    r.down.textContent = speed(t.rateDownload);
    r.up.textContent = speed(t.rateUpload);
    r.peers.textContent = t.peersConnected > 0 ? String(t.peersConnected) : "–";
    r.eta.textContent = t.eta >= 0 ? duration(t.eta) : t.status === 4 && t.leftUntilDone > 0 ? "∞" : "–";
    var running = t.status !== 0;
    if (r.running !== running) {
      r.running = running;
      r.box.replaceChildren(
        running
          ? iconButton("stop", "Stop “" + t.name + "”", function () { act("torrent-stop", t.id, "Stopped"); })
          : iconButton("start", "Start “" + t.name + "”", function () { act("torrent-start", t.id, "Started"); }),
        iconButton("verify", "Verify “" + t.name + "”", function () { act("torrent-verify", t.id, "Verifying"); }),
        iconButton("remove", "Remove “" + t.name + "”", function () { askRemove(t.id); }));
    } else {
      r.box.querySelectorAll("button").forEach(function (b) {
        var label = b.getAttribute("aria-label") || "";
        b.setAttribute("aria-label", label.replace(/“.*”$/, "“" + t.name + "”"));
      });
    }
  }

  function render() {
    var tbody = $("torrent-rows");
    var shown = torrents.filter(matches);
    var counts = { all: torrents.length, downloading: 0, seeding: 0, stopped: 0, error: 0 };
    torrents.forEach(function (t) {
      if (t.status === 4 || t.status === 3) counts.downloading++;
      if (t.status === 6 || t.status === 5) counts.seeding++;
      if (t.status === 0) counts.stopped++;
      if (t.error > 0) counts.error++;
    });
    Object.keys(counts).forEach(function (k) { $("count-" + k).textContent = String(counts[k]); });
    shown.forEach(renderRow);
    var wanted = shown.map(function (t) { return rows.get(t.id).tr; });
    var current = Array.prototype.slice.call(tbody.children);
    var same = current.length === wanted.length && current.every(function (x, i) { return x === wanted[i]; });
    if (!same) tbody.replaceChildren.apply(tbody, wanted);
    rows.forEach(function (_, id) { if (!byId.has(id)) rows.delete(id); });
    $("empty").hidden = torrents.length > 0;
    $("torrents").parentNode.hidden = torrents.length === 0;
    var down = 0, up = 0;
    torrents.forEach(function (t) { down += t.rateDownload; up += t.rateUpload; });
    $("total-down").textContent = down >= 1 ? size(down) + "/s" : "0 B/s";
    $("total-up").textContent = up >= 1 ? size(up) + "/s" : "0 B/s";
    document.title = down >= 1 || up >= 1
      ? "↓ " + speed(down) + " ↑ " + speed(up) + " · Seedbed"
      : "Seedbed";
  }

  function refresh() {
    clearTimeout(timer);
    var jobs = [rpc("torrent-get", { fields: LIST_FIELDS }).then(function (a) {
      torrents = a.torrents.sort(function (x, y) { return x.queuePosition - y.queuePosition || x.id - y.id; });
      byId = new Map(torrents.map(function (t) { return [t.id, t]; }));
      render();
    })];
    if (selected !== null) jobs.push(refreshDetails());
    return Promise.all(jobs).then(function () {
      failures = 0;
      $("connection").hidden = true;
    }, function (err) {
      failures++;
      if (failures >= 2) {
        $("connection").textContent = "Cannot reach the daemon: " + err.message + ". Retrying…";
        $("connection").hidden = false;
      }
    }).then(function () {
      timer = setTimeout(refresh, document.hidden ? REFRESH_MS * 4 : REFRESH_MS);
    });
  }

  function loadSession() {
    return rpc("session-get").then(function (s) {
      session = s;
      $("alt-speed").checked = !!s["alt-speed-enabled"];
      $("alt-speed-values").textContent = "(" + s["alt-speed-down"] + " ↓ / " + s["alt-speed-up"] + " ↑ kB/s)";
    });
  }

  // ------------------------------------------------------------ actions
  var toastTimer = 0;
  function toast(text, bad) {
    var t = $("toast");
    t.textContent = text;
    t.className = "toast show" + (bad ? " bad" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.className = "toast"; }, bad ? 6000 : 2500);
  }
  function act(method, id, done) {
    var t = byId.get(id);
    return rpc(method, { ids: [id] }).then(function () {
      toast(done + ": " + (t ? t.name : "#" + id));
      return refresh();
    }, function (err) { toast(err.message, true); });
  }

  function askRemove(id) {
    var t = byId.get(id);
    if (!t) return;
    removing = id;
    $("remove-text").textContent = "Remove “" + t.name + "” from the list?";
    $("remove-data").checked = false;
    $("remove-dialog").showModal();
  }
  $("remove-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var id = removing;
    var t = byId.get(id);
    var del = $("remove-data").checked;
    $("remove-dialog").close();
    rpc("torrent-remove", { ids: [id], "delete-local-data": del }).then(function () {
      toast((del ? "Removed with its files: " : "Removed: ") + (t ? t.name : "#" + id));
      if (selected === id) closeDetails();
      return refresh();
    }, function (err) { toast(err.message, true); });
  });

  // ------------------------------------------------------------ adding
  function readBase64(file) {
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () {
        var s = String(r.result);
        resolve(s.slice(s.indexOf(",") + 1));
      };
      r.onerror = function () { reject(r.error); };
      r.readAsDataURL(file);
    });
  }
  function addFiles(files, dir, start) {
    return Promise.all(Array.prototype.map.call(files, function (f) {
      return readBase64(f).then(function (b64) {
        var args = { metainfo: b64, paused: !start };
        if (dir) args["download-dir"] = dir;
        return rpc("torrent-add", args);
      }).then(report, function (err) { throw new Error(f.name + ": " + err.message); });
    }));
  }
  function report(a) {
    if (a["torrent-added"]) toast("Added: " + a["torrent-added"].name);
    else if (a["torrent-duplicate"]) toast("Already there: " + a["torrent-duplicate"].name);
  }
  $("open-add").addEventListener("click", function () {
    $("add-files").value = "";
    $("add-url").value = "";
    $("add-dir").value = session["download-dir"] || "";
    $("add-start").checked = session["start-added-torrents"] !== false;
    $("add-error").hidden = true;
    $("add-dialog").showModal();
  });
  $("add-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var files = $("add-files").files;
    var url = $("add-url").value.trim();
    if (/^[0-9a-f]{40}$/i.test(url)) url = "magnet:?xt=urn:btih:" + url;
    var dir = $("add-dir").value.trim();
    var start = $("add-start").checked;
    if (!files.length && !url) {
      $("add-error").textContent = "Choose a .torrent file or give a magnet link or URL.";
      $("add-error").hidden = false;
      return;
    }
    $("add-submit").disabled = true;
    var jobs = [addFiles(files, dir, start)];
    if (url) {
      var args = { filename: url, paused: !start };
      if (dir) args["download-dir"] = dir;
      jobs.push(rpc("torrent-add", args).then(report));
    }
    Promise.all(jobs).then(function () {
      $("add-dialog").close();
      return refresh();
    }, function (err) {
      $("add-error").textContent = err.message;
      $("add-error").hidden = false;
    }).then(function () { $("add-submit").disabled = false; });
  });

  // drag and drop of .torrent files anywhere
  var dragDepth = 0;
  function hasFiles(ev) { return ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") >= 0; }
  document.addEventListener("dragenter", function (ev) { if (hasFiles(ev)) { dragDepth++; $("drop").hidden = false; } });
  document.addEventListener("dragleave", function () { if (--dragDepth <= 0) { dragDepth = 0; $("drop").hidden = true; } });
  document.addEventListener("dragover", function (ev) { if (hasFiles(ev)) ev.preventDefault(); });
  document.addEventListener("drop", function (ev) {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    dragDepth = 0;
    $("drop").hidden = true;
    var files = Array.prototype.filter.call(ev.dataTransfer.files, function (f) { return /\.torrent$/i.test(f.name); });
    if (!files.length) { toast("Only .torrent files can be dropped here", true); return; }
    addFiles(files, "", session["start-added-torrents"] !== false).then(refresh, function (err) { toast(err.message, true); });
  });

  // ------------------------------------------------------------ details
  function openDetails(id) {
    selected = id;
    $("details").hidden = false;
    var t = byId.get(id);
    $("details-title").textContent = t ? t.name : "Details";
    render();
    refreshDetails().then(function () { $("close-details").focus(); });
  }
  function closeDetails() {
    var id = selected;
    selected = null;
    $("details").hidden = true;
    render();
    var r = rows.get(id);
    if (r) r.nameButton.focus();
  }
  $("close-details").addEventListener("click", closeDetails);
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && selected !== null && !document.querySelector("dialog[open]")) closeDetails();
    if (ev.key === "/" && document.activeElement === document.body) { ev.preventDefault(); $("search").focus(); }
  });

  var TABS = ["overview", "files", "peers", "trackers"];
  function selectTab(name, focus) {
    detailTab = name;
    TABS.forEach(function (n) {
      var tab = $("tab-" + n);
      var on = n === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      $("panel-" + n).hidden = !on;
      if (on && focus) tab.focus();
    });
  }
  TABS.forEach(function (n, i) {
    var tab = $("tab-" + n);
    tab.addEventListener("click", function () { selectTab(n); });
    tab.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowRight") selectTab(TABS[(i + 1) % TABS.length], true);
      if (ev.key === "ArrowLeft") selectTab(TABS[(i + TABS.length - 1) % TABS.length], true);
    });
  });

  function fact(dl, name, value) {
    dl.append(el("dt", "", name), el("dd", "", value));
  }
  function refreshDetails() {
    var id = selected;
    return rpc("torrent-get", { ids: [id], fields: DETAIL_FIELDS }).then(function (a) {
      if (selected !== id) return;
      var t = a.torrents[0];
      if (!t) { closeDetails(); return; }
      $("details-title").textContent = t.name;
      var dl = $("overview");
      dl.replaceChildren();
      fact(dl, "State", stateText(t) + (t.error ? " — " + t.errorString : ""));
      fact(dl, "Have", size(t.sizeWhenDone - t.leftUntilDone) + " of " + size(t.sizeWhenDone) + " (" + percent(t.percentDone) + ")");
      if (t.eta >= 0) fact(dl, "Time left", duration(t.eta));
      fact(dl, "Downloaded", size(t.downloadedEver));
      fact(dl, "Uploaded", size(t.uploadedEver) + " (ratio " + ratio(t.uploadRatio) + ")");
      if (t.corruptEver > 0) fact(dl, "Failed hash checks", size(t.corruptEver));
      fact(dl, "Location", t.downloadDir);
      fact(dl, "Size", size(t.totalSize) + (t.pieceCount ? " in " + t.pieceCount + " pieces of " + mem(t.pieceSize) : ""));
      fact(dl, "Info hash", t.hashString);
      fact(dl, "Added", date(t.addedDate));
      if (t.doneDate > 0) fact(dl, "Completed", date(t.doneDate));
      if (t.dateCreated > 0) fact(dl, "Created", date(t.dateCreated) + (t.creator ? " by " + t.creator : ""));
      if (t.comment) fact(dl, "Comment", t.comment);
      fact(dl, "Private", t.isPrivate ? "Yes" : "No");
      renderFiles(t);
      renderPeers(t);
      renderTrackers(t);
    });
  }

  var PRIORITIES = [["1", "High"], ["0", "Normal"], ["-1", "Low"]];
  function renderFiles(t) {
    var body = $("files");
    var focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.id : "";
    body.replaceChildren();
    (t.files || []).forEach(function (f, i) {
      var st = t.fileStats[i] || { wanted: true, priority: 0, bytesCompleted: 0 };
      var tr = el("tr");
      var get = el("td");
      var box = el("input");
      box.type = "checkbox";
      box.id = "file-want-" + i;
      box.checked = !!st.wanted;
      box.setAttribute("aria-label", "Download " + f.name);
      box.addEventListener("change", function () {
        var args = { ids: [t.id] };
        args[box.checked ? "files-wanted" : "files-unwanted"] = [i];
        rpc("torrent-set", args).then(refreshDetails, function (err) { toast(err.message, true); });
      });
      get.append(box);
      var pr = el("td");
      var sel = el("select");
      sel.id = "file-priority-" + i;
      sel.setAttribute("aria-label", "Priority of " + f.name);
      PRIORITIES.forEach(function (p) {
        var o = el("option", "", p[1]);
        o.value = p[0];
        sel.append(o);
      });
      sel.value = String(st.priority);
      sel.disabled = !st.wanted;
      sel.addEventListener("change", function () {
        var args = { ids: [t.id] };
        args[sel.value === "1" ? "priority-high" : sel.value === "-1" ? "priority-low" : "priority-normal"] = [i];
        rpc("torrent-set", args).then(refreshDetails, function (err) { toast(err.message, true); });
      });
      pr.append(sel);
      tr.append(get, el("td", "", f.name), el("td", "num", size(f.length)),
        el("td", "num", percent(f.length > 0 ? f.bytesCompleted / f.length : 1)), pr);
      body.append(tr);
    });
    if (focused && $(focused)) $(focused).focus();
  }
  function renderPeers(t) {
    var body = $("peers");
    body.replaceChildren();
    (t.peers || []).forEach(function (p) {
      var tr = el("tr");
      tr.append(el("td", "", p.address + ":" + p.port), el("td", "", p.clientName), el("td", "", p.flagStr),
        el("td", "num", percent(p.progress)), el("td", "num", speed(p.rateToClient)), el("td", "num", speed(p.rateToPeer)));
      body.append(tr);
    });
    $("no-peers").hidden = (t.peers || []).length > 0;
  }
  function renderTrackers(t) {
    var list = $("trackers");
    list.replaceChildren();
    (t.trackerStats || []).forEach(function (s) {
      var li = el("li");
      li.append(el("div", "url", s.announce));
      var bits = ["Tier " + (s.tier + 1) + (s.isBackup ? ", backup" : "")];
      if (s.hasAnnounced) {
        bits.push((s.lastAnnounceSucceeded ? "got " + s.lastAnnouncePeerCount + " peers" : "error: " + s.lastAnnounceResult) +
          " at " + new Date(s.lastAnnounceTime * 1000).toLocaleTimeString());
      } else bits.push("not asked yet");
      if (s.seederCount >= 0) bits.push(s.seederCount + " seeders, " + s.leecherCount + " leechers");
      li.append(el("div", "muted", bits.join(" · ")));
      list.append(li);
    });
    if (!(t.trackerStats || []).length) list.append(el("li", "muted", "No trackers (the DHT and peer exchange find peers)."));
  }

  // ------------------------------------------------------------ speed limits
  $("alt-speed").addEventListener("change", function () {
    var on = $("alt-speed").checked;
    rpc("session-set", { "alt-speed-enabled": on }).then(function () {
      toast(on ? "Alternative speed limits on" : "Alternative speed limits off");
      return loadSession();
    }, function (err) { toast(err.message, true); });
  });
  $("open-settings").addEventListener("click", function () {
    loadSession().then(function () {
      var s = session;
      $("limit-down-on").checked = !!s["speed-limit-down-enabled"];
      $("limit-down").value = s["speed-limit-down"];
      $("limit-up-on").checked = !!s["speed-limit-up-enabled"];
      $("limit-up").value = s["speed-limit-up"];
      $("alt-down").value = s["alt-speed-down"];
      $("alt-up").value = s["alt-speed-up"];
      $("queue-size").value = s["download-queue-size"];
      $("ratio-on").checked = !!s.seedRatioLimited;
      $("ratio").value = s.seedRatioLimit;
      $("download-dir").value = s["download-dir"];
      $("settings-error").hidden = true;
      $("settings-dialog").showModal();
    }, function (err) { toast(err.message, true); });
  });
  $("settings-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var n = function (id) { return Number($(id).value); };
    rpc("session-set", {
      "speed-limit-down-enabled": $("limit-down-on").checked,
      "speed-limit-down": Math.max(1, Math.round(n("limit-down"))),
      "speed-limit-up-enabled": $("limit-up-on").checked,
      "speed-limit-up": Math.max(1, Math.round(n("limit-up"))),
      "alt-speed-down": Math.max(0, Math.round(n("alt-down"))),
      "alt-speed-up": Math.max(0, Math.round(n("alt-up"))),
      "download-queue-enabled": true,
      "download-queue-size": Math.max(1, Math.round(n("queue-size"))),
      seedRatioLimited: $("ratio-on").checked,
      seedRatioLimit: Math.max(0.1, n("ratio")),
      "download-dir": $("download-dir").value.trim(),
    }).then(function () {
      $("settings-dialog").close();
      toast("Saved");
      return loadSession();
    }, function (err) {
      $("settings-error").textContent = err.message;
      $("settings-error").hidden = false;
    });
  });

  // ------------------------------------------------------------ the rest
  document.querySelectorAll("[data-close]").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("dialog").close(); });
  });
  document.querySelectorAll("input[name=filter]").forEach(function (r) {
    r.addEventListener("change", function () { filter = r.value; render(); });
  });
  $("search").addEventListener("input", function () { search = $("search").value.trim().toLowerCase(); render(); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  selectTab("overview");
  loadSession().catch(function () {});
  refresh();
})();
`;
