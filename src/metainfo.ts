/**
 * .torrent files (BEP 3 metainfo, v1): parsing, validation and path sanitising.
 *
 * Everything in a torrent is untrusted. Lengths and piece geometry are checked; every file path is made safe so
 * that joined under the download directory it can never leave it; names meant for a terminal have their control
 * characters neutralised. The info hash is the SHA-1 of the `info` dictionary's bytes exactly as they appear in
 * the file.
 *
 * @module
 */

import { fromUtf8, fromUtf8Strict, sha1, toHex } from "./_bytes.ts";
import { printable, sanitizeComponent, UniquePaths } from "./_paths.ts";
import { type BencodeDict, type BencodeValue, decode, valueSpan } from "./bencode.ts";

/** A file of a torrent. */
export interface TorrentFile {
  /**
   * Sanitised path components relative to the download directory: `[name]` for a single-file torrent,
   * `[name, ...components]` for a multi-file one. Safe to join under the download directory.
   */
  path: string[];
  /** The path as the torrent gave it, joined with "/", control characters neutralised (for display). */
  displayPath: string;
  /**
   * The path components exactly as the torrent gave them (`[name]` or `[name, ...components]`, unsanitised,
   * `.utf-8` variants preferred): what a web seed's URL is built from (BEP 19). Never a file system path.
   */
  torrentPath: string[];
  /** Size in bytes. */
  length: number;
  /** Byte offset of this file in the torrent's concatenated data. */
  offset: number;
  /** BEP 47 padding file (attribute "p"): never written to disk, reads as zeros. */
  padding: boolean;
}

/** A parsed and validated torrent. */
export interface Metainfo {
  /** SHA-1 of the raw `info` dictionary, 20 bytes. */
  infoHash: Uint8Array;
  /** The info hash as 40 lower-case hex digits. */
  infoHashHex: string;
  /** The raw bencoded `info` dictionary (as served to peers by BEP 9). */
  info: Uint8Array;
  /** The torrent's name, sanitised to one safe path component. */
  name: string;
  /** The name with control characters neutralised, for display. */
  displayName: string;
  /** Bytes per piece (the last piece may be shorter). */
  pieceLength: number;
  /** Number of pieces. */
  pieceCount: number;
  /** The concatenated 20-byte SHA-1 hashes of the pieces. */
  pieces: Uint8Array;
  /** The files, in torrent order. */
  files: TorrentFile[];
  /** Total bytes. */
  length: number;
  /** True for torrents with a `files` list (stored in a folder named after the torrent). */
  multiFile: boolean;
  /** The `announce` URL, if any. */
  announce: string | undefined;
  /** Tracker tiers (BEP 12): `announce-list` when present, else `[[announce]]`, else empty. */
  announceList: string[][];
  /** Web seeds (BEP 19 `url-list`), any scheme, in torrent order. */
  urlList: string[];
  /** HTTP seeds (BEP 17 `httpseeds`), any scheme, in torrent order. */
  httpSeeds: string[];
  /** BEP 27 private flag: peers only from the torrent's trackers. */
  private: boolean;
  /** The comment, control characters neutralised. */
  comment: string | undefined;
  /** The `created by` field, control characters neutralised. */
  createdBy: string | undefined;
  /** The `creation date`, when present and plausible. */
  creationDate: Date | undefined;
}

/**
 * A torrent that cannot be used; `field` names the offending field, e.g. `info.files[3].length`.
 *
 * @example Find which field is wrong
 * ```ts
 * import { MetainfoError, parseMetainfo } from "./metainfo.ts";
 * import { encode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encode({
 *   info: { name: "x", length: -1, "piece length": 16384, pieces: new Uint8Array(20) },
 * });
 * const err = await parseMetainfo(bytes).catch((e) => e);
 * assert.ok(err instanceof MetainfoError);
 * assert.equal(err.field, "info.length");
 * ```
 */
