// uTP (BEP 29): the packet codec, and two endpoints in-process over a seeded fake UDP link that loses, duplicates,
// delays and reorders datagrams: byte-exact transfers both ways, half-close, sequence number wraparound, timeouts,
// resets, limits, back-pressure, and a raw PeerConnection running over a UtpConnection.

import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import { PeerConnection } from "../src/peer.ts";
import { classifyDatagram, UdpMux } from "../src/transport/udp_mux.ts";
import {
  type UtpConnection,
  UtpEndpoint,
  type UtpEndpointOptions,
  UtpError,
} from "../src/transport/utp.ts";
import {
  decodeUtpPacket,
  encodeUtpPacket,
  isUtpShaped,
  PacketType,
  seqBefore,
  UtpPacketError,
} from "../src/transport/utp_packet.ts";
import { Dht } from "../src/dht/dht.ts";
import { openUdpSocket } from "../src/udp.ts";
import { announceUdp } from "../src/tracker/udp.ts";
import { FakeNet, type LinkOptions } from "./_lossy_udp.ts";
import { payload, within } from "./_swarm.ts";

// ------------------------------------------------------------------ packets

Deno.test("a uTP packet round-trips with a selective ack and a payload", () => {
  const sack = new Uint8Array([0b101, 0, 0, 0x80]);
  const bytes = encodeUtpPacket({
    type: PacketType.data,
    connectionId: 0xbeef,
    timestamp: 0xfedcba98,
    timestampDiff: 12345,
    wndSize: 1 << 20,
    seq: 65535,
    ack: 7,
    sack,
    payload: new Uint8Array([1, 2, 3]),
  });
  assert.equal(bytes[0], 0x01); // type 0, version 1
  assert.equal(bytes[1], 1); // first extension: selective ack
  const p = decodeUtpPacket(bytes);
  assert.equal(p.type, PacketType.data);
  assert.equal(p.connectionId, 0xbeef);
  assert.equal(p.timestamp, 0xfedcba98);
  assert.equal(p.timestampDiff, 12345);
  assert.equal(p.wndSize, 1 << 20);
  assert.equal(p.seq, 65535);
  assert.equal(p.ack, 7);
  assert.deepEqual(p.sack, sack);
  assert.deepEqual(p.payload, new Uint8Array([1, 2, 3]));
  // an unknown extension before the selective ack is skipped
  const withUnknown = new Uint8Array([
    0x21,
    9,
    0,
    1,
    ...new Uint8Array(16),
    1,
    2,
    0xaa,
    0xbb,
    0,
    4,
    1,
    0,
    0,
    0,
  ]);
  const q = decodeUtpPacket(withUnknown);
  assert.equal(q.type, PacketType.state);
  assert.deepEqual(q.sack, new Uint8Array([1, 0, 0, 0]));
  assert.equal(q.payload.length, 0);
});

Deno.test("malformed uTP headers are rejected with UtpPacketError", () => {
  const ok = encodeUtpPacket({ type: PacketType.state, connectionId: 1 });
  const bad: [string, Uint8Array][] = [
    ["short", ok.subarray(0, 19)],
    ["version 2", Uint8Array.from(ok, (b, i) => (i === 0 ? 0x22 : b))],
    ["type 5", Uint8Array.from(ok, (b, i) => (i === 0 ? 0x51 : b))],
    ["extension past the end", Uint8Array.from(ok, (b, i) => (i === 1 ? 1 : b))],
    ["extension length past the end", new Uint8Array([0x21, 2, ...ok.subarray(2, 20), 0, 8, 1, 2])],
    ["data without payload", encodeUtpPacket({ type: PacketType.data })],
    [
      "nine extensions",
      new Uint8Array([0x21, 7, ...ok.subarray(2, 20), ...Array(9).fill([7, 0]).flat()]),
    ],
  ];
  for (const [what, b] of bad) {
    assert.throws(() => decodeUtpPacket(b), UtpPacketError, what);
  }
  assert.throws(() => encodeUtpPacket({ type: 2, sack: new Uint8Array(3) }), RangeError);
  // libtorrent sends selective acks of whole bytes, even one (BEP 29 asks for multiples of 4): accepted
  const one = decodeUtpPacket(new Uint8Array([0x21, 1, ...ok.subarray(2, 20), 0, 1, 0x05]));
  assert.deepEqual(one.sack, new Uint8Array([5]));
  assert.equal(
    decodeUtpPacket(new Uint8Array([0x21, 1, ...ok.subarray(2, 20), 0, 0])).sack,
    undefined,
  );
});

