/**
 * Whole pieces read from disk to serve uploads, least recently used first: a piece is read once and answers every
 * request for its blocks while it is cached. Evicted buffers are recycled for the next reads once no request still
 * copies from them (a reference count), so seeding allocates nothing per piece in steady state.
 *
 * @module
 */

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
  /** Most pieces cached (at least 2). */
  capacity: number;
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
   * @param options Piece size, capacity and the disk reader.
   */
  constructor(options: PieceCacheOptions) {
    this.#opts = { ...options, capacity: Math.max(2, options.capacity) };
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
      this.#entries.delete(index); // re-insert: most recently used last
      this.#entries.set(index, hit);
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
    if (this.#entries.size > this.#opts.capacity) {
      const [oldest, old] = this.#entries.entries().next().value as [number, Entry];
      this.#entries.delete(oldest);
      old.evicted = true;
      old.data = undefined;
      this.#release(old);
    }
    e.read.then((data) => {
      if (!data && this.#entries.get(index) === e) {
        this.#entries.delete(index);
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
    this.#entries.clear();
    this.#spare.length = 0;
  }

  /** An evicted entry nobody uses gives its buffer back. */
  #release(e: Entry): void {
    if (!e.evicted || e.users > 0 || !e.buffer) return;
    if (this.#spare.length < this.#opts.capacity) this.#spare.push(e.buffer);
    e.buffer = undefined;
    e.data = undefined;
  }
}
