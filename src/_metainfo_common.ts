// What metainfo.ts (v1, the whole torrent) and metainfo_v2.ts (BEP 52 file trees, piece layers, hybrids) share:
// the error class and the readers of untrusted bencode values. Private: metainfo.ts re-exports MetainfoError.

import { fromUtf8, fromUtf8Strict } from "./_bytes.ts";
import { printable } from "./_paths.ts";
import type { BencodeDict, BencodeValue } from "./bencode.ts";

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

/** Largest total size of a torrent. */
export const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

/** Most path components of one file (v1 `path`, depth of a v2 `file tree`). */
export const MAX_PATH_COMPONENTS = 64;

export function isDict(v: BencodeValue | undefined): v is BencodeDict {
  return v !== undefined && typeof v === "object" && !(v instanceof Uint8Array) &&
    !Array.isArray(v);
}

/** A non-negative integer of at most 2^53. */
export function integer(v: BencodeValue | undefined, field: string): number {
  if (v === undefined) throw new MetainfoError(field, "missing");
  if (typeof v === "bigint") throw new MetainfoError(field, `${v} is too large (limit 2^53)`);
  if (typeof v !== "number") throw new MetainfoError(field, "not an integer");
  if (v < 0) throw new MetainfoError(field, `must not be negative, got ${v}`);
  return v;
}

/** A byte string as text: UTF-8 when it is valid, otherwise decoded leniently. */
export function text(v: BencodeValue | undefined): string | undefined {
  if (!(v instanceof Uint8Array)) return undefined;
  return fromUtf8Strict(v) ?? fromUtf8(v);
}

/** A `*.utf-8` field: used only when it is valid UTF-8. */
export function utf8Text(v: BencodeValue | undefined): string | undefined {
  return v instanceof Uint8Array ? fromUtf8Strict(v) : undefined;
}

/** A BEP 47 `attr` string ("" when absent or not a string). */
export function attributes(v: BencodeValue | undefined): string {
  return v instanceof Uint8Array && v.length <= 64 ? fromUtf8(v) : "";
}

/** A path for an error message: control characters neutralised, at most 200 characters. */
export function shown(path: readonly string[]): string {
  const s = printable(path.join("/"));
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

/**
 * A BEP 47 `symlink path`: its components as text, or undefined when it is absent, not a list of 1 to 64 byte
 * strings, or holds a component that would climb out of the torrent ("..") or is empty.
 */
export function symlinkPath(v: BencodeValue | undefined): string[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_PATH_COMPONENTS) return undefined;
  const out: string[] = [];
  for (const c of v) {
    const s = text(c);
    if (s === undefined || s === "" || s === "..") return undefined;
    out.push(s);
  }
  return out;
}
