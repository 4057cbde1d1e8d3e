// Protocol encryption against libtorrent (python3-libtorrent), at the wire level: our MSE initiator and
// acceptor with raw PeerConnections, and libtorrent's own peer log (LT_PEERLOG) saying what each connection used.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Bitfield } from "../src/bitfield.ts";
import type { Metainfo } from "../src/metainfo.ts";
import { PeerConnection, type PeerConnectionOptions } from "../src/peer.ts";
import { clientFromPeerId, describePeerClient } from "../src/peer_id.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { WireError } from "../src/wire/messages.ts";
import { acceptConnection, initiateConnection } from "../src/wire/mse.ts";
import type { PeerStream } from "../src/wire/stream.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, payload, within } from "./_swarm.ts";

const LENGTH = 1024 * 1024 + 4321;
const PIECE = 256 * 1024;
const PEER_ID = new TextEncoder().encode("-SE0010-mseinterop01");

/** libtorrent settings: encryption forced in and out, RC4 only; or encryption off. */
const FORCED_RC4 = JSON.stringify({ out_enc_policy: 0, in_enc_policy: 0, allowed_enc_level: 2 });
const DISABLED = JSON.stringify({ out_enc_policy: 2, in_enc_policy: 2 });

interface PeerLogLine {
  ip: string;
  port: number;
  client: string;
  rc4: boolean;
  plaintext_encrypted: boolean;
  incoming: boolean;
  progress: number;
  up: number;
  down: number;
}

async function fixture() {
  const root = await Deno.makeTempDir({ prefix: "seedbed-mse-interop-" });
  const seedDir = join(root, "seed");
  // one file in a folder: the torrent's bytes are the file's, payload(LENGTH, 1)
  const { meta, bytes } = await makeTorrent(
    seedDir,
    "pack",
    [{ path: "blob.bin", length: LENGTH }],
    {
      pieceLength: PIECE,
    },
  );
  const torrentPath = join(root, "t.torrent");
  await Deno.writeFile(torrentPath, bytes);
  return { root, seedDir, meta, torrentPath, peerLog: join(root, "peers.jsonl") };
}

/**
 * The first line of libtorrent's peer log about the peer at `port` that satisfies `test`. libtorrent writes the
 * log every 0.25 s and tells nobody: polled every 100 ms, bounded.
 */
