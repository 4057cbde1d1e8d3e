// deno bench: the piece picker filling a 256-request pipeline and receiving blocks: plain (rarest first), with a
// reader's deadline window moving along the torrent (streaming), sequential, and a torrent of 8 192 pieces (every
// new piece is chosen by looking at each piece: how that scales).
import { Bitfield } from "../src/bitfield.ts";
import { BLOCK_SIZE, PiecePicker } from "../src/swarm/piece_picker.ts";

const block = new Uint8Array(BLOCK_SIZE);

/** A picker for a download that has nothing yet, and the bitfield of a peer that has everything. */
function fresh(pieces: number, pieceLength: number, maxInMemory: number, sequential?: boolean) {
  const all = new Bitfield(pieces);
  all.setAll();
  const have = new Bitfield(pieces);
  const picker = new PiecePicker({
    pieceCount: pieces,
    pieceLength,
    totalLength: pieces * pieceLength,
    have,
    maxInMemory,
    ...(sequential ? { sequential: true } : {}),
  });
  return { all, have, picker };
}

/** Downloads the whole torrent from one peer; `onPiece` may set deadlines as pieces arrive. */
function download(
  options: { sequential?: boolean; window?: number; pieces?: number; pieceLength?: number } = {},
): void {
  const PIECES = options.pieces ?? 1024, PL = options.pieceLength ?? 1 << 20;
  const { all, have, picker } = fresh(PIECES, PL, 8, options.sequential);
  picker.addAvailability(all);
  const peer = picker.requests.forPeer();
  let done = 0, reader = 0;
  const window = options.window ?? 0;
  const deadlines = () => {
    while (reader < PIECES && have.has(reader)) reader++;
    const list: [number, number][] = [];
    for (let i = reader; i < Math.min(PIECES, reader + window); i++) {
      list.push([i, (i - reader) * PL]);
    }
    picker.setDeadlines(list);
  };
  if (window > 0) deadlines();
  while (done < PIECES) {
    const blocks = picker.pick(all, 256, peer);
    if (blocks.length === 0) throw new Error("stuck");
    for (const b of blocks) peer.add(picker.requests.key(b.index, b.begin));
    for (const b of blocks) {
      peer.delete(picker.requests.key(b.index, b.begin));
      const piece = picker.receive(b.index, b.begin, block, 1);
      if (piece) {
        picker.pieceVerified(piece);
        picker.release(piece.buffer);
        have.set(piece.index);
        done++;
        if (window > 0) deadlines();
      }
    }
  }
}

Deno.bench({
  name: "pick + receive a whole 1 GiB torrent (65 536 blocks) from one peer",
  baseline: true,
  fn() {
    download();
  },
});

Deno.bench({
  name: "the same with a reader at the start: a 16-piece deadline window moving along",
  fn() {
    download({ window: 16 });
  },
});

Deno.bench({
  name: "the same, sequential",
  fn() {
    download({ sequential: true });
  },
});

Deno.bench({
  name: "pick + receive a whole 2 GiB torrent of 8 192 pieces of 256 KiB (131 072 blocks)",
  fn() {
    download({ pieces: 8192, pieceLength: 256 * 1024 });
  },
});

/**
 * A swarm's pattern: 8 peers, each topped up as every one of its blocks arrives (a few blocks per pick), with 32
 * pieces of 512 KiB in progress — the picker's step through the pieces in progress runs for every block.
 */
function swarmDownload(): void {
  const PIECES = 1024, PEERS = 8, DEPTH = 32;
  const { all, have, picker } = fresh(PIECES, 512 * 1024, 32);
  for (let i = 0; i < PEERS; i++) picker.addAvailability(all);
  const peers = Array.from(
    { length: PEERS },
    () => ({ store: picker.requests.forPeer(), queue: [] as number[] }),
  );
  const top = (p: (typeof peers)[number]) => {
    for (const b of picker.pick(all, DEPTH - p.queue.length, p.store)) {
      const key = picker.requests.key(b.index, b.begin);
      p.store.add(key);
      p.queue.push(key);
    }
  };
  for (const p of peers) top(p);
  let done = 0;
  while (done < PIECES) {
    let moved = false;
    for (const p of peers) {
      const key = p.queue.shift();
      if (key === undefined) continue;
      moved = true;
      p.store.delete(key);
      const piece = picker.receive(
        picker.requests.indexOf(key),
        picker.requests.beginOf(key),
        block,
        1,
      );
      if (piece) {
        picker.pieceVerified(piece);
        picker.release(piece.buffer);
        have.set(piece.index);
        done++;
      }
      top(p);
    }
    if (!moved) throw new Error("stuck");
  }
}

Deno.bench({
  name:
    "512 MiB in 512 KiB pieces from 8 peers, each topped up as its blocks arrive (32 pieces in progress)",
  fn() {
    swarmDownload();
  },
});
