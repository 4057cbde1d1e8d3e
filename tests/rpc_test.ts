// Transmission's RPC over a Session, in process: the security checks (session id → 409, a foreign Host → 421, a
// wrong password → 401, oversized bodies → 413, malformed requests and bad arguments → the protocol's error result,
// never a 500), the methods and fields, both protocols (old and JSON-RPC 2.0) and both name spellings, and the
// methods that move files (rename-path stays inside the torrent; set-location moves the data and keeps the id).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Session } from "../src/session/session.ts";
import { TransmissionRpc } from "../src/rpc/server.ts";
import { makeTorrent, within } from "./_swarm.ts";

const FILES = [
  { path: "a.bin", length: 100_000 },
  { path: "sub/b.bin", length: 40_000 },
];

/** A session with one complete torrent in `root/dl`, its RPC served on 127.0.0.1. */
async function setup(options: ConstructorParameters<typeof TransmissionRpc>[1] = {}) {
  const root = await Deno.makeTempDir({ prefix: "seedbed-rpc-" });
  const { meta, bytes } = await makeTorrent(join(root, "dl"), "pack", FILES, {
    pieceLength: 16 * 1024,
  });
  const session = await Session.open({
    host: "127.0.0.1",
    basedir: join(root, "dl"),
    stateDir: join(root, "state"),
  });
  const rpc = new TransmissionRpc(session, { stateDir: join(root, "state"), ...options });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, rpc.handler);
  const url = `http://127.0.0.1:${server.addr.port}`;
  let sid = "";
  const post = async (body: unknown, headers: Record<string, string> = {}) => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${url}/transmission/rpc`, {
        method: "POST",
        headers: { "X-Transmission-Session-Id": sid, ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      if (res.status !== 409) return res;
      sid = res.headers.get("X-Transmission-Session-Id") ?? "";
      await res.body?.cancel();
    }
    throw new Error("409 twice");
  };
  // deno-lint-ignore no-explicit-any
  const call = async (method: string, args: Record<string, unknown> = {}): Promise<any> => {
    const res = await post({ method, arguments: args });
    assert.equal(res.status, 200);
    return await res.json();
  };
  return {
    root,
    meta,
    bytes,
    session,
    rpc,
    url,
    post,
    call,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      rpc[Symbol.dispose]();
      await session.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** The status line of a GET with this Host header, sent as raw HTTP/1.1. */
async function rawStatus(url: string, path: string, host: string, sid: string): Promise<string> {
  const port = Number(new URL(url).port);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const req = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nX-Transmission-Session-Id: ${sid}\r\n` +
    "Connection: close\r\n\r\n";
  await conn.write(new TextEncoder().encode(req));
  let text = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (text.includes("\r\n")) break;
  }
  return text.split("\r\n")[0];
}

async function addSeed(s: Awaited<ReturnType<typeof setup>>) {
  const r = await s.call("torrent-add", { metainfo: s.bytes.toBase64() });
  assert.equal(r.result, "success", r.result);
  const t = s.session.get(r.arguments["torrent-added"].id)!;
  await within(10_000, "the torrent loaded", t.ready);
  assert.equal(t.complete, true);
  return t;
}

