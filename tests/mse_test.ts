import assert from "node:assert/strict";
import { concat, fromHex, toHex, utf8 } from "../src/_bytes.ts";
import { Bitfield } from "../src/bitfield.ts";
import { PeerConnection } from "../src/peer.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { WireError } from "../src/wire/messages.ts";
import {
  acceptConnection,
  type AcceptOptions,
  type EncryptedConnection,
  initiateConnection,
  type InitiateOptions,
  Rc4,
} from "../src/wire/mse.ts";
import type { PeerStream } from "../src/wire/stream.ts";
import { payload, socketPair, type SocketPairOptions, type TestSocket, within } from "./_swarm.ts";

// ---------------------------------------------------------------- an independent MSE written from the spec
// (to check our two roles against something that is not themselves; libtorrent does the same in
// mse_interop_test.ts)

const P = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
);
const modPow = (b: bigint, e: bigint, m: bigint) => {
  let r = 1n;
  for (b %= m; e > 0n; e >>= 1n, b = b * b % m) if (e & 1n) r = r * b % m;
  return r;
};
const big = (x: Uint8Array) => BigInt("0x" + toHex(x));
const bytes96 = (n: bigint) => fromHex(n.toString(16).padStart(192, "0"))!;
const sha1 = async (...p: Uint8Array[]) =>
  new Uint8Array(await crypto.subtle.digest("SHA-1", concat(p)));

