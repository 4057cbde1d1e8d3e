/**
 * One torrent's data on disk over its life: the {@linkcode Storage} opened when needed and closed when the torrent
 * stops, what is already there at start (resume data when it is still valid, else a hash check of the files that
 * exist), hash checks with progress, file priorities applied to the files in order, and resume data saved
 * periodically and on close.
 *
 * @module
 */

import { join } from "node:path";
import type { Bitfield } from "../bitfield.ts";
import { type LayoutInput, pieceRangeOfFile } from "./layout.ts";
import { type PieceCacheIndex, Storage } from "./storage.ts";

/** Options for {@linkcode TorrentData}. */
export interface TorrentDataOptions {
  /** The torrent's files and pieces. */
  layout: LayoutInput;
  /** Download directory. */
  dir: string;
  /** Priority of each file (read when storage opens; changes go through {@linkcode TorrentData.setPriority}). */
  priorities: readonly number[];
  /** The pieces verified on disk (updated by {@linkcode TorrentData.load} and the hash checks). */
  have: Bitfield;
  /** Part-file index from a previous run. */
  pieceCache?: PieceCacheIndex;
  /** Where resume data is kept; none when omitted. */
  resumePath?: string;
  /** The torrent's id in resume data (hex info hash). */
  resumeId?: string;
  /** Resume data written by an older version, read once when `resumePath` has none. */
  legacyResumePath?: string;
  /** Preallocate files. @default {false} */
  preallocate?: boolean;
}

/** Callbacks of {@linkcode TorrentData.hashcheck}. */
export interface CheckCallbacks {
  /** A piece matches its hash. */
  onPass(index: number): void;
  /** A piece does not (or its data is missing). */
  onFail(index: number): void;
}

/** Most time between resume saves while pieces arrive. */
const RESUME_SAVE_MS = 30_000;

/** A torrent's storage, resume data and hash checks. */
export class TorrentData {
  readonly #opts: TorrentDataOptions;
  #storage: Storage | undefined;
  #pieceCache: PieceCacheIndex | undefined;
  #checking = 0;
  #checkProgress = 0;
  #chain: Promise<void> = Promise.resolve();
  #dirty = false;
  #lastSave = 0;
  #checkedAtLoad = 0;

  /**
   * Creates a {@linkcode TorrentData}; nothing is opened yet.
   *
   * @param options The torrent, where its data lives, and its piece state.
   */
  constructor(options: TorrentDataOptions) {
    this.#opts = options;
    this.#pieceCache = options.pieceCache;
  }

  /** The open storage, if any. */
  get storage(): Storage | undefined {
    return this.#storage;
  }

  /** Pieces hashed when the torrent was loaded (0 when resume data vouched for everything). */
  get checkedAtLoad(): number {
    return this.#checkedAtLoad;
  }

  /** True while a hash check runs. */
  get checking(): boolean {
    return this.#checking > 0;
  }

  /** Progress (0-1) of the running hash check, if any. */
  get checkProgress(): number | undefined {
    return this.#checking > 0 ? this.#checkProgress : undefined;
  }

  /** The seed's `piece_cache()`: what the part file holds. */
  get pieceCache(): PieceCacheIndex | undefined {
    return this.#storage?.pieceCache() ?? this.#pieceCache;
  }

