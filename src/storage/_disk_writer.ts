/**
 * The writer of downloaded pieces: synchronous `write()` calls of 16 KiB, on the event loop's thread while they
 * are quick, on a worker thread (buffers transferred there and back) once one of them has made the event loop
 * wait.
 *
 * Why 16 KiB: the kernel sizes the page-cache folios it allocates by the length of each `write()`. Big writes get
 * big folios, split from memory nothing has touched lately, and on VMs that hand free memory back to the host
 * that costs several times the copy itself. Measured on this project's 2-core VM, 1 GiB downloads right after
 * another client's: 1.6–1.8 s of system time with 64 KiB writes (3.5–4 s with whole 1 MiB pieces) against
 * 0.5–0.6 s with 16 KiB writes. As async file operations, small writes cost a thread hop each (1 GiB in
 * 16 KiB async writes: 6.3–7.4 s against 2.6–2.9 s).
 *
 * Why synchronous on the event loop's thread first: while the page cache takes the bytes, a 1 MiB piece is
 * written in well under a millisecond, and a worker costs a whole second runtime (an isolate, its heap and its
 * thread's allocations). Measured, 1 GiB from a libtorrent seed on loopback, alternating: peak RSS 84–90 MiB
 * against 100–110 MiB with the worker, wall time 1.9–2.8 s against 2.1–2.8 s (a transferred buffer is still
 * copied, and each piece woke a second thread). When the disk falls behind, the kernel makes `write()` wait
 * (dirty-page throttling, up to ~200 ms a call): once a write has kept the event loop 50 ms, its rest and
 * every write after it go to the worker.
 *
 * @module
 */

/** A write on the event loop's thread that has taken this long (ms) moves writing to the worker thread. */
const SLOW_MS = 50;
/** Bytes per `write()` call (see the module's documentation). */
const CHUNK = 16 * 1024;
/** Files kept open by the writer (least recently used closed first). */
const MAX_OPEN = 16;

/** The worker's source: plain JavaScript, run from a blob URL (nothing to bundle for `deno compile`). */
const WORKER_SOURCE = `
const CHUNK = ${CHUNK};
const MAX_OPEN = ${MAX_OPEN};
const files = new Map(); // path -> { file, at }
function handle(path) {
  let h = files.get(path);
  if (h) { files.delete(path); files.set(path, h); return h; }
  h = { file: Deno.openSync(path, { read: true, write: true, create: true }), at: -1 };
  files.set(path, h);
  while (files.size > MAX_OPEN) {
    const [oldest, o] = files.entries().next().value;
    files.delete(oldest);
    try { o.file.close(); } catch {}
  }
  return h;
}
self.onmessage = (e) => {
  const m = e.data;
  if (m.op === "write") {
    let error;
    try {
      const h = handle(m.path);
      if (h.at !== m.position) h.file.seekSync(m.position, Deno.SeekMode.Start);
      h.at = -1;
      const bytes = new Uint8Array(m.buffer, m.offset, m.length);
      let done = 0;
      while (done < bytes.length) {
        done += h.file.writeSync(bytes.subarray(done, Math.min(done + CHUNK, bytes.length)));
      }
      h.at = m.position + done;
    } catch (err) {
      error = { message: String(err && err.message || err), code: err && err.code };
      const h = files.get(m.path);
      if (h) h.at = -1;
    }
    self.postMessage({ id: m.id, buffer: m.buffer, error }, [m.buffer]);
  } else if (m.op === "close") {
    for (const h of files.values()) { try { h.file.close(); } catch {} }
    files.clear();
    self.postMessage({ id: m.id });
  }
};
`;

interface Pending {
  resolve(buffer: ArrayBuffer | undefined): void;
  reject(err: Error & { code?: string; buffer?: ArrayBuffer }): void;
}

/** Options of {@linkcode DiskWriter.open}. */
export interface DiskWriterOptions {
  /**
   * A piece write on the event loop's thread that took this long (ms) moves writing to the worker thread; 0
   * starts there (tests). @default {50}
   */
  slowMs?: number;
}

/** Writes on the event loop's thread while writes are quick, then on a worker thread (when workers are available). */
export class DiskWriter {
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  /** Files open for writes on the event loop's thread, least recently used first, with their offsets. */
  readonly #files = new Map<string, { file: Deno.FsFile; at: number }>();
  readonly #slowMs: number;
  /** Writing has moved to the worker thread (or tried to: workers may be unavailable). */
  #threaded = false;
  #next = 1;
  #closed = false;

  private constructor(slowMs: number) {
    this.#slowMs = slowMs;
  }