Deno.test("RPC security: 409 without the session id, 421 for a foreign Host, bounded bodies", async () => {
  await using s = await setup({ maxBodyBytes: 4096 });
  // no session id: 409 with the id to use (for any method: a CSRF form post gets nothing done)
  const res = await fetch(`${s.url}/transmission/rpc`, {
    method: "POST",
    body: JSON.stringify({ method: "torrent-remove", arguments: {} }),
  });
  assert.equal(res.status, 409);
  const sid = res.headers.get("X-Transmission-Session-Id");
  assert.match(sid ?? "", /^[A-Za-z0-9_-]{40,}$/);
  assert.match(await res.text(), /X-Transmission-Session-Id/);
  const wrong = await fetch(`${s.url}/transmission/rpc`, {
    method: "POST",
    headers: { "X-Transmission-Session-Id": "guessed" },
    body: "{}",
  });
  assert.equal(wrong.status, 409);
  await wrong.body?.cancel();
  // a DNS-rebound name is refused before anything else, pages included (fetch cannot set Host: raw HTTP)
  for (const path of ["/transmission/rpc", "/", "/seedbed.js", "/transmission/web/"]) {
    const head = await rawStatus(s.url, path, "evil.example:9091", sid!);
    assert.equal(head, "HTTP/1.1 421 Misdirected Request", path);
  }
  // localhost and IP literals pass
  assert.equal(await rawStatus(s.url, "/", "localhost:9091", sid!), "HTTP/1.1 200 OK");
  assert.equal(await rawStatus(s.url, "/", "127.0.0.1", sid!), "HTTP/1.1 200 OK");
  // a body over the bound is refused unread
  const big = await s.post(JSON.stringify({ method: "session-get", pad: "x".repeat(10_000) }));
  assert.equal(big.status, 413);
  await big.body?.cancel();
  // GET with the id: 405
  const get = await fetch(`${s.url}/transmission/rpc`, {
    headers: { "X-Transmission-Session-Id": sid! },
  });
  assert.equal(get.status, 405);
  await get.body?.cancel();
});

Deno.test("RPC security: HTTP Basic authentication, wrong password → 401", async () => {
  await using s = await setup({ username: "me", password: "secret" });
  const as = (auth: string | undefined, path = "/transmission/rpc") =>
    fetch(`${s.url}${path}`, {
      method: "POST",
      headers: auth ? { authorization: `Basic ${btoa(auth)}` } : {},
      body: "{}",
    });
  for (const auth of [undefined, "me:wrong", "you:secret", "me:secre", "me:secret2", "mesecret"]) {
    const r = await as(auth);
    assert.equal(r.status, 401, String(auth));
    assert.match(r.headers.get("www-authenticate") ?? "", /^Basic realm=/);
    await r.body?.cancel();
  }
  const page = await fetch(`${s.url}/`);
  assert.equal(page.status, 401, "the pages need the password too");
  await page.body?.cancel();
  const ok = await as("me:secret");
  assert.equal(ok.status, 409, "past authentication: the session-id handshake");
  await ok.body?.cancel();
  assert.throws(() => new TransmissionRpc(s.session, { username: "me" }), TypeError);
});

Deno.test("RPC: malformed requests, unknown methods and bad arguments get an error result, never a 500", async () => {
  await using s = await setup();
  const cases: [unknown, RegExp][] = [
    ["not json", /^invalid JSON/],
    [[], /Invalid Request/],
    [{ arguments: {} }, /^no method name$/],
    [{ method: "torrent-explode" }, /^method name not recognized$/],
    [{ method: "torrent-get", arguments: {} }, /^no fields specified$/],
    [{ method: "torrent-get", arguments: { fields: ["id"], ids: { x: 1 } } }, /invalid torrent id/],
    [{ method: "torrent-get", arguments: { fields: ["id"], format: "xml" } }, /format/],
    [{ method: "torrent-add", arguments: {} }, /no filename or metainfo/],
    [{ method: "torrent-add", arguments: { metainfo: "!!!" } }, /invalid or corrupt torrent file/],
    [{ method: "torrent-add", arguments: { metainfo: "AAAA" } }, /invalid or corrupt torrent file/],
    [{ method: "torrent-add", arguments: { filename: "magnet:?xt=nope" } }, /invalid magnet link/],
    [
      { method: "torrent-add", arguments: { filename: "/nonexistent/x.torrent" } },
      /invalid or corrupt/,
    ],
    [
      { method: "torrent-add", arguments: { metainfo: "AAAA", "download-dir": "rel" } },
      /not absolute/,
    ],
    [{ method: "session-set", arguments: { "speed-limit-down": "fast" } }, /must be an integer/],
    [{ method: "session-set", arguments: { "speed-limit-down": -5 } }, /between/],
    [{ method: "session-set", arguments: { "utp-enabled": false } }, /cannot be changed here/],
    [{ method: "session-set", arguments: { "peer-port": 7000 } }, /cannot be changed here/],
    [{ method: "session-set", arguments: { "download-dir": "relative/dir" } }, /not absolute/],
    [{ method: "free-space", arguments: { path: "relative" } }, /not absolute/],
    [{ method: "port-test" }, /does not ask a third party/],
    [{ method: "session-close" }, /not available/],
    [{ method: "torrent-set-location", arguments: { location: "rel" } }, /not absolute/],
  ];
  for (const [body, expected] of cases) {
    const res = await s.post(typeof body === "string" ? body : JSON.stringify(body));
    assert.equal(res.status, 200, JSON.stringify(body));
    const answer = await res.json();
    const result = Array.isArray(answer) ? undefined : answer.result ?? answer.error?.message;
    assert.match(String(result), expected, JSON.stringify(body));
  }
  // the tag comes back, with errors too
  const tagged = await s.call("session-stats", {});
  assert.equal(tagged.result, "success");
  const res = await s.post({ method: "nope", tag: 42 });
  assert.deepEqual(await res.json(), {
    arguments: {},
    result: "method name not recognized",
    tag: 42,
  });
});

