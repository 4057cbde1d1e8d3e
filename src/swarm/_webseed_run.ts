// The bytes of one web seed run: the GETs it plans, how a failed one ends, and the piece buffers its body fills.
// Private to webseed.ts.

import type { Layout } from "../storage/layout.ts";

/** One GET of a run: a file span (BEP 19), a whole piece (BEP 17), or padding that is not fetched at all. */
export interface PlannedGet {
  /** The URL as built from the torrent (redirects are remembered under it). */
  url: string;
  /** Inclusive byte range inside the file (BEP 19); none for BEP 17. */
  range?: [number, number];
  /** Size of the whole file, to check `Content-Range` against (BEP 19). */
  fileLength?: number;
  /** Bytes this request delivers into the run. */
  length: number;
  /** A BEP 47 padding file: zeros, never requested. */
  padding?: boolean;
}

/** Why a request failed, and what follows. Thrown inside a run, turned into a result at its end. */
export class Fault {
  constructor(
    readonly outcome: "dropped" | "retry" | "wait",
    readonly message: string,
    readonly status?: number,
    readonly waitMs?: number,
  ) {}
}

/** The run was stopped (caller's signal, or the seed was dropped meanwhile). */
export const STOPPED = Symbol("stopped");

export const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Fills piece buffers from a run's bytes, in order, handing each piece over as it completes. */
export class RunWriter {
  delivered = 0;
  readonly #layout: Layout;
  readonly #end: number;
  readonly #onPiece: (index: number, data: Uint8Array) => void;
  readonly #buffer: Uint8Array;
  #index: number;
  #size: number;
  #filled = 0;

  constructor(
    layout: Layout,
    first: number,
    count: number,
    buffer: Uint8Array,
    onPiece: (index: number, data: Uint8Array) => void,
  ) {
    this.#layout = layout;
    this.#index = first;
    this.#end = first + count;
    this.#size = layout.pieceSize(first);
    this.#buffer = buffer;
    this.#onPiece = onPiece;
  }

  /** Appends bytes (the plan never gives more than the run holds). */
  write(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length && this.#index < this.#end) {
      const n = Math.min(chunk.length - off, this.#size - this.#filled);
      if (this.#filled === 0 && n === this.#size) {
        // a whole piece inside one chunk: hand it over without a copy
        this.#complete(chunk.subarray(off, off + n));
      } else {
        this.#buffer.set(chunk.subarray(off, off + n), this.#filled);
        this.#filled += n;
        if (this.#filled === this.#size) this.#complete(this.#buffer.subarray(0, this.#size));
      }
      off += n;
    }
  }

  /** Appends `n` zero bytes (a padding file). */
  zeros(n: number): void {
    while (n > 0 && this.#index < this.#end) {
      const k = Math.min(n, this.#size - this.#filled);
      this.#buffer.fill(0, this.#filled, this.#filled + k);
      this.#filled += k;
      n -= k;
      if (this.#filled === this.#size) this.#complete(this.#buffer.subarray(0, this.#size));
    }
  }

  #complete(data: Uint8Array): void {
    const index = this.#index;
    this.#index++;
    this.#filled = 0;
    this.delivered++;
    if (this.#index < this.#end) this.#size = this.#layout.pieceSize(this.#index);
    this.#onPiece(index, data);
  }
}
