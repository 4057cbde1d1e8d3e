/**
 * A DHT node (BEP 5; IPv6 per BEP 32; read-only per BEP 43): KRPC over a {@linkcode UdpSocket}, a k-bucket
 * routing table, the four queries as client and server, rotating tokens, iterative lookups with bounded
 * parallelism, a peer store with caps and expiry, rate limits on incoming queries, bucket refresh and a state that
 * can be saved and restored.
 *
 * @example A node that finds peers for an info hash
 * ```ts ignore
 * import { Dht } from "./dht.ts";
 *
 * await using dht = await Dht.open({ port: 6881 });
 * const peers = await dht.lookup(infoHash, { announcePort: 6881 });
 * ```
 *
 * @module
 */

import { isLoopback } from "../_address.ts";
import { concat, latin1, randomBytes, sha1, toHex, utf8 } from "../_bytes.ts";
import type { BencodeDict, BencodeInput } from "../bencode.ts";
import { ipv4Bytes, ipv6Bytes, parseCompactPeers, type PeerAddress } from "../tracker/compact.ts";
import { openUdpSocket, type UdpSocket } from "../udp.ts";
import {
  decodeKrpc,
  encodeCompactNodes,
  encodeError,
  encodeQuery,
  encodeResponse,
  KrpcErrorCode,
  type KrpcMessage,
  MAX_KRPC_PACKET,
  MAX_TOKEN_LENGTH,
  type NodeContact,
  parseCompactNodes,
  transactionId,
  transactionKey,
} from "./krpc.ts";
import { compareDistance, K, randomIdInBucket, RoutingTable } from "./routing_table.ts";

/** The public routers used to join the Internet's DHT when no bootstrap nodes are given. */
export const DEFAULT_BOOTSTRAP: readonly string[] = [
  "router.bittorrent.com:6881",
  "router.utorrent.com:6881",
  "dht.transmissionbt.com:6881",
  "dht.libtorrent.org:25401",
];

/** A DHT node's saved state: its id and the nodes it knew. */
export interface DhtState {
  /** Our node id, 40 hex digits. */
  id: string;
  /** Known nodes. */
  nodes: { host: string; port: number; id?: string }[];
}

/** Options for {@linkcode Dht}. */
export interface DhtOptions {
  /** UDP port; 0 = any free port. @default {0} */
  port?: number;
  /** Local address. @default {"0.0.0.0" or "::"} */
  host?: string;
  /** Address family of the node (one node per family, as BEP 32 describes). @default {4} */
  family?: 4 | 6;
  /** A socket to use instead of opening one (it is closed with the node). */
  socket?: UdpSocket;
  /** Our node id; from `state`, or random. */
  nodeId?: Uint8Array;
  /** Nodes to join through, as "host:port" (IPv6 as "[::1]:6881"). @default {DEFAULT_BOOTSTRAP} */
  bootstrap?: readonly string[];
  /** A saved state ({@linkcode Dht.state}) to restart from: same id, its nodes tried first. */
  state?: DhtState;
  /** Read-only (BEP 43): make queries but answer none, and ask others not to add us to their tables. */
  readOnly?: boolean;
  /**
   * Allow several nodes with the same IP in the routing table. By default only loopback addresses may repeat,
   * so a DHT of many nodes on 127.0.0.1 works while one host on the Internet cannot fill a table.
   */
  allowSameIp?: boolean;
  /** Milliseconds to wait for an answer. @default {2000} */
  queryTimeoutMs?: number;
  /** Parallel queries in a lookup. @default {4} */
  alpha?: number;
  /** Incoming queries per second accepted from one address (burst twice that). @default {20} */
  maxQueriesPerSecondPerAddress?: number;
  /** Incoming queries per second accepted in all. @default {1000} */
  maxQueriesPerSecond?: number;
  /** Most torrents whose peers we store for others. @default {2000} */
  maxTorrents?: number;
  /** Most peers stored per torrent. @default {500} */
  maxPeersPerTorrent?: number;
  /** Milliseconds between maintenance rounds (refresh, pings, expiry). @default {60000} */
  maintenanceMs?: number;
  /** The clock. @default {Date.now} */
  now?: () => number;
}