/** Reads a stream into a buffer on demand (test side). */
class Bytes {
  buf = new Uint8Array(0);
  constructor(readonly r: ReadableStreamDefaultReader<Uint8Array>) {}
  async need(n: number) {
    while (this.buf.length < n) {
      const { value, done } = await this.r.read();
      if (done) throw new Error("closed");
      this.buf = concat([this.buf, value]);
    }
  }
  take(n: number) {
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/** Spec initiator: sends Ya + PadA, then req1, req2^req3 and the encrypted VC/provide/PadC/IA. */
async function specInitiate(
  side: PeerStream,
  infoHash: Uint8Array,
  provide: number,
  ia: Uint8Array,
) {
  const w = side.writable.getWriter(), input = new Bytes(side.readable.getReader());
  const xa = big(crypto.getRandomValues(new Uint8Array(20)));
  w.write(concat([bytes96(modPow(2n, xa, P)), new Uint8Array(33).fill(7)])).catch(() => {});
  await input.need(96);
  const s = bytes96(modPow(big(input.take(96)), xa, P));
  const enc = new Rc4(await sha1(utf8("keyA"), s, infoHash));
  const keyB = await sha1(utf8("keyB"), s, infoHash);
  const req2 = await sha1(utf8("req2"), infoHash), req3 = await sha1(utf8("req3"), s);
  const head = new Uint8Array(8 + 4 + 2 + 5 + 2);
  head[11] = provide;
  head[13] = 5; // PadC of 5 bytes
  head[19] = ia.length >> 8;
  head[20] = ia.length & 0xff;
  const secret = concat([head, ia]);
  enc.process(secret);
  w.write(concat([await sha1(utf8("req1"), s), req2.map((b, i) => b ^ req3[i]), secret])).catch(
    () => {},
  );
  // find ENCRYPT(VC) after PadB
  const vc = new Uint8Array(8);
  new Rc4(keyB).process(vc);
  const dec = new Rc4(keyB);
  for (;;) {
    await input.need(8);
    if (vc.every((v, k) => input.buf[k] === v)) break;
    input.take(1);
  }
  await input.need(14);
  const reply = input.take(14);
  dec.process(reply);
  const padD = (reply[12] << 8) | reply[13];
  await input.need(padD);
  dec.process(input.take(padD));
  return { w, input, enc, dec, select: reply[11] };
}

/** Spec responder: answers Ya with Yb, finds req1, checks VC and selects `choose(provide)`. */
async function specRespond(side: PeerStream, infoHash: Uint8Array, choose: (p: number) => number) {
  const w = side.writable.getWriter(), input = new Bytes(side.readable.getReader());
  await input.need(96);
  const xb = big(crypto.getRandomValues(new Uint8Array(20)));
  const s = bytes96(modPow(big(input.take(96)), xb, P));
  w.write(concat([bytes96(modPow(2n, xb, P)), new Uint8Array(17).fill(3)])).catch(() => {});
  const req1 = await sha1(utf8("req1"), s);
  for (;;) {
    await input.need(20);
    if (req1.every((v, k) => input.buf[k] === v)) break;
    input.take(1);
  }
  input.take(40); // req1, req2 ^ req3 (one torrent: not checked here)
  const dec = new Rc4(await sha1(utf8("keyA"), s, infoHash));
  const enc = new Rc4(await sha1(utf8("keyB"), s, infoHash));
  await input.need(14);
  const head = input.take(14);
  dec.process(head);
  assert.deepEqual([...head.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
  const padC = (head[12] << 8) | head[13];
  await input.need(padC + 2);
  const t = input.take(padC + 2);
  dec.process(t);
  const iaLength = (t[padC] << 8) | t[padC + 1];
  await input.need(iaLength);
  const ia = input.take(iaLength);
  dec.process(ia);
  const reply = new Uint8Array(14);
  reply[11] = choose((head[8] << 24) | (head[9] << 16) | (head[10] << 8) | head[11]);
  enc.process(reply);
  w.write(reply).catch(() => {});
  return { w, input, enc, dec, ia };
}

// ---------------------------------------------------------------- helpers

const INFO = new Uint8Array(20).fill(9);
const OTHER = new Uint8Array(20).fill(4);
const handshake = (id: number) =>
  encodeHandshake({ infoHash: INFO, peerId: new Uint8Array(20).fill(id), fast: true });

/** Reads exactly n bytes from a stream (BYOB when it is a byte stream, to exercise that path). */
async function readExactly(stream: ReadableStream<Uint8Array>, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  try {
    const byob = stream.getReader({ mode: "byob" });
    try {
      while (got < n) {
        const r = await byob.read(new Uint8Array(n - got));
        if (r.done) throw new Error(`closed after ${got} of ${n} bytes`);
        out.set(r.value, got);
        got += r.value.length;
      }
    } finally {
      byob.releaseLock();
    }
    return out;
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
  }
  const reader = stream.getReader();
  let rest: Uint8Array | undefined;
  try {
    while (got < n) {
      const r = await reader.read();
      if (r.done) throw new Error(`closed after ${got} of ${n} bytes`);
      const take = Math.min(n - got, r.value.length);
      out.set(r.value.subarray(0, take), got);
      got += take;
      if (take < r.value.length) rest = r.value.subarray(take);
    }
  } finally {
    reader.releaseLock();
  }
  assert.equal(rest, undefined, "read past the expected bytes");
  return out;
}

/** Writes one chunk (and lets go of the writer). */
async function send(stream: WritableStream<Uint8Array>, bytes: Uint8Array) {
  const w = stream.getWriter();
  try {
    await w.write(bytes);
  } finally {
    w.releaseLock();
  }
}

/** Runs our initiator against our acceptor over a socket pair. */
async function pair(
  initiate: InitiateOptions,
  accept: AcceptOptions,
  sockets: SocketPairOptions = {},
): Promise<
  { ours: EncryptedConnection; theirs: EncryptedConnection; a: TestSocket; b: TestSocket }
> {
  const { a, b } = socketPair(sockets);
  const [ours, theirs] = await Promise.all([
    initiateConnection(a, INFO, initiate),
    acceptConnection(b, [OTHER, INFO], accept),
  ]);
  return { ours, theirs, a, b };
}

/** Sends data both ways over two negotiated streams and checks it arrives intact. */
async function exchange(x: PeerStream, y: PeerStream, length = 100_000) {
  const xy = payload(length, 3), yx = payload(length / 2, 4);
  const sentXy = xy.slice(), sentYx = yx.slice();
  const [gotXy, gotYx] = await Promise.all([
    readExactly(y.readable, length),
    readExactly(x.readable, length / 2),
    send(x.writable, xy),
    send(y.writable, yx),
  ]);
  assert.deepEqual(gotXy, sentXy);
  assert.deepEqual(gotYx, sentYx);
  // the writers' buffers are untouched (never encrypted in place)
  assert.deepEqual(xy, sentXy);
  assert.deepEqual(yx, sentYx);
}

async function closeAll(...streams: PeerStream[]) {
  for (const s of streams) {
    await s.readable.cancel().catch(() => {});
    await s.writable.abort().catch(() => {});
    s.close?.();
  }
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof WireError, `expected a WireError, got ${err}`);
    return err.message;
  }
  assert.fail("expected a failure");
}

// ---------------------------------------------------------------- RC4

Deno.test("Rc4 drops the first 1024 bytes of keystream (RFC 6229 vector at offset 1024)", () => {
  const out = new Uint8Array(16);
  new Rc4(fromHex("0102030405")!).process(out);
  assert.equal(toHex(out), "30abbcc7c20b01609f23ee2d5f6bb7df");
});

Deno.test("Rc4 into another buffer leaves the input alone and equals in-place processing", () => {
  const key = new Uint8Array(20).fill(5);
  const data = payload(5000, 7), copy = data.slice(), out = new Uint8Array(5000);
  new Rc4(key).process(data, out);
  assert.deepEqual(data, copy);
  new Rc4(key).process(copy);
  assert.deepEqual(out, copy);
});

Deno.test("Rc4 matches a bytewise RC4 for any chunking and any alignment of input and output", () => {
  // the textbook algorithm, one byte at a time
  const key = payload(20, 9);
  const ref = new Uint8Array(256).map((_, i) => i);
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + ref[i] + key[i % 20]) & 0xff;
    [ref[i], ref[j]] = [ref[j], ref[i]];
  }
  let ri = 0, rj = 0;
  const stream = (n: number) =>
    Uint8Array.from({ length: n }, () => {
      ri = (ri + 1) & 0xff;
      rj = (rj + ref[ri]) & 0xff;
      [ref[ri], ref[rj]] = [ref[rj], ref[ri]];
      return ref[(ref[ri] + ref[rj]) & 0xff];
    });
  stream(1024);
  const rc4 = new Rc4(key);
  const data = payload(40_000, 5), backing = new Uint8Array(40_010);
  let at = 0;
  for (
    const [n, sameAlignment] of [[3, 0], [100, 1], [1000, 0], [7, 1], [5000, 1], [64, 1], [
      33_826,
      0,
    ]]
  ) {
    const src = data.subarray(at, at + n);
    // output aligned like the input (the 32-bit path, after a bytewise head) or not (bytewise)
    const shift = sameAlignment ? 4 + (at & 3) : (at + 1) & 3;
    const dst = backing.subarray(shift, shift + n);
    rc4.process(src, dst);
    const want = stream(n).map((k, i) => k ^ src[i]);
    assert.deepEqual(dst, want, `chunk at ${at}`);
    at += n;
  }
  // in place too
  const inPlace = data.slice(1, 5001);
  const want = stream(5000).map((k, i) => k ^ inPlace[i]);
  rc4.process(inPlace);
  assert.deepEqual(inPlace, want);
});

