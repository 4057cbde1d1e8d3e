/**
 * .torrent files: parsing, validation and path sanitising of v1 (BEP 3), v2 (BEP 52) and hybrid torrents, with
 * BEP 47 file attributes (padding files, executable, hidden, symbolic links).
 *
 * Everything in a torrent is untrusted. Lengths and piece geometry are checked; every file path is made safe so
 * that joined under the download directory it can never leave it; names meant for a terminal have their control
 * characters neutralised. The v1 info hash is the SHA-1 of the `info` dictionary's bytes exactly as they appear in
 * the file, the v2 info hash their SHA-256.
 *
 * Storage sees every torrent as v1 does, pieces over the concatenated files: in v2 each file starts at a piece
 * boundary, so a v2-only torrent's {@linkcode Metainfo.files} get padding entries between files (and after the
 * last, as libtorrent does), exactly like the BEP 47 padding files of a hybrid torrent's v1 file list.
 *
 * @module
 */

import { fromUtf8Strict, latin1, sha1, sha256, toHex } from "./_bytes.ts";
import { verifyPieceLayer } from "./storage/merkle.ts";
import {
  attributes,
  integer,
  isDict,
  MAX_LENGTH,
  MAX_PATH_COMPONENTS,
  MetainfoError,
  symlinkPath,
  text,
  utf8Text,
} from "./_metainfo_common.ts";
import { printable, sanitizeComponent, UniquePaths } from "./_paths.ts";
import { type BencodeValue, decode, valueSpan } from "./bencode.ts";
import {
  checkHybrid,
  type ListFile,
  metaVersion,
  MIN_V2_PIECE_LENGTH,
  readFileTree,
  readPieceLayers,
} from "./metainfo_v2.ts";

export { MetainfoError };

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
  /**
   * BEP 47 padding file (attribute "p"), or the gap a v2-only torrent leaves between files: never written to
   * disk, reads as zeros, not shown to users.
   */
  padding: boolean;
  /** BEP 52 merkle root of the file, 32 bytes: non-empty files of v2 and hybrid torrents. */
  piecesRoot?: Uint8Array;
  /** BEP 47 attribute "x": made executable once complete. */
  executable?: boolean;
  /** BEP 47 attribute "h": hidden (nothing to do on Linux beyond the name). */
  hidden?: boolean;
  /**
   * BEP 47 attribute "l": this file is a symbolic link to that path (sanitised components relative to the
   * download directory, like {@linkcode TorrentFile.path}, always inside the torrent's folder). Only set when the
   * link is honoured; a link that would leave the torrent is a normal empty file and a warning.
   */
  symlink?: string[];
}

/** A parsed and validated torrent. */
export interface Metainfo {
  /** The format: BEP 3 (`1`), BEP 52 only (`2`), or both (`"hybrid"`, one set of files, two sets of hashes). */
  version: 1 | 2 | "hybrid";
  /**
   * The 20-byte info hash used on the wire, by trackers and the DHT: the SHA-1 of the raw `info` dictionary for v1
   * and hybrid torrents, the first 20 bytes of its SHA-256 for v2-only torrents.
   */
  infoHash: Uint8Array;
  /** {@linkcode Metainfo.infoHash} as 40 lower-case hex digits. */
  infoHashHex: string;
  /** The v2 info hash (SHA-256 of the raw `info` dictionary, 32 bytes), for v2 and hybrid torrents. */
  infoHashV2?: Uint8Array;
  /** {@linkcode Metainfo.infoHashV2} as 64 lower-case hex digits. */
  infoHashV2Hex?: string;
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
  /** The concatenated 20-byte SHA-1 hashes of the pieces (v1 and hybrid; empty for v2-only torrents). */
  pieces: Uint8Array;
  /**
   * BEP 52 piece layers by the hex of their file's `pieces root`: one hash per piece of each file larger than one
   * piece, checked against the root. Empty for v1. May lack layers when parsed with `allowMissingPieceLayers`
   * (a magnet link's info dictionary), see {@linkcode missingPieceLayers}.
   */
  pieceLayers: Map<string, Uint8Array>;
  /** The files, in torrent order, padding files included (see {@linkcode TorrentFile.padding}). */
  files: TorrentFile[];
  /** Total bytes, padding included: the extent of the pieces. */
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
  /**
   * DHT nodes the torrent names (BEP 5 `nodes`, for trackerless torrents): a way into the DHT without any other
   * bootstrap node. At most 50; malformed entries are skipped.
   */
  nodes: { host: string; port: number }[];
  /** BEP 27 private flag: peers only from the torrent's trackers. */
  private: boolean;
  /** The comment, control characters neutralised. */
  comment: string | undefined;
  /** The `created by` field, control characters neutralised. */
  createdBy: string | undefined;
  /** The `creation date`, when present and plausible. */
  creationDate: Date | undefined;
  /** What was accepted but not honoured, e.g. a symbolic link that would leave the torrent (for the user). */
  warnings: string[];
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
  /**
   * Accept a v2 or hybrid torrent whose `piece layers` lack some files' layers: an info dictionary fetched for a
   * magnet link, whose layers come from peers later (see {@linkcode missingPieceLayers}). Layers that are present
   * are still checked.
   * @default {false}
   */
  allowMissingPieceLayers?: boolean;
}

