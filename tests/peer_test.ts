import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import { PeerConnection, type PeerConnectionOptions, type PeerHandler } from "../src/peer.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { encodeMessage, type PeerMessage, WireError } from "../src/wire/messages.ts";
import { TARGETS } from "./_fuzz.ts";
import { pipePair, within } from "./_swarm.ts";

const INFO = new Uint8Array(20).fill(7);
const BLOCK = 16384;
const geometry = { pieceCount: 10, pieceLength: 2 * BLOCK, totalLength: 9 * 2 * BLOCK + 1000 };

function opts(id: number, extra: Partial<PeerConnectionOptions> = {}): PeerConnectionOptions {
  return { infoHash: INFO, peerId: new Uint8Array(20).fill(id), ...geometry, ...extra };
}

/** A PeerConnection facing a scripted raw peer that writes bytes we choose. */
async function withRawPeer(
  handler: Partial<PeerHandler>,
  script: (send: (m: PeerMessage | Uint8Array) => Promise<void>) => Promise<void>,
  options: Partial<PeerConnectionOptions> = {},
  remote: { fast?: boolean; extended?: boolean; infoHash?: Uint8Array } = { fast: true },
): Promise<{ reason: string; peer: PeerConnection }> {
  const { a, b } = pipePair();
  const closed = Promise.withResolvers<string>();
  const peer = new PeerConnection(a, opts(1, options), {
    onBlock() {},
    ...handler,
    onClose: (p, r) => {
      handler.onClose?.(p, r);
      closed.resolve(r);
    },
  });
  const writer = b.writable.getWriter();
  const reader = b.readable.getReader();
  const drain = (async () => {
    try {
      while (!(await reader.read()).done) { /* discard what the peer sends */ }
    } catch { /* cancelled */ }
  })();
  const send = (m: PeerMessage | Uint8Array) =>
    writer.write(m instanceof Uint8Array ? m : encodeMessage(m)).catch(() => {});
  const started = peer.start();
  await send(encodeHandshake({
    infoHash: remote.infoHash ?? INFO,
    peerId: new Uint8Array(20).fill(2),
    fast: remote.fast ?? false,
    extended: remote.extended ?? false,
  }));
  if (await started) await script(send);
  const reason = await within(5000, "the connection to close", closed.promise);
  await writer.close().catch(() => {});
  await reader.cancel().catch(() => {});
  await drain;
  await peer.done;
  return { reason, peer };
}

Deno.test("two PeerConnections handshake, trade a bitfield, unchoke and transfer a block", async () => {
  const { a, b } = pipePair();
  const data = Uint8Array.from({ length: BLOCK }, (_, i) => i & 0xff);
  const got = Promise.withResolvers<Uint8Array>();
  const seederHave = new Bitfield(geometry.pieceCount);
  seederHave.setAll();
  await using seeder = new PeerConnection(a, opts(1), {
    onReady: (p) => p.sendBitfield(seederHave),
    onInterested: (p) => p.unchoke(),
    onBlock() {},
    onRequest: (p, index, begin, length) => p.sendPiece(index, begin, data.subarray(0, length)),
  });
  await using leecher = new PeerConnection(b, opts(2), {
    onBitfield: (p) => {
      assert.equal(p.bitfield.full, true);
      p.interested();
    },
    onUnchoke: (p) => assert.equal(p.request(3, BLOCK, BLOCK), true),
    onBlock: (p, index, begin, block) => {
      assert.equal(index, 3);
      assert.equal(begin, BLOCK);
      assert.equal(p.outstanding, 0);
      got.resolve(block.slice());
    },
  });
  const [x, y] = await Promise.all([seeder.start(), leecher.start()]);
  assert.deepEqual([x, y], [true, true]);
  assert.equal(leecher.supportsFast, true);
  assert.equal(leecher.supportsExtended, true);
  assert.deepEqual(leecher.remotePeerId, new Uint8Array(20).fill(1));
  assert.deepEqual(await within(5000, "the block", got.promise), data);
  assert.equal(leecher.downloaded, BLOCK);
  assert.equal(seeder.uploaded, BLOCK);
});

