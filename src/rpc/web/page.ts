/**
 * Seedbed's own web page, served by the daemon at `/`: plain HTML, CSS and JavaScript kept as strings here (no build
 * step, nothing fetched from elsewhere, included by `deno compile` and `deno publish` like any module). The page
 * talks only Transmission's RPC at `/transmission/rpc`: a live list of torrents (progress, speeds, peers, ETA,
 * status), adding by file (picked or dropped), URL or magnet link, start / stop / verify / remove, each torrent's
 * files (wanted, priority), peers and trackers, and the session's speed limits with the alternative-speed switch.
 *
 * The strict Content-Security-Policy it is served with allows only these files; torrent names and everything else
 * from the session are put in the page as text, never as markup.
 *
 * @module
 */

import { PAGE_CSS } from "./page_css.ts";
import { PAGE_JS } from "./page_js.ts";

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">` +
  `<rect width="32" height="32" rx="7" fill="#2f7d4f"/>` +
  `<path d="M16 26V15" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/>` +
  `<path d="M16 16c0-5 3-8 9-8 0 5-3 8-9 8zM16 19c0-4-2.5-6.5-7.5-6.5 0 4 2.5 6.5 7.5 6.5z" fill="#cdeccf"/>` +
  `</svg>`;

const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Seedbed</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/seedbed.css">
<script src="/seedbed.js" defer></script>
</head>
<body>
<a class="skip" href="#torrents">Skip to the torrents</a>
<header class="bar">
  <h1 class="brand"><img src="/favicon.svg" alt="" width="28" height="28"> Seedbed</h1>
  <div class="totals" aria-label="Session speed">
    <span class="rate down" title="Download speed"><span aria-hidden="true">↓</span><span class="sr">Downloading at</span> <b id="total-down">0 B/s</b></span>
    <span class="rate up" title="Upload speed"><span aria-hidden="true">↑</span><span class="sr">Uploading at</span> <b id="total-up">0 B/s</b></span>
  </div>
  <label class="switch" title="Use the alternative speed limits">
    <input type="checkbox" id="alt-speed" role="switch">
    <span class="track" aria-hidden="true"></span>
    <span>Alternative speeds <small id="alt-speed-values"></small></span>
  </label>
  <div class="bar-actions">
    <button type="button" id="open-settings" class="ghost">Speed limits</button>
    <button type="button" id="open-add" class="primary">Add torrent</button>
  </div>
</header>
<main id="main">
  <div class="toolbar">
    <fieldset class="filters">
      <legend class="sr">Show</legend>
      <label><input type="radio" name="filter" value="all" checked><span>All <i id="count-all">0</i></span></label>
      <label><input type="radio" name="filter" value="downloading"><span>Downloading <i id="count-downloading">0</i></span></label>
      <label><input type="radio" name="filter" value="seeding"><span>Seeding <i id="count-seeding">0</i></span></label>
      <label><input type="radio" name="filter" value="stopped"><span>Stopped <i id="count-stopped">0</i></span></label>
      <label><input type="radio" name="filter" value="error"><span>Errors <i id="count-error">0</i></span></label>
    </fieldset>
    <label class="search"><span class="sr">Filter by name</span>
      <input type="search" id="search" placeholder="Filter by name" autocomplete="off"></label>
  </div>
  <div class="table-wrap">
  <table id="torrents" class="torrents">
    <caption class="sr">Torrents</caption>
    <thead>
      <tr>
        <th scope="col" class="col-name">Name</th>
        <th scope="col" class="col-progress">Progress</th>
        <th scope="col" class="num">Down</th>
        <th scope="col" class="num">Up</th>
        <th scope="col" class="num">Peers</th>
        <th scope="col" class="num">ETA</th>
        <th scope="col" class="col-actions"><span class="sr">Actions</span></th>
      </tr>
    </thead>
    <tbody id="torrent-rows"></tbody>
  </table>
  </div>
  <div id="empty" class="empty" hidden>
    <p><strong>No torrents yet.</strong></p>
    <p>Add a .torrent file or a magnet link, or drop .torrent files anywhere on this page.</p>
  </div>
  <p id="connection" class="connection" role="alert" hidden></p>
</main>

<aside id="details" class="details" hidden aria-labelledby="details-title">
  <div class="details-head">
    <h2 id="details-title">Details</h2>
    <button type="button" id="close-details" class="icon" aria-label="Close the details">✕</button>
  </div>
  <div class="tabs" role="tablist" aria-label="Details">
    <button type="button" role="tab" id="tab-overview" aria-controls="panel-overview" aria-selected="true">Overview</button>
    <button type="button" role="tab" id="tab-files" aria-controls="panel-files" aria-selected="false" tabindex="-1">Files</button>
    <button type="button" role="tab" id="tab-peers" aria-controls="panel-peers" aria-selected="false" tabindex="-1">Peers</button>
    <button type="button" role="tab" id="tab-trackers" aria-controls="panel-trackers" aria-selected="false" tabindex="-1">Trackers</button>
  </div>
  <section id="panel-overview" role="tabpanel" aria-labelledby="tab-overview" class="panel"><dl id="overview" class="facts"></dl></section>
  <section id="panel-files" role="tabpanel" aria-labelledby="tab-files" class="panel" hidden>
    <table class="mini"><caption class="sr">Files</caption><thead><tr><th scope="col">Get</th><th scope="col">File</th><th scope="col" class="num">Size</th><th scope="col" class="num">Done</th><th scope="col">Priority</th></tr></thead><tbody id="files"></tbody></table>
  </section>
  <section id="panel-peers" role="tabpanel" aria-labelledby="tab-peers" class="panel" hidden>
    <table class="mini"><caption class="sr">Peers</caption><thead><tr><th scope="col">Address</th><th scope="col">Client</th><th scope="col">Flags</th><th scope="col" class="num">Has</th><th scope="col" class="num">Down</th><th scope="col" class="num">Up</th></tr></thead><tbody id="peers"></tbody></table>
    <p id="no-peers" class="muted" hidden>No peers connected.</p>
  </section>
  <section id="panel-trackers" role="tabpanel" aria-labelledby="tab-trackers" class="panel" hidden>
    <ul id="trackers" class="trackers"></ul>
  </section>
