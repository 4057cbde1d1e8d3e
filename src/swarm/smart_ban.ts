/**
 * Who sent bad data. A piece that fails its hash check from a single sender names that sender at once. A piece
 * assembled from several peers cannot say which of them lied, so its bad copy and the sender of each block are
 * kept; once the piece passes (from other peers), the blocks that differ from the good data name the liars — as
 * libtorrent's smart ban does. A bounded number of failed pieces is kept (a piece-sized copy each).
 *
 * @module
 */

import type { PartialPiece } from "./piece_picker.ts";
import { BLOCK_SIZE } from "./requests.ts";

/** Failed pieces kept until they pass, by default. */
const MAX_SUSPECTS = 8;

/** Blames senders of bad blocks. */
export class SmartBan {
  readonly #suspects = new Map<number, { data: Uint8Array; senders: Int32Array }>();
  readonly #max: number;
  readonly #ban: (id: number, reason: string) => void;

  /**
   * Creates a {@linkcode SmartBan}.
   *
   * @param ban Bans a peer (by its connection's id) with a reason.
   * @param maxSuspects Failed pieces kept (a copy each) until they pass.
   */
  constructor(ban: (id: number, reason: string) => void, maxSuspects: number = MAX_SUSPECTS) {
    this.#ban = ban;
    this.#max = maxSuspects;
  }

  /**
   * A piece failed its hash check.
   *
   * @param piece The piece as received.
   * @param size Its length in bytes.
   * @returns The ids of the peers banned now: the sole sender, if there was only one.
   */
  failed(piece: PartialPiece, size: number): number[] {
    if (piece.senders.size === 1) {
      const [id] = piece.senders;
      this.#ban(id, `sent data that failed the hash check for piece ${piece.index}`);
      return [id];
    }
    this.#suspects.set(piece.index, {
      data: piece.buffer.slice(0, size),
      senders: piece.blockSenders.slice(),
    });
    if (this.#suspects.size > this.#max) {
      this.#suspects.delete(this.#suspects.keys().next().value as number);
    }
    return [];
  }

  /**
   * A piece passed its hash check.
   *
   * @param piece The good piece.
   * @returns The ids of the peers banned: those whose blocks of an earlier, failed copy differ from the good
   *   data.
   */
  passed(piece: PartialPiece): number[] {
    const suspect = this.#suspects.get(piece.index);
    if (!suspect) return [];
    this.#suspects.delete(piece.index);
    const liars = new Set<number>();
    for (let b = 0; b < suspect.senders.length; b++) {
      const begin = b * BLOCK_SIZE, end = Math.min(begin + BLOCK_SIZE, suspect.data.length);
      for (let i = begin; i < end; i++) {
        if (suspect.data[i] !== piece.buffer[i]) {
          liars.add(suspect.senders[b]);
          break;
        }
      }
    }
    for (const id of liars) {
      this.#ban(id, `sent blocks that failed the hash check for piece ${piece.index} (smart ban)`);
    }
    return [...liars];
  }
}
