/**
 * UDP trackers (BEP 15): connect, announce and scrape over UDP, with connection ids reused for their one-minute
 * lifetime and the spec's retransmission schedule (15 · 2^n seconds, scalable for tests). Same request and
 * response shapes as the HTTP tracker, so {@linkcode TrackerManager} treats both alike.
 *
 * @module
 */

import { parseCompactPeers, type PeerAddress } from "./compact.ts";
import type { AnnounceRequest, AnnounceResponse, ScrapeEntry } from "./http.ts";
import { TrackerError } from "./http.ts";
import { openUdpSocket, type UdpSocket } from "../udp.ts";
import { addressOf, literalFamily } from "./families.ts";
import { fromUtf8, toHex } from "../_bytes.ts";

const PROTOCOL_ID = 0x41727101980n;
const CONNECT = 0, ANNOUNCE = 1, SCRAPE = 2, ERROR = 3;
const EVENTS = { completed: 1, started: 2, stopped: 3 } as const;
const CONNECTION_ID_LIFETIME_MS = 60_000;

/** Options for UDP tracker requests. */
export interface UdpTrackerOptions {
  /** First retransmission delay; doubles each time (BEP 15: 15 s). @default {15000} */
  retryBaseMs?: number;
  /** Most retransmissions before giving up (BEP 15 goes up to 8). @default {3} */
  retries?: number;
  /** The socket to use; a fresh `node:dgram` socket per request by default. */
  socket?: UdpSocket;
  /** Aborts the request. */
  signal?: AbortSignal;
}

interface CachedConnection {
  id: Uint8Array;
  expires: number;
}

const connections = new Map<string, CachedConnection>();

function parseUdpUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TrackerError(url, "not a valid URL");
  }
  if (u.protocol !== "udp:") throw new TrackerError(url, `not a UDP tracker (${u.protocol})`);
  const port = Number(u.port);
  if (!(port > 0 && port < 65536)) throw new TrackerError(url, "UDP tracker URL needs a port");
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port };
}

