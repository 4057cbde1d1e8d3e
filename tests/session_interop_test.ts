// A Session against real clients: two torrents through one port, one seeded by libtorrent and one by aria2, found
// through opentracker (which then lists the session's one port for both); then the session seeds both and two
// libtorrent leechers, one per torrent, dial that port: each connection reaches the right torrent.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Session } from "../src/session/session.ts";
import { announce } from "../src/tracker/http.ts";
import { needs, spawn, startLibtorrent, startOpentracker } from "./_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const PIECE = 64 * 1024;
const A: SpecFile[] = [{ path: "a.bin", length: 2 * 1024 * 1024 + 321 }];
const B: SpecFile[] = [
  { path: "b1.bin", length: 1024 * 1024 },
  { path: "dir/b2.bin", length: 700 * 1024 + 5 },
];

/** The ports opentracker gives out for an info hash (asked as a fresh peer). */
async function trackerPorts(url: string, infoHash: Uint8Array): Promise<number[]> {
  const res = await announce(url, {
    infoHash,
    peerId: new TextEncoder().encode("-XX0000-probeprobe12"),
    port: 1,
    uploaded: 0,
    downloaded: 0,
    left: 1,
  });
  return res.peers.map((p) => p.port);
}

/**
 * A libtorrent leecher dialing `peer` until it has everything. libtorrent 2.0.8 now and then dies of SIGSEGV
 * (exit 139) while the whole suite loads the machine (seen once in a run of the suite): a crashed leecher is
 * started once more, into the same folder.
 */
async function libtorrentLeech(torrent: string, dir: string, peer: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    await using lt = await startLibtorrent("leech", torrent, dir, [peer]);
    try {
      await lt.line("done", 60_000);
      return;
    } catch (err) {
      if (attempt > 1 || !/exited \(139\)/.test(String(err))) throw err;
    }
  }
}

Deno.test({
  name:
    "a Session downloads from libtorrent and aria2 at once through one port, then routes a libtorrent leecher to each torrent",
  ignore: needs("libtorrent", "aria2", "opentracker"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-session-interop-" });
    try {
      const seedDir = join(root, "seed");
      const plain = await makeTorrent(seedDir, "ta", A, { pieceLength: PIECE });
      const other = await makeTorrent(seedDir, "tb", B, { pieceLength: PIECE });
      await using tracker = await startOpentracker([plain.meta.infoHash, other.meta.infoHash]);
      const a = await makeTorrent(seedDir, "ta", A, {
        pieceLength: PIECE,
        announce: [[tracker.url]],
      });
      const b = await makeTorrent(seedDir, "tb", B, {
        pieceLength: PIECE,
        announce: [[tracker.url]],
      });
      const ta = join(root, "a.torrent"), tb = join(root, "b.torrent");
      await Deno.writeFile(ta, a.bytes);
      await Deno.writeFile(tb, b.bytes);
      await using lt = await startLibtorrent("seed", ta, seedDir);
      await using aria = spawn("aria2c", [
        `--dir=${seedDir}`,
        "--seed-ratio=0.0",
        "--check-integrity=true",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--listen-port=42000-48999",
        "--bt-external-ip=127.0.0.1",
        "--console-log-level=warn",
        "--summary-interval=0",
        tb,
      ], 0);
      await using session = await Session.open({
        host: "127.0.0.1",
        basedir: join(root, "leech"),
        stateDir: join(root, "state"),
      });
      const la = await session.add(ta);
      const lb = await session.add(tb);
      await within(90_000, "both downloads", Promise.all([la.done, lb.done]));
      assert.ok(
        await sameFiles(seedDir, join(root, "leech"), [
          ...A.map((f) => ({ ...f, path: `ta/${f.path}` })),
          ...B.map((f) => ({ ...f, path: `tb/${f.path}` })),
        ]),
      );
      assert.ok(
        la.peers.some((p) => p.peerId && /^-LT/.test(new TextDecoder().decode(p.peerId))) ||
          la.downloaded > 0,
      );
      assert.ok(lb.downloaded > 0);
      // the tracker lists the session's one port for both torrents
      assert.ok((await trackerPorts(tracker.url, a.meta.infoHash)).includes(session.port));
      assert.ok((await trackerPorts(tracker.url, b.meta.infoHash)).includes(session.port));
      await lt.stop();
      await aria.stop();
      // now the session seeds both: a libtorrent leecher per torrent dials its port
      const incoming = { a: 0, b: 0 };
      la.addEventListener("peer", (e) => e.detail.incoming && incoming.a++);
      lb.addEventListener("peer", (e) => e.detail.incoming && incoming.b++);
      const peer = `127.0.0.1:${session.port}`;
      await within(
        90_000,
        "libtorrent's downloads from the session",
        Promise.all([
          libtorrentLeech(ta, join(root, "ltA"), peer),
          libtorrentLeech(tb, join(root, "ltB"), peer),
        ]),
      );
      assert.ok(
        await sameFiles(seedDir, join(root, "ltA"), A.map((f) => ({ ...f, path: `ta/${f.path}` }))),
      );
      assert.ok(
        await sameFiles(seedDir, join(root, "ltB"), B.map((f) => ({ ...f, path: `tb/${f.path}` }))),
      );
      assert.ok(
        incoming.a > 0 && incoming.b > 0,
        `incoming connections ${JSON.stringify(incoming)}`,
      );
      assert.ok(la.uploaded >= a.meta.length && lb.uploaded >= b.meta.length);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
