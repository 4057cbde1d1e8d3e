import assert from "node:assert/strict";
import { openUdpSocket, type UdpSocket } from "../src/udp.ts";
import { TrackerError } from "../src/tracker/http.ts";
import { announceUdp, clearUdpConnections, scrapeUdp } from "../src/tracker/udp.ts";
import { TrackerManager } from "../src/tracker/tiers.ts";
import { needs, startOpentracker } from "./_lab.ts";
import { within } from "./_swarm.ts";

const IH = Uint8Array.from({ length: 20 }, (_, i) => 200 - i);
const PID = new TextEncoder().encode("-SE0010-udpudpudpudp");
const req = { infoHash: IH, peerId: PID, port: 6881, uploaded: 1, downloaded: 2, left: 3 };

interface Seen {
  action: number;
  packet: Uint8Array;
}

/** A UDP tracker scripted by the test. `drop` swallows that many packets before answering. */
async function scriptedTracker(options: { drop?: number; error?: string } = {}) {
  const sock: UdpSocket = await openUdpSocket({ host: "127.0.0.1" });
  const seen: Seen[] = [];
  let dropped = 0;
  sock.onMessage(({ data, host, port }) => {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const action = v.getUint32(8), tid = v.getUint32(12);
    seen.push({ action, packet: data.slice() });
    if (dropped < (options.drop ?? 0)) {
      dropped++;
      return;
    }
    let reply: Uint8Array;
    if (options.error && action !== 0) {
      const msg = new TextEncoder().encode(options.error);
      reply = new Uint8Array(8 + msg.length);
      reply.set(msg, 8);
      new DataView(reply.buffer).setUint32(0, 3);
    } else if (action === 0) {
      reply = new Uint8Array(16);
      reply.set([1, 2, 3, 4, 5, 6, 7, 8], 8); // connection id
    } else if (action === 1) {
      reply = new Uint8Array(20 + 12);
      const r = new DataView(reply.buffer);
      r.setUint32(0, 1);
      r.setUint32(8, 1800);
      r.setUint32(12, 4);
      r.setUint32(16, 5);
      reply.set([10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 0], 20); // one valid peer, one with port 0
    } else {
      reply = new Uint8Array(8 + 12);
      const r = new DataView(reply.buffer);
      r.setUint32(0, 2);
      r.setUint32(8, 7);
      r.setUint32(12, 8);
      r.setUint32(16, 9);
    }
    new DataView(reply.buffer).setUint32(4, tid);
    if (action === 0 && !options.error) new DataView(reply.buffer).setUint32(0, 0);
    void sock.send(reply, host, port);
  });
  return {
    url: `udp://127.0.0.1:${sock.port}/announce`,
    seen,
    [Symbol.dispose]: () => sock.close(),
  };
}

Deno.test("announceUdp() connects, announces with the right fields, and reads peers and counts", async () => {
  clearUdpConnections();
  using t = await scriptedTracker();
  const r = await announceUdp(t.url, { ...req, event: "started", numwant: 50 }, {
    retryBaseMs: 1000,
  });
  assert.deepEqual(r.peers, [{ host: "10.0.0.1", port: 6881 }]);
  assert.deepEqual([r.interval, r.incomplete, r.complete], [1800, 4, 5]);
  assert.deepEqual(t.seen.map((s) => s.action), [0, 1]);
  const a = t.seen[1].packet, v = new DataView(a.buffer);
  assert.deepEqual(
    a.subarray(0, 8),
    new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    "the connection id is echoed",
  );
  assert.deepEqual(a.subarray(16, 36), IH);
  assert.deepEqual(a.subarray(36, 56), PID);
  assert.equal(v.getBigUint64(56), 2n);
  assert.equal(v.getBigUint64(64), 3n);
  assert.equal(v.getBigUint64(72), 1n);
  assert.equal(v.getUint32(80), 2, "event started");
  assert.equal(v.getInt32(92), 50);
  assert.equal(v.getUint16(96), 6881);
  // the connection id is reused within its minute: no second connect
  await announceUdp(t.url, req, { retryBaseMs: 1000 });
  assert.deepEqual(t.seen.map((s) => s.action), [0, 1, 1]);
});

