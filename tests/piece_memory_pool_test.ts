import assert from "node:assert/strict";
import { PieceMemory } from "../src/swarm/piece_memory.ts";
import { PieceMemoryPool } from "../src/swarm/piece_memory_pool.ts";

const MiB = 1024 * 1024;
const FLOOR = 8 * MiB;

Deno.test("PieceMemoryPool: one torrent alone may use the whole total, never less than its floor", () => {
  const pool = new PieceMemoryPool(256 * MiB);
  const a = {};
  assert.equal(pool.grant(a, 100 * MiB, FLOOR), 100 * MiB);
  assert.equal(pool.grant(a, 400 * MiB, FLOOR), 256 * MiB);
  assert.equal(pool.grant(a, FLOOR, FLOOR), FLOOR);
  assert.equal(pool.wanting, 0);
  const tiny = new PieceMemoryPool(2 * MiB); // a total under the floor still grants the floor
  assert.equal(tiny.grant(a, 40 * MiB, FLOOR), FLOOR);
});

Deno.test("PieceMemoryPool shares the total fairly among torrents that want more than their floor", () => {
  const pool = new PieceMemoryPool(256 * MiB);
  const a = {}, b = {}, c = {};
  assert.equal(pool.grant(a, 400 * MiB, FLOOR), 256 * MiB); // alone
  assert.equal(pool.grant(b, 400 * MiB, FLOOR), FLOOR + 124 * MiB); // half of what is above the floor
  assert.equal(pool.grant(a, 400 * MiB, FLOOR), FLOOR + 124 * MiB); // a's next update: its half
  // a small ask is met in full, and the others share what it leaves
  assert.equal(pool.grant(c, 20 * MiB, FLOOR), 20 * MiB);
  assert.equal(pool.grant(a, 400 * MiB, FLOOR), FLOOR + 118 * MiB);
  assert.equal(pool.grant(b, 400 * MiB, FLOOR), FLOOR + 118 * MiB);
  assert.equal(pool.wanting, 3);
  // one that stops gives its share back
  pool.release(b);
  pool.release(c);
  assert.equal(pool.grant(a, 400 * MiB, FLOOR), 256 * MiB);
});

Deno.test("PieceMemoryPool: torrents at their floor take nothing from one that downloads", () => {
  const pool = new PieceMemoryPool(256 * MiB);
  for (let i = 0; i < 1000; i++) pool.grant({}, FLOOR, FLOOR); // a thousand seeding torrents
  assert.equal(pool.wanting, 0);
  assert.equal(pool.grant({}, 300 * MiB, FLOOR), 256 * MiB);
});

/** A torrent's piece memory fed one fast peer 100 ms away (the budget asks for 3 × 1 GB/s × 0.1 s). */
function fastTorrent(pool: PieceMemoryPool, pieces: number[]) {
  const peer = { rateDown: 1e9 };
  let downloaded = 0;
  const memory = new PieceMemory({
    pieceLength: MiB,
    ceiling: pool.total,
    pool,
    peers: () => [peer],
    rttMs: () => 100,
    seed: () => true,
    downloaded: () => downloaded,
    apply: (n) => pieces.push(n),
  });
  return {
    memory,
    /** The budget's update after `ms` of the peer's rate. */
    step(now: number, ms: number) {
      downloaded += (peer.rateDown * ms) / 1000;
      memory.update(now);
    },
  };
}

Deno.test("PieceMemory: a session's torrents share its total, and one that stops downloading gives its share back", () => {
  const pool = new PieceMemoryPool(256 * MiB);
  const appliedA: number[] = [], appliedB: number[] = [];
  const a = fastTorrent(pool, appliedA), b = fastTorrent(pool, appliedB);
  let now = 0;
  for (let i = 0; i < 4; i++) a.step(now += 300, 300);
  assert.equal(a.memory.bytes, 256 * MiB); // alone: the whole total (it asks for more)
  assert.equal(appliedA.at(-1), 256);
  for (let i = 0; i < 4; i++) {
    now += 300;
    a.step(now, 300);
    b.step(now, 300);
  }
  assert.equal(a.memory.bytes, FLOOR + 124 * MiB);
  assert.equal(b.memory.bytes, FLOOR + 124 * MiB);
  assert.equal(appliedB.at(-1), 132);
  a.memory.release(); // a paused, completed, or lost its peers
  assert.equal(a.memory.bytes, FLOOR);
  assert.equal(appliedA.at(-1), 8);
  b.step(now += 300, 300);
  assert.equal(b.memory.bytes, 256 * MiB);
});
