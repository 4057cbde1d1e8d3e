/**
 * HTTP seeding, Hoffman style (BEP 17 `httpseeds`): a script on a web server that serves pieces by info hash and
 * piece number, and that answers "503, come back in N seconds" when it is busy.
 *
 * This file holds what is particular to BEP 17 (the request URL, the retry body); the requests themselves, the
 * retries and the bounds are {@linkcode WebSeed}'s, created with `kind: "httpseeds"`.
 *
 * @module
 */

import { encodeBinary } from "../tracker/http.ts";

/**
 * The URL of a BEP 17 request: `<url>?info_hash=<20 bytes, percent-encoded>&piece=<n>`, plus
 * `&ranges=<start>-<end>,…` (inclusive byte offsets inside the piece) when only parts of the piece are wanted.
 * A URL that already has a query gets the parameters appended with `&`.
 *
 * @example The spec's example request
 * ```ts
 * import { httpSeedUrl } from "./httpseed.ts";
 * import assert from "node:assert/strict";
 *
 * const hash = new Uint8Array([
 *   0x9c, 0xd9, 0x69, 0x8a, 0xf5, 0x55, 0x75, 0x1a, 0x91, 0x86,
 *   0xae, 0x06, 0x6c, 0x57, 0xea, 0x21, 0x57, 0x23, 0x35, 0xe0,
 * ]);
 * assert.equal(
 *   httpSeedUrl("http://www.whatever.com/seed.php", hash, 8, [[49152, 131071], [180224, 262143]]),
 *   "http://www.whatever.com/seed.php?info_hash=%9C%D9i%8A%F5Uu%1A%91%86%AE%06lW%EA%21W%235%E0" +
 *     "&piece=8&ranges=49152-131071,180224-262143",
 * );
 * ```
 *
 * @param base The seed's URL from the torrent.
 * @param infoHash The torrent's 20-byte info hash.
 * @param piece Piece index.
 * @param ranges Inclusive byte ranges inside the piece; the whole piece when omitted.
 * @returns The request URL.
 */
export function httpSeedUrl(
  base: string,
  infoHash: Uint8Array,
  piece: number,
  ranges?: readonly (readonly [number, number])[],
): string {
  const hashIndex = base.indexOf("#");
  const url = hashIndex >= 0 ? base.slice(0, hashIndex) : base;
  const sep = !url.includes("?") ? "?" : url.endsWith("?") || url.endsWith("&") ? "" : "&";
  let out = `${url}${sep}info_hash=${encodeBinary(infoHash)}&piece=${piece}`;
  if (ranges && ranges.length > 0) {
    out += `&ranges=${ranges.map(([a, b]) => `${a}-${b}`).join(",")}`;
  }
  return out;
}

/** Longest 503 body read for its number of seconds. */
export const MAX_RETRY_BODY = 64;

/**
 * Reads the body of a BEP 17 "503 Service Temporarily Unavailable": an ASCII integer, the seconds to wait before
 * asking again (surrounding white space allowed).
 *
 * @example
 * ```ts
 * import { parseRetryBody } from "./httpseed.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseRetryBody(new TextEncoder().encode("30\n")), 30);
 * assert.equal(parseRetryBody(new TextEncoder().encode("<html>busy</html>")), undefined);
 * ```
 *
 * @param body The body's first bytes (at most {@linkcode MAX_RETRY_BODY} are looked at).
 * @returns Seconds, or undefined when the body is not a number.
 */
export function parseRetryBody(body: Uint8Array): number | undefined {
  const text = new TextDecoder().decode(body.subarray(0, MAX_RETRY_BODY));
  const m = /^\s*(\d{1,9})\s*$/.exec(text);
  return m ? Number(m[1]) : undefined;
}