Deno.test("RPC: torrent-get in both formats, any name spelling, recently-active and removed", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  const fields = [
    "id",
    "hashString",
    "hash-string",
    "hash_string",
    "percentDone",
    "status",
    "files",
  ];
  const objects = (await s.call("torrent-get", { fields })).arguments.torrents;
  assert.equal(objects.length, 1);
  assert.equal(objects[0].id, t.id);
  assert.equal(objects[0].hashString, s.meta.infoHashHex);
  assert.equal(objects[0]["hash-string"], s.meta.infoHashHex);
  assert.equal(objects[0].hash_string, s.meta.infoHashHex);
  assert.equal(objects[0].percentDone, 1);
  assert.equal(objects[0].status, 6);
  assert.deepEqual(objects[0].files.map((f: { name: string }) => f.name), [
    "pack/a.bin",
    "pack/sub/b.bin",
  ]);
  assert.deepEqual(
    objects[0].files.map((f: { bytesCompleted: number }) => f.bytesCompleted),
    [100_000, 40_000],
  );
  const table = (await s.call("torrent-get", { fields: ["id", "name", "nosuch"], format: "table" }))
    .arguments.torrents;
  assert.deepEqual(table, [["id", "name", "nosuch"], [t.id, "pack", null]]);
  // by hash, in a list or alone
  for (const ids of [[s.meta.infoHashHex], s.meta.infoHashHex, [String(t.id)], t.id]) {
    const got = (await s.call("torrent-get", { ids, fields: ["id"] })).arguments.torrents;
    assert.deepEqual(got, [{ id: t.id }], JSON.stringify(ids));
  }
  assert.deepEqual(
    (await s.call("torrent-get", { ids: [999], fields: ["id"] })).arguments.torrents,
    [],
  );
  const recent = (await s.call("torrent-get", { ids: "recently-active", fields: ["id"] }))
    .arguments;
  assert.deepEqual(recent, { torrents: [{ id: t.id }], removed: [] });
  assert.equal((await s.call("torrent-remove", { ids: [t.id] })).result, "success");
  const after = (await s.call("torrent-get", { ids: "recently-active", fields: ["id"] }))
    .arguments;
  assert.deepEqual(after, { torrents: [], removed: [t.id] });
  // the data stays without delete-local-data
  assert.ok((await Deno.stat(join(s.root, "dl", "pack", "a.bin"))).isFile);
});