// ---------------------------------------------------------------- our initiator ↔ our acceptor

const COMBINATIONS: {
  name: string;
  initiate: InitiateOptions;
  accept: AcceptOptions;
  expect: "rc4" | "plaintext-header";
}[] = [
  { name: "both offer plaintext: plaintext", initiate: {}, accept: {}, expect: "plaintext-header" },
  { name: "initiator rc4Only", initiate: { rc4Only: true }, accept: {}, expect: "rc4" },
  { name: "acceptor rc4Only", initiate: {}, accept: { rc4Only: true }, expect: "rc4" },
  {
    name: "both rc4Only, acceptor requires MSE",
    initiate: { rc4Only: true },
    accept: { rc4Only: true, policy: "require" },
    expect: "rc4",
  },
  {
    name: "acceptor policy allow",
    initiate: {},
    accept: { policy: "allow" },
    expect: "plaintext-header",
  },
];

for (const byob of [true, false]) {
  for (const c of COMBINATIONS) {
    Deno.test(`MSE ${c.name} (${byob ? "byte" : "default"} streams): IA, then data both ways`, async () => {
      const hs = handshake(1);
      const { ours, theirs, a, b } = await pair({ ...c.initiate, initialPayload: hs }, c.accept, {
        byob,
      });
      try {
        assert.equal(ours.encryption, c.expect);
        assert.equal(theirs.encryption, c.expect);
        assert.deepEqual(theirs.infoHash, INFO);
        assert.deepEqual(ours.infoHash, INFO);
        // the readable is a byte stream when the connection's is, and always with RC4 (it decrypts into the
        // reader's buffer)
        assert.equal(
          (() => {
            try {
              theirs.stream.readable.getReader({ mode: "byob" }).releaseLock();
              return true;
            } catch {
              return false;
            }
          })(),
          byob || c.expect === "rc4",
        );
        // the acceptor reads our BitTorrent handshake from the initial payload, decrypted
        assert.deepEqual(await readExactly(theirs.stream.readable, 68), hs);
        await exchange(ours.stream, theirs.stream);
      } finally {
        await closeAll(ours.stream, theirs.stream);
        a.close();
        b.close();
      }
    });
  }
}

