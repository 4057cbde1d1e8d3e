/**
 * The DHT routing table (BEP 5): k-buckets over the 160-bit id space, split only where our own id falls, with
 * node liveness (good / questionable / bad) and a small replacement cache per bucket.
 *
 * Buckets are kept as a list indexed by the number of leading bits a node id shares with ours: bucket `i` holds
 * ids sharing exactly `i` bits, and the last bucket holds everything closer. Splitting the last bucket is the
 * only split BEP 5 allows.
 *
 * @module
 */

import type { NodeContact } from "./krpc.ts";

/** Nodes per bucket (BEP 5's K). */
export const K = 8;
/** A node is good for this long after it answered us (BEP 5: 15 minutes). */
export const GOOD_FOR_MS = 15 * 60_000;
/** Failed queries in a row that make a node bad. */
export const BAD_AFTER_FAILURES = 2;

/** A node in the routing table. */
export interface RoutingNode extends NodeContact {
  /** When it last answered one of our queries (0 = never). */
  lastResponse: number;
  /** When it last sent us a query (0 = never). */
  lastQuery: number;
  /** Unanswered queries in a row. */
  failures: number;
}

/** A node's liveness as BEP 5 defines it. */
export type NodeStatus = "good" | "questionable" | "bad";

interface Bucket {
  nodes: RoutingNode[];
  replacements: RoutingNode[];
  lastChanged: number;
}

/** What happened to a node offered to {@linkcode RoutingTable.add}. */
export type AddResult =
  | { type: "added" | "updated" }
  /** The bucket is full; `ping` is the least recently seen questionable node, to be pinged (may be undefined). */
  | { type: "full"; ping?: RoutingNode }
  | { type: "rejected"; reason: string };

/** Options for {@linkcode RoutingTable}. */
export interface RoutingTableOptions {
  /** Allow several nodes with the same IP (different ports). @default {false} */
  allowSameIp?: boolean | ((host: string) => boolean);
  /** The clock. @default {Date.now} */
  now?: () => number;
}

/** XOR distance comparison: negative when `a` is closer to `target` than `b`. */
export function compareDistance(target: Uint8Array, a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 20; i++) {
    const da = a[i] ^ target[i], db = b[i] ^ target[i];
    if (da !== db) return da - db;
  }
  return 0;
}

/** The number of leading bits two ids share (160 when equal). */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 20; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 160;
}

/**
 * A random id sharing exactly `bits` leading bits with `id` (for refreshing bucket `bits`).
 *
 * @param id Our id.
 * @param bits Shared leading bits, 0-159.
 * @returns A new id.
 */
export function randomIdInBucket(id: Uint8Array, bits: number): Uint8Array {
  const out = crypto.getRandomValues(new Uint8Array(20));
  const whole = bits >> 3, rest = bits & 7;
  out.set(id.subarray(0, whole));
  if (whole < 20) {
    const keep = 0xff << (8 - rest) & 0xff;
    const flip = 0x80 >> rest;
    out[whole] = (id[whole] & keep) | ((~id[whole]) & flip) | (out[whole] & ~keep & ~flip & 0xff);
  }
  return out;
}

/** The k-bucket routing table. */
export class RoutingTable {
  /** Our node id. */
  readonly id: Uint8Array;
  readonly #buckets: Bucket[];
  readonly #byAddress = new Map<string, RoutingNode>();
  readonly #ipCount = new Map<string, number>();
  readonly #now: () => number;
  readonly #allowSameIp: (host: string) => boolean;

  /**
   * Creates an empty table.
   *
   * @param id Our 20-byte node id.
   * @param options Same-IP policy and clock.
   */
  constructor(id: Uint8Array, options: RoutingTableOptions = {}) {
    if (id.length !== 20) throw new TypeError("a node id is 20 bytes");
    this.id = id;
    this.#now = options.now ?? Date.now;
    const same = options.allowSameIp ?? false;
    this.#allowSameIp = typeof same === "function" ? same : () => same;
    this.#buckets = [{ nodes: [], replacements: [], lastChanged: this.#now() }];
  }

  /** Nodes in the table (replacement caches not counted). */
  get size(): number {
    return this.#byAddress.size;
  }

  /** The number of buckets. */
  get bucketCount(): number {
    return this.#buckets.length;
  }