/**
 * Parses and validates a .torrent file: v1 (BEP 3), v2 (BEP 52) or hybrid. A v2 torrent's `piece layers` are
 * checked against each file's root; a hybrid torrent's v1 file list must describe the same files as its v2 file
 * tree (padding files aside), each starting at the same piece.
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
 * assert.equal(meta.version, 1);
 * assert.equal(meta.pieceCount, 1);
 * assert.deepEqual(meta.announceList, [["http://127.0.0.1:6969/announce"]]);
 * assert.equal(meta.infoHashHex.length, 40);
 * ```
 *
 * @example A v2-only torrent
 * ```ts
 * import { parseMetainfo } from "./metainfo.ts";
 * import { encode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("hello");
 * const root = new Uint8Array(await crypto.subtle.digest("SHA-256", data)); // one block: its hash is the root
 * const meta = await parseMetainfo(encode({
 *   info: {
 *     name: "hello.txt",
 *     "meta version": 2,
 *     "piece length": 16384,
 *     "file tree": { "hello.txt": { "": { length: 5, "pieces root": root } } },
 *   },
 *   "piece layers": {},
 * }));
 * assert.equal(meta.version, 2);
 * assert.equal(meta.infoHashV2Hex?.length, 64);
 * assert.deepEqual(meta.infoHash, meta.infoHashV2?.subarray(0, 20));
 * assert.deepEqual(meta.files.map((f) => [f.length, f.padding]), [[5, false], [16379, true]]);
 * ```
 *
 * @param bytes The .torrent file's bytes.
 * @param options Limits.
 * @returns The parsed torrent.
 * @throws {BencodeError} When the bytes are not valid bencode.
 * @throws {MetainfoError} When a field is missing, malformed, out of bounds, or unsafe; when the `meta version`
 *   is not 1 or 2; when piece layers do not match their roots; when a hybrid torrent's two file lists differ.
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
  // a v2 file tree nests one dictionary per path component, under the top, info and file tree dictionaries
  const top = decode(bytes, {
    spans: true,
    maxLength: maxSize,
    maxDepth: MAX_PATH_COMPONENTS + 8,
  });
  if (!isDict(top)) throw new MetainfoError("(root)", "not a dictionary");
  const info = top["info"];
  if (!isDict(info)) {
    throw new MetainfoError("info", info === undefined ? "missing" : "not a dictionary");
  }
  const span = valueSpan(top, "info")!;
  const infoBytes = bytes.subarray(span.start, span.end);
  const metaV = metaVersion(info); // first, as BEP 52 asks

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
  if (metaV === 2 && (pieceLength < MIN_V2_PIECE_LENGTH || !powerOfTwo(pieceLength))) {
    throw new MetainfoError(
      "info.piece length",
      `${pieceLength} is not a power of two of at least ${MIN_V2_PIECE_LENGTH}, as meta version 2 needs`,
    );
  }
  const tree = metaV === 2 ? readFileTree(info["file tree"], maxFiles) : undefined;
  const hasV1 = tree === undefined || info["pieces"] !== undefined;

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

  const warnings: string[] = [];
  const unique = new UniquePaths();
  const files: TorrentFile[] = [];
  let total = 0;
  let multiFile: boolean;
  let pieces: Uint8Array;
  let pieceCount: number;
  if (hasV1) {
    const p = info["pieces"];
    if (!(p instanceof Uint8Array)) {
      throw new MetainfoError("info.pieces", p === undefined ? "missing" : "not a byte string");
    }
    if (p.length % 20 !== 0) {
      throw new MetainfoError("info.pieces", `length ${p.length} is not a multiple of 20`);
    }
    pieces = p;
    pieceCount = p.length / 20;
    if (pieceCount > maxPieces) {
      throw new MetainfoError(
        "info.pieces",
        `${pieceCount} pieces exceed the limit of ${maxPieces}`,
      );
    }
    const list: ListFile[] = [];
    multiFile = info["files"] !== undefined;
    if (multiFile) {
      if (info["length"] !== undefined) {
        throw new MetainfoError("info.length", "must not be present together with info.files");
      }
      const entries = info["files"];
      if (!Array.isArray(entries)) throw new MetainfoError("info.files", "not a list");
      if (entries.length === 0) throw new MetainfoError("info.files", "empty list");
      if (entries.length > maxFiles) {
        throw new MetainfoError(
          "info.files",
          `${entries.length} files exceed the limit of ${maxFiles}`,
        );
      }
      for (let i = 0; i < entries.length; i++) {
        const field = `info.files[${i}]`;
        const entry = entries[i];
        if (!isDict(entry)) throw new MetainfoError(field, "not a dictionary");
        const length = integer(entry["length"], `${field}.length`);
        const attr = attributes(entry["attr"]);
        const padding = attr.includes("p");
        // BEP 47: a padding file's path is optional; when present it is checked like any other
        const rawPath = pathList(entry["path.utf-8"], `${field}.path.utf-8`, true) ??
          pathList(entry["path"], `${field}.path`, padding) ?? [".pad", String(length)];
        list.push({ raw: rawPath, length, offset: total, padding, field });
        if (padding) {
          files.push({
            ...padEntry(name, multiFile, length, total),
            torrentPath: [rawName, ...rawPath],
          });
        } else {
          const components = [name];
          for (const c of rawPath) components.push(sanitizeComponent(c));
          files.push({
            path: unique.add(components),
            displayPath: printable([rawName, ...rawPath].join("/")),
            torrentPath: [rawName, ...rawPath],
            length,
            offset: total,
            padding: false,
            ...fileAttributes(attr, entry["symlink path"], length, field, name, warnings),
          });
        }
        total += length;
        if (total > MAX_LENGTH) {
          throw new MetainfoError(`${field}.length`, "total size exceeds 2^53");
        }
      }
    } else {
      const length = integer(info["length"], "info.length");
      if (rawName === "") {
        throw new MetainfoError(
          "info.name",
          "is empty: a single-file torrent's name is its file name",
        );
      }
      list.push({ raw: [rawName], length, offset: 0, padding: false, field: "info" });
      files.push({
        path: [name],
        displayPath: displayName,
        torrentPath: [rawName],
        length,
        offset: 0,
        padding: false,
        ...fileAttributes(attributes(info["attr"]), undefined, length, "info", undefined, warnings),
      });
      total = length;
    }
    if (total === 0) {
      throw new MetainfoError(
        multiFile ? "info.files" : "info.length",
        "the torrent holds no data",
      );
    }
    const expected = Math.ceil(total / pieceLength);
    if (expected !== pieceCount) {
      throw new MetainfoError(
        "info.pieces",
        `${pieceCount} piece hashes for ${total} bytes in pieces of ${pieceLength} (expected ${expected})`,
      );
    }
    if (tree) {
      checkHybrid(list, tree, pieceLength, pieceCount);
      let j = 0;
      for (const f of files) if (!f.padding) f.piecesRoot = tree[j++].piecesRoot;
    }
  } else {
    // v2 only: every file starts at a piece boundary; the gaps become padding entries
    const v2files = tree!;
    multiFile = !(v2files.length === 1 && v2files[0].raw.length === 1);
    for (const t of v2files) {
      const components = multiFile
        ? [name, ...t.raw.map(sanitizeComponent)]
        : [sanitizeComponent(t.raw[0])];
      files.push({
        path: unique.add(components),
        displayPath: printable(multiFile ? [rawName, ...t.raw].join("/") : t.raw[0]),
        torrentPath: multiFile ? [rawName, ...t.raw] : [t.raw[0]],
        length: t.length,
        offset: total,
        padding: false,
        ...(t.piecesRoot ? { piecesRoot: t.piecesRoot } : {}),
        ...fileAttributes(
          t.attr,
          t.symlink,
          t.length,
          t.field,
          multiFile ? name : undefined,
          warnings,
        ),
      });
      total += t.length;
      if (t.length > 0 && total % pieceLength !== 0) {
        const gap = pieceLength - (total % pieceLength);
        files.push(padEntry(name, multiFile, gap, total));
        total += gap;
      }
      if (total > MAX_LENGTH) {
        throw new MetainfoError(`${t.field}.length`, "total size exceeds 2^53");
      }
    }
    if (total === 0) throw new MetainfoError("info.file tree", "the torrent holds no data");
    pieceCount = total / pieceLength;
    if (pieceCount > maxPieces) {
      throw new MetainfoError(
        "info.file tree",
        `${pieceCount} pieces exceed the limit of ${maxPieces}`,
      );
    }
    pieces = new Uint8Array(0);
  }
  const pieceLayers = tree
    ? await readPieceLayers(
      top["piece layers"],
      tree,
      pieceLength,
      options.allowMissingPieceLayers ?? false,
    )
    : new Map<string, Uint8Array>();

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
  const nodes = dhtNodes(top["nodes"]);
  const date = top["creation date"];
  const creationDate = typeof date === "number" && date > 0 && date < 253402300800
    ? new Date(date * 1000)
    : undefined;
  const comment = utf8Text(top["comment.utf-8"]) ?? text(top["comment"]);
  const createdBy = text(top["created by"]);
  const infoHashV2 = tree ? await sha256(infoBytes) : undefined;
  const infoHash = hasV1 ? await sha1(infoBytes) : infoHashV2!.slice(0, 20);
  return {
    version: tree ? (hasV1 ? "hybrid" : 2) : 1,
    infoHash,
    infoHashHex: toHex(infoHash),
    ...(infoHashV2 ? { infoHashV2, infoHashV2Hex: toHex(infoHashV2) } : {}),
    info: infoBytes.slice(),
    name,
    displayName,
    pieceLength,
    pieceCount,
    pieces: pieces.slice(),
    pieceLayers,
    files,
    length: total,
    multiFile,
    announce,
    announceList,
    urlList,
    httpSeeds,
    nodes,
    private: info["private"] === 1,
    comment: comment === undefined ? undefined : printable(comment),
    createdBy: createdBy === undefined ? undefined : printable(createdBy),
    creationDate,
    warnings,
  };
}

/** BEP 5 `nodes`: `[["host", port], …]`; host names and IP addresses, bounded, bad entries skipped. */
function dhtNodes(value: BencodeValue | undefined): { host: string; port: number }[] {
  if (!Array.isArray(value)) return [];
  const out: { host: string; port: number }[] = [];
  const seen = new Set<string>();
  for (const entry of value.slice(0, 200)) {
    if (!Array.isArray(entry) || entry.length < 2) continue;
    const [h, port] = entry;
    if (!(h instanceof Uint8Array) || typeof port !== "number" || !(port > 0 && port < 65536)) {
      continue;
    }
    const host = latin1(h);
    if (!/^[0-9A-Za-z.:\-]{1,253}$/.test(host) || seen.has(`${host}|${port}`)) continue;
    seen.add(`${host}|${port}`);
    out.push({ host, port });
    if (out.length >= 50) break;
  }
  return out;
}

function powerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

/** A padding entry: never written, so its path only needs to be recognisable. */
function padEntry(name: string, multiFile: boolean, length: number, offset: number): TorrentFile {
  const rest = [".pad", String(length)];
  return {
    path: multiFile ? [name, ...rest] : rest,
    displayPath: rest.join("/"),
    torrentPath: multiFile ? [name, ...rest] : rest,
    length,
    offset,
    padding: true,
  };
}

/**
 * BEP 47 attributes of a file: "x" and "h" as flags; "l" as a link to `[torrent folder, ...symlink path]`, only
 * in a multi-file torrent (`folder`), for an empty file, with a valid target; otherwise a warning and an
 * ordinary file.
 */
function fileAttributes(
  attr: string,
  rawLink: BencodeValue | string[] | undefined,
  length: number,
  field: string,
  folder: string | undefined,
  warnings: string[],
): Pick<TorrentFile, "executable" | "hidden" | "symlink"> {
  const out: Pick<TorrentFile, "executable" | "hidden" | "symlink"> = {};
  if (attr.includes("x")) out.executable = true;
  if (attr.includes("h")) out.hidden = true;
  if (!attr.includes("l")) return out;
  const target = Array.isArray(rawLink) && rawLink.every((c) => typeof c === "string")
    ? rawLink as string[]
    : symlinkPath(rawLink as BencodeValue | undefined);
  const why = folder === undefined
    ? "a single-file torrent has no folder to link inside"
    : length !== 0
    ? `a symbolic link must have length 0, not ${length}`
    : target === undefined
    ? 'its "symlink path" is missing, malformed, or climbs out of the torrent with ".."'
    : undefined;
  if (why !== undefined) {
    warnings.push(`${field}: symbolic link ignored (${why}); it is an ordinary file`);
    return out;
  }
  out.symlink = [folder!, ...target!.map(sanitizeComponent)];
  return out;
}

