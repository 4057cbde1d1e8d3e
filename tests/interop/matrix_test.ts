// The interop matrix: Seedbed against real clients on loopback, both directions, with opentracker and without a
// tracker, plus a mixed swarm. Every transfer is compared byte for byte. Run: deno task test:interop
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../../src/client.ts";
import { scrape } from "../../src/tracker/http.ts";
import { REQUIRE_PEERS, startOpentracker } from "../_lab.ts";
import { makeTorrent, sameFiles as sameAll, type SpecFile, within } from "../_swarm.ts";
import { available, type ClientName, startClient } from "./_clients.ts";

const FILES: SpecFile[] = [
  { path: "video.bin", length: 2 * 1024 * 1024 + 4321 },
  { path: "empty.txt", length: 0 },
  { path: "docs/readme.txt", length: 999 },
  { path: "docs/deep/data.bin", length: 1024 * 1024 + 17 },
];
const PIECE = 64 * 1024; // file boundaries fall inside pieces

/** Same bytes in every file; an empty file a client chose not to create (Transmission) counts as empty. */
async function sameFiles(a: string, b: string, files: SpecFile[]): Promise<boolean> {
  const present: SpecFile[] = [];
  for (const f of files) {
    if (f.length === 0 && !(await Deno.stat(join(b, f.path)).catch(() => undefined))) continue;
    present.push(f);
  }
  return await sameAll(a, b, present);
}

function skip(...names: ClientName[]): boolean {
  const missing = names.filter((n) => !available[n]);
  if (missing.length === 0 || REQUIRE_PEERS) return false;
  console.warn(
    `skipping: ${
      missing.join(", ")
    } not installed (CI sets SEEDBED_REQUIRE_PEERS=1 and fails instead)`,
  );
  return true;
}

/** A scratch dir with the payload and its torrent (announcing to `tracker` when given). */
async function scratch(withTracker: boolean) {
  const root = await Deno.makeTempDir({ prefix: "seedbed-matrix-" });
  const probe = await makeTorrent(join(root, "probe"), "pack", FILES, { pieceLength: PIECE });
  const tracker = withTracker ? await startOpentracker([probe.meta.infoHash]) : undefined;
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "pack", FILES, {
    pieceLength: PIECE,
    ...(tracker ? { announce: [[tracker.url]] } : {}),
  });
  const torrent = join(root, "pack.torrent");
  await Deno.writeFile(torrent, bytes);
  return {
    root,
    seedDir,
    meta,
    torrent,
    /** Resolves once the tracker lists a complete peer (the seeder announced), as the lab's swarm.sh waits. */
    async seederListed(): Promise<void> {
      if (!tracker) return;
      const deadline = Date.now() + 60_000;
      while (
        (await scrape(tracker.url, [meta.infoHash]).catch(() => undefined))?.get(meta.infoHashHex)
          ?.complete !== 1
      ) {
        if (Date.now() > deadline) throw new Error("the seeder never announced to the tracker");
        await new Promise((r) => setTimeout(r, 200)); // polling the tracker: no event to wait for
      }
    },
    async [Symbol.asyncDispose]() {
      await tracker?.stop();
      await Deno.remove(root, { recursive: true });
    },
  };
}

const SEEDERS: ClientName[] = ["libtorrent", "qbittorrent", "aria2", "webtorrent", "transmission"];
const LEECHERS: ClientName[] = ["libtorrent", "aria2", "webtorrent", "transmission"];

for (const seeder of SEEDERS) {
  for (const mode of ["tracker", "direct"] as const) {
    Deno.test({
      name: `Seedbed leeches from ${seeder} (${
        mode === "tracker" ? "through opentracker" : "no tracker"
      })`,
      ignore: skip(seeder),
      async fn() {
        await using s = await scratch(mode === "tracker");
        await using peer = await startClient(seeder, "seed", s.torrent, s.seedDir);
        await s.seederListed();
        await using leecher = await Client.open({
          path: s.torrent,
          basedir: join(s.root, "seedbed"),
          host: "127.0.0.1",
          resumeFile: false,
          ...(mode === "direct"
            ? { peers: [{ host: "127.0.0.1", port: peer.port }], trackers: false }
            : {}),
        });
        await within(90_000, `the download from ${seeder}`, leecher.done);
        assert.ok(await sameFiles(join(s.seedDir, "pack"), join(s.root, "seedbed", "pack"), FILES));
      },
    });
  }
}

for (const leecher of LEECHERS) {
  for (const mode of ["tracker", "direct"] as const) {
    // aria2 cannot be handed a peer and Transmission never dials loopback peers: Seedbed dials them instead
    const weDial = leecher === "aria2" || leecher === "transmission";
    Deno.test({
      name: `${leecher} leeches from Seedbed (${
        mode === "tracker" ? "through opentracker" : weDial ? "Seedbed dials it" : "no tracker"
      })`,
      ignore: skip(leecher),
      async fn() {
        await using s = await scratch(mode === "tracker");
        await using seeder = await Client.open({
          path: s.torrent,
          basedir: s.seedDir,
          host: "127.0.0.1",
          resumeFile: false,
          ...(mode === "direct" ? { trackers: false } : {}),
        });
        assert.ok(seeder.seed);
        const dir = join(s.root, leecher);
        const peers = mode === "direct" && !weDial ? [`127.0.0.1:${seeder.port}`] : [];
        await using peer = await startClient(leecher, "leech", s.torrent, dir, peers);
        if (mode === "direct" && weDial || leecher === "transmission") {
          seeder.addPeer("127.0.0.1", peer.port);
        }
        await peer.done(90_000);
        assert.ok(await sameFiles(join(s.seedDir, "pack"), join(dir, "pack"), FILES));
        assert.ok(seeder.uploaded >= s.meta.length);
      },
    });
  }
}

Deno.test({
  name:
    "a mixed swarm: Seedbed, libtorrent and aria2 leech together from one libtorrent seed through opentracker",
  ignore: skip("libtorrent", "aria2"),
  async fn() {
    await using s = await scratch(true);
    await using _seed = await startClient("libtorrent", "seed", s.torrent, s.seedDir);
    await s.seederListed();
    await using ours = await Client.open({
      path: s.torrent,
      basedir: join(s.root, "seedbed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    await using lt = await startClient("libtorrent", "leech", s.torrent, join(s.root, "lt"));
    await using aria = await startClient("aria2", "leech", s.torrent, join(s.root, "aria2"));
    await Promise.all([within(90_000, "Seedbed", ours.done), lt.done(90_000), aria.done(90_000)]);
    for (const d of ["seedbed", "lt", "aria2"]) {
      assert.ok(await sameFiles(join(s.seedDir, "pack"), join(s.root, d, "pack"), FILES), d);
    }
  },
});
