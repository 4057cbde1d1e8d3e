// The daemon in a real browser (headless Chromium over the DevTools protocol): Transmission's own web client
// (Debian's, served with --web-root) lists and controls the daemon's torrents, and Seedbed's page adds a torrent
// that then downloads from a libtorrent seeder, shows its progress moving, its files and peers, stops it and
// removes it with its data. Screenshots go to $SEEDBED_SCREENSHOTS when set.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../src/create.ts";
import { launchChromium } from "./_cdp.ts";
import { startDaemon, until } from "./_daemon.ts";
import { needs, startLibtorrent, startOpentracker } from "./_lab.ts";
import { makeTorrent } from "./_swarm.ts";

const WEB_ROOT = "/usr/share/transmission/web";
const hasWebClient = (() => {
  try {
    return Deno.statSync(join(WEB_ROOT, "index.html")).isFile;
  } catch {
    return false;
  }
})();

async function screenshot(png: Uint8Array, name: string): Promise<void> {
  const dir = Deno.env.get("SEEDBED_SCREENSHOTS");
  if (dir) await Deno.writeFile(join(dir, name), png);
}

function daemonArgs(dir: string, state: string, ...more: string[]): string[] {
  return [
    ...["--dir", dir, "--state", state, "--rpc-port", "0"],
    ...["-p", "0", "--peer-bind", "127.0.0.1", "--no-dht"],
    ...more,
  ];
}

