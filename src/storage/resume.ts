/**
 * Resume data: what is verified on disk, so a restart neither checks nor downloads it again.
 *
 * Two parts. A **snapshot** (JSON, written atomically): the verified pieces, each file's size and modification
 * time, the part file's index, the torrent's id (its info hash, so two torrents never read each other's data),
 * and whether it was written by a clean stop. A **journal** beside it: 8 bytes appended for every piece written
 * since the last snapshot (its index and its slot in the part file, if any), so a process killed at any moment
 * loses only the pieces that were in flight. Each snapshot starts a new journal; the old one is removed once the
 * snapshot is safely written, and a restart reads the snapshot plus whatever journals are left.
 *
 * Trust: after a clean stop, a piece is trusted only when every file it touches has exactly the recorded size and
 * modification time (anything else was changed by someone else). After a crash — a journal is present — the files
 * have changed under our own writes since the snapshot, so a piece is trusted when its files are at least as large
 * as they were and not older, and the piece lies within them; the rest is checked again.
 *
 * Page-cache data survives the process being killed: the guarantee is against kill -9 and crashes, not power loss.
 *
 * @module
 */

import { dirname } from "node:path";
import { Bitfield } from "../bitfield.ts";
import type { Layout } from "./layout.ts";
import type { AppendFile } from "./backend.ts";

/** The part file's index: which pieces it holds, in which slot. */
export interface PieceCacheIndex {
  /** `[piece, slot]` pairs. */
  pieces: [number, number][];
}

/** What resume data vouches for. */
export interface ResumeState {
  /** Pieces that resume data vouches for and whose files did not change since. */
  have: Bitfield;
  /** Pieces claimed by resume data whose files changed size or time since: verify these again. */
  recheck: number[];
}

/** The file operations resume data needs (a subset of storage's backend). */
export interface ResumeBackend {
  /** Size and modification time, or undefined when the file does not exist. */
  stat(path: string): Promise<{ size: number; mtime: number } | undefined>;
  /** Creates a directory and its parents. */
  mkdir(path: string): Promise<void>;
  /** Writes a whole file atomically. */
  writeAtomic(path: string, data: Uint8Array): Promise<void>;
  /** Reads a whole file, or undefined when it does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** Appends to a file (created if missing); the journal is not kept when absent. */
  append?(path: string, data: Uint8Array): Promise<void>;
  /** Opens a file for appending (created if missing): the journal is kept open while pieces are written. */
  openAppend?(path: string): Promise<AppendFile>;
  /** Renames a file (replacing the target). */
  rename?(from: string, to: string): Promise<void>;
  /** Removes a file; nothing when it does not exist. */
  remove?(path: string): Promise<void>;
}

/** What resume data needs to know of the torrent's storage. */
export interface ResumeOptions {
  /** Where the snapshot is written; the journal is `<path>.journal`. */
  path: string;
  /** The torrent's id (hex info hash): resume data of another torrent is never used. */
  id?: string;
  /** Resume data written by an older version (no id, no journal): read when `path` has none. */
  legacyPath?: string;
  /** File operations. */
  backend: ResumeBackend;
  /** The torrent's geometry. */
  layout: Layout;
  /** Absolute path of each file. */
  filePath: (file: number) => string;
  /** Priority of each file (0 = its data lives in the part file). */
  priority: (file: number) => number;
  /** The part file's path. */
  partPath: string;
  /** The part file's slots (piece → slot), shared with storage: resume data fills it in. */
  parts: Map<number, number>;
}

interface Snapshot {
  version: 1 | 2;
  id?: string;
  pieces: string;
  files: [number, number][];
  pieceCache?: PieceCacheIndex;
  clean?: boolean;
}

const NO_SLOT = 0xffffffff;
const RECORD = 8;

/** A torrent's resume snapshot and journal. */
export class ResumeData {
  readonly #o: ResumeOptions;
  readonly #journal: string;
  #chain: Promise<void> = Promise.resolve();
  /** Journal records (index, part-file slot) waiting for the append after the one in flight. */
  #batch: { records: number[]; done: Promise<void> } | undefined;
  #journalStarted = false;
  /** The journal, open for appending while pieces are written (closed before a snapshot rotates it). */
  #journalFile: Promise<AppendFile> | undefined;

  /**
   * Creates a {@linkcode ResumeData}.
   *
   * @param options Where it lives and what the torrent looks like.
   */
  constructor(options: ResumeOptions) {
    this.#o = options;
    this.#journal = `${options.path}.journal`;
  }

