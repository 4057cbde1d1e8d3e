/**
 * Pieces with a deadline in the piece picker (those a stream's reader waits for, and the window ahead of it, as
 * `deadlines.ts` sets them): they are requested before anything else, soonest deadline first, whatever their
 * file's priority, and once every block of them is requested the nearest ones go to endgame on their own.
 * {@linkcode UrgentPieces} holds the deadlines and picks their blocks for the picker (step 0 of its `pick`).
 * No sockets, no disk, no timers.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import { BLOCK_SIZE } from "./requests.ts";
import { type BlockRequest, type PickerPieces, REQUESTED } from "./partial_piece.ts";

/** In endgame on the deadline window, duplicate requests go only to the blocks of this many nearest pieces. */
const URGENT_ENDGAME_PIECES = 2;

/** The pieces with a deadline, and the picking of their blocks. */
export class UrgentPieces {
  /** Pieces with a deadline, soonest first (none had when set; had ones are skipped). */
  order: number[] = [];
  /** 1 for each piece in {@linkcode UrgentPieces.order} (the picker reads it in its loops). */
  readonly flags: Uint8Array;
  readonly #pieces: PickerPieces;

  /**
   * Creates an {@linkcode UrgentPieces} with no deadline.
   *
   * @param pieces The picker's pieces in memory.
   */
  constructor(pieces: PickerPieces) {
    this.#pieces = pieces;
    this.flags = new Uint8Array(pieces.pieceCount);
  }

  /**
   * Replaces the pieces with a deadline (see `PiecePicker.setDeadlines`).
   *
   * @param deadlines `[piece index, deadline]` pairs; a lower deadline is sooner; ties go to the lower index.
   */
  set(deadlines: Iterable<readonly [number, number]>): void {
    const flags = this.flags, have = this.#pieces.have, count = this.#pieces.pieceCount;
    for (const i of this.order) flags[i] = 0;
    const list: [number, number][] = [];
    for (const [i, deadline] of deadlines) {
      if (!(i >= 0 && i < count) || flags[i] || have.has(i)) continue;
      flags[i] = 1;
      list.push([deadline, i]);
    }
    list.sort((a, b) => (a[0] - b[0]) || (a[1] - b[1]));
    this.order = list.map((x) => x[1]);
  }

  /**
   * Blocks of pieces with a deadline that this peer has in flight.
   *
   * @param peerRequests The peer's requests in flight.
   * @returns How many.
   */
  inflight(peerRequests: { has(key: number): boolean }): number {
    let n = 0;
    const per = this.#pieces.requests.blocksPerPiece;
    const partial = this.#pieces.partial;
    for (const i of this.order) {
      const p = partial.get(i);
      if (!p || p.free === p.state.length) continue;
      for (let b = 0; b < p.state.length; b++) {
        if (p.state[b] === REQUESTED && peerRequests.has(i * per + b)) n++;
      }
    }
    return n;
  }

  /**
   * Step 0 of the picker's `pick`: free blocks of pieces with a deadline, soonest first; once none is left
   * anywhere, duplicates of the nearest pieces' blocks in flight elsewhere (endgame on the window only).
   *
   * @param peerHas The peer's pieces.
   * @param limit Most blocks in `out` when done.
   * @param out Where the blocks go (each marked requested).
   * @param peerRequests The blocks this peer has in flight.
   * @param allowed When given, only these pieces may be picked.
   */
  pick(
    peerHas: Bitfield,
    limit: number,
    out: BlockRequest[],
    peerRequests: { has(key: number): boolean },
    allowed: ReadonlySet<number> | undefined,
  ): void {
    const pieces = this.#pieces;
    let allRequested = true;
    for (const i of this.order) {
      if (out.length >= limit) return;
      if (pieces.have.has(i) || pieces.pending.has(i) || pieces.reserved.has(i)) continue;
      let p = pieces.partial.get(i);
      if (!p || p.free > 0) allRequested = false;
      if (!peerHas.has(i) || (allowed && !allowed.has(i))) continue;
      if (!p) {
        // a reader waits for it: it may use memory beyond what other pieces may
        if (pieces.held >= 2 * pieces.maxInMemory) continue;
        p = pieces.startPiece(i);
      }
      if (p.free > 0) pieces.takeFree(p, out, limit);
    }
    if (!allRequested || out.length >= limit) return;
    const per = pieces.requests.blocksPerPiece;
    let n = 0;
    for (const i of this.order) {
      const p = pieces.partial.get(i);
      if (!p) continue;
      if (++n > URGENT_ENDGAME_PIECES) return;
      if (!peerHas.has(i) || (allowed && !allowed.has(i))) continue;
      for (let b = 0; b < p.state.length && out.length < limit; b++) {
        const key = i * per + b;
        if (p.state[b] !== REQUESTED || peerRequests.has(key)) continue;
        if (pieces.requests.inflight(key) >= pieces.endgameDuplicates) continue;
        out.push({ index: i, begin: b * BLOCK_SIZE, length: pieces.blockLength(i, b) });
      }
    }
  }
}