Deno.test("RPC: JSON-RPC 2.0 with snake_case names, batches and notifications", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  const res = await s.post({
    jsonrpc: "2.0",
    method: "torrent_get",
    params: { fields: ["id", "hash_string", "file_stats", "wanted", "peers_from"] },
    id: 7,
  });
  const answer = await res.json();
  assert.equal(answer.jsonrpc, "2.0");
  assert.equal(answer.id, 7);
  const got = answer.result.torrents[0];
  assert.equal(got.hash_string, s.meta.infoHashHex);
  assert.deepEqual(got.wanted, [true, true], "booleans in JSON-RPC (0/1 in the old protocol)");
  assert.deepEqual(got.file_stats[0], { bytes_completed: 100_000, wanted: true, priority: 0 });
  assert.equal(got.peers_from.from_tracker, 0);
  const err = await (await s.post({ jsonrpc: "2.0", method: "nope", id: "x" })).json();
  assert.deepEqual(err.error.code, -32601);
  assert.equal(err.id, "x");
  const batch = await (await s.post([
    {
      jsonrpc: "2.0",
      method: "session_get",
      params: { fields: ["speed_limit_down_enabled"] },
      id: 1,
    },
    { jsonrpc: "2.0", method: "torrent_stop", params: { ids: [t.id] } },
  ])).json();
  assert.deepEqual(batch, [{ jsonrpc: "2.0", result: { speed_limit_down_enabled: false }, id: 1 }]);
  assert.equal(t.desired, "stopped", "the notification ran");
  const none = await s.post({ jsonrpc: "2.0", method: "torrent_start", params: { ids: [t.id] } });
  assert.equal(none.status, 204);
  await none.body?.cancel();
});

Deno.test("RPC: session-set changes the session's limits, session-get reads them back", async () => {
  await using s = await setup();
  const set = await s.call("session-set", {
    "speed-limit-down": 250,
    "speed-limit-down-enabled": true,
    "speed-limit-up": 40,
    "alt-speed-down": 10,
    "alt-speed-up": 5,
    "alt-speed-enabled": true,
    "download-queue-size": 3,
    seedRatioLimit: 1.5,
    seedRatioLimited: true,
    "idle-seeding-limit": 20,
    "idle-seeding-limit-enabled": true,
    "download-dir": join(s.root, "elsewhere"),
  });
  assert.equal(set.result, "success");
  const l = s.session.limits;
  assert.equal(l.download, 250_000);
  assert.equal(l.upload, 0, "the up limit's value is kept, not switched on");
  assert.equal(l.altDownload, 10_000);
  assert.equal(l.altUpload, 5_000);
  assert.equal(l.altEnabled, true);
  assert.equal(l.activeDownloads, 3);
  assert.equal(l.ratioLimit, 1.5);
  assert.equal(l.idleSeedingLimit, 1200);
  const got = (await s.call("session-get", {})).arguments;
  assert.equal(got["speed-limit-down"], 250);
  assert.equal(got["speed-limit-down-enabled"], true);
  assert.equal(got["speed-limit-up"], 40);
  assert.equal(got["speed-limit-up-enabled"], false);
  assert.equal(got["alt-speed-enabled"], true);
  assert.equal(got.seedRatioLimit, 1.5);
  assert.equal(got["download-dir"], join(s.root, "elsewhere"));
  assert.equal(got["rpc-version"], 17);
  assert.equal(got["session-id"], s.rpc.sessionId);
  // a torrent added now goes to the new download directory
  const added = await s.call("torrent-add", { metainfo: s.bytes.toBase64(), paused: true });
  const t = s.session.get(added.arguments["torrent-added"].id)!;
  assert.equal(t.basedir, join(s.root, "elsewhere"));
  assert.equal(t.desired, "stopped");
  // switched off, the value stays for next time
  await s.call("session-set", { "speed-limit-down-enabled": false });
  assert.equal(s.session.limits.download, 0);
  assert.equal(
    (await s.call("session-get", { fields: ["speed-limit-down"] })).arguments[
      "speed-limit-down"
    ],
    250,
  );
});

