/**
 * Verifying downloaded pieces: SHA-1 with Web Crypto, one piece after another, on the calling thread by default or
 * on a worker thread; BEP 52 merkle hashes for v2 and hybrid torrents (on the calling thread, see verify.ts); and
 * {@linkcode FileHasher}, a worker that reads pieces from their files and hashes them, the second lane of a hash
 * check (Storage.hashcheck). Measured on 2 cores (1 GiB from a libtorrent seeder, written to tmpfs): the worker made the
 * download slower (3.2–5.0 s against 2.9–3.4 s on the calling thread), since a transferred buffer is still copied
 * (a 1 MiB round trip costs ~160 µs) and every piece wakes two threads; it may pay off with more cores.
 *
 * @module
 */

import { Layout, type LayoutInput } from "./layout.ts";
import { TorrentVerifier } from "./verify.ts";

interface Pending {
  resolve(v: { digest: Uint8Array; buffer: Uint8Array<ArrayBuffer> }): void;
  reject(e: unknown): void;
}

/** Hashes piece buffers one after another, on the calling thread or a worker thread. */
export class PieceHasher implements Disposable {
  #worker: Worker | undefined;
  #failed: boolean;
  #next = 1;
  readonly #pending = new Map<number, Pending>();

  /**
   * Creates a hasher.
   *
   * @param options `worker: true` hashes on a worker thread (falls back to the calling thread when workers are
   *   unavailable).
   */
  constructor(options: { worker?: boolean } = {}) {
    this.#failed = !options.worker;
  }

  /**
   * SHA-1 of the first `length` bytes of `buffer`. The buffer is transferred away while hashing: use the one
   * returned.
   *
   * @param buffer A Uint8Array spanning its whole ArrayBuffer.
   * @param length How many bytes to hash.
   * @returns The digest and the buffer (the same memory, handed back).
   */
  hash(
    buffer: Uint8Array<ArrayBuffer>,
    length: number,
  ): Promise<{ digest: Uint8Array; buffer: Uint8Array<ArrayBuffer> }> {
    const worker = this.#ensure();
    if (!worker || buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) {
      return crypto.subtle.digest("SHA-1", buffer.subarray(0, length)).then((d) => ({
        digest: new Uint8Array(d),
        buffer,
      }));
    }
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<
      { digest: Uint8Array; buffer: Uint8Array<ArrayBuffer> }
    >();
    this.#pending.set(id, { resolve, reject });
    worker.postMessage({ id, buf: buffer.buffer, length }, [buffer.buffer]);
    return promise;
  }

  #ensure(): Worker | undefined {
    if (this.#worker || this.#failed) return this.#worker;
    try {
      const w = new Worker(new URL("./_hash_worker.ts", import.meta.url), { type: "module" });
      w.onmessage = (e: MessageEvent<{ id: number; buf: ArrayBuffer; digest: ArrayBuffer }>) => {
        const p = this.#pending.get(e.data.id);
        this.#pending.delete(e.data.id);
        p?.resolve({ digest: new Uint8Array(e.data.digest), buffer: new Uint8Array(e.data.buf) });
      };
      w.onerror = (e) => {
        e.preventDefault();
        this.#failed = true;
        for (const p of this.#pending.values()) {
          p.reject(new Error(`hash worker failed: ${e.message}`));
        }
        this.#pending.clear();
        this.close();
      };
      this.#worker = w;
    } catch {
      this.#failed = true;
    }
    return this.#worker;
  }

  /** Stops the worker; pending hashes are rejected. */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    for (const p of this.#pending.values()) p.reject(new Error("hasher closed"));
    this.#pending.clear();
  }

  /** Same as {@linkcode PieceHasher.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** The file hasher's worker: plain JavaScript from a blob URL (nothing to bundle for `deno compile`). */
const FILE_HASHER_SOURCE = `
const MAX_OPEN = 16;
const files = new Map(); // path -> Deno.FsFile, least recently used first
let buf = new Uint8Array(0);
function open(path) {
  let f = files.get(path);
  if (f) { files.delete(path); files.set(path, f); return f; }
  f = Deno.openSync(path, { read: true });
  files.set(path, f);
  while (files.size > MAX_OPEN) {
    const [oldest, o] = files.entries().next().value;
    files.delete(oldest);
    try { o.close(); } catch {}
  }
  return f;
}
self.onmessage = async (e) => {
  const m = e.data;
  if (m.op === "close") {
    for (const f of files.values()) { try { f.close(); } catch {} }
    files.clear();
    self.postMessage({ id: m.id });
    return;
  }
  if (buf.length < m.size) buf = new Uint8Array(m.size);
  const piece = buf.subarray(0, m.size);
  let ok = true;
  try {
    for (const [path, fileOffset, at, length] of m.spans) {
      const target = piece.subarray(at, at + length);
      if (path === null) { target.fill(0); continue; }
      const f = open(path);
      f.seekSync(fileOffset, Deno.SeekMode.Start);
      let done = 0;
      while (done < length) {
        const n = f.readSync(target.subarray(done));
        if (n === null || n === 0) break;
        done += n;
      }
      if (done < length) { ok = false; break; }
    }
  } catch { ok = false; }
  const digest = ok ? await crypto.subtle.digest("SHA-1", piece) : undefined;
  self.postMessage({ id: m.id, digest }, digest ? [digest] : []);
};
`;

/** A span of a piece to read: file path (null for padding: zeros), offset in the file, in the piece, length. */
export type HashSpan = [path: string | null, fileOffset: number, at: number, length: number];

/**
 * Reads pieces from their files and hashes them (SHA-1) on a worker thread: a second lane for a hash check, which
 * the event loop's thread runs as well. Nothing but the 20-byte digest crosses between the threads.
 */
export class FileHasher {
  readonly #worker: Worker;
  readonly #pending = new Map<number, (digest: Uint8Array | undefined) => void>();
  #next = 1;
  #closed = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<{ id: number; digest?: ArrayBuffer }>) => {
      const resolve = this.#pending.get(e.data.id);
      this.#pending.delete(e.data.id);
      resolve?.(e.data.digest ? new Uint8Array(e.data.digest) : undefined);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.#closed = true;
      for (const resolve of this.#pending.values()) resolve(undefined);
      this.#pending.clear();
      worker.terminate();
    };
  }

