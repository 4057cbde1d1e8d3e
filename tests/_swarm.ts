// Helpers for whole-swarm tests: deterministic payloads, torrents, and bounded waits for events.

import { join } from "node:path";
import { createTorrent } from "../src/create.ts";
import { type Metainfo, parseMetainfo } from "../src/metainfo.ts";

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function payload(length: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A file of a test torrent: relative path inside the torrent folder and its length. */
export interface SpecFile {
  path: string;
  length: number;
}

/**
 * Writes the files under `dir/name/` and makes a torrent of that folder.
 *
 * @returns The parsed torrent and its bytes.
 */
export async function makeTorrent(
  dir: string,
  name: string,
  files: SpecFile[],
  options: { pieceLength: number; announce?: string[][]; private?: boolean },
): Promise<{ meta: Metainfo; bytes: Uint8Array }> {
  let seed = 1;
  for (const f of files) {
    const path = join(dir, name, f.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, payload(f.length, seed++));
  }
  const bytes = await createTorrent(join(dir, name), {
    pieceLength: options.pieceLength,
    ...(options.announce ? { announce: options.announce } : {}),
    ...(options.private ? { private: true } : {}),
  });
  return { meta: await parseMetainfo(bytes), bytes };
}

/** True when both directory trees hold the same files with the same bytes. */
export async function sameFiles(a: string, b: string, files: SpecFile[]): Promise<boolean> {
  for (const f of files) {
    const [x, y] = await Promise.all([
      Deno.readFile(join(a, f.path)),
      Deno.readFile(join(b, f.path)),
    ]);
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/**
 * Resolves when `promise` does, or fails loudly after `ms` naming what was awaited.
 */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the detail of the next `type` event on `target` that satisfies `test`. */
export function nextEvent<T>(
  target: EventTarget,
  type: string,
  test: (detail: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve) => {
    const listener = (e: Event) => {
      const detail = (e as CustomEvent<T>).detail;
      if (!test(detail)) return;
      target.removeEventListener(type, listener);
      resolve(detail);
    };
    target.addEventListener(type, listener);
  });
}

/** Two connected in-memory duplex streams: what one side writes, the other reads. */
export function pipePair(): {
  a: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
  b: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
} {
  const ab = new TransformStream<Uint8Array, Uint8Array>();
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  return {
    a: { readable: ba.readable, writable: ab.writable },
    b: { readable: ab.readable, writable: ba.writable },
  };
}

/** One end of a {@linkcode socketPair}. */
export interface TestSocket {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  /** Closes both directions, like closing a socket: the other end reads EOF, our pending read fails. */
  close(): void;
}

/** How a {@linkcode socketPair} delivers bytes. */
export interface SocketPairOptions {
  /** A byte stream readable (BYOB readers work), as a `Deno.Conn`'s. @default {true} */
  byob?: boolean;
  /** Deliver at most this many bytes per read (1: every byte boundary is a read boundary). */
  maxChunk?: number;
  /** Force a read boundary at this offset of each direction's byte stream. */
  splitAt?: number;
}

/**
 * Two connected in-memory ends that behave like a TCP socket, unlike {@linkcode pipePair}: a write copies the
 * bytes (the writer may reuse its buffer once the write resolves) and resolves while up to 64 KiB are buffered.
 * With `maxChunk` or `splitAt` every piece is handed to a read of its own (a write then waits for the reads).
 */
export function socketPair(options: SocketPairOptions = {}): { a: TestSocket; b: TestSocket } {
  const ab = oneWay(options), ba = oneWay(options);
  return {
    a: { readable: ba.readable, writable: ab.writable, close: () => (ab.end(), ba.fail()) },
    b: { readable: ab.readable, writable: ba.writable, close: () => (ba.end(), ab.fail()) },
  };
}

function oneWay(options: SocketPairOptions) {
  const lockstep = options.maxChunk !== undefined || options.splitAt !== undefined;
  const limit = lockstep ? 0 : 64 * 1024;
  let ctl!: ReadableByteStreamController | ReadableStreamDefaultController<Uint8Array>;
  let wake: (() => void) | undefined;
  let pulled = false, finished = false;
  const onPull = () => {
    pulled = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onCancel = () => {
    finished = true;
    onPull();
  };
  const readable = options.byob === false
    ? new ReadableStream<Uint8Array>(
      { start: (c) => void (ctl = c), pull: onPull, cancel: onCancel },
      new ByteLengthQueuingStrategy({ highWaterMark: limit }),
    )
    : new ReadableStream(
      { type: "bytes", start: (c) => void (ctl = c), pull: onPull, cancel: onCancel },
      { highWaterMark: limit },
    );
  let offset = 0;
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let at = 0; at < chunk.length;) {
        let n = chunk.length - at;
        if (options.maxChunk) n = Math.min(n, options.maxChunk);
        const split = options.splitAt;
        if (split !== undefined && offset < split && offset + n > split) n = split - offset;
        while (!finished && (lockstep ? !pulled : (ctl.desiredSize ?? 0) <= 0)) {
          await new Promise<void>((resolve) => wake = resolve);
        }
        if (finished) throw new Error("connection closed");
        pulled = false;
        ctl.enqueue(chunk.slice(at, at + n));
        offset += n;
        at += n;
      }
    },
    close() {
      end();
    },
    abort() {
      end();
    },
  });
  const end = () => {
    if (finished) return;
    finished = true;
    onPull();
    try {
      ctl.close();
      // a pending BYOB read is answered by the source, not by close()
      if ("byobRequest" in ctl) ctl.byobRequest?.respond(0);
    } catch { /* closed or errored already */ }
  };
  const fail = () => {
    const was = finished;
    finished = true;
    onPull();
    if (!was) {
      try {
        ctl.error(new Error("connection closed"));
      } catch { /* closed already */ }
    }
  };
  return { readable, writable, end, fail };
}