Deno.test("RPC: torrent-set priorities and limits; the queue moves", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  const r = await s.call("torrent-set", {
    ids: [t.id],
    "files-unwanted": [1],
    "priority-high": [0],
    downloadLimit: 30,
    downloadLimited: true,
    "peer-limit": 12,
    seedRatioMode: 1,
    seedRatioLimit: 3,
  });
  assert.equal(r.result, "success");
  const got = (await s.call("torrent-get", {
    ids: [t.id],
    fields: [
      "priorities",
      "wanted",
      "downloadLimit",
      "downloadLimited",
      "peer-limit",
      "seedRatioMode",
      "seedRatioLimit",
    ],
  })).arguments.torrents[0];
  assert.deepEqual(got.priorities, [1, 0]);
  assert.deepEqual(got.wanted, [1, 0]);
  assert.equal(got.downloadLimit, 30);
  assert.equal(got.downloadLimited, true);
  assert.equal(got["peer-limit"], 12);
  assert.equal(got.seedRatioMode, 1);
  assert.equal(got.seedRatioLimit, 3);
  assert.equal(t.limits.download, 30_000);
  const bad = await s.call("torrent-set", { ids: [t.id], "files-wanted": [5] });
  assert.equal(bad.result, "file index out of range");
  assert.equal(
    (await s.call("torrent-set", { ids: [t.id], trackerAdd: ["http://x/"] })).result,
    "changing trackers is not supported",
  );
  // a second torrent goes to the top of the queue
  const other = await makeTorrent(join(s.root, "dl"), "other", [{ path: "c.bin", length: 5000 }], {
    pieceLength: 16 * 1024,
  });
  const id2 = (await s.call("torrent-add", { metainfo: other.bytes.toBase64() })).arguments[
    "torrent-added"
  ].id;
  await s.call("queue-move-top", { ids: [id2] });
  const queue =
    (await s.call("torrent-get", { fields: ["id", "queuePosition"] })).arguments.torrents;
  assert.deepEqual(queue, [{ id: t.id, queuePosition: 1 }, { id: id2, queuePosition: 0 }]);
});

Deno.test("RPC: rename-path cannot leave the torrent; a rename moves the file and keeps the data", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  const dl = join(s.root, "dl");
  const listing = async () => {
    const out: string[] = [];
    const walk = async (d: string, rel: string) => {
      for await (const e of Deno.readDir(d)) {
        if (e.isDirectory) await walk(join(d, e.name), rel + e.name + "/");
        else out.push(rel + e.name);
      }
    };
    await walk(s.root, "");
    return out.sort();
  };
  const before = await listing();
  for (
    const [path, name] of [
      ["pack/a.bin", "../a.bin"],
      ["pack/a.bin", "../../escaped"],
      ["pack/a.bin", "x/y"],
      ["pack/a.bin", ".."],
      ["pack/a.bin", "/etc/passwd"],
      ["pack/a.bin", ""],
      ["pack/../../a.bin", "b.bin"],
      ["/tmp", "b"],
      ["pack/nothere", "b"],
      ["pack/a.bin", "sub"],
    ]
  ) {
    const r = await s.call("torrent-rename-path", { ids: [t.id], path, name });
    assert.notEqual(r.result, "success", `${path} → ${name}`);
  }
  assert.deepEqual(await listing(), before, "nothing moved");
  assert.equal(
    (await s.call("torrent-rename-path", { ids: [], path: "pack", name: "x" })).result,
    "torrent-rename-path requires 1 torrent",
  );
  // a file, then the folder
  const r1 = await s.call("torrent-rename-path", {
    ids: [t.id],
    path: "pack/sub/b.bin",
    name: "B.bin",
  });
  assert.deepEqual(r1, {
    arguments: { path: "pack/sub/b.bin", name: "B.bin", id: t.id },
    result: "success",
  });
  const r2 = await s.call("torrent-rename-path", { ids: [t.id], path: "pack", name: "Renamed" });
  assert.equal(r2.result, "success");
  assert.ok((await Deno.stat(join(dl, "Renamed", "sub", "B.bin"))).isFile);
  assert.ok((await Deno.stat(join(dl, "Renamed", "a.bin"))).isFile);
  assert.ok(
    !(await Deno.stat(join(dl, "pack")).then(() => true, () => false)),
    "the old folder is gone",
  );
  const t2 = s.session.get(t.id)!;
  await within(10_000, "the renamed torrent loaded", t2.ready);
  const got =
    (await s.call("torrent-get", { ids: [t.id], fields: ["name", "files", "percentDone"] }))
      .arguments.torrents[0];
  assert.equal(got.name, "Renamed");
  assert.deepEqual(got.files.map((f: { name: string }) => f.name), [
    "Renamed/a.bin",
    "Renamed/sub/B.bin",
  ]);
  assert.equal(got.percentDone, 1, "the renamed files still hold the verified data");
  assert.equal(t2.checkedAtLoad, 0, "renamed files are trusted without a hash check");
});

