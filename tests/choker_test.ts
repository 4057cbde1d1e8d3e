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

Deno.test("round() while seeding unchokes eight peers at once, whatever their rates", () => {
  const choker = new Choker({ random: () => 0 });
  const peers = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((id) =>
    peer(id, { uploadRate: id * 1000, connectedAt: id })
  );
  const set = choker.round(peers, true, 0);
  assert.equal(set.size, 9); // 8 regular slots (the earliest connections first) and the optimistic one
  for (const id of [1, 2, 3, 4, 5, 6, 7, 8]) assert.ok(set.has(id));
});

Deno.test("round() while seeding takes the slots in turns: every peer gets one, the fastest do not keep them", () => {
  const choker = new Choker({ seedSlots: 2, optimisticIntervalMs: 30_000, random: () => 0.99 });
  // 1 and 2 are by far the fastest to upload to: ranking by rate would keep them unchoked until they are done
  const peers = [1, 2, 3, 4, 5].map((id) =>
    peer(id, { uploadRate: id <= 2 ? 1e8 : 1e3, connectedAt: id })
  );
  const regular = (now: number) => {
    const set = choker.round(peers, true, now);
    set.delete(choker.optimistic!);
    return [...set].sort();
  };
  assert.deepEqual(regular(0), [1, 2]);
  assert.deepEqual(regular(10_000), [1, 2]); // in the middle of their turn
  assert.deepEqual(regular(30_000), [3, 4]); // the turn is over: those who waited longest
  assert.deepEqual(regular(60_000), [1, 5]); // 5 never had one; 1 and 2 waited since 30 s (1 connected first)
  assert.deepEqual(regular(90_000), [2, 3]);
  // alone, a peer keeps its slot turn after turn
  const alone = new Choker({ seedSlots: 2 });
  for (const now of [0, 30_000, 60_000]) assert.ok(alone.round([peer(1)], true, now).has(1));
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

Deno.test("hasFreeSlot() allows slots + 1 unchoked peers, a seed's slots + 1 while seeding", () => {
  const choker = new Choker({ slots: 4 });
  assert.equal(choker.hasFreeSlot(4), true);
  assert.equal(choker.hasFreeSlot(5), false);
  assert.equal(choker.hasFreeSlot(8, true), true);
  assert.equal(choker.hasFreeSlot(9, true), false);
});