</aside>

<dialog id="add-dialog" aria-labelledby="add-title">
  <form id="add-form" method="dialog">
    <h2 id="add-title">Add torrents</h2>
    <label class="field"><span>Torrent files</span>
      <input type="file" id="add-files" accept=".torrent,application/x-bittorrent" multiple></label>
    <label class="field"><span>Or a magnet link or URL</span>
      <input type="text" id="add-url" placeholder="magnet:?xt=urn:btih:… or https://…/file.torrent" autocomplete="off" spellcheck="false"></label>
    <label class="field"><span>Save to</span>
      <input type="text" id="add-dir" autocomplete="off" spellcheck="false" required></label>
    <label class="check"><input type="checkbox" id="add-start" checked> Start when added</label>
    <p id="add-error" class="error" role="alert" hidden></p>
    <div class="buttons">
      <button type="button" class="ghost" data-close>Cancel</button>
      <button type="submit" id="add-submit" class="primary">Add</button>
    </div>
  </form>
</dialog>

<dialog id="remove-dialog" aria-labelledby="remove-title">
  <form id="remove-form" method="dialog">
    <h2 id="remove-title">Remove torrent</h2>
    <p id="remove-text"></p>
    <label class="check"><input type="checkbox" id="remove-data"> Also delete the downloaded files</label>
    <div class="buttons">
      <button type="button" class="ghost" data-close>Cancel</button>
      <button type="submit" id="remove-submit" class="danger">Remove</button>
    </div>
  </form>
</dialog>

<dialog id="settings-dialog" aria-labelledby="settings-title">
  <form id="settings-form" method="dialog">
    <h2 id="settings-title">Speed limits</h2>
    <fieldset><legend>Normal</legend>
      <div class="limit"><label class="check"><input type="checkbox" id="limit-down-on"> Download limit</label>
        <label><input type="number" id="limit-down" aria-label="Download limit, kB/s" min="1" step="1" inputmode="numeric"> <span>kB/s</span></label></div>
      <div class="limit"><label class="check"><input type="checkbox" id="limit-up-on"> Upload limit</label>
        <label><input type="number" id="limit-up" aria-label="Upload limit, kB/s" min="1" step="1" inputmode="numeric"> <span>kB/s</span></label></div>
    </fieldset>
    <fieldset><legend>Alternative (the switch at the top)</legend>
      <div class="limit"><span>Download</span>
        <label><input type="number" id="alt-down" aria-label="Alternative download limit, kB/s" min="0" step="1" inputmode="numeric"> <span>kB/s</span></label></div>
      <div class="limit"><span>Upload</span>
        <label><input type="number" id="alt-up" aria-label="Alternative upload limit, kB/s" min="0" step="1" inputmode="numeric"> <span>kB/s</span></label></div>
    </fieldset>
    <fieldset><legend>Queue and seeding</legend>
      <div class="limit"><label for="queue-size">Downloads at once</label>
        <input type="number" id="queue-size" min="1" step="1" inputmode="numeric"></div>
      <div class="limit"><label class="check"><input type="checkbox" id="ratio-on"> Stop seeding at ratio</label>
        <input type="number" id="ratio" aria-label="Seeding ratio to stop at" min="0.1" step="0.1" inputmode="decimal"></div>
    </fieldset>
    <label class="field"><span>Default download folder</span>
      <input type="text" id="download-dir" autocomplete="off" spellcheck="false"></label>
    <p id="settings-error" class="error" role="alert" hidden></p>
    <div class="buttons">
      <button type="button" class="ghost" data-close>Cancel</button>
      <button type="submit" class="primary">Save</button>
    </div>
  </form>
</dialog>

<div id="drop" class="drop" hidden aria-hidden="true"><p>Drop .torrent files to add them</p></div>
<div id="toast" class="toast" role="status" aria-live="polite"></div>
</body>
</html>
`;

/** The page's files by URL path. */
export const PAGE_ASSETS: Readonly<Record<string, { type: string; body: string }>> = {
  "/": { type: "text/html; charset=UTF-8", body: PAGE_HTML },
  "/seedbed.css": { type: "text/css; charset=UTF-8", body: PAGE_CSS },
  "/seedbed.js": { type: "text/javascript; charset=UTF-8", body: PAGE_JS },
  "/favicon.svg": { type: "image/svg+xml", body: ICON },
};
