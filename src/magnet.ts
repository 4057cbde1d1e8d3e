/**
 * Magnet links (BEP 9, BEP 53): `xt=urn:btih:` in hex or base32, `dn`, `tr`, `ws`, `x.pe`, `so`.
 *
 * @module
 */

import { concat, fromHex, toHex, utf8 } from "./_bytes.ts";
import { encode } from "./bencode.ts";

/** A parsed magnet link. */
export interface MagnetLink {
  /** The 20-byte info hash. */
  infoHash: Uint8Array;
  /** The info hash as 40 lower-case hex digits. */
  infoHashHex: string;
  /** Display name (`dn`), as given: sanitise it before using it as a file name, neutralise it before printing. */
  name: string | undefined;
  /** Tracker URLs (`tr`), in order. */
  trackers: string[];
  /** Web seeds (`ws`). */
  webSeeds: string[];
  /** Peer addresses (`x.pe`); IPv6 hosts without brackets. */
  peers: { host: string; port: number }[];
  /** BEP 53 file selection (`so`): zero-based file indexes. */
  selectOnly: number[] | undefined;
}

/**
 * A magnet link that cannot be used.
 *
 * @example Catch a bad link
 * ```ts
 * import { MagnetError, parseMagnet } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseMagnet("magnet:?dn=no-hash"), MagnetError);
 * ```
 */
export class MagnetError extends Error {
  /**
   * Creates a {@linkcode MagnetError}.
   *
   * @param message What is wrong.
   */
  constructor(message: string) {
    super(`Invalid magnet link: ${message}`);
    this.name = "MagnetError";
  }
}

const MAX_PARAMS = 200;
const MAX_LENGTH = 64 * 1024;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * Parses a magnet link.
 *
 * @example Parse a magnet link
 * ```ts
 * import { parseMagnet } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * const m = parseMagnet("magnet:?xt=urn:btih:" + "ab".repeat(20) + "&dn=demo&tr=http%3A%2F%2F127.0.0.1%2Fannounce");
 * assert.equal(m.name, "demo");
 * assert.deepEqual(m.trackers, ["http://127.0.0.1/announce"]);
 * ```
 *
 * @param uri The link.
 * @returns Its parts.
 * @throws {MagnetError} When it is not a magnet link, has no BitTorrent info hash, or exceeds the limits.
 */
export function parseMagnet(uri: string): MagnetLink {
  if (uri.length > MAX_LENGTH) throw new MagnetError(`longer than ${MAX_LENGTH} characters`);
  if (!/^magnet:\?/i.test(uri)) throw new MagnetError('must start with "magnet:?"');
  const params = uri.slice(uri.indexOf("?") + 1).split("&").filter((p) => p.length > 0);
  if (params.length > MAX_PARAMS) throw new MagnetError(`more than ${MAX_PARAMS} parameters`);
  let infoHash: Uint8Array | undefined;
  let name: string | undefined;
  const trackers: string[] = [], webSeeds: string[] = [];
  const peers: { host: string; port: number }[] = [];
  let selectOnly: number[] | undefined;
  let v2Only = false;
  for (const p of params) {
    const eq = p.indexOf("=");
    const key = (eq < 0 ? p : p.slice(0, eq)).toLowerCase().replace(/\.\d+$/, "");
    let value: string;
    try {
      value = decodeURIComponent((eq < 0 ? "" : p.slice(eq + 1)).replace(/\+/g, " "));
    } catch {
      throw new MagnetError(`parameter "${key}" is not valid percent-encoding`);
    }
    switch (key) {
      case "xt": {
        const m = /^urn:btih:(.*)$/i.exec(value);
        if (!m) {
          v2Only ||= /^urn:btmh:/i.test(value); // BEP 52 multihash: not used here
          continue;
        }
        if (infoHash) continue;
        infoHash = parseInfoHash(m[1]);
        break;
      }
      case "dn":
        name = value;
        break;
      case "tr":
        if (value !== "" && !trackers.includes(value)) trackers.push(value);
        break;
      case "ws":
        if (value !== "" && !webSeeds.includes(value)) webSeeds.push(value);
        break;
      case "x.pe": {
        const peer = parsePeer(value);
        if (peer) peers.push(peer);
        break;
      }
      case "so":
        selectOnly = parseSelect(value);
        break;
    }
  }
  if (!infoHash) {
    throw new MagnetError(
      v2Only
        ? "only a v2 info hash (xt=urn:btmh:); a v1 xt=urn:btih: info hash is needed"
        : "no xt=urn:btih: info hash",
    );
  }
  return { infoHash, infoHashHex: toHex(infoHash), name, trackers, webSeeds, peers, selectOnly };
}