/** Sends `packet` and waits for a reply with the same transaction id, retransmitting as BEP 15 says. */
async function transact(
  url: string,
  socket: UdpSocket,
  host: string,
  port: number,
  packet: Uint8Array,
  tid: number,
  options: UdpTrackerOptions,
): Promise<Uint8Array> {
  const base = options.retryBaseMs ?? 15_000;
  const retries = options.retries ?? 3;
  const reply = Promise.withResolvers<Uint8Array>();
  // an abort may come while the packet is being sent, before anything awaits the reply: never unhandled
  reply.promise.catch(() => {});
  const unsubscribe = socket.onMessage((d) => {
    if (d.data.length < 8) return;
    const view = new DataView(d.data.buffer, d.data.byteOffset, d.data.byteLength);
    if (view.getUint32(4) === tid) reply.resolve(d.data.slice());
  });
  const onAbort = () => reply.reject(new TrackerError(url, "aborted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (let n = 0; n <= retries; n++) {
      options.signal?.throwIfAborted();
      await socket.send(packet, host, port).catch((err) => {
        throw new TrackerError(url, `send failed: ${(err as Error).message}`, { cause: err });
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<undefined>((
        resolve,
      ) => (timer = setTimeout(() => resolve(undefined), base * 2 ** n)));
      const got = await Promise.race([reply.promise, timeout]).finally(() => clearTimeout(timer));
      if (got) {
        const view = new DataView(got.buffer, got.byteOffset, got.byteLength);
        if (view.getUint32(0) === ERROR) {
          const message = fromUtf8(got.subarray(8)).slice(0, 500);
          throw new TrackerError(url, `failure reason: ${message}`, { failureReason: message });
        }
        return got;
      }
    }
    throw new TrackerError(url, `no answer after ${retries + 1} attempts`);
  } finally {
    unsubscribe();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function header(connectionId: Uint8Array, action: number, tid: number, extra: number): Uint8Array {
  const buf = new Uint8Array(16 + extra);
  buf.set(connectionId, 0);
  const view = new DataView(buf.buffer);
  view.setUint32(8, action);
  view.setUint32(12, tid);
  return buf;
}

function randomTid(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

async function connectionId(
  url: string,
  socket: UdpSocket,
  host: string,
  port: number,
  options: UdpTrackerOptions,
): Promise<Uint8Array> {
  const key = `${host}|${port}`;
  const cached = connections.get(key);
  if (cached && cached.expires > Date.now()) return cached.id;
  const tid = randomTid();
  const packet = new Uint8Array(16);
  const view = new DataView(packet.buffer);
  view.setBigUint64(0, PROTOCOL_ID);
  view.setUint32(8, CONNECT);
  view.setUint32(12, tid);
  const reply = await transact(url, socket, host, port, packet, tid, options);
  if (reply.length < 16 || new DataView(reply.buffer).getUint32(0) !== CONNECT) {
    throw new TrackerError(url, "malformed connect response");
  }
  const id = reply.slice(8, 16);
  connections.set(key, { id, expires: Date.now() + CONNECTION_ID_LIFETIME_MS });
  if (connections.size > 1000) connections.delete(connections.keys().next().value as string);
  return id;
}

async function withSocket<T>(
  family: 4 | 6,
  options: UdpTrackerOptions,
  fn: (socket: UdpSocket) => Promise<T>,
): Promise<T> {
  if (options.socket) return await fn(options.socket);
  const socket = await openUdpSocket({ family });
  try {
    return await fn(socket);
  } finally {
    socket.close();
  }
}

/**
 * Announces to a UDP tracker.
 *
 * @param url `udp://host:port[/…]`.
 * @param req What to tell the tracker (as for HTTP).
 * @param options Retransmission schedule and socket.
 * @returns Peers and swarm counts; peers are IPv6 when the tracker was reached over IPv6.
 * @throws {TrackerError} On an error response, a malformed one, or no answer.
 */
export async function announceUdp(
  url: string,
  req: AnnounceRequest,
  options: UdpTrackerOptions = {},
): Promise<AnnounceResponse> {
  const parsed = parseUdpUrl(url);
  const port = parsed.port;
  const opts = { ...options, ...(req.signal ? { signal: req.signal } : {}) };
  // a family asked for (BEP 7: one announce per family): the tracker's address in that family
  const family = req.family ?? literalFamily(parsed.host) ?? 4;
  const host = req.family ? await addressOf(parsed.host, req.family) : parsed.host;
  if (!host) throw new TrackerError(url, `has no IPv${req.family} address`);
  return await withSocket(family, opts, async (socket) => {
    const id = await connectionId(url, socket, host, port, opts);
    const tid = randomTid();
    const packet = header(id, ANNOUNCE, tid, 82);
    const view = new DataView(packet.buffer);
    packet.set(req.infoHash.subarray(0, 20), 16);
    packet.set(req.peerId.subarray(0, 20), 36);
    view.setBigUint64(56, BigInt(Math.max(0, Math.floor(req.downloaded))));
    view.setBigUint64(64, BigInt(Math.max(0, Math.floor(req.left))));
    view.setBigUint64(72, BigInt(Math.max(0, Math.floor(req.uploaded))));
    view.setUint32(80, req.event ? EVENTS[req.event] : 0);
    view.setUint32(84, 0); // IP: the sender's
    view.setUint32(88, req.key ? parseInt(req.key.slice(0, 8), 16) >>> 0 : 0);
    view.setInt32(92, req.numwant ?? -1);
    view.setUint16(96, req.port);
    const reply = await transact(url, socket, host, port, packet, tid, opts);
    const r = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    if (reply.length < 20 || r.getUint32(0) !== ANNOUNCE) {
      throw new TrackerError(url, "malformed announce response");
    }
    const v6 = family === 6;
    const peers: PeerAddress[] = parseCompactPeers(reply.subarray(20), v6 ? 6 : 4).slice(0, 1000);
    return {
      interval: Math.min(7200, Math.max(60, r.getUint32(8))),
      minInterval: undefined,
      incomplete: r.getUint32(12),
      complete: r.getUint32(16),
      trackerId: undefined,
      warning: undefined,
      peers: v6 ? [] : peers,
      peers6: v6 ? peers : [],
    };
  });
}

/**
 * Scrapes a UDP tracker.
 *
 * @param url `udp://host:port`.
 * @param infoHashes Up to 74 torrents per request.
 * @param options Retransmission schedule and socket.
 * @returns Counts keyed by info hash hex.
 * @throws {TrackerError} On an error response, a malformed one, or no answer.
 */
export async function scrapeUdp(
  url: string,
  infoHashes: Uint8Array[],
  options: UdpTrackerOptions = {},
): Promise<Map<string, ScrapeEntry>> {
  const { host, port } = parseUdpUrl(url);
  const hashes = infoHashes.slice(0, 74);
  return await withSocket(literalFamily(host) ?? 4, options, async (socket) => {
    const id = await connectionId(url, socket, host, port, options);
    const tid = randomTid();
    const packet = header(id, SCRAPE, tid, 20 * hashes.length);
    hashes.forEach((h, i) => packet.set(h.subarray(0, 20), 16 + 20 * i));
    const reply = await transact(url, socket, host, port, packet, tid, options);
    const r = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    if (r.getUint32(0) !== SCRAPE) throw new TrackerError(url, "malformed scrape response");
    const out = new Map<string, ScrapeEntry>();
    hashes.forEach((h, i) => {
      const off = 8 + 12 * i;
      if (off + 12 > reply.length) return;
      out.set(toHex(h), {
        complete: r.getUint32(off),
        downloaded: r.getUint32(off + 4),
        incomplete: r.getUint32(off + 8),
      });
    });
    return out;
  });
}

/** Forgets cached connection ids (tests). */
export function clearUdpConnections(): void {
  connections.clear();
}