Deno.test("MSE without an initial payload: the handshake follows in the negotiated stream", async () => {
  const { ours, theirs } = await pair({ rc4Only: true }, {});
  try {
    const hs = handshake(2);
    await Promise.all([send(ours.stream.writable, hs), send(theirs.stream.writable, hs)]);
    assert.deepEqual(await readExactly(theirs.stream.readable, 68), hs);
    assert.deepEqual(await readExactly(ours.stream.readable, 68), hs);
  } finally {
    await closeAll(ours.stream, theirs.stream);
  }
});

Deno.test("the acceptor names the torrent among many by req2 ⊕ req3", async () => {
  const many = Array.from({ length: 50 }, (_, i) => new Uint8Array(20).fill(100 + i));
  many.push(INFO);
  const { a, b } = socketPair();
  const [ours, theirs] = await Promise.all([
    initiateConnection(a, INFO),
    acceptConnection(b, new Set(many).values()),
  ]);
  assert.equal(theirs.infoHash, INFO);
  await closeAll(ours.stream, theirs.stream);
});

for (const rc4Only of [false, true]) {
  Deno.test(`two PeerConnections trade a piece over MSE (${rc4Only ? "RC4" : "plaintext"}; handshake in the IA)`, async () => {
    const pieceLength = 64 * 1024;
    const data = payload(pieceLength * 3, 11);
    const { a, b } = socketPair();
    const opts = (id: number) => ({
      infoHash: INFO,
      peerId: new Uint8Array(20).fill(id),
      pieceCount: 3,
      pieceLength,
      totalLength: data.length,
    });
    const ours = await (async () => {
      const [o, t] = await Promise.all([
        initiateConnection(a, INFO, {
          initialPayload: encodeHandshake({
            infoHash: INFO,
            peerId: new Uint8Array(20).fill(1),
            fast: true,
            extended: true,
          }),
          rc4Only,
        }),
        acceptConnection(b, [INFO]),
      ]);
      return { o, t };
    })();
    const got = new Uint8Array(data.length);
    let received = 0;
    const done = Promise.withResolvers<void>();
    const leecher = new PeerConnection(ours.o.stream, { ...opts(1), handshakeSent: true }, {
      onBitfield: (p) => p.interested(),
      onUnchoke: (p) => {
        for (let i = 0; i < 3; i++) {
          for (let o = 0; o < pieceLength; o += 16384) p.request(i, o, 16384);
        }
      },
      onBlock: (_p, index, begin, block) => {
        got.set(block, index * pieceLength + begin);
        received += block.length;
        if (received === data.length) done.resolve();
      },
      onClose: (_p, reason) => done.reject(new Error(reason)),
    });
    const seeder = new PeerConnection(ours.t.stream, opts(2), {
      onBlock: () => {},
      onReady: (p) => p.sendBitfield(new Bitfield(3, new Uint8Array([0xe0]))),
      onInterested: (p) => p.unchoke(),
      onRequest: (p, index, begin, length) => {
        const at = index * pieceLength + begin;
        p.sendPiece(index, begin, data.subarray(at, at + length));
      },
    });
    try {
      const [r1, r2] = await Promise.all([leecher.start(), seeder.start()]);
      assert.ok(r1 && r2, `handshakes: ${leecher.closeReason} / ${seeder.closeReason}`);
      assert.deepEqual(seeder.remotePeerId, new Uint8Array(20).fill(1));
      await within(10_000, "three pieces", done.promise);
      assert.deepEqual(got, data);
    } finally {
      await leecher[Symbol.asyncDispose]();
      await seeder[Symbol.asyncDispose]();
    }
  });
}

