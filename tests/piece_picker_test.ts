import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import { BLOCK_SIZE, PiecePicker } from "../src/swarm/piece_picker.ts";
import type { PeerRequests } from "../src/swarm/requests.ts";

/** A seeded generator for reproducible draws (mulberry32: nearby seeds give unrelated first draws). */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function full(n: number): Bitfield {
  const b = new Bitfield(n);
  b.setAll();
  return b;
}

function make(pieces: number, pieceLength = 4 * BLOCK_SIZE, total = pieces * pieceLength) {
  const have = new Bitfield(pieces);
  const picker = new PiecePicker({
    pieceCount: pieces,
    pieceLength,
    totalLength: total,
    have,
    random: seeded(1),
  });
  return { have, picker };
}

/** Picks for a peer and records the requests as a connection does when it sends them (a new peer by default). */
function take(
  picker: PiecePicker,
  has: Bitfield,
  max: number,
  peer: PeerRequests = picker.requests.forPeer(),
  allowed?: ReadonlySet<number>,
) {
  const blocks = picker.pick(has, max, peer, allowed);
  for (const b of blocks) peer.add(picker.requests.key(b.index, b.begin));
  return blocks;
}

Deno.test("pick() chooses the rarest piece first", () => {
  const { picker } = make(4);
  const a = full(4), b = new Bitfield(4), c = new Bitfield(4);
  b.set(0), b.set(1), b.set(3);
  c.set(0), c.set(1), c.set(3);
  picker.addAvailability(a);
  picker.addAvailability(b);
  picker.addAvailability(c);
  // piece 2 is only on peer a: rarest
  const blocks = take(picker, a, 4);
  assert.deepEqual(blocks.map((x) => x.index), [2, 2, 2, 2]);
});

Deno.test("pick() prefers higher priority over rarity, and skips priority 0", () => {
  const { picker } = make(4);
  const a = full(4);
  picker.addAvailability(a);
  picker.incrementAvailability(3);
  picker.setPriorities([0, 1, 1, 1000]);
  const blocks = take(picker, a, 8);
  const order = [...new Set(blocks.map((x) => x.index))];
  assert.equal(order[0], 3, "priority 1000 first although it is the most common");
  assert.ok(order[1] === 1 || order[1] === 2);
  assert.ok(!blocks.some((x) => x.index === 0));
  assert.equal(picker.wants(0), false);
});

Deno.test("pick() finishes partial pieces before starting new ones", () => {
  const { picker } = make(4);
  const a = full(4);
  picker.addAvailability(a);
  const first = take(picker, a, 2);
  assert.equal(first.length, 2);
  const piece = first[0].index;
  const next = take(picker, a, 2);
  assert.deepEqual(next.map((x) => x.index), [piece, piece]);
  assert.deepEqual(next.map((x) => x.begin), [2 * BLOCK_SIZE, 3 * BLOCK_SIZE]);
});

Deno.test("receive() assembles a piece and returns it when the last block arrives", () => {
  const { picker } = make(1, 2 * BLOCK_SIZE);
  const a = full(1);
  const blocks = take(picker, a, 10);
  assert.equal(blocks.length, 2);
  const b0 = new Uint8Array(BLOCK_SIZE).fill(1), b1 = new Uint8Array(BLOCK_SIZE).fill(2);
  assert.equal(picker.receive(0, BLOCK_SIZE, b1, 7), null);
  const done = picker.receive(0, 0, b0, 7);
  assert.ok(done);
  assert.equal(done.buffer[0], 1);
  assert.equal(done.buffer[BLOCK_SIZE], 2);
  assert.deepEqual([...done.senders], [7]);
  // a duplicate is not wanted
  assert.equal(picker.receive(0, 0, b0, 8), undefined);
});

