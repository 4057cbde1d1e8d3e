/**
 * The file operations storage runs on: the {@linkcode FileBackend} interface (tests inject faults through it),
 * the default backend on `Deno.open` ({@linkcode denoBackend}), and {@linkcode StorageError}, the disk problem
 * storage reports.
 *
 * @module
 */

/** A disk problem: the file and the system's error code (ENOSPC, EACCES, EROFS, ...). */
export class StorageError extends Error {
  /** System error code, when known. */
  readonly code: string | undefined;
  /** The file involved, when known. */
  readonly path: string | undefined;
  /**
   * Creates a {@linkcode StorageError}.
   *
   * @param message What failed.
   * @param options The code, path and underlying error.
   */
  constructor(message: string, options: { code?: string; path?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "StorageError";
    this.code = options.code;
    this.path = options.path;
  }
}

/** The file operations storage needs; tests inject failures through it. */
export interface FileBackend {
  /** Opens a file; `write` creates it. */
  open(path: string, write: boolean): Promise<BackendFile>;
  /** Size and modification time, or undefined when the file does not exist. */
  stat(path: string): Promise<{ size: number; mtime: number } | undefined>;
  /** Creates a directory and its parents. */
  mkdir(path: string): Promise<void>;
  /** Writes a whole file atomically (temp file, sync, rename). */
  writeAtomic(path: string, data: Uint8Array): Promise<void>;
  /** Reads a whole file, or undefined when it does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** Appends to a file, creating it (resume data's journal; none is kept without it). */
  append?(path: string, data: Uint8Array): Promise<void>;
  /**
   * Opens a file for appending, creating it: resume data's journal keeps one open while the torrent writes
   * (without it, every append opens and closes the file through {@linkcode FileBackend.append}).
   */
  openAppend?(path: string): Promise<AppendFile>;
  /** Renames a file, replacing the target. */
  rename?(from: string, to: string): Promise<void>;
  /** Removes a file; nothing when it does not exist. */
  remove?(path: string): Promise<void>;
}

/** A file open for appending. */
export interface AppendFile {
  /** Appends all of `data`. */
  write(data: Uint8Array): Promise<void>;
  /** Closes the file. */
  close(): void;
}

/** An open file. */
export interface BackendFile {
  /** Reads up to `buffer.length` bytes at `position`; returns how many were read (0 at the end). */
  read(buffer: Uint8Array, position: number): Promise<number>;
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Sets the file's size. */
  truncate(size: number): Promise<void>;
  /** Flushes data to the device. */
  sync(): Promise<void>;
  /** Closes the file (after the operations already queued on it). */
  close(): void | Promise<void>;
}

/**
 * Most bytes per `write()` call on the event loop's side. The kernel sizes the page-cache folios it allocates
 * for a write by the write's length: one 1 MiB write asks for 1 MiB folios, which come from memory nothing has
 * touched lately and cost far more to fill (measured on this project's VMs: a 1 GiB download spent 3.5–4 s in
 * the kernel with whole-piece writes against 0.6–0.7 s with 256 KiB writes, right after another 1 GiB file was
 * written). Downloaded pieces normally go through the disk writer instead (16 KiB writes, see
 * `Storage.writePieceMoving`).
 */
const WRITE_CHUNK = 256 * 1024;

/**
 * Most bytes per synchronous `read()` on the event loop. A read from the page cache takes microseconds there,
 * where an async read (and its seek) is a round trip through Deno's blocking pool that the file's next read
 * waits for. Seeding one 1 GiB file that way, ~1,900 of a libtorrent leecher's 2,000 requests were waiting on
 * that chain at any time, and the socket sat idle half of the time.
 */
const READ_CHUNK = 256 * 1024;
/** A synchronous read that has held the event loop this long (ms) sends the rest to the blocking pool. */
const SLOW_READ_MS = 20;
/** After a slow read, the file's reads go to the blocking pool for this long (ms) before trying in place again. */
const SLOW_READ_PAUSE_MS = 5000;

/** The default backend, on `Deno.open` with one operation at a time per file (seek + read/write). */
export const denoBackend: FileBackend = {
  async open(path, write) {
    const options = write ? { read: true, write: true, create: true } : { read: true };
    // A handle evicted from storage's cache may still have operations queued, or be picked up again by an
    // operation that fetched it just before: closing only drops the descriptor, and an operation queued after the
    // close reopens the file for itself (see `closed` below).
    let file: Deno.FsFile | undefined = await Deno.open(path, options);
    const fd = async () => file ??= await Deno.open(path, options);
    let chain: Promise<unknown> = Promise.resolve();
    // the file offset after the last operation, when known: a read or write that continues there skips the seek
    let at = -1;
    // reads are done in place until one is slow, then in the blocking pool until this time (performance.now())
    let slowUntil = 0;
    // once closed, an operation that still comes (from a caller that held the handle) reopens the file, and the
    // descriptor is dropped again after it: nothing stays open behind a closed handle
    let closed = false;
    const release = () => {
      file?.close();
      file = undefined;
      at = -1;
    };
    const serial = <T>(op: () => Promise<T>): Promise<T> => {
      const run = async () => {
        try {
          return await op();
        } finally {
          if (closed) release();
        }
      };
      const p = chain.then(run, run);
      chain = p.catch(() => {});
      return p;
    };
    return {
      read: (buffer, position) =>
        serial(async () => {
          const f = await fd();
          let done = 0;
          if (performance.now() >= slowUntil) {
            // in place while the page cache answers, a chunk at a time: after a slow chunk the rest, and this
            // file's reads for a while, go to the blocking pool
            if (at !== position) f.seekSync(position, Deno.SeekMode.Start);
            at = -1;
            const start = performance.now();
            while (done < buffer.length) {
              const n = f.readSync(
                buffer.subarray(done, Math.min(done + READ_CHUNK, buffer.length)),
              );
              if (n === null) break;
              done += n;
              if (performance.now() - start >= SLOW_READ_MS) {
                slowUntil = performance.now() + SLOW_READ_PAUSE_MS;
                break;
              }
            }
            at = position + done;
            if (done === buffer.length || performance.now() >= slowUntil) return done; // whole, or at the end
          }
          if (at !== position + done) await f.seek(position + done, Deno.SeekMode.Start);
          at = -1;
          while (done < buffer.length) {
            const n = await f.read(buffer.subarray(done));
            if (n === null) break;
            done += n;
          }
          at = position + done;
          return done;
        }),
      write: (data, position) =>
        serial(async () => {
          const f = await fd();
          if (at !== position) await f.seek(position, Deno.SeekMode.Start);
          at = -1; // unknown until the write completes (it may fail half-way)
          let done = 0;
          while (done < data.length) {
            done += await f.write(data.subarray(done, Math.min(done + WRITE_CHUNK, data.length)));
          }
          at = position + done;
        }),
      truncate: (size) => serial(async () => await (await fd()).truncate(size)),
      sync: () => serial(async () => await (await fd()).syncData()),
      close: () => {
        closed = true;
        return serial(() => Promise.resolve());
      },
    };
  },
  async stat(path) {
    try {
      const st = await Deno.stat(path);
      return { size: st.size, mtime: st.mtime?.getTime() ?? 0 };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  },
  async mkdir(path) {
    await Deno.mkdir(path, { recursive: true });
  },
  async writeAtomic(path, data) {
    const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      let done = 0;
      while (done < data.length) done += await file.write(data.subarray(done));
      await file.syncData();
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw err;
    }
    await Deno.rename(tmp, path);
  },
  async append(path, data) {
    await Deno.writeFile(path, data, { append: true, create: true });
  },
  async openAppend(path) {
    const file = await Deno.open(path, { append: true, create: true });
    return {
      // a journal append is a few bytes into the page cache: written in place, it costs microseconds, where an
      // async write hands the descriptor to a blocking thread and back (measured: 6 % of the event loop's time
      // in a 1 GiB download, one append per piece)
      write(data) {
        let done = 0;
        while (done < data.length) done += file.writeSync(data.subarray(done));
        return Promise.resolve();
      },
      close: () => file.close(),
    };
  },
  async rename(from, to) {
    await Deno.rename(from, to);
  },
  async remove(path) {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  },
  async readFile(path) {
    try {
      return await Deno.readFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  },
};
