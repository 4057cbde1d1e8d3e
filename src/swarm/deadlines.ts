/**
 * Piece deadlines for readers of a torrent's bytes (a file played while it downloads), as libtorrent's
 * `set_piece_deadline` and WebTorrent's critical pieces: each reader has a position and an end, and the pieces
 * just ahead of it — a window sized by the download rate — get deadlines in the piece picker, the nearest first
 * (the distance in bytes from the reader). A reader that waits for a piece is woken once the piece is verified
 * and on disk. Closing a reader drops its deadlines.
 *
 * No sockets, no disk, no timers: the torrent tells it when pieces are had ({@linkcode PieceDeadlines.had}) and
 * ticks it so the windows follow the download rate ({@linkcode PieceDeadlines.tick}).
 *
 * @module
 */

/** Options for {@linkcode PieceDeadlines}. */
export interface PieceDeadlinesOptions {
  /** Bytes per piece (the last may be shorter). */
  pieceLength: number;
  /** Bytes in the torrent. */
  totalLength: number;
  /** True when a piece is verified on disk. */
  has(index: number): boolean;
  /** Hands the deadlines to the picker: `[piece, bytes ahead of the nearest reader]`, for every piece in a window. */
  apply(deadlines: [number, number][]): void;
  /** The torrent's download rate, bytes/s: a window holds this many seconds of it. */
  rate(): number;
  /**
   * The deadlines changed (after `apply`), or a reader started to wait: the owner asks peers for the new pieces.
   * `head` is a piece a reader needs now: a new reader's first piece (`"seek"`), or one a reader starts to wait
   * for (`"wait"`); the owner may make room for it in the peers' queues.
   */
  changed?(head: number | undefined, why: "seek" | "wait" | "window"): void;
  /**
   * Seconds of download a window holds ahead of its reader.
   * @default {8}
   */
  windowSeconds?: number;
  /**
   * Smallest window, bytes (used until the rate is known).
   * @default {max(4 MiB, 2 pieces)}
   */
  minWindow?: number;
  /**
   * Largest window, bytes.
   * @default {max(64 MiB, 4 pieces)}
   */
  maxWindow?: number;
}

/** Most pieces in one reader's window, whatever the sizes say. */
const MAX_WINDOW_PIECES = 1024;

/** The readers of one torrent and the deadlines they put on its pieces. */
export class PieceDeadlines {
  readonly #opts: PieceDeadlinesOptions;
  readonly #pieceLength: number;
  readonly #pieceCount: number;
  readonly #readers = new Set<DeadlineReader>();
  /** Waits for a piece: piece index → what to call once it is had. */
  readonly #waiting = new Map<number, Set<(had: boolean) => void>>();
  #closed: Error | undefined;
  #applied = false;

  /**
   * Creates a {@linkcode PieceDeadlines}.
   *
   * @param options The torrent's geometry, its pieces, the picker to tell, and the rate.
   */
  constructor(options: PieceDeadlinesOptions) {
    this.#opts = options;
    this.#pieceLength = options.pieceLength;
    this.#pieceCount = Math.ceil(options.totalLength / options.pieceLength);
  }

  /** Readers open now. */
  get readers(): number {
    return this.#readers.size;
  }

