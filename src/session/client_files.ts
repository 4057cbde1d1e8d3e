/**
 * A session torrent's files as its users see them: the {@linkcode ClientFile} list (length, absolute path,
 * settable priority, progress, and a byte stream readable while the file downloads) and the same files as a
 * {@linkcode StreamSource} for the HTTP stream handler.
 *
 * @module
 */

import { join } from "node:path";
import type { StreamFile, StreamSource } from "../http/stream_handler.ts";
import type { Metainfo } from "../metainfo.ts";
import { pieceRangeOfFile } from "../storage/layout.ts";
import { fileStream, type FileStreamOptions, type StreamEngine } from "./file_stream.ts";

/**
 * A file of the torrent, as the seed's `files()` lists it (`priority` is settable), and readable while it
 * downloads with {@linkcode ClientFile.stream}.
 */
export interface ClientFile {
  /** Size in bytes. */
  readonly length: number;
  /** Absolute path on disk. */
  readonly path: string;
  /** Download priority; 0 = do not download; higher is sooner. Settable. */
  priority: number;
  /** Its index in the torrent's file list (padding files count): what `setPriority` takes. */
  readonly index: number;
  /** Its path inside the torrent, components joined with "/" (for a single-file torrent: its name). */
  readonly name: string;
  /** Where its bytes start in the torrent's data. */
  readonly offset: number;
  /** True when every byte is verified on disk. */
  readonly complete: boolean;
  /** Bytes verified on disk. */
  readonly bytesCompleted: number;
  /**
   * The bytes `[start, end)` of the file, in order, each as soon as its piece is verified (waiting as long as it
   * takes): a video plays while it downloads. Reading puts deadlines on the pieces just ahead of the reader (a
   * window of a few seconds of download), which are then requested before anything else, from the fastest
   * peers; cancelling the stream drops them. Works on files not selected for download too (only the pieces
   * read are fetched). Several streams, on one file or several, are independent.
   *
   * @param options The range inside the file (`start`, `end`), and the most bytes per chunk.
   * @returns A byte stream (BYOB readers are served straight into their buffers).
   * @throws {RangeError} When the range is not inside the file.
   */
  stream(options?: FileStreamOptions): ReadableStream<Uint8Array<ArrayBuffer>>;
  /** The whole file, once every piece of it is verified. */
  arrayBuffer(): Promise<ArrayBuffer>;
  /** The whole file as a `Blob`, once every piece of it is verified. */
  blob(): Promise<Blob>;
}

/** A torrent's engine as its file list reads it: streams, and the priority of each file. */
export interface FilesEngine extends StreamEngine {
  /** Each file's download priority. */
  readonly priorities: readonly number[];
}

/**
 * The torrent's files with length, absolute path, (settable) priority, and a stream of their bytes; padding
 * files left out (`index` is a file's place in the torrent's list, padding files included).
 *
 * @param t The torrent's engine.
 * @param meta The torrent's metadata.
 * @param options The download directory, and how a file's priority is set.
 * @returns The files.
 */
export function clientFiles(
  t: FilesEngine,
  meta: Metainfo,
  options: { basedir: string; setPriority: (file: number, priority: number) => unknown },
): ClientFile[] {
  const { basedir, setPriority } = options;
  const out: ClientFile[] = [];
  meta.files.forEach((f, i) => {
    if (f.padding) return;
    const range = pieceRangeOfFile(meta, i);
    const pl = meta.pieceLength;
    const stream = (options?: FileStreamOptions) => fileStream(t, f, options);
    out.push({
      length: f.length,
      path: join(basedir, ...f.path),
      get priority(): number {
        return t.priorities[i];
      },
      set priority(p: number) {
        setPriority(i, p);
      },
      index: i,
      name: (meta.multiFile ? f.path.slice(1) : f.path).join("/"),
      offset: f.offset,
      get complete(): boolean {
        if (!range) return true;
        for (let k = range[0]; k <= range[1]; k++) if (!t.have.has(k)) return false;
        return true;
      },
      get bytesCompleted(): number {
        if (!range) return 0;
        let n = 0;
        for (let k = range[0]; k <= range[1]; k++) {
          if (!t.have.has(k)) continue;
          n += Math.min(f.offset + f.length, (k + 1) * pl) - Math.max(f.offset, k * pl);
        }
        return n;
      },
      stream,
      arrayBuffer: () => new Response(stream()).arrayBuffer(),
      blob: () => new Response(stream()).blob(),
    });
  });
  return out;
}

/**
 * A torrent's files as a {@linkcode StreamSource} for the HTTP stream handler (`createStreamHandler`,
 * `serveStreams`): its name, its info hash (the v2 one for a v2-only torrent), and each file with live progress
 * and its {@linkcode ClientFile.stream}.
 *
 * @param meta The torrent's metadata.
 * @param files The torrent's files, read afresh on every access of the source's `files`.
 * @returns The source.
 */
export function streamSourceOf(meta: Metainfo, files: () => ClientFile[]): StreamSource {
  return {
    name: meta.displayName,
    infoHash: meta.version === 2 ? meta.infoHashV2Hex! : meta.infoHashHex,
    get files(): StreamFile[] {
      return files().map((f) => ({
        path: f.name.split("/"),
        length: f.length,
        get complete(): boolean {
          return f.complete;
        },
        get bytesCompleted(): number {
          return f.bytesCompleted;
        },
        stream: (range: { start?: number; end?: number }) => f.stream(range),
      }));
    },
  };
}