// ---------------------------------------------------------------- every byte boundary

for (const encryption of ["plaintext-header", "rc4"] as const) {
  Deno.test(`MSE ${encryption} with every byte delivered on its own, both ways`, async () => {
    const hs = handshake(1);
    const { ours, theirs } = await pair(
      { initialPayload: hs, rc4Only: encryption === "rc4" },
      {},
      { maxChunk: 1 },
    );
    try {
      assert.equal(ours.encryption, encryption);
      assert.equal(theirs.encryption, encryption);
      assert.deepEqual(await readExactly(theirs.stream.readable, 68), hs);
      await exchange(ours.stream, theirs.stream, 600);
    } finally {
      await closeAll(ours.stream, theirs.stream);
    }
  });
}

Deno.test("MSE handshakes split at every byte offset up to 1400 (both directions, both methods)", async () => {
  // the handshake is at most 96 + 512 + 20 + 20 + 14 + 512 + 2 + 68 bytes from the initiator and
  // 96 + 512 + 14 + 512 from the acceptor: 1400 covers every boundary of both
  for (let at = 1; at <= 1400; at += 8) {
    await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      const splitAt = at + k;
      const rc4Only = splitAt % 2 === 0;
      const hs = handshake(3);
      const { ours, theirs } = await pair({ initialPayload: hs, rc4Only }, {}, { splitAt });
      try {
        assert.equal(
          theirs.encryption,
          rc4Only ? "rc4" : "plaintext-header",
          `split at ${splitAt}`,
        );
        assert.deepEqual(await readExactly(theirs.stream.readable, 68), hs, `split at ${splitAt}`);
        await exchange(ours.stream, theirs.stream, 64);
      } finally {
        await closeAll(ours.stream, theirs.stream);
      }
    }));
  }
});

Deno.test("a plain BitTorrent handshake split at every byte is passed through by acceptConnection", async () => {
  for (let splitAt = 1; splitAt < 68; splitAt++) {
    const { a, b } = socketPair({ splitAt });
    const hs = handshake(5);
    const sending = send(a.writable, hs); // resolves once every piece was read (lockstep)
    const accepted = await acceptConnection(b, [INFO]);
    assert.equal(accepted.encryption, false);
    assert.deepEqual(await readExactly(accepted.stream.readable, 68), hs);
    await sending;
    await closeAll(accepted.stream);
    a.close();
  }
});

// ---------------------------------------------------------------- against the spec-written roles

