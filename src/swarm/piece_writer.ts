/**
 * The end of the download path: a complete piece is verified (one after another, Web Crypto), then written (a few
 * writes in flight at once), then reported. A piece the disk refuses (full, read-only, unwritable) stays in memory,
 * is never reported as had, and is written again when the owner's tick says so, in order, until it lands.
 *
 * @module
 */

import { asError } from "../_errors.ts";
import type { PartialPiece } from "./piece_picker.ts";

/** Options for {@linkcode PieceWriter}. */
export interface PieceWriterOptions {
  /** Checks a complete piece: true good, false bad, undefined when it could not be checked (stopping). */
  verify(piece: PartialPiece): Promise<boolean | undefined>;
  /** Writes a verified piece; throws when the disk refuses (the piece's buffer may be detached if it is lost). */
  write(piece: PartialPiece): Promise<void>;
  /** The piece passed its check (before it is written). */
  onPassed(piece: PartialPiece): void;
  /** The piece failed its check. */
  onFailed(piece: PartialPiece): void;
  /** The piece is on disk. */
  onWritten(piece: PartialPiece): void;
  /** The piece was neither verified nor written and is not blamed on anyone: download it again. */
  onLost(piece: PartialPiece, error?: Error): void;
  /** A write failed; the piece is kept and retried. */
  onDiskError(error: Error): void;
  /** Every piece the disk refused is written now. */
  onDiskRecovered(): void;
  /** An attempt to write the refused pieces again failed (the error was reported once already). */
  onRetryFailed?(): void;
  /** Milliseconds between attempts to write refused pieces. @default {5000} */
  retryMs?: number;
  /** Writes in flight at once. @default {4} */
  parallelWrites?: number;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
}

/** Verifies and writes complete pieces. */
export class PieceWriter {
  readonly #opts: PieceWriterOptions;
  readonly #queue: PartialPiece[] = [];
  #verifying: Promise<void> | undefined;
  readonly #writes = new Set<Promise<void>>();
  /** Verified pieces the disk refused, in order; never reported as had until written. */
  readonly #unwritten: PartialPiece[] = [];
  #nextRetry = 0;
  #retrying = false;

  /**
   * Creates a {@linkcode PieceWriter}.
   *
   * @param options How to verify and write, and whom to tell.
   */
  constructor(options: PieceWriterOptions) {
    this.#opts = options;
  }

  /** True while pieces the disk refused wait in memory. */
  get failing(): boolean {
    return this.#unwritten.length > 0;
  }

  /** Pieces waiting to be verified or written, or refused by the disk. */
  get pending(): number {
    return this.#queue.length + this.#writes.size + this.#unwritten.length;
  }

  /**
   * A piece whose every block has arrived.
   *
   * @param piece The piece, with its buffer.
   */
  add(piece: PartialPiece): void {
    this.#queue.push(piece);
    if (!this.#verifying) this.#verifying = this.#verifyLoop();
  }

  /**
   * Time-driven work: the next attempt to write refused pieces, when due.
   *
   * @param now The current time (ms).
   */
  tick(now: number): void {
    if (this.#unwritten.length === 0 || this.#retrying || now < this.#nextRetry) return;
    void this.#retry(now);
  }

  /** Resolves when nothing is being verified or written (refused pieces may still wait). */
  async drain(): Promise<void> {
    for (let i = 0; i < 100 && (this.#verifying || this.#writes.size > 0); i++) {
      await this.#verifying;
      await Promise.all(this.#writes);
    }
  }

  /** Gives up the pieces the disk refused (stopping): each is reported lost, to be downloaded again. */
  abandon(): void {
    for (const p of this.#unwritten.splice(0)) this.#opts.onLost(p);
  }

  async #verifyLoop(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const piece = this.#queue.shift()!;
        const ok = await this.#opts.verify(piece).catch(() => undefined);
        if (ok === undefined) {
          this.#opts.onLost(piece);
          continue;
        }
        if (!ok) {
          this.#opts.onFailed(piece);
          continue;
        }
        this.#opts.onPassed(piece);
        const write = this.#write(piece);
        this.#writes.add(write);
        write.finally(() => this.#writes.delete(write));
        // bound memory: at most a few pieces written at once
        if (this.#writes.size >= (this.#opts.parallelWrites ?? 4)) await Promise.race(this.#writes);
      }
    } finally {
      this.#verifying = undefined;
    }
  }

  async #write(piece: PartialPiece): Promise<void> {
    if (this.#unwritten.length > 0) {
      // the disk is failing: queue behind the pieces already waiting, in order
      this.#unwritten.push(piece);
      return;
    }
    try {
      await this.#opts.write(piece);
    } catch (err) {
      const error = asError(err);
      // the writer thread died with the bytes: download the piece again
      if (piece.buffer.byteLength === 0) return this.#opts.onLost(piece, error);
      this.#unwritten.push(piece);
      this.#nextRetry = (this.#opts.now ?? Date.now)() + (this.#opts.retryMs ?? 5000);
      this.#opts.onDiskError(error);
      return;
    }
    this.#opts.onWritten(piece);
  }

  async #retry(now: number): Promise<void> {
    this.#retrying = true;
    try {
      while (this.#unwritten.length > 0) {
        const piece = this.#unwritten[0];
        try {
          await this.#opts.write(piece);
        } catch {
          if (piece.buffer.byteLength === 0 && this.#unwritten[0] === piece) {
            this.#unwritten.shift(); // lost with the writer thread: download it again
            this.#opts.onLost(piece);
            continue;
          }
          this.#nextRetry = now + (this.#opts.retryMs ?? 5000);
          this.#opts.onRetryFailed?.();
          return; // still failing: said once already
        }
        if (this.#unwritten[0] !== piece) return; // abandoned meanwhile
        this.#unwritten.shift();
        this.#opts.onWritten(piece);
      }
      this.#opts.onDiskRecovered();
    } finally {
      this.#retrying = false;
    }
  }
}

/**
 * The one line a disk error becomes: what the disk said, and what happens now.
 *
 * @param cause The write's error.
 * @param paused True when the download paused because of it.
 * @param retryMs How often the write is tried again.
 */
export function diskError(cause: Error, paused: boolean, retryMs: number): Error {
  return new Error(
    `${cause.message}; ${paused ? "download paused, it resumes by itself" : "retrying"} ` +
      `once the data can be written (tried every ${retryMs / 1000} s)`,
    { cause },
  );
}