function parseInfoHash(text: string): Uint8Array {
  if (text.length === 40) {
    const bytes = fromHex(text);
    if (!bytes) throw new MagnetError("btih hex info hash has non-hex characters");
    return bytes;
  }
  if (text.length === 32) {
    const out = new Uint8Array(20);
    let bits = 0, value = 0, o = 0;
    for (const ch of text.toUpperCase()) {
      const v = BASE32.indexOf(ch);
      if (v < 0) throw new MagnetError("btih base32 info hash has invalid characters");
      value = (value << 5) | v;
      bits += 5;
      if (bits >= 8) {
        out[o++] = (value >> (bits - 8)) & 0xff;
        bits -= 8;
      }
    }
    return out;
  }
  throw new MagnetError(
    `btih info hash must be 40 hex or 32 base32 characters, got ${text.length}`,
  );
}

function parsePeer(text: string): { host: string; port: number } | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([^:\[\]\s]+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1], port } : undefined;
}

/** Highest file index `so` may name (the most files a torrent may have). */
const MAX_FILE_INDEX = 1_000_000;

function parseSelect(text: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^(\d{1,16})(?:-(\d{1,16}))?$/.exec(part.trim());
    if (!m) throw new MagnetError(`so="${text}" is not a list of indexes and ranges`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new MagnetError(`so range ${part} ends before it starts`);
    if (b >= MAX_FILE_INDEX) {
      throw new MagnetError(`so index ${b} is past the limit of ${MAX_FILE_INDEX}`);
    }
    if (b - a > 100_000 || out.size > 100_000) {
      throw new MagnetError(`so range ${part} is too large`);
    }
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/**
 * Formats a magnet link.
 *
 * @example Format and parse back
 * ```ts
 * import { formatMagnet, parseMagnet } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * const uri = formatMagnet({ infoHash: new Uint8Array(20).fill(1), name: "x y", trackers: ["http://t/a"] });
 * assert.equal(parseMagnet(uri).name, "x y");
 * ```
 *
 * @param link The info hash and optional name, trackers, web seeds, peers and selection.
 * @returns The `magnet:?xt=urn:btih:…` link, info hash in hex.
 * @throws {TypeError} When the info hash is not 20 bytes.
 */
export function formatMagnet(
  link: Pick<MagnetLink, "infoHash"> & Partial<Omit<MagnetLink, "infoHash" | "infoHashHex">>,
): string {
  if (link.infoHash.length !== 20) {
    throw new TypeError(
      `Cannot format a magnet link: info hash is ${link.infoHash.length} bytes, not 20`,
    );
  }
  const parts = [`xt=urn:btih:${toHex(link.infoHash)}`];
  if (link.name !== undefined) parts.push(`dn=${encodeURIComponent(link.name)}`);
  for (const t of link.trackers ?? []) parts.push(`tr=${encodeURIComponent(t)}`);
  for (const w of link.webSeeds ?? []) parts.push(`ws=${encodeURIComponent(w)}`);
  for (const p of link.peers ?? []) {
    parts.push(
      `x.pe=${
        encodeURIComponent(p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)
      }`,
    );
  }
  if (link.selectOnly && link.selectOnly.length > 0) parts.push(`so=${link.selectOnly.join(",")}`);
  return `magnet:?${parts.join("&")}`;
}

/**
 * Builds .torrent bytes around an info dictionary fetched for a magnet link, keeping its bytes exactly (so the
 * info hash stays the same) and listing the link's trackers, one tier each.
 *
 * @example Wrap an info dictionary
 * ```ts
 * import { torrentFromMetadata } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * const info = new TextEncoder().encode("d6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae");
 * const bytes = torrentFromMetadata(info, ["http://t/announce"]);
 * assert.match(new TextDecoder().decode(bytes), /^d8:announce17:http:\/\/t\/announce13:announce-listll/);
 * ```
 *
 * @param info The raw bencoded info dictionary.
 * @param trackers Tracker URLs.
 * @returns The .torrent file's bytes.
 */
export function torrentFromMetadata(
  info: Uint8Array,
  trackers: readonly string[] = [],
): Uint8Array {
  const head = encode(
    trackers.length > 0 ? { announce: trackers[0], "announce-list": trackers.map((t) => [t]) } : {},
  );
  return concat([head.subarray(0, head.length - 1), utf8("4:info"), info, utf8("e")]);
}
