/**
 * A torrent's file as a byte stream while it downloads: bytes come out in order as soon as their pieces are
 * verified (read back from disk), and the reader's position puts deadlines on the pieces just ahead of it, so
 * the engine fetches those first. The stream is pull-based: nothing is read before the consumer asks.
 *
 * @module
 */

import type { DeadlineReader } from "../swarm/deadlines.ts";

/** What a file stream needs from a torrent's engine (its {@linkcode Torrent} provides it). */
export interface StreamEngine {
  /** The torrent's geometry. */
  readonly meta: { readonly pieceLength: number };
  /** The pieces verified on disk. */
  readonly have: { has(index: number): boolean };
  /** A reader of the bytes `[start, end)` of the torrent's data, with deadlines ahead of it. */
  openReader(range: { start: number; end: number }): DeadlineReader;
  /** Reads verified bytes at `offset` of the torrent's data, filling `into`. */
  read(offset: number, into: Uint8Array): Promise<void>;
}

/** Options for {@linkcode fileStream}. */
export interface FileStreamOptions {
  /**
   * First byte, inside the file.
   * @default {0}
   */
  start?: number;
  /**
   * Byte after the last (exclusive), inside the file.
   * @default {the file's length}
   */
  end?: number;
  /**
   * Most bytes in one chunk (a BYOB reader's view can ask for fewer).
   * @default {262144}
   */
  chunkSize?: number;
}

/** Default of {@linkcode FileStreamOptions.chunkSize}. */
const CHUNK = 256 * 1024;

/**
 * The bytes `[start, end)` of a file of a torrent, in order, each as soon as its piece is verified (waiting as
 * long as it takes). The stream is a byte stream (BYOB readers are served straight into their buffers); each
 * chunk of a default reader is a fresh buffer the consumer may keep. Cancelling it drops its deadlines. When the
 * torrent is closed, or its data cannot be read, the stream errors.
 *
 * @example Read a file of a complete torrent
 * ```ts
 * import { fileStream } from "./file_stream.ts";
 * import { PieceDeadlines } from "../swarm/deadlines.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("hello, world");
 * const have = { has: () => true };
 * const deadlines = new PieceDeadlines({
 *   pieceLength: 4, totalLength: data.length, has: () => true, apply() {}, rate: () => 0,
 * });
 * const engine = {
 *   meta: { pieceLength: 4 },
 *   have,
 *   openReader: (range: { start: number; end: number }) => deadlines.open(range),
 *   read: (offset: number, into: Uint8Array) => {
 *     into.set(data.subarray(offset, offset + into.length));
 *     return Promise.resolve();
 *   },
 * };
 * const stream = fileStream(engine, { offset: 7, length: 5 }, { start: 1 });
 * assert.equal(await new Response(stream).text(), "orld");
 * ```
 *
 * @param engine The torrent's engine.
 * @param file Where the file lies in the torrent's data.
 * @param options The range inside the file, and the chunk size.
 * @returns The bytes.
 * @throws {RangeError} When the range is not inside the file.
 * @throws {Error} When the torrent was closed.
 */
export function fileStream(
  engine: StreamEngine,
  file: { readonly offset: number; readonly length: number },
  options: FileStreamOptions = {},
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const start = options.start ?? 0;
  const end = options.end ?? file.length;
  if (
    !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start ||
    end > file.length
  ) {
    throw new RangeError(`Range ${start}-${end} is not inside the file (${file.length} bytes)`);
  }
  const chunk = Math.max(1, options.chunkSize ?? CHUNK);
  const pl = engine.meta.pieceLength;
  let pos = file.offset + start;
  const stop = file.offset + end;
  const reader = pos < stop ? engine.openReader({ start: pos, end: stop }) : undefined;
  let done = false;
  const finish = () => {
    done = true;
    reader?.close();
  };
  return new ReadableStream({
    type: "bytes",
    start(controller) {
      if (!reader) controller.close();
    },
    async pull(controller) {
      try {
        const index = Math.floor(pos / pl);
        if (!engine.have.has(index)) {
          const had = await reader!.wait(index);
          if (!had || done) return;
        }
        // as far as verified pieces run, up to a chunk
        let last = index;
        while (
          (last + 1) * pl - pos < chunk && (last + 1) * pl < stop && engine.have.has(last + 1)
        ) last++;
        let n = Math.min(stop, (last + 1) * pl) - pos, buf: Uint8Array<ArrayBuffer>;
        n = Math.min(n, chunk);
        const byob = controller.byobRequest;
        const view = byob?.view;
        if (view) {
          n = Math.min(n, view.byteLength);
          buf = new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, n);
        } else buf = new Uint8Array(n);
        await engine.read(pos, buf);
        if (done) return;
        pos += n;
        reader!.advance(pos);
        if (view) byob!.respond(n);
        else controller.enqueue(buf);
        if (pos >= stop) {
          finish();
          controller.close();
        }
      } catch (err) {
        if (done) return;
        finish();
        controller.error(err);
      }
    },
    cancel() {
      finish();
    },
  });
}