Deno.test("sequence numbers compare across the 16-bit wrap", () => {
  assert.ok(seqBefore(65535, 0));
  assert.ok(seqBefore(65000, 100));
  assert.ok(!seqBefore(100, 65000));
  assert.ok(!seqBefore(5, 5));
  assert.ok(seqBefore(1, 2));
});

Deno.test("the UDP demultiplexer tells uTP, KRPC and UDP tracker replies apart by shape", () => {
  const enc = new TextEncoder();
  for (const type of [0, 1, 2, 3, 4]) {
    const p = encodeUtpPacket({
      type,
      connectionId: 3,
      payload: new Uint8Array(type === 0 ? 1 : 0),
    });
    assert.ok(isUtpShaped(p));
    assert.equal(classifyDatagram(p), "utp");
  }
  assert.equal(
    classifyDatagram(enc.encode("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")),
    "dht",
  );
  const announceReply = new Uint8Array(20 + 6);
  announceReply[3] = 1; // action 1
  assert.equal(classifyDatagram(announceReply), "trackers");
  assert.equal(classifyDatagram(new Uint8Array(16)), "trackers"); // connect reply, action 0
  assert.equal(classifyDatagram(new Uint8Array([0x41, 0, 0])), "trackers"); // too short for uTP
});

// ------------------------------------------------------------------ helpers

interface Pair extends AsyncDisposable {
  net: FakeNet;
  server: UtpEndpoint;
  client: UtpEndpoint;
  /** The client's side. */
  a: UtpConnection;
  /** The server's side. */
  b: UtpConnection;
}

async function pair(
  link: LinkOptions = {},
  options: Partial<UtpEndpointOptions> = {},
): Promise<Pair> {
  const net = new FakeNet(link);
  const accepted = Promise.withResolvers<UtpConnection>();
  const server = new UtpEndpoint({
    ...options,
    socket: net.socket("10.0.0.1"),
    onConnection: (c) => accepted.resolve(c),
  });
  const client = new UtpEndpoint({ ...options, socket: net.socket("10.0.0.2") });
  const a = await within(10_000, "connect", client.connect("10.0.0.1", server.port));
  const b = await within(10_000, "accept", accepted.promise);
  return {
    net,
    server,
    client,
    a,
    b,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
      net.close();
    },
  };
}

/** Writes `data` in chunks of `chunk` bytes, then closes the writable (resolves when the FIN is acked). */
async function send(conn: UtpConnection, data: Uint8Array, chunk = 100_000): Promise<void> {
  const w = conn.writable.getWriter();
  for (let i = 0; i < data.length; i += chunk) await w.write(data.subarray(i, i + chunk));
  await w.close();
}

/** Reads to the end with a BYOB reader. */
async function receive(conn: UtpConnection, limit = 64 << 20): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const r = conn.readable.getReader({ mode: "byob" });
  let buf = new ArrayBuffer(65536);
  for (;;) {
    const { done, value } = await r.read(new Uint8Array(buf));
    if (done || !value) break;
    parts.push(value.slice());
    total += value.length;
    if (total > limit) throw new Error("more than expected");
    buf = value.buffer as ArrayBuffer;
  }
  r.releaseLock();
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function sameBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Resolves once `test()` holds, checking after every event-loop turn of the fake net (bounded by `within`). */
async function until(test: () => boolean, what: string, ms = 10_000): Promise<void> {
  await within(
    ms,
    what,
    (async () => {
      while (!test()) await new Promise((r) => setTimeout(r, 5));
    })(),
  );
}

// ------------------------------------------------------------------ transfers

Deno.test("4 MiB each way at once over a link with 3% loss, 2% duplication and reordering arrive byte-exact", async () => {
  await using p = await pair({ seed: 11, loss: 0.03, duplicate: 0.02, delayMs: 2, jitterMs: 5 });
  const x = payload(4 << 20, 1), y = payload(4 << 20, 2);
  const [gotByB, gotByA] = await within(
    120_000,
    "the transfers",
    Promise.all([receive(p.b), receive(p.a), send(p.a, x), send(p.b, y)]),
  );
  assert.ok(sameBytes(gotByB, x), "client → server");
  assert.ok(sameBytes(gotByA, y), "server → client");
  const sa = p.a.stats(), sb = p.b.stats();
  assert.ok(p.net.stats.lost > 100 && p.net.stats.duplicated > 50, JSON.stringify(p.net.stats));
  assert.ok(sa.packetsResent > 0 && sb.packetsResent > 0, "losses were repaired by retransmission");
  assert.ok(sa.fastRetransmits > 0, "duplicate/selective acks triggered fast retransmits");
  assert.equal(sa.bytesAcked, x.length);
  await within(10_000, "both closed", Promise.all([p.a.closed, p.b.closed]));
});

