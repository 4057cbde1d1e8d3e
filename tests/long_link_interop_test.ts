// A lossy long link against a real seeder: libtorrent seeds through bench/relay.ts (50 ms round trip, 0.5 % of
// segments stalled), Seedbed downloads with default settings. The piece budget must grow past twice its 8 MiB
// floor, which only a probe that held can do (a probe under way doubles it for a moment): sized from the rate ×
// the shortest round trip alone it stays at the floor there (blocks take several times that round trip, so the
// rate it delivers never asks for more; with probing switched off the peak was 8.0 MiB). Run: deno task test
import assert from "node:assert/strict";
import { join } from "node:path";
import { startRelay } from "../bench/relay.ts";
import { Client } from "../src/client.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const MiB = 1024 * 1024;
const FILES: SpecFile[] = [{ path: "long.bin", length: 128 * MiB }];

Deno.test({
  name:
    "through a lossy 50 ms link from libtorrent, the piece budget grows past twice its floor by probing",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-long-link-" });
    try {
      const { bytes } = await makeTorrent(join(root, "seed"), "long", FILES, { pieceLength: MiB });
      const torrent = join(root, "long.torrent");
      await Deno.writeFile(torrent, bytes);
      await using lt = await startLibtorrent("seed", torrent, join(root, "seed"));
      await using relay = startRelay({
        target: { hostname: "127.0.0.1", port: lt.port },
        rttMs: 50,
        loss: 0.005,
      });
      await using client = await Client.open({
        host: "127.0.0.1",
        resumeFile: false,
        path: torrent,
        basedir: join(root, "ours"),
        peers: [{ host: "127.0.0.1", port: relay.port }],
      });
      let peak = 0;
      client.addEventListener("piece", () => peak = Math.max(peak, client.pieceBudget));
      await within(120_000, "the download", client.done);
      const stats = relay.stats();
      console.log(
        `peak piece budget ${
          (peak / MiB).toFixed(1)
        } MiB, ${stats.stalls} stalls, ${stats.connections} connection(s)`,
      );
      assert.ok(stats.stalls > 0, "the relay stalled segments");
      assert.ok(peak > 16 * MiB, `the budget peaked at ${(peak / MiB).toFixed(1)} MiB`);
      assert.ok(await sameFiles(join(root, "seed", "long"), join(root, "ours", "long"), FILES));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
