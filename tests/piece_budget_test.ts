import assert from "node:assert/strict";
import { PieceBudget } from "../src/swarm/piece_budget.ts";

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
