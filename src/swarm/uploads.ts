/**
 * Serving the blocks peers ask us for: the upload path `request → piece cache / disk read → send buffer →
 * socket`. A request is answered at once when its piece is in memory; requests are held while a peer's send queue
 * (with the blocks waiting for their piece to be read) is over a limit: they stay outstanding in the connection,
 * so a peer asking faster than it reads still hits its request limit, and are served as its socket drains.
 * Requests we may not serve are rejected (fast extension).
 *
 * @module
 */

import { asError } from "../_errors.ts";
import type { PeerConnection } from "../peer.ts";
import { type CacheBudget, PieceCache, type PieceReader } from "../storage/piece_cache.ts";
import { BLOCK_SIZE } from "./requests.ts";
import { ownerKey, UploadOnce } from "./superseed.ts";
import type { PeerEntry } from "./types.ts";

/** Bytes queued for one peer's socket above which its further requests are held until it drains. */
const SEND_QUEUE_BYTES = 1024 * 1024;

/** Options for {@linkcode Uploads}. */
export interface UploadsOptions {
  /** Bytes per piece. */
  pieceLength: number;
  /** Bytes in piece `index`. */
  pieceSize: (index: number) => number;
  /** Memory for whole pieces, shared with the session's other torrents. */
  budget: CacheBudget;
  /** Reads a piece from disk. */
  read: PieceReader;
  /** May this piece be sent now (the torrent is active and has it)? */
  canServe: (index: number) => boolean;
  /** Every block goes out at most once ("upload each piece once" seeding). @default {false} */
  eachPieceOnce?: boolean;
  /** The live connections (whether one is still open; whether a peer has another). */
  peers: () => Iterable<PeerEntry>;
  /** A piece could not be read. */
  onError: (error: Error) => void;
}

/** The torrent's upload path. */
export class Uploads {
  readonly #opts: UploadsOptions;
  readonly #cache: PieceCache;
  readonly #once: UploadOnce | undefined;
  /** Requests held while a peer's send queue is full: (index, begin, length) triples. */
  readonly #held = new WeakMap<PeerEntry, number[]>();
  /** Bytes answered for a peer and waiting for their piece to be read: they count as queued. */
  readonly #reading = new WeakMap<PeerEntry, number>();

  /**
   * Creates an {@linkcode Uploads}.
   *
   * @param options The torrent's geometry, the disk, the rules and whom to tell.
   */
  constructor(options: UploadsOptions) {
    this.#opts = options;
    this.#cache = new PieceCache({
      pieceLength: options.pieceLength,
      pieceSize: options.pieceSize,
      budget: options.budget,
      read: options.read,
    });
    this.#once = options.eachPieceOnce
      ? new UploadOnce({
        blocksPerPiece: Math.ceil(options.pieceLength / BLOCK_SIZE),
        blocksIn: (i) => Math.ceil(options.pieceSize(i) / BLOCK_SIZE),
      })
      : undefined;
  }

  /** A connection closed: with "upload each piece once", what it got only in part may go to others. */
  closed(e: PeerEntry): void {
    if (!this.#once) return;
    const me = ownerKey(e);
    this.#once.closed(e, [...this.#opts.peers()].some((o) => o !== e && ownerKey(o) === me));
  }

  /** Drops the cached pieces (the torrent stopped). */
  clear(): void {
    this.#cache.clear();
  }

  /** A peer asked for a block (validated by its connection). */
  request(e: PeerEntry, index: number, begin: number, length: number): void {
    const held = this.#held.get(e);
    if ((held && held.length > 0) || this.#queued(e) >= SEND_QUEUE_BYTES) {
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
    while (k < held.length && this.#queued(e) < SEND_QUEUE_BYTES && !peer.closed) {
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
    if (allowed && this.#once) {
      allowed = this.#once.allow(e, index, begin, (id) => this.#isLive(id));
    }
    if (!allowed) {
      if (peer.supportsFast) peer.reject(index, begin, length);
      return;
    }
    const cache = this.#cache;
    const piece = cache.get(index);
    if (piece.data) return this.#serve(peer, index, begin, length, piece.data); // in memory: at once
    cache.hold(piece); // the buffer is not recycled before the block is copied out
    this.#reading.set(e, (this.#reading.get(e) ?? 0) + length);
    piece.read.then(
      (data) => this.#serve(peer, index, begin, length, data),
      (err) => this.#opts.onError(asError(err)),
    ).finally(() => {
      cache.done(piece);
      this.#reading.set(e, (this.#reading.get(e) ?? length) - length);
      this.drained(e); // what waited behind the read may go (a failed read queues nothing to drain)
    });
  }

  /** Bytes on their way to a peer's socket: in its send queue, or answered and waiting for a read. */
  #queued(e: PeerEntry): number {
    return e.conn.sendQueueBytes + (this.#reading.get(e) ?? 0);
  }

  #isLive(id: number): boolean {
    for (const e of this.#opts.peers()) if (e.id === id) return true;
    return false;
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
    // copies the block; it counts as uploaded once written (the connection's onUploaded)
    peer.sendPiece(index, begin, piece.subarray(begin, begin + length));
  }
}