  /**
   * The status of a node.
   *
   * @param n The node.
   * @returns good, questionable or bad.
   */
  status(n: RoutingNode): NodeStatus {
    if (n.failures >= BAD_AFTER_FAILURES) return "bad";
    const now = this.#now();
    if (n.lastResponse > now - GOOD_FOR_MS) return "good";
    if (n.lastResponse > 0 && n.lastQuery > now - GOOD_FOR_MS) return "good";
    return "questionable";
  }

  #bucketIndex(id: Uint8Array): number {
    return Math.min(commonPrefixBits(id, this.id), this.#buckets.length - 1);
  }

  /**
   * Looks a node up by address.
   *
   * @param host IP address.
   * @param port UDP port.
   * @returns The node, if in the table.
   */
  get(host: string, port: number): RoutingNode | undefined {
    return this.#byAddress.get(`${host}|${port}`);
  }

  /**
   * Offers a node: it is added when its bucket has room (splitting ours when full), replaces a bad node, or
   * waits in the replacement cache while the caller pings the least recently seen questionable node.
   *
   * @param contact The node.
   * @param how "response" when it answered us, "query" when it queried us, "heard" when another node told us.
   * @returns What happened.
   */
  add(contact: NodeContact, how: "response" | "query" | "heard"): AddResult {
    if (contact.id.length !== 20) return { type: "rejected", reason: "id is not 20 bytes" };
    if (commonPrefixBits(contact.id, this.id) === 160) {
      return { type: "rejected", reason: "our own id" };
    }
    if (!(contact.port > 0 && contact.port < 65536)) return { type: "rejected", reason: "port 0" };
    const now = this.#now();
    const key = `${contact.host}|${contact.port}`;
    const known = this.#byAddress.get(key);
    if (known) {
      if (commonPrefixBits(known.id, contact.id) !== 160) {
        // the same address with a new id: only trusted when it answered us, and then it replaces the old entry
        if (how !== "response") {
          return { type: "rejected", reason: "address known with another id" };
        }
        this.remove(known);
        return this.add(contact, how);
      }
      if (how === "response") {
        known.lastResponse = now;
        known.failures = 0;
        this.#buckets[this.#bucketIndex(known.id)].lastChanged = now;
      } else if (how === "query") known.lastQuery = now;
      return { type: "updated" };
    }
    if (!this.#allowSameIp(contact.host) && (this.#ipCount.get(contact.host) ?? 0) > 0) {
      return { type: "rejected", reason: "another node has this IP" };
    }
    const node: RoutingNode = {
      id: contact.id,
      host: contact.host,
      port: contact.port,
      lastResponse: how === "response" ? now : 0,
      lastQuery: how === "query" ? now : 0,
      failures: 0,
    };
    for (let guard = 0; guard < 161; guard++) {
      const index = this.#bucketIndex(node.id);
      const bucket = this.#buckets[index];
      if (bucket.nodes.some((n) => commonPrefixBits(n.id, node.id) === 160)) {
        return { type: "rejected", reason: "id already in the table at another address" };
      }
      if (bucket.nodes.length < K) {
        this.#insert(bucket, node, now);
        return { type: "added" };
      }
      const bad = bucket.nodes.findIndex((n) => this.status(n) === "bad");
      if (bad >= 0) {
        this.#drop(bucket, bad);
        this.#insert(bucket, node, now);
        return { type: "added" };
      }
      if (index === this.#buckets.length - 1 && this.#buckets.length < 160) {
        this.#split();
        continue;
      }
      // full of good or questionable nodes: keep the newcomer as a replacement, ping the stalest questionable
      if (!bucket.replacements.some((r) => r.host === node.host && r.port === node.port)) {
        bucket.replacements.push(node);
        if (bucket.replacements.length > K) bucket.replacements.shift();
      }
      let stalest: RoutingNode | undefined;
      for (const n of bucket.nodes) {
        if (this.status(n) !== "questionable") continue;
        if (
          !stalest ||
          Math.max(n.lastResponse, n.lastQuery) < Math.max(stalest.lastResponse, stalest.lastQuery)
        ) {
          stalest = n;
        }
      }
      return stalest ? { type: "full", ping: stalest } : { type: "full" };
    }
    return { type: "rejected", reason: "no bucket" };
  }