  /**
   * A new reader of the bytes `[start, end)` of the torrent, at `start`: the pieces ahead of it get deadlines at
   * once.
   *
   * @example A reader's window, then nothing once it is closed
   * ```ts
   * import { PieceDeadlines } from "./deadlines.ts";
   * import assert from "node:assert/strict";
   *
   * let applied: [number, number][] = [];
   * const deadlines = new PieceDeadlines({
   *   pieceLength: 1024, totalLength: 100 * 1024, has: () => false, rate: () => 0,
   *   apply: (d) => applied = d, minWindow: 3 * 1024,
   * });
   * const reader = deadlines.open({ start: 10 * 1024 + 5, end: 100 * 1024 });
   * assert.deepEqual(applied.map(([i]) => i), [10, 11, 12, 13]);
   * reader.close();
   * assert.deepEqual(applied, []);
   * ```
   *
   * @param range The reader's bytes, in the torrent's concatenated data.
   * @returns The reader: advance it as bytes are delivered, wait on it for pieces, close it when done.
   * @throws {Error} When the torrent was closed.
   */
  open(range: { start: number; end: number }): DeadlineReader {
    if (this.#closed) throw this.#closed;
    const reader = new DeadlineReader(this, range.start, range.end);
    this.#readers.add(reader);
    const first = Math.floor(range.start / this.#pieceLength);
    this.#update(range.start < range.end && !this.#opts.has(first) ? first : undefined, "seek");
    return reader;
  }

  /** Piece `index` is verified on disk: readers waiting for it go on. */
  had(index: number): void {
    const waiters = this.#waiting.get(index);
    if (!waiters) return;
    this.#waiting.delete(index);
    for (const w of waiters) w(true);
  }

  /** Resizes the windows to the current rate (the owner calls this about once a second). */
  tick(): void {
    if (this.#readers.size > 0) this.#update();
  }

  /**
   * Ends every reader: their waits reject with `reason` and no deadline is left (the torrent was closed).
   *
   * @param reason What the readers' waits reject with.
   */
  close(reason: Error): void {
    if (this.#closed) return;
    this.#closed = reason;
    const waits = [...this.#waiting.values()];
    this.#waiting.clear();
    this.#readers.clear();
    this.#update();
    for (const set of waits) for (const w of set) w(false);
  }

  /** @internal */
  _wait(reader: DeadlineReader, index: number): Promise<boolean> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#opts.has(index)) return Promise.resolve(true);
    const { promise, resolve, reject } = Promise.withResolvers<boolean>();
    const waiter = (had: boolean) => {
      reader._waiter = undefined;
      if (had) resolve(true);
      else if (this.#closed) reject(this.#closed);
      else resolve(false);
    };
    reader._waiter = { index, waiter };
    let set = this.#waiting.get(index);
    if (!set) this.#waiting.set(index, set = new Set());
    set.add(waiter);
    this.#opts.changed?.(index, "wait");
    return promise;
  }

  /** @internal */
  _closed(reader: DeadlineReader): void {
    if (!this.#readers.delete(reader)) return;
    const w = reader._waiter;
    if (w) {
      const set = this.#waiting.get(w.index);
      set?.delete(w.waiter);
      if (set?.size === 0) this.#waiting.delete(w.index);
      w.waiter(false);
    }
    this.#update();
  }

  /** @internal A reader moved: recompute when its head or window end changed piece. */
  _moved(reader: DeadlineReader): void {
    if (!this.#readers.has(reader)) return;
    const [first, last] = this.#windowOf(reader, this.#window());
    if (first !== reader._first || last !== reader._last) this.#update();
  }

  /** Bytes a window holds at the current rate. */
  #window(): number {
    const pl = this.#pieceLength;
    const min = this.#opts.minWindow ?? Math.max(4 * 1024 * 1024, 2 * pl);
    const max = Math.max(min, this.#opts.maxWindow ?? Math.max(64 * 1024 * 1024, 4 * pl));
    const rate = this.#opts.rate();
    const want = (Number.isFinite(rate) && rate > 0 ? rate : 0) * (this.#opts.windowSeconds ?? 8);
    return Math.min(max, Math.max(min, want));
  }

  /** First and last piece of a reader's window (last < first when it has nothing left). */
  #windowOf(r: DeadlineReader, window: number): [number, number] {
    if (r.position >= r.end) return [0, -1];
    const first = Math.floor(r.position / this.#pieceLength);
    const stop = Math.min(r.end, r.position + window);
    const last = Math.min(
      Math.floor((stop - 1) / this.#pieceLength),
      first + MAX_WINDOW_PIECES - 1,
      this.#pieceCount - 1,
    );
    return [first, last];
  }

  #update(head?: number, why: "seek" | "window" = "window"): void {
    const window = this.#window();
    const best = new Map<number, number>();
    for (const r of this.#readers) {
      const [first, last] = this.#windowOf(r, window);
      r._first = first;
      r._last = last;
      for (let i = first; i <= last; i++) {
        if (this.#opts.has(i)) continue;
        const ahead = Math.max(0, i * this.#pieceLength - r.position);
        const known = best.get(i);
        if (known === undefined || ahead < known) best.set(i, ahead);
      }
    }
    // nothing before and nothing now: the picker need not hear it
    if (best.size === 0 && !this.#applied) return;
    this.#applied = best.size > 0;
    this.#opts.apply([...best]);
    this.#opts.changed?.(head, why);
  }
}

/** One reader of a torrent's bytes, from {@linkcode PieceDeadlines.open}. */
export class DeadlineReader {
  readonly #owner: PieceDeadlines;
  #position: number;
  /** Where the reader stops (exclusive), in the torrent's bytes. */
  readonly end: number;
  #closed = false;
  /** @internal The wait in progress, if any. */
  _waiter: { index: number; waiter: (had: boolean) => void } | undefined;
  /** @internal First piece of the window last applied. */
  _first = 0;
  /** @internal Last piece of the window last applied. */
  _last = -1;

  /**
   * Creates a {@linkcode DeadlineReader}; use {@linkcode PieceDeadlines.open}.
   *
   * @param owner The torrent's deadlines.
   * @param start First byte, in the torrent's data.
   * @param end Byte after the last.
   */
  constructor(owner: PieceDeadlines, start: number, end: number) {
    this.#owner = owner;
    this.#position = start;
    this.end = end;
  }

  /** The next byte the reader needs, in the torrent's data. */
  get position(): number {
    return this.#position;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The reader got its bytes up to `position`: the window moves on.
   *
   * @param position The next byte it needs.
   */
  advance(position: number): void {
    if (this.#closed || position === this.#position) return;
    this.#position = position;
    this.#owner._moved(this);
  }

  /**
   * Waits until piece `index` is verified on disk.
   *
   * @param index The piece.
   * @returns True once it is had; false when the reader was closed meanwhile.
   * @throws {Error} When the torrent was closed (the reason it was given).
   */
  wait(index: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return this.#owner._wait(this, index);
  }

  /** Drops the reader's deadlines; a wait in progress resolves false. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#owner._closed(this);
  }
}
