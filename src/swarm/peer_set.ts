/**
 * One torrent's peers: the addresses we may dial (from the user, trackers, the DHT, PEX, LSD), dialling within the
 * connection and half-open limits with backoff, the live connections, bans by IP (checked both ways: a banned
 * address is never dialled and its incoming connections are refused), and the handshake-time checks that a
 * connection is neither to ourselves nor a second one to the same peer.
 *
 * On loopback every peer has the same IP address, so there a ban names the exact address and the peer id instead
 * (a test swarm keeps its honest peers when one liar is banned).
 *
 * @module
 */

import { addressKey, isLoopback, splitAddressKey } from "../_address.ts";
import { bytesEqual, compareBytes, toHex } from "../_bytes.ts";
import type { PeerConnection } from "../peer.ts";
import { describePeerClient } from "../peer_id.ts";
import type { DialMode } from "../wire/encryption_policy.ts";
import type { TransportName } from "./dialer.ts";
import type { Encryption } from "../wire/mse.ts";
import type { PeerEntry, PeerInfo, PeerSource } from "./types.ts";

/** A known peer address and its connection history. */
export interface Candidate {
  /** Where the address came from. */
  source: PeerSource;
  /** IP address or host name. */
  host: string;
  /** TCP port. */
  port: number;
  /** Address key. */
  key: string;
  /** Failed attempts in a row. */
  failures: number;
  /** Not dialled again before this time (ms). */
  nextAttempt: number;
  /** Dialling or connected. */
  connected: boolean;
  /** Added by the user: never given up on. */
  manual: boolean;
  /** How the last dial that got through started (MSE or plain); the next dial starts the same way. */
  worked?: DialMode;
  /** The transport of the last dial that got through; the next dial tries it first. */
  transport?: TransportName;
  /** What PEX said about uTP (its `added.f` flag 0x04), when it said anything. */
  utp?: boolean;
}

/** Options for {@linkcode PeerSet}. */
export interface PeerSetOptions {
  /** Most live connections. @default {50} */
  maxPeers?: number;
  /** Most connection attempts at once. @default {8} */
  maxConnecting?: number;
  /** Most addresses kept (user-given ones always are). @default {2000} */
  maxCandidates?: number;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
  /**
   * Dials a candidate and attaches each connection it opens ({@linkcode PeerSet.register}). Resolves true when
   * the peer's BitTorrent handshake arrived (what follows is the connection's business: {@linkcode PeerSet.remove}),
   * false when it did not (the address is then tried again later, with backoff).
   */
  dial: (candidate: Candidate) => Promise<boolean>;
  /**
   * Room for one more connection in a budget shared with other torrents (a session's global limits): called
   * before each attempt; false defers it.
   */
  admit?: () => boolean;
}

/** The result of {@linkcode PeerSet.checkReady}. */
export type ReadyVerdict =
  | { ok: true }
  | { ok: false; reason: string };

/** A torrent's known addresses, live connections and bans. */
export class PeerSet {
  /** Live connections (handshaking or ready) by connection. */
  readonly entries: Map<PeerConnection, PeerEntry> = new Map();
  readonly #candidates = new Map<string, Candidate>();
  readonly #banned = new Set<string>();
  readonly #opts: PeerSetOptions;
  readonly #now: () => number;
  #connecting = 0;
  /** Dials in progress whose connection is registered (handshaking): counted as connections, not attempts. */
  #attached = 0;
  #nextId = 1;
  #enabled = true;

  /**
   * Creates a {@linkcode PeerSet}.
   *
   * @param options Limits, the clock and the dialler.
   */
  constructor(options: PeerSetOptions) {
    this.#opts = options;
    this.#now = options.now ?? Date.now;
  }

  /** Live connections. */
  get size(): number {
    return this.entries.size;
  }

  /** Connection attempts in progress (not yet registered as a connection). */
  get connecting(): number {
    return this.#connecting - this.#attached;
  }

  /** Known addresses. */
  get candidates(): number {
    return this.#candidates.size;
  }

  /** Most live connections. */
  get maxPeers(): number {
    return this.#opts.maxPeers ?? 50;
  }

  /** Changes the connection limit (running connections are kept). */
  set maxPeers(n: number) {
    this.#opts.maxPeers = n;
  }

  /** Whether {@linkcode PeerSet.connectMore} dials (off while the torrent is stopped). */
  set enabled(on: boolean) {
    this.#enabled = on;
  }