  /**
   * Marks the data as changing (call it before the first write of a run): from here on, a restart that finds
   * no clean snapshot after this judges the files as after a crash.
   */
  begin(): Promise<void> {
    const append = this.#o.backend.append;
    if (!append || this.#journalStarted) return Promise.resolve();
    this.#journalStarted = true;
    const step = this.#chain.then(async () => {
      await this.#o.backend.mkdir(dirname(this.#journal));
      await this.#append(new Uint8Array(0));
    });
    this.#chain = step.catch(() => {});
    return this.#chain;
  }

  /**
   * Records that a piece is on disk (call it once its write completed). Appends run one after another;
   * {@linkcode ResumeData.save} waits for them.
   *
   * @returns Resolves once the record is written (never rejects: a journal that cannot be written only means
   *   more to check after a crash).
   */
  journal(index: number): Promise<void> {
    const append = this.#o.backend.append;
    if (!append) return Promise.resolve();
    // records that arrive while an append is in flight go out together in the next one: one append per batch,
    // not per piece (an append opens, writes and closes the file; one after another they paced the download)
    let batch = this.#batch;
    if (!batch) {
      const b = batch = this.#batch = { records: [] as number[], done: Promise.resolve() };
      b.done = this.#chain = this.#chain.then(async () => {
        this.#batch = undefined; // later records start the next batch
        const bytes = new Uint8Array(b.records.length * 4);
        const view = new DataView(bytes.buffer);
        for (let i = 0; i < b.records.length; i++) view.setUint32(i * 4, b.records[i]);
        if (!this.#journalStarted) {
          this.#journalStarted = true;
          await this.#o.backend.mkdir(dirname(this.#journal));
        }
        await this.#append(bytes);
      }).catch(() => {});
    }
    batch.records.push(index, this.#o.parts.get(index) ?? NO_SLOT);
    return batch.done;
  }

  /**
   * Writes a snapshot atomically and starts a new journal.
   *
   * @param have The verified pieces (every write it vouches for has completed).
   * @param options `clean` when the torrent is stopping: nothing is written after it.
   */
  async save(have: Bitfield, options: { clean?: boolean } = {}): Promise<void> {
    const b = this.#o.backend;
    // pieces being journalled are marked had once recorded: let that happen first
    await this.#chain;
    const pieces = have.bytes.toBase64(); // captured now: pieces journalled from here on are in the new journal
    const rotated = `${this.#journal}.prev`;
    const rotate = this.#chain.then(async () => {
      await this.#closeJournal();
      if (b.rename && (await b.stat(this.#journal))) await b.rename(this.#journal, rotated);
    });
    this.#chain = rotate.catch(() => {});
    const files: [number, number][] = [];
    for (let i = 0; i < this.#o.layout.files.length; i++) {
      const st = await b.stat(this.#o.filePath(i));
      files.push(st ? [st.size, st.mtime] : [-1, 0]);
    }
    const record: Snapshot = {
      version: 2,
      ...(this.#o.id ? { id: this.#o.id } : {}),
      pieces,
      files,
      pieceCache: { pieces: [...this.#o.parts.entries()].sort((x, y) => x[0] - y[0]) },
      clean: options.clean ?? false,
    };
    await rotate;
    await b.mkdir(dirname(this.#o.path));
    await b.writeAtomic(this.#o.path, new TextEncoder().encode(JSON.stringify(record)));
    await b.remove?.(rotated);
    if (options.clean) {
      await this.#chain;
      await b.remove?.(this.#journal);
      this.#journalStarted = false;
    } else if (this.#journalStarted) {
      this.#journalStarted = false;
      await this.begin(); // the new journal exists from now on: the files keep changing
    }
    if (this.#o.legacyPath) await b.remove?.(this.#o.legacyPath);
  }

  /**
   * Reads the snapshot and journals and decides what to trust (see the module's description).
   *
   * @returns The state, or undefined when there is no usable resume data.
   */
  async load(): Promise<ResumeState | undefined> {
    const b = this.#o.backend;
    const layout = this.#o.layout;
    const snap = await this.#readSnapshot(this.#o.path) ??
      (this.#o.legacyPath ? await this.#readSnapshot(this.#o.legacyPath, 1) : undefined);
    const journalled: [number, number][] = [];
    let journalFound = false;
    for (const path of [`${this.#journal}.prev`, this.#journal]) {
      const bytes = await b.readFile(path).catch(() => undefined);
      if (!bytes) continue;
      journalFound = true;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let at = 0; at + RECORD <= bytes.length; at += RECORD) { // a torn last record is ignored
        journalled.push([view.getUint32(at), view.getUint32(at + 4)]);
      }
    }
    if (!snap && journalled.length === 0) return undefined;
    const claimed = new Bitfield(layout.pieceCount);
    if (snap) {
      const bits = Uint8Array.fromBase64(snap.pieces);
      if (Bitfield.isValid(layout.pieceCount, bits)) {
        for (const i of new Bitfield(layout.pieceCount, bits)) claimed.set(i);
      }
      for (const [piece, slot] of snap.pieceCache?.pieces ?? []) this.#slot(piece, slot);
    }
    for (const [piece, slot] of journalled) {
      if (piece >= layout.pieceCount) continue;
      claimed.set(piece);
      if (slot !== NO_SLOT) this.#slot(piece, slot);
    }
    const crashed = journalFound || !snap?.clean;
    const now: ({ size: number; mtime: number } | undefined)[] = [];
    const trusted: boolean[] = [];
    for (let i = 0; i < layout.files.length; i++) {
      const st = await b.stat(this.#o.filePath(i));
      now.push(st);
      const [size, mtime] = snap?.files[i] ?? [-1, 0];
      trusted.push(
        snap !== undefined &&
          (crashed
            ? size < 0 || (st !== undefined && st.size >= size && st.mtime >= mtime)
            : (st ? st.size === size && st.mtime === mtime : size === -1)),
      );
    }
    const partExists = (await b.stat(this.#o.partPath)) !== undefined;
    const have = new Bitfield(layout.pieceCount);
    const recheck: number[] = [];
    for (const i of claimed) {
      let ok: boolean;
      if (this.#o.parts.has(i)) ok = partExists;
      else {
        ok = true;
        for (const s of layout.spans(i, 0, layout.pieceSize(i))) {
          const f = layout.files[s.file];
          if (f.padding || this.#o.priority(s.file) === 0) continue;
          const st = now[s.file];
          const inside = st !== undefined && st.size >= s.fileOffset + s.length;
          // a file without a snapshot entry (journal only, after a crash) is judged by its contents' extent
          if (!inside || (!trusted[s.file] && !(crashed && !snap))) ok = false;
        }
      }
      if (ok) have.set(i);
      else recheck.push(i);
    }
    return { have, recheck };
  }

  /** Waits for journal appends in flight and closes the journal (a later record opens it again). */
  async flush(): Promise<void> {
    await this.#chain;
    await this.#closeJournal();
  }

  /** Appends to the journal through the open handle when the backend keeps one, else one append per call. */
  async #append(bytes: Uint8Array): Promise<void> {
    const b = this.#o.backend;
    if (!b.openAppend) return await b.append!(this.#journal, bytes);
    const opening = this.#journalFile ??= b.openAppend(this.#journal);
    opening.catch(() => this.#journalFile === opening && (this.#journalFile = undefined));
    await (await opening).write(bytes);
  }

  async #closeJournal(): Promise<void> {
    const file = this.#journalFile;
    this.#journalFile = undefined;
    try {
      (await file)?.close();
    } catch { /* it never opened: nothing to close */ }
  }

  #slot(piece: number, slot: number): void {
    if (
      Number.isInteger(piece) && Number.isInteger(slot) && piece >= 0 &&
      piece < this.#o.layout.pieceCount && slot >= 0 && !this.#o.parts.has(piece)
    ) this.#o.parts.set(piece, slot);
  }

  async #readSnapshot(path: string, version?: 1): Promise<Snapshot | undefined> {
    const bytes = await this.#o.backend.readFile(path).catch(() => undefined);
    if (!bytes) return undefined;
    try {
      const r = JSON.parse(new TextDecoder().decode(bytes)) as Snapshot;
      if (r.version !== 1 && r.version !== 2) return undefined;
      if (version && r.version !== version) return undefined;
      if (!Array.isArray(r.files) || r.files.length !== this.#o.layout.files.length) {
        return undefined;
      }
      if (typeof r.pieces !== "string") return undefined;
      if (r.version === 2 && this.#o.id && r.id !== this.#o.id) return undefined;
      if (r.version === 1) r.clean = true; // written on every save by older versions: judged strictly
      return r;
    } catch {
      return undefined;
    }
  }
}