Deno.test("the last piece and last block are short", () => {
  const total = 2 * 2 * BLOCK_SIZE + 100;
  const { picker } = make(3, 2 * BLOCK_SIZE, total);
  assert.equal(picker.pieceSize(2), 100);
  picker.setPriorities([0, 0, 1]);
  const blocks = take(picker, full(3), 10);
  assert.deepEqual(blocks, [{ index: 2, begin: 0, length: 100 }]);
  // a block of the wrong length is refused
  assert.equal(picker.receive(2, 0, new Uint8Array(BLOCK_SIZE), 1), undefined);
  assert.ok(picker.receive(2, 0, new Uint8Array(100), 1));
});

Deno.test("a withdrawn request frees a block so another peer can take it", () => {
  const { picker } = make(1, BLOCK_SIZE);
  const a = full(1);
  const peer = picker.requests.forPeer();
  const [blk] = take(picker, a, 1, peer);
  assert.equal(take(picker, a, 1, peer).length, 0);
  peer.delete(picker.requests.key(blk.index, blk.begin));
  assert.equal(take(picker, a, 1).length, 1);
});

Deno.test("endgame asks a second peer for blocks in flight, at most twice each", () => {
  const { picker } = make(1, 2 * BLOCK_SIZE);
  const a = full(1);
  const peer = picker.requests.forPeer();
  const first = take(picker, a, 10, peer);
  assert.equal(first.length, 2);
  assert.equal(picker.inEndgame, true);
  // the same peer is never asked twice for a block
  assert.equal(take(picker, a, 10, peer).length, 0);
  const dup = take(picker, a, 10);
  assert.equal(dup.length, 2);
  assert.equal(take(picker, a, 10).length, 0);
});

Deno.test("pieceFailed() makes every block of the piece wanted again", () => {
  const { picker } = make(1, BLOCK_SIZE);
  const a = full(1);
  take(picker, a, 1);
  const done = picker.receive(0, 0, new Uint8Array(BLOCK_SIZE), 1)!;
  assert.equal(take(picker, a, 1).length, 0);
  picker.pieceFailed(done);
  assert.equal(take(picker, a, 1).length, 1);
});

Deno.test("a piece that failed with blocks from two peers comes next from one peer alone (smart ban needs a clean copy)", () => {
  const { picker } = make(2, 4 * BLOCK_SIZE);
  const a = full(2);
  const liar = picker.requests.forPeer(), honest = picker.requests.forPeer();
  // two blocks each: the piece mixes both peers
  const l = take(picker, a, 2, liar), h = take(picker, a, 2, honest);
  const mixed = l[0].index, other = 1 - mixed;
  assert.deepEqual([...l, ...h].map((b) => b.index), [mixed, mixed, mixed, mixed]);
  let failed;
  for (
    const [b, id, peer] of [
      ...l.map((b) => [b, 1, liar] as const),
      ...h.map((b) => [b, 2, honest] as const),
    ]
  ) {
    peer.delete(picker.requests.key(b.index, b.begin));
    failed = picker.receive(b.index, b.begin, new Uint8Array(BLOCK_SIZE), id) ?? failed;
  }
  assert.equal(failed?.senders.size, 2);
  picker.pieceFailed(failed!);
  // the retry: the first peer to ask gets the piece again (two blocks, its pipeline's worth); the other peer gets
  // none of it while the first still fetches it, only the other piece
  // the other piece becomes more common: the mixed one is the rarest, whichever piece affinity or the draw favour
  const otherOnly = new Bitfield(2);
  otherOnly.set(other);
  picker.addAvailability(otherOnly);
  const again = take(picker, a, 2, honest);
  assert.deepEqual(again.map((b) => b.index), [mixed, mixed]);
  assert.ok(take(picker, a, 4, liar).every((b) => b.index === other));
  assert.deepEqual(take(picker, a, 2, honest).map((b) => b.index), [mixed, mixed]);
  // once the first peer has nothing of it in flight (choked, closed), another may take the piece over
  const { picker: p2 } = make(1, 2 * BLOCK_SIZE);
  const one = full(1);
  const x = p2.requests.forPeer(), y = p2.requests.forPeer();
  const xs = take(p2, one, 1, x), ys = take(p2, one, 1, y);
  let both;
  for (const [b, id, peer] of [[xs[0], 1, x], [ys[0], 2, y]] as const) {
    peer.delete(p2.requests.key(b.index, b.begin));
    both = p2.receive(b.index, b.begin, new Uint8Array(BLOCK_SIZE), id) ?? both;
  }
  p2.pieceFailed(both!);
  const owned = take(p2, one, 1, x);
  assert.equal(owned.length, 1);
  assert.equal(take(p2, one, 1, y).length, 0, "the owner still fetches it");
  x.delete(p2.requests.key(owned[0].index, owned[0].begin)); // x was choked: its request withdrawn
  assert.equal(take(p2, one, 2, y).length, 2, "taken over");
});