for (const [provide, method] of [[0x03, 0x01], [0x02, 0x02]] as const) {
  Deno.test(`acceptConnection answers a spec initiator offering 0x0${provide} with 0x0${method}`, async () => {
    const { a, b } = socketPair();
    const ia = handshake(6);
    const [side, accepted] = await Promise.all([
      specInitiate(a, INFO, provide, ia),
      acceptConnection(b, [OTHER, INFO]),
    ]);
    assert.equal(side.select, method);
    assert.equal(accepted.encryption, method === 2 ? "rc4" : "plaintext-header");
    assert.deepEqual(await readExactly(accepted.stream.readable, 68), ia);
    const message = new Uint8Array([0, 0, 0, 1, 2]);
    const out = message.slice();
    if (method === 2) side.enc.process(out);
    await side.w.write(out);
    assert.deepEqual(await readExactly(accepted.stream.readable, 5), message);
    await send(accepted.stream.writable, message);
    await side.input.need(5);
    const back = side.input.take(5);
    if (method === 2) side.dec.process(back);
    assert.deepEqual(back, message);
    await side.w.abort();
    await side.input.r.cancel();
    await closeAll(accepted.stream);
  });
}

for (const rc4Only of [false, true]) {
  Deno.test(`initiateConnection talks to a spec responder (${rc4Only ? "RC4 only" : "both offered"})`, async () => {
    const { a, b } = socketPair();
    const ia = handshake(7);
    const [ours, side] = await Promise.all([
      initiateConnection(a, INFO, { initialPayload: ia, rc4Only }),
      specRespond(b, INFO, (p) => (p & 1 ? 1 : 2)),
    ]);
    assert.deepEqual(side.ia, ia);
    assert.equal(ours.encryption, rc4Only ? "rc4" : "plaintext-header");
    const message = new Uint8Array([0, 0, 0, 1, 3]);
    await send(ours.stream.writable, message);
    await side.input.need(5);
    const got = side.input.take(5);
    if (rc4Only) side.dec.process(got);
    assert.deepEqual(got, message);
    await side.w.abort();
    await side.input.r.cancel();
    await closeAll(ours.stream);
  });
}

Deno.test("rc4Only against a peer that only offers plaintext fails with one clear reason", async () => {
  const { a, b } = socketPair();
  const [, reason] = await Promise.all([
    specInitiate(a, INFO, 0x01, new Uint8Array(0)).catch(() => undefined),
    failure(acceptConnection(b, [INFO], { rc4Only: true })),
  ]);
  assert.match(reason, /does not offer RC4, which we require/);
  a.close();
});

Deno.test("rc4Only initiator refuses a responder that selects plaintext anyway", async () => {
  const { a, b } = socketPair();
  const [reason] = await Promise.all([
    failure(initiateConnection(a, INFO, { rc4Only: true })),
    specRespond(b, INFO, () => 0x01).catch(() => undefined),
  ]);
  assert.match(reason, /selected method 0x1, we offered 0x2/);
  b.close();
});

// ---------------------------------------------------------------- policies

Deno.test("policy require refuses a plain BitTorrent handshake; prefer, allow and disable take it", async () => {
  for (const policy of ["require", "prefer", "allow", "disable"] as const) {
    const { a, b } = socketPair();
    const hs = handshake(8);
    const [, result] = await Promise.all([
      send(a.writable, hs),
      acceptConnection(b, [INFO], { policy }).then((r) => r, (e: Error) => e),
    ]);
    if (policy === "require") {
      assert.ok(result instanceof WireError);
      assert.match(result.message, /plain BitTorrent handshake refused: encryption is required/);
    } else {
      assert.ok(!(result instanceof Error));
      assert.equal(result.encryption, false);
      assert.deepEqual(result.infoHash, INFO);
      await closeAll(result.stream);
    }
    a.close();
  }
});

