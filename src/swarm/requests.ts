/**
 * The one store of our requests in flight, for one torrent: which blocks each peer has been asked for, and how many
 * peers have each block in flight (more than one only in endgame). Blocks are numbered one way everywhere:
 * `index × blocksPerPiece + begin ÷ 16 KiB`.
 *
 * A peer connection records a request when it sends it and forgets it when the block arrives, the peer rejects it
 * or chokes us, we cancel it, or the connection closes — each through its own {@linkcode PeerRequests} view, so
 * the counts can never drift from the connections. When the last request for a block goes, the store tells its
 * owner (the piece picker frees the block for someone else).
 *
 * @module
 */

import type { OutstandingRequests } from "../peer.ts";

/** Size of a request: 16 KiB (BEP 3). */
export const BLOCK_SIZE = 16384;

/** Options for {@linkcode RequestStore}. */
export interface RequestStoreOptions {
  /** Bytes per piece. */
  pieceLength: number;
  /** Called when no peer has this block in flight any more. */
  onIdle?: (index: number, begin: number) => void;
}

/** Our requests in flight, by peer and by block. */
export class RequestStore {
  /** Blocks per piece: the multiplier of the block key. */
  readonly blocksPerPiece: number;
  readonly #inflight = new Map<number, number>();
  readonly #peers = new Set<PeerRequests>();
  readonly #onIdle: ((index: number, begin: number) => void) | undefined;

  /**
   * Creates a {@linkcode RequestStore}.
   *
   * @param options The torrent's piece length and who to tell about idle blocks.
   */
  constructor(options: RequestStoreOptions) {
    this.blocksPerPiece = Math.max(1, Math.ceil(options.pieceLength / BLOCK_SIZE));
    this.#onIdle = options.onIdle;
  }

  /** The key of the block at `begin` (a multiple of 16 KiB) in piece `index`. */
  key(index: number, begin: number): number {
    return index * this.blocksPerPiece + begin / BLOCK_SIZE;
  }

  /** The piece index of a block key. */
  indexOf(key: number): number {
    return Math.floor(key / this.blocksPerPiece);
  }

  /** The offset in its piece of a block key. */
  beginOf(key: number): number {
    return (key % this.blocksPerPiece) * BLOCK_SIZE;
  }

  /** How many peers have this block in flight. */
  inflight(key: number): number {
    return this.#inflight.get(key) ?? 0;
  }

  /** Blocks in flight over all peers (a block asked of two peers counts twice). */
  get size(): number {
    let n = 0;
    for (const p of this.#peers) n += p.size;
    return n;
  }

  /** A new, empty view for one peer connection; it leaves the store when its last request goes. */
  forPeer(): PeerRequests {
    return new PeerRequests(this);
  }

  /** The peer views that have this block in flight (endgame: cancel the others once it arrives). */
  *peersWith(key: number): IterableIterator<PeerRequests> {
    if (!this.#inflight.has(key)) return;
    for (const p of this.#peers) if (p.has(key)) yield p;
  }

  /** @internal */
  _added(view: PeerRequests, key: number): void {
    this.#peers.add(view);
    this.#inflight.set(key, (this.#inflight.get(key) ?? 0) + 1);
  }

  /** @internal */
  _deleted(view: PeerRequests, key: number): void {
    const n = (this.#inflight.get(key) ?? 1) - 1;
    if (view.size === 0) this.#peers.delete(view);
    if (n > 0) {
      this.#inflight.set(key, n);
      return;
    }
    this.#inflight.delete(key);
    this.#onIdle?.(this.indexOf(key), this.beginOf(key));
  }
}

/** One peer's requests in flight: a set of block keys that keeps its store's counts. */
export class PeerRequests implements OutstandingRequests {
  readonly #store: RequestStore;
  readonly #keys = new Set<number>();

  /**
   * Creates a {@linkcode PeerRequests}; use {@linkcode RequestStore.forPeer}.
   *
   * @param store The store it belongs to.
   */
  constructor(store: RequestStore) {
    this.#store = store;
  }

  /** Requests in flight to this peer. */
  get size(): number {
    return this.#keys.size;
  }

  /** Records a request. */
  add(key: number): this {
    if (!this.#keys.has(key)) {
      this.#keys.add(key);
      this.#store._added(this, key);
    }
    return this;
  }

  /** Forgets a request; true when it was there. */
  delete(key: number): boolean {
    if (!this.#keys.delete(key)) return false;
    this.#store._deleted(this, key);
    return true;
  }

  /** True when this block is in flight to this peer. */
  has(key: number): boolean {
    return this.#keys.has(key);
  }

  /** The block keys in flight (a snapshot: deleting while iterating is fine). */
  keys(): IterableIterator<number> {
    return [...this.#keys].values();
  }
}