Deno.test("pick() honours an allowed set (choked peer's allowed-fast pieces)", () => {
  const { picker } = make(8);
  const a = full(8);
  picker.addAvailability(a);
  const blocks = take(picker, a, 100, undefined, new Set([5]));
  assert.deepEqual([...new Set(blocks.map((b) => b.index))], [5]);
});

Deno.test("random tie-breaking spreads the first piece over the torrent", () => {
  const firsts = new Set<number>();
  for (let seed = 1; seed <= 20; seed++) {
    const picker = new PiecePicker({
      pieceCount: 64,
      pieceLength: BLOCK_SIZE,
      totalLength: 64 * BLOCK_SIZE,
      have: new Bitfield(64),
      random: seeded(seed),
    });
    const a = full(64);
    picker.addAvailability(a);
    firsts.add(take(picker, a, 1)[0].index);
  }
  assert.ok(firsts.size >= 12, `first pieces spread: ${[...firsts]}`);
  assert.ok(Math.max(...firsts) - Math.min(...firsts) > 20, "not simply in order");
});

Deno.test("equally rare pieces are taken in order after a random start (extent affinity)", () => {
  const { picker } = make(64, BLOCK_SIZE);
  const a = full(64);
  picker.addAvailability(a);
  const order = Array.from({ length: 6 }, () => take(picker, a, 1)[0].index);
  for (let i = 1; i < order.length; i++) {
    if (order[i - 1] < 63) assert.equal(order[i], order[i - 1] + 1, `order ${order}`);
  }
  // a rarer piece still wins over the next one
  const { picker: p2 } = make(10, BLOCK_SIZE);
  const all = full(10), most = full(10), two = new Bitfield(10);
  most.clear(6);
  two.set(2);
  p2.addAvailability(all);
  p2.addAvailability(most); // piece 6 is the rarest
  assert.equal(take(p2, all, 1)[0].index, 6);
  assert.equal(take(p2, all, 1)[0].index, 7, "then the next one, as rare as any other");
  p2.removeAvailability(two); // piece 2 becomes rarer than piece 8, the next one
  assert.equal(take(p2, all, 1)[0].index, 2);
});

Deno.test("no new piece is started while maxInMemory pieces are held", () => {
  const picker = new PiecePicker({
    pieceCount: 16,
    pieceLength: 4 * BLOCK_SIZE,
    totalLength: 16 * 4 * BLOCK_SIZE,
    have: new Bitfield(16),
    maxInMemory: 3,
    random: seeded(3),
  });
  const a = full(16);
  picker.addAvailability(a);
  const blocks = take(picker, a, 100);
  assert.equal(new Set(blocks.map((b) => b.index)).size, 3, "three pieces started");
  assert.equal(blocks.length, 12);
  // complete one piece: it is held (waiting for verification), so still nothing new
  const idx = blocks[0].index;
  let done;
  for (const b of blocks.filter((b) => b.index === idx)) {
    done = picker.receive(b.index, b.begin, new Uint8Array(b.length), 1);
  }
  assert.ok(done);
  assert.equal(take(picker, a, 100).length, 0, "pending piece still counts");
  picker.pieceVerified(done);
  picker.release(done.buffer);
  const more = take(picker, a, 100);
  assert.equal(new Set(more.map((b) => b.index)).size, 1, "one new piece once one was written");
});

