import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import type { PeerConnection } from "../src/peer.ts";
import { Downloads } from "../src/swarm/downloads.ts";
import { PiecePicker } from "../src/swarm/piece_picker.ts";
import type { PeerEntry } from "../src/swarm/types.ts";

const PIECE = 256 * 1024; // 16 blocks

/** A torrent's picker and Downloads, and peers that unchoke us and have every piece. */
function swarm(pieces: number, maxInMemory: number) {
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
    now: () => 0,
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