/**
 * Files of a v2 or hybrid torrent that are larger than one piece and whose piece layer is not known yet (an
 * info dictionary from a magnet link, parsed with `allowMissingPieceLayers`): their pieces cannot be verified by
 * v2 hashes until the layer arrives (BEP 52 `hash request` for the piece layer) and is added with
 * {@linkcode addPieceLayer}.
 *
 * @param meta The torrent.
 * @returns Indexes into `meta.files`.
 */
export function missingPieceLayers(meta: Metainfo): number[] {
  const out: number[] = [];
  meta.files.forEach((f, i) => {
    if (f.piecesRoot && f.length > meta.pieceLength && !meta.pieceLayers.has(toHex(f.piecesRoot))) {
      out.push(i);
    }
  });
  return out;
}

/**
 * Adds a file's piece layer (fetched from peers) after checking it against the file's root.
 *
 * @param meta The torrent (its `pieceLayers` gain the layer).
 * @param file Index into `meta.files`.
 * @param layer One 32-byte hash per piece of the file.
 * @returns Whether the layer matched and was added.
 */
export async function addPieceLayer(
  meta: Metainfo,
  file: number,
  layer: Uint8Array,
): Promise<boolean> {
  const f = meta.files[file];
  if (!f?.piecesRoot || f.length <= meta.pieceLength) return false;
  if (!(await verifyPieceLayer(layer, f.piecesRoot, f.length, meta.pieceLength))) return false;
  meta.pieceLayers.set(toHex(f.piecesRoot), layer.slice());
  return true;
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
  if (v.length > MAX_PATH_COMPONENTS) {
    throw new MetainfoError(field, `${v.length} components (limit ${MAX_PATH_COMPONENTS})`);
  }
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
