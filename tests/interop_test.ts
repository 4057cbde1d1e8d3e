// Seedbed against real clients on loopback: libtorrent (python3-libtorrent), aria2 and opentracker.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { PeerConnection } from "../src/peer.ts";
import { formatAddress, parseCompactPeers } from "../src/tracker/compact.ts";
import { needs, startAria2Leecher, startLibtorrent, startOpentracker } from "./_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const FILES: SpecFile[] = [
  { path: "movie.bin", length: 3 * 1024 * 1024 + 12345 },
  { path: "empty.txt", length: 0 },
  { path: "extras/readme.txt", length: 777 },
  { path: "extras/deep/data.bin", length: 1024 * 1024 - 1 },
];
const PIECE = 256 * 1024;

async function fixture(announce?: string) {
  const root = await Deno.makeTempDir({ prefix: "seedbed-interop-" });
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "pack", FILES, {
    pieceLength: PIECE,
    ...(announce ? { announce: [[announce]] } : {}),
  });
  const torrentPath = join(root, "pack.torrent");
  await Deno.writeFile(torrentPath, bytes);
  return { root, seedDir, meta, torrentPath };
}

Deno.test({
  name: "a PeerConnection handshakes with a libtorrent seeder and fetches a verified block",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath } = await fixture();
    try {
      await using lt = await startLibtorrent("seed", torrentPath, seedDir);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: lt.port });
      const got = Promise.withResolvers<Uint8Array<ArrayBuffer>>();
      const piece = new Uint8Array(PIECE);
      let received = 0, bitfieldFull: boolean | undefined;
      const indexes = new Set<number>();
      // callbacks only record: an assertion thrown inside one would not reach the test
      const peer = new PeerConnection(conn, {
        infoHash: meta.infoHash,
        peerId: new TextEncoder().encode("-SE0010-interoptest1"),
        pieceCount: meta.pieceCount,
        pieceLength: meta.pieceLength,
        totalLength: meta.length,
      }, {
        onBitfield: (p) => {
          bitfieldFull = p.bitfield.full;
          p.interested();
        },
        onUnchoke: (p) => {
          for (let begin = 0; begin < PIECE; begin += 16384) p.request(0, begin, 16384);
        },
        onBlock: (_p, index, begin, data) => {
          indexes.add(index);
          piece.set(data, begin);
          received += data.length;
          if (received === PIECE) got.resolve(piece);
        },
        onClose: (_p, reason) => got.reject(new Error(`closed: ${reason}`)),
      });
      try {
        assert.equal(await within(10_000, "the handshake", peer.start()), true);
        assert.ok(peer.supportsFast, "libtorrent speaks the fast extension");
        assert.ok(peer.supportsExtended, "libtorrent speaks the extension protocol");
        assert.match(peer.remoteExtensions?.v ?? "", /libtorrent/i);
        const data = await within(10_000, "piece 0", got.promise);
        assert.equal(bitfieldFull, true, "libtorrent seeds every piece");
        assert.deepEqual([...indexes], [0]);
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", data));
        assert.deepEqual(digest, meta.pieces.subarray(0, 20));
      } finally {
        await peer[Symbol.asyncDispose]();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "Seedbed downloads a multi-file torrent from libtorrent found only through opentracker",
  ignore: needs("libtorrent", "opentracker"),
  async fn() {
    const probe = await fixture();
    await Deno.remove(probe.root, { recursive: true });
    // the info hash does not depend on the announce URL, so whitelist first, then make the real torrent
    await using tracker = await startOpentracker([probe.meta.infoHash]);
    const { root, seedDir, meta, torrentPath } = await fixture(tracker.url);
    assert.deepEqual(meta.infoHash, probe.meta.infoHash);
    try {
      await using _lt = await startLibtorrent("seed", torrentPath, seedDir);
      await using client = await Client.open({
        path: torrentPath,
        basedir: join(root, "leech"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      // libtorrent announces on start; our first announce may come before it: ask again until it is listed
      await within(60_000, "the download through the tracker", client.done);
      assert.ok(await sameFiles(join(seedDir, "pack"), join(root, "leech", "pack"), FILES));
      assert.equal(client.trackers[0].failures, 0);
      assert.ok(client.trackers[0].complete >= 1);
      // opentracker lists every peer to itself too: why a session never dials its own address (that it does
      // not is client_test's "our own address … is never dialled": a connection to ourselves closes silently)
      const listed = parseCompactPeers(client.trackers[0].peers, 4).map(formatAddress);
      assert.ok(
        listed.includes(`127.0.0.1:${client.port}`),
        `the tracker listed ${listed.join(", ")}`,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "Seedbed downloads from libtorrent found only through opentracker over UDP (BEP 15)",
  ignore: needs("libtorrent", "opentracker"),
  async fn() {
    const probe = await fixture();
    await Deno.remove(probe.root, { recursive: true });
    await using tracker = await startOpentracker([probe.meta.infoHash]);
    const { root, seedDir, meta, torrentPath } = await fixture(tracker.udpUrl);
    assert.deepEqual(meta.announceList, [[tracker.udpUrl]]);
    try {
      await using _lt = await startLibtorrent("seed", torrentPath, seedDir);
      await using client = await Client.open({
        path: torrentPath,
        basedir: join(root, "leech"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      await within(60_000, "the download through the UDP tracker", client.done);
      assert.ok(await sameFiles(join(seedDir, "pack"), join(root, "leech", "pack"), FILES));
      // no peers given, no DHT, no LSD: libtorrent's address came from the UDP tracker
      const [udp] = client.trackers;
      assert.deepEqual(udp.urls, [tracker.udpUrl]);
      assert.equal(udp.failures, 0);
      assert.ok(udp.complete >= 1);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "aria2 downloads from a Seedbed seeder found through opentracker",
  ignore: needs("aria2", "opentracker"),
  async fn() {
    const probe = await fixture();
    await Deno.remove(probe.root, { recursive: true });
    await using tracker = await startOpentracker([probe.meta.infoHash]);
    const { root, seedDir, torrentPath } = await fixture(tracker.url);
    try {
      await using seeder = await Client.open({
        path: torrentPath,
        basedir: seedDir,
        host: "127.0.0.1",
        resumeFile: false,
      });
      assert.equal(seeder.seed, true);
      const leechDir = join(root, "aria2");
      await using aria2 = startAria2Leecher(torrentPath, leechDir);
      const code = await within(90_000, "aria2 to finish", aria2.exited);
      assert.equal(code, 0, aria2.stderr());
      assert.ok(await sameFiles(join(seedDir, "pack"), join(leechDir, "pack"), FILES));
      assert.ok(seeder.uploaded >= probe.meta.length);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "libtorrent downloads from a Seedbed seeder it is told to dial",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath } = await fixture();
    try {
      await using seeder = await Client.open({
        path: torrentPath,
        basedir: seedDir,
        host: "127.0.0.1",
        resumeFile: false,
      });
      const leechDir = join(root, "lt");
      await using lt = await startLibtorrent("leech", torrentPath, leechDir, [
        `127.0.0.1:${seeder.port}`,
      ]);
      await lt.line("done", 60_000);
      assert.ok(await sameFiles(join(seedDir, "pack"), join(leechDir, "pack"), FILES));
      assert.ok(seeder.uploaded >= meta.length);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
