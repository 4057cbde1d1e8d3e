import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import { PieceDeadlines, type PieceDeadlinesOptions } from "../src/swarm/deadlines.ts";

const PL = 1024;

function make(pieces: number, options: Partial<PieceDeadlinesOptions> = {}) {
  const have = new Bitfield(pieces);
  const seen = {
    applied: [] as [number, number][],
    applies: 0,
    heads: [] as (number | undefined)[],
    rate: 0,
  };
  const deadlines = new PieceDeadlines({
    pieceLength: PL,
    totalLength: pieces * PL,
    has: (i) => have.has(i),
    apply: (d) => {
      seen.applied = d;
      seen.applies++;
    },
    rate: () => seen.rate,
    changed: (head) => seen.heads.push(head),
    minWindow: 4 * PL,
    maxWindow: 16 * PL,
    windowSeconds: 2,
    ...options,
  });
  return { have, deadlines, seen };
}

const indexes = (d: [number, number][]) => d.map(([i]) => i).sort((a, b) => a - b);

Deno.test("a reader's window: the pieces just ahead of it, nearest first, sized by the rate within bounds", () => {
  const { deadlines, seen } = make(100);
  const r = deadlines.open({ start: 10 * PL + 100, end: 100 * PL });
  assert.deepEqual(indexes(seen.applied), [10, 11, 12, 13, 14]); // 4 pieces' worth from inside piece 10
  assert.deepEqual(new Map(seen.applied).get(10), 0);
  assert.deepEqual(new Map(seen.applied).get(12), 2 * PL - 100);
  seen.rate = 5 * PL; // 2 s of it: 10 pieces
  deadlines.tick();
  assert.deepEqual(indexes(seen.applied), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  seen.rate = 1e9; // capped at 16 pieces
  deadlines.tick();
  assert.equal(seen.applied.length, 17);
  r.close();
  assert.deepEqual(seen.applied, []);
  assert.equal(deadlines.readers, 0);
});

Deno.test("pieces already had get no deadline; the window stops at the reader's end", () => {
  const { deadlines, seen, have } = make(100);
  have.set(21);
  deadlines.open({ start: 20 * PL, end: 22 * PL + 1 });
  assert.deepEqual(indexes(seen.applied), [20, 22]);
});

Deno.test("two readers: each piece gets the nearest reader's distance", () => {
  const { deadlines, seen } = make(100);
  deadlines.open({ start: 0, end: 100 * PL });
  deadlines.open({ start: 2 * PL, end: 100 * PL });
  const d = new Map(seen.applied);
  assert.equal(d.get(0), 0);
  assert.equal(d.get(2), 0);
  assert.equal(d.get(3), PL);
  assert.equal(d.get(5), 3 * PL);
  assert.deepEqual(indexes(seen.applied), [0, 1, 2, 3, 4, 5]);
});

Deno.test("advancing recomputes only when the head or the window's end moves to another piece", () => {
  const { deadlines, seen } = make(100);
  const r = deadlines.open({ start: 0, end: 3 * PL }); // the window ends at the reader's end
  const before = seen.applies;
  r.advance(100);
  r.advance(PL - 1);
  assert.equal(seen.applies, before);
  r.advance(PL);
  assert.equal(seen.applies, before + 1);
  assert.deepEqual(indexes(seen.applied), [1, 2]);
});

Deno.test("a new reader names its first piece (a seek); a wait names the piece waited for", () => {
  const { deadlines, seen, have } = make(100);
  const r = deadlines.open({ start: 50 * PL, end: 60 * PL });
  assert.equal(seen.heads.at(-1), 50);
  have.set(70);
  deadlines.open({ start: 70 * PL, end: 71 * PL }); // had already: no head
  assert.equal(seen.heads.at(-1), undefined);
  void r.wait(50);
  assert.equal(seen.heads.at(-1), 50);
  r.close();
});

Deno.test("wait() resolves once the piece is had, false when its reader closes, and rejects when the torrent closes", async () => {
  const { deadlines, have } = make(100);
  const r = deadlines.open({ start: 0, end: 10 * PL });
  const waiting = r.wait(3);
  have.set(3);
  deadlines.had(3);
  assert.equal(await waiting, true);
  have.set(4);
  assert.equal(await r.wait(4), true, "had already");
  const cancelled = r.wait(5);
  r.close();
  assert.equal(await cancelled, false);
  assert.equal(await r.wait(6), false, "closed reader");
  const other = deadlines.open({ start: 0, end: 10 * PL });
  const pending = other.wait(7);
  deadlines.close(new Error("The torrent was closed"));
  await assert.rejects(pending, /torrent was closed/);
  assert.throws(() => deadlines.open({ start: 0, end: PL }), /torrent was closed/);
});