Deno.test({
  name: "Transmission's web client lists and controls the daemon's torrents in Chromium",
  ignore: needs("chromium") || (!hasWebClient && needs("transmission")),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-daemon-webclient-" });
    try {
      const files = [{ path: "a.bin", length: 300_000 }, { path: "sub/b.bin", length: 70_000 }];
      const first = await makeTorrent(join(root, "dl"), "pack", files, { pieceLength: 32 * 1024 });
      const second = await makeTorrent(join(root, "dl"), "second", [{
        path: "c.bin",
        length: 50_000,
      }], { pieceLength: 32 * 1024 });
      await Deno.writeFile(join(root, "second.torrent"), second.bytes);
      await using d = await startDaemon(
        daemonArgs(join(root, "dl"), join(root, "state"), "--web-root", WEB_ROOT),
      );
      assert.match(d.log(), /Transmission's web client at \/transmission\/web\//);
      assert.equal(
        (await d.rpc("torrent-add", { metainfo: first.bytes.toBase64() })).result,
        "success",
      );
      const status = async (id: number) =>
        (await d.rpc("torrent-get", { ids: [id], fields: ["status"] })).arguments.torrents[0]
          ?.status;
      await until("the torrent to seed", 30_000, async () => (await status(1)) === 6);

      await using browser = await launchChromium(join(root, "profile"));
      await browser.goto(`${d.url}/transmission/`); // redirected to /transmission/web/
      assert.equal(await browser.eval("location.pathname"), "/transmission/web/");
      await browser.waitFor(
        `[...document.querySelectorAll("li.torrent .torrent_name")].some((e) => e.textContent === "pack")`,
        20_000,
        "the torrent in Transmission's list",
      );
      await browser.waitFor(
        `document.querySelector("li.torrent .torrent_peer_details").textContent.includes("Seeding")`,
        10_000,
        "its state: seeding",
      );
      const progress = await browser.eval(
        `document.querySelector("li.torrent .torrent_progress_details").textContent`,
      );
      assert.match(progress, /370\.0 kB/);
      await screenshot(await browser.screenshot(), "transmission-web-client.png");

      // its per-row pause button stops the torrent; the resume button starts it again. A changed row is taken
      // out of the list and put back 100 ms after it is redrawn (its refilter), and a click whose press and
      // release straddle that is lost, for a person too: each click waits until the list has settled.
      const settled = `typeof transmission === "object" && !transmission.refilterTimer`;
      await browser.waitFor(settled, 10_000, "Transmission's list settled");
      await browser.click("li.torrent .torrent_pause");
      await until("the torrent stopped", 20_000, async () => (await status(1)) === 0);
      await browser.waitFor(
        `document.querySelector("li.torrent .torrent_peer_details").textContent.includes("Paused")`,
        10_000,
        "Transmission's list to say Paused",
      );
      await browser.waitFor(settled, 10_000, "Transmission's list settled");
      await browser.click("li.torrent .torrent_resume");
      try {
        await until("the torrent started", 20_000, async () => (await status(1)) === 6);
      } catch (err) {
        // what each side saw, for a failure on a busy machine
        const ui = await browser.eval(`document.querySelector("li.torrent").outerHTML`);
        const rpc = await d.rpc("torrent-get", { ids: [1], fields: ["status", "errorString"] });
        throw new Error(
          `${err}\nUI: ${ui}\nRPC: ${JSON.stringify(rpc)}\nconsole: ${browser.console}\n${d.log()}`,
        );
      }

      // its "Open Torrent" dialog uploads a .torrent file
      await browser.click("#toolbar-open");
      await browser.waitFor(
        `document.querySelector("#upload_container").offsetParent !== null`,
        5000,
      );
      await browser.setFiles("#torrent_upload_file", [join(root, "second.torrent")]);
      await browser.click("#upload_confirm_button");
      await until("the uploaded torrent", 10_000, async () => (await status(2)) !== undefined);
      await browser.waitFor(
        `document.querySelectorAll("li.torrent").length === 2`,
        10_000,
        "two torrents listed",
      );
      const names = await browser.eval(
        `[...document.querySelectorAll("li.torrent .torrent_name")].map((e) => e.textContent)`,
      );
      assert.deepEqual([...names].sort(), ["pack", "second"]);
      assert.deepEqual(
        browser.console.filter((l) => l.startsWith("exception")),
        [],
        "no script errors",
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Seedbed's page adds a torrent that downloads from libtorrent, shows it move, stops and removes it",
  ignore: needs("chromium", "libtorrent", "opentracker"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-daemon-page-" });
    try {
      const files = [{ path: "movie.mkv", length: 12 * 1024 * 1024 }, {
        path: "subs/movie.srt",
        length: 20_000,
      }];
      const pieceLength = 64 * 1024;
      const { meta } = await makeTorrent(join(root, "seed"), "Big Buck Seedbed", files, {
        pieceLength,
      });
      await using tracker = await startOpentracker([meta.infoHash]);
      const bytes = await createTorrent(join(root, "seed", "Big Buck Seedbed"), {
        pieceLength,
        announce: [tracker.url],
      });
      const torrentPath = join(root, "movie.torrent");
      await Deno.writeFile(torrentPath, bytes);
      // 1.5 MiB/s: about eight seconds to watch the progress move
      await using _lt = await startLibtorrent("seed", torrentPath, join(root, "seed"), [], {
        env: { LT_UPLOAD_LIMIT: String(1536 * 1024) },
      });
      const dir = join(root, "dl");
      await using d = await startDaemon(daemonArgs(dir, join(root, "state")));
      await using browser = await launchChromium(join(root, "profile"));
      await browser.goto(`${d.url}/`);
      await browser.waitFor(`!document.getElementById("empty").hidden`, 10_000, "the empty list");
      assert.equal(await browser.eval("document.title"), "Seedbed");

      // add the .torrent through the dialog, as a person would
      await browser.click("#open-add");
      await browser.waitFor(`document.getElementById("add-dialog").open`, 5000);
      assert.equal(await browser.eval(`document.getElementById("add-dir").value`), dir);
      await browser.setFiles("#add-files", [torrentPath]);
      await browser.click("#add-submit");
      await browser.waitFor(
        `document.querySelector("#torrent-rows tr .name-button")?.textContent === "Big Buck Seedbed"`,
        15_000,
        "the new row",
      );
      await browser.waitFor(
        `!document.getElementById("add-dialog").open`,
        10_000,
        "the dialog closed",
      );
      // its progress moves
      const p1 = await browser.waitFor(
        `(() => { const v = document.querySelector("#torrent-rows progress").value; return v > 0.05 && v < 0.7 && v; })()`,
        60_000,
        "the download to start",
      );
      assert.match(
        await browser.eval(`document.querySelector("#torrent-rows .state").textContent`),
        /^Downloading$/,
      );
      const p2 = await browser.waitFor(
        `(() => { const v = document.querySelector("#torrent-rows progress").value; return v > ${
          p1 + 0.1
        } && v; })()`,
        30_000,
        "the progress to move",
      );
      assert.ok(p2 > p1);
      const row = await browser.eval(`(() => {
        const tds = [...document.querySelectorAll("#torrent-rows tr td")].map((td) => td.textContent.trim());
        return { down: tds[2], peers: tds[4], eta: tds[5] };
      })()`);
      assert.match(row.down, /[kM]B\/s$/, "a download speed");
      assert.equal(row.peers, "1", "one peer: libtorrent");
      assert.match(row.eta, /^\d+[smhd]/, "an ETA");

      // the details: files and the libtorrent peer
      await browser.click("#torrent-rows .name-button");
      await browser.waitFor(`!document.getElementById("details").hidden`, 5000);
      await browser.click("#tab-files");
      const fileNames = await browser.waitFor(
        `document.querySelectorAll("#files tr").length === 2 && [...document.querySelectorAll("#files tr td:nth-child(2)")].map((e) => e.textContent)`,
        10_000,
        "the files",
      );
      assert.deepEqual(fileNames, [
        "Big Buck Seedbed/movie.mkv",
        "Big Buck Seedbed/subs/movie.srt",
      ]);
      await browser.click("#tab-peers");
      const client = await browser.waitFor(
        `document.querySelector("#peers tr td:nth-child(2)")?.textContent`,
        10_000,
        "the peer",
      );
      assert.match(client, /libtorrent|Deluge|unknown/i);
      // every control has a name a screen reader can say
      const unnamed = await browser.eval(`[...document.querySelectorAll("button, input, select")]
        .filter((e) => e.offsetParent !== null || e.closest("dialog"))
        .filter((e) => !(e.getAttribute("aria-label") || e.textContent.trim() || e.labels?.length))
        .map((e) => e.outerHTML)`);
      assert.deepEqual(unnamed, [], "controls without a name");
      await browser.click("#tab-overview");
      await screenshot(await browser.screenshot(), "seedbed-page-details.png");
      await browser.click("#close-details");
      await browser.waitFor(`document.getElementById("details").hidden`, 5000);
      await screenshot(await browser.screenshot(), "seedbed-page-downloading.png");

      // stop it
      await browser.click(`#torrent-rows button.stop`);
      await browser.waitFor(
        `document.querySelector("#torrent-rows .state").textContent.startsWith("Stopped")`,
        10_000,
        "the row to say Stopped",
      );
      const t = (await d.rpc("torrent-get", { fields: ["status", "percentDone"] })).arguments
        .torrents[0];
      assert.equal(t.status, 0);
      assert.ok(t.percentDone < 1, "stopped before it finished");

      // the alternative speed switch
      await browser.click("label.switch");
      await until(
        "alt speeds on",
        5000,
        async () =>
          (await d.rpc("session-get", { fields: ["alt-speed-enabled"] })).arguments[
            "alt-speed-enabled"
          ] === true,
      );

      // remove it with its data
      await browser.click(`#torrent-rows button.remove`);
      await browser.waitFor(`document.getElementById("remove-dialog").open`, 5000);
      await browser.click("#remove-data");
      await browser.click("#remove-submit");
      await browser.waitFor(`!document.getElementById("empty").hidden`, 10_000, "the list empty");
      assert.deepEqual(
        (await d.rpc("torrent-get", { fields: ["id"] })).arguments.torrents,
        [],
      );
      await until(
        "the data deleted",
        10_000,
        async () =>
          !(await Deno.stat(join(dir, "Big Buck Seedbed", "movie.mkv")).then(
            () => true,
            () => false,
          )),
      );
      assert.deepEqual(
        browser.console.filter((l) => l.startsWith("exception") || l.startsWith("error")),
        [],
        "no script errors",
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
