// Whole downloads killed with SIGKILL at several moments, restarted each time: the download completes, every byte
// is right, and a restart re-downloads no more than what was in flight (resume data is trusted only when the
// files did not change since it was written).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PIECE = 64 * 1024;
const FILES = [
  { path: "a.bin", length: 120 * PIECE + 777 },
  { path: "sub/b.bin", length: 40 * PIECE },
];

Deno.test("kill -9 during downloads, restart, complete: every byte verified", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-crash-dl-" });
  try {
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "t", FILES, {
      pieceLength: PIECE,
    });
    const torrent = join(root, "t.torrent");
    await Deno.writeFile(torrent, bytes);
    // slow enough (about 5 s for all 161 pieces) that every kill lands mid-download
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
      queueDepth: 8,
      uploadLimit: 2 * 1024 * 1024,
    });
    const leech = join(root, "leech");
    const args = [
      "run",
      "-A",
      MAIN,
      torrent,
      "-o",
      leech,
      "--no-dht",
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "--json",
    ];
    let previousHave = 0;
    for (const killAfter of [20, 60, 110]) {
      const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "null" })
        .spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "", pieces = 0, readyHave = -1;
      await within(
        30_000,
        `${killAfter} pieces`,
        (async () => {
          while (pieces < killAfter) {
            const { value, done } = await reader.read();
            if (done) throw new Error(`the download ended before ${killAfter} pieces (${pieces})`);
            buf += value;
            pieces = (buf.match(/"event":"piece"/g) ?? []).length + Math.max(readyHave, 0);
            const ready = /"event":"ready".*?"have":(\d+)/.exec(buf);
            if (ready) readyHave = Number(ready[1]);
          }
        })(),
      );
      child.kill("SIGKILL");
      await reader.cancel();
      // killed mid-download, not finished before the kill
      assert.equal((await child.status).signal, "SIGKILL");
      assert.ok(pieces < meta.pieceCount, `${pieces} of ${meta.pieceCount} pieces before the kill`);
      // whatever the restart trusted was really there: it never claims less than before minus what was in flight
      assert.ok(readyHave >= 0, "the client reported what it resumed with");
      assert.ok(
        readyHave >= previousHave - 16,
        `resumed with ${readyHave} pieces after having ${previousHave}`,
      );
      previousHave = Math.max(previousHave, pieces);
    }
    // the last run completes
    const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
      .output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.ok(await sameFiles(join(root, "seed", "t"), join(leech, "t"), FILES));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
