/**
 * Making .torrent files from files on disk: v1 (BEP 3, the default), v2 (BEP 52) or hybrid; automatic piece
 * length, tracker tiers, private flag, web seeds; SHA-1 and SHA-256 merkle trees with Web Crypto, files read in
 * large chunks into one reused buffer.
 *
 * @module
 */

import { basename, join, relative, sep } from "node:path";
import { compareBytes, latin1, utf8 } from "./_bytes.ts";
import { type BencodeInput, encode } from "./bencode.ts";
import { FileMerkle, MerkleHasher } from "./storage/merkle.ts";
import { CLIENT_NAME } from "./version.ts";

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
  /**
   * The format: v1 (BEP 3), v2 (BEP 52: a file tree and piece layers; the piece length must be a power of two of
   * at least 16 KiB), or hybrid (both, the v1 file list padded with BEP 47 padding files so that every file starts
   * a piece). v2 and hybrid torrents list files in file tree order and mark executable files (attribute "x"), as
   * libtorrent does, so the same files and piece length give libtorrent's info hashes.
   * @default {1}
   */
  version?: 1 | 2 | "hybrid";
  /** Called after each piece with bytes hashed so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Aborts the hashing. */
  signal?: AbortSignal;
}

/** Largest piece length accepted (the limit parseMetainfo applies by default). */
const MAX_PIECE_LENGTH = 512 * 1024 * 1024;

/**
 * The piece length chosen for a total size: the smallest power of two that keeps the torrent at or below
 * about 1500 pieces, between 16 KiB and 16 MiB.
 *
 * @example Piece lengths for a few sizes
 * ```ts
 * import { autoPieceLength } from "./create.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(autoPieceLength(5), 16384);
 * assert.equal(autoPieceLength(1024 ** 3), 1024 * 1024); // 1 GiB: 1024 pieces of 1 MiB
 * ```
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
 * Creates a .torrent file. A directory becomes a multi-file torrent of every file under it (symbolic links to
 * files followed, empty files included), sorted bytewise by their "/"-joined paths as mktorrent does, so the
 * same input, piece length and name give mktorrent's info hash; a single file becomes a single-file torrent.
 * Pieces are hashed with Web Crypto one after another, reading files in large chunks into one reused buffer.
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
 * @example Make a v2 torrent
 * ```ts
 * import { createTorrent } from "./create.ts";
 * import { parseMetainfo } from "./metainfo.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.txt`, "hello");
 * const meta = await parseMetainfo(await createTorrent(`${dir}/hello.txt`, { version: 2 }));
 * assert.equal(meta.version, 2);
 * assert.equal(meta.infoHashV2Hex?.length, 64);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @throws {TypeError} When the input cannot make a torrent: a list without `options.name`, an empty list or
 * directory, a path component that is empty, `.`, `..` or holds a separator, no data at all (every file
 * empty), a piece length that is not a whole number from 1 to 512 MiB (a power of two of at least 16 KiB for v2
 * and hybrid), or, for v2 and hybrid, a list where one path is also another's directory or repeats.
 * @throws {Deno.errors.NotFound} When a source file does not exist.
 * @throws {DOMException} The signal's reason (an `AbortError` by default) when `options.signal` aborts.
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
    if (files.length === 0) throw new TypeError("Cannot create a torrent of an empty file list");
    for (const f of files) checkPath(f.path);
  }
  checkComponent(name, "name");
  const sizes: number[] = [];
  let total = 0;
  for (const f of files) {
    const size = (await Deno.stat(f.source)).size;
    sizes.push(size);
    total += size;
  }
  if (total === 0) {
    throw new TypeError(
      `Cannot create a torrent of ${name}: it holds no data (every file is empty)`,
    );
  }
  const pieceLength = options.pieceLength ?? autoPieceLength(total);
  if (!Number.isSafeInteger(pieceLength) || pieceLength < 1 || pieceLength > MAX_PIECE_LENGTH) {
    throw new TypeError(
      `Cannot create a torrent with piece length ${pieceLength}: must be a whole number from 1 to ${MAX_PIECE_LENGTH}`,
    );
  }
  const version = options.version ?? 1;
  let info: Record<string, BencodeInput>;
  let pieceLayers: Record<string, Uint8Array> | undefined;
  if (version === 1) {
    const pieces = await hashFiles(files, sizes, total, pieceLength, options);
    info = { name, "piece length": pieceLength, pieces };
    if (single) info.length = total;
    else info.files = files.map((f, i) => ({ length: sizes[i], path: f.path }));
  } else {
    if (pieceLength < 16384 || (pieceLength & (pieceLength - 1)) !== 0) {
      throw new TypeError(
        `Cannot create a v2 torrent with piece length ${pieceLength}: must be a power of two of at least 16384`,
      );
    }
    const made = await v2Info(files, sizes, { name, single, pieceLength, version, options });
    info = made.info;
    pieceLayers = made.pieceLayers;
  }
  if (options.private) info.private = 1;

  const tiers = normaliseTiers(options.announce);
  const top: Record<string, unknown> = { info };
  if (pieceLayers) top["piece layers"] = pieceLayers;
  if (tiers.length > 0) top.announce = tiers[0][0];
  if (tiers.length > 1 || (tiers[0]?.length ?? 0) > 1) top["announce-list"] = tiers;
  if (options.comment !== undefined) top.comment = options.comment;
  top["created by"] = options.createdBy ?? CLIENT_NAME;
  if (options.creationDate !== null) {
    top["creation date"] = Math.floor((options.creationDate ?? new Date()).getTime() / 1000);
  }
  if (options.webSeeds && options.webSeeds.length > 0) top["url-list"] = options.webSeeds;
  return encode(top as BencodeInput);
}

/** What {@linkcode v2Info} needs besides the files. */
interface V2Setup {
  name: string;
  single: boolean;
  pieceLength: number;
  version: 2 | "hybrid";
  options: CreateTorrentOptions;
}