Deno.test("sequence numbers and connection ids wrap past 65535 (starting at 65500) without a byte lost", async () => {
  let n = 65500;
  await using p = await pair(
    { seed: 5, loss: 0.02, delayMs: 1, jitterMs: 2 },
    { random: () => n++ & 0xffff },
  );
  const x = payload(3 << 20, 3); // ~2300 packets: the sequence wraps
  const [got] = await within(60_000, "the transfer", Promise.all([receive(p.b), send(p.a, x)]));
  assert.ok(sameBytes(got, x));
  assert.ok(p.a.stats().packetsSent > 2000);
});

Deno.test("a FIN mid-stream ends only that direction: everything before it arrives, the other way still works", async () => {
  await using p = await pair({ seed: 3, loss: 0.05, delayMs: 1, jitterMs: 4 });
  const x = payload(300_000, 4), y = payload(200_000, 5);
  // the client sends and closes its writable (FIN) while the server has not read a byte yet
  const sent = send(p.a, x, 7777);
  const got = await within(30_000, "the client's bytes", receive(p.b));
  assert.ok(sameBytes(got, x), "every byte up to the FIN");
  await within(10_000, "the FIN to be acked", sent);
  // half-closed: the server still writes, the client still reads
  const [back] = await within(30_000, "the reply", Promise.all([receive(p.a), send(p.b, y)]));
  assert.ok(sameBytes(back, y));
  await within(10_000, "both sides done", Promise.all([p.a.closed, p.b.closed]));
  assert.equal(p.client.connectionCount + p.server.connectionCount <= 2, true); // at most in time-wait
});

Deno.test("the sender never overruns the receiver's window: writes stall until the reader reads", async () => {
  await using p = await pair({ delayMs: 1 }, { receiveWindow: 65536 });
  const x = payload(1 << 20, 6);
  let written = false;
  const sent = send(p.a, x, 1 << 20).then(() => (written = true));
  await until(() => p.b.stats().bytesReceived >= 60_000, "the window to fill");
  await until(() => p.a.stats().peerWindow < 1400, "the window to close");
  assert.ok(p.b.stats().bytesReceived <= 65536, `${p.b.stats().bytesReceived} > the window`);
  assert.equal(written, false, "the 1 MiB write waits for window space");
  const [got] = await within(30_000, "the rest", Promise.all([receive(p.b), sent]));
  assert.ok(sameBytes(got, x));
});

Deno.test("a reader that lags makes the unread bytes grow past the first 64 KiB without reordering them", async () => {
  await using p = await pair({ seed: 4, loss: 0.02, delayMs: 1, jitterMs: 3 });
  const x = payload(900_000, 11);
  const sent = send(p.a, x, 50_000);
  // nobody reads: up to the 1 MiB window arrives and waits (the ring doubles 64 KiB → 1 MiB)
  await until(() => p.b.stats().bytesReceived === x.length, "everything to arrive unread", 30_000);
  const [got] = await within(30_000, "the reads", Promise.all([receive(p.b), sent]));
  assert.ok(sameBytes(got, x));
});

Deno.test("close() finishes gracefully: queued bytes and the FIN still go out", async () => {
  await using p = await pair({ seed: 9, loss: 0.05, delayMs: 1 });
  const x = payload(50_000, 7);
  const w = p.a.writable.getWriter();
  await w.write(x);
  p.a.close();
  await assert.rejects(w.write(x), UtpError);
  const got = await within(20_000, "the bytes", receive(p.b));
  assert.ok(sameBytes(got, x));
  p.b.close(); // its FIN ends the client's linger
  await within(20_000, "the client side gone", p.a.closed);
});

// ------------------------------------------------------------------ failures