Deno.test("the extension handshake is exchanged and reqq caps our queue depth", async () => {
  const { a, b } = pipePair();
  const got = Promise.withResolvers<void>();
  await using one = new PeerConnection(a, opts(1, { extensionHandshake: { v: "one", reqq: 7 } }), {
    onBlock() {},
  });
  await using two = new PeerConnection(b, opts(2, { queueDepth: 100 }), {
    onBlock() {},
    onExtended: (_p, id) => id === 0 && got.resolve(),
  });
  await Promise.all([one.start(), two.start()]);
  await within(5000, "the extension handshake", got.promise);
  assert.equal(two.remoteExtensions?.v, "one");
  assert.equal(two.queueDepth, 7);
});

Deno.test("a handshake for another torrent ends the connection", async () => {
  const { reason } = await withRawPeer({}, async () => {}, {}, { infoHash: new Uint8Array(20) });
  assert.match(reason, /info hash mismatch/);
});

Deno.test("a bad protocol string ends the connection", async () => {
  const { a, b } = pipePair();
  const closed = Promise.withResolvers<string>();
  const peer = new PeerConnection(a, opts(1), {
    onBlock() {},
    onClose: (_p, r) => closed.resolve(r),
  });
  const w = b.writable.getWriter();
  const r = b.readable.getReader();
  const started = peer.start();
  await w.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
  assert.equal(await started, false);
  assert.match(await closed.promise, /not a BitTorrent handshake/);
  await r.cancel();
  await w.close().catch(() => {});
  await peer.done;
});

const violations: [
  string,
  PeerMessage | Uint8Array,
  RegExp,
  { fast?: boolean; extended?: boolean }?,
][] = [
  ["a have index out of range", { type: "have", index: 10 }, /have for piece 10 of 10/],
  [
    "a bitfield of the wrong length",
    { type: "bitfield", bits: new Uint8Array(1) },
    /bitfield of 1 bytes/,
  ],
  [
    "a bitfield with spare bits set",
    { type: "bitfield", bits: new Uint8Array([0, 0x01]) },
    /spare bits/,
  ],
  [
    "a request over 16 KiB",
    { type: "request", index: 0, begin: 0, length: BLOCK + 1 },
    /request for 16385 bytes/,
  ],
  [
    "a request outside the piece",
    { type: "request", index: 9, begin: 0, length: 2000 },
    /outside the piece/,
  ],
  ["a request for a piece that does not exist", {
    type: "request",
    index: 10,
    begin: 0,
    length: 10,
  }, /piece 10 of 10/],
  [
    "a piece never requested",
    { type: "piece", index: 0, begin: 0, data: new Uint8Array(10) },
    /never requested/,
  ],
  ["a piece beyond its piece that would alias another block's key", {
    type: "piece",
    index: 0,
    begin: 2 ** 29,
    data: new Uint8Array(10),
  }, /outside the torrent/],
  [
    "a reject beyond its piece",
    { type: "reject", index: 1, begin: 2 ** 29, length: 1 },
    /outside the torrent/,
  ],
  ["a frame longer than the limit", new Uint8Array([0xff, 0xff, 0xff, 0xff]), /exceeds the limit/],
  ["a known message with the wrong length", new Uint8Array([0, 0, 0, 2, 1, 0]), /with a payload/],
  ["have all without the fast extension", { type: "haveall" }, /without the fast extension/, {
    fast: false,
  }],
  [
    "reject without the fast extension",
    { type: "reject", index: 0, begin: 0, length: 1 },
    /without the fast/,
    {
      fast: false,
    },
  ],
  ["an extended message without the extension protocol", {
    type: "extended",
    id: 0,
    payload: new Uint8Array(),
  }, /extension protocol/],
];

for (const [what, message, pattern, remote] of violations) {
  Deno.test(`${what} ends the connection with a reason`, async () => {
    const { reason, peer } = await withRawPeer(
      {},
      async (send) => {
        await send(message);
      },
      {},
      remote ?? { fast: true },
    );
    assert.match(reason, pattern);
    assert.match(reason, /violation|limit/);
    assert.equal(peer.closed, true);
  });
}

Deno.test("a choke without the fast extension drops our outstanding requests", async () => {
  const dropped = Promise.withResolvers<number>();
  const { reason } = await withRawPeer(
    {
      onUnchoke: (p) => {
        p.request(0, 0, BLOCK);
        p.request(0, BLOCK, BLOCK);
      },
      onRequestsDropped: (p, blocks) => {
        assert.equal(p.outstanding, 0);
        dropped.resolve(blocks.length);
        p.close("test done");
      },
    },
    async (send) => {
      await send({ type: "unchoke" });
      await send({ type: "choke" });
    },
    {},
    { fast: false },
  );
  assert.equal(await dropped.promise, 2);
  assert.equal(reason, "test done");
});

