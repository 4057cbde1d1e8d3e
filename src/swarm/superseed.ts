/**
 * "Upload each piece once" seeding (`uploadEachPieceOnce`, in the spirit of super-seeding, BEP 16): every block
 * of the torrent goes out at most once, to whichever peer asks first, and repeat requests are refused, so peers
 * must trade the rest among themselves — a strategy for a first seed with little upload.
 *
 * A whole piece goes to one peer (by peer id: one peer may have two connections): blocks of one piece spread over
 * several peers would leave none of them with a piece it can pass on, and the rest would never leave the seed
 * again. A block goes out again only if the connection it went out on has closed since (it may never have
 * arrived), and a peer that leaves without a whole piece releases it for others.
 *
 * @module
 */

import { toHex } from "../_bytes.ts";
import type { PeerEntry } from "./types.ts";

/** Options for {@linkcode UploadOnce}. */
export interface UploadOnceOptions {
  /** Blocks per full piece. */
  blocksPerPiece: number;
  /** Blocks in piece `index`. */
  blocksIn: (index: number) => number;
}

/** Which blocks went out, and which peer each piece belongs to. */
export class UploadOnce {
  readonly #opts: UploadOnceOptions;
  /** Block key → the connection (entry id) it was sent on. */
  readonly #sent = new Map<number, number>();
  /** Piece → the peer (peer id, else address) it goes to; only it may have that piece's blocks. */
  readonly #owner = new Map<number, string>();

  /**
   * Creates an {@linkcode UploadOnce}.
   *
   * @param options The torrent's block geometry.
   */
  constructor(options: UploadOnceOptions) {
    this.#opts = options;
  }

  /**
   * May this block go to this peer? When it may, it is recorded as sent.
   *
   * @param entry The asking connection.
   * @param index Piece index.
   * @param begin Offset of the block (16 KiB-aligned).
   * @param isLive Tells whether a connection (by entry id) is still open.
   */
  allow(entry: PeerEntry, index: number, begin: number, isLive: (id: number) => boolean): boolean {
    const owner = this.#owner.get(index);
    const me = ownerKey(entry);
    const key = index * this.#opts.blocksPerPiece + Math.floor(begin / 16384);
    const sentOn = this.#sent.get(key);
    const lost = sentOn !== undefined && !isLive(sentOn);
    if ((owner !== undefined && owner !== me) || (sentOn !== undefined && !lost)) return false;
    this.#owner.set(index, me);
    this.#sent.set(key, entry.id);
    return true;
  }

  /**
   * A connection closed: pieces its peer was given only in part and never announced may go to someone else now
   * (not while the same peer is still connected another way).
   *
   * @param entry The closed connection.
   * @param stillHere True when the same peer has another connection open.
   */
  closed(entry: PeerEntry, stillHere: boolean): void {
    if (stillHere) return;
    const me = ownerKey(entry);
    for (const [index, owner] of this.#owner) {
      if (owner !== me || entry.conn.bitfield.has(index)) continue;
      const first = index * this.#opts.blocksPerPiece;
      const blocks = this.#opts.blocksIn(index);
      let sent = 0;
      for (let b = 0; b < blocks; b++) if (this.#sent.has(first + b)) sent++;
      if (sent === blocks) continue; // it got the whole piece
      this.#owner.delete(index);
      for (let b = 0; b < blocks; b++) this.#sent.delete(first + b);
    }
  }
}

/** Who a peer is: its peer id (one peer may have two connections), else its address. */
export function ownerKey(e: PeerEntry): string {
  const id = e.conn.remotePeerId;
  return id ? toHex(id) : e.key;
}
