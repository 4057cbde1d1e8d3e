// The upload path (src/swarm/uploads.ts): how much of a peer's backlog of requests is answered at once. Blocks
// waiting for their piece to be read count against the peer's send queue, so a deep backlog (libtorrent asks
// 2,000 blocks ahead) starts reads for about 1 MiB at a time, not for everything it asked.
import assert from "node:assert/strict";
import type { PeerConnection } from "../src/peer.ts";
import { CacheBudget } from "../src/storage/piece_cache.ts";
import type { PeerEntry } from "../src/swarm/types.ts";
import { Uploads } from "../src/swarm/uploads.ts";

const BLOCK = 16 * 1024;
const PIECE = 16 * BLOCK; // 256 KiB: four pieces make the 1 MiB send-queue limit
const PIECES = 8;

/** A connection that records what it was sent; its send queue empties when the test says so. */
function fakePeer() {
  const requested = new Set<number>();
  const conn = {
    sendQueueBytes: 0,
    closed: false,
    amChoking: false,
    supportsFast: true,
    grantedFast: new Set<number>(),
    sent: [] as number[],
    rejected: [] as number[],
    isRequestedByPeer: (index: number, begin: number) => requested.has(index * PIECE + begin),
    sendPiece(index: number, begin: number, block: Uint8Array) {
      requested.delete(index * PIECE + begin);
      assert.equal(block[0], index, "the block comes from its own piece");
      this.sent.push(index);
      this.sendQueueBytes += block.length;
    },
    reject(index: number, begin: number) {
      requested.delete(index * PIECE + begin);
      this.rejected.push(index);
    },
  };
  const entry = { id: 1, conn: conn as unknown as PeerConnection } as PeerEntry;
  return { conn, entry, requested };
}

/** Reads that the test completes one by one. */
function heldReads() {
  const pending = new Map<number, (data: Uint8Array | undefined) => void>();
  const read = (index: number) =>
    new Promise<Uint8Array | undefined>((resolve) => pending.set(index, resolve));
  const complete = async (ok: boolean) => {
    const all = [...pending];
    pending.clear();
    for (const [index, resolve] of all) resolve(ok ? new Uint8Array(PIECE).fill(index) : undefined);
    // the reads' continuations, and the reads they start, run in microtasks
    for (let i = 0; i < 10; i++) await Promise.resolve();
  };
  return { pending, read, complete };
}

function setup() {
  const peer = fakePeer();
  const reads = heldReads();
  const uploads = new Uploads({
    pieceLength: PIECE,
    pieceSize: () => PIECE,
    budget: new CacheBudget(64 * 1024 * 1024),
    read: reads.read,
    canServe: () => true,
    peers: () => [peer.entry],
    onError: (err) => assert.fail(err),
  });
  const askAll = () => {
    for (let index = 0; index < PIECES; index++) {
      for (let begin = 0; begin < PIECE; begin += BLOCK) {
        peer.requested.add(index * PIECE + begin);
        uploads.request(peer.entry, index, begin, BLOCK);
      }
    }
  };
  return { ...peer, reads, uploads, askAll };
}

Deno.test("uploads: blocks waiting for a read count against the send queue", async () => {
  const { conn, entry, reads, uploads, askAll } = setup();
  askAll(); // 8 pieces, 2 MiB asked for
  assert.deepEqual([...reads.pending.keys()], [0, 1, 2, 3], "reads for 1 MiB, the rest held");

  await reads.complete(true);
  assert.equal(conn.sent.length, 64, "the four pieces' blocks are sent");
  assert.equal(reads.pending.size, 0, "a full send queue starts no read");

  conn.sendQueueBytes = 0; // the socket took it all
  uploads.drained(entry);
  assert.deepEqual([...reads.pending.keys()], [4, 5, 6, 7]);
  await reads.complete(true);
  assert.equal(conn.sent.length, 128);
  assert.deepEqual(conn.rejected, []);
});

Deno.test("uploads: a read that fails rejects its blocks and lets the held ones go", async () => {
  const { conn, reads, askAll } = setup();
  askAll();
  assert.equal(reads.pending.size, 4);

  await reads.complete(false); // nothing to send: no socket write will drain the queue
  assert.equal(conn.rejected.length, 64, "the unreadable pieces' blocks are rejected");
  assert.deepEqual([...reads.pending.keys()], [4, 5, 6, 7], "the held requests go on");
  await reads.complete(true);
  assert.equal(conn.sent.length, 64);
});
