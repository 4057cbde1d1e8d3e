/**
 * Whole pieces read from disk to serve uploads, least recently used first: a piece is read once and answers every
 * request for its blocks while it is cached. Evicted buffers are recycled for the next reads once no request still
 * copies from them (a reference count), so seeding allocates nothing per piece in steady state.
 *
 * The memory is one budget for every torrent of a session ({@linkcode CacheBudget}): a thousand seeding torrents
 * share it instead of each keeping pieces of its own.
 *
 * @module
 */

/** A byte budget shared by several caches: least recently used entries over all of them are evicted first. */
export class CacheBudget {
  readonly #bytes: number;
  #used = 0;
  readonly #lru = new Map<object, { bytes: number; evict: () => void }>();

  /**
   * Creates a {@linkcode CacheBudget}.
   *
   * @param bytes Most bytes cached over every cache sharing it.
   */
  constructor(bytes: number) {
    this.#bytes = bytes;
  }

  /** Bytes cached now. */
  get used(): number {
    return this.#used;
  }

  /**
   * An entry takes `bytes`; older entries (of any cache) are evicted until the budget holds, keeping at least
   * this one.
   */
  add(key: object, bytes: number, evict: () => void): void {
    this.#lru.set(key, { bytes, evict });
    this.#used += bytes;
    for (const [k, e] of this.#lru) {
      if (this.#used <= this.#bytes || k === key) break;
      this.#lru.delete(k);
      this.#used -= e.bytes;
      e.evict();
    }
  }

  /** An entry was used: it is evicted last. */
  touch(key: object): void {
    const e = this.#lru.get(key);
    if (!e) return;
    this.#lru.delete(key);
    this.#lru.set(key, e);
  }

  /** An entry is gone (its cache dropped it). */
  remove(key: object): void {
    const e = this.#lru.get(key);
    if (!e) return;
    this.#lru.delete(key);
    this.#used -= e.bytes;
  }
}

/** Reads a piece into a buffer (or a fresh one); undefined when it cannot be read. */
export type PieceReader = (
  index: number,
  into: Uint8Array<ArrayBuffer> | undefined,
) => Promise<Uint8Array | undefined>;

/** A cached piece. */
export interface CachedPiece {
  /** The read, settled once the piece is in memory (undefined when it could not be read). */
  readonly read: Promise<Uint8Array | undefined>;
  /** The piece, once read, while the entry is cached. */
  readonly data: Uint8Array | undefined;
}

interface Entry extends CachedPiece {
  data: Uint8Array | undefined;
  /** The full-size buffer the piece is read into, recycled once evicted and unused. */
  buffer: Uint8Array<ArrayBuffer> | undefined;
  /** The read in flight plus requests waiting to copy a block out. */
  users: number;
  evicted: boolean;
}

/** Options for {@linkcode PieceCache}. */
export interface PieceCacheOptions {
  /** Bytes per piece (only full-size buffers are recycled). */
  pieceLength: number;
  /** Bytes in piece `index` (the last piece may be shorter). */
  pieceSize: (index: number) => number;
  /** The memory budget, shared with other torrents' caches (a session's). */
  budget: CacheBudget;
  /** Reads a piece from disk. */
  read: PieceReader;
}

/** An LRU cache of whole pieces for uploading. */
export class PieceCache {
  readonly #opts: PieceCacheOptions;
  readonly #entries = new Map<number, Entry>();
  readonly #spare: Uint8Array<ArrayBuffer>[] = [];

  /**
   * Creates a {@linkcode PieceCache}.
   *
   * @param options Piece size, the shared budget and the disk reader.
   */
  constructor(options: PieceCacheOptions) {
    this.#opts = options;
  }

  /** Pieces cached. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The cached piece, read from disk on a miss. A caller that awaits `read` must call
   * {@linkcode PieceCache.hold} first and {@linkcode PieceCache.done} after copying its block out, so the buffer
   * is not recycled under it.
   */
  get(index: number): CachedPiece {
    const hit = this.#entries.get(index);
    if (hit) {
      this.#opts.budget.touch(hit);
      return hit;
    }
    const buffer = this.#opts.pieceSize(index) === this.#opts.pieceLength
      ? this.#spare.pop()
      : undefined;
    const e: Entry = {
      read: this.#opts.read(index, buffer).catch(() => undefined),
      data: undefined,
      buffer,
      users: 1, // the read itself
      evicted: false,
    };
    this.#entries.set(index, e);
    this.#opts.budget.add(e, this.#opts.pieceSize(index), () => this.#evict(index, e));
    e.read.then((data) => {
      if (!data && this.#entries.get(index) === e) {
        this.#entries.delete(index);
        this.#opts.budget.remove(e);
        e.evicted = true;
      }
      if (data && !e.buffer && data.length === this.#opts.pieceLength) {
        e.buffer = data as Uint8Array<ArrayBuffer>;
      }
      if (data && !e.evicted) e.data = data;
      this.done(e);
    });
    return e;
  }

  /** One more user of the piece's buffer (a request waiting for the read). */
  hold(piece: CachedPiece): void {
    (piece as Entry).users++;
  }

  /** A user of the piece's buffer is done with it. */
  done(piece: CachedPiece): void {
    const e = piece as Entry;
    e.users--;
    this.#release(e);
  }

  /** Drops every cached piece and spare buffer. */
  clear(): void {
    for (const e of this.#entries.values()) {
      this.#opts.budget.remove(e);
      e.evicted = true;
      e.data = undefined;
    }
    this.#entries.clear();
    this.#spare.length = 0;
  }

  #evict(index: number, e: Entry): void {
    if (this.#entries.get(index) === e) this.#entries.delete(index);
    e.evicted = true;
    e.data = undefined;
    this.#release(e);
  }

  /** An evicted entry nobody uses gives its buffer back (a couple are kept for the next reads). */
  #release(e: Entry): void {
    if (!e.evicted || e.users > 0 || !e.buffer) return;
    if (this.#spare.length < 2) this.#spare.push(e.buffer);
    e.buffer = undefined;
    e.data = undefined;
  }
}
