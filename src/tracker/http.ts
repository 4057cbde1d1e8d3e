/**
 * HTTP(S) tracker announce and scrape with `fetch` (BEP 3, 7, 23, 48): binary-safe query encoding, compact and
 * dictionary peers, IPv6 peers, a body-size cap that holds after decompression, and a timeout on every request.
 *
 * @module
 */

import { fromUtf8, toHex } from "../_bytes.ts";
import { type BencodeDict, type BencodeValue, decodePrefix } from "../bencode.ts";
import { parseCompactPeers, type PeerAddress } from "./compact.ts";

/** A tracker failed: unreachable, bad response, or a `failure reason`. */
export class TrackerError extends Error {
  /** The tracker's URL. */
  readonly url: string;
  /** The tracker's own `failure reason`, when it gave one. */
  readonly failureReason: string | undefined;
  /**
   * Creates a {@linkcode TrackerError}.
   *
   * @param url The tracker.
   * @param message What went wrong.
   * @param options The tracker's failure reason and the underlying error.
   */
  constructor(
    url: string,
    message: string,
    options: { failureReason?: string; cause?: unknown } = {},
  ) {
    super(`Tracker ${url}: ${message}`, { cause: options.cause });
    this.name = "TrackerError";
    this.url = url;
    this.failureReason = options.failureReason;
  }
}

/** What to tell the tracker. */
export interface AnnounceRequest {
  /** The torrent's info hash. */
  infoHash: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Our listening port. */
  port: number;
  /** Bytes uploaded this session. */
  uploaded: number;
  /** Bytes downloaded this session. */
  downloaded: number;
  /** Bytes still wanted. */
  left: number;
  /** `started` once, `completed` once, `stopped` at the end; none for regular updates. */
  event?: "started" | "completed" | "stopped";
  /** How many peers we want. @default {50} */
  numwant?: number;
  /** A random key that identifies us across IP changes. */
  key?: string;
  /** The tracker id from a previous response. */
  trackerId?: string;
  /** Milliseconds before giving up. @default {15000} */
  timeoutMs?: number;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** Largest response body accepted (after decompression). @default {2097152} */
  maxBodyBytes?: number;
  /**
   * Reach the tracker over this address family only (BEP 7: a client listening on both announces once over
   * each); the system's choice when omitted.
   */
  family?: 4 | 6;
}

/** A tracker's answer to an announce. */
export interface AnnounceResponse {
  /** Seconds until the next regular announce (clamped to 60 s – 2 h). */
  interval: number;
  /** Seconds the tracker wants at least between announces, if it said. */
  minInterval: number | undefined;
  /** Seeds in the swarm. */
  complete: number | undefined;
  /** Leechers in the swarm. */
  incomplete: number | undefined;
  /** Tracker id to send back. */
  trackerId: string | undefined;
  /** The tracker's warning message. */
  warning: string | undefined;
  /** IPv4 peers (and host names from dictionary peers). */
  peers: PeerAddress[];
  /** IPv6 peers. */
  peers6: PeerAddress[];
}

