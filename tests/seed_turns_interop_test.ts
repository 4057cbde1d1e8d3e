// A Seedbed seed serving several libtorrent leechers at once: none of them waits for the others to finish.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Session } from "../src/session/session.ts";
import { needs, type Proc, startLibtorrent } from "./_lab.ts";
import { makeTorrent, nextEvent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const LEECHERS = 6;
const MiB = 1024 * 1024;
const FILES: SpecFile[] = [{ path: "video.bin", length: 24 * MiB }];

Deno.test({
  name:
    "a Seedbed seed serves six libtorrent leechers at once: when the first is done, each has a fifth",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-turns-" });
    const seedDir = join(root, "seed");
    const leechers: Proc[] = [];
    try {
      // private: no PEX, so each leecher has the seed alone and what it gets is what the seed gave it
      const { meta, bytes } = await makeTorrent(seedDir, "pack", FILES, {
        pieceLength: 256 * 1024,
        private: true,
      });
      const torrentPath = join(root, "pack.torrent");
      await Deno.writeFile(torrentPath, bytes);
      // an upload cap, as at home: 144 MiB to send at 24 MiB/s takes about 6 s, so every leecher is there
      // long before the first could be done, and the seed must share what it has
      await using seeder = await Session.open({
        host: "127.0.0.1",
        basedir: seedDir,
        limits: { upload: 24 * MiB },
      });
      // paused until every leecher is connected: libtorrent processes start one by one on a loaded machine,
      // and one that came a second early would have the seed to itself
      const torrent = await seeder.add({ metainfo: meta }, { resumeFile: false, state: "paused" });
      await torrent.ready;
      const dirs = Array.from({ length: LEECHERS }, (_, i) => join(root, `lt${i}`));
      const connected = nextEvent(torrent, "peer", () => torrent.peers.length === LEECHERS);
      leechers.push(
        ...await Promise.all(
          dirs.map((d) => startLibtorrent("leech", torrentPath, d, [`127.0.0.1:${seeder.port}`])),
        ),
      );
      await within(60_000, "every leecher to connect", connected);
      await torrent.start();
      // what the seed has sent each one, sampled (a leecher that is done hangs up: seed to seed)
      const sentTo = new Map<string, number>();
      const sample = () => {
        for (const p of torrent.peers) sentTo.set(p.address, p.uploaded);
      };
      const sampler = setInterval(sample, 50);
      const done = leechers.map((p) => p.line("done", 120_000));
      try {
        await within(120_000, "the first leecher to finish", Promise.race(done));
      } finally {
        clearInterval(sampler);
      }
      sample();
      // a leecher left without a slot would have next to nothing by then
      const sent = [...sentTo.values()].sort((a, b) => a - b);
      const shown = sent.map((b) => (b / MiB).toFixed(1)).join(", ");
      assert.equal(sent.length, LEECHERS, `connected: ${sent.length} (sent MiB: ${shown})`);
      assert.ok(
        sent[0] >= meta.length / 5,
        `when the first leecher was done, the seed had sent ${shown} MiB of ${meta.length / MiB}`,
      );
      await within(120_000, "every leecher to finish", Promise.all(done));
      for (const d of dirs) {
        assert.ok(await sameFiles(join(seedDir, "pack"), join(d, "pack"), FILES));
      }
    } finally {
      for (const p of leechers) await p.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
