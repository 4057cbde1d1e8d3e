/**
 * Serving the blocks peers ask us for: the upload path `request → piece cache / disk read → send buffer →
 * socket`. A request is answered at once when its piece is in memory; requests are held while a peer's send queue
 * is over a limit (they stay outstanding in the connection, so a peer asking faster than it reads still hits its
 * request limit) and served as its socket drains. Requests we may not serve are rejected (fast extension).
 *
 * @module
 */

import type { PeerConnection } from "../peer.ts";
import type { PieceCache } from "../storage/piece_cache.ts";
import type { UploadOnce } from "./superseed.ts";
import type { PeerEntry } from "./types.ts";

/** Bytes queued for one peer's socket above which its further requests are held until it drains. */
const SEND_QUEUE_BYTES = 1024 * 1024;

/** Options for {@linkcode Uploads}. */
export interface UploadsOptions {
  /** Whole pieces in memory, read from disk on a miss. */
  cache: PieceCache;
  /** May this piece be sent now (the torrent is active and has it)? */
  canServe: (index: number) => boolean;
  /** "Upload each piece once" seeding, when on. */
  once?: UploadOnce;
  /** Tells whether a connection (by entry id) is still open. */
  isLive: (id: number) => boolean;
  /** Payload bytes were sent. */
  onUploaded: (bytes: number) => void;
  /** A piece could not be read. */
  onError: (error: Error) => void;
}

/** The torrent's upload path. */
export class Uploads {
  readonly #opts: UploadsOptions;
  /** Requests held while a peer's send queue is full: (index, begin, length) triples. */
  readonly #held = new WeakMap<PeerEntry, number[]>();

  /**
   * Creates an {@linkcode Uploads}.
   *
   * @param options The cache, the rules and whom to tell.
   */
  constructor(options: UploadsOptions) {
    this.#opts = options;
  }

  /** A peer asked for a block (validated by its connection). */
  request(e: PeerEntry, index: number, begin: number, length: number): void {
    const held = this.#held.get(e);
    if ((held && held.length > 0) || e.conn.sendQueueBytes >= SEND_QUEUE_BYTES) {
      // the peer is not reading as fast as it asks: keep the request until its socket drains
      if (held) held.push(index, begin, length);
      else this.#held.set(e, [index, begin, length]);
      return;
    }
    this.#answer(e, index, begin, length);
  }

  /** A peer's socket took a batch: serve held requests while its queue is short. */
  drained(e: PeerEntry): void {
    const held = this.#held.get(e);
    if (!held || held.length === 0) return;
    const peer = e.conn;
    let k = 0;
    while (k < held.length && peer.sendQueueBytes < SEND_QUEUE_BYTES && !peer.closed) {
      const index = held[k], begin = held[k + 1], length = held[k + 2];
      k += 3;
      // cancelled, or refused when we choked it, meanwhile
      if (peer.isRequestedByPeer(index, begin)) this.#answer(e, index, begin, length);
    }
    held.splice(0, k);
  }

  #answer(e: PeerEntry, index: number, begin: number, length: number): void {
    const peer = e.conn;
    let allowed = this.#opts.canServe(index) && (!peer.amChoking || peer.grantedFast.has(index));
    if (allowed && this.#opts.once) {
      allowed = this.#opts.once.allow(e, index, begin, this.#opts.isLive);
    }
    if (!allowed) {
      if (peer.supportsFast) peer.reject(index, begin, length);
      return;
    }
    const cache = this.#opts.cache;
    const piece = cache.get(index);
    if (piece.data) return this.#serve(peer, index, begin, length, piece.data); // in memory: at once
    cache.hold(piece); // the buffer is not recycled before the block is copied out
    piece.read.then(
      (data) => this.#serve(peer, index, begin, length, data),
      (err) => this.#opts.onError(err instanceof Error ? err : new Error(String(err))),
    ).finally(() => cache.done(piece));
  }

  #serve(
    peer: PeerConnection,
    index: number,
    begin: number,
    length: number,
    piece: Uint8Array | undefined,
  ): void {
    if (peer.closed) return;
    if (!piece || (peer.amChoking && !peer.grantedFast.has(index)) || !this.#opts.canServe(index)) {
      if (peer.supportsFast) peer.reject(index, begin, length);
      return;
    }
    peer.sendPiece(index, begin, piece.subarray(begin, begin + length)); // copies the block
    this.#opts.onUploaded(length);
  }
}
