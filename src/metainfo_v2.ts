/**
 * BEP 52 metainfo: `meta version`, the `file tree`, `piece layers`, and the consistency of hybrid torrents (a v1
 * file list with BEP 47 padding files beside a v2 file tree). {@linkcode parseMetainfo} uses these; the file
 * tree is untrusted like the rest of a torrent: depth, file count and every length are bounded, `..` is refused,
 * and piece layers are checked against their roots before they are kept.
 *
 * @module
 */

import { fromLatin1, latin1, toHex } from "./_bytes.ts";
import {
  attributes,
  integer,
  isDict,
  MAX_PATH_COMPONENTS,
  MetainfoError,
  shown,
  symlinkPath,
  text,
} from "./_metainfo_common.ts";
import type { BencodeDict, BencodeValue } from "./bencode.ts";
import { HASH_SIZE, verifyPieceLayer } from "./storage/merkle.ts";

/** The smallest piece length of a v2 torrent (one merkle block). */
export const MIN_V2_PIECE_LENGTH = 16384;

/** A file of a v2 `file tree`, in tree order. */
export interface TreeFile {
  /** Path components as decoded (not yet sanitised), relative to the torrent's folder. */
  raw: string[];
  /** Size in bytes. */
  length: number;
  /** The merkle root, 32 bytes; undefined for an empty file. */
  piecesRoot: Uint8Array | undefined;
  /** BEP 47 attributes ("" when none). */
  attr: string;
  /** The `symlink path` as decoded, when valid. */
  symlink: string[] | undefined;
  /** The field naming this file in errors. */
  field: string;
}

/** A file of a v1 `files` list (or the single file), as {@linkcode checkHybrid} compares it. */
export interface ListFile {
  /** Path components as decoded, relative to the torrent's folder (the name, for a single-file torrent). */
  raw: string[];
  /** Size in bytes. */
  length: number;
  /** Offset in the concatenated data. */
  offset: number;
  /** A BEP 47 padding file. */
  padding: boolean;
  /** The field naming this file in errors. */
  field: string;
}

/**
 * The torrent's `meta version`: 1 when absent (BEP 3), 2 for BEP 52. Checked before anything else, as BEP 52
 * asks, so that a newer format is reported as such rather than as a broken torrent.
 *
 * @param info The info dictionary.
 * @returns 1 or 2.
 * @throws {MetainfoError} For any other value.
 */
export function metaVersion(info: BencodeDict): 1 | 2 {
  const v = info["meta version"];
  if (v === undefined) return 1;
  if (v === 2) return 2;
  if (typeof v === "number" || typeof v === "bigint") {
    throw new MetainfoError(
      "info.meta version",
      `version ${v} is not supported: this client reads v1 torrents (BEP 3) and meta version 2 (BEP 52)`,
    );
  }
  throw new MetainfoError("info.meta version", "not an integer");
}

/**
 * Reads a `file tree` into its files, depth first in key order (the order of the pieces).
 *
 * @param value The `file tree` value.
 * @param maxFiles Most files accepted.
 * @returns The files (empty files included).
 * @throws {MetainfoError} When the tree is malformed, too deep, too large, or climbs out with "..".
 */
export function readFileTree(value: BencodeValue | undefined, maxFiles: number): TreeFile[] {
  const field = "info.file tree";
  if (value === undefined) throw new MetainfoError(field, "missing (meta version 2 needs one)");
  const out: TreeFile[] = [];
  const walk = (node: BencodeValue, path: string[]): void => {
    const here = path.length === 0 ? field : `${field}/${shown(path)}`;
    if (!isDict(node)) throw new MetainfoError(here, "not a dictionary");
    const keys = Object.keys(node);
    if (keys.length === 0) {
      throw new MetainfoError(here, path.length === 0 ? "empty" : "an empty directory");
    }
    if (node[""] !== undefined) {
      if (path.length === 0) {
        throw new MetainfoError(field, "the root is a file entry; it must be a directory");
      }
      if (keys.length !== 1) {
        throw new MetainfoError(here, 'a file entry ("") must not have sibling entries');
      }
      if (out.length >= maxFiles) {
        throw new MetainfoError(field, `more files than the limit of ${maxFiles}`);
      }
      out.push(readFile(node[""], path, here));
      return;
    }
    if (path.length >= MAX_PATH_COMPONENTS) {
      throw new MetainfoError(here, `nested deeper than ${MAX_PATH_COMPONENTS} directories`);
    }
    keys.sort(); // binary strings: code-unit order is byte order, the order of the pieces
    for (const key of keys) {
      const name = text(fromLatin1(key))!;
      if (name === "..") {
        throw new MetainfoError(
          `${here}/..`,
          'path component ".." would leave the download directory',
        );
      }
      walk(node[key], [...path, name]);
    }
  };
  walk(value, []);
  return out;
}

