/**
 * Checking a torrent's data against its hashes: one piece (SHA-1 for v1, merkle trees for v2, both for hybrids)
 * or a whole hash check, which reads piece i+1 while piece i is hashed and, for a big enough v1 torrent, shares
 * the pieces with a worker thread that reads and hashes them too. {@linkcode PieceHashCheck} reads through the
 * functions it is given (`Storage` gives its own reads) and touches no file itself except on the worker.
 *
 * @module
 */

import { Bitfield } from "../bitfield.ts";
import { bytesEqual } from "../_bytes.ts";
import { isInside } from "../_paths.ts";
import { denoBackend, type FileBackend } from "./backend.ts";
import { FileHasher, type HashSpan } from "./hasher.ts";
import type { Layout } from "./layout.ts";
import { type PieceCheck, TorrentVerifier } from "./verify.ts";

/** Options of a hash check (`Storage.hashcheck`). */
export interface HashcheckOptions {
  /** Called for each piece that matches its hash. */
  onPass?: (index: number) => void;
  /** Called for each piece that does not (or whose data is missing). */
  onFail?: (index: number) => void;
  /** Called after each piece with pieces done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Stops the check early. */
  signal?: AbortSignal;
}

/** Options for {@linkcode PieceHashCheck}: where the data is and how to read it. */
export interface PieceHashCheckOptions {
  /** The download directory (the worker thread reads only files inside it). */
  dir: string;
  /** File operations: a worker thread reads alongside only with the default backend. */
  backend: FileBackend;
  /** Threads for a hash check of a v1 torrent (see `StorageOptions.checkThreads`); chosen when not given. */
  checkThreads?: 1 | 2;
  /**
   * Hybrid torrents: check a piece's v2 (merkle) hash as well as its SHA-1 when known.
   * @default {true}
   */
  hybridBoth?: boolean;
  /** Absolute path of a file. */
  path(file: number): string;
  /** Reads a whole piece into `into`; undefined when it is missing or short. */
  readPiece(index: number, into: Uint8Array): Promise<Uint8Array | undefined>;
  /** True when a piece is kept in the part file (read by this thread only, never by the worker). */
  inPartFile(index: number): boolean;
}

/** One torrent's hash checks: single pieces and whole-torrent checks. */
export class PieceHashCheck {
  readonly #layout: Layout;
  readonly #opts: PieceHashCheckOptions;
  readonly #verifier: TorrentVerifier;

  /**
   * Creates a {@linkcode PieceHashCheck}.
   *
   * @param layout The torrent's geometry and hashes.
   * @param options Where the data is and how to read it.
   */
  constructor(layout: Layout, options: PieceHashCheckOptions) {
    this.#layout = layout;
    this.#opts = options;
    this.#verifier = new TorrentVerifier(layout, { hybridBoth: options.hybridBoth ?? true });
  }

