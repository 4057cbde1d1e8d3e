import assert from "node:assert/strict";
import { PieceBudget, type RateSources } from "../src/swarm/piece_budget.ts";

const MiB = 1024 * 1024;

Deno.test("PieceBudget keeps its floor for a fast local peer", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  for (let i = 0; i < 10; i++) budget.update(600e6, 2); // 1.2 MB in flight
  assert.equal(budget.bytes, 8 * MiB);
});

Deno.test("PieceBudget grows to three times rate x round trip, at most fourfold per update", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  budget.update(80e6, 100); // 8 MB in flight: 24 MB wanted
  assert.equal(budget.bytes, 24e6);
  const small = new PieceBudget({ floor: 1 * MiB, ceiling: 64 * MiB });
  small.update(100e6, 100); // 30 MB wanted, but at most 4 MiB after one update
  assert.equal(small.bytes, 4 * MiB);
  small.update(100e6, 100);
  assert.equal(small.bytes, 16 * MiB);
});

Deno.test("PieceBudget stops at its ceiling and shrinks slowly back to its floor", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 32 * MiB });
  for (let i = 0; i < 5; i++) budget.update(500e6, 100);
  assert.equal(budget.bytes, 32 * MiB);
  budget.update(0, 100); // nothing arrived in a tick: a tenth less, not all at once
  assert.equal(budget.bytes, 32 * MiB * 0.9);
  for (let i = 0; i < 50; i++) budget.update(0, 100);
  assert.equal(budget.bytes, 8 * MiB);
});

Deno.test("PieceBudget with a ceiling under the usual floor stays at the ceiling", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 4 * MiB });
  assert.equal(budget.bytes, 4 * MiB);
  budget.update(100e6, 100);
  assert.equal(budget.bytes, 4 * MiB);
});

/** A deterministic swing of ±`amount` around 1, the n-th of a fixed sequence (a link's or a swarm's noise). */
function swing(n: number, amount: number): number {
  return 1 + amount * Math.sin(n * 2.39996);
}

/**
 * A link whose rate the budget limits: a lost segment holds back what follows it, so blocks take four times the
 * shortest round trip (50 ms) and the rate is what the budget lets be in flight ÷ 0.2 s, up to the link's 150 MB/s
 * (which needs about 29 MiB). Returns the rates delivered.
 */
function lossyLink(
  budget: PieceBudget,
  updates: number,
  from: RateSources = { peers: 1, seeds: 1 },
): number[] {
  const rates: number[] = [];
  for (let i = 0; i < updates; i++) {
    const rate = Math.min(150e6, budget.bytes / 0.2);
    rates.push(rate);
    budget.update(rate * swing(i, 0.2), 50, from);
  }
  return rates;
}

/** The mean of `values` from `from` on. */
function meanFrom(values: number[], from: number): number {
  const tail = values.slice(from);
  return tail.reduce((a, b) => a + b, 0) / tail.length;
}

Deno.test("PieceBudget grows on a lossy link, where the rate follows the budget, to what the link carries", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  const rates = lossyLink(budget, 60);
  // rate × the shortest round trip × 3 asks for 8 MiB / 0.2 s × 50 ms × 3 = 6 MiB: the floor, 42 MB/s, for ever
  const mean = meanFrom(rates, 10);
  assert.ok(mean >= 0.9 * 150e6, `${(mean / 1e6).toFixed(0)} MB/s after the first 10 updates`);
});

Deno.test("PieceBudget keeps its floor where the rate does not follow it (an upload-limited swarm)", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  const seen: number[] = [];
  // 20 MB/s whatever the budget, from a peer 50 ms away, each update's rate anywhere from a third of it to
  // five thirds (a fixed pseudo-random sequence)
  let x = 12345;
  for (let i = 0; i < 200; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    seen.push(budget.update(20e6 * (1 / 3 + (4 / 3) * (x / 2147483648)), 50));
  }
  assert.ok(Math.max(...seen) <= 16 * MiB, `budget reached ${Math.max(...seen) / MiB} MiB`);
  const atFloor = seen.filter((b) => b === 8 * MiB).length;
  assert.ok(atFloor >= 160, `at the floor ${atFloor} of 200 updates`);
});

Deno.test("PieceBudget probes among several seeds, each on a lossy link", () => {
  const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  const mean = meanFrom(lossyLink(budget, 60, { peers: 3, seeds: 1 }), 10);
  assert.ok(mean >= 0.9 * 150e6, `${(mean / 1e6).toFixed(0)} MB/s after the first 10 updates`);
});

Deno.test("PieceBudget does not probe among many leechers or on loopback, and lets a gain go there", () => {
  const many = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  lossyLink(many, 40, { peers: 8, seeds: 0.2 }); // eight leechers trading, a seed giving a fifth
  assert.equal(many.bytes, 8 * MiB);
  const local = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  for (let i = 0; i < 40; i++) local.update(Math.min(150e6, local.bytes / 0.2), 1);
  assert.equal(local.bytes, 8 * MiB);
  const grown = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
  lossyLink(grown, 40);
  assert.ok(grown.bytes > 16 * MiB);
  lossyLink(grown, 30, { peers: 8, seeds: 0 }); // the download now comes from eight leechers
  assert.equal(grown.bytes, 8 * MiB);
});
