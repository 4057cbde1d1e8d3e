/**
 * Where pieces live: files under the download directory (written by `_disk_writer.ts`: on the event loop's
 * thread while writes are quick, then on a writer thread), BEP 47 file attributes, and crash-safe resume data.
 * Pieces that overlap files not being downloaded (priority 0) go to the part file (`part_file.ts`); hashes are
 * checked by `hash_check.ts`.
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";
import type { Bitfield } from "../bitfield.ts";
import { isInside } from "../_paths.ts";
import { type FileSpan, Layout, type LayoutInput } from "./layout.ts";
import { type BackendFile, denoBackend, type FileBackend, StorageError } from "./backend.ts";
import { DiskWriter } from "./_disk_writer.ts";
import { type HashcheckOptions, PieceHashCheck } from "./hash_check.ts";
import { PartFile } from "./part_file.ts";
import { type PieceCacheIndex, ResumeData, type ResumeState } from "./resume.ts";
import type { PieceCheck } from "./verify.ts";

export type { HashcheckOptions, PieceCacheIndex, ResumeState };
export { denoBackend, StorageError };
export type { BackendFile, FileBackend };

/** Options for {@linkcode Storage}. */
export interface StorageOptions {
  /** Download directory; files live at `join(dir, ...file.path)`. */
  dir: string;
  /** Files, piece length and hashes (a parsed torrent will do). */
  layout: LayoutInput;
  /** Priority of each file (default 1; 0 = never created, boundary pieces go to the part file). */
  priorities?: readonly number[];
  /** The index from a previous {@linkcode Storage.pieceCache}, restoring the part file. */
  pieceCache?: PieceCacheIndex;
  /** Where the part file is. @default {"<dir>/.<name>.parts"} */
  partPath?: string;
  /** Where resume data is written; none when omitted. */
  resumePath?: string;
  /** The torrent's id (hex info hash), recorded in resume data and checked when it is read. */
  resumeId?: string;
  /** Resume data of an older version, read once when `resumePath` has none (then replaced). */
  legacyResumePath?: string;
  /** Set each file to its full size when first written. @default {false} */
  preallocate?: boolean;
  /** Most files open at once. @default {64} */
  maxOpenFiles?: number;
  /** File operations (tests inject faults). @default {denoBackend} */
  backend?: FileBackend;
  /**
   * Write downloaded pieces ({@linkcode Storage.writePieceMoving}) in 16 KiB synchronous writes: on the event
   * loop's thread while they are quick, on a worker thread once one has made the event loop wait (the disk is
   * behind). Only with the default backend; off, pieces are written with async writes of 256 KiB.
   * @default {true}
   */
  writerThread?: boolean;
  /**
   * Hybrid torrents: check a piece's v2 (merkle) hash as well as its SHA-1 when the file's piece layer is known;
   * a disagreement fails the piece. Off, SHA-1 alone decides (as libtorrent does).
   * @default {true}
   */
  hybridVerifyBoth?: boolean;
  /**
   * Threads for a hash check of a v1 torrent ({@linkcode Storage.hashcheck}) on the default backend: with 2, a
   * worker thread reads and hashes pieces alongside the event loop's thread. One thread hashes about 1 GB/s; two
   * come close to twice that on two cores. When not given: 2 on a machine with two cores or more, for checks of
   * at least 64 MiB (a smaller one is over before the worker has started).
   */
  checkThreads?: 1 | 2;
}

interface OpenFile {
  handle: BackendFile;
  writable: boolean;
}

/** The data of one torrent on disk. */
export class Storage implements AsyncDisposable {
  /** The torrent's geometry. */
  readonly layout: Layout;
  readonly #dir: string;
  readonly #priorities: number[];
  readonly #backend: FileBackend;
  readonly #maxOpen: number;
  readonly #preallocate: boolean;
  readonly #resume: ResumeData | undefined;
  #resumeBegun = false;
  /** Pieces kept whole in the part file. */
  readonly #parts: PartFile;
  readonly #open = new Map<number, Promise<OpenFile>>();
  readonly #dirty = new Set<number>();
  #error: StorageError | undefined;
  #emptyFilesMade = false;
  #realDir: string | undefined;
  #closed = false;
  #useWriter: boolean;
  #writer: DiskWriter | undefined;
  readonly #hashes: PieceHashCheck;

