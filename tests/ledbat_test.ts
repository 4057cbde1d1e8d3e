// LEDBAT (BEP 29 congestion control) driven directly with an injected clock: no sockets, no real time.

import assert from "node:assert/strict";
import { DelayHistory, Ledbat } from "../src/transport/ledbat.ts";

const MSS = 1000;

/** A controller past slow start with a 20 kB window and a base delay of 30 ms (clock offset included). */
function steady(): Ledbat {
  const cc = new Ledbat({ mss: MSS, initialWindow: 20_000 });
  cc.addDelaySample(30_000, 0);
  cc.onLoss(); // leaves slow start: 10 kB
  return cc;
}

Deno.test("the window grows when the queuing delay is under the 100 ms target", () => {
  const cc = steady();
  const before = cc.window;
  cc.addDelaySample(30_000 + 10_000, 1); // 10 ms of queuing
  for (let i = 0; i < 10; i++) cc.onAck(1000, cc.window);
  // a full window acked at 10 ms of 100: gain 3000 * 0.9
  assert.ok(cc.window > before + 2000, `${before} -> ${cc.window}`);
  assert.ok(cc.window < before + 3000, `${before} -> ${cc.window}`);
});

Deno.test("the window shrinks when the queuing delay is over the target, and never below one packet", () => {
  const cc = steady();
  const before = cc.window;
  cc.addDelaySample(30_000 + 150_000, 1); // 150 ms of queuing: half a target over
  cc.addDelaySample(30_000 + 150_000, 2);
  cc.addDelaySample(30_000 + 150_000, 3);
  cc.onAck(before, before);
  assert.ok(Math.abs(cc.window - (before - 1500)) < 1, `${before} -> ${cc.window}`);
  for (let i = 0; i < 1000; i++) cc.onAck(cc.window, cc.window);
  assert.equal(cc.window, MSS);
});

Deno.test("at the target the window holds; the gain scales with the share of the window acked", () => {
  const cc = steady();
  const w = cc.window;
  for (let i = 0; i < 3; i++) cc.addDelaySample(30_000 + 100_000, 1 + i);
  cc.onAck(1000, w);
  assert.equal(cc.window, w);
  const a = steady(), b = steady();
  a.addDelaySample(30_000, 1);
  b.addDelaySample(30_000, 1);
  a.onAck(w, w); // a whole window in one ack: one full gain (3000 bytes at zero delay)
  b.onAck(w / 10, w); // a tenth of it
  assert.ok(Math.abs(a.window - w - 3000) < 1e-6, `${a.window}`);
  assert.ok(Math.abs(b.window - w - 300) < 1e-6, `${b.window}`);
});

Deno.test("the current delay is the smallest of the last three samples (one late packet does not count)", () => {
  const cc = steady();
  cc.addDelaySample(30_000 + 5_000, 1);
  cc.addDelaySample(30_000 + 400_000, 2); // one packet stuck behind something
  cc.addDelaySample(30_000 + 6_000, 3);
  assert.equal(cc.queuingDelay, 5_000);
  const w = cc.window;
  cc.onAck(1000, w);
  assert.ok(cc.window > w);
});

Deno.test("loss halves the window (but not below one packet); a timeout drops it to one packet", () => {
  const cc = new Ledbat({ mss: MSS, initialWindow: 64_000 });
  cc.onLoss();
  assert.equal(cc.window, 32_000);
  assert.equal(cc.slowStart, false);
  cc.onLoss();
  assert.equal(cc.window, 16_000);
  cc.onTimeout();
  assert.equal(cc.window, MSS);
  assert.equal(cc.slowStart, true);
  cc.onLoss();
  assert.equal(cc.window, MSS);
});

Deno.test("slow start doubles per round trip until the delay reaches the target, then the window halves", () => {
  const cc = new Ledbat({ mss: MSS, initialWindow: 4 * MSS });
  cc.addDelaySample(1_000_000, 0);
  assert.equal(cc.slowStart, true);
  let w = cc.window;
  for (let rtt = 0; rtt < 5; rtt++) {
    cc.onAck(w, w);
    assert.equal(cc.window, 2 * w);
    w = cc.window;
  }
  for (let i = 0; i < 3; i++) cc.addDelaySample(1_000_000 + 120_000, 10 + i);
  cc.onAck(1000, w);
  assert.equal(cc.slowStart, false);
  assert.ok(cc.window <= w / 2 && cc.window > w / 2 - 1000, `${w} -> ${cc.window}`);
});

Deno.test("an application that does not fill the window does not grow it", () => {
  const cc = steady();
  cc.addDelaySample(30_000, 1);
  const w = cc.window;
  cc.onAck(1000, 2000); // 2 kB in flight of a 10 kB window
  assert.equal(cc.window, w);
  cc.onAck(1000, 2000, true); // ...unless the sender says it was window-limited
  assert.ok(cc.window > w);
});

Deno.test("the base delay is the minimum over the bucket history and ages out bucket by bucket", () => {
  const h = new DelayHistory(120_000, 7);
  const min = 60_000;
  h.add(50_000, 0); // the lowest ever, in the first bucket
  for (let t = 1; t <= 13; t++) h.add(80_000 + t, t * min);
  // buckets start at 0, 2, 4, …, 12 min (minima 50 000, 80 002, 80 004, …): the first is one of the last 7
  assert.equal(h.base, 50_000);
  h.add(90_000, 14 * min); // an 8th bucket pushes the first out
  assert.equal(h.base, 80_002);
  assert.equal(h.add(80_002 + 2500, 14 * min + 1), 2500);
});

Deno.test("delay samples wrap at 2^32 (the peer's clock is unrelated to ours)", () => {
  const h = new DelayHistory(120_000, 7);
  h.add(0xffff_f000, 0);
  assert.equal(h.add(0x0000_1000, 1), 0x2000); // 8 ms later in wrapping arithmetic, not 4 295 s earlier
  assert.equal(h.base, 0xffff_f000);
  assert.equal(h.add(0xffff_e000, 2), 0); // a new minimum across the wrap
  assert.equal(h.base, 0xffff_e000);
});