Deno.test("RPC: set-location moves the data and keeps the id; without move it looks there", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  const elsewhere = join(s.root, "moved");
  const r = await s.call("torrent-set-location", { ids: [t.id], location: elsewhere, move: true });
  assert.equal(r.result, "success");
  assert.ok((await Deno.stat(join(elsewhere, "pack", "sub", "b.bin"))).isFile);
  assert.ok(!(await Deno.stat(join(s.root, "dl", "pack")).then(() => true, () => false)));
  const moved = s.session.get(t.id)!;
  await within(10_000, "the moved torrent loaded", moved.ready);
  assert.equal(moved.basedir, elsewhere);
  assert.equal(moved.complete, true);
  // pointed at an empty folder without moving: nothing there
  const empty = join(s.root, "empty");
  await s.call("torrent-set-location", { ids: [t.id], location: empty });
  const there = s.session.get(t.id)!;
  await within(10_000, "the torrent loaded again", there.ready);
  const got = (await s.call("torrent-get", { ids: [t.id], fields: ["downloadDir", "percentDone"] }))
    .arguments.torrents[0];
  assert.deepEqual(got, { downloadDir: empty, percentDone: 0 });
});

Deno.test("RPC: isFinished only when a seeding limit stopped the torrent; a stop by the user is Stopped", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  const fields = ["status", "isFinished"];
  const get = async () =>
    (await s.call("torrent-get", { ids: [t.id], fields })).arguments.torrents[0];
  assert.deepEqual(await get(), { status: 6, isFinished: false });
  await s.call("torrent-stop", { ids: [t.id] });
  assert.deepEqual(await get(), { status: 0, isFinished: false }, "stopped by the user");
  await s.call("torrent-start", { ids: [t.id] });
  assert.deepEqual(await get(), { status: 6, isFinished: false });
  // the idle seeding limit (1 s without an upload) stops it: finished
  s.session.setLimits({ idleSeedingLimit: 1 });
  const stopped = new Promise<void>((resolve) =>
    t.addEventListener("state", (e) => e.detail.state === "stopped" && resolve())
  );
  await within(10_000, "the idle limit to stop the torrent", stopped);
  assert.deepEqual(await get(), { status: 0, isFinished: true });
  assert.equal(t.finished, true);
  // starting it again clears it
  s.session.setLimits({ idleSeedingLimit: 0 });
  await s.call("torrent-start", { ids: [t.id] });
  assert.deepEqual(await get(), { status: 6, isFinished: false });
});