  /**
   * Creates a {@linkcode Storage}.
   *
   * @param options Where the data lives and how the files are split.
   */
  constructor(options: StorageOptions) {
    this.layout = new Layout(options.layout);
    this.#dir = resolve(options.dir);
    this.#priorities = this.layout.files.map((_, i) => options.priorities?.[i] ?? 1);
    this.#backend = options.backend ?? denoBackend;
    this.#maxOpen = options.maxOpenFiles ?? 64;
    this.#preallocate = options.preallocate ?? false;
    const top = this.layout.files[0]?.path[0] ?? "torrent";
    this.#parts = new PartFile({
      path: options.partPath ?? join(this.#dir, `.${top}.parts`),
      dir: this.#dir,
      pieceLength: this.layout.pieceLength,
      pieceCount: this.layout.pieceCount,
      backend: this.#backend,
      ...(options.pieceCache ? { index: options.pieceCache } : {}),
    });
    this.#resume = options.resumePath
      ? new ResumeData({
        path: options.resumePath,
        ...(options.resumeId ? { id: options.resumeId } : {}),
        ...(options.legacyResumePath ? { legacyPath: options.legacyResumePath } : {}),
        backend: this.#backend,
        layout: this.layout,
        filePath: (i) => this.path(i),
        priority: (i) => this.#priorities[i],
        partPath: this.#parts.path,
        parts: this.#parts.slots,
      })
      : undefined;
    this.#useWriter = (options.writerThread ?? true) && this.#backend === denoBackend;
    this.#hashes = new PieceHashCheck(this.layout, {
      dir: this.#dir,
      backend: this.#backend,
      ...(options.checkThreads !== undefined ? { checkThreads: options.checkThreads } : {}),
      hybridBoth: options.hybridVerifyBoth ?? true,
      path: (file) => this.path(file),
      readPiece: (index, into) => this.readPiece(index, into),
      inPartFile: (index) => this.#parts.slots.has(index),
    });
  }

  /** The last disk error; cleared by the next successful write. */
  get error(): StorageError | undefined {
    return this.#error;
  }

  /** Priority of a file. */
  priority(file: number): number {
    return this.#priorities[file];
  }

  /** Absolute path of file `file`. */
  path(file: number): string {
    return join(this.#dir, ...this.layout.files[file].path);
  }

  /** The seed's `piece_cache()`: what the part file holds. */
  pieceCache(): PieceCacheIndex {
    return this.#parts.index();
  }

  /**
   * Writes a whole, verified piece: one write per file span; spans of priority-0 files are not created, the
   * piece is kept whole in the part file instead.
   *
   * @throws {StorageError} When the disk refuses (the piece must then not be counted as had).
   */
  async writePiece(index: number, data: Uint8Array): Promise<void> {
    const size = this.layout.pieceSize(index);
    if (data.length < size) {
      throw new RangeError(`Piece ${index} needs ${size} bytes, got ${data.length}`);
    }
    const spans = this.layout.spans(index, 0, size);
    try {
      if (!this.#emptyFilesMade) await this.#makeEmptyFiles();
      if (!this.#resumeBegun) {
        this.#resumeBegun = true;
        await this.#resume?.begin();
      }
      let toPart = false;
      for (const s of spans) {
        const f = this.layout.files[s.file];
        if (f.padding) continue;
        if (this.#priorities[s.file] === 0) {
          toPart = true;
          continue;
        }
        const file = await this.#file(s.file, true);
        await file.handle.write(
          data.subarray(s.bufferOffset, s.bufferOffset + s.length),
          s.fileOffset,
        );
        this.#dirty.add(s.file);
      }
      if (toPart) await this.#parts.write(index, data.subarray(0, size));
      this.#error = undefined;
    } catch (err) {
      throw this.#fail(err, `Cannot write piece ${index}`);
    }
  }

  /**
   * Writes a whole, verified piece like {@linkcode Storage.writePiece} in 16 KiB synchronous writes, on the event
   * loop's thread while they are quick; once one was slow, the piece's memory moves to a writer thread and back
   * (no copy): `holder.buffer` must span its whole ArrayBuffer, must not be touched until
   * the promise settles, and is then replaced by an array over the same bytes (also when the write fails; if the
   * writer thread itself died, it is left empty and the piece must be downloaded again).
   *
   * @throws {StorageError} When the disk refuses (the piece must then not be counted as had).
   */
  async writePieceMoving(
    index: number,
    holder: { buffer: Uint8Array<ArrayBuffer> },
  ): Promise<void> {
    const data = holder.buffer;
    if (
      !this.#useWriter || this.#closed || data.byteOffset !== 0 ||
      data.byteLength !== data.buffer.byteLength
    ) {
      return await this.writePiece(index, data);
    }
    const writer = this.#writer ??= DiskWriter.open();
    const size = this.layout.pieceSize(index);
    if (data.length < size) {
      throw new RangeError(`Piece ${index} needs ${size} bytes, got ${data.length}`);
    }
    try {
      if (!this.#emptyFilesMade) await this.#makeEmptyFiles();
      if (!this.#resumeBegun) {
        this.#resumeBegun = true;
        await this.#resume?.begin();
      }
      let toPart = false;
      for (const s of this.layout.spans(index, 0, size)) {
        const f = this.layout.files[s.file];
        if (f.padding) continue;
        if (this.#priorities[s.file] === 0) {
          toPart = true;
          continue;
        }
        await this.#file(s.file, true); // path checks, preallocation; reads and syncs use this handle
        this.#dirty.add(s.file);
        try {
          const back = await writer.write(
            this.path(s.file),
            holder.buffer.buffer,
            s.bufferOffset,
            s.length,
            s.fileOffset,
          );
          holder.buffer = new Uint8Array(back);
        } catch (err) {
          const back = (err as { buffer?: ArrayBuffer }).buffer;
          holder.buffer = back ? new Uint8Array(back) : new Uint8Array(0);
          throw err;
        }
      }
      if (toPart) await this.#parts.write(index, holder.buffer.subarray(0, size));
      this.#error = undefined;
    } catch (err) {
      throw this.#fail(err, `Cannot write piece ${index}`);
    }
  }

  /**
   * Reads a block for upload.
   *
   * @throws {StorageError} When the data is missing or cannot be read.
   */
  async readBlock(index: number, begin: number, length: number): Promise<Uint8Array> {
    const piece = await this.readPiece(index);
    if (!piece) throw new StorageError(`Piece ${index} is not on disk`);
    return piece.subarray(begin, begin + length);
  }

  /**
   * Reads a whole piece from the files (or the part file), or with `begin` the part of it from there on (as much
   * as `into` holds).
   *
   * @param index Piece index.
   * @param into A buffer to read into (at least the piece's size); a new one otherwise. With `begin`, as many
   *   bytes as it holds (up to the end of the piece) are read.
   * @param options `begin`: the offset in the piece to read from (default 0).
   * @returns The bytes, or undefined when a file is missing or too short.
   * @throws {RangeError} When `begin` is outside the piece.
   */
  async readPiece(
    index: number,
    into?: Uint8Array,
    options: { begin?: number } = {},
  ): Promise<Uint8Array | undefined> {
    const size = this.layout.pieceSize(index);
    const begin = options.begin ?? 0;
    if (!(begin >= 0 && begin <= size)) {
      throw new RangeError(`Offset ${begin} is outside piece ${index}`);
    }
    const length = into ? Math.min(into.length, size - begin) : size - begin;
    const buf = into ? into.subarray(0, length) : new Uint8Array(length);
    const slot = this.#parts.slots.get(index);
    if (slot !== undefined) {
      const n = await this.#parts.read(slot, buf, begin);
      return n === length ? buf : undefined;
    }
    for (const s of this.layout.spans(index, begin, length)) {
      const f = this.layout.files[s.file];
      const target = buf.subarray(s.bufferOffset, s.bufferOffset + s.length);
      if (f.padding) {
        target.fill(0);
        continue;
      }
      let file: OpenFile;
      try {
        file = await this.#file(s.file, false);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound || (err as StorageError).code === "ENOENT") {
          return undefined;
        }
        throw this.#fail(err, `Cannot read piece ${index}`);
      }
      const n = await file.handle.read(target, s.fileOffset);
      if (n !== s.length) return undefined;
    }
    return buf;
  }

  /**
   * True when `data` matches piece `index`'s hashes: its SHA-1 (v1), its merkle hash (v2: false while the file's
   * piece layer is unknown), both for hybrids (the merkle hash only once known; see `hybridVerifyBoth`).
   */
  verifyPiece(index: number, data: Uint8Array): Promise<boolean> {
    return this.#hashes.verify(index, data);
  }

  /**
   * Checks each kind of hash that applies to piece `index` and is known (a hybrid torrent's SHA-1 and merkle hash
   * separately, so that a disagreement between them can be reported).
   */
  checkPiece(index: number, data: Uint8Array): Promise<PieceCheck> {
    return this.#hashes.check(index, data);
  }

  /**
   * Verifies pieces against their hashes: all of them, a list, or one. Reading piece i+1 overlaps hashing piece
   * i; with `checkThreads: 2` (the default on two cores or more), a v1 torrent's pieces are shared with a worker
   * thread that reads and hashes them too. Callbacks come in the list's order. Missing or short files fail their
   * pieces instead of throwing.
   *
   * @returns The pieces that passed.
   */
  async hashcheck(
    pieces?: number | Iterable<number>,
    options: HashcheckOptions = {},
  ): Promise<Bitfield> {
    const list = pieces === undefined
      ? Array.from({ length: this.layout.pieceCount }, (_, i) => i)
      : typeof pieces === "number"
      ? [pieces]
      : [...pieces];
    for (const i of list) {
      if (!Number.isInteger(i) || i < 0 || i >= this.layout.pieceCount) {
        throw new RangeError(`No piece ${i}: the torrent has ${this.layout.pieceCount}`);
      }
    }
    return await this.#hashes.run(list, options);
  }

  /**
   * Changes a file's priority. Raising it from 0 copies the file's bytes out of the part file into the real file.
   */
  async setPriority(file: number, priority: number): Promise<void> {
    const old = this.#priorities[file];
    this.#priorities[file] = priority;
    if (old !== 0 || priority === 0) return;
    const range = this.layout.pieceRangeOfFile(file);
    if (!range) return;
    try {
      for (let i = range[0]; i <= range[1]; i++) {
        if (!this.#parts.slots.has(i)) continue;
        const data = await this.readPiece(i);
        if (!data) continue;
        for (const s of this.layout.spans(i, 0, data.length)) {
          if (s.file !== file) continue;
          const f = await this.#file(file, true);
          await f.handle.write(
            data.subarray(s.bufferOffset, s.bufferOffset + s.length),
            s.fileOffset,
          );
          this.#dirty.add(file);
        }
        // the slot stays while another priority-0 file still needs it
        if (!this.layout.filesOfPiece(i).some((fi) => this.#priorities[fi] === 0)) {
          this.#parts.free(i);
        }
      }
    } catch (err) {
      throw this.#fail(err, `Cannot move data of file ${file} out of the part file`);
    }
  }

  /** Flushes written files to the device. */
  async flush(): Promise<void> {
    const files = [...this.#dirty];
    this.#dirty.clear();
    for (const i of files) {
      const f = this.#open.get(i);
      if (f) await (await f).handle.sync();
    }
    await this.#parts.sync();
  }

  /**
   * Writes resume data atomically: the verified pieces, each file's size and modification time, and the part
   * file's index; the journal starts again. Call it only after the writes it vouches for have completed.
   *
   * @param have The verified pieces.
   * @param options `clean: false` for a save while the torrent keeps writing (periodic); a clean save (the
   *   default) is judged strictly on the next start.
   */
  async saveResume(have: Bitfield, options: { clean?: boolean } = {}): Promise<void> {
    await this.#resume?.save(have, { clean: options.clean ?? true });
  }

  /** Records in resume data's journal that a piece is on disk (its write completed); resolves once recorded. */
  journalPiece(index: number): Promise<void> {
    return this.#resume?.journal(index) ?? Promise.resolve();
  }

  /**
   * Reads resume data (see `resume.ts`: a snapshot plus the journal; after a clean stop a piece is trusted
   * only when its files have the recorded size and time, after a crash when they grew under our own writes).
   *
   * @returns The state, or undefined when there is no usable resume data.
   */
  async loadResume(): Promise<ResumeState | undefined> {
    return await this.#resume?.load();
  }

  /**
   * Applies BEP 47 attributes once the torrent is complete (call it then, and after a start that finds it
   * complete): files marked "x" get execute permission wherever they have read permission (regular files inside
   * the download directory only, never through a link); files marked "l" become symbolic links to their target
   * when the target resolves inside the torrent's folder and nothing else is at the link's path (an empty file
   * is replaced). Files of priority 0 are left alone.
   *
   * @returns One line for each attribute that was not applied, and why.
   */
  async applyAttributes(): Promise<string[]> {
    const warnings: string[] = [];
    for (let i = 0; i < this.layout.files.length; i++) {
      const f = this.layout.files[i];
      if (f.padding || this.#priorities[i] === 0) continue;
      try {
        if (f.symlink) {
          const why = await this.#makeLink(i);
          if (why) warnings.push(`${f.path.join("/")}: symbolic link not made: ${why}`);
        } else if (f.executable && Deno.build.os !== "windows") {
          await this.#makeExecutable(i);
        }
      } catch (err) {
        warnings.push(`${f.path.join("/")}: ${(err as Error).message}`);
      }
    }
    return warnings;
  }

  async #makeExecutable(file: number): Promise<void> {
    const path = this.path(file);
    if (!isInside(this.#dir, path)) throw new StorageError(`Refusing ${path}`, { path });
    const st = await Deno.lstat(path).catch(() => undefined);
    if (!st?.isFile || st.mode === null) return; // missing, a link, or no modes: nothing safe to do
    this.#realDir ??= await Deno.realPath(this.#dir).catch(() => this.#dir);
    if (!isInside(this.#realDir, await Deno.realPath(dirname(path)))) return;
    const mode = st.mode & 0o7777;
    const wanted = mode | ((mode & 0o444) >> 2);
    if (wanted !== mode) await Deno.chmod(path, wanted);
  }

  /** Makes file `file` a symbolic link to its target; returns why not when it cannot. */
  async #makeLink(file: number): Promise<string | undefined> {
    const f = this.layout.files[file];
    const path = this.path(file);
    const target = join(this.#dir, ...f.symlink!);
    const folder = join(this.#dir, f.symlink![0]);
    if (!isInside(folder, target) || !isInside(folder, path)) {
      return "its target is outside the torrent";
    }
    await this.#safePath(file); // the link's directory exists and stays inside the download directory
    const wanted = relative(dirname(path), target) || ".";
    const st = await Deno.lstat(path).catch(() => undefined);
    if (st?.isSymlink) {
      if ((await Deno.readLink(path)) === wanted) return undefined;
      return "another symbolic link is in its place";
    }
    if (st) {
      if (!st.isFile || st.size !== 0) return "a file with data is in its place";
      await Deno.remove(path);
    }
    await Deno.symlink(wanted, path);
    return undefined;
  }

  /** Closes every open file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#resume?.flush();
    await this.#writer?.close();
    this.#writer = undefined;
    for (const f of this.#open.values()) {
      try {
        await (await f).handle.close();
      } catch { /* never opened */ }
    }
    this.#open.clear();
    await this.#parts.close();
  }

  /** Same as {@linkcode Storage.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------- internals

  async #makeEmptyFiles(): Promise<void> {
    this.#emptyFilesMade = true;
    for (let i = 0; i < this.layout.files.length; i++) {
      const f = this.layout.files[i];
      if (f.length !== 0 || f.padding || this.#priorities[i] === 0) continue;
      // a link that cannot be made is an ordinary empty file (applyAttributes() reports why)
      if (f.symlink && (await this.#makeLink(i).catch((e: Error) => e.message)) === undefined) {
        continue;
      }
      const path = await this.#safePath(i);
      if (!(await this.#backend.stat(path))) {
        const h = await this.#backend.open(path, true);
        h.close();
      }
    }
  }

  async #safePath(file: number): Promise<string> {
    const path = this.path(file);
    if (!isInside(this.#dir, path)) {
      throw new StorageError(`Refusing ${path}: outside the download directory ${this.#dir}`, {
        path,
      });
    }
    const parent = dirname(path);
    await this.#backend.mkdir(parent);
    // a symlinked directory inside the download directory must not lead outside it
    this.#realDir ??= await Deno.realPath(this.#dir).catch(() => this.#dir);
    const realParent = await Deno.realPath(parent).catch(() => parent);
    if (!isInside(this.#realDir, realParent)) {
      throw new StorageError(`Refusing ${path}: its directory leads outside ${this.#dir}`, {
        path,
      });
    }
    return path;
  }

  #file(index: number, write: boolean): Promise<OpenFile> {
    const cached = this.#open.get(index);
    if (cached) {
      // most recently used goes last
      this.#open.delete(index);
      this.#open.set(index, cached);
      return cached.then(async (f) => {
        if (!write || f.writable) return f;
        // reopen for writing
        if (this.#open.get(index) === cached) this.#open.delete(index);
        f.handle.close();
        return await this.#file(index, true);
      });
    }
    const opening = (async (): Promise<OpenFile> => {
      const path = write ? await this.#safePath(index) : this.path(index);
      if (!write && !isInside(this.#dir, path)) {
        throw new StorageError(`Refusing ${path}`, { path });
      }
      const handle = await this.#backend.open(path, write);
      if (write && this.#preallocate) {
        const st = await this.#backend.stat(path);
        if (st && st.size < this.layout.files[index].length) {
          await handle.truncate(this.layout.files[index].length);
        }
      }
      return { handle, writable: write };
    })();
    this.#open.set(index, opening);
    opening.catch(() => {
      if (this.#open.get(index) === opening) this.#open.delete(index);
    });
    while (this.#open.size > this.#maxOpen) {
      const [oldest, p] = this.#open.entries().next().value as [number, Promise<OpenFile>];
      this.#open.delete(oldest);
      const dirty = this.#dirty.delete(oldest);
      p.then(async (f) => {
        if (dirty) await f.handle.sync().catch(() => {});
        f.handle.close();
      }, () => {});
    }
    return opening;
  }

  #fail(err: unknown, what: string): StorageError {
    if (err instanceof StorageError) {
      this.#error = err;
      return err;
    }
    const code = errorCode(err);
    const e = new StorageError(`${what}: ${(err as Error)?.message ?? String(err)}`, {
      ...(code ? { code } : {}),
      cause: err,
    });
    this.#error = e;
    return e;
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  const m = /\b(E[A-Z]{3,})\b/.exec((err as Error)?.message ?? "");
  if (m) return m[1];
  if (err instanceof Deno.errors.PermissionDenied) return "EACCES";
  if (err instanceof Deno.errors.NotFound) return "ENOENT";
  return undefined;
}

export type { FileSpan };