/** Options for {@linkcode Dht.lookup}. */
export interface LookupOptions {
  /** After the lookup, announce that we take part on this TCP port to the closest nodes. */
  announcePort?: number;
  /** Announce with `implied_port` (the nodes take our UDP source port, for NATs). @default {false} */
  impliedPort?: boolean;
  /** Called with peers as they are found (each peer once per lookup). */
  onPeers?: (peers: PeerAddress[]) => void;
  /** Most queries sent. @default {200} */
  maxQueries?: number;
  /** Stops the lookup early. */
  signal?: AbortSignal;
}

/** Counters of a {@linkcode Dht}. */
export interface DhtStats {
  /** Nodes in the routing table. */
  nodes: number;
  /** Of which good. */
  good: number;
  /** Buckets. */
  buckets: number;
  /** Torrents we store peers for. */
  torrents: number;
  /** Peers stored for others. */
  storedPeers: number;
  /** Queries we received and answered. */
  queriesIn: number;
  /** Queries we sent. */
  queriesOut: number;
  /** Answers we received. */
  responsesIn: number;
  /** Our queries that went unanswered. */
  timeouts: number;
  /** Incoming packets dropped (malformed, rate-limited, unexpected). */
  dropped: number;
}

interface Pending {
  host: string;
  port: number;
  checkSource: boolean;
  resolve: (m: KrpcMessage | undefined) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Candidate {
  id?: Uint8Array;
  host: string;
  port: number;
  state: "new" | "asking" | "done" | "failed";
  token?: Uint8Array;
}

interface Stored {
  peers: Map<string, { host: string; port: number; expires: number }>;
}

const TOKEN_ROTATE_MS = 5 * 60_000;
const PEER_TTL_MS = 30 * 60_000;
const MAX_LOOKUP_CANDIDATES = 256;
const MAX_LOOKUP_PEERS = 2000;
const MAX_VALUES_SENT = 50;
const STATE_NODES = 200;

/** True for 127.0.0.0/8 and ::1 (and their IPv4-mapped forms). */
export { isLoopback };

/**
 * Parses "host:port" or "[v6]:port".
 *
 * @param text The address.
 * @returns The address, or undefined when malformed.
 */
export function parseHostPort(text: string): PeerAddress | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\s\[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!(port > 0 && port < 65536)) return undefined;
  return { host: m[1], port };
}

