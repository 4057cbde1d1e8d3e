// uTP against libtorrent with TCP switched off on its side, both directions, at the wire level: a raw
// PeerConnection over a UtpConnection fetches verified pieces from a libtorrent seed, and serves every piece to a
// libtorrent leecher that dials us. libtorrent's peer log must show each connection as uTP.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Bitfield } from "../src/bitfield.ts";
import { PeerConnection } from "../src/peer.ts";
import { type UtpConnection, UtpEndpoint } from "../src/transport/utp.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, within } from "./_swarm.ts";

const PIECE = 256 * 1024;
const SIZE = 6 * 1024 * 1024 + 4321; // 25 pieces, the last one short
const UTP_ONLY = {
  enable_outgoing_tcp: false,
  enable_incoming_tcp: false,
  enable_outgoing_utp: true,
  enable_incoming_utp: true,
};

async function fixture() {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-" });
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "blob", [{ path: "blob.bin", length: SIZE }], {
    pieceLength: PIECE,
  });
  const torrentPath = join(root, "blob.torrent");
  await Deno.writeFile(torrentPath, bytes);
  return { root, seedDir, meta, torrentPath, peerlog: join(root, "peers.jsonl") };
}

interface PeerLogLine {
  ip: string;
  port: number;
  client: string;
  utp: boolean;
  incoming: boolean;
  up: number;
  down: number;
}

async function peerLog(path: string): Promise<PeerLogLine[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

async function sha1(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", data));
}

Deno.test({
  name:
    "a PeerConnection over uTP fetches and verifies every piece from a uTP-only libtorrent seed",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath, peerlog } = await fixture();
    try {
      await using lt = await startLibtorrent("seed", torrentPath, seedDir, [], {
        env: { LT_SETTINGS: JSON.stringify(UTP_ONLY), LT_PEERLOG: peerlog },
      });
      await using utp = await UtpEndpoint.open({ host: "127.0.0.1" });
      const conn = await within(10_000, "the uTP connect", utp.connect("127.0.0.1", lt.port));
      const pieces = new Map<number, Uint8Array<ArrayBuffer>>();
      const fill = new Map<number, number>();
      const done = Promise.withResolvers<void>();
      const size = (i: number) => Math.min(PIECE, meta.length - i * PIECE);
      let next = 0;
      const requestMore = (p: PeerConnection) => {
        while (next < meta.pieceCount && p.outstanding + 16 <= p.queueDepth) {
          for (let b = 0; b < size(next); b += 16384) {
            p.request(next, b, Math.min(16384, size(next) - b));
          }
          next++;
        }
      };
      const peer = new PeerConnection(conn, {
        infoHash: meta.infoHash,
        peerId: new TextEncoder().encode("-SE0010-utpinterop01"),
        pieceCount: meta.pieceCount,
        pieceLength: meta.pieceLength,
        totalLength: meta.length,
        remoteAddress: conn.remoteAddress,
      }, {
        onBitfield: (p) => {
          assert.ok(p.bitfield.full);
          p.interested();
        },
        onUnchoke: (p) => requestMore(p),
        onBlock: (p, index, begin, data) => {
          const buf = pieces.get(index) ?? new Uint8Array(size(index));
          pieces.set(index, buf);
          buf.set(data, begin);
          const got = (fill.get(index) ?? 0) + data.length;
          fill.set(index, got);
          if (got === size(index) && fill.size === meta.pieceCount) {
            if ([...fill.values()].every((v, i) => v === size(i))) done.resolve();
          }
          requestMore(p);
        },
        onClose: (_p, reason) => done.reject(new Error(`closed: ${reason}`)),
      });
      try {
        assert.equal(await within(10_000, "the handshake", peer.start()), true);
        assert.match(peer.remoteExtensions?.v ?? "", /libtorrent/i);
        await within(60_000, "every piece", done.promise);
        for (let i = 0; i < meta.pieceCount; i++) {
          assert.deepEqual(
            await sha1(pieces.get(i)!),
            meta.pieces.subarray(i * 20, i * 20 + 20),
            `piece ${i}`,
          );
        }
        const s = conn.stats();
        assert.ok(s.bytesReceived >= meta.length);
        // libtorrent's own record: the connection to our UDP port is uTP, incoming on its side
        await within(
          10_000,
          "libtorrent's peer log",
          (async () => {
            for (;;) {
              const mine = (await peerLog(peerlog)).filter((l) => l.port === utp.port);
              if (mine.some((l) => l.up >= meta.length)) {
                assert.ok(mine.every((l) => l.utp === true), JSON.stringify(mine.at(-1)));
                assert.ok(mine.every((l) => l.incoming === true));
                return;
              }
              await new Promise((r) => setTimeout(r, 250)); // the driver appends every 0.25 s
            }
          })(),
        );
      } finally {
        await peer[Symbol.asyncDispose]();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a uTP-only libtorrent leecher dials our uTP endpoint and downloads every piece from a PeerConnection",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath, peerlog } = await fixture();
    try {
      const data = await Deno.readFile(join(seedDir, "blob", "blob.bin"));
      const all = new Bitfield(meta.pieceCount);
      all.setAll();
      const peers: PeerConnection[] = [];
      const serve = (conn: UtpConnection) => {
        const peer = new PeerConnection(conn, {
          infoHash: meta.infoHash,
          peerId: new TextEncoder().encode("-SE0010-utpinterop02"),
          pieceCount: meta.pieceCount,
          pieceLength: meta.pieceLength,
          totalLength: meta.length,
          remoteAddress: conn.remoteAddress,
        }, {
          onReady: (p) => p.sendBitfield(all),
          onInterested: (p) => p.unchoke(),
          onRequest: (p, index, begin, length) => {
            const at = index * PIECE + begin;
            p.sendPiece(index, begin, data.subarray(at, at + length));
          },
          onBlock: () => {},
        });
        peers.push(peer);
        void peer.start();
      };
      await using utp = await UtpEndpoint.open({ host: "127.0.0.1", onConnection: serve });
      const leechDir = join(root, "lt");
      try {
        await using lt = await startLibtorrent("leech", torrentPath, leechDir, [
          `127.0.0.1:${utp.port}`,
          // a raw PeerConnection speaks no MSE: libtorrent dials in plaintext (it would otherwise try RC4
          // first, get dropped, and redial in plaintext)
        ], {
          env: {
            LT_SETTINGS: JSON.stringify({ ...UTP_ONLY, out_enc_policy: 2 }),
            LT_PEERLOG: peerlog,
          },
        });
        await lt.line("done", 60_000);
        const got = await Deno.readFile(join(leechDir, "blob", "blob.bin"));
        assert.equal(got.length, data.length);
        assert.ok(got.every((b, i) => b === data[i]), "libtorrent's copy is byte-exact");
        assert.equal(peers.length, 1, "one incoming uTP connection");
        assert.ok(peers[0].uploaded >= meta.length);
        const mine = (await peerLog(peerlog)).filter((l) => l.port === utp.port);
        assert.ok(mine.length > 0, "libtorrent logged the connection");
        assert.ok(mine.every((l) => l.utp === true), JSON.stringify(mine.at(-1)));
        assert.ok(mine.every((l) => l.incoming === false), "libtorrent dialled out");
      } finally {
        for (const p of peers) await p[Symbol.asyncDispose]();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