export class MetainfoError extends Error {
  /** The field that is wrong. */
  readonly field: string;
  /**
   * Creates a {@linkcode MetainfoError}.
   *
   * @param field The field that is wrong.
   * @param message What is wrong with it.
   */
  constructor(field: string, message: string) {
    super(`Invalid torrent: ${field}: ${message}`);
    this.name = "MetainfoError";
    this.field = field;
  }
}

/** Limits for {@linkcode parseMetainfo}. */
export interface ParseMetainfoOptions {
  /**
   * Largest .torrent accepted, in bytes.
   * @default {52428800}
   */
  maxSize?: number;
  /**
   * Most files accepted.
   * @default {1000000}
   */
  maxFiles?: number;
  /**
   * Most pieces accepted.
   * @default {4194304}
   */
  maxPieces?: number;
  /**
   * Largest piece length accepted.
   * @default {536870912}
   */
  maxPieceLength?: number;
}

const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

/**
 * Parses and validates a v1 .torrent file.
 *
 * @example Parse a torrent
 * ```ts
 * import { parseMetainfo } from "./metainfo.ts";
 * import { encode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encode({
 *   announce: "http://127.0.0.1:6969/announce",
 *   info: { name: "hello.txt", length: 5, "piece length": 16384, pieces: new Uint8Array(20) },
 * });
 * const meta = await parseMetainfo(bytes);
 * assert.equal(meta.name, "hello.txt");
 * assert.equal(meta.pieceCount, 1);
 * assert.deepEqual(meta.announceList, [["http://127.0.0.1:6969/announce"]]);
 * assert.equal(meta.infoHashHex.length, 40);
 * ```
 *
 * @param bytes The .torrent file's bytes.
 * @param options Limits.
 * @returns The parsed torrent.
 * @throws {BencodeError} When the bytes are not valid bencode.
 * @throws {MetainfoError} When a field is missing, malformed, out of bounds, or unsafe.
 */