async function peerLogLine(
  path: string,
  port: number,
  ms: number,
  // by default a line once the BitTorrent handshake is through (earlier ones may show it still handshaking)
  test: (l: PeerLogLine) => boolean = (l) => l.client !== "",
): Promise<PeerLogLine> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await Deno.readTextFile(path).catch(() => "");
    for (const line of text.split("\n")) {
      if (!line) continue;
      const l = JSON.parse(line) as PeerLogLine;
      if (l.port === port && test(l)) return l;
    }
    if (Date.now() > deadline) {
      throw new Error(`no peer log line for port ${port} within ${ms} ms:\n${text.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function options(
  meta: Metainfo,
  extra: Partial<PeerConnectionOptions> = {},
): PeerConnectionOptions {
  return {
    infoHash: meta.infoHash,
    peerId: PEER_ID,
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    totalLength: meta.length,
    ...extra,
  };
}

/** Fetches every piece over `stream` with a raw PeerConnection and checks each against the torrent's hashes. */
async function fetchAll(stream: PeerStream, meta: Metainfo, handshakeSent: boolean) {
  const data = new Uint8Array(meta.length);
  let received = 0;
  const done = Promise.withResolvers<void>();
  const peer = new PeerConnection(stream, options(meta, { handshakeSent }), {
    onBitfield: (p) => {
      assert.ok(p.bitfield.full, "the seed has every piece");
      p.interested();
    },
    onUnchoke: (p) => {
      for (let i = 0; i < meta.pieceCount; i++) {
        const size = Math.min(PIECE, meta.length - i * PIECE);
        for (let o = 0; o < size; o += 16384) p.request(i, o, Math.min(16384, size - o));
      }
    },
    onBlock: (_p, index, begin, block) => {
      data.set(block, index * PIECE + begin);
      received += block.length;
      if (received === meta.length) done.resolve();
    },
    onClose: (_p, reason) => done.reject(new Error(`closed: ${reason}`)),
  });
  const ready = await within(15_000, "the BitTorrent handshake", peer.start());
  assert.ok(ready, `handshake failed: ${peer.closeReason}`);
  await within(30_000, "every piece", done.promise);
  for (let i = 0; i < meta.pieceCount; i++) {
    const piece = data.subarray(i * PIECE, Math.min(meta.length, (i + 1) * PIECE));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", piece));
    assert.deepEqual(digest, meta.pieces.subarray(i * 20, i * 20 + 20), `piece ${i}`);
  }
  return peer;
}

Deno.test({
  name:
    "we dial a libtorrent seed that forces RC4: MSE with the handshake in the IA, every piece verified",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath, peerLog } = await fixture();
    try {
      await using lt = await startLibtorrent("seed", torrentPath, seedDir, [], {
        env: { LT_SETTINGS: FORCED_RC4, LT_PEERLOG: peerLog },
      });
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: lt.port });
      const ourPort = conn.localAddr.port;
      const { stream, encryption } = await initiateConnection(conn, meta.infoHash, {
        initialPayload: encodeHandshake({
          infoHash: meta.infoHash,
          peerId: PEER_ID,
          fast: true,
          extended: true,
        }),
      });
      assert.equal(encryption, "rc4", "libtorrent with allowed_enc_level=rc4 selects RC4");
      const peer = await fetchAll(stream, meta, true);
      try {
        // who is on the other end, as it says it
        assert.match(clientFromPeerId(peer.remotePeerId!) ?? "", /^libtorrent 2\.\d+\.\d+$/);
        assert.match(
          describePeerClient(peer.remotePeerId, peer.remoteExtensions?.v),
          /^libtorrent\/2\./,
        );
        // and libtorrent says the connection was RC4
        const line = await peerLogLine(peerLog, ourPort, 10_000);
        assert.equal(line.rc4, true, JSON.stringify(line));
        assert.equal(line.incoming, true);
        // our peer id arrived (in the IA): libtorrent does not know "SE" and shows the code and digits
        assert.match(line.client, /^SE\b/);
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
    "we dial a libtorrent seed with default settings: MSE, plaintext payload (libtorrent says so)",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath, peerLog } = await fixture();
    try {
      await using lt = await startLibtorrent("seed", torrentPath, seedDir, [], {
        env: { LT_PEERLOG: peerLog },
      });
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: lt.port });
      const ourPort = conn.localAddr.port;
      const { stream, encryption } = await initiateConnection(conn, meta.infoHash, {
        initialPayload: encodeHandshake({
          infoHash: meta.infoHash,
          peerId: PEER_ID,
          fast: true,
          extended: true,
        }),
      });
      assert.equal(encryption, "plaintext-header");
      const peer = await fetchAll(stream, meta, true);
      try {
        const line = await peerLogLine(peerLog, ourPort, 10_000);
        assert.equal(line.rc4, false, JSON.stringify(line));
        assert.equal(line.plaintext_encrypted, true, JSON.stringify(line));
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
    "a libtorrent leecher that forces RC4 dials us: acceptConnection answers, a PeerConnection serves it all",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, meta, torrentPath, peerLog } = await fixture();
    const data = payload(LENGTH, 1); // what makeTorrent wrote
    try {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const ourPort = listener.addr.port;
      await using lt = await startLibtorrent("leech", torrentPath, join(root, "lt"), [
        `127.0.0.1:${ourPort}`,
      ], { env: { LT_SETTINGS: FORCED_RC4, LT_PEERLOG: peerLog } });
      const conn = await within(15_000, "libtorrent to dial us", listener.accept());
      const accepted = await acceptConnection(conn, [new Uint8Array(20), meta.infoHash]);
      assert.equal(accepted.encryption, "rc4", "libtorrent offers only RC4");
      assert.deepEqual(accepted.infoHash, meta.infoHash);
      // libtorrent fetches 1 MiB faster than it writes its log (and then drops us, both being seeds): its
      // requests wait until the log has shown our established connection
      let gate = true;
      const held: [number, number, number][] = [];
      const serve = (p: PeerConnection, index: number, begin: number, length: number) => {
        const at = index * PIECE + begin;
        p.sendPiece(index, begin, data.subarray(at, at + length));
      };
      const seeder = new PeerConnection(accepted.stream, options(meta), {
        onBlock: () => {},
        onReady: (p) => {
          const all = new Bitfield(meta.pieceCount);
          all.setAll();
          p.sendBitfield(all);
        },
        onInterested: (p) => p.unchoke(),
        onRequest: (p, index, begin, length) => {
          if (gate) held.push([index, begin, length]);
          else serve(p, index, begin, length);
        },
      });
      try {
        assert.ok(await within(15_000, "the handshake", seeder.start()), seeder.closeReason);
        assert.match(describePeerClient(seeder.remotePeerId), /^libtorrent 2\./);
        const line = await peerLogLine(peerLog, ourPort, 10_000);
        assert.equal(line.rc4, true, JSON.stringify(line));
        assert.equal(line.incoming, false);
        gate = false;
        for (const [index, begin, length] of held.splice(0)) serve(seeder, index, begin, length);
        await lt.line("done", 60_000); // libtorrent checked every piece
        assert.ok(seeder.uploaded >= LENGTH);
      } finally {
        await seeder[Symbol.asyncDispose]();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "libtorrent with encryption disabled: our MSE dial fails, the plain retry (prefer) fetches everything",
  ignore: needs("libtorrent"),
  async fn() {
    const { root, seedDir, meta, torrentPath, peerLog } = await fixture();
    try {
      await using lt = await startLibtorrent("seed", torrentPath, seedDir, [], {
        env: { LT_SETTINGS: DISABLED, LT_PEERLOG: peerLog },
      });
      // 1. MSE: libtorrent reads our public key as a broken BitTorrent handshake and hangs up
      const first = await Deno.connect({ hostname: "127.0.0.1", port: lt.port });
      const err = await initiateConnection(first, meta.infoHash, {
        initialPayload: encodeHandshake({ infoHash: meta.infoHash, peerId: PEER_ID, fast: true }),
        timeoutMs: 10_000,
      }).then(() => undefined, (e) => e);
      assert.ok(err instanceof WireError, String(err));
      assert.match(err.message, /connection closed during the encryption handshake/);
      // 2. the one plain retry
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: lt.port });
      const ourPort = conn.localAddr.port;
      const peer = await fetchAll(conn, meta, false);
      try {
        const line = await peerLogLine(peerLog, ourPort, 10_000);
        assert.equal(line.rc4, false);
        assert.equal(line.plaintext_encrypted, false);
      } finally {
        await peer[Symbol.asyncDispose]();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