/** Percent-encodes bytes: every byte outside RFC 3986's unreserved set becomes %XX. */
export function encodeBinary(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    out += unreserved
      ? String.fromCharCode(b)
      : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/**
 * Announces to an HTTP(S) tracker.
 *
 * @param url The announce URL.
 * @param req What to tell it.
 * @returns The peers and swarm counts.
 * @throws {TrackerError} On any failure: network, HTTP status, oversize or malformed body, `failure reason`.
 */
export async function announce(url: string, req: AnnounceRequest): Promise<AnnounceResponse> {
  const params = [
    `info_hash=${encodeBinary(req.infoHash)}`,
    `peer_id=${encodeBinary(req.peerId)}`,
    `port=${req.port}`,
    `uploaded=${Math.max(0, Math.floor(req.uploaded))}`,
    `downloaded=${Math.max(0, Math.floor(req.downloaded))}`,
    `left=${Math.max(0, Math.floor(req.left))}`,
    "compact=1",
    "no_peer_id=1",
    `numwant=${req.numwant ?? 50}`,
  ];
  if (req.event) params.push(`event=${req.event}`);
  if (req.key) params.push(`key=${encodeURIComponent(req.key)}`);
  if (req.trackerId) params.push(`trackerid=${encodeURIComponent(req.trackerId)}`);
  const dict = await fetchBencode(url, params.join("&"), req);
  return parseAnnounceResponse(url, dict);
}

/**
 * Reads an announce response dictionary: failure reason, intervals (clamped), counts, compact or dictionary peers
 * (BEP 23), `peers6` (BEP 7), warning and tracker id, each bounded.
 *
 * @param url The tracker (for error messages).
 * @param dict The decoded response.
 * @returns The response.
 * @throws {TrackerError} When the tracker sent a failure reason.
 */
export function parseAnnounceResponse(url: string, dict: BencodeDict): AnnounceResponse {
  const reason = dict["failure reason"];
  if (reason !== undefined) {
    const text = reason instanceof Uint8Array ? printable(fromUtf8(reason), 500) : "failure";
    throw new TrackerError(url, `failure reason: ${text}`, { failureReason: text });
  }
  const interval = num(dict["interval"]);
  const min = num(dict["min interval"]);
  const peers: PeerAddress[] = [];
  const rawPeers = dict["peers"];
  if (rawPeers instanceof Uint8Array) peers.push(...parseCompactPeers(rawPeers, 4));
  else if (Array.isArray(rawPeers)) peers.push(...dictPeers(rawPeers));
  const rawPeers6 = dict["peers6"];
  const peers6 = rawPeers6 instanceof Uint8Array ? parseCompactPeers(rawPeers6, 6) : [];
  const warning = dict["warning message"];
  const trackerId = dict["tracker id"];
  return {
    interval: clamp(interval ?? 1800, 60, 7200),
    minInterval: min === undefined ? undefined : clamp(min, 1, 7200),
    complete: num(dict["complete"]),
    incomplete: num(dict["incomplete"]),
    trackerId: trackerId instanceof Uint8Array ? fromUtf8(trackerId).slice(0, 200) : undefined,
    warning: warning instanceof Uint8Array ? printable(fromUtf8(warning), 500) : undefined,
    peers: peers.slice(0, 1000),
    peers6: peers6.slice(0, 1000),
  };
}

/**
 * The scrape URL of an announce URL (BEP 48): the last path component must start with "announce", which is
 * replaced by "scrape".
 *
 * @param announceUrl The announce URL.
 * @returns The scrape URL, or undefined when the tracker has none.
 */
export function scrapeUrlFor(announceUrl: string): string | undefined {
  let u: URL;
  try {
    u = new URL(announceUrl);
  } catch {
    return undefined;
  }
  const slash = u.pathname.lastIndexOf("/");
  const last = u.pathname.slice(slash + 1);
  if (!last.startsWith("announce")) return undefined;
  u.pathname = u.pathname.slice(0, slash + 1) + "scrape" + last.slice("announce".length);
  return u.toString();
}

/** Swarm counts from a scrape. */
export interface ScrapeEntry {
  /** Seeds. */
  complete: number;
  /** Leechers. */
  incomplete: number;
  /** Completed downloads. */
  downloaded: number;
}

/**
 * Scrapes an HTTP tracker for the given torrents.
 *
 * @param announceUrl The tracker's announce URL.
 * @param infoHashes The torrents.
 * @param options Timeout, signal and body cap.
 * @returns Counts keyed by info hash hex.
 * @throws {TrackerError} When the tracker has no scrape URL or the request fails.
 */
export async function scrape(
  announceUrl: string,
  infoHashes: Uint8Array[],
  options: { timeoutMs?: number; signal?: AbortSignal; maxBodyBytes?: number } = {},
): Promise<Map<string, ScrapeEntry>> {
  const url = scrapeUrlFor(announceUrl);
  if (!url) throw new TrackerError(announceUrl, "has no scrape URL (BEP 48)");
  const dict = await fetchBencode(
    url,
    infoHashes.map((h) => `info_hash=${encodeBinary(h)}`).join("&"),
    options,
  );
  const files = dict["files"];
  const out = new Map<string, ScrapeEntry>();
  if (!files || typeof files !== "object" || files instanceof Uint8Array || Array.isArray(files)) {
    return out;
  }
  for (const [key, v] of Object.entries(files as BencodeDict)) {
    if (
      key.length !== 20 || !v || typeof v !== "object" || v instanceof Uint8Array ||
      Array.isArray(v)
    ) continue;
    const hash = new Uint8Array(20);
    for (let i = 0; i < 20; i++) hash[i] = key.charCodeAt(i);
    const e = v as BencodeDict;
    out.set(toHex(hash), {
      complete: num(e["complete"]) ?? 0,
      incomplete: num(e["incomplete"]) ?? 0,
      downloaded: num(e["downloaded"]) ?? 0,
    });
  }
  return out;
}

async function fetchBencode(
  url: string,
  query: string,
  opts: { timeoutMs?: number; signal?: AbortSignal; maxBodyBytes?: number; family?: 4 | 6 },
): Promise<BencodeDict> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TrackerError(url, "not a valid URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TrackerError(url, `unsupported scheme ${parsed.protocol}`);
  }
  const full = url + (url.includes("?") ? "&" : "?") + query;
  const signals = [AbortSignal.timeout(opts.timeoutMs ?? 15_000)];
  if (opts.signal) signals.push(opts.signal);
  const max = opts.maxBodyBytes ?? 2 * 1024 * 1024;
  // bound to the unspecified address of one family, the connection is made to that family's addresses only
  const client = opts.family
    ? Deno.createHttpClient({ localAddress: opts.family === 4 ? "0.0.0.0" : "::" })
    : undefined;
  try {
    return await fetchBody(url, full, { signal: AbortSignal.any(signals), max, client });
  } finally {
    client?.close();
  }
}

