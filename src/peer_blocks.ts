/**
 * How one peer connection numbers blocks: piece sizes, the keys of our requests (the torrent's block numbering)
 * and of the peer's requests (any offset), and the memory of requests we cancelled whose answer may still come.
 *
 * @module
 */

import type { BlockRef } from "./peer_options.ts";

/** Bytes in a block: the most a request may ask for. */
export const BLOCK_MAX = 16 * 1024;
/** Most cancelled requests remembered; past it the memory starts again. */
const CANCELLED_MEMORY = 2048;
/** Keys of the peer's requests: 2^29 per piece, since piece length is limited to 512 MiB. */
const PEER_KEY_SPAN = 536870912;

/** Block numbering of one connection's torrent, and the requests we cancelled. */
export class PeerBlocks {
  readonly #pieceCount: number;
  readonly #pieceLength: number;
  readonly #lastPieceSize: number;
  /** Blocks in a whole piece. */
  readonly blocksPerPiece: number;
  /**
   * Requests we cancelled whose answer may still come (a piece that crossed the cancel on the wire, or with the
   * fast extension a reject): block key → how many. A block re-requested after a cancel is owed two answers.
   */
  readonly #cancelled = new Map<number, number>();

  /**
   * Creates a {@linkcode PeerBlocks}.
   *
   * @param pieceCount Pieces in the torrent (0 while unknown).
   * @param pieceLength Bytes per piece.
   * @param totalLength Total bytes.
   */
  constructor(pieceCount: number, pieceLength: number, totalLength: number) {
    this.#pieceCount = pieceCount;
    this.#pieceLength = pieceLength;
    this.#lastPieceSize = totalLength - (pieceCount - 1) * pieceLength;
    this.blocksPerPiece = Math.max(1, Math.ceil(pieceLength / BLOCK_MAX));
  }

  /** Bytes in piece `index` (the last one may be shorter). */
  pieceSize(index: number): number {
    return index === this.#pieceCount - 1 ? this.#lastPieceSize : this.#pieceLength;
  }

  /** Key of a request the peer made of us (any offset). */
  peerKey(index: number, begin: number): number {
    return index * PEER_KEY_SPAN + begin;
  }

  /** The piece of a {@linkcode PeerBlocks.peerKey}. */
  peerKeyIndex(key: number): number {
    return Math.floor(key / PEER_KEY_SPAN);
  }

  /** The offset of a {@linkcode PeerBlocks.peerKey}. */
  peerKeyBegin(key: number): number {
    return key % PEER_KEY_SPAN;
  }

  /** Key of one of our requests (always 16 KiB-aligned): the torrent's block numbering. */
  blockKey(index: number, begin: number): number {
    return index * this.blocksPerPiece + begin / BLOCK_MAX;
  }

  /** The block a {@linkcode PeerBlocks.blockKey} names. */
  block(key: number): BlockRef {
    const index = Math.floor(key / this.blocksPerPiece);
    const begin = (key - index * this.blocksPerPiece) * BLOCK_MAX;
    return { index, begin, length: this.blockLength(index, begin) };
  }

  /** The length of the block at `begin` (16 KiB, or less at the end of the torrent). */
  blockLength(index: number, begin: number): number {
    return Math.min(BLOCK_MAX, this.pieceSize(index) - begin);
  }

  /** We cancelled the request with this block key: one more answer to it may still come. */
  cancelled(key: number): void {
    if (this.#cancelled.size >= CANCELLED_MEMORY) this.#cancelled.clear();
    this.#cancelled.set(key, (this.#cancelled.get(key) ?? 0) + 1);
  }

  /** An answer to a request we cancelled arrived: true (and one fewer is owed) when one was owed. */
  answered(key: number): boolean {
    const n = this.#cancelled.get(key);
    if (n === undefined) return false;
    if (n > 1) this.#cancelled.set(key, n - 1);
    else this.#cancelled.delete(key);
    return true;
  }
}