  /** Opens storage (idempotent). */
  open(): Storage {
    return this.#storage ??= new Storage({
      dir: this.#opts.dir,
      layout: this.#opts.layout,
      priorities: this.#opts.priorities,
      ...(this.#pieceCache ? { pieceCache: this.#pieceCache } : {}),
      ...(this.#opts.resumePath ? { resumePath: this.#opts.resumePath } : {}),
      ...(this.#opts.resumeId ? { resumeId: this.#opts.resumeId } : {}),
      ...(this.#opts.legacyResumePath ? { legacyResumePath: this.#opts.legacyResumePath } : {}),
      ...(this.#opts.preallocate ? { preallocate: true } : {}),
    });
  }

  /**
   * Learns what is already on disk: resume data when it is still valid (pieces of changed files are checked
   * again), otherwise a hash check of the files that exist.
   *
   * @param callbacks Told about each piece checked.
   */
  async load(callbacks: CheckCallbacks): Promise<void> {
    const storage = this.open();
    const resume = this.#opts.resumePath ? await storage.loadResume() : undefined;
    if (resume) {
      for (const i of resume.have) this.#opts.have.set(i);
      this.#checkedAtLoad = resume.recheck.length;
      if (resume.recheck.length > 0) await this.hashcheck(resume.recheck, callbacks);
    } else {
      const pieces = await this.#piecesOfExistingFiles();
      this.#checkedAtLoad = pieces.length;
      if (pieces.length > 0) await this.hashcheck(pieces, callbacks);
    }
  }

  /**
   * Verifies pieces against their hashes; passing pieces are marked had, failing ones are not.
   *
   * @param pieces Which pieces; all when omitted.
   * @param callbacks Told about each piece (after `have` is updated).
   * @param signal Stops the check early.
   */
  async hashcheck(
    pieces: Iterable<number> | undefined,
    callbacks: CheckCallbacks,
    signal?: AbortSignal,
  ): Promise<void> {
    const have = this.#opts.have;
    this.#checking++;
    this.#checkProgress = 0;
    try {
      await this.open().hashcheck(pieces, {
        onPass: (i) => callbacks.onPass(i),
        onFail: (i) => {
          have.clear(i);
          callbacks.onFail(i);
        },
        onProgress: (done, total) => this.#checkProgress = total === 0 ? 1 : done / total,
        ...(signal ? { signal } : {}),
      });
    } finally {
      this.#checking--;
    }
    this.#dirty = true;
  }

  /**
   * Applies a file's new priority to the files on disk (a file raised from 0 gets its data out of the part
   * file). Changes run one after another, so awaiting any call also waits for earlier ones.
   */
  async setPriority(file: number, priority: number): Promise<void> {
    const storage = this.#storage;
    const step = this.#chain.then(() => storage?.setPriority(file, priority));
    this.#chain = step.catch(() => {});
    await step;
  }

  /** The pieces verified on disk changed: resume data is due. */
  changed(): void {
    this.#dirty = true;
  }

  /**
   * A downloaded piece is on disk: recorded in resume data's journal (a crash then loses nothing written);
   * resolves once recorded.
   */
  written(index: number): Promise<void> {
    this.#dirty = true;
    return this.#storage?.journalPiece(index) ?? Promise.resolve();
  }

  /**
   * Saves resume data when pieces changed and the last save is old enough.
   *
   * @param now The current time (ms).
   * @returns The save, when one started.
   */
  saveIfDue(now: number): Promise<void> | undefined {
    if (!this.#dirty || !this.#opts.resumePath || now - this.#lastSave <= RESUME_SAVE_MS) return;
    this.#dirty = false;
    this.#lastSave = now;
    return this.#storage?.saveResume(this.#opts.have, { clean: false });
  }

  /** Writes resume data now (call it after the writes it vouches for completed). */
  async saveResume(): Promise<void> {
    if (!this.#storage || !this.#opts.resumePath) return;
    await this.#storage.saveResume(this.#opts.have, { clean: false });
    this.#dirty = false;
  }

  /**
   * Writes resume data and closes every file (storage opens again when needed).
   *
   * @throws {Error} When resume data could not be written; the files are closed anyway.
   */
  async close(): Promise<void> {
    await this.#chain;
    const storage = this.#storage;
    if (!storage) return;
    this.#storage = undefined;
    try {
      if (this.#opts.resumePath) await storage.saveResume(this.#opts.have, { clean: true });
    } finally {
      this.#pieceCache = storage.pieceCache();
      await storage.close();
    }
  }

  async #piecesOfExistingFiles(): Promise<number[]> {
    const set = new Set<number>();
    const { files } = this.#opts.layout;
    for (let f = 0; f < files.length; f++) {
      const range = pieceRangeOfFile(this.#opts.layout, f);
      if (!range || files[f].padding) continue;
      try {
        const st = await Deno.stat(join(this.#opts.dir, ...files[f].path));
        if (!st.isFile || st.size === 0) continue;
      } catch {
        continue;
      }
      for (let i = range[0]; i <= range[1]; i++) set.add(i);
    }
    return [...set].sort((a, b) => a - b);
  }
}
