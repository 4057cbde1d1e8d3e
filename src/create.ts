/**
 * Making .torrent files from files on disk: automatic piece length, tracker tiers, private flag, web seeds,
 * SHA-1 with Web Crypto one piece after another into a reused buffer.
 *
 * @module
 */

import { basename, join, relative, sep } from "node:path";
import { encode } from "./bencode.ts";

/** A file to put in a torrent built from a list. */
export interface CreateFileInput {
  /** Where the file is on disk. */
  source: string;
  /** Its path inside the torrent, as components. */
  path: string[];
}

/** Options for {@linkcode createTorrent}. */
export interface CreateTorrentOptions {
  /** The torrent's name; the file or directory name by default. Required for a file list. */
  name?: string;
  /** Bytes per piece; chosen from the total size when omitted (a power of two, 16 KiB to 16 MiB). */
  pieceLength?: number;
  /** Trackers: a list of URLs (one tier each, in order) or a list of tiers. */
  announce?: string[] | string[][];
  /** BEP 27 private flag. */
  private?: boolean;
  /** A comment. */
  comment?: string;
  /**
   * The `created by` field.
   * @default {"Seedbed 0.1.0"}
   */
  createdBy?: string;
  /**
   * The creation date; `null` leaves it out.
   * @default {new Date()}
   */
  creationDate?: Date | null;
  /** Web seeds (BEP 19). */
  webSeeds?: string[];
  /** Called after each piece with bytes hashed so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Aborts the hashing. */
  signal?: AbortSignal;
}

/**
 * The piece length chosen for a total size: the smallest power of two that keeps the torrent at or below
 * about 1500 pieces, between 16 KiB and 16 MiB.
 *
 * @param total Total bytes.
 * @returns Bytes per piece.
 */
export function autoPieceLength(total: number): number {
  let len = 16 * 1024;
  while (len < 16 * 1024 * 1024 && total / len > 1500) len *= 2;
  return len;
}

/**
 * Creates a .torrent file. A directory becomes a multi-file torrent with its files sorted by path (as mktorrent
 * does); a single file becomes a single-file torrent.
 *
 * @example Make a torrent of a file
 * ```ts
 * import { createTorrent } from "./create.ts";
 * import { parseMetainfo } from "./metainfo.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.txt`, "hello");
 * const bytes = await createTorrent(`${dir}/hello.txt`, { announce: ["http://127.0.0.1:6969/announce"] });
 * const meta = await parseMetainfo(bytes);
 * assert.equal(meta.name, "hello.txt");
 * assert.equal(meta.length, 5);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param source A file or directory path, or an explicit list of files (then `options.name` is required).
 * @param options Trackers, piece length, flags.
 * @returns The bencoded torrent.
 * @throws {TypeError} When the options are inconsistent (no name for a list, bad piece length).
 * @throws {Deno.errors.NotFound} When a source file does not exist.
 */
export async function createTorrent(
  source: string | CreateFileInput[],
  options: CreateTorrentOptions = {},
): Promise<Uint8Array> {
  let name: string;
  let files: CreateFileInput[];
  let single = false;
  if (typeof source === "string") {
    const info = await Deno.stat(source);
    name = options.name ?? basename(source.replace(/[\/\\]+$/, ""));
    if (info.isDirectory) {
      files = await listFiles(source);
      if (files.length === 0) {
        throw new TypeError(`Cannot create a torrent of ${source}: no files in it`);
      }
    } else {
      files = [{ source, path: [name] }];
      single = true;
    }
  } else {
    if (!options.name) throw new TypeError("createTorrent needs options.name for a file list");
    name = options.name;
    files = source;
  }
  const sizes: number[] = [];
  let total = 0;
  for (const f of files) {
    const size = (await Deno.stat(f.source)).size;
    sizes.push(size);
    total += size;
  }
  const pieceLength = options.pieceLength ?? autoPieceLength(total);
  if (!Number.isSafeInteger(pieceLength) || pieceLength < 1) {
    throw new TypeError(`Bad piece length ${pieceLength}`);
  }
  const pieces = await hashFiles(files, sizes, total, pieceLength, options);
  const info: Record<string, unknown> = {
    name,
    "piece length": pieceLength,
    pieces,
  };
  if (single) info.length = total;
  else info.files = files.map((f, i) => ({ length: sizes[i], path: f.path }));
  if (options.private) info.private = 1;

  const tiers = normaliseTiers(options.announce);
  const top: Record<string, unknown> = { info };
  if (tiers.length > 0) top.announce = tiers[0][0];
  if (tiers.length > 1 || (tiers[0]?.length ?? 0) > 1) top["announce-list"] = tiers;
  if (options.comment !== undefined) top.comment = options.comment;
  top["created by"] = options.createdBy ?? "Seedbed 0.1.0";
  if (options.creationDate !== null) {
    top["creation date"] = Math.floor((options.creationDate ?? new Date()).getTime() / 1000);
  }
  if (options.webSeeds && options.webSeeds.length > 0) top["url-list"] = options.webSeeds;
  return encode(top as Parameters<typeof encode>[0]);
}

function normaliseTiers(announce: string[] | string[][] | undefined): string[][] {
  if (!announce || announce.length === 0) return [];
  return (announce as (string | string[])[]).map((t) => typeof t === "string" ? [t] : [...t])
    .filter((t) => t.length > 0);
}

async function listFiles(dir: string): Promise<CreateFileInput[]> {
  const out: CreateFileInput[] = [];
  const walk = async (d: string, depth: number) => {
    if (depth > 64) throw new Error(`Directory nesting deeper than 64 under ${dir}`);
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p, depth + 1);
      else if (e.isFile) out.push({ source: p, path: relative(dir, p).split(sep) });
      else if (e.isSymlink) {
        const st = await Deno.stat(p).catch(() => undefined);
        if (st?.isFile) out.push({ source: p, path: relative(dir, p).split(sep) });
      }
    }
  };
  await walk(dir, 0);
  // sorted by path components, bytewise, like mktorrent
  out.sort((a, b) => compareBytes(a.path.join("\u0000"), b.path.join("\u0000")));
  return out;
}

function compareBytes(a: string, b: string): number {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

async function hashFiles(
  files: CreateFileInput[],
  sizes: number[],
  total: number,
  pieceLength: number,
  options: CreateTorrentOptions,
): Promise<Uint8Array> {
  const count = Math.ceil(total / pieceLength);
  const out = new Uint8Array(count * 20);
  const piece = new Uint8Array(pieceLength);
  let fill = 0, index = 0, done = 0;
  const flush = async () => {
    const digest = await crypto.subtle.digest("SHA-1", piece.subarray(0, fill));
    out.set(new Uint8Array(digest), index * 20);
    index++;
    done += fill;
    fill = 0;
    options.onProgress?.(done, total);
  };
  for (let f = 0; f < files.length; f++) {
    if (sizes[f] === 0) continue;
    using file = await Deno.open(files[f].source, { read: true });
    let left = sizes[f];
    while (left > 0) {
      options.signal?.throwIfAborted();
      const n = await file.read(piece.subarray(fill, fill + Math.min(pieceLength - fill, left)));
      if (n === null) throw new Error(`${files[f].source} shrank while being hashed`);
      fill += n;
      left -= n;
      if (fill === pieceLength) await flush();
    }
  }
  if (fill > 0) await flush();
  return out;
}