Deno.test("pickRun() hands out contiguous pieces from the start of the longest gap", () => {
  const { have, picker } = make(12, BLOCK_SIZE);
  // had: 0, 3; gaps: 1..2 (2), 4..11 (8)
  have.set(0), have.set(3);
  assert.deepEqual(picker.pickRun(3), { first: 4, count: 3 });
  // gaps now 1..2 and 7..11: the longer one again
  assert.deepEqual(picker.pickRun(100), { first: 7, count: 5 });
  assert.deepEqual(picker.pickRun(100), { first: 1, count: 2 });
  assert.equal(picker.pickRun(100), undefined, "everything is reserved or had");
  assert.equal(picker.reservedCount, 10);
  assert.ok(picker.isBusy(5));
});

Deno.test("pickRun() keeps to the highest priority and honours the filter", () => {
  const { picker } = make(10, BLOCK_SIZE);
  picker.setPriorities([1, 1, 1, 5, 5, 1, 5, 5, 5, 0]);
  assert.deepEqual(picker.pickRun(10), { first: 6, count: 3 }, "the longest run of priority 5");
  assert.deepEqual(picker.pickRun(10), { first: 3, count: 2 });
  assert.deepEqual(picker.pickRun(10, { filter: (i) => i >= 2 }), { first: 2, count: 1 });
  assert.deepEqual(picker.pickRun(10), { first: 0, count: 2 });
  assert.deepEqual(picker.pickRun(10), { first: 5, count: 1 });
  assert.equal(picker.pickRun(10), undefined, "piece 9 is not wanted");
});

Deno.test("pick() never hands out blocks of reserved pieces, and unreserve() gives them back", () => {
  const { picker } = make(3, 2 * BLOCK_SIZE);
  const a = full(3);
  picker.addAvailability(a);
  assert.deepEqual(picker.pickRun(2), { first: 0, count: 2 });
  const blocks = take(picker, a, 100);
  assert.deepEqual([...new Set(blocks.map((b) => b.index))], [2]);
  assert.equal(picker.inEndgame, true, "reserved pieces count as in flight");
  const again = take(picker, a, 100);
  assert.ok(again.every((b) => b.index === 2), "endgame duplicates blocks, never reserved pieces");
  assert.equal(picker.unreserve(1), true);
  assert.equal(picker.unreserve(1), false);
  assert.equal(picker.inEndgame, false);
  assert.deepEqual([...new Set(take(picker, a, 100).map((b) => b.index))], [1]);
});

Deno.test("receivePiece() turns a reserved piece into a complete piece credited to its source", () => {
  const { picker } = make(2, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE);
  assert.deepEqual(picker.pickRun(2), { first: 0, count: 2 });
  assert.equal(picker.receivePiece(1, new Uint8Array(BLOCK_SIZE - 1), 9), undefined, "wrong size");
  const data = new Uint8Array(BLOCK_SIZE).fill(7);
  const last = picker.receivePiece(1, data, 9);
  assert.ok(last);
  assert.equal(last.index, 1);
  assert.equal(last.buffer.length, BLOCK_SIZE);
  assert.deepEqual(last.buffer, data);
  assert.notEqual(last.buffer, data, "copied");
  assert.deepEqual([...last.senders], [9]);
  assert.deepEqual([...last.blockSenders], [9]);
  assert.equal(picker.pendingCount, 1);
  assert.equal(picker.receivePiece(1, data, 9), undefined, "not reserved any more");
  // a failed piece is wanted again, by anybody
  picker.pieceFailed(last);
  assert.equal(picker.isBusy(1), false);
  picker.abandon(0);
  assert.equal(picker.receivePiece(0, new Uint8Array(2 * BLOCK_SIZE), 9), undefined, "abandoned");
  assert.equal(picker.reservedCount, 0);
});