  /** Starts the worker, or returns undefined when workers are not available. */
  static open(): FileHasher | undefined {
    let url: string | undefined;
    try {
      url = URL.createObjectURL(new Blob([FILE_HASHER_SOURCE], { type: "application/javascript" }));
      return new FileHasher(new Worker(url, { type: "module" }));
    } catch {
      return undefined;
    } finally {
      if (url) URL.revokeObjectURL(url);
    }
  }

  /**
   * SHA-1 of a piece read from its files on the worker thread.
   *
   * @param spans Where the piece's bytes are.
   * @param size The piece's size.
   * @returns The digest, or undefined when a file is missing, short or unreadable (or the worker failed).
   */
  hash(spans: HashSpan[], size: number): Promise<Uint8Array | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    const id = this.#next++;
    const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
    this.#pending.set(id, resolve);
    this.#worker.postMessage({ op: "hash", id, spans, size });
    return promise;
  }

  /** Closes the worker's files (after the hashes already asked for) and stops its thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true; // hashes asked for from now on are not done
    const id = this.#next++;
    const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
    this.#pending.set(id, resolve);
    this.#worker.postMessage({ op: "close", id });
    await promise;
    this.#worker.terminate();
  }
}

/** Options of {@linkcode PieceVerifier}. */
export interface PieceVerifierOptions {
  /** The concatenated 20-byte SHA-1 piece hashes (empty for a v2-only torrent). */
  pieces: Uint8Array;
  /** Hash SHA-1 on a worker thread. @default {false} */
  worker?: boolean;
  /**
   * The torrent's geometry and v2 hashes (a parsed torrent will do): v2 pieces are checked by their merkle hash,
   * hybrid pieces by SHA-1 and, once the file's piece layer is known, their merkle hash too. Without it, or for
   * a v1 torrent, SHA-1 alone.
   */
  layout?: LayoutInput;
  /** Hybrids: check the merkle hash as well as SHA-1 (a disagreement fails the piece). @default {true} */
  hybridBoth?: boolean;
}

/**
 * Checks complete downloaded pieces against the torrent's hashes: SHA-1 (v1), merkle hashes (v2, see
 * {@linkcode TorrentVerifier}), or both (hybrid).
 */
export class PieceVerifier {
  readonly #pieces: Uint8Array;
  readonly #worker: boolean;
  readonly #v2: TorrentVerifier | undefined;
  readonly #version: 1 | 2 | "hybrid";
  readonly #both: boolean;
  #hasher: PieceHasher | undefined;

  /**
   * Creates a {@linkcode PieceVerifier}.
   *
   * @param options The SHA-1 piece hashes, the torrent's v2 hashes, and whether to hash on a worker thread.
   */
  constructor(options: PieceVerifierOptions) {
    this.#pieces = options.pieces;
    this.#worker = options.worker ?? false;
    this.#version = options.layout?.version ?? 1;
    this.#both = options.hybridBoth ?? true;
    this.#v2 = options.layout && this.#version !== 1
      ? new TorrentVerifier(new Layout(options.layout), { hybridBoth: this.#both })
      : undefined;
  }

  /**
   * Hashes a piece and compares it with its expected hash. The piece's buffer may travel to a worker thread and
   * back: `piece.buffer` is replaced by the one returned.
   *
   * @param piece The piece index and its buffer.
   * @param length The piece's size.
   * @returns True when it matches.
   * @throws {Error} When the hasher was closed meanwhile (the piece is then neither good nor bad).
   */
  async verify(
    piece: { readonly index: number; buffer: Uint8Array<ArrayBuffer> },
    length: number,
  ): Promise<boolean> {
    const v2 = this.#v2;
    if (v2 && this.#version === 2) return await v2.verify(piece.index, piece.buffer);
    if (!(await this.#sha1(piece, length))) return false;
    if (!v2 || !this.#both) return true;
    // hybrid: SHA-1 passed; the merkle hash must not disagree (unknown while the file's layer is missing)
    return (await v2.checkV2(piece.index, piece.buffer)) !== false;
  }

  async #sha1(
    piece: { readonly index: number; buffer: Uint8Array<ArrayBuffer> },
    length: number,
  ): Promise<boolean> {
    this.#hasher ??= new PieceHasher({ worker: this.#worker });
    const { digest, buffer } = await this.#hasher.hash(piece.buffer, length);
    piece.buffer = buffer;
    const at = piece.index * 20;
    const expected = this.#pieces.subarray(at, at + 20);
    for (let i = 0; i < 20; i++) if (digest[i] !== expected[i]) return false;
    return true;
  }

  /** Stops the hasher (its worker, if any); a later {@linkcode PieceVerifier.verify} starts a fresh one. */
  close(): void {
    this.#hasher?.close();
    this.#hasher = undefined;
  }
}