Deno.test("an ST_RESET from the peer fails both streams with UtpError code reset", async () => {
  await using p = await pair({ delayMs: 1 });
  const reader = p.a.readable.getReader();
  const read = reader.read();
  p.b.reset();
  const err = await within(5000, "the reset", read.then(() => undefined, (e) => e));
  assert.ok(err instanceof UtpError);
  assert.equal(err.code, "reset");
  await assert.rejects(p.a.writable.getWriter().write(new Uint8Array(1)), UtpError);
  await p.a.closed;
});

Deno.test("closing an endpoint resets its connections; the peer sees a reset", async () => {
  await using p = await pair({ delayMs: 1 });
  const read = p.b.readable.getReader().read().then(() => undefined, (e) => e);
  await p.client.close();
  const err = await within(5000, "the reset", read);
  assert.equal((err as UtpError).code, "reset");
  assert.equal(p.client.connectionCount, 0);
  await assert.rejects(p.client.connect("10.0.0.1", p.server.port), UtpError);
});

Deno.test("connect times out when nobody answers, and an abort signal cancels it", async () => {
  using net = new FakeNet({ delayMs: 1 });
  await using quiet = new UtpEndpoint({ socket: net.socket("10.0.0.1") }); // no onConnection: SYNs ignored
  await using client = new UtpEndpoint({ socket: net.socket("10.0.0.2") });
  const started = performance.now();
  const err = await client.connect("10.0.0.1", quiet.port, { timeoutMs: 1500 }).catch((e) => e);
  assert.ok(err instanceof UtpError && err.code === "timeout", String(err));
  assert.ok(performance.now() - started >= 1400);
  assert.ok(net.stats.sent >= 2, "the SYN was resent after 1 s");
  const ac = new AbortController();
  const pending = client.connect("10.0.0.1", quiet.port, { signal: ac.signal });
  ac.abort();
  await assert.rejects(pending, (e: Error) => e.name === "AbortError");
  assert.equal(client.connectionCount, 0);
  await assert.rejects(client.connect("example.com", 1), TypeError);
});

Deno.test("a peer that stops answering mid-transfer fails the connection after the retransmission timeouts", async () => {
  await using p = await pair({ delayMs: 1 }, { maxRetransmits: 2 });
  p.net.blackholes.add(`10.0.0.1:${p.server.port}`);
  const w = p.a.writable.getWriter();
  const started = performance.now();
  const err = await within(
    20_000,
    "the failure",
    (async () => {
      for (;;) await w.write(payload(50_000, 8));
    })().catch((e) => e),
  );
  assert.ok(err instanceof UtpError && err.code === "timeout", String(err));
  // three timeouts with backoff: 0.5 s + 1 s + 2 s
  assert.ok(performance.now() - started >= 3000, `${performance.now() - started} ms`);
  assert.ok(p.a.stats().timeouts >= 2);
});

Deno.test("a SYN flood fills only the half-open slots; garbage datagrams are dropped silently", async () => {
  using net = new FakeNet({ delayMs: 1 });
  let accepted = 0;
  await using server = new UtpEndpoint({
    socket: net.socket("10.0.0.1"),
    onConnection: () => accepted++,
    maxHalfOpen: 16,
    connectTimeoutMs: 300,
  });
  const spoofer = net.socket("10.6.6.6");
  for (let i = 0; i < 200; i++) {
    await spoofer.send(
      encodeUtpPacket({ type: PacketType.syn, connectionId: i, seq: 1 }),
      "10.0.0.1",
      server.port,
    );
  }
  const junk = [
    new Uint8Array(3),
    new Uint8Array([0x41, 1, 0, 0]),
    encodeUtpPacket({ type: PacketType.data, connectionId: 99 }), // data without payload
    new Uint8Array([0x01, 7, ...new Uint8Array(18), 0, 255]), // extension runs past the end
  ];
  for (const j of junk) await spoofer.send(j, "10.0.0.1", server.port);
  await until(() => server.stats().malformed === 4 && server.stats().refused === 184, "the flood");
  assert.equal(server.stats().halfOpen, 16);
  assert.equal(accepted, 0, "nothing unconfirmed reaches the application");
  await until(() => server.connectionCount === 0, "the half-open connections to expire");
  // a real client still gets in
  await using client = new UtpEndpoint({ socket: net.socket("10.0.0.2") });
  const conn = await client.connect("10.0.0.1", server.port);
  await until(() => accepted === 1, "the real connection");
  conn.reset();
  spoofer.close();
});