function readFile(entry: BencodeValue, path: string[], here: string): TreeFile {
  if (!isDict(entry)) throw new MetainfoError(here, "file entry is not a dictionary");
  const length = integer(entry["length"], `${here}.length`);
  let piecesRoot: Uint8Array | undefined;
  if (length > 0) {
    const root = entry["pieces root"];
    if (!(root instanceof Uint8Array)) {
      throw new MetainfoError(
        `${here}.pieces root`,
        root === undefined ? "missing" : "not a byte string",
      );
    }
    if (root.length !== HASH_SIZE) {
      throw new MetainfoError(`${here}.pieces root`, `${root.length} bytes, expected 32`);
    }
    piecesRoot = root.slice();
  }
  return {
    raw: path,
    length,
    piecesRoot,
    attr: attributes(entry["attr"]),
    symlink: symlinkPath(entry["symlink path"]),
    field: here,
  };
}

/**
 * Reads the `piece layers` for the files of a tree: one layer per file larger than a piece, 32 bytes per piece of
 * that file, whose merkle root must be the file's `pieces root`. Entries for other roots are ignored.
 *
 * @param value The top-level `piece layers` value.
 * @param files The tree's files.
 * @param pieceLength The piece length.
 * @param allowMissing Accept missing layers (a magnet link's info dictionary: they come from peers later).
 * @returns Layers by hex root (each a copy).
 * @throws {MetainfoError} When a layer is missing (unless allowed), has the wrong size or the wrong hashes.
 */
export async function readPieceLayers(
  value: BencodeValue | undefined,
  files: readonly TreeFile[],
  pieceLength: number,
  allowMissing: boolean,
): Promise<Map<string, Uint8Array>> {
  const field = "piece layers";
  if (value !== undefined && !isDict(value)) throw new MetainfoError(field, "not a dictionary");
  const dict: BencodeDict = value ?? {};
  const out = new Map<string, Uint8Array>();
  for (const f of files) {
    if (!f.piecesRoot || f.length <= pieceLength) continue;
    const key = toHex(f.piecesRoot);
    if (out.has(key)) continue; // identical files share a root and a layer
    const layer = dict[latin1(f.piecesRoot)];
    if (layer === undefined) {
      if (allowMissing) continue;
      throw new MetainfoError(
        field,
        value === undefined
          ? `missing: ${f.field} is larger than one piece and needs a layer`
          : `no layer for ${f.field}`,
      );
    }
    if (!(layer instanceof Uint8Array)) {
      throw new MetainfoError(field, `the layer of ${f.field} is not a byte string`);
    }
    const pieces = Math.ceil(f.length / pieceLength);
    if (layer.length !== pieces * HASH_SIZE) {
      throw new MetainfoError(
        field,
        `the layer of ${f.field} has ${layer.length} bytes, expected ${
          pieces * HASH_SIZE
        } (32 for each of its ${pieces} pieces)`,
      );
    }
    if (!(await verifyPieceLayer(layer, f.piecesRoot, f.length, pieceLength))) {
      throw new MetainfoError(field, `the layer of ${f.field} does not match its pieces root`);
    }
    out.set(key, layer.slice());
  }
  return out;
}

/**
 * Checks that a hybrid torrent's v1 file list describes the same data as its v2 file tree: the same files (padding
 * files aside) in the same order with the same lengths, each non-empty file starting at the piece where the v2
 * layout puts it, and the same number of pieces.
 *
 * @param list The v1 files, padding files included, with their offsets.
 * @param tree The v2 files.
 * @param pieceLength The piece length.
 * @param pieceCount Pieces of the v1 `pieces` string.
 * @throws {MetainfoError} Naming the first difference.
 */
export function checkHybrid(
  list: readonly ListFile[],
  tree: readonly TreeFile[],
  pieceLength: number,
  pieceCount: number,
): void {
  const why = "(a hybrid torrent's v1 file list and v2 file tree must describe the same files)";
  let j = 0, piece = 0;
  for (const f of list) {
    if (f.padding) continue;
    const t = tree[j++];
    if (!t) throw new MetainfoError(f.field, `"${shown(f.raw)}" is not in the v2 file tree ${why}`);
    if (!samePath(f.raw, t.raw)) {
      throw new MetainfoError(
        `${f.field}.path`,
        `"${shown(f.raw)}" where the v2 file tree has "${shown(t.raw)}" ${why}`,
      );
    }
    if (f.length !== t.length) {
      throw new MetainfoError(
        `${f.field}.length`,
        `${f.length} bytes where the v2 file tree has ${t.length} for "${shown(t.raw)}" ${why}`,
      );
    }
    if (f.length === 0) continue;
    if (f.offset !== piece * pieceLength) {
      throw new MetainfoError(
        f.field,
        `"${shown(f.raw)}" starts at byte ${f.offset} where the v2 layout starts it at byte ${
          piece * pieceLength
        } (padding files are missing or have the wrong length) ${why}`,
      );
    }
    piece += Math.ceil(f.length / pieceLength);
  }
  if (j < tree.length) {
    throw new MetainfoError(tree[j].field, `not in the v1 file list ${why}`);
  }
  if (piece !== pieceCount) {
    throw new MetainfoError(
      "info.pieces",
      `${pieceCount} v1 pieces where the v2 file tree has ${piece} ${why}`,
    );
  }
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