Deno.test("pickRun() counts reserved pieces toward maxInMemory, and so does pick()", () => {
  const picker = new PiecePicker({
    pieceCount: 10,
    pieceLength: BLOCK_SIZE,
    totalLength: 10 * BLOCK_SIZE,
    have: new Bitfield(10),
    maxInMemory: 4,
    random: seeded(5),
  });
  const a = full(10);
  picker.addAvailability(a);
  assert.equal(take(picker, a, 1, undefined, new Set([0])).length, 1);
  assert.deepEqual(
    picker.pickRun(10),
    { first: 1, count: 3 },
    "one slot is taken by a partial piece",
  );
  assert.equal(picker.pickRun(10), undefined);
  assert.equal(take(picker, a, 10).length, 0, "no new piece for peers either");
  const p = picker.receivePiece(1, new Uint8Array(BLOCK_SIZE), 2)!;
  assert.equal(
    picker.pickRun(10),
    undefined,
    "a piece waiting for verification still holds memory",
  );
  picker.pieceVerified(p);
  assert.deepEqual(picker.pickRun(10), { first: 4, count: 1 });
});

Deno.test("pickRun() takes over a piece in progress whose requests were all withdrawn", () => {
  const { picker } = make(2, 2 * BLOCK_SIZE);
  const a = full(2);
  picker.addAvailability(a);
  const peer = picker.requests.forPeer();
  const blocks = take(picker, a, 100, peer);
  assert.equal(blocks.length, 4);
  peer.delete(picker.requests.key(0, 0));
  picker.receive(0, 0, new Uint8Array(BLOCK_SIZE), 1);
  assert.equal(picker.pickRun(4), undefined, "every piece is being downloaded");
  // the peer went away: its requests are withdrawn
  for (const key of peer.keys()) peer.delete(key);
  assert.deepEqual(picker.pickRun(4), { first: 0, count: 1 }, "the most complete idle piece");
  assert.deepEqual(picker.pickRun(4), { first: 1, count: 1 });
  assert.equal(picker.partialCount, 0);
  assert.equal(take(picker, a, 100).length, 0);
});

Deno.test("pickRun() with atLeast waits for memory instead of handing out short runs", () => {
  const picker = new PiecePicker({
    pieceCount: 10,
    pieceLength: BLOCK_SIZE,
    totalLength: 10 * BLOCK_SIZE,
    have: new Bitfield(10),
    maxInMemory: 4,
    random: seeded(5),
  });
  assert.deepEqual(picker.pickRun(3, { atLeast: 3 }), { first: 0, count: 3 });
  assert.equal(picker.pickRun(3, { atLeast: 2 }), undefined, "one slot left: wait");
  assert.deepEqual(picker.pickRun(3), { first: 3, count: 1 }, "without atLeast, a run of one");
  for (const i of [0, 1, 2]) {
    picker.pieceVerified(picker.receivePiece(i, new Uint8Array(BLOCK_SIZE), 1)!);
  }
  assert.deepEqual(picker.pickRun(3, { atLeast: 3 }), { first: 4, count: 3 });
  // a gap shorter than atLeast is handed out whole
  const { have, picker: p2 } = make(4, BLOCK_SIZE);
  have.set(1);
  have.set(3);
  assert.deepEqual(p2.pickRun(8, { atLeast: 4 }), { first: 0, count: 1 });
});

// ---------------------------------------------------------------------------------------------------------
// Deadlines (streaming) and sequential order

Deno.test("pieces with a deadline are picked first, soonest first, before pieces in progress", () => {
  const { picker } = make(10);
  const all = full(10);
  picker.addAvailability(all);
  take(picker, all, 2, picker.requests.forPeer(), new Set([2])); // piece 2 in progress, half requested
  picker.setDeadlines([[7, 65536], [5, 0], [9, 131072]]);
  assert.ok(picker.hasDeadlines);
  assert.ok(picker.hasDeadline(5) && !picker.hasDeadline(6));
  const blocks = take(picker, all, 14);
  assert.deepEqual(
    blocks.map((b) => b.index),
    [5, 5, 5, 5, 7, 7, 7, 7, 9, 9, 9, 9, 2, 2], // then the piece in progress
  );
  picker.setDeadlines([]);
  assert.ok(!picker.hasDeadlines);
});

