import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import type { PeerConnection } from "../src/peer.ts";
import { Downloads } from "../src/swarm/downloads.ts";
import { PiecePicker } from "../src/swarm/piece_picker.ts";
import type { PeerEntry } from "../src/swarm/types.ts";

const PIECE = 256 * 1024; // 16 blocks

/** A torrent's picker and Downloads, and peers that unchoke us and have every piece. */
function swarm(pieces: number, maxInMemory: number, clock = { now: 0 }) {
  const picker = new PiecePicker({
    pieceCount: pieces,
    pieceLength: PIECE,
    totalLength: pieces * PIECE,
    have: new Bitfield(pieces),
    maxInMemory,
  });
  const peers: PeerEntry[] = [];
  const downloads = new Downloads({
    picker,
    now: () => clock.now,
    active: () => true,
    wanting: () => true,
    peers: () => peers,
    onPiece: () => {},
    onBytes: () => {},
  });
  const all = new Bitfield(pieces);
  for (let i = 0; i < pieces; i++) all.set(i);
  const peer = (rateDown: number): PeerEntry => {
    const requests = picker.requests.forPeer();
    const conn = {
      closed: false,
      peerChoking: false,
      allowedFast: new Set<number>(),
      queueDepth: 500,
      get outstanding() {
        return requests.size;
      },
      bitfield: all,
      requests,
      amInterested: true,
      interested() {},
      notInterested() {},
      request(index: number, begin: number) {
        requests.add(picker.requests.key(index, begin));
        return true;
      },
    } as unknown as PeerConnection;
    const e = {
      id: peers.length,
      conn,
      ready: true,
      rateDown,
      rateUp: 0,
      rejected: new Map(),
    } as unknown as PeerEntry;
    peers.push(e);
    return e;
  };
  return { picker, downloads, peer };
}

Deno.test("Downloads shares the piece budget among the peers that unchoke us by their rates", () => {
  const { downloads, peer } = swarm(1000, 32); // 32 pieces of 16 blocks: 512 blocks
  const slow = peer(1_000_000), fast = peer(9_000_000);
  downloads.rebalance();
  // the slow peer asks first: it must not take the whole budget
  downloads.fill(slow);
  downloads.fill(fast);
  assert.ok(slow.conn.outstanding <= 64, `slow peer has ${slow.conn.outstanding} in flight`);
  assert.ok(fast.conn.outstanding >= 400, `fast peer has ${fast.conn.outstanding} in flight`);
});

Deno.test("Downloads gives a peer not measured yet a few requests, and all of the budget to a lone peer", () => {
  const { downloads, peer } = swarm(1000, 32);
  const lone = peer(0);
  downloads.rebalance();
  downloads.fill(lone);
  assert.equal(lone.conn.outstanding, 500); // the whole budget (512 blocks), capped by its queue depth
  const { downloads: d2, peer: p2 } = swarm(1000, 32);
  const busy = p2(50_000_000), fresh = p2(0);
  d2.rebalance();
  d2.fill(fresh);
  d2.fill(busy);
  assert.ok(
    fresh.conn.outstanding >= 8,
    "a new peer gets at least a few requests to show its rate",
  );
  assert.ok(busy.conn.outstanding >= 400);
});

Deno.test("Downloads times the round trip of a first block asked for while nothing was in flight", () => {
  const clock = { now: 1000 };
  const { downloads, peer, picker } = swarm(100, 8, clock);
  const e = peer(0);
  downloads.rebalance();
  assert.equal(downloads.rttMs(e), undefined);
  downloads.fill(e); // nothing in flight before: the first block is timed
  const [first, second] = [...e.conn.requests.keys()].map((k) => ({
    index: picker.requests.indexOf(k),
    begin: picker.requests.beginOf(k),
  }));
  const block = new Uint8Array(16384);
  clock.now = 1030;
  e.conn.requests.delete(picker.requests.key(second.index, second.begin));
  downloads.block(e, second.index, second.begin, block); // not the timed one
  assert.equal(downloads.rttMs(e), undefined);
  clock.now = 1100;
  e.conn.requests.delete(picker.requests.key(first.index, first.begin));
  downloads.block(e, first.index, first.begin, block);
  assert.equal(downloads.rttMs(e), 100);
  // later blocks waited behind others: they do not count
  clock.now = 1500;
  const [k] = e.conn.requests.keys();
  e.conn.requests.delete(k);
  downloads.block(e, picker.requests.indexOf(k), picker.requests.beginOf(k), block);
  assert.equal(downloads.rttMs(e), 100);
});