  /**
   * A writer; its worker thread starts only once a write is slow.
   *
   * @param options When writing moves to the worker thread.
   * @returns The writer.
   */
  static open(options: DiskWriterOptions = {}): DiskWriter {
    return new DiskWriter(options.slowMs ?? SLOW_MS);
  }

  /** Writes currently in flight on the worker thread. */
  get busy(): number {
    return this.#pending.size;
  }

  /** True once writing has moved to the worker thread. */
  get threaded(): boolean {
    return this.#worker !== undefined;
  }

  /**
   * Writes `buffer[offset, offset + length)` at `position` of the file at `path` (created if missing). On the
   * worker thread, the buffer is transferred there and back: do not touch it until the promise settles, then use
   * the one it gives back (on failure, the error's `buffer`).
   *
   * @returns The same memory, handed back.
   * @throws {Error} With `code` (ENOSPC, EACCES, ...) and `buffer` when the write fails.
   */
  write(
    path: string,
    buffer: ArrayBuffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<ArrayBuffer> {
    if (this.#closed) {
      return Promise.reject(Object.assign(new Error("disk writer closed"), { buffer }));
    }
    if (!this.#threaded && this.#slowMs <= 0) this.#toWorker();
    const worker = this.#worker;
    if (!worker) {
      // on this thread while writes are quick (for good when workers are unavailable)
      const until = this.#threaded ? Infinity : performance.now() + this.#slowMs;
      let done: number;
      try {
        done = this.#writeHere(path, new Uint8Array(buffer, offset, length), position, until);
      } catch (err) {
        const e = err as Error & { code?: string };
        return Promise.reject(Object.assign(new Error(e.message), { code: e.code, buffer }));
      }
      if (done === length) return Promise.resolve(buffer);
      // a slow write: the rest of it, and every write after it, on the worker thread
      this.#toWorker();
      return this.write(path, buffer, offset + done, length - done, position + done);
    }
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<ArrayBuffer | undefined>();
    this.#pending.set(id, { resolve, reject });
    worker.postMessage({ op: "write", id, path, buffer, offset, length, position }, [buffer]);
    return promise.then((b) => b!);
  }

  /** Closes the writer's files (after the writes already sent) and stops its thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeHere();
    const worker = this.#worker;
    if (!worker) return;
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<ArrayBuffer | undefined>();
    this.#pending.set(id, { resolve, reject });
    worker.postMessage({ op: "close", id });
    await promise.catch(() => {});
    worker.terminate();
  }

  /** Writes `bytes` at `position`, or their start when `until` (performance.now()) passes: the bytes written. */
  #writeHere(path: string, bytes: Uint8Array, position: number, until: number): number {
    let h = this.#files.get(path);
    if (h) this.#files.delete(path);
    else h = { file: Deno.openSync(path, { read: true, write: true, create: true }), at: -1 };
    this.#files.set(path, h);
    while (this.#files.size > MAX_OPEN) {
      const [oldest, o] = this.#files.entries().next().value!;
      this.#files.delete(oldest);
      o.file.close();
    }
    try {
      if (h.at !== position) h.file.seekSync(position, Deno.SeekMode.Start);
      h.at = -1;
      let done = 0;
      while (done < bytes.length) {
        done += h.file.writeSync(bytes.subarray(done, Math.min(done + CHUNK, bytes.length)));
        if (performance.now() >= until) break;
      }
      h.at = position + done;
      return done;
    } catch (err) {
      h.at = -1;
      throw err;
    }
  }

  #closeHere(): void {
    for (const h of this.#files.values()) {
      try {
        h.file.close();
      } catch { /* already closed */ }
    }
    this.#files.clear();
  }

  /** Moves writing to a worker thread, once (the event loop's thread keeps writing when workers are unavailable). */
  #toWorker(): void {
    this.#threaded = true;
    let url: string | undefined;
    try {
      url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
      this.#worker = new Worker(url, { type: "module" });
    } catch {
      return;
    } finally {
      if (url) URL.revokeObjectURL(url);
    }
    this.#closeHere();
    const worker = this.#worker;
    worker.onmessage = (
      e: MessageEvent<
        { id: number; buffer?: ArrayBuffer; error?: { message: string; code?: string } }
      >,
    ) => {
      const p = this.#pending.get(e.data.id);
      if (!p) return;
      this.#pending.delete(e.data.id);
      if (e.data.error) {
        const err = Object.assign(new Error(e.data.error.message), {
          code: e.data.error.code,
          buffer: e.data.buffer,
        });
        p.reject(err);
      } else p.resolve(e.data.buffer);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(new Error(`disk writer failed: ${e.message}`));
    };
  }

  #fail(err: Error): void {
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#worker?.terminate();
  }
}
