/**
 * A small in-process HTTP tracker (BEP 3 announce with compact peers per BEP 23 and BEP 7, scrape per BEP 48):
 * enough for the offline demo, private swarms and tests. Not hardened for the open Internet.
 *
 * @module
 */

import { fromLatin1, latin1, toHex } from "../_bytes.ts";
import { encode } from "../bencode.ts";

/** Options for {@linkcode TrackerServer}. */
export interface TrackerServerOptions {
  /**
   * Address to listen on.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * Port; 0 picks a free one.
   * @default {0}
   */
  port?: number;
  /**
   * Announce interval told to clients, seconds.
   * @default {60}
   */
  interval?: number;
  /** Only these info hashes are tracked (all when omitted). */
  allow?: Uint8Array[];
}

interface SwarmPeer {
  host: string;
  port: number;
  left: number;
  seen: number;
}

/** An HTTP tracker served with `Deno.serve`. */
export class TrackerServer implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #swarms = new Map<string, Map<string, SwarmPeer>>();
  readonly #completed = new Map<string, number>();
  readonly #interval: number;
  readonly #allow: Set<string> | undefined;

  /**
   * Creates a {@linkcode TrackerServer}.
   *
   * @param options Where to listen and how to answer.
   */
  constructor(options: TrackerServerOptions = {}) {
    this.#interval = options.interval ?? 60;
    this.#allow = options.allow ? new Set(options.allow.map(toHex)) : undefined;
    this.#server = Deno.serve({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
      onListen() {},
    }, (req, info) => this.#handle(req, info.remoteAddr));
  }

  /** The announce URL, e.g. `http://127.0.0.1:PORT/announce`. */
  get url(): string {
    const { hostname, port } = this.#server.addr;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    return `http://${host}:${port}/announce`;
  }

  /** The peers the tracker knows for an info hash (address and announced port). */
  peers(infoHash: Uint8Array): { host: string; port: number }[] {
    return [...(this.#swarms.get(toHex(infoHash))?.values() ?? [])].map((p) => ({
      host: p.host,
      port: p.port,
    }));
  }

  /** Number of peers the tracker knows for an info hash. */
  peerCount(infoHash: Uint8Array): number {
    return this.#swarms.get(toHex(infoHash))?.size ?? 0;
  }

  #handle(req: Request, remote: Deno.NetAddr): Response {
    const url = new URL(req.url);
    const query = rawQuery(url.search);
    if (url.pathname === "/announce") return this.#announce(query, remote);
    if (url.pathname === "/scrape") return this.#scrape(query);
    return new Response("not found", { status: 404 });
  }

  #announce(q: Map<string, string[]>, remote: Deno.NetAddr): Response {
    const ih = q.get("info_hash")?.[0];
    const port = Number(q.get("port")?.[0]);
    const left = Number(q.get("left")?.[0] ?? 0);
    const event = q.get("event")?.[0];
    if (ih === undefined || ih.length !== 20) return failure("info_hash must be 20 bytes");
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return failure("bad port");
    const hex = toHex(fromLatin1(ih));
    if (this.#allow && !this.#allow.has(hex)) return failure("torrent not tracked here");
    let swarm = this.#swarms.get(hex);
    if (!swarm) this.#swarms.set(hex, swarm = new Map());
    const host = remote.hostname.startsWith("::ffff:") ? remote.hostname.slice(7) : remote.hostname;
    const key = `${host}|${port}`;
    if (event === "stopped") swarm.delete(key);
    else swarm.set(key, { host, port, left, seen: Date.now() });
    if (event === "completed") this.#completed.set(hex, (this.#completed.get(hex) ?? 0) + 1);
    const numwant = Math.min(200, Number(q.get("numwant")?.[0] ?? 50) || 50);
    const v4: number[] = [], v6: number[] = [];
    let complete = 0, incomplete = 0, given = 0;
    for (const [k, p] of swarm) {
      if (p.left === 0) complete++;
      else incomplete++;
      if (k === key || given >= numwant) continue;
      if (packPeer(p, v4, v6)) given++;
    }
    return bencoded({
      interval: this.#interval,
      "min interval": Math.min(this.#interval, 30),
      complete,
      incomplete,
      peers: new Uint8Array(v4),
      peers6: new Uint8Array(v6),
    });
  }

  #scrape(q: Map<string, string[]>): Response {
    const files: Record<string, { complete: number; incomplete: number; downloaded: number }> = {};
    for (const ih of q.get("info_hash") ?? []) {
      if (ih.length !== 20) continue;
      const hex = toHex(fromLatin1(ih));
      const swarm = this.#swarms.get(hex);
      let complete = 0, incomplete = 0;
      for (const p of swarm?.values() ?? []) p.left === 0 ? complete++ : incomplete++;
      files[ih] = { complete, incomplete, downloaded: this.#completed.get(hex) ?? 0 };
    }
    return bencoded({ files });
  }

  /** Stops serving. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  /** Same as {@linkcode TrackerServer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function bencoded(value: Parameters<typeof encode>[0]): Response {
  return new Response(encode(value), { headers: { "content-type": "text/plain" } });
}

function failure(reason: string): Response {
  return bencoded({ "failure reason": reason });
}

/** Parses a query string keeping percent-decoded values as binary strings (one char per byte). */
function rawQuery(search: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const k = decodeBinary(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? "" : decodeBinary(part.slice(eq + 1));
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  }
  return out;
}

function decodeBinary(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && i + 2 < s.length + 0 && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === 0x2b) bytes.push(0x20);
    else bytes.push(c & 0xff);
  }
  return latin1(new Uint8Array(bytes));
}

function packPeer(p: SwarmPeer, v4: number[], v6: number[]): boolean {
  const parts = p.host.split(".");
  if (parts.length === 4 && parts.every((x) => /^\d{1,3}$/.test(x) && Number(x) < 256)) {
    v4.push(...parts.map(Number), p.port >> 8, p.port & 0xff);
    return true;
  }
  const groups = expandV6(p.host);
  if (!groups) return false;
  for (const g of groups) v6.push(g >> 8, g & 0xff);
  v6.push(p.port >> 8, p.port & 0xff);
  return true;
}

function expandV6(host: string): number[] | undefined {
  if (!host.includes(":") || host.includes(".")) return undefined;
  const [head, tail] = host.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined ? (tail ? tail.split(":") : []) : [];
  if (tail === undefined && h.length !== 8) return undefined;
  const fill = 8 - h.length - t.length;
  if (fill < 0) return undefined;
  const all = [...h, ...Array(fill).fill("0"), ...t].map((x) => parseInt(x, 16));
  return all.every((n) => n >= 0 && n <= 0xffff) ? all : undefined;
}