Deno.test("RPC: queued torrents are 'download wait'; a magnet link and a URL are added", async () => {
  await using s = await setup();
  await s.call("session-set", { "download-queue-enabled": true, "download-queue-size": 1 });
  // two torrents with nothing on disk and no peer: the second one waits for the first
  const a = await makeTorrent(join(s.root, "src"), "a", [{ path: "a.bin", length: 40_000 }], {
    pieceLength: 16 * 1024,
  });
  const b = await makeTorrent(join(s.root, "src"), "b", [{ path: "b.bin", length: 40_000 }], {
    pieceLength: 16 * 1024,
  });
  const ida = (await s.call("torrent-add", { metainfo: a.bytes.toBase64() })).arguments[
    "torrent-added"
  ].id;
  // the second by URL, from a server that wants a cookie
  await using files = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      req.headers.get("cookie") === "k=v"
        ? new Response(b.bytes.slice())
        : new Response("no", { status: 403 }),
  );
  const url = `http://127.0.0.1:${files.addr.port}/b.torrent`;
  const refused = await s.call("torrent-add", { filename: url });
  assert.equal(refused.result, "http error 403: Forbidden");
  const idb = (await s.call("torrent-add", { filename: url, cookies: "k=v" })).arguments[
    "torrent-added"
  ].id;
  await within(
    10_000,
    "both loaded",
    Promise.all([s.session.get(ida)!.ready, s.session.get(idb)!.ready]),
  );
  const statuses = async () =>
    (await s.call("torrent-get", { fields: ["id", "status"] })).arguments.torrents;
  await within(
    10_000,
    "the queue decided",
    (async () => {
      while (
        JSON.stringify(await statuses()) !==
          JSON.stringify([{ id: ida, status: 4 }, { id: idb, status: 3 }])
      ) {
        await new Promise((r) => setTimeout(r, 50)); // the queue is decided asynchronously, without an event
      }
    })(),
  );
  // a magnet link: registered at once, named by its dn, downloading (its metadata)
  const hash = "0123456789abcdef0123456789abcdef01234567";
  const m = await s.call("torrent-add", {
    filename: `magnet:?xt=urn:btih:${hash}&dn=Some+Name`,
    paused: false,
  });
  assert.deepEqual(m.arguments["torrent-added"], { hashString: hash, id: 3, name: "Some Name" });
  const got = (await s.call("torrent-get", {
    ids: [hash],
    fields: ["name", "metadataPercentComplete", "status"],
  }))
    .arguments.torrents[0];
  assert.deepEqual(got, { name: "Some Name", metadataPercentComplete: 0, status: 4 });
  const dup = await s.call("torrent-add", { metainfo: a.bytes.toBase64() });
  assert.deepEqual(dup.arguments, {
    "torrent-duplicate": { hashString: a.meta.infoHashHex, id: ida, name: "a" },
  });
  assert.equal(dup.result, "success");
});

Deno.test("RPC: torrent-verify checks a stopped torrent's data and finds a damaged piece", async () => {
  await using s = await setup();
  const t = await addSeed(s);
  await s.call("torrent-stop", { ids: [t.id] });
  // one byte of the first file changed on disk
  const path = join(s.root, "dl", "pack", "a.bin");
  const f = await Deno.open(path, { write: true, read: true });
  const b = new Uint8Array(1);
  await f.read(b);
  await f.seek(0, Deno.SeekMode.Start);
  await f.write(new Uint8Array([b[0] ^ 0xff]));
  f.close();
  const checked = new Promise<number>((resolve) => {
    let n = 0, failed = -1;
    const done = () => ++n === s.meta.pieceCount && resolve(failed);
    t.addEventListener("hashpass", done);
    t.addEventListener("hashfail", (e) => {
      failed = e.detail.index;
      done();
    });
  });
  assert.equal((await s.call("torrent-verify", { ids: [s.meta.infoHashHex] })).result, "success");
  assert.equal(await within(20_000, "the check", checked), 0, "piece 0 failed");
  const got = (await s.call("torrent-get", {
    ids: [t.id],
    fields: ["status", "percentDone", "leftUntilDone"],
  }))
    .arguments.torrents[0];
  assert.equal(got.status, 0, "still stopped");
  assert.equal(got.leftUntilDone, 16 * 1024, "one piece to download again");
});