Deno.test("policy disable refuses MSE; the initiator sees the connection closed", async () => {
  const { a, b } = socketPair();
  const [ours, theirs] = await Promise.all([
    failure(initiateConnection(a, INFO)),
    failure(acceptConnection(b, [INFO], { policy: "disable" })),
  ]);
  assert.match(theirs, /not a BitTorrent handshake \(encrypted handshakes are disabled\)/);
  assert.match(ours, /connection closed during the encryption handshake/);
});

Deno.test("a torrent we do not serve is refused, plain or MSE", async () => {
  {
    const { a, b } = socketPair();
    const [ours, theirs] = await Promise.all([
      failure(initiateConnection(a, INFO)),
      failure(acceptConnection(b, [OTHER])),
    ]);
    assert.match(theirs, /encryption handshake for a torrent we do not serve/);
    assert.match(ours, /connection closed/);
  }
  {
    const { a, b } = socketPair();
    const [, theirs] = await Promise.all([
      send(a.writable, handshake(1)),
      failure(acceptConnection(b, [OTHER])),
    ]);
    assert.match(theirs, /handshake for a torrent we do not serve/);
    a.close();
  }
});

// ---------------------------------------------------------------- hostile peers, over real sockets

/** A TCP pair on loopback; `hostile` drives the far end and gets closed afterwards. */
async function tcpPair(): Promise<{ near: Deno.Conn; far: Deno.Conn }> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [near, far] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  return { near, far };
}

/** Writes until the other end goes away or `stop` is set; resolves when done. */
async function writeForever(conn: Deno.Conn, chunk: () => Uint8Array, signal: { stop: boolean }) {
  try {
    while (!signal.stop) await conn.write(chunk());
  } catch { /* the other end closed */ }
}

/** Reads and discards until EOF; resolves with how many bytes came. */
async function drain(conn: Deno.Conn): Promise<number> {
  let n = 0;
  const buf = new Uint8Array(4096);
  try {
    for (;;) {
      const r = await conn.read(buf);
      if (r === null) return n;
      n += r;
    }
  } catch {
    return n;
  }
}

const ROLES = {
  initiator: (conn: Deno.Conn, opts: { timeoutMs?: number; signal?: AbortSignal } = {}) =>
    initiateConnection(conn, INFO, opts),
  acceptor: (conn: Deno.Conn, opts: { timeoutMs?: number; signal?: AbortSignal } = {}) =>
    acceptConnection(conn, [INFO], opts),
};

for (const [role, run] of Object.entries(ROLES)) {
  Deno.test(`${role}: endless random padding fails fast with one reason, connection closed`, async () => {
    const { near, far } = await tcpPair();
    const flag = { stop: false };
    const writing = writeForever(far, () => crypto.getRandomValues(new Uint8Array(700)), flag);
    const reason = await failure(within(5000, "the failure", run(near, { timeoutMs: 10_000 })));
    assert.match(reason, /within 512 bytes of padding/);
    flag.stop = true;
    await drain(far); // EOF: we closed our end
    await writing;
    far.close();
  });

  Deno.test(`${role}: a degenerate public key is refused`, async () => {
    const { near, far } = await tcpPair();
    const reading = drain(far);
    await far.write(new Uint8Array(96)); // Y = 0 (a plain handshake starts with 19, so not that)
    const reason = await failure(run(near));
    assert.match(reason, /invalid public key/);
    await reading;
    far.close();
  });

  Deno.test(`${role}: a peer dripping bytes past the deadline is dropped at the deadline`, async () => {
    const { near, far } = await tcpPair();
    const reading = drain(far);
    const flag = { stop: false };
    const dripping = (async () => {
      try {
        while (!flag.stop) {
          await far.write(new Uint8Array([0xaa]));
          await new Promise((r) => setTimeout(r, 20)); // the drip itself: one byte every 20 ms
        }
      } catch { /* closed */ }
    })();
    const started = Date.now();
    const reason = await failure(run(near, { timeoutMs: 300 }));
    assert.match(reason, /timed out after 300 ms/);
    assert.ok(Date.now() - started < 3000);
    flag.stop = true;
    await dripping;
    await reading;
    far.close();
  });

  Deno.test(`${role}: the abort signal ends the handshake and closes the connection`, async () => {
    const { near, far } = await tcpPair();
    const reading = drain(far);
    const controller = new AbortController();
    const pending = failure(run(near, { signal: controller.signal }));
    controller.abort();
    assert.match(await pending, /aborted/);
    await reading;
    far.close();
  });

  Deno.test(`${role}: a peer that closes mid-handshake gives one clear reason`, async () => {
    const { near, far } = await tcpPair();
    await far.write(crypto.getRandomValues(new Uint8Array(60)).map((b) => b === 19 ? 20 : b));
    far.close();
    assert.match(await failure(run(near)), /connection closed during the encryption handshake/);
  });
}