/**
 * The info dictionary of a v2 or hybrid torrent and its piece layers. Files go in file tree order (components
 * compared bytewise, one level at a time: the order of the pieces); each file's pieces are hashed into its merkle
 * tree and, for hybrids, by SHA-1 with the rest of its last piece zero (the padding file that follows it).
 */
async function v2Info(
  inputFiles: CreateFileInput[],
  inputSizes: number[],
  setup: V2Setup,
): Promise<{ info: Record<string, BencodeInput>; pieceLayers: Record<string, Uint8Array> }> {
  const { name, single, pieceLength, version, options } = setup;
  const order = inputFiles.map((_, i) => i);
  const keys = inputFiles.map((f) => f.path.map((c) => utf8(c)));
  order.sort((a, b) => compareComponents(keys[a], keys[b]));
  const files = order.map((i) => inputFiles[i]);
  const sizes = order.map((i) => inputSizes[i]);
  const modes = await Promise.all(files.map(async (f) => (await Deno.stat(f.source)).mode));
  const executable = modes.map((m) => m !== null && (m & 0o100) !== 0);
  if (!single) {
    for (let i = 1; i < files.length; i++) {
      const a = keys[order[i - 1]], b = keys[order[i]];
      if (a.length <= b.length && a.every((c, k) => compareBytes(c, b[k]) === 0)) {
        throw new TypeError(
          `Cannot create a v2 torrent: "${
            files[i - 1].path.join("/")
          }" is a file and the directory of "${files[i].path.join("/")}"`,
        );
      }
    }
  }
  const hybrid = version === "hybrid";
  const total = sizes.reduce((n, s) => n + s, 0);
  const blockPieces = sizes.reduce((n, s) => n + Math.ceil(s / pieceLength), 0);
  const v1Pieces = hybrid ? new Uint8Array(blockPieces * 20) : undefined;
  const roots: (Uint8Array | undefined)[] = [];
  const pieceLayers: Record<string, Uint8Array> = {};
  const hasher = new MerkleHasher();
  const perBuffer = Math.max(1, Math.floor(READ_CHUNK / pieceLength));
  const buffer = new Uint8Array(pieceLength * Math.min(perBuffer, Math.max(1, blockPieces)));
  let piece = 0, done = 0;
  for (let f = 0; f < files.length; f++) {
    const size = sizes[f];
    if (size === 0) {
      roots.push(undefined);
      continue;
    }
    options.signal?.throwIfAborted();
    const merkle = new FileMerkle(size, pieceLength, hasher);
    using file = await Deno.open(files[f].source, { read: true });
    let left = size;
    while (left > 0) {
      const want = Math.min(buffer.length, left);
      let fill = 0;
      while (fill < want) {
        options.signal?.throwIfAborted();
        const n = await file.read(buffer.subarray(fill, want));
        if (n === null) throw new Error(`${files[f].source} shrank while being hashed`);
        fill += n;
      }
      left -= fill;
      for (let at = 0; at < fill; at += pieceLength) {
        const n = Math.min(pieceLength, fill - at);
        await merkle.addPiece(buffer.subarray(at, at + n));
        if (v1Pieces) {
          // the piece as v1 sees it: the file's bytes, then the padding file's zeros (a torrent of one file
          // has no padding)
          const whole = files.length > 1 ? pieceLength : n;
          buffer.fill(0, at + n, at + whole);
          const digest = await crypto.subtle.digest("SHA-1", buffer.subarray(at, at + whole));
          v1Pieces.set(new Uint8Array(digest), piece * 20);
        }
        piece++;
        done += n;
        options.onProgress?.(done, total);
      }
    }
    const { root, pieceLayer } = await merkle.finish();
    roots.push(root);
    if (pieceLayer.length > 0) pieceLayers[latin1(root)] = pieceLayer;
  }

  const entry = (f: number): Record<string, BencodeInput> => ({
    ...(executable[f] ? { attr: "x" } : {}),
    length: sizes[f],
    ...(roots[f] ? { "pieces root": roots[f]! } : {}),
  });
  const tree: Record<string, BencodeInput> = {};
  if (single) {
    tree[latin1(utf8(name))] = { "": entry(0) };
  } else {
    for (let f = 0; f < files.length; f++) {
      let node = tree;
      const path = files[f].path;
      for (let k = 0; k < path.length - 1; k++) {
        const key = latin1(utf8(path[k]));
        node = (node[key] ??= {}) as Record<string, BencodeInput>;
      }
      node[latin1(utf8(path.at(-1)!))] = { "": entry(f) };
    }
  }
  const info: Record<string, BencodeInput> = {
    "file tree": tree,
    "meta version": 2,
    name,
    "piece length": pieceLength,
  };
  if (hybrid) {
    info.pieces = v1Pieces!;
    if (single) {
      info.length = sizes[0];
      if (executable[0]) info.attr = "x";
    } else {
      const list: Record<string, BencodeInput>[] = [];
      let offset = 0;
      for (let f = 0; f < files.length; f++) {
        list.push({
          ...(executable[f] ? { attr: "x" } : {}),
          length: sizes[f],
          path: files[f].path,
        });
        offset += sizes[f];
        const gap = (pieceLength - (offset % pieceLength)) % pieceLength;
        if (sizes[f] > 0 && gap > 0 && files.length > 1) {
          // BEP 47 padding, named as libtorrent names it; after the last file too, as libtorrent does (except
          // in a torrent of one file)
          list.push({ attr: "p", length: gap, path: [".pad", String(gap)] });
          offset += gap;
        }
      }
      info.files = list;
    }
  }
  return { info, pieceLayers };
}