Deno.test("a fast-extension reject removes exactly that request", async () => {
  const rejected = Promise.withResolvers<[number, number]>();
  await withRawPeer({
    onUnchoke: (p) => {
      p.request(1, 0, BLOCK);
      p.request(1, BLOCK, BLOCK);
    },
    onReject: (p, index, begin) => {
      assert.equal(p.outstanding, 1);
      rejected.resolve([index, begin]);
      p.close("test done");
    },
  }, async (send) => {
    await send({ type: "unchoke" });
    await send({ type: "reject", index: 1, begin: BLOCK, length: BLOCK });
  });
  assert.deepEqual(await rejected.promise, [1, BLOCK]);
});

Deno.test("requests while choked are refused unless the piece is allowed fast", async () => {
  const results: boolean[] = [];
  await withRawPeer({
    onAllowedFast: (p, index) => {
      results.push(p.request(2, 0, BLOCK)); // not allowed
      results.push(p.request(index, 0, BLOCK)); // allowed
      p.close("test done");
    },
  }, async (send) => {
    await send({ type: "allowedfast", index: 4 });
  });
  assert.deepEqual(results, [false, true]);
});

Deno.test("a block that crosses our cancel is dropped silently", async () => {
  let blocks = 0;
  const { reason } = await withRawPeer({
    onUnchoke: (p) => {
      p.request(0, 0, BLOCK);
      p.cancel(0, 0, BLOCK);
      assert.equal(p.outstanding, 0);
    },
    onBlock: () => blocks++,
  }, async (send) => {
    await send({ type: "unchoke" });
    await send({ type: "piece", index: 0, begin: 0, data: new Uint8Array(BLOCK) });
    await send({ type: "piece", index: 0, begin: 0, data: new Uint8Array(BLOCK) });
  });
  // the first copy is forgiven, the second is a violation
  assert.equal(blocks, 0);
  assert.match(reason, /never requested/);
});

Deno.test("a block cancelled and asked again is owed two answers: either order is no violation (regression: streaming's withdrawn requests)", async () => {
  for (const answers of [["piece", "piece"], ["reject", "piece"], ["piece", "reject"]] as const) {
    const got: string[] = [];
    const { reason } = await withRawPeer({
      onUnchoke: (p) => {
        p.request(0, 0, BLOCK);
        p.cancel(0, 0, BLOCK);
        assert.equal(p.request(0, 0, BLOCK), true); // asked again at once
      },
      onBlock: (p) => {
        got.push("block");
        assert.equal(p.outstanding, 0);
      },
      onReject: () => got.push("reject"),
    }, async (send) => {
      await send({ type: "unchoke" });
      for (const a of answers) {
        await send(
          a === "piece"
            ? { type: "piece", index: 0, begin: 0, data: new Uint8Array(BLOCK) }
            : { type: "reject", index: 0, begin: 0, length: BLOCK },
        );
      }
      // a third answer is one too many
      await send({ type: "piece", index: 0, begin: 0, data: new Uint8Array(BLOCK) });
    });
    // the first piece answers the live request; the reject goes to the cancelled one
    assert.deepEqual(got, ["block"], answers.join(", "));
    assert.match(reason, /never requested/, answers.join(", "));
  }
});

Deno.test("the handshake times out when the peer says nothing", async () => {
  const { a, b } = pipePair();
  const closed = Promise.withResolvers<string>();
  const peer = new PeerConnection(a, opts(1, { handshakeTimeoutMs: 50 }), {
    onBlock() {},
    onClose: (_p, r) => closed.resolve(r),
  });
  const r = b.readable.getReader();
  assert.equal(await peer.start(), false);
  assert.equal(await closed.promise, "handshake timed out");
  await r.cancel();
  await b.writable.close().catch(() => {});
  await peer.done;
});