Deno.test("acceptor: PadC longer than 512 bytes is refused", async () => {
  // a spec initiator with a PadC length of 0xffff: patch the length before encryption
  const { a, b } = socketPair();
  const hostile = (async () => {
    const w = a.writable.getWriter(), input = new Bytes(a.readable.getReader());
    const xa = big(crypto.getRandomValues(new Uint8Array(20)));
    await w.write(bytes96(modPow(2n, xa, P)));
    await input.need(96);
    const s = bytes96(modPow(big(input.take(96)), xa, P));
    const enc = new Rc4(await sha1(utf8("keyA"), s, INFO));
    const req2 = await sha1(utf8("req2"), INFO), req3 = await sha1(utf8("req3"), s);
    const head = new Uint8Array(14);
    head[11] = 3;
    head[12] = 0xff;
    head[13] = 0xff;
    enc.process(head);
    await w.write(concat([await sha1(utf8("req1"), s), req2.map((x, i) => x ^ req3[i]), head]));
    await input.r.closed.catch(() => {});
    await w.abort().catch(() => {});
  })();
  assert.match(await failure(acceptConnection(b, [INFO])), /65535 bytes of padding/);
  await hostile;
});

Deno.test("corrupted handshakes (a flipped byte anywhere) fail with a WireError or pass, never hang", async () => {
  // a relay that flips one byte at a random offset of one direction: every stage of both parsers sees bad input
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  let failed = 0;
  for (let run = 0; run < 60; run++) {
    const flipAt = rand(800), toAcceptor = rand(2) === 0;
    const x = socketPair(), y = socketPair();
    // initiator ↔ x.a | x.b ⇄ relay ⇄ y.a | y.b ↔ acceptor
    const relay = (
      from: ReadableStream<Uint8Array>,
      to: WritableStream<Uint8Array>,
      flip: boolean,
    ) =>
      (async () => {
        let offset = 0;
        const w = to.getWriter();
        try {
          for await (const chunk of from) {
            const c = chunk.slice();
            if (flip && flipAt >= offset && flipAt < offset + c.length) c[flipAt - offset] ^= 0x5a;
            offset += c.length;
            await w.write(c);
          }
          await w.close();
        } catch {
          await w.abort().catch(() => {});
        }
      })();
    const relays = [
      relay(x.b.readable, y.a.writable, toAcceptor),
      relay(y.a.readable, x.b.writable, !toAcceptor),
    ];
    const results = await Promise.allSettled([
      initiateConnection(x.a, INFO, { initialPayload: handshake(1), timeoutMs: 500 }),
      acceptConnection(y.b, [INFO], { timeoutMs: 500 }),
    ]);
    for (const r of results) {
      if (r.status === "rejected") {
        failed++;
        assert.ok(r.reason instanceof WireError, String(r.reason));
      } else await closeAll(r.value.stream);
    }
    x.a.close();
    y.b.close();
    x.b.close();
    y.a.close();
    await Promise.all(relays);
  }
  assert.ok(failed > 0);
});