/** File tree order: path components compared bytewise, one level at a time. */
function compareComponents(a: Uint8Array[], b: Uint8Array[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareBytes(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** A file list's paths must be what parseMetainfo accepts unchanged: no separators, no "." or "..". */
function checkPath(path: string[]): void {
  if (path.length === 0) throw new TypeError("Cannot create a torrent with an empty file path");
  for (const c of path) checkComponent(c, `path "${path.join("/")}"`);
}

function checkComponent(c: string, what: string): void {
  if (
    c === "" || c === "." || c === ".." || c.includes("/") || c.includes("\\") || c.includes("\0")
  ) {
    throw new TypeError(`Cannot create a torrent: ${what} has the unusable component "${c}"`);
  }
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
  // sorted like mktorrent: by the whole "/"-joined path, bytewise (so "a-c" < "a/b" < "a0")
  const encoder = new TextEncoder();
  const keyed = out.map((f) => ({ f, key: encoder.encode(f.path.join("/")) }));
  keyed.sort((a, b) => compareBytes(a.key, b.key));
  return keyed.map((k) => k.f);
}

/** Bytes read per read call at least: small pieces are read several at a time. */
const READ_CHUNK = 4 * 1024 * 1024;

/**
 * SHA-1 of each piece of the files' concatenated data, one digest after another. Files are read in large chunks
 * into one reused buffer holding a whole number of pieces; pieces span file boundaries.
 */
async function hashFiles(
  files: CreateFileInput[],
  sizes: number[],
  total: number,
  pieceLength: number,
  options: CreateTorrentOptions,
): Promise<Uint8Array> {
  const count = Math.ceil(total / pieceLength);
  const out = new Uint8Array(count * 20);
  const perBuffer = Math.max(1, Math.floor(READ_CHUNK / pieceLength));
  const buffer = new Uint8Array(Math.min(pieceLength * perBuffer, pieceLength * count));
  let fill = 0, index = 0, done = 0;
  // hashes every whole piece in the buffer (and the short last one when `end`), then empties it
  const flush = async (end: boolean) => {
    let at = 0;
    while (fill - at >= pieceLength || (end && fill > at)) {
      options.signal?.throwIfAborted();
      const n = Math.min(pieceLength, fill - at);
      const digest = await crypto.subtle.digest("SHA-1", buffer.subarray(at, at + n));
      out.set(new Uint8Array(digest), index * 20);
      index++;
      at += n;
      done += n;
      options.onProgress?.(done, total);
    }
    fill = 0;
  };
  for (let f = 0; f < files.length; f++) {
    if (sizes[f] === 0) continue;
    options.signal?.throwIfAborted();
    using file = await Deno.open(files[f].source, { read: true });
    let left = sizes[f];
    while (left > 0) {
      options.signal?.throwIfAborted();
      const n = await file.read(buffer.subarray(fill, fill + Math.min(buffer.length - fill, left)));
      if (n === null) throw new Error(`${files[f].source} shrank while being hashed`);
      fill += n;
      left -= n;
      if (fill === buffer.length) await flush(false);
    }
  }
  await flush(true);
  if (index !== count) throw new Error(`Hashed ${index} pieces, expected ${count}`);
  return out;
}
