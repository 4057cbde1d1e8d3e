// A Session killed with SIGKILL in the middle of a download restarts from its state directory with its torrent,
// trusts what it had written (nothing hashed again) and completes byte-exact; the bytes fetched by both runs add
// up to little more than the torrent (only pieces in flight are fetched twice).
import assert from "node:assert/strict";
import { join } from "node:path";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

const CHILD = new URL("./_session_child.ts", import.meta.url).pathname;
const PIECE = 256 * 1024;
const FILES = [{ path: "data.bin", length: 48 * 1024 * 1024 + 77 }, {
  path: "x/y.bin",
  length: 999,
}];

function run(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const events: Record<string, unknown>[] = [];
  const next = async (test: (e: Record<string, unknown>) => boolean) => {
    for (;;) {
      const found = events.find(test);
      if (found) return found;
      const { value, done } = await lines.read();
      if (done) throw new Error("the session exited");
      buf += value;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        events.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    }
  };
  return { child, next, events, lines };
}

Deno.test({
  name:
    "a Session killed with SIGKILL mid-download restarts with its torrent and completes without re-hashing",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-session-crash-" });
    try {
      const { meta, bytes } = await makeTorrent(join(root, "seed"), "t", FILES, {
        pieceLength: PIECE,
      });
      const torrent = join(root, "t.torrent");
      await Deno.writeFile(torrent, bytes);
      // a seeder slow enough that the kill lands mid-download
      await using lt = await startLibtorrent("seed", torrent, join(root, "seed"), [], {
        env: { LT_UPLOAD_LIMIT: String(8 * 1024 * 1024) },
      });
      const state = join(root, "state"), dir = join(root, "leech");
      const first = run([state, dir, torrent, `127.0.0.1:${lt.port}`]);
      await within(30_000, "the torrent ready", first.next((e) => "ready" in e));
      const killAt = 40 + Math.floor(Math.random() * 100); // of 193 pieces
      await within(
        60_000,
        `${killAt} pieces`,
        first.next(() => first.events.filter((e) => "piece" in e).length >= killAt),
      );
      first.child.kill("SIGKILL");
      assert.equal((await first.child.status).signal, "SIGKILL");
      await first.lines.cancel();
      const piecesBefore = first.events.filter((e) => "piece" in e).length;
      assert.ok(!first.events.some((e) => "done" in e), "killed before it finished");
      // restart: the torrent comes back from the state directory (nothing is added)
      const second = run([state, dir, "", `127.0.0.1:${lt.port}`]);
      const ready = await within(30_000, "the restored torrent", second.next((e) => "ready" in e));
      assert.equal(ready.ready, meta.infoHashHex);
      assert.equal(ready.id, 1);
      assert.equal(
        ready.checkedAtLoad,
        0,
        "resume data and journal vouched for every piece: no re-hash",
      );
      const have = Number(ready.have) / PIECE;
      assert.ok(
        have >= piecesBefore - 1,
        `restored with ${have} pieces of the ${piecesBefore} written`,
      );
      await within(60_000, "the download to complete", second.next((e) => "done" in e));
      assert.equal((await second.child.status).code, 0);
      await second.lines.cancel().catch(() => {});
      const fetchedAgain = second.events.filter((e) => "piece" in e).length + piecesBefore -
        meta.pieceCount;
      // bounded by the pieces in flight and the journal's lag (the bound is 16 MiB = 64 pieces)
      assert.ok(fetchedAgain <= 8, `${fetchedAgain} pieces downloaded twice`);
      assert.ok(await sameFiles(join(root, "seed", "t"), join(dir, "t"), FILES));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
