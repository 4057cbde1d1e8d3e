// BitTorrent v2 (BEP 52) and hybrid torrents against libtorrent, as far as the engine goes today: Seedbed makes the
// torrent, verifies its data with merkle trees (Storage.hashcheck) and seeds it; libtorrent checks every piece it
// downloads against the v2 hashes. (Downloading v2 pieces waits for the engine wiring: see the v2 report.)
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { payload, within } from "./_swarm.ts";

const FILES: [string, number][] = [
  ["pack/movie.bin", 3 * 1024 * 1024 + 12345],
  ["pack/empty.txt", 0],
  ["pack/extras/readme.txt", 777],
  ["pack/extras/deep/data.bin", 1024 * 1024 - 1],
];

for (const version of [2, "hybrid"] as const) {
  Deno.test({
    name: `libtorrent downloads a ${
      version === 2 ? "v2-only" : "hybrid"
    } torrent made and seeded by Seedbed`,
    ignore: needs("libtorrent"),
    async fn() {
      const root = await Deno.makeTempDir({ prefix: "seedbed-interop-v2-" });
      try {
        const seedDir = join(root, "seed");
        for (const [path, length] of FILES) {
          await Deno.mkdir(join(seedDir, path, ".."), { recursive: true });
          await Deno.writeFile(join(seedDir, path), payload(length, length + 1));
        }
        const bytes = await createTorrent(join(seedDir, "pack"), { version, pieceLength: 262144 });
        const meta = await parseMetainfo(bytes);
        assert.equal(meta.version, version);
        const torrentPath = join(root, "pack.torrent");
        await Deno.writeFile(torrentPath, bytes);
        await using seeder = await Client.open({
          metainfo: meta,
          basedir: seedDir,
          host: "127.0.0.1",
          resumeFile: false,
        });
        assert.equal(seeder.seed, true, "the merkle hashcheck found every piece");
        const leechDir = join(root, "lt");
        await using lt = await startLibtorrent("leech", torrentPath, leechDir, [
          `127.0.0.1:${seeder.port}`,
        ]);
        await within(60_000, "libtorrent's download", lt.line("done", 60_000));
        for (const [path] of FILES) {
          assert.deepEqual(
            await Deno.readFile(join(leechDir, path)),
            await Deno.readFile(join(seedDir, path)),
            path,
          );
        }
        const real = meta.files.filter((f) => !f.padding).reduce((n, f) => n + f.length, 0);
        assert.ok(seeder.uploaded >= real, `uploaded ${seeder.uploaded} of ${real}`);
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}
