// Whole downloads killed with SIGKILL at several moments, restarted each time: the download completes, every byte
// is right, and a restart re-downloads no more than what was in flight (resume data is trusted only when the
// files did not change since it was written).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { cli, events, spawnCli } from "./_cli.ts";
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
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
      queueDepth: 8,
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
      "--state",
      join(root, "state"),
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
            if (done) break; // finished before the kill point
            buf += value;
            pieces = (buf.match(/"event":"piece"/g) ?? []).length + Math.max(readyHave, 0);
            const ready = /"event":"ready".*?"have":(\d+)/.exec(buf);
            if (ready) readyHave = Number(ready[1]);
          }
        })(),
      );
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      await reader.cancel();
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

Deno.test("kill -9 at a random point: the killed run's bytes and the rerun's add up to at most size + 16 MiB, and it ends byte-exact", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-crash-bytes-" });
  try {
    const piece = 256 * 1024;
    const files = [{ path: "big.bin", length: 48 * 1024 * 1024 }];
    const size = files[0].length;
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "t", files, {
      pieceLength: piece,
    });
    const torrent = join(root, "t.torrent");
    await Deno.writeFile(torrent, bytes);
    // the seeder counts every byte it queued for us: an upper bound of what each run downloaded
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
      uploadLimit: 24 * 1024 * 1024,
    });
    const args = [
      torrent,
      "-o",
      join(root, "leech"),
      "--no-dht",
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "--json",
      "--state",
      join(root, "state"),
    ];
    // killed at a random point past half-way: re-downloading everything would break the bound
    const pieces = meta.pieceCount;
    const killAt = Math.floor(pieces * (0.5 + 0.3 * Math.random()));
    {
      await using first = spawnCli(args);
      await first.event(
        `piece ${killAt}`,
        () => first.events.filter((e) => e.event === "piece").length >= killAt,
        60_000,
      );
      first.kill("SIGKILL");
      await first.exited;
    }
    const killed = seeder.uploaded;
    const rerun = await cli(args);
    assert.equal(rerun.code, 0, rerun.stderr);
    const again = seeder.uploaded - killed;
    const list = events(rerun.stdout);
    const ready = list.find((e) => e.event === "ready")!;
    const complete = list.find((e) => e.event === "complete")!;
    const figures =
      `size ${size}, killed after ${killAt} of ${pieces} pieces: the killed run got ≤ ${killed} bytes, ` +
      `the rerun ≤ ${again} (it says ${complete.downloaded}), resumed with ${ready.have} pieces`;
    assert.ok(killed + again <= size + 16 * 1024 * 1024, figures);
    // --json's downloaded is this run's bytes, not the torrent's
    assert.ok(
      (complete.downloaded as number) <= again && (complete.downloaded as number) < size,
      figures,
    );
    assert.ok((ready.have as number) >= killAt - 64, figures);
    assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "leech", "t"), files));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
