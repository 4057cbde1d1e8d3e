/**
 * Runs of whole pieces for sources that serve byte ranges rather than blocks (web seeds, BEP 19 and BEP 17):
 * {@linkcode pickRun} reserves contiguous pieces at the start of the longest gap, {@linkcode receiveRunPiece} turns
 * a piece that arrived whole into a complete piece to verify like any other. The reservations are the picker's
 * (its `pick` never hands out their blocks); `PiecePicker.pickRun`, `receivePiece` and `unreserve` are the entry
 * points. No sockets, no disk, no timers.
 *
 * @module
 */

import { type PartialPiece, type PickerPieces, RECEIVED, REQUESTED } from "./partial_piece.ts";

/** A run of contiguous pieces handed out whole (to a web seed), from `PiecePicker.pickRun`. */
export interface PieceRun {
  /** First piece of the run. */
  first: number;
  /** Number of pieces, at least 1. */
  count: number;
}

/** Options of `PiecePicker.pickRun`. */
export interface PickRunOptions {
  /** Only pieces for which this returns true are handed out (e.g. what one source can serve). */
  filter?: (index: number) => boolean;
  /**
   * Hand out nothing while memory allows fewer than this many pieces (unless the gap itself is shorter): a web
   * seed then waits for a few pieces to be verified and written instead of asking for one piece at a time
   * while the disk or the hash check is behind.
   * @default {1}
   */
  atLeast?: number;
}

/**
 * Reserves a run of whole pieces (see `PiecePicker.pickRun`): the longest gap of free pieces of the highest
 * priority, as long as memory allows, or else a piece in progress that nobody has a request out for.
 *
 * @param pieces The picker's pieces in memory.
 * @param max Most pieces in the run.
 * @param options Which pieces the source can serve.
 * @returns The run, or undefined when nothing can be handed out now.
 */
export function pickRun(
  pieces: PickerPieces,
  max: number,
  options: PickRunOptions = {},
): PieceRun | undefined {
  const slots = Math.min(max, pieces.maxInMemory - pieces.held);
  if (slots <= 0) return undefined;
  const filter = options.filter;
  const { partial, pending, reserved, priority, pieceCount } = pieces;
  const free = (i: number) =>
    pieces.wants(i) && !partial.has(i) && !pending.has(i) && !reserved.has(i) &&
    (filter === undefined || filter(i));
  let top = 0;
  for (let i = 0; i < pieceCount; i++) {
    if (priority[i] > top && free(i)) top = priority[i];
  }
  if (top > 0) {
    let bestStart = -1, bestLength = 0, start = -1;
    for (let i = 0; i <= pieceCount; i++) {
      if (i < pieceCount && priority[i] === top && free(i)) {
        if (start < 0) start = i;
        continue;
      }
      if (start >= 0 && i - start > bestLength) {
        bestStart = start;
        bestLength = i - start;
      }
      start = -1;
    }
    const count = Math.min(slots, bestLength);
    if (count < Math.min(options.atLeast ?? 1, max, bestLength)) return undefined;
    for (let i = bestStart; i < bestStart + count; i++) reserved.add(i);
    return { first: bestStart, count };
  }
  // nothing fresh: take over a piece in progress that nobody has a request out for
  for (const p of pieces.sortedPartials()) {
    if (priority[p.index] <= 0 || (filter && !filter(p.index))) continue;
    let idle = true;
    for (let b = 0; b < p.state.length && idle; b++) idle = p.state[b] !== REQUESTED;
    if (!idle) continue;
    pieces.abandon(p.index);
    reserved.add(p.index);
    return { first: p.index, count: 1 };
  }
  return undefined;
}

/**
 * A whole reserved piece arrived (see `PiecePicker.receivePiece`): copied into a piece buffer, every block
 * credited to `sender`, and counted as waiting for its hash check.
 *
 * @param pieces The picker's pieces in memory.
 * @param index Piece index.
 * @param data The piece's bytes (copied).
 * @param sender Identifier of the source.
 * @returns The piece, or undefined when it was not reserved or `data` is not the piece's size.
 */
export function receiveRunPiece(
  pieces: PickerPieces,
  index: number,
  data: Uint8Array,
  sender: number,
): PartialPiece | undefined {
  if (!pieces.reserved.has(index)) return undefined;
  const size = pieces.pieceSize(index);
  if (data.length !== size) return undefined;
  pieces.reserved.delete(index);
  const p = pieces.newPiece(index);
  p.buffer.set(data);
  p.state.fill(RECEIVED);
  p.received = p.state.length;
  p.free = 0;
  p.senders.add(sender);
  p.blockSenders.fill(sender);
  pieces.pending.add(index);
  return p;
}
