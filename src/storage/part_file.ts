/**
 * The part file: pieces that overlap files not being downloaded (priority 0) are kept there whole, one
 * piece-sized slot each, until the file they belong to is wanted again. {@linkcode PartFile} owns the slots and
 * the file's handle; `Storage` (`storage.ts`) decides which pieces go there.
 *
 * @module
 */

import { dirname } from "node:path";
import { isInside } from "../_paths.ts";
import { type BackendFile, type FileBackend, StorageError } from "./backend.ts";
import type { PieceCacheIndex } from "./resume.ts";

/** Options for {@linkcode PartFile}. */
export interface PartFileOptions {
  /** Where the part file is. */
  path: string;
  /** The download directory. */
  dir: string;
  /** Bytes per piece: the size of a slot. */
  pieceLength: number;
  /** Number of pieces (slots of other pieces in `index` are ignored). */
  pieceCount: number;
  /** File operations. */
  backend: FileBackend;
  /** The index of a previous part file ({@linkcode PartFile.index}), restoring its slots. */
  index?: PieceCacheIndex;
}

/** The pieces kept whole in the part file, and the file itself (opened when first needed). */
export class PartFile {
  /** The part file's path. */
  readonly path: string;
  /** Piece index → slot in the part file (resume data reads it and restores into it). */
  readonly slots: Map<number, number> = new Map();
  readonly #dir: string;
  readonly #pieceLength: number;
  readonly #backend: FileBackend;
  /** Part-file slots being written for pieces not yet in `slots`. */
  readonly #slotsTaken = new Set<number>();
  #file: Promise<BackendFile> | undefined;
  #dirty = false;

  /**
   * Creates a {@linkcode PartFile}; nothing is opened until a piece is read or written.
   *
   * @param options Where it is, the slot size, and the slots of a previous run.
   */
  constructor(options: PartFileOptions) {
    this.path = options.path;
    this.#dir = options.dir;
    this.#pieceLength = options.pieceLength;
    this.#backend = options.backend;
    for (const [piece, slot] of options.index?.pieces ?? []) {
      if (
        Number.isInteger(piece) && Number.isInteger(slot) && piece >= 0 &&
        piece < options.pieceCount && slot >= 0
      ) {
        this.slots.set(piece, slot);
      }
    }
  }

  /** What the part file holds: `[piece, slot]` pairs, by piece. */
  index(): PieceCacheIndex {
    return { pieces: [...this.slots.entries()].sort((a, b) => a[0] - b[0]) };
  }

  /**
   * Reads bytes of a piece kept in the part file.
   *
   * @param slot The piece's slot (from {@linkcode PartFile.slots}).
   * @param buf Where to read to (as many bytes as it holds).
   * @param begin The offset in the piece to read from.
   * @returns The number of bytes read.
   * @throws {StorageError} When the part file cannot be opened.
   */
  async read(slot: number, buf: Uint8Array, begin: number): Promise<number> {
    const part = await this.#open();
    return await part.read(buf, slot * this.#pieceLength + begin);
  }

  /**
   * Writes a whole piece into its slot (a free one when it has none yet).
   *
   * @param index Piece index.
   * @param data The piece's bytes.
   * @throws {StorageError} When the part file cannot be opened.
   */
  async write(index: number, data: Uint8Array): Promise<void> {
    let slot = this.slots.get(index);
    let reserved = false;
    if (slot === undefined) {
      // pieces are written several at once: a slot is taken before the first await, so no two share it
      const used = new Set([...this.slots.values(), ...this.#slotsTaken]);
      slot = 0;
      while (used.has(slot)) slot++;
      this.#slotsTaken.add(slot);
      reserved = true;
    }
    try {
      const part = await this.#open();
      await part.write(data, slot * this.#pieceLength);
      this.slots.set(index, slot);
    } finally {
      if (reserved) this.#slotsTaken.delete(slot);
    }
    this.#dirty = true;
  }

  /**
   * Frees a piece's slot (its bytes were copied out to the files that now want them).
   *
   * @param index Piece index.
   */
  free(index: number): void {
    this.slots.delete(index);
    this.#dirty = true;
  }

  /** Flushes the part file to the device, when it was written or changed. */
  async sync(): Promise<void> {
    if (this.#file && this.#dirty) await (await this.#file).sync();
  }

  /** Closes the part file, if it was opened. */
  async close(): Promise<void> {
    if (this.#file) {
      try {
        await (await this.#file).close();
      } catch { /* never opened */ }
      this.#file = undefined;
    }
  }

  #open(): Promise<BackendFile> {
    this.#file ??= (async () => {
      if (!isInside(this.#dir, this.path) && !this.path) {
        throw new StorageError("bad part file path");
      }
      await this.#backend.mkdir(dirname(this.path));
      return await this.#backend.open(this.path, true);
    })();
    this.#file.catch(() => (this.#file = undefined));
    return this.#file;
  }
}
