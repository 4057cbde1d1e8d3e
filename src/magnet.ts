/**
 * Magnet links (BEP 9, BEP 53): `xt=urn:btih:` in hex or base32, BEP 52's `xt=urn:btmh:` (a SHA-256 multihash,
 * `1220` and 64 hex digits), `dn`, `tr`, `ws`, `x.pe`, `so`; and the .torrent made from a fetched info dictionary.
 *
 * @module
 */

import { bytesEqual, concat, fromHex, latin1, sha1, sha256, toHex, utf8 } from "./_bytes.ts";
import { encode } from "./bencode.ts";

/** A parsed magnet link. */
export interface MagnetLink {
  /**
   * The 20-byte info hash used on the wire, by trackers and the DHT: the `btih` hash, or for a link with only a
   * `btmh` hash (a v2-only torrent), the first 20 bytes of the v2 hash.
   */
  infoHash: Uint8Array;
  /** {@linkcode MagnetLink.infoHash} as 40 lower-case hex digits. */
  infoHashHex: string;
  /** The full v2 info hash (SHA-256, 32 bytes) from `xt=urn:btmh:`, when the link has one. */
  infoHashV2?: Uint8Array;
  /** {@linkcode MagnetLink.infoHashV2} as 64 lower-case hex digits. */
  infoHashV2Hex?: string;
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
 * @example A v2 link (BEP 52)
 * ```ts
 * import { parseMagnet } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * const m = parseMagnet("magnet:?xt=urn:btmh:1220" + "cd".repeat(32));
 * assert.equal(m.infoHashV2Hex, "cd".repeat(32));
 * assert.equal(m.infoHashHex, "cd".repeat(20)); // the truncated v2 hash identifies it on the wire
 * ```
 *
 * @param uri The link.
 * @returns Its parts.
 * @throws {MagnetError} When it is not a magnet link, has no BitTorrent info hash (`btih`, or `btmh` with a
 *   SHA-256 multihash), or exceeds the limits.
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
  let infoHashV2: Uint8Array | undefined;
  let otherMultihash: string | undefined;
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
        const mh = /^urn:btmh:(.*)$/i.exec(value);
        if (mh) {
          if (infoHashV2) continue;
          const multihash = mh[1];
          if (!/^1220/i.test(multihash)) {
            otherMultihash ??= multihash.slice(0, 4);
            continue;
          }
          const bytes = multihash.length === 68 ? fromHex(multihash.slice(4)) : undefined;
          if (!bytes) {
            throw new MagnetError("btmh SHA-256 info hash must be 1220 and 64 hex digits");
          }
          infoHashV2 = bytes;
          continue;
        }
        const m = /^urn:btih:(.*)$/i.exec(value);
        if (!m || infoHash) continue;
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
  infoHash ??= infoHashV2?.slice(0, 20);
  if (!infoHash) {
    throw new MagnetError(
      otherMultihash !== undefined
        ? `xt=urn:btmh: multihash ${otherMultihash}… is not SHA-256 (1220…), the only one BitTorrent v2 uses`
        : "no xt=urn:btih: or xt=urn:btmh: info hash",
    );
  }
  return {
    infoHash,
    infoHashHex: toHex(infoHash),
    ...(infoHashV2 ? { infoHashV2, infoHashV2Hex: toHex(infoHashV2) } : {}),
    name,
    trackers,
    webSeeds,
    peers,
    selectOnly,
  };
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
 * Formats a magnet link: `xt=urn:btih:` for a v1 info hash, `xt=urn:btmh:1220…` for a v2 one, both for a hybrid
 * torrent. A v2-only torrent (its `infoHash` is the first 20 bytes of `infoHashV2`, as {@linkcode parseMagnet}
 * and `parseMetainfo` give it) gets only `btmh`.
 *
 * @example Format and parse back
 * ```ts
 * import { formatMagnet, parseMagnet } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * const uri = formatMagnet({ infoHash: new Uint8Array(20).fill(1), name: "x y", trackers: ["http://t/a"] });
 * assert.equal(parseMagnet(uri).name, "x y");
 * const hybrid = formatMagnet({ infoHash: new Uint8Array(20).fill(1), infoHashV2: new Uint8Array(32).fill(2) });
 * assert.equal(hybrid, `magnet:?xt=urn:btih:${"01".repeat(20)}&xt=urn:btmh:1220${"02".repeat(32)}`);
 * ```
 *
 * @param link The info hash(es) and optional name, trackers, web seeds, peers and selection.
 * @returns The `magnet:?xt=…` link, info hashes in hex.
 * @throws {TypeError} When neither info hash is given, or one has the wrong length (20 and 32 bytes).
 */
export function formatMagnet(
  link:
    & Partial<Pick<MagnetLink, "infoHash" | "infoHashV2">>
    & Partial<Omit<MagnetLink, "infoHash" | "infoHashHex" | "infoHashV2" | "infoHashV2Hex">>,
): string {
  const { infoHash, infoHashV2 } = link;
  if (infoHash !== undefined && infoHash.length !== 20) {
    throw new TypeError(
      `Cannot format a magnet link: info hash is ${infoHash.length} bytes, not 20`,
    );
  }
  if (infoHashV2 !== undefined && infoHashV2.length !== 32) {
    throw new TypeError(
      `Cannot format a magnet link: v2 info hash is ${infoHashV2.length} bytes, not 32`,
    );
  }
  if (!infoHash && !infoHashV2) {
    throw new TypeError("Cannot format a magnet link without an info hash");
  }
  const parts: string[] = [];
  const v2Only = infoHashV2 !== undefined &&
    (infoHash === undefined || bytesEqual(infoHash, infoHashV2.subarray(0, 20)));
  if (infoHash && !v2Only) parts.push(`xt=urn:btih:${toHex(infoHash)}`);
  if (infoHashV2) parts.push(`xt=urn:btmh:1220${toHex(infoHashV2)}`);
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
 * Whether an info dictionary fetched for a magnet link is the one the link names: its SHA-256 must be the link's
 * v2 hash when it has one, its SHA-1 the `btih` hash when it has one. A 20-byte hash alone (a truncated v2 hash
 * learnt from a tracker or the DHT) matches either the SHA-1 or the first 20 bytes of the SHA-256.
 *
 * @example Check a v2 info dictionary against a btmh link
 * ```ts
 * import { infoDictMatches, parseMagnet } from "./magnet.ts";
 * import assert from "node:assert/strict";
 *
 * const info = new TextEncoder().encode("d4:name1:xe");
 * const v2 = new Uint8Array(await crypto.subtle.digest("SHA-256", info));
 * const link = parseMagnet("magnet:?xt=urn:btmh:1220" + v2.toHex());
 * assert.equal(await infoDictMatches(info, link), true);
 * assert.equal(await infoDictMatches(new TextEncoder().encode("d4:name1:ye"), link), false);
 * ```
 *
 * @param info The raw bencoded info dictionary.
 * @param link The hashes to check against.
 * @returns Whether every hash the link gives matches.
 */
export async function infoDictMatches(
  info: Uint8Array,
  link: Pick<MagnetLink, "infoHash"> & Partial<Pick<MagnetLink, "infoHashV2">>,
): Promise<boolean> {
  const v2 = link.infoHashV2;
  if (v2) {
    if (!bytesEqual(await sha256(info), v2)) return false;
    // a hybrid link's btih must be the SHA-1 too; a v2-only link's infoHash is the truncated v2 hash
    return bytesEqual(link.infoHash, v2.subarray(0, 20)) ||
      bytesEqual(await sha1(info), link.infoHash);
  }
  if (bytesEqual(await sha1(info), link.infoHash)) return true;
  return bytesEqual((await sha256(info)).subarray(0, 20), link.infoHash);
}

/** Options of {@linkcode torrentFromMetadata}. */
export interface TorrentFromMetadataOptions {
  /**
   * BEP 52 piece layers to include (fetched from peers with hash requests), by the hex of each file's root, as
   * `Metainfo.pieceLayers` holds them. Without them a v2 torrent parses only with `allowMissingPieceLayers`.
   */
  pieceLayers?: ReadonlyMap<string, Uint8Array>;
}

/**
 * Builds .torrent bytes around an info dictionary fetched for a magnet link, keeping its bytes exactly (so the
 * info hashes stay the same) and listing the link's trackers, one tier each; v1, v2 and hybrid info
 * dictionaries alike (check them first with {@linkcode infoDictMatches}).
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
 * @param options Piece layers to include.
 * @returns The .torrent file's bytes.
 */
export function torrentFromMetadata(
  info: Uint8Array,
  trackers: readonly string[] = [],
  options: TorrentFromMetadataOptions = {},
): Uint8Array {
  const head = encode(
    trackers.length > 0 ? { announce: trackers[0], "announce-list": trackers.map((t) => [t]) } : {},
  );
  const parts = [head.subarray(0, head.length - 1), utf8("4:info"), info];
  if (options.pieceLayers) {
    // "piece layers" sorts after "info": appended in order
    const layers: Record<string, Uint8Array> = {};
    for (const [hex, layer] of options.pieceLayers) {
      const root = fromHex(hex);
      if (root?.length === 32) layers[latin1(root)] = layer;
    }
    parts.push(encode({ "piece layers": layers }).subarray(1));
  } else {
    parts.push(utf8("e"));
  }
  return concat(parts);
}