Deno.test("forged packets with the right address and connection id but impossible numbers are ignored", async () => {
  // initial sequence numbers 1000: a transfer of 500 kB stays below 1400, forged numbers are far beyond
  await using p = await pair({ delayMs: 1 }, { random: () => 1000 });
  const x = payload(500_000, 9);
  const transfer = Promise.all([receive(p.b), send(p.a, x)]);
  const server: [string, number] = ["10.0.0.1", p.server.port];
  const client: [string, number] = ["10.0.0.2", p.client.port];
  let seed = 1;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
  for (let i = 0; i < 3000; i++) {
    const far = 20_000 + rand(30_000);
    const type = rand(5);
    // to the client, posing as the server: acks of packets never sent, resets that ack nothing plausible,
    // data and FINs far beyond the reorder window
    p.net.inject(
      encodeUtpPacket({
        type,
        connectionId: 1000,
        seq: type === PacketType.state || type === PacketType.reset ? rand(65536) : far,
        ack: far,
        wndSize: rand(2 ** 31),
        payload: new Uint8Array(type === PacketType.data ? 1 + rand(100) : 0),
      }),
      server,
      client,
    );
  }
  const [got] = await within(30_000, "the transfer", transfer);
  assert.ok(sameBytes(got, x), "no forged ack released a packet, no forged FIN ended the stream");
});

Deno.test("random datagrams with live connection ids never throw out of the endpoint", async () => {
  let ids = 1000;
  await using p = await pair({ delayMs: 1 }, { random: () => ids });
  const server: [string, number] = ["10.0.0.1", p.server.port];
  const client: [string, number] = ["10.0.0.2", p.client.port];
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
  for (let i = 0; i < 3000; i++) {
    const b = encodeUtpPacket({
      type: rand(5),
      connectionId: 1000 + rand(3),
      seq: rand(65536),
      ack: rand(65536),
      timestamp: rand(2 ** 32),
      timestampDiff: rand(2 ** 32),
      wndSize: rand(2 ** 32),
      ...(rand(4) === 0
        ? { sack: Uint8Array.from({ length: 4 * (1 + rand(8)) }, () => rand(256)) }
        : {}),
      payload: Uint8Array.from({ length: rand(40) }, () => rand(256)),
    });
    if (rand(3) === 0) b[rand(b.length)] = rand(256);
    if (rand(2)) p.net.inject(b, server, client);
    else p.net.inject(b, client, server);
  }
  // every datagram is processed (an exception would fail the test); the endpoints still connect
  await until(() => p.net.stats.delivered >= p.net.stats.sent - 5, "the datagrams");
  ids = 5000;
  const again = await p.client.connect("10.0.0.1", p.server.port);
  again.reset();
});

// ------------------------------------------------------------------ over the wire protocol

Deno.test("a raw PeerConnection runs over UtpConnection (BYOB reads) and fetches a piece", async () => {
  await using p = await pair({ seed: 2, loss: 0.02, delayMs: 1, jitterMs: 2 });
  const PIECE = 64 * 1024;
  const data = payload(PIECE * 4, 10);
  const infoHash = new Uint8Array(20).fill(7);
  const opts = (id: string) => ({
    infoHash,
    peerId: new TextEncoder().encode(id.padEnd(20, "x")),
    pieceCount: 4,
    pieceLength: PIECE,
    totalLength: data.length,
  });
  const got = new Uint8Array(PIECE);
  let received = 0;
  const done = Promise.withResolvers<void>();
  const seeder = new PeerConnection(p.b, opts("-SE-seed"), {
    onReady: (peer) => {
      const all = new Bitfield(4);
      all.setAll();
      peer.sendBitfield(all);
    },
    onInterested: (peer) => peer.unchoke(),
    onRequest: (peer, index, begin, length) =>
      peer.sendPiece(
        index,
        begin,
        data.subarray(index * PIECE + begin, index * PIECE + begin + length),
      ),
    onBlock: () => {},
  });
  const leecher = new PeerConnection(p.a, opts("-SE-leech"), {
    onReady: (peer) => peer.interested(),
    onUnchoke: (peer) => {
      for (let b = 0; b < PIECE; b += 16384) peer.request(2, b, 16384);
    },
    onBlock: (_peer, index, begin, block) => {
      assert.equal(index, 2);
      got.set(block, begin);
      received += block.length;
      if (received === PIECE) done.resolve();
    },
    onClose: (_peer, reason) => done.reject(new Error(reason)),
  });
  try {
    const [a, b] = await within(
      10_000,
      "handshakes",
      Promise.all([leecher.start(), seeder.start()]),
    );
    assert.ok(a && b);
    await within(20_000, "the piece", done.promise);
    assert.ok(sameBytes(got, data.subarray(2 * PIECE, 3 * PIECE)));
  } finally {
    await leecher[Symbol.asyncDispose]();
    await seeder[Symbol.asyncDispose]();
  }
});

