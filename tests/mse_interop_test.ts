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
import { needs, spawn, startLibtorrent, waitBound, withFreshPorts } from "./_lab.ts";
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

// ---------------------------------------------------------------- Transmission, a second MSE implementation

/** transmission-daemon seeding `torrent` from `dir` with this encryption mode; its RPC to ask about peers. */
function startTransmission(root: string, torrent: Uint8Array, dir: string, encryption: number) {
  // it cannot bind port 0 and say which port it got: ports of its own, again with others when one is taken
  return withFreshPorts(
    2,
    ([port, rpcPort]) => transmissionOn(root, torrent, dir, encryption, port, rpcPort),
  );
}

async function transmissionOn(
  root: string,
  torrent: Uint8Array,
  dir: string,
  encryption: number,
  port: number,
  rpcPort: number,
) {
  const work = join(root, "tr");
  await Deno.remove(work, { recursive: true }).catch(() => {});
  await Deno.mkdir(work, { recursive: true });
  await Deno.writeTextFile(
    join(work, "settings.json"),
    JSON.stringify({
      "bind-address-ipv4": "127.0.0.1",
      "dht-enabled": false,
      "lpd-enabled": false,
      "pex-enabled": false,
      "utp-enabled": false,
      "port-forwarding-enabled": false,
      "peer-port": port,
      "peer-port-random-on-start": false,
      encryption,
      "download-dir": dir,
      "rpc-enabled": true,
      "rpc-bind-address": "127.0.0.1",
      "rpc-port": rpcPort,
      "rpc-authentication-required": false,
      "rpc-whitelist": "127.0.0.1",
      "rpc-host-whitelist-enabled": false,
      "start-added-torrents": true,
      "message-level": 1,
    }),
  );
  const p = spawn("transmission-daemon", ["-f", "-g", work, "--log-error"], port, {
    env: { TMPDIR: work },
  });
  let session = "";
  // deno-lint-ignore no-explicit-any
  const rpc = async (method: string, args: Record<string, unknown>): Promise<any> => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await fetch(`http://127.0.0.1:${rpcPort}/transmission/rpc`, {
        method: "POST",
        headers: { "X-Transmission-Session-Id": session },
        body: JSON.stringify({ method, arguments: args }),
      });
      if (res.status === 409) {
        session = res.headers.get("X-Transmission-Session-Id") ?? "";
        await res.body?.cancel();
        continue;
      }
      return (await res.json()).arguments;
    }
  };
  // the daemon and then the verified torrent have no event to wait for: polled through the RPC, bounded
  const poll = async (what: string, probe: () => Promise<boolean>) => {
    const deadline = Date.now() + 30_000;
    while (!(await probe().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`Transmission: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await waitBound(p.pid, [port, rpcPort]); // before any RPC: whoever holds the port would answer
    await poll("its RPC", async () => (await rpc("session-get", {})) !== undefined);
    const version = (await rpc("session-get", {})).version as string;
    await rpc("torrent-add", { metainfo: torrent.toBase64(), "download-dir": dir });
    await rpc("torrent-verify", {});
    await poll("it to seed", async () => {
      const t = (await rpc("torrent-get", { fields: ["percentDone", "status"] })).torrents[0];
      return t?.percentDone === 1 && t.status === 6;
    });
    return { port, rpc, version, [Symbol.asyncDispose]: () => p.stop() };
  } catch (err) {
    await p.stop();
    throw err;
  }
}

/** Opens a PeerConnection over `stream` and reports whether the BitTorrent handshake and a full bitfield came. */
async function handshakeAndBitfield(stream: PeerStream, meta: Metainfo, handshakeSent: boolean) {
  const bitfield = Promise.withResolvers<boolean>();
  const peer = new PeerConnection(stream, options(meta, { handshakeSent }), {
    onBlock: () => {},
    onBitfield: (p) => bitfield.resolve(p.bitfield.full),
    onClose: () => bitfield.resolve(false),
  });
  const ready = await within(15_000, "the BitTorrent handshake", peer.start());
  const full = ready && await within(15_000, "the bitfield", bitfield.promise);
  return { peer, ready, full };
}

Deno.test({
  name:
    "Transmission: IA + plaintext breaks it, the plain retry and MSE without IA work; required: RC4, it says so",
  ignore: needs("transmission"),
  async fn() {
    const { root, seedDir, meta } = await fixture();
    const torrent = await Deno.readFile(join(root, "t.torrent"));
    try {
      // encryption 0 = "prefer plaintext": it selects plaintext when offered
      await using tr = await startTransmission(root, torrent, seedDir, 0);
      const hs = encodeHandshake({ infoHash: meta.infoHash, peerId: PEER_ID, extended: true });
      {
        // Transmission 3.00 reads the IA (sent RC4-encrypted, as the spec says) after switching to plaintext,
        // so our handshake is garbage to it and it hangs up, before its reply reaches us
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tr.port });
        const outcome = await initiateConnection(conn, meta.infoHash, { initialPayload: hs }).then(
          async ({ stream }) => {
            const { peer, ready } = await handshakeAndBitfield(stream, meta, true);
            await peer[Symbol.asyncDispose]();
            return ready ? "worked" : `PeerConnection: ${peer.closeReason}`;
          },
          (err: Error) => `initiateConnection: ${err.message}`,
        );
        if (tr.version.startsWith("3.")) assert.notEqual(outcome, "worked");
      }
      {
        // the engine's one plain retry (policy prefer)
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tr.port });
        const { peer, ready, full } = await handshakeAndBitfield(conn, meta, false);
        await peer[Symbol.asyncDispose]();
        assert.ok(ready && full, "the plain retry");
      }
      {
        // MSE without the IA: plaintext is selected and our handshake follows in plaintext, which it reads
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tr.port });
        const { stream, encryption } = await initiateConnection(conn, meta.infoHash);
        assert.equal(encryption, "plaintext-header");
        const { peer, ready, full } = await handshakeAndBitfield(stream, meta, false);
        await peer[Symbol.asyncDispose]();
        assert.ok(ready && full, `MSE without IA: ${peer.closeReason}`);
      }
      // encryption required: it selects RC4, and the handshake in the IA is fine
      await tr.rpc("session-set", { encryption: "required" });
      {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tr.port });
        const { stream, encryption } = await initiateConnection(conn, meta.infoHash, {
          initialPayload: hs,
        });
        assert.equal(encryption, "rc4");
        const { peer, ready, full } = await handshakeAndBitfield(stream, meta, true);
        try {
          assert.ok(ready && full, `RC4: ${peer.closeReason}`);
          assert.match(describePeerClient(peer.remotePeerId), /^Transmission \d/);
          // and Transmission says the connection is encrypted (its peer list shows the port of the address's
          // first connection, not ours: the earlier connections are closed, so the one peer left is this one)
          type TrPeer = { clientName: string; isEncrypted: boolean };
          let peers: TrPeer[] = [];
          const deadline = Date.now() + 10_000;
          for (;;) {
            peers = (await tr.rpc("torrent-get", { fields: ["peers"] })).torrents[0].peers;
            if (peers.length === 1 || Date.now() > deadline) break;
            await new Promise((r) => setTimeout(r, 100)); // its peer list has no event to wait for
          }
          assert.equal(peers.length, 1, JSON.stringify(peers));
          assert.equal(peers[0].clientName, "-SE0010-");
          assert.equal(peers[0].isEncrypted, true);
        } finally {
          await peer[Symbol.asyncDispose]();
        }
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
