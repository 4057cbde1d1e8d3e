/**
 * The style sheet of Seedbed's web page (see `page.ts`): light and dark, by the system's preference.
 *
 * @module
 */

/** The page's CSS. */
export const PAGE_CSS: string = String.raw`
:root {
  --bg: #f6f7f5; --panel: #ffffff; --text: #1d2420; --muted: #66706a; --line: #e2e6e2;
  --accent: #2f7d4f; --accent-ink: #ffffff; --accent-soft: #e3f2e8;
  --down: #2563eb; --up: #2f7d4f; --stopped: #9aa39d; --check: #c98a12; --error: #c2352b; --queued: #7c6fd6;
  --shadow: 0 1px 2px rgba(0,0,0,.06), 0 4px 16px rgba(0,0,0,.06);
  --radius: 10px;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #121614; --panel: #1a1f1c; --text: #e4e9e5; --muted: #97a19b; --line: #2b322e;
    --accent: #4fb37a; --accent-ink: #0d1a12; --accent-soft: #1f3328;
    --down: #6b9cff; --up: #4fb37a; --stopped: #6d756f; --check: #e0a93a; --error: #ef6b5f; --queued: #a59bf0;
    --shadow: 0 1px 2px rgba(0,0,0,.4), 0 6px 20px rgba(0,0,0,.35);
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { margin: 0; }
body {
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  background: var(--bg); color: var(--text);
  font-variant-numeric: tabular-nums;
}
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.skip { position: absolute; left: -999px; top: 8px; background: var(--panel); padding: 8px 12px; z-index: 10; }
.skip:focus { left: 8px; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }

button, input, select { font: inherit; color: inherit; }
button {
  border: 1px solid var(--line); background: var(--panel); border-radius: 8px; padding: 6px 12px;
  cursor: pointer; transition: background .15s, border-color .15s;
}
button:hover { border-color: var(--muted); }
button.primary { background: var(--accent); color: var(--accent-ink); border-color: var(--accent); font-weight: 600; }
button.primary:hover { filter: brightness(1.07); }
button.danger { background: var(--error); color: #fff; border-color: var(--error); font-weight: 600; }
button.ghost { background: transparent; }
button.icon { border: 0; background: transparent; padding: 4px 8px; font-size: 16px; line-height: 1; }
button:disabled { opacity: .5; cursor: default; }

.bar {
  display: flex; align-items: center; gap: 18px; flex-wrap: wrap;
  padding: 12px 24px; background: var(--panel); border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 5;
}
.brand { display: flex; align-items: center; gap: 10px; font-size: 19px; margin: 0; letter-spacing: -.01em; }
.totals { display: flex; gap: 16px; color: var(--muted); }
.rate b { color: var(--text); font-weight: 600; }
.rate.down > span:first-child { color: var(--down); }
.rate.up > span:first-child { color: var(--up); }
.bar-actions { margin-left: auto; display: flex; gap: 8px; }

.switch { display: inline-flex; align-items: center; gap: 8px; cursor: pointer; color: var(--muted); user-select: none; }
.switch input { position: absolute; opacity: 0; width: 36px; height: 20px; margin: 0; cursor: pointer; }
.switch .track { width: 36px; height: 20px; border-radius: 10px; background: var(--line); position: relative; transition: background .15s; flex: none; }
.switch .track::after { content: ""; position: absolute; top: 2px; left: 2px; width: 16px; height: 16px; border-radius: 50%; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.3); transition: transform .15s; }
.switch input:checked + .track { background: var(--queued); }
.switch input:checked + .track::after { transform: translateX(16px); }
.switch input:focus-visible + .track { outline: 2px solid var(--accent); outline-offset: 2px; }
.switch input:checked ~ span:last-child { color: var(--text); }

main { padding: 16px 24px 48px; max-width: 1400px; margin: 0 auto; }
.toolbar { display: flex; gap: 12px; align-items: center; justify-content: space-between; flex-wrap: wrap; margin-bottom: 12px; }
.filters { border: 0; padding: 0; margin: 0; display: flex; gap: 4px; flex-wrap: wrap; }
.filters label { position: relative; }
.filters input { position: absolute; opacity: 0; inset: 0; margin: 0; cursor: pointer; }
.filters span { display: inline-block; padding: 5px 12px; border-radius: 999px; color: var(--muted); border: 1px solid transparent; }
.filters i { font-style: normal; font-size: 12px; margin-left: 4px; opacity: .75; }
.filters input:checked + span { background: var(--accent-soft); color: var(--text); border-color: var(--line); font-weight: 600; }
.filters input:focus-visible + span { outline: 2px solid var(--accent); outline-offset: 1px; }
.search input { width: 240px; max-width: 60vw; padding: 6px 10px; border: 1px solid var(--line); border-radius: 8px; background: var(--panel); }

.table-wrap { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius); box-shadow: var(--shadow); overflow-x: auto; }
table.torrents { width: 100%; border-collapse: collapse; }
.torrents th { text-align: left; font-weight: 600; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; padding: 10px 12px; border-bottom: 1px solid var(--line); white-space: nowrap; }
.torrents td { padding: 10px 12px; border-bottom: 1px solid var(--line); vertical-align: middle; }
.torrents tr:last-child td { border-bottom: 0; }
.torrents tbody tr { transition: background .1s; }
.torrents tbody tr:hover { background: color-mix(in srgb, var(--accent-soft) 45%, transparent); }
.torrents tbody tr.selected { background: var(--accent-soft); }
.num, .torrents th.num, .mini th.num { text-align: right; white-space: nowrap; }
.col-name { width: 40%; }
.col-progress { width: 22%; min-width: 160px; }
.col-actions { width: 1%; }
.name-button { border: 0; background: none; padding: 0; text-align: left; font-weight: 600; cursor: pointer; max-width: 100%; overflow-wrap: anywhere; }
.name-button:hover { text-decoration: underline; border: 0; }
.status { font-size: 12.5px; color: var(--muted); margin-top: 2px; }
.status .state { font-weight: 600; }
tr.downloading .state { color: var(--down); }
tr.seeding .state { color: var(--up); }
tr.checking .state { color: var(--check); }
tr.queued .state { color: var(--queued); }
tr.error .state, .error { color: var(--error); }
.percent { font-size: 12px; color: var(--muted); margin-top: 3px; display: flex; justify-content: space-between; gap: 8px; }

progress { -webkit-appearance: none; appearance: none; width: 100%; height: 8px; border: 0; border-radius: 4px; background: var(--line); overflow: hidden; display: block; }
progress::-webkit-progress-bar { background: var(--line); border-radius: 4px; }
progress::-webkit-progress-value { background: var(--down); border-radius: 4px; transition: width .4s ease; }
progress::-moz-progress-bar { background: var(--down); border-radius: 4px; }
tr.seeding progress::-webkit-progress-value, tr.done progress::-webkit-progress-value { background: var(--up); }
tr.stopped progress::-webkit-progress-value { background: var(--stopped); }
tr.checking progress::-webkit-progress-value { background: var(--check); }
tr.error progress::-webkit-progress-value { background: var(--error); }
tr.queued progress::-webkit-progress-value { background: var(--queued); }
tr.seeding progress::-moz-progress-bar { background: var(--up); }
tr.stopped progress::-moz-progress-bar { background: var(--stopped); }

.actions { display: flex; gap: 4px; justify-content: flex-end; }
.actions button { border: 1px solid transparent; background: transparent; border-radius: 7px; padding: 5px 7px; color: var(--muted); display: inline-flex; }
.actions button:hover { border-color: var(--line); color: var(--text); background: var(--bg); }
.actions button.remove:hover { color: var(--error); }
.actions svg { width: 18px; height: 18px; }

.empty { text-align: center; color: var(--muted); padding: 56px 16px; border: 2px dashed var(--line); border-radius: var(--radius); margin-top: 16px; }
.connection { margin-top: 12px; padding: 10px 14px; border-radius: 8px; background: color-mix(in srgb, var(--error) 12%, transparent); color: var(--error); }
.muted { color: var(--muted); }

.details {
  position: fixed; top: 0; right: 0; bottom: 0; width: min(560px, 100vw); background: var(--panel);
  border-left: 1px solid var(--line); box-shadow: -8px 0 32px rgba(0,0,0,.12); z-index: 8;
  display: flex; flex-direction: column;
}
.details-head { display: flex; align-items: flex-start; gap: 8px; padding: 16px 18px 8px; }
.details-head h2 { margin: 0; font-size: 17px; flex: 1; overflow-wrap: anywhere; }
.tabs { display: flex; gap: 2px; padding: 0 14px; border-bottom: 1px solid var(--line); }
.tabs button { border: 0; border-bottom: 2px solid transparent; border-radius: 0; background: none; padding: 8px 10px; color: var(--muted); }
.tabs button[aria-selected="true"] { color: var(--text); border-bottom-color: var(--accent); font-weight: 600; }
.panel { padding: 14px 18px; overflow: auto; flex: 1; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 6px 16px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
table.mini { width: 100%; border-collapse: collapse; font-size: 13px; }
.mini th { text-align: left; color: var(--muted); font-weight: 600; padding: 4px 6px; border-bottom: 1px solid var(--line); }
.mini td { padding: 5px 6px; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
.mini select { padding: 2px 4px; border-radius: 6px; border: 1px solid var(--line); background: var(--panel); }
.trackers { list-style: none; margin: 0; padding: 0; display: grid; gap: 10px; }
.trackers li { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.trackers .url { font-weight: 600; overflow-wrap: anywhere; }

dialog { border: 1px solid var(--line); border-radius: 14px; padding: 0; background: var(--panel); color: var(--text); box-shadow: 0 20px 60px rgba(0,0,0,.25); width: min(520px, 94vw); }
dialog::backdrop { background: rgba(10,16,12,.45); }
dialog form { padding: 20px 22px; display: grid; gap: 14px; }
dialog h2 { margin: 0; font-size: 18px; }
dialog fieldset { border: 1px solid var(--line); border-radius: 10px; padding: 8px 12px 12px; display: grid; gap: 8px; }
dialog legend { color: var(--muted); padding: 0 4px; }
.field { display: grid; gap: 5px; }
.field > span { color: var(--muted); font-size: 13px; }
.field input[type="file"] { font-size: 13px; }
.field input[type="file"]::file-selector-button { font: inherit; border: 1px solid var(--line); background: var(--bg); color: var(--text); border-radius: 8px; padding: 6px 12px; margin-right: 10px; cursor: pointer; }
.field input[type="text"] { padding: 7px 10px; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); width: 100%; }
.limit { display: flex; justify-content: space-between; align-items: center; gap: 12px; }
.limit input[type="number"] { width: 110px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 8px; background: var(--bg); text-align: right; }
.check { display: inline-flex; align-items: center; gap: 8px; }
.buttons { display: flex; justify-content: flex-end; gap: 8px; margin-top: 4px; }

.drop { position: fixed; inset: 0; background: color-mix(in srgb, var(--accent) 18%, transparent); border: 3px dashed var(--accent); z-index: 20; display: grid; place-items: center; font-size: 22px; font-weight: 600; pointer-events: none; }
.toast { position: fixed; left: 50%; bottom: 22px; transform: translateX(-50%); background: var(--text); color: var(--bg); padding: 9px 16px; border-radius: 10px; box-shadow: var(--shadow); opacity: 0; transition: opacity .2s; pointer-events: none; max-width: 90vw; }
.toast.show { opacity: 1; }
.toast.bad { background: var(--error); color: #fff; }

@media (max-width: 760px) {
  .bar { padding: 10px 14px; gap: 10px; }
  main { padding: 12px; }
  .torrents th:nth-child(4), .torrents td:nth-child(4), .torrents th:nth-child(5), .torrents td:nth-child(5) { display: none; }
}
@media (prefers-reduced-motion: reduce) { * { transition: none !important; } }
`;