Deno.test("an aborted signal closes the connection", async () => {
  const { a, b } = pipePair();
  const ac = new AbortController();
  const closed = Promise.withResolvers<string>();
  const peer = new PeerConnection(a, opts(1, { signal: ac.signal }), {
    onBlock() {},
    onClose: (_p, r) => closed.resolve(r),
  });
  const r = b.readable.getReader();
  const started = peer.start();
  ac.abort();
  assert.equal(await started, false);
  assert.equal(await closed.promise, "aborted");
  await r.cancel();
  await b.writable.close().catch(() => {});
  await peer.done;
});

Deno.test("PeerConnections talk over real loopback sockets", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const clientConn = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const serverConn = await accepted;
  const have = Promise.withResolvers<number>();
  await using server = new PeerConnection(serverConn, opts(1), {
    onReady: (p) => p.have(5),
    onBlock() {},
  });
  await using client = new PeerConnection(clientConn, opts(2), {
    onHave: (_p, i) => have.resolve(i),
    onBlock() {},
  });
  await Promise.all([server.start(), client.start()]);
  assert.equal(await within(5000, "a have", have.promise), 5);
});

Deno.test("a late bitfield or have all only adds pieces, reported as haves (regression: aria2 sends them)", async () => {
  const haves: number[] = [];
  const { reason, peer } = await withRawPeer({
    onHave: (p, i) => {
      haves.push(i);
      if (haves.length === geometry.pieceCount) p.close("test done");
    },
  }, async (send) => {
    await send({ type: "havenone" });
    await send({ type: "have", index: 2 });
    await send({ type: "bitfield", bits: new Uint8Array([0b01100000, 0]) });
    await send({ type: "haveall" });
  });
  assert.equal(reason, "test done");
  assert.deepEqual(haves.slice(0, 2), [2, 1]);
  assert.equal(new Set(haves).size, geometry.pieceCount);
  assert.equal(peer.bitfield.full, true);
});

Deno.test("a block of another length than the one asked for is a violation", async () => {
  const { reason } = await withRawPeer({
    onUnchoke: (p) => p.request(0, 0, BLOCK),
  }, async (send) => {
    await send({ type: "unchoke" });
    await send({ type: "piece", index: 0, begin: 0, data: new Uint8Array(100) });
  });
  assert.match(reason, /has 100 bytes, we asked for 16384/);
});

Deno.test("a malformed frame found by the fuzzer's decoder closes a live PeerConnection with the same violation", async () => {
  // the fuzz target drives WireDecoder; PeerConnection reads through FrameDecoder, which wraps it: the same code
  const target = TARGETS.find((t) => t.name === "frame-decoder")!;
  const inputs = [
    new Uint8Array([0, 0, 0, 2, 1, 0]), // unchoke with a payload
    new Uint8Array([0, 0, 0, 4, 4, 0, 0, 0]), // have of the wrong length
    new Uint8Array([0, 0, 0, 1, 20]), // extended without an id
    new Uint8Array([0, 0, 0, 9, 6, 0, 0, 0, 0, 0, 0, 0, 0]), // request of the wrong length
  ];
  for (const input of inputs) {
    assert.throws(() => target.run(input), WireError);
    let message = "";
    try {
      target.run(input);
    } catch (err) {
      message = (err as Error).message;
    }
    const { reason } = await withRawPeer({}, async (send) => await send(input), {}, {
      fast: true,
      extended: true,
    });
    assert.equal(reason, `protocol violation: ${message}`);
  }
});

Deno.test("close() releases a connection whose socket write never completes (a peer that stopped reading)", async () => {
  // a stream whose writes wait until the stream is closed, as a uTP write waits for window space: the write
  // in progress fails only when the connection is closed, so the connection must be closed before the writer is
  // aborted (an abort waits for the write in progress)
  const pending: (() => void)[] = [];
  const writing = Promise.withResolvers<void>();
  let closes = 0;
  const stream = {
    readable: new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) }),
    writable: new WritableStream<Uint8Array>({
      write: () =>
        new Promise<void>((_, reject) => {
          pending.push(() => reject(new Error("closed")));
          writing.resolve();
        }),
    }),
    close() {
      closes++;
      for (const fail of pending.splice(0)) fail();
    },
  };
  const peer = new PeerConnection(stream, opts(1, { selfTimed: false }), { onBlock() {} });
  const started = peer.start();
  await within(5000, "the handshake's write to start", writing.promise); // and it never completes
  peer.close("test");
  await within(5000, "the connection's resources to be released", peer.done);
  assert.equal(closes, 1);
  assert.equal(await started, false);
});