Deno.test("RPC: trackerStats and reannounce; a tracker's refusal is the torrent's error, an unreachable one is not", async () => {
  const announces: URL[] = [];
  const wait: (() => void)[] = [];
  await using tracker = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      const url = new URL(req.url);
      announces.push(url);
      for (const w of wait.splice(0)) w();
      const body = url.pathname === "/refuse"
        ? "d14:failure reason11:not welcomee"
        : "d8:intervali1800e5:peers0:e";
      return new Response(body);
    },
  );
  const nextAnnounce = () => new Promise<void>((resolve) => wait.push(resolve));
  await using s = await setup();
  const base = `http://127.0.0.1:${tracker.addr.port}`;
  const ok = await makeTorrent(join(s.root, "dl"), "ok", [{ path: "o.bin", length: 20_000 }], {
    pieceLength: 16 * 1024,
    announce: [[`${base}/announce`]],
  });
  const first = nextAnnounce();
  const id = (await s.call("torrent-add", { metainfo: ok.bytes.toBase64() })).arguments[
    "torrent-added"
  ].id;
  await within(10_000, "the first announce", first);
  const stats = async (which: number) =>
    (await s.call("torrent-get", {
      ids: [which],
      fields: ["trackerStats", "error", "errorString"],
    }))
      .arguments.torrents[0];
  let got = await stats(id);
  for (let i = 0; i < 100 && !got.trackerStats[0].hasAnnounced; i++) {
    await new Promise((r) => setTimeout(r, 20)); // the answer is recorded just after the request
    got = await stats(id);
  }
  assert.equal(got.trackerStats[0].announce, `${base}/announce`);
  assert.equal(
    got.trackerStats[0].lastAnnounceSucceeded,
    true,
    got.trackerStats[0].lastAnnounceResult,
  );
  assert.equal(got.trackerStats[0].lastAnnounceResult, "Success");
  assert.equal(got.trackerStats[0].scrape, `${base}/scrape`);
  assert.equal(got.trackerStats[0].announceState, 1, "waiting for the next announce");
  assert.ok(got.trackerStats[0].nextAnnounceTime >= got.trackerStats[0].lastAnnounceTime + 30);
  assert.equal(got.error, 0);
  const again = nextAnnounce();
  assert.equal((await s.call("torrent-reannounce", { ids: [id] })).result, "success");
  await within(10_000, "the announce asked for", again);
  assert.ok(announces.length >= 2);
  // a tracker that refuses: error 2 with its words
  const refused = await makeTorrent(join(s.root, "dl"), "no", [{ path: "n.bin", length: 20_000 }], {
    pieceLength: 16 * 1024,
    announce: [[`${base}/refuse`]],
  });
  const refusal = nextAnnounce();
  const id2 = (await s.call("torrent-add", { metainfo: refused.bytes.toBase64() })).arguments[
    "torrent-added"
  ].id;
  await within(10_000, "the refused announce", refusal);
  let bad = await stats(id2);
  for (let i = 0; i < 100 && bad.error === 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    bad = await stats(id2);
  }
  assert.equal(bad.error, 2);
  assert.equal(bad.errorString, "not welcome");
  // one that cannot be reached: retried, not an error (as Transmission)
  const port = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = l.addr.port;
    l.close();
    return p;
  })();
  const gone = await makeTorrent(join(s.root, "dl"), "gone", [{ path: "g.bin", length: 20_000 }], {
    pieceLength: 16 * 1024,
    announce: [[`http://127.0.0.1:${port}/announce`]],
  });
  const id3 = (await s.call("torrent-add", { metainfo: gone.bytes.toBase64() })).arguments[
    "torrent-added"
  ].id;
  let unreachable = await stats(id3);
  for (let i = 0; i < 250 && !unreachable.trackerStats[0].hasAnnounced; i++) {
    await new Promise((r) => setTimeout(r, 20));
    unreachable = await stats(id3);
  }
  assert.equal(unreachable.trackerStats[0].lastAnnounceSucceeded, false);
  assert.equal(unreachable.error, 0);
});
