// HTTP byte ranges (RFC 9110 §14): parsing a `Range` header against a representation's length, and the
// entity-tag comparisons `If-Range`, `If-None-Match` and `If-Match` need. Private to src/http/.

/** A satisfiable byte range: `start` inclusive, `end` exclusive, `start < end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What a `Range` header asks of a representation of `length` bytes:
 * - `undefined`: no header, another unit, or a syntax error — RFC 9110 says to ignore it (serve 200);
 * - `"unsatisfiable"`: well formed, but no range overlaps the representation (serve 416);
 * - a {@linkcode ByteRange}: serve 206. Several satisfiable ranges are coalesced into the one range from the
 *   smallest first byte to the largest last byte (RFC 9110 §14.2 lets a server coalesce ranges, gaps included),
 *   so every byte asked for is sent in a single part and no `multipart/byteranges` body is ever built.
 */
export type RangeRequest = ByteRange | "unsatisfiable" | undefined;

/** More range specs than this in one header: ignored as a whole (RFC 9110 §14.2 allows refusing many). */
const MAX_RANGE_SPECS = 100;
/** Longest header looked at; a real one is a few dozen bytes. */
const MAX_RANGE_HEADER = 4096;
const DIGITS = /^[0-9]+$/;

/**
 * Parses a `Range` header value (`bytes=0-99`, `bytes=1000-`, `bytes=-500`, comma-separated lists).
 *
 * @param header The header value, or `null` when absent.
 * @param length The representation's length in bytes.
 * @returns The range to serve, `"unsatisfiable"`, or `undefined` to ignore the header.
 */
export function parseRange(header: string | null, length: number): RangeRequest {
  if (header === null || header.length > MAX_RANGE_HEADER) return undefined;
  const eq = header.indexOf("=");
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== "bytes") return undefined;
  const specs = header.slice(eq + 1).split(",");
  if (specs.length > MAX_RANGE_SPECS) return undefined;
  let start = Infinity, end = -Infinity, any = false;
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === "") continue; // "bytes=0-1,,2-3": empty list elements are allowed (RFC 9110 §5.6.1)
    const dash = spec.indexOf("-");
    if (dash < 0) return undefined;
    const first = spec.slice(0, dash).trim(), last = spec.slice(dash + 1).trim();
    let s: number, e: number; // e exclusive
    if (first === "") {
      // suffix: the last N bytes
      if (!DIGITS.test(last)) return undefined;
      const n = Number(last);
      if (n === 0) {
        any = true; // well formed, never satisfiable
        continue;
      }
      s = Math.max(0, length - n);
      e = length;
    } else {
      if (!DIGITS.test(first) || (last !== "" && !DIGITS.test(last))) return undefined;
      s = Number(first);
      const l = last === "" ? Infinity : Number(last);
      if (l < s) return undefined; // "5-2" is invalid syntax, so the whole header is ignored
      e = Math.min(length, l + 1);
    }
    any = true;
    if (s >= length) continue; // this one is unsatisfiable; others may not be
    if (s < start) start = s;
    if (e > end) end = e;
  }
  if (!any) return undefined;
  return start < end ? { start, end } : "unsatisfiable";
}

/**
 * Whether an `If-None-Match` value matches `etag` (weak comparison, `*` matches anything), per RFC 9110 §13.1.2.
 *
 * @param header The header value.
 * @param etag Our entity tag, quoted (`"…"`).
 */
export function noneMatchHits(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  const ours = opaque(etag);
  return tags(header).some((t) => opaque(t) === ours);
}

/**
 * Whether an `If-Match` value matches `etag` (strong comparison, `*` matches an existing representation).
 *
 * @param header The header value.
 * @param etag Our entity tag, quoted.
 */
export function matchHits(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  return tags(header).some((t) => !t.startsWith("W/") && t === etag);
}

/**
 * Whether an `If-Range` value lets the `Range` header apply (RFC 9110 §13.1.5): only an exact strong match of
 * our entity tag does. A date never matches: we send no `Last-Modified`, so a client cannot hold a valid one.
 *
 * @param header The header value.
 * @param etag Our entity tag, quoted.
 */
export function ifRangeHits(header: string, etag: string): boolean {
  return header.trim() === etag;
}

/** The entity tags of a comma-separated list (tags may not contain commas: `"` etagc* `"`). */
function tags(header: string): string[] {
  return header.split(",").map((t) => t.trim()).filter((t) => t !== "");
}

/** A tag without its weakness indicator. */
function opaque(tag: string): string {
  return tag.startsWith("W/") ? tag.slice(2) : tag;
}