export async function parseMetainfo(
  bytes: Uint8Array,
  options: ParseMetainfoOptions = {},
): Promise<Metainfo> {
  const maxSize = options.maxSize ?? 50 * 1024 * 1024;
  const maxFiles = options.maxFiles ?? 1_000_000;
  const maxPieces = options.maxPieces ?? 4 * 1024 * 1024;
  const maxPieceLength = options.maxPieceLength ?? 512 * 1024 * 1024;
  if (bytes.length > maxSize) {
    throw new MetainfoError(
      "(file)",
      `${bytes.length} bytes is larger than the limit of ${maxSize}`,
    );
  }
  const top = decode(bytes, { spans: true, maxLength: maxSize, maxDepth: 32 });
  if (!isDict(top)) throw new MetainfoError("(root)", "not a dictionary");
  const info = top["info"];
  if (!isDict(info)) {
    throw new MetainfoError("info", info === undefined ? "missing" : "not a dictionary");
  }
  const span = valueSpan(top, "info")!;
  const infoBytes = bytes.subarray(span.start, span.end);

  // piece geometry
  const pieceLength = integer(info["piece length"], "info.piece length");
  if (pieceLength <= 0) {
    throw new MetainfoError("info.piece length", `must be positive, got ${pieceLength}`);
  }
  if (pieceLength > maxPieceLength) {
    throw new MetainfoError(
      "info.piece length",
      `${pieceLength} exceeds the limit of ${maxPieceLength}`,
    );
  }
  const pieces = info["pieces"];
  if (!(pieces instanceof Uint8Array)) {
    const v2 = pieces === undefined && info["meta version"] === 2;
    throw new MetainfoError(
      "info.pieces",
      v2
        ? "missing: this is a v2-only torrent (BEP 52); v1 and hybrid torrents are supported"
        : pieces === undefined
        ? "missing"
        : "not a byte string",
    );
  }
  if (pieces.length % 20 !== 0) {
    throw new MetainfoError("info.pieces", `length ${pieces.length} is not a multiple of 20`);
  }
  const pieceCount = pieces.length / 20;
  if (pieceCount > maxPieces) {
    throw new MetainfoError("info.pieces", `${pieceCount} pieces exceed the limit of ${maxPieces}`);
  }

  // name
  const rawName = utf8Text(info["name.utf-8"]) ?? text(info["name"]);
  if (rawName === undefined) {
    throw new MetainfoError(
      "info.name",
      info["name"] === undefined ? "missing" : "not a byte string",
    );
  }
  const name = sanitizeComponent(rawName);
  const displayName = printable(rawName);

  // files
  const files: TorrentFile[] = [];
  let total = 0;
  const multiFile = info["files"] !== undefined;
  if (multiFile) {
    if (info["length"] !== undefined) {
      throw new MetainfoError("info.length", "must not be present together with info.files");
    }
    const list = info["files"];
    if (!Array.isArray(list)) throw new MetainfoError("info.files", "not a list");
    if (list.length === 0) throw new MetainfoError("info.files", "empty list");
    if (list.length > maxFiles) {
      throw new MetainfoError("info.files", `${list.length} files exceed the limit of ${maxFiles}`);
    }
    const unique = new UniquePaths();
    for (let i = 0; i < list.length; i++) {
      const field = `info.files[${i}]`;
      const entry = list[i];
      if (!isDict(entry)) throw new MetainfoError(field, "not a dictionary");
      const length = integer(entry["length"], `${field}.length`);
      const rawPath = pathList(entry["path.utf-8"], `${field}.path.utf-8`, true) ??
        pathList(entry["path"], `${field}.path`, false)!;
      const attr = entry["attr"] instanceof Uint8Array ? fromUtf8(entry["attr"]) : "";
      const components = [name];
      for (const c of rawPath) components.push(sanitizeComponent(c));
      const path = unique.add(components);
      files.push({
        path,
        displayPath: printable([rawName, ...rawPath].join("/")),
        torrentPath: [rawName, ...rawPath],
        length,
        offset: total,
        padding: attr.includes("p"),
      });
      total += length;
      if (total > MAX_LENGTH) throw new MetainfoError(`${field}.length`, "total size exceeds 2^53");
    }
  } else {
    const length = integer(info["length"], "info.length");
    files.push({
      path: [name],
      displayPath: displayName,
      torrentPath: [rawName],
      length,
      offset: 0,
      padding: false,
    });
    total = length;
  }

  if (total === 0) {
    throw new MetainfoError(multiFile ? "info.files" : "info.length", "the torrent holds no data");
  }
  const expected = Math.ceil(total / pieceLength);
  if (expected !== pieceCount) {
    throw new MetainfoError(
      "info.pieces",
      `${pieceCount} piece hashes for ${total} bytes in pieces of ${pieceLength} (expected ${expected})`,
    );
  }

  // trackers
  const announce = url(top["announce"]);
  let announceList: string[][] = [];
  const tiers = top["announce-list"];
  if (Array.isArray(tiers)) {
    for (const tier of tiers.slice(0, 100)) {
      if (!Array.isArray(tier)) continue;
      const urls = tier.slice(0, 100).map(url).filter((u): u is string => u !== undefined);
      const unique = [...new Set(urls)];
      if (unique.length > 0) announceList.push(unique);
    }
  }
  if (announceList.length === 0 && announce) announceList = [[announce]];
  const urlList = urls(top["url-list"]);
  const httpSeeds = urls(top["httpseeds"]);
  const date = top["creation date"];
  const creationDate = typeof date === "number" && date > 0 && date < 253402300800
    ? new Date(date * 1000)
    : undefined;
  const comment = utf8Text(top["comment.utf-8"]) ?? text(top["comment"]);
  const createdBy = text(top["created by"]);
  const infoHash = await sha1(infoBytes);
  return {
    infoHash,
    infoHashHex: toHex(infoHash),
    info: infoBytes.slice(),
    name,
    displayName,
    pieceLength,
    pieceCount,
    pieces: pieces.slice(),
    files,
    length: total,
    multiFile,
    announce,
    announceList,
    urlList,
    httpSeeds,
    private: info["private"] === 1,
    comment: comment === undefined ? undefined : printable(comment),
    createdBy: createdBy === undefined ? undefined : printable(createdBy),
    creationDate,
  };
}