  #insert(bucket: Bucket, node: RoutingNode, now: number): void {
    bucket.nodes.push(node);
    bucket.lastChanged = now;
    this.#byAddress.set(`${node.host}|${node.port}`, node);
    this.#ipCount.set(node.host, (this.#ipCount.get(node.host) ?? 0) + 1);
  }

  #drop(bucket: Bucket, i: number): void {
    const [n] = bucket.nodes.splice(i, 1);
    this.#byAddress.delete(`${n.host}|${n.port}`);
    const c = (this.#ipCount.get(n.host) ?? 1) - 1;
    if (c <= 0) this.#ipCount.delete(n.host);
    else this.#ipCount.set(n.host, c);
  }

  #split(): void {
    const last = this.#buckets[this.#buckets.length - 1];
    const depth = this.#buckets.length - 1;
    const next: Bucket = { nodes: [], replacements: [], lastChanged: last.lastChanged };
    const stay: RoutingNode[] = [];
    for (const n of last.nodes) {
      (commonPrefixBits(n.id, this.id) > depth ? next.nodes : stay).push(n);
    }
    last.nodes = stay;
    next.replacements = last.replacements.filter((n) => commonPrefixBits(n.id, this.id) > depth);
    last.replacements = last.replacements.filter((n) => commonPrefixBits(n.id, this.id) <= depth);
    this.#buckets.push(next);
  }

  /**
   * Records an unanswered query; a node that became bad is replaced from its bucket's replacement cache.
   *
   * @param host IP address.
   * @param port UDP port.
   */
  failed(host: string, port: number): void {
    const n = this.#byAddress.get(`${host}|${port}`);
    if (!n) return;
    n.failures++;
    if (this.status(n) !== "bad") return;
    const bucket = this.#buckets[this.#bucketIndex(n.id)];
    const replacement = bucket.replacements.pop();
    if (replacement) {
      this.remove(n);
      if (!this.#byAddress.has(`${replacement.host}|${replacement.port}`)) {
        this.#insert(bucket, replacement, this.#now());
      }
    }
  }

  /**
   * Removes a node.
   *
   * @param n The node (as returned by {@linkcode RoutingTable.get} or {@linkcode RoutingTable.closest}).
   */
  remove(n: NodeContact): void {
    const bucket = this.#buckets[this.#bucketIndex(n.id)];
    const i = bucket.nodes.findIndex((x) => x.host === n.host && x.port === n.port);
    if (i >= 0) this.#drop(bucket, i);
  }

  /**
   * The nodes closest to a target, good ones first among equals; bad nodes are left out.
   *
   * @param target A 20-byte id or info hash.
   * @param count How many.
   * @returns Up to `count` nodes, closest first.
   */
  closest(target: Uint8Array, count = K): RoutingNode[] {
    const all: RoutingNode[] = [];
    for (const b of this.#buckets) {
      for (const n of b.nodes) if (this.status(n) !== "bad") all.push(n);
    }
    all.sort((a, b) => compareDistance(target, a.id, b.id));
    return all.slice(0, count);
  }

  /** Every node in the table. */
  all(): RoutingNode[] {
    return this.#buckets.flatMap((b) => b.nodes);
  }

  /**
   * Buckets not changed for `ageMs`, as bucket indexes (refresh each with a lookup of a random id in it).
   *
   * @param ageMs BEP 5: 15 minutes.
   * @returns Stale bucket indexes.
   */
  staleBuckets(ageMs = GOOD_FOR_MS): number[] {
    const now = this.#now();
    const out: number[] = [];
    this.#buckets.forEach((b, i) => {
      if (b.lastChanged < now - ageMs) out.push(i);
    });
    return out;
  }

  /**
   * Marks a bucket as refreshed.
   *
   * @param index The bucket index.
   */
  touchBucket(index: number): void {
    const b = this.#buckets[index];
    if (b) b.lastChanged = this.#now();
  }

  /** Questionable nodes, least recently seen first (to be pinged). */
  questionable(): RoutingNode[] {
    return this.all().filter((n) => this.status(n) === "questionable")
      .sort((a, b) =>
        Math.max(a.lastResponse, a.lastQuery) - Math.max(b.lastResponse, b.lastQuery)
      );
  }
}