/** A DHT node. Create with {@linkcode Dht.open} (or `new Dht()` then {@linkcode Dht.start}). */
export class Dht implements AsyncDisposable {
  /** Our node id. */
  readonly id: Uint8Array;
  /** The routing table. */
  readonly table: RoutingTable;
  /** Address family. */
  readonly family: 4 | 6;
  readonly #o: DhtOptions;
  readonly #now: () => number;
  readonly #bootstrap: PeerAddress[];
  #socket: UdpSocket | undefined;
  #unlisten: (() => void) | undefined;
  readonly #pending = new Map<string, Pending>();
  #nextTid = Math.floor(Math.random() * 65536);
  #secret = randomBytes(16);
  #previousSecret = randomBytes(16);
  #secretAt = 0;
  readonly #store = new Map<string, Stored>();
  readonly #rate = new Map<string, { tokens: number; at: number }>();
  #global = { tokens: 0, at: 0 };
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  readonly #pinging = new Set<string>();
  readonly #lookups = new Set<AbortController>();
  readonly #stats: Omit<DhtStats, "nodes" | "good" | "buckets" | "torrents" | "storedPeers"> = {
    queriesIn: 0,
    queriesOut: 0,
    responsesIn: 0,
    timeouts: 0,
    dropped: 0,
  };
  /** Resolves once the first lookup of our own id (joining the DHT) has finished. */
  readonly bootstrapped: Promise<void>;
  readonly #bootstrapped = Promise.withResolvers<void>();

  /**
   * Creates a node; {@linkcode Dht.start} binds it.
   *
   * @param options Port, bootstrap nodes, saved state and limits.
   */
  constructor(options: DhtOptions = {}) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.family = options.family ?? 4;
    const fromState = options.state && /^[0-9a-f]{40}$/.test(options.state.id)
      ? Uint8Array.fromHex(options.state.id)
      : undefined;
    this.id = options.nodeId ?? fromState ?? randomBytes(20);
    if (this.id.length !== 20) throw new TypeError("nodeId must be 20 bytes");
    const same = options.allowSameIp;
    this.table = new RoutingTable(this.id, {
      allowSameIp: same === undefined ? isLoopback : same,
      now: this.#now,
    });
    this.#bootstrap = [];
    for (const b of options.bootstrap ?? DEFAULT_BOOTSTRAP) {
      const a = parseHostPort(b);
      if (!a) throw new TypeError(`bootstrap node "${b}" is not HOST:PORT (IPv6 as [::1]:6881)`);
      this.#bootstrap.push(a);
    }
    this.bootstrapped = this.#bootstrapped.promise;
    this.bootstrapped.catch(() => {});
  }

  /**
   * Creates, binds and starts joining the DHT.
   *
   * @param options See {@linkcode DhtOptions}.
   * @returns The running node (joining continues in the background; see {@linkcode Dht.bootstrapped}).
   */
  static async open(options: DhtOptions = {}): Promise<Dht> {
    const dht = new Dht(options);
    await dht.start();
    return dht;
  }

  /** The UDP port (0 before start). */
  get port(): number {
    return this.#socket?.port ?? 0;
  }

  /** Binds the socket, starts maintenance and joins the DHT through saved and bootstrap nodes. */
  async start(): Promise<void> {
    if (this.#socket) return;
    this.#socket = this.#o.socket ?? await openUdpSocket({
      family: this.family,
      ...(this.#o.host ? { host: this.#o.host } : {}),
      port: this.#o.port ?? 0,
    });
    this.#unlisten = this.#socket.onMessage((d) => this.#onPacket(d.data, d.host, d.port));
    this.#secretAt = this.#now();
    this.#timer = setInterval(() => this.#maintain(), this.#o.maintenanceMs ?? 60_000);
    const saved = (this.#o.state?.nodes ?? []).slice(0, STATE_NODES);
    void this.#join(saved).finally(() => this.#bootstrapped.resolve());
  }

  async #join(saved: PeerAddress[]): Promise<void> {
    // saved nodes and bootstrap nodes seed a lookup of our own id, which fills the buckets near us
    await this.#iterate(this.id, "find_node", { extra: [...saved, ...this.#bootstrap] });
  }

  /** Counters and table size. */
  stats(): DhtStats {
    const all = this.table.all();
    let storedPeers = 0;
    for (const s of this.#store.values()) storedPeers += s.peers.size;
    return {
      nodes: all.length,
      good: all.filter((n) => this.table.status(n) === "good").length,
      buckets: this.table.bucketCount,
      torrents: this.#store.size,
      storedPeers,
      ...this.#stats,
    };
  }

  /** The state to save and pass back as `state` next time. */
  state(): DhtState {
    const nodes = this.table.all()
      .sort((a, b) => b.lastResponse - a.lastResponse)
      .slice(0, STATE_NODES)
      .map((n) => ({ host: n.host, port: n.port, id: toHex(n.id) }));
    return { id: toHex(this.id), nodes };
  }

  /**
   * Pings a node (for example one a peer told us about with a PORT message); it joins the table if it answers.
   *
   * @param host IP address.
   * @param port UDP port.
   * @returns True when it answered.
   */
  async ping(host: string, port: number): Promise<boolean> {
    const r = await this.#query(host, port, "ping", {});
    return r?.y === "r";
  }

  /**
   * Finds the nodes closest to a target id by an iterative `find_node` lookup.
   *
   * @param target A 20-byte id.
   * @returns Up to K nodes that answered, closest first.
   */
  async findNode(target: Uint8Array): Promise<NodeContact[]> {
    const done = await this.#iterate(target, "find_node", {});
    return done.map((c) => ({ id: c.id!, host: c.host, port: c.port }));
  }

  /**
   * Finds peers of a torrent by an iterative `get_peers` lookup and optionally announces us to the closest
   * nodes that gave a token.
   *
   * @param infoHash The torrent's 20-byte info hash.
   * @param options Announce port, peer callback, limits.
   * @returns Every distinct peer found.
   */
  async lookup(infoHash: Uint8Array, options: LookupOptions = {}): Promise<PeerAddress[]> {
    if (infoHash.length !== 20) throw new TypeError("an info hash is 20 bytes");
    const found = new Map<string, PeerAddress>();
    const closest = await this.#iterate(infoHash, "get_peers", {
      ...(options.maxQueries ? { maxQueries: options.maxQueries } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onValues: (peers) => {
        const fresh: PeerAddress[] = [];
        for (const p of peers) {
          const key = `${p.host}|${p.port}`;
          if (found.has(key) || found.size >= MAX_LOOKUP_PEERS) continue;
          found.set(key, p);
          fresh.push(p);
        }
        if (fresh.length) options.onPeers?.(fresh);
      },
    });
    if (options.announcePort !== undefined && !this.#closed && !options.signal?.aborted) {
      const port = options.announcePort;
      await Promise.all(
        closest.filter((c) => c.token).slice(0, K).map((c) =>
          this.#query(c.host, c.port, "announce_peer", {
            info_hash: infoHash,
            port,
            token: c.token,
            ...(options.impliedPort ? { implied_port: 1 } : {}),
          })
        ),
      );
    }
    return [...found.values()];
  }

  /**
   * An iterative lookup: ask the closest known nodes, then the closer nodes they name, at most `alpha` at a
   * time, until the K closest that answered have all been asked.
   */
  async #iterate(
    target: Uint8Array,
    method: "find_node" | "get_peers",
    opts: {
      extra?: PeerAddress[];
      onValues?: (peers: PeerAddress[]) => void;
      maxQueries?: number;
      signal?: AbortSignal;
    },
  ): Promise<Candidate[]> {
    const cands = new Map<string, Candidate>();
    const addCand = (c: { host: string; port: number; id?: Uint8Array }) => {
      const key = `${c.host}|${c.port}`;
      if (cands.has(key) || cands.size >= MAX_LOOKUP_CANDIDATES) return;
      if (c.id && compareDistance(this.id, c.id, this.id) === 0) return; // ourselves
      if (isLoopback(c.host) && c.port === this.port) return;
      cands.set(key, { ...(c.id ? { id: c.id } : {}), host: c.host, port: c.port, state: "new" });
    };
    for (const n of this.table.closest(target, K * 2)) addCand(n);
    if (cands.size === 0 || opts.extra) {
      for (const a of opts.extra ?? this.#bootstrap) addCand(a);
    }
    if (cands.size === 0) { for (const a of this.#bootstrap) addCand(a); }
    const maxQueries = opts.maxQueries ?? 200;
    const alpha = this.#o.alpha ?? 4;
    let sent = 0, inflight = 0;
    const finished = Promise.withResolvers<void>();
    const abort = new AbortController();
    this.#lookups.add(abort);
    abort.signal.addEventListener("abort", () => finished.resolve(), { once: true });
    const onAbort = () => abort.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const ordered = (): Candidate[] =>
      [...cands.values()].filter((c) => c.state !== "failed").sort((a, b) => {
        if (!a.id || !b.id) return a.id ? 1 : b.id ? -1 : 0; // ids not known yet (bootstrap) go first
        return compareDistance(target, a.id, b.id);
      });
    const pump = () => {
      if (abort.signal.aborted || this.#closed) {
        finished.resolve();
        return;
      }
      const best = ordered().slice(0, K);
      for (const c of best) {
        if (inflight >= alpha || sent >= maxQueries) break;
        if (c.state !== "new") continue;
        c.state = "asking";
        inflight++;
        sent++;
        const args = method === "find_node" ? { target } : { info_hash: target };
        void this.#query(c.host, c.port, method, args).then((m) => {
          inflight--;
          if (m?.y !== "r") {
            c.state = "failed";
          } else {
            c.state = "done";
            c.id = m.r.id.slice();
            const token = m.r["token"];
            if (token instanceof Uint8Array && token.length <= MAX_TOKEN_LENGTH) {
              c.token = token.slice();
            }
            for (const n of this.#nodesOf(m.r)) addCand(n);
            if (opts.onValues) {
              const values = this.#valuesOf(m.r);
              if (values.length) opts.onValues(values);
            }
          }
          pump();
        });
      }
      if (inflight === 0) finished.resolve();
    };
    pump();
    try {
      await finished.promise;
    } finally {
      this.#lookups.delete(abort);
      opts.signal?.removeEventListener("abort", onAbort);
    }
    return ordered().filter((c) => c.state === "done");
  }

  #nodesOf(r: BencodeDict): NodeContact[] {
    const field = this.family === 4 ? r["nodes"] : r["nodes6"];
    return field instanceof Uint8Array ? parseCompactNodes(field, this.family, K * 2) : [];
  }

  #valuesOf(r: BencodeDict): PeerAddress[] {
    const values = r["values"];
    if (!Array.isArray(values)) return [];
    const out: PeerAddress[] = [];
    for (const v of values.slice(0, 200)) {
      if (!(v instanceof Uint8Array)) continue;
      if (v.length === 6) out.push(...parseCompactPeers(v, 4));
      else if (v.length === 18) out.push(...parseCompactPeers(v, 6));
    }
    return out;
  }

  /** Sends a query; resolves with the answer (response or error) or undefined on timeout. */
  #query(
    host: string,
    port: number,
    method: string,
    args: Record<string, BencodeInput | undefined>,
  ): Promise<KrpcMessage | undefined> {
    const socket = this.#socket;
    if (!socket || this.#closed) return Promise.resolve(undefined);
    let key = "";
    for (let i = 0; i < 65536; i++) {
      this.#nextTid = (this.#nextTid + 1) & 0xffff;
      key = transactionKey(transactionId(this.#nextTid));
      if (!this.#pending.has(key)) break;
    }
    if (this.#pending.has(key)) return Promise.resolve(undefined); // 65536 outstanding: refuse more
    const t = transactionId(this.#nextTid);
    const packet = encodeQuery(
      t,
      method,
      { id: this.id, ...args },
      this.#o.readOnly ?? false,
    );
    const { promise, resolve } = Promise.withResolvers<KrpcMessage | undefined>();
    const timer = setTimeout(() => {
      this.#pending.delete(key);
      this.#stats.timeouts++;
      this.table.failed(host, port);
      resolve(undefined);
    }, this.#o.queryTimeoutMs ?? 2000);
    // a name (a bootstrap router) answers from an address we do not know yet
    const checkSource = this.family === 4 ? !!ipv4Bytes(host) : !!ipv6Bytes(host);
    this.#pending.set(key, { host, port, checkSource, resolve, timer });
    this.#stats.queriesOut++;
    socket.send(packet, host, port).catch(() => {
      // unreachable or unresolvable: the timeout reports it
    });
    return promise;
  }

  #onPacket(data: Uint8Array, host: string, port: number): void {
    if (this.#closed) return;
    let m: KrpcMessage;
    try {
      m = decodeKrpc(data);
    } catch {
      this.#stats.dropped++;
      return;
    }
    if (m.y === "q") {
      void this.#onQuery(m, host, port);
      return;
    }
    const key = transactionKey(m.t);
    const p = this.#pending.get(key);
    if (!p || (p.checkSource && (p.host !== host || p.port !== port))) {
      this.#stats.dropped++;
      return;
    }
    this.#pending.delete(key);
    clearTimeout(p.timer);
    if (m.y === "r") {
      this.#stats.responsesIn++;
      if (!m.r["ro"]) this.#offer({ id: m.r.id.slice(), host, port }, "response");
    }
    p.resolve(m);
  }

  #offer(contact: NodeContact, how: "response" | "query"): void {
    const result = this.table.add(contact, how);
    if (result.type === "full" && result.ping) {
      const n = result.ping, key = `${n.host}|${n.port}`;
      if (this.#pinging.has(key) || this.#pinging.size > 16) return;
      this.#pinging.add(key);
      void this.ping(n.host, n.port).finally(() => this.#pinging.delete(key));
    }
  }

  #allow(host: string, port: number): boolean {
    const now = this.#now();
    const perSec = this.#o.maxQueriesPerSecondPerAddress ?? 20;
    const globalPerSec = this.#o.maxQueriesPerSecond ?? 1000;
    const g = this.#global;
    g.tokens = Math.min(globalPerSec, g.tokens + (now - g.at) * globalPerSec / 1000);
    g.at = now;
    if (g.tokens < 1) return false;
    const key = `${host}|${port}`;
    let b = this.#rate.get(key);
    if (!b) {
      if (this.#rate.size >= 10_000) this.#rate.clear();
      b = { tokens: perSec * 2, at: now };
      this.#rate.set(key, b);
    }
    b.tokens = Math.min(perSec * 2, b.tokens + (now - b.at) * perSec / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    g.tokens--;
    return true;
  }

  async #token(host: string, secret: Uint8Array): Promise<Uint8Array> {
    return (await sha1(concat([secret, utf8(host)]))).subarray(0, 8);
  }

  async #tokenValid(host: string, token: unknown): Promise<boolean> {
    if (!(token instanceof Uint8Array) || token.length !== 8) return false;
    const a = latin1(token);
    const [now, before] = await Promise.all([
      this.#token(host, this.#secret),
      this.#token(host, this.#previousSecret),
    ]);
    return a === latin1(now) || a === latin1(before);
  }

  #compactAddress(host: string, port: number): Uint8Array | undefined {
    const ip = this.family === 4 ? ipv4Bytes(host) : ipv6Bytes(host);
    return ip ? new Uint8Array([...ip, port >> 8, port & 0xff]) : undefined;
  }

  async #onQuery(m: KrpcMessage & { y: "q" }, host: string, port: number): Promise<void> {
    if (this.#o.readOnly) return; // BEP 43: read-only nodes answer nothing
    if (!this.#allow(host, port)) {
      this.#stats.dropped++;
      return;
    }
    this.#stats.queriesIn++;
    if (!m.ro) this.#offer({ id: m.a.id.slice(), host, port }, "query");
    const reply = (r: Record<string, BencodeInput | undefined>) =>
      this.#send(
        encodeResponse(m.t, { id: this.id, ...r }, this.#compactAddress(host, port)),
        host,
        port,
      );
    const fail = (code: number, text: string) =>
      this.#send(encodeError(m.t, code, text), host, port);
    const a = m.a;
    const nodesFor = (target: Uint8Array) => {
      const field = this.family === 4 ? "nodes" : "nodes6";
      return { [field]: encodeCompactNodes(this.table.closest(target, K), this.family) };
    };
    switch (m.q) {
      case "ping":
        reply({});
        return;
      case "find_node": {
        const target = a["target"];
        if (!(target instanceof Uint8Array) || target.length !== 20) {
          fail(KrpcErrorCode.protocol, "find_node needs a 20-byte target");
          return;
        }
        reply(nodesFor(target));
        return;
      }
      case "get_peers": {
        const ih = a["info_hash"];
        if (!(ih instanceof Uint8Array) || ih.length !== 20) {
          fail(KrpcErrorCode.protocol, "get_peers needs a 20-byte info_hash");
          return;
        }
        const stored = this.#store.get(toHex(ih));
        const values: Uint8Array[] = [];
        if (stored) {
          const now = this.#now();
          for (const p of stored.peers.values()) {
            if (p.expires < now) continue;
            const c = this.#compactAddress(p.host, p.port);
            if (c) values.push(c);
          }
          // a random sample when there are more than fit in one packet
          for (let i = values.length - 1; i > 0; i--) {
            const j = Math.floor(Math.random() * (i + 1));
            [values[i], values[j]] = [values[j], values[i]];
          }
        }
        reply({
          token: await this.#token(host, this.#secret),
          ...nodesFor(ih),
          ...(values.length ? { values: values.slice(0, MAX_VALUES_SENT) } : {}),
        });
        return;
      }
      case "announce_peer": {
        const ih = a["info_hash"], p = a["port"];
        if (!(ih instanceof Uint8Array) || ih.length !== 20) {
          fail(KrpcErrorCode.protocol, "announce_peer needs a 20-byte info_hash");
          return;
        }
        const implied = a["implied_port"] === 1;
        const peerPort = implied ? port : p;
        if (typeof peerPort !== "number" || !(peerPort > 0 && peerPort < 65536)) {
          fail(KrpcErrorCode.protocol, "announce_peer needs a port 1-65535");
          return;
        }
        if (!(await this.#tokenValid(host, a["token"]))) {
          fail(KrpcErrorCode.protocol, "bad token");
          return;
        }
        const key = toHex(ih);
        let stored = this.#store.get(key);
        if (!stored) {
          if (this.#store.size >= (this.#o.maxTorrents ?? 2000)) {
            fail(KrpcErrorCode.server, "peer store full");
            return;
          }
          stored = { peers: new Map() };
          this.#store.set(key, stored);
        }
        const pk = `${host}|${peerPort}`;
        stored.peers.delete(pk);
        if (stored.peers.size >= (this.#o.maxPeersPerTorrent ?? 500)) {
          // full: the longest-known peer makes room (Map keeps insertion order)
          const oldest = stored.peers.keys().next().value;
          if (oldest !== undefined) stored.peers.delete(oldest);
        }
        stored.peers.set(pk, { host, port: peerPort, expires: this.#now() + PEER_TTL_MS });
        reply({});
        return;
      }
      default:
        fail(KrpcErrorCode.methodUnknown, "method unknown");
    }
  }

  #send(packet: Uint8Array, host: string, port: number): void {
    if (packet.length > MAX_KRPC_PACKET) return;
    this.#socket?.send(packet, host, port).catch(() => {});
  }

  #maintain(): void {
    if (this.#closed) return;
    const now = this.#now();
    if (now - this.#secretAt >= TOKEN_ROTATE_MS) {
      this.#previousSecret = this.#secret;
      this.#secret = randomBytes(16);
      this.#secretAt = now;
    }
    for (const [key, s] of this.#store) {
      for (const [pk, p] of s.peers) if (p.expires < now) s.peers.delete(pk);
      if (s.peers.size === 0) this.#store.delete(key);
    }
    for (const n of this.table.questionable().slice(0, 8)) void this.ping(n.host, n.port);
    if (this.table.size === 0) {
      void this.#join([]);
      return;
    }
    const stale = this.table.staleBuckets();
    for (const i of stale.slice(0, 4)) {
      this.table.touchBucket(i);
      const last = i === this.table.bucketCount - 1;
      void this.#iterate(last ? this.id : randomIdInBucket(this.id, i), "find_node", {});
    }
  }

  /** Stops every lookup, answers nothing more and closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const a of this.#lookups) a.abort();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
    this.#pending.clear();
    this.#unlisten?.();
    this.#socket?.close();
    this.#bootstrapped.resolve();
    await Promise.resolve();
  }

  /** Same as {@linkcode Dht.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