Deno.test("announceUdp() retransmits when a packet is lost", async () => {
  clearUdpConnections();
  using t = await scriptedTracker({ drop: 1 });
  const r = await announceUdp(t.url, req, { retryBaseMs: 50 });
  assert.equal(r.peers.length, 1);
  assert.deepEqual(t.seen.map((s) => s.action), [0, 0, 1]);
});

Deno.test("announceUdp() turns an error response into a TrackerError and gives up when nobody answers", async () => {
  clearUdpConnections();
  using t = await scriptedTracker({ error: "torrent not registered" });
  const err = await announceUdp(t.url, req, { retryBaseMs: 50 }).catch((e) => e);
  assert.ok(err instanceof TrackerError);
  assert.equal(err.failureReason, "torrent not registered");
  const silent = await openUdpSocket({ host: "127.0.0.1" });
  try {
    await assert.rejects(
      announceUdp(`udp://127.0.0.1:${silent.port}`, req, { retryBaseMs: 20, retries: 2 }),
      /no answer after 3 attempts/,
    );
  } finally {
    silent.close();
  }
  await assert.rejects(announceUdp("udp://127.0.0.1/announce", req), /needs a port/);
});

Deno.test("scrapeUdp() reads seeders, completed and leechers", async () => {
  clearUdpConnections();
  using t = await scriptedTracker();
  const counts = await scrapeUdp(t.url, [IH], { retryBaseMs: 1000 });
  assert.deepEqual([...counts.values()], [{ complete: 7, downloaded: 8, incomplete: 9 }]);
});

Deno.test("TrackerManager announces to udp:// trackers too", async () => {
  clearUdpConnections();
  using t = await scriptedTracker();
  const got = Promise.withResolvers<string[]>();
  const m = new TrackerManager({
    announceList: [[t.url]],
    infoHash: IH,
    peerId: PID,
    port: 6881,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 1 }),
    onPeers: (p) => got.resolve(p.map((x) => `${x.host}:${x.port}`)),
  });
  m.start();
  assert.deepEqual(await within(5000, "peers from the UDP tracker", got.promise), [
    "10.0.0.1:6881",
  ]);
  await m.stop();
  assert.equal(t.seen.at(-1)?.action, 1);
});

Deno.test({
  name: "opentracker over UDP returns a peer another client announced",
  ignore: needs("opentracker"),
  async fn() {
    clearUdpConnections();
    await using tracker = await startOpentracker([IH]);
    const url = tracker.udpUrl;
    await announceUdp(url, { ...req, event: "started", port: 7101, left: 0 }, { retryBaseMs: 500 });
    const b = await announceUdp(url, {
      ...req,
      event: "started",
      port: 7102,
      peerId: new Uint8Array(20).fill(7),
    }, {
      retryBaseMs: 500,
    });
    assert.ok(
      b.peers.some((p) => p.host === "127.0.0.1" && p.port === 7101),
      JSON.stringify(b.peers),
    );
    const counts = await scrapeUdp(url, [IH], { retryBaseMs: 500 });
    assert.equal([...counts.values()][0].complete, 1);
  },
});

Deno.test("an announce aborted while its packet is still being sent rejects once, never unhandled", async () => {
  clearUdpConnections();
  const sent = Promise.withResolvers<void>();
  const sending = Promise.withResolvers<void>();
  // a socket whose send takes as long as the test wants
  const socket: UdpSocket = {
    port: 1,
    send: () => (sending.resolve(), sent.promise),
    onMessage: () => () => {},
    close: () => {},
  };
  const abort = new AbortController();
  const result = announceUdp("udp://127.0.0.1:9/announce", req, {
    socket,
    signal: abort.signal,
    retryBaseMs: 10_000,
  }).then(() => "answered", (e: Error) => e.message);
  await sending.promise;
  abort.abort(); // the reply can no longer come: rejected before anything awaits it
  await new Promise((r) => setTimeout(r, 0)); // a turn of the event loop: an unhandled rejection would show now
  sent.resolve();
  assert.match(await result, /abort/i);
});