/**
 * Size of piece `index` of a torrent (the last piece may be shorter).
 *
 * @example The short last piece
 * ```ts
 * import { parseMetainfo, pieceSize } from "./metainfo.ts";
 * import { encode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = await parseMetainfo(encode({
 *   info: { name: "x", length: 20000, "piece length": 16384, pieces: new Uint8Array(40) },
 * }));
 * assert.equal(pieceSize(meta, 0), 16384);
 * assert.equal(pieceSize(meta, 1), 3616);
 * ```
 *
 * @param meta The torrent.
 * @param index Piece index.
 * @returns Bytes in that piece.
 */
export function pieceSize(meta: Metainfo, index: number): number {
  return index === meta.pieceCount - 1 ? meta.length - index * meta.pieceLength : meta.pieceLength;
}

/**
 * The expected SHA-1 of piece `index`.
 *
 * @example Compare a piece's digest
 * ```ts
 * import { parseMetainfo, pieceHash } from "./metainfo.ts";
 * import { encode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("hello");
 * const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", data));
 * const meta = await parseMetainfo(encode({
 *   info: { name: "x", length: 5, "piece length": 16384, pieces: digest },
 * }));
 * assert.deepEqual(pieceHash(meta, 0), digest);
 * ```
 *
 * @param meta The torrent.
 * @param index Piece index.
 * @returns 20 bytes (a view into `meta.pieces`).
 */
export function pieceHash(meta: Metainfo, index: number): Uint8Array {
  return meta.pieces.subarray(index * 20, index * 20 + 20);
}

function isDict(v: BencodeValue | undefined): v is BencodeDict {
  return v !== undefined && typeof v === "object" && !(v instanceof Uint8Array) &&
    !Array.isArray(v);
}

function integer(v: BencodeValue | undefined, field: string): number {
  if (v === undefined) throw new MetainfoError(field, "missing");
  if (typeof v === "bigint") throw new MetainfoError(field, `${v} is too large (limit 2^53)`);
  if (typeof v !== "number") throw new MetainfoError(field, "not an integer");
  if (v < 0) throw new MetainfoError(field, `must not be negative, got ${v}`);
  return v;
}

function text(v: BencodeValue | undefined): string | undefined {
  if (!(v instanceof Uint8Array)) return undefined;
  return fromUtf8Strict(v) ?? fromUtf8(v);
}

/** A `*.utf-8` field: used only when it is valid UTF-8. */
function utf8Text(v: BencodeValue | undefined): string | undefined {
  return v instanceof Uint8Array ? fromUtf8Strict(v) : undefined;
}

function url(v: BencodeValue | undefined): string | undefined {
  const s = v instanceof Uint8Array ? fromUtf8Strict(v) : undefined;
  if (!s || s.length > 2048) return undefined;
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x20\x7f]/.test(s)) return undefined;
  return s;
}

/** A URL or a list of them (at most 100, duplicates and unusable entries left out). */
function urls(v: BencodeValue | undefined): string[] {
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return [...new Set(list.slice(0, 100).map(url).filter((u): u is string => u !== undefined))];
}

function pathList(
  v: BencodeValue | undefined,
  field: string,
  optional: boolean,
): string[] | undefined {
  if (v === undefined) {
    if (optional) return undefined;
    throw new MetainfoError(field, "missing");
  }
  if (!Array.isArray(v)) {
    if (optional) return undefined;
    throw new MetainfoError(field, "not a list");
  }
  if (v.length === 0) {
    if (optional) return undefined;
    throw new MetainfoError(field, "empty path");
  }
  if (v.length > 64) throw new MetainfoError(field, `${v.length} components (limit 64)`);
  const out: string[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (!(c instanceof Uint8Array)) {
      if (optional) return undefined;
      throw new MetainfoError(`${field}[${i}]`, "not a byte string");
    }
    const s = optional ? fromUtf8Strict(c) : text(c)!;
    if (s === undefined) return undefined; // path.utf-8 that is not UTF-8: use path
    if (s === "..") {
      throw new MetainfoError(
        `${field}[${i}]`,
        'path component ".." would leave the download directory',
      );
    }
    out.push(s);
  }
  return out;
}