async function fetchBody(
  url: string,
  full: string,
  o: { signal: AbortSignal; max: number; client: Deno.HttpClient | undefined },
): Promise<BencodeDict> {
  const max = o.max;
  let res: Response;
  try {
    res = await fetch(full, {
      signal: o.signal,
      redirect: "follow",
      ...(o.client ? { client: o.client } : {}),
    });
  } catch (err) {
    throw new TrackerError(url, `request failed: ${(err as Error).message}`, { cause: err });
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new TrackerError(url, `HTTP ${res.status} ${res.statusText}`.trim());
  }
  // read at most max bytes of the decoded (decompressed) body
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body?.getReader();
  try {
    while (reader) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw new TrackerError(url, `response larger than ${max} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof TrackerError) throw err;
    throw new TrackerError(url, `reading the response failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const body = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.length;
  }
  return decodeTrackerBody(url, body, max);
}

/**
 * Decodes a tracker response body into its dictionary, within the tracker limits. Bytes after a complete
 * dictionary (a trailing newline, an HTML footer some trackers append) are ignored, as libtorrent does.
 *
 * @example A response with a newline after the dictionary
 * ```ts
 * import { decodeTrackerBody } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * const dict = decodeTrackerBody("http://t/announce", new TextEncoder().encode("d8:intervali900ee\n"));
 * assert.equal(dict["interval"], 900);
 * ```
 *
 * @param url The tracker (for error messages).
 * @param body The (decompressed) body.
 * @param max Largest body accepted.
 * @returns The dictionary.
 * @throws {TrackerError} When the body does not start with a complete bencoded dictionary.
 */
export function decodeTrackerBody(
  url: string,
  body: Uint8Array,
  max = 2 * 1024 * 1024,
): BencodeDict {
  let value: BencodeValue;
  try {
    value = decodePrefix(body, { maxDepth: 16, maxTokens: 100_000, maxLength: max }).value;
  } catch (err) {
    throw new TrackerError(url, `response is not valid bencode: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!value || typeof value !== "object" || value instanceof Uint8Array || Array.isArray(value)) {
    throw new TrackerError(url, "response is not a dictionary");
  }
  return value as BencodeDict;
}

/**
 * Text from a tracker made safe to show: control characters (terminal escapes, newlines, bidi overrides) become
 * `\u{…}` escapes, and it is cut to `max` characters.
 *
 * @example A failure reason that tries to clear the screen
 * ```ts
 * import { printable } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(printable("bad\x1b[2Jtorrent\n", 100), "bad\\u{1b}[2Jtorrent\\u{a}");
 * ```
 *
 * @param text The tracker's text.
 * @param max Most characters kept.
 * @returns The escaped, truncated text.
 */
export function printable(text: string, max: number): string {
  const escaped = text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
  return escaped.length > max ? escaped.slice(0, max) + "…" : escaped;
}

function num(v: BencodeValue | undefined): number | undefined {
  return typeof v === "number" && v >= 0 ? v : undefined;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function dictPeers(list: BencodeValue[]): PeerAddress[] {
  const out: PeerAddress[] = [];
  const seen = new Set<string>();
  for (const p of list.slice(0, 1000)) {
    if (!p || typeof p !== "object" || p instanceof Uint8Array || Array.isArray(p)) continue;
    const d = p as BencodeDict;
    const ip = d["ip"], port = d["port"];
    if (!(ip instanceof Uint8Array) || typeof port !== "number" || port <= 0 || port > 65535) {
      continue;
    }
    const host = fromUtf8(ip);
    if (!/^[0-9a-zA-Z.:\-]{1,253}$/.test(host)) continue;
    const key = `${host}|${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ host, port });
  }
  return out;
}