  /**
   * True when `data` matches piece `index`'s hashes: its SHA-1 (v1), its merkle hash (v2: false while the file's
   * piece layer is unknown), both for hybrids (the merkle hash only once known).
   *
   * @param index Piece index.
   * @param data The piece's bytes (at least its size).
   * @returns Whether it matches.
   */
  async verify(index: number, data: Uint8Array): Promise<boolean> {
    if (this.#layout.version !== 1) return await this.#verifier.verify(index, data);
    const size = this.#layout.pieceSize(index);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-1", data.subarray(0, size) as Uint8Array<ArrayBuffer>),
    );
    return bytesEqual(digest, this.#layout.pieces.subarray(index * 20, index * 20 + 20));
  }

  /**
   * Checks each kind of hash that applies to piece `index` and is known (a hybrid torrent's SHA-1 and merkle hash
   * separately, so that a disagreement between them can be reported).
   *
   * @param index Piece index.
   * @param data The piece's bytes.
   * @returns What each hash said.
   */
  async check(index: number, data: Uint8Array): Promise<PieceCheck> {
    return await this.#verifier.check(index, data);
  }

  /**
   * Verifies pieces against their hashes (see `Storage.hashcheck`).
   *
   * @param list The pieces, each a valid index.
   * @param options Callbacks and a signal.
   * @returns The pieces that passed.
   */
  async run(list: number[], options: HashcheckOptions = {}): Promise<Bitfield> {
    const passed = new Bitfield(this.#layout.pieceCount);
    // results are reported in the list's order, whichever thread finished a piece first
    const results = new Int8Array(list.length); // 0 = not yet, 1 = passed, -1 = failed
    let reported = 0;
    const result = (k: number, ok: boolean) => {
      results[k] = ok ? 1 : -1;
      for (; reported < list.length && results[reported] !== 0; reported++) {
        const i = list[reported];
        if (results[reported] > 0) {
          passed.set(i);
          options.onPass?.(i);
        } else {
          options.onFail?.(i);
        }
        options.onProgress?.(reported + 1, list.length);
      }
    };
    // pieces whose bytes cannot be on disk (a file missing or too short: resume data outlived the files) fail
    // without being read — no thread is started to hash nothing
    const absent = await this.#absent(list);
    for (const k of absent) result(k, false);
    const hasher = this.#checkHasher(list.length - absent.size);
    // the pieces in the part file are read by this thread only
    const mine: number[] = [];
    let cursor = 0;
    const take = (worker: boolean): number | undefined => {
      if (!worker && mine.length > 0) return mine.pop();
      while (cursor < list.length) {
        const k = cursor++;
        if (absent.has(k)) continue;
        if (!worker || !this.#opts.inPartFile(list[k])) return k;
        mine.push(k);
      }
      return worker || mine.length === 0 ? undefined : mine.pop();
    };
    const buffers = [
      new Uint8Array(this.#layout.pieceLength),
      new Uint8Array(this.#layout.pieceLength),
    ];
    const read = (k: number | undefined, b: number) =>
      k === undefined
        ? undefined
        : this.#opts.readPiece(list[k], buffers[b]).catch(() => undefined);
    const here = async () => {
      let k = take(false), b = 0;
      let next = read(k, b);
      while (k !== undefined) {
        options.signal?.throwIfAborted();
        const data = await next;
        const following = take(false);
        next = read(following, b ^ 1);
        result(k, data !== undefined && await this.verify(list[k], data));
        k = following;
        b ^= 1;
      }
    };
    const there = async (h: FileHasher) => {
      const inflight = new Set<Promise<void>>();
      for (;;) {
        // two in flight: the worker has the next piece as soon as it is done with one
        while (inflight.size < 2) {
          const k = take(true);
          if (k === undefined) break;
          const p = this.#hashThere(h, list[k]).then((ok) => result(k, ok));
          inflight.add(p);
          p.finally(() => inflight.delete(p));
        }
        if (inflight.size === 0) return;
        await Promise.race(inflight);
        options.signal?.throwIfAborted();
      }
    };
    try {
      await Promise.all(hasher ? [here(), there(hasher)] : [here()]);
    } finally {
      await hasher?.close();
    }
    return passed;
  }

  /** A worker to hash alongside this thread, for a check of a v1 torrent big enough to be worth it. */
  /** Positions in `list` of the pieces that are not in the part file and lie in a missing or short file. */
  async #absent(list: number[]): Promise<Set<number>> {
    const layout = this.#layout;
    const sizes = new Map<number, number>(); // file → its size on disk, -1 when missing
    const absent = new Set<number>();
    for (let k = 0; k < list.length; k++) {
      const index = list[k];
      if (this.#opts.inPartFile(index)) continue;
      for (const s of layout.spans(index, 0, layout.pieceSize(index))) {
        if (layout.files[s.file].padding) continue;
        let size = sizes.get(s.file);
        if (size === undefined) {
          const st = await this.#opts.backend.stat(this.#opts.path(s.file)).catch(() => undefined);
          sizes.set(s.file, size = st?.size ?? -1);
        }
        if (size < s.fileOffset + s.length) {
          absent.add(k);
          break;
        }
      }
    }
    return absent;
  }

  #checkHasher(pieces: number): FileHasher | undefined {
    if (
      this.#layout.version !== 1 || this.#opts.backend !== denoBackend || pieces < 2
    ) return;
    const threads = this.#opts.checkThreads;
    if (threads === undefined) {
      if ((navigator.hardwareConcurrency ?? 1) < 2) return;
      if (pieces * this.#layout.pieceLength < 64 * 1024 * 1024) return;
    } else if (threads < 2) return;
    return FileHasher.open();
  }

  /** Reads and hashes piece `index` on the worker; true when it matches its SHA-1. */
  async #hashThere(hasher: FileHasher, index: number): Promise<boolean> {
    const layout = this.#layout;
    const size = layout.pieceSize(index);
    const spans: HashSpan[] = [];
    for (const s of layout.spans(index, 0, size)) {
      const path = this.#opts.path(s.file);
      if (!layout.files[s.file].padding && !isInside(this.#opts.dir, path)) return false;
      spans.push([
        layout.files[s.file].padding ? null : path,
        s.fileOffset,
        s.bufferOffset,
        s.length,
      ]);
    }
    const digest = await hasher.hash(spans, size);
    return digest !== undefined &&
      bytesEqual(digest, layout.pieces.subarray(index * 20, index * 20 + 20));
  }
}