Deno.test("uTP over IPv6 loopback: real sockets, 1212-byte payloads (1280-byte IPv6 packets)", async () => {
  const accepted = Promise.withResolvers<UtpConnection>();
  await using server = await UtpEndpoint.open({
    family: 6,
    host: "::1",
    onConnection: (c) => accepted.resolve(c),
  });
  // the client's socket, seen through a tap that records the size of every datagram it sends
  const sizes: number[] = [];
  const raw = await openUdpSocket({ family: 6, host: "::1" });
  await using client = new UtpEndpoint({
    socket: {
      ...raw,
      port: raw.port,
      send: (d, h, p) => (sizes.push(d.length), raw.send(d, h, p)),
    },
  });
  const conn = await client.connect("[0:0::1]", server.port);
  assert.deepEqual(conn.remoteAddress, { host: "::1", port: server.port });
  const b = await accepted.promise;
  const x = payload(300_000, 12);
  const [got] = await within(20_000, "the transfer", Promise.all([receive(b), send(conn, x)]));
  assert.ok(sameBytes(got, x));
  assert.equal(Math.max(...sizes), 1232, "UDP payload of a full packet: 1280 - 40 - 8");
});

// ------------------------------------------------------------------ one socket for uTP, DHT and trackers

Deno.test("uTP, a DHT node and a UDP tracker client share one real UDP socket", async () => {
  const mux = new UdpMux(await openUdpSocket({ host: "127.0.0.1" }));
  // the far side: a plain DHT node, a uTP endpoint, and a scripted UDP tracker, each on its own socket
  await using farUtp = await UtpEndpoint.open({
    host: "127.0.0.1",
    onConnection: (c) => void c.readable.pipeTo(c.writable).catch(() => {}),
  });
  const farDht = await Dht.open({ host: "127.0.0.1", bootstrap: [], queryTimeoutMs: 2000 });
  const tracker = await openUdpSocket({ host: "127.0.0.1" });
  tracker.onMessage(({ data, host, port }) => {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const action = v.getUint32(8), tid = v.getUint32(12);
    const reply = new Uint8Array(action === 0 ? 16 : 26);
    const r = new DataView(reply.buffer);
    r.setUint32(0, action);
    r.setUint32(4, tid);
    if (action === 1) {
      r.setUint32(8, 1800);
      reply.set([10, 1, 2, 3, 0x1a, 0xe1], 20);
    }
    void tracker.send(reply, host, port);
  });
  const utp = new UtpEndpoint({ socket: mux.utp });
  const dht = await Dht.open({
    socket: mux.dht,
    bootstrap: [`127.0.0.1:${farDht.port}`],
    queryTimeoutMs: 2000,
  });
  try {
    assert.equal(dht.port, mux.port);
    await within(10_000, "the DHT bootstrap", dht.bootstrapped);
    assert.ok(dht.stats().nodes >= 1, "the DHT talked over the shared socket");
    const conn = await utp.connect("127.0.0.1", farUtp.port);
    const w = conn.writable.getWriter();
    await w.write(new TextEncoder().encode("echo over the shared port"));
    const r = conn.readable.getReader();
    const { value } = await within(5000, "the echo", r.read());
    assert.equal(new TextDecoder().decode(value), "echo over the shared port");
    const announce = await within(
      10_000,
      "the announce",
      announceUdp(`udp://127.0.0.1:${tracker.port}`, {
        infoHash: new Uint8Array(20),
        peerId: new Uint8Array(20),
        port: mux.port,
        uploaded: 0,
        downloaded: 0,
        left: 0,
      }, { socket: mux.trackers, retryBaseMs: 1000 }),
    );
    assert.deepEqual(announce.peers, [{ host: "10.1.2.3", port: 6881 }]);
    const s = mux.stats();
    assert.ok(s.utp > 0 && s.dht > 0 && s.trackers >= 2, JSON.stringify(s));
    conn.reset();
  } finally {
    await utp.close(); // closes its view only
    await dht.close(); // likewise
    mux.close(); // the socket
    await farDht.close();
    tracker.close();
  }
});