  /**
   * Adds an address to dial.
   *
   * @param host IPv4/IPv6 address or host name.
   * @param port TCP port.
   * @param options Where it came from; `manual` addresses (the user's) are retried forever with backoff; `utp`:
   *   whether the source says the peer speaks uTP (PEX flags).
   */
  add(
    host: string,
    port: number,
    options: { source: PeerSource; manual?: boolean; utp?: boolean },
  ): void {
    if (!Number.isInteger(port) || port <= 0 || port > 65535 || this.isBanned(host, port)) return;
    const key = addressKey(host, port);
    const manual = options.manual ?? false;
    const c = this.#candidates.get(key);
    if (!c) {
      if (this.#candidates.size >= (this.#opts.maxCandidates ?? 2000) && !manual) return;
      this.#candidates.set(key, {
        source: options.source,
        host,
        port,
        key,
        failures: 0,
        nextAttempt: 0,
        connected: false,
        manual,
        ...(options.utp !== undefined ? { utp: options.utp } : {}),
      });
    } else {
      if (options.utp !== undefined) c.utp = options.utp;
      if (manual) {
        c.manual = true;
        c.nextAttempt = 0;
      }
    }
    this.connectMore();
  }

  /**
   * True when this address is banned (by IP; on loopback by address).
   *
   * @param host The IP address.
   * @param port The port, when known (an address we would dial).
   */
  isBanned(host: string, port?: number): boolean {
    return this.#banned.has(host) ||
      (port !== undefined && this.#banned.has(addressKey(host, port)));
  }

  /** True when one more incoming connection may be taken. */
  hasRoom(): boolean {
    return this.entries.size < this.maxPeers + 10;
  }

  /** Dials addresses while the connection and half-open limits allow. */
  connectMore(): void {
    if (!this.#enabled) return;
    const maxConnecting = this.#opts.maxConnecting ?? 8;
    const now = this.#now();
    for (const c of this.#candidates.values()) {
      if (this.entries.size + this.connecting >= this.maxPeers) break;
      if (this.#connecting >= maxConnecting) break;
      if (c.connected || c.nextAttempt > now || this.#isConnectedTo(c.key)) continue;
      if (this.#opts.admit && !this.#opts.admit()) break;
      c.connected = true;
      this.#connecting++;
      this.#opts.dial(c).then((ok) => ok, () => false).then((ok) => {
        this.#connecting--;
        if (!ok) this.#failed(c);
      });
    }
  }

  /**
   * Records a new connection (dialled or accepted). A dialled one stays the dial's until
   * {@linkcode PeerSet.settle}: when it closes before the peer's handshake arrives, the dial decides what that
   * means (another attempt, or a failure of the address).
   *
   * @param conn The connection, not yet started.
   * @param options Its address key, direction, source, encryption and transport.
   * @returns The engine's record of it.
   */
  register(
    conn: PeerConnection,
    options: {
      key: string;
      incoming: boolean;
      source: PeerSource;
      encryption?: Encryption;
      transport?: TransportName;
    },
  ): PeerEntry {
    const now = this.#now();
    if (!options.incoming) this.#attached++;
    const entry: PeerEntry = {
      source: options.source,
      id: this.#nextId++,
      conn,
      key: options.key,
      incoming: options.incoming,
      encryption: options.encryption ?? false,
      transport: options.transport ?? "tcp",
      dialling: !options.incoming,
      connectedAt: now,
      lastBlockAt: now,
      ready: false,
      availabilityAdded: false,
      snubbed: false,
      rejected: new Map(),
      rateDown: 0,
      rateUp: 0,
      lastDown: 0,
      lastUp: 0,
    };
    this.entries.set(conn, entry);
    return entry;
  }

  /**
   * Both handshakes are done: is this connection one to keep? Not when it is to ourselves (that address is
   * never dialled again) or a second connection to a peer already connected — both sides may dial each other
   * at once (PEX tells each about the other), and both must drop the same one or nothing is left: the one opened
   * by the peer with the lower peer id survives. The other connection may be closed here.
   *
   * @param entry The connection that just finished its handshakes.
   * @param ourId Our peer id.
   * @returns Whether to keep it, and if not, why.
   */
  checkReady(entry: PeerEntry, ourId: Uint8Array): ReadyVerdict {
    const remote = entry.conn.remotePeerId;
    if (remote && bytesEqual(remote, ourId)) {
      this.#candidates.delete(entry.key);
      this.#banned.add(entry.key); // ourselves: that address is never dialled again
      return { ok: false, reason: "connected to ourselves" };
    }
    if (remote && this.#banned.has(`id:${toHex(remote)}`)) {
      return { ok: false, reason: "banned (sent data that failed the hash check)" };
    }
    for (const other of this.entries.values()) {
      const otherId = other.conn.remotePeerId;
      if (other === entry || !other.ready || !remote || !otherId || !bytesEqual(otherId, remote)) {
        continue;
      }
      const keepIncoming = compareBytes(ourId, remote) > 0;
      if (entry.incoming === keepIncoming && other.incoming !== keepIncoming) {
        other.conn.close("duplicate connection to the same peer");
        break;
      }
      return { ok: false, reason: "duplicate connection to the same peer" };
    }
    entry.ready = true;
    return { ok: true };
  }

  /**
   * The dial of this connection is over (its handshakes are done, or it closed): it counts as a connection only.
   *
   * @param entry A dialled connection.
   */
  settle(entry: PeerEntry): void {
    if (!entry.dialling) return;
    entry.dialling = false;
    this.#attached--;
  }

  /**
   * A connection ended: its address may be dialled again later (soon when it worked, with backoff when it never
   * completed its handshakes). A dialled connection that never got the peer's handshake is left to its dial,
   * which may try again another way ({@linkcode PeerSetOptions.dial} then reports the outcome).
   */
  remove(entry: PeerEntry): void {
    if (!this.entries.delete(entry.conn)) return;
    const dialFailed = entry.dialling && !entry.conn.remoteHandshake;
    this.settle(entry);
    if (dialFailed) return;
    const c = this.#candidates.get(entry.key);
    if (!c) return;
    c.connected = false;
    if (!entry.ready) this.#failed(c);
    else {
      c.failures = 0;
      c.nextAttempt = this.#now() + 5000;
    }
  }

  /**
   * Bans a peer's IP address for the life of the torrent: its connections close, it is never dialled again,
   * and its incoming connections are refused.
   *
   * @param entry The offending connection.
   * @param reason Why, for the close event.
   */
  ban(entry: PeerEntry, reason: string): void {
    const keys = banKeys(entry);
    for (const k of keys) this.#banned.add(k);
    for (const c of this.#candidates.values()) {
      if (this.isBanned(c.host, c.port)) this.#candidates.delete(c.key);
    }
    for (const e of [...this.entries.values()]) {
      if (banKeys(e).some((k) => keys.includes(k))) e.conn.close(reason);
    }
  }

  /** Every ready connection. */
  *ready(): IterableIterator<PeerEntry> {
    for (const e of this.entries.values()) if (e.ready) yield e;
  }

  /** The public view of every live connection. */
  info(): PeerInfo[] {
    const out: PeerInfo[] = [];
    for (const e of this.entries.values()) {
      const c = e.conn;
      out.push({
        address: e.key,
        peerId: c.remotePeerId,
        incoming: e.incoming,
        source: e.source,
        have: c.bitfield.count,
        downloadRate: e.rateDown,
        uploadRate: e.rateUp,
        downloaded: c.downloaded,
        uploaded: c.uploaded,
        amChoking: c.amChoking,
        amInterested: c.amInterested,
        peerChoking: c.peerChoking,
        peerInterested: c.peerInterested,
        outstanding: c.outstanding,
        client: c.remotePeerId
          ? describePeerClient(c.remotePeerId, c.remoteExtensions?.v)
          : "unknown",
        encrypted: e.encryption,
        fast: c.supportsFast,
        transport: e.transport,
      });
    }
    return out;
  }

  /**
   * Updates every connection's rates (a moving average over about two ticks) and runs its own time checks.
   *
   * @param now The current time (ms).
   * @param seconds Time since the last call.
   */
  tick(now: number, seconds: number): void {
    for (const e of [...this.entries.values()]) {
      const c = e.conn;
      c.tick(now);
      e.rateDown = e.rateDown * 0.5 + ((c.downloaded - e.lastDown) / seconds) * 0.5;
      e.rateUp = e.rateUp * 0.5 + ((c.uploaded - e.lastUp) / seconds) * 0.5;
      e.lastDown = c.downloaded;
      e.lastUp = c.uploaded;
    }
  }

  /** Total payload rates of the live connections, bytes/s. */
  rates(): { down: number; up: number } {
    let down = 0, up = 0;
    for (const e of this.entries.values()) {
      down += e.rateDown;
      up += e.rateUp;
    }
    return { down, up };
  }

  /** Connections we are not choking. */
  unchokedCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (!e.conn.amChoking) n++;
    return n;
  }

  /** A ready connection by its number. */
  byId(id: number): PeerEntry | undefined {
    for (const e of this.entries.values()) if (e.id === id) return e;
    return undefined;
  }

  #isConnectedTo(key: string): boolean {
    for (const e of this.entries.values()) if (e.key === key) return true;
    return false;
  }

  #failed(c: Candidate): void {
    c.connected = false;
    c.failures++;
    if (!c.manual && c.failures >= 5) {
      this.#candidates.delete(c.key);
      return;
    }
    c.nextAttempt = this.#now() + Math.min(60_000, 1000 * 2 ** Math.min(c.failures - 1, 6));
  }
}

/** What a ban of this connection names: its IP, or on loopback its address and peer id. */
function banKeys(entry: PeerEntry): string[] {
  const { host } = splitAddressKey(entry.key);
  if (!isLoopback(host)) return [host];
  const id = entry.conn.remotePeerId;
  return id ? [entry.key, `id:${toHex(id)}`] : [entry.key];
}