Deno.test("a peer's urgent allowance caps its blocks of deadline pieces; the rest of its pipeline gets others", () => {
  const { picker } = make(10);
  const all = full(10);
  picker.addAvailability(all);
  picker.setDeadlines([[0, 0], [1, 65536]]);
  const slow = picker.requests.forPeer();
  const first = picker.pick(all, 6, slow, undefined, { urgent: 3 });
  for (const b of first) slow.add(picker.requests.key(b.index, b.begin));
  assert.deepEqual(first.slice(0, 3).map((b) => b.index), [0, 0, 0]);
  assert.ok(first.slice(3).every((b) => b.index > 1), "no more deadline blocks for the slow peer");
  // it holds 3 already: no more for it; a fast peer takes what is left of the deadline pieces first
  const again = picker.pick(all, 4, slow, undefined, { urgent: 3 });
  assert.ok(again.every((b) => b.index > 1));
  for (const b of again) slow.add(picker.requests.key(b.index, b.begin));
  const fast = take(picker, all, 5);
  assert.deepEqual(fast.map((b) => b.index), [0, 1, 1, 1, 1]);
  // an allowance of 0 hands out none at all
  picker.setDeadlines([[8, 0]]);
  assert.ok(
    picker.pick(all, 4, picker.requests.forPeer(), undefined, { urgent: 0 }).every((b) =>
      b.index !== 8
    ),
  );
});

Deno.test("endgame on the deadline window: the nearest pieces' blocks in flight are asked of a second peer", () => {
  const { picker } = make(10);
  const all = full(10);
  picker.addAvailability(all);
  picker.setDeadlines([[3, 0], [4, 1], [5, 2]]);
  const a = picker.requests.forPeer();
  const blocks = picker.pick(all, 12, a);
  for (const b of blocks) a.add(picker.requests.key(b.index, b.begin));
  assert.deepEqual(new Set(blocks.map((b) => b.index)), new Set([3, 4, 5]));
  // every block of the window is requested: a second peer duplicates pieces 3 and 4 (the nearest two), not 5,
  // then goes on with other pieces (the torrent as a whole is not in endgame)
  const b = take(picker, all, 12);
  assert.deepEqual(b.slice(0, 8).map((x) => x.index), [3, 3, 3, 3, 4, 4, 4, 4]);
  assert.ok(b.slice(8).every((x) => ![3, 4, 5].includes(x.index)));
  assert.equal(picker.requests.inflight(picker.requests.key(3, 0)), 2);
});

Deno.test("deadline pieces are wanted whatever their file's priority, and may use twice maxInMemory", () => {
  const have = new Bitfield(20);
  const picker = new PiecePicker({
    pieceCount: 20,
    pieceLength: BLOCK_SIZE,
    totalLength: 20 * BLOCK_SIZE,
    have,
    maxInMemory: 4,
  });
  const all = full(20);
  picker.addAvailability(all);
  picker.setPriorities(new Array(20).fill(0));
  assert.ok(!picker.wants(12));
  assert.equal(take(picker, all, 10).length, 0);
  picker.setDeadlines(Array.from({ length: 10 }, (_, k) => [10 + k, k] as const));
  assert.ok(picker.wants(12));
  assert.equal(picker.wantedLeft, 10);
  // four pieces of memory, but a reader waits: up to eight
  const blocks = take(picker, all, 20);
  assert.deepEqual(blocks.map((b) => b.index), [10, 11, 12, 13, 14, 15, 16, 17]);
});

Deno.test("sequential: new pieces in order within the highest priority, not rarest first", () => {
  const { picker } = make(8);
  picker.sequential = true;
  const all = full(8);
  const some = new Bitfield(8);
  some.set(5), some.set(6);
  picker.addAvailability(all);
  picker.addAvailability(some);
  picker.setPriorities([1, 1, 1, 1, 1, 1, 2, 1]);
  // piece 6 first (priority 2), then 0, 1, 2… although 0-4 and 7 are rarer than 5
  assert.deepEqual(take(picker, all, 4 * 5).map((b) => b.index).filter((_, k) => k % 4 === 0), [
    6,
    0,
    1,
    2,
    3,
  ]);
  assert.ok(picker.sequential);
});
