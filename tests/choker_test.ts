import assert from "node:assert/strict";
import { Choker, type ChokerPeer } from "../src/swarm/choker.ts";

function peer(id: number, over: Partial<ChokerPeer> = {}): ChokerPeer {
  return {
    id,
    peerInterested: true,
    downloadRate: 0,
    uploadRate: 0,
    snubbed: false,
    connectedAt: -1e9,
    ...over,
  };
}

Deno.test("round() unchokes the four fastest uploaders to us plus one optimistic", () => {
  const choker = new Choker({ random: () => 0 });
  const peers = [1, 2, 3, 4, 5, 6, 7].map((id) => peer(id, { downloadRate: id * 100 }));
  const set = choker.round(peers, false, 0);
  assert.equal(set.size, 5);
  for (const id of [7, 6, 5, 4]) assert.ok(set.has(id));
  assert.equal(choker.optimistic, 1);
});

Deno.test("round() ranks by our upload rate when seeding", () => {
  const choker = new Choker({ slots: 1, random: () => 0 });
  const peers = [peer(1, { downloadRate: 1000, uploadRate: 1 }), peer(2, { uploadRate: 500 })];
  const set = choker.round(peers, true, 0);
  assert.ok(set.has(2));
});

Deno.test("round() leaves uninterested peers choked and snubbed peers out of regular slots", () => {
  const choker = new Choker({ slots: 2, random: () => 0.99 });
  const peers = [
    peer(1, { peerInterested: false, downloadRate: 1e6 }),
    peer(2, { snubbed: true, downloadRate: 1e6 }),
    peer(3, { downloadRate: 10 }),
  ];
  const set = choker.round(peers, false, 0);
  assert.ok(!set.has(1));
  assert.ok(set.has(3));
  // the snubbed peer can only get the optimistic slot
  assert.equal(choker.optimistic, 2);
});

Deno.test("the optimistic unchoke rotates only after its interval", () => {
  let r = 0;
  const choker = new Choker({ slots: 0, optimisticIntervalMs: 30_000, random: () => r });
  const peers = [peer(1), peer(2), peer(3)];
  choker.round(peers, false, 0);
  const first = choker.optimistic;
  r = 0.99;
  choker.round(peers, false, 10_000);
  assert.equal(choker.optimistic, first);
  choker.round(peers, false, 30_000);
  assert.notEqual(choker.optimistic, first);
});

Deno.test("hasFreeSlot() allows slots + 1 unchoked peers", () => {
  const choker = new Choker({ slots: 4 });
  assert.equal(choker.hasFreeSlot(4), true);
  assert.equal(choker.hasFreeSlot(5), false);
});
