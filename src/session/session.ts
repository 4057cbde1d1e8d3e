/**
 * Many torrents in one process: one listening port for all of them, TCP and uTP (BEP 29) on the same number
 * (incoming connections routed by info hash, and encrypted ones by the MSE `req2 ⊕ req3` lookup over every
 * torrent; dials try uTP first, then TCP), one UDP socket per address family shared by uTP and the DHT, one DHT
 * node and one LSD socket announcing
 * each torrent, limits shared by all (connections, half-open attempts, bandwidth up and down with an alternative
 * "turtle" set), queueing (at most N active downloads and N active seeds) with ratio and seeding-time stop rules,
 * one tick for everything, and a state directory from which a restarted session restores every torrent without
 * re-hashing (its records kept by `state_records.ts`).
 *
 * @example Download two torrents through one port
 * ```ts ignore
 * import { Session } from "@seedbed/seedbed";
 *
 * await using session = await Session.open({ basedir: "./downloads", stateDir: "./state" });
 * const a = await session.add({ path: "a.torrent" });
 * const b = await session.add({ magnet: "magnet:?xt=urn:btih:…" });
 * await Promise.all([a.done, b.done]);
 * ```
 *
 * @module
 */

import { resolve } from "node:path";
import { isLoopback, unmapIpv4 } from "../_address.ts";
import { asError } from "../_errors.ts";
import { Dht } from "../dht/dht.ts";
import { makePeerId } from "../peer_id.ts";
import { CacheBudget } from "../storage/piece_cache.ts";
import { PIECE_MEMORY } from "../swarm/piece_memory.ts";
import { PieceMemoryPool } from "../swarm/piece_memory_pool.ts";
import { Bandwidth, rateGate, TokenBucket } from "../transport/bandwidth.ts";
import {
  type InitialState,
  SessionTorrent,
  type TorrentAddOptions,
  type TorrentHost,
  type TorrentSource,
} from "./session_torrent.ts";
import {
  type SessionLimits,
  type SessionOptions,
  type SessionStats,
  totalStats,
} from "./session_options.ts";
import { SessionDiscovery } from "./discovery.ts";
import { IncomingRouter, listen } from "./incoming.ts";
import { TorrentQueue } from "./queue.ts";
import type { TorrentRecord } from "./state.ts";
import { recordOptions, recordSource, StateRecords } from "./state_records.ts";
import { deleteTorrentFiles, moveTorrentFiles, plainName } from "./torrent_files.ts";
import { UdpSockets } from "./udp_sockets.ts";

export type {
  EngineSettings,
  SessionLimits,
  SessionOptions,
  SessionStats,
} from "./session_options.ts";

/** Details of the events {@linkcode Session} dispatches (as `CustomEvent`s). */
export interface SessionEventMap {
  /** A torrent was added (or restored). */
  added: CustomEvent<{ torrent: SessionTorrent }>;
  /** A torrent was removed. */
  removed: CustomEvent<{ torrent: SessionTorrent; infoHash: string }>;
  /** A torrent completed. */
  done: CustomEvent<{ torrent: SessionTorrent }>;
  /** Something went wrong with a torrent (a disk error, a failed load) or the session. */
  error: CustomEvent<{ torrent?: SessionTorrent; error: Error }>;
  /** Periodic totals. */
  stats: CustomEvent<SessionStats>;
  /**
   * An incoming connection was refused before it reached a torrent: its handshake broke the encryption policy
   * (a plain handshake while encryption is required, MSE while it is disabled), named a torrent we do not
   * have, or did not finish in time.
   */
  peerfail: CustomEvent<{ address: string; incoming: true; reason: string }>;
}

/** The same info hash was added twice. */
export class DuplicateTorrentError extends Error {
  /** The torrent already in the session. */
  readonly existing: SessionTorrent;

  /**
   * Creates a {@linkcode DuplicateTorrentError}.
   *
   * @param existing The torrent already in the session.
   */
  constructor(existing: SessionTorrent) {
    super(`This torrent is already in the session (id ${existing.id}, ${existing.infohashHex})`);
    this.name = "DuplicateTorrentError";
    this.existing = existing;
  }
}

/** Many torrents sharing one port, one DHT node, limits and a state directory. */
export class Session extends EventTarget implements AsyncDisposable {
  /** Resolves once the session listens and its saved torrents are restored. */
  readonly ready: Promise<void>;
  readonly #opts: SessionOptions;
  readonly #peerId: Uint8Array;
  readonly #basedir: string;
  readonly #now: () => number;
  readonly #torrents = new Map<string, SessionTorrent>();
  readonly #router: IncomingRouter<SessionTorrent>;
  readonly #queue: TorrentQueue<SessionTorrent> = new TorrentQueue({
    torrents: () => this.#order,
    limits: () => this.#limits,
    closed: () => this.#closed,
    onError: (error) => this.#dispatch("error", { error }),
  });
  readonly #order: SessionTorrent[] = [];
  readonly #bandwidth = { down: new Bandwidth(), up: new Bandwidth() };
  readonly #down = new TokenBucket(0);
  readonly #up = new TokenBucket(0);
  readonly #limits: Required<SessionLimits>;
  /** The state directory's records. */
  readonly #records: StateRecords;
  #listener: Deno.Listener | undefined;
  #acceptLoop: Promise<void> | undefined;
  #udp: UdpSockets | undefined;
  readonly #discovery: SessionDiscovery<SessionTorrent>;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastStats = 0;
  #closed = false;
  #nextId = 1;
  #uploadedBefore = 0;
  #downloadedBefore = 0;
  readonly #host: TorrentHost;

  /**
   * Creates a {@linkcode Session}; it listens and restores its torrents in the background ({@linkcode Session.ready}).
   *
   * @param options Port, directories, discovery and limits.
   */
  constructor(options: SessionOptions = {}) {
    super();
    this.#opts = options;
    this.#peerId = options.peerId ?? makePeerId();
    if (this.#peerId.length !== 20) throw new TypeError("peerId must be 20 bytes");
    this.#basedir = resolve(options.basedir ?? Deno.cwd());
    this.#now = options.now ?? Date.now;
    this.#limits = {
      download: 0,
      upload: 0,
      altDownload: 0,
      altUpload: 0,
      altEnabled: false,
      connections: 500,
      connectionsPerTorrent: 50,
      halfOpen: 32,
      activeDownloads: 5,
      activeSeeds: 0,
      ratioLimit: 0,
      seedTimeLimit: 0,
      idleSeedingLimit: 0,
    };
    this.#records = new StateRecords({
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
      position: (t) => this.#order.indexOf(t),
      current: (t) => this.#torrents.get(t.infohashHex) === t,
      onError: (err, torrent) =>
        this.#dispatch("error", { ...(torrent ? { torrent } : {}), error: asError(err) }),
    });
    this.#discovery = new SessionDiscovery({
      options,
      store: this.#records.store,
      udp: () => this.#udp,
      port: () => this.port,
      udpPort: () => this.udpPort,
      closed: () => this.#closed,
      now: this.#now,
      torrents: () => this.#order,
      route: (hex) => this.#router.route(hex),
    });
    this.#router = new IncomingRouter({
      now: this.#now,
      closed: () => this.#closed,
      admit: () => this.#admitIncoming(),
      onFail: (address, reason) => this.#dispatch("peerfail", { address, incoming: true, reason }),
      ...(options.encryption ? { encryption: options.encryption } : {}),
      ...(options.rc4Only ? { rc4Only: true } : {}),
    });
    this.#host = this.#makeHost();
    this.ready = this.#init();
    this.ready.catch(() => {});
    this.#listening.promise.catch(() => {});
  }

  /**
   * Creates a session and waits until it listens and has restored its torrents.
   *
   * @param options See {@linkcode SessionOptions}.
   * @returns The ready session.
   */
  static async open(options: SessionOptions = {}): Promise<Session> {
    const session = new Session(options);
    try {
      await session.ready;
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  }

  async #init(): Promise<void> {
    const saved = await this.#records.store?.loadSession().catch((err) => {
      this.#listening.reject(err);
      throw err;
    });
    if (saved) {
      this.#nextId = saved.nextId;
      Object.assign(this.#limits, saved.limits);
    }
    Object.assign(this.#limits, definedOnly(this.#opts.limits ?? {}));
    this.#applyRates();
    try {
      if (this.#opts.tcp !== false) this.#listener = listen(this.#opts.host, this.#opts.port ?? 0);
    } catch (err) {
      this.#listening.reject(err);
      throw err;
    }
    if (this.#listener) this.#acceptLoop = this.#router.acceptLoop(this.#listener);
    try {
      await this.#openUdp();
      if (this.#opts.lsd) await this.#discovery.startLsd();
      if (this.#opts.dht) await this.#discovery.open();
    } catch (err) {
      this.#listening.reject(err);
      throw err;
    }
    this.#listening.resolve();
    this.#timer = setInterval(() => this.#tick(), this.#opts.tickMs ?? 1000);
    if (this.#records.store && this.#opts.restore !== false) {
      // in queue order, a few at a time (each reads its metadata and resume data)
      const place = await this.#records.restoreAll(
        (r) => this.#restore(r),
        (r, err) =>
          this.#dispatch("error", {
            error: new Error(`Cannot restore ${r.infoHash}: ${asError(err).message}`),
          }),
      );
      // restored a few at a time: back in their saved queue order
      this.#order.sort((a, b) =>
        (place.get(a.infohashHex) ?? Infinity) - (place.get(b.infohashHex) ?? Infinity)
      );
      this.#rehash();
    }
  }

  // ------------------------------------------------------------ torrents

  /**
   * Adds a torrent. Resolves once its identity is known and it is registered (for a magnet link before its
   * metadata is fetched); `torrent.ready` resolves once it is loaded and its existing data checked.
   *
   * @param source A path, the bytes of a .torrent file, a parsed torrent or a magnet link.
   * @param options Where to put it and how it behaves.
   * @returns The torrent.
   * @throws {DuplicateTorrentError} When the session already has this info hash (trackers are not merged).
   * @throws {MetainfoError} When the .torrent file is malformed.
   */
  async add(
    source: string | Uint8Array | TorrentSource,
    options: TorrentAddOptions = {},
  ): Promise<SessionTorrent> {
    await this.ready;
    if (this.#closed) throw new Error("The session is closed");
    const src: TorrentSource = typeof source === "string"
      ? (source.startsWith("magnet:") ? { magnet: source } : { path: source })
      : source instanceof Uint8Array
      ? { torrent: source }
      : source;
    const torrent = new SessionTorrent(this.#host, src, {
      basedir: this.#basedir,
      ...options,
    });
    await this.#adopted(torrent);
    return torrent;
  }

  /**
   * @internal A torrent made elsewhere (a `Client` sharing this session) joins it.
   */
  async join(torrent: SessionTorrent): Promise<void> {
    await this.#adopted(torrent);
  }

  /**
   * Waits until a new torrent is registered (or failed to be), then saves it (a restored one is saved already) and
   * announces it (a relocated one is not new).
   */
  async #adopted(
    torrent: SessionTorrent,
    options: { restored?: boolean; quiet?: boolean } = {},
  ): Promise<void> {
    const registered = Promise.withResolvers<void>();
    const onAdopt = () => registered.resolve();
    torrent.addEventListener("adopted", onAdopt, { once: true });
    torrent.ready.then(() => registered.resolve(), (err) => registered.reject(err));
    try {
      await registered.promise;
    } finally {
      torrent.removeEventListener("adopted", onAdopt);
    }
    if (!options.restored) {
      await this.#records.save(torrent);
      await this.#records.saveSession(this.#nextId, this.#limits);
    }
    if (!options.quiet) this.#dispatch("added", { torrent });
  }

  async #restore(r: TorrentRecord): Promise<void> {
    const torrent = new SessionTorrent(this.#host, await recordSource(r), recordOptions(r));
    torrent.id = r.id;
    torrent.restore(r);
    torrent.ready.catch((err) => this.#dispatch("error", { torrent, error: asError(err) }));
    await this.#adopted(torrent, { restored: true });
  }

  /**
   * Removes a torrent: stops it (announcing `stopped`), forgets it, and with `deleteData` deletes its files.
   *
   * @param which The torrent, its id, or its info hash (hex).
   * @param options `deleteData` also deletes the downloaded files (never anything outside the torrent's files).
   * @returns False when there was no such torrent.
   */
  async remove(
    which: SessionTorrent | number | string,
    options: { deleteData?: boolean } = {},
  ): Promise<boolean> {
    const torrent = which instanceof SessionTorrent ? which : this.get(which);
    if (!torrent || !this.#torrents.has(torrent.infohashHex)) return false;
    this.#forget(torrent);
    await torrent.close();
    await this.#records.remove(torrent.infohashHex);
    if (options.deleteData && torrent.hasMetadata) await deleteTorrentFiles(torrent);
    this.#dispatch("removed", { torrent, infoHash: torrent.infohashHex });
    this.#queue.requeue();
    return true;
  }

  /**
   * Moves a torrent's files to another download directory and/or to other paths inside it (renamed files), or
   * points the torrent at data already there. The torrent is stopped (announcing `stopped`), its files moved
   * (renamed, or copied and deleted across file systems) when `move` is set, and it is loaded again with the same
   * id, place in the queue, state, priorities, limits and totals; its resume data stays valid for files that were
   * renamed, and anything else found at the new place is verified before it counts.
   *
   * @param torrent The torrent (its metadata known).
   * @param to The new download directory, the new file paths (see `TorrentAddOptions.paths`), and whether to move
   *   the data there.
   * @returns The torrent as loaded again (a new object with the same id).
   * @throws {Error} When a file cannot be moved: the files moved so far are moved back and the torrent is loaded
   *   again where it was.
   */
  async relocate(
    torrent: SessionTorrent,
    to: { basedir?: string; paths?: string[][]; move?: boolean },
  ): Promise<SessionTorrent> {
    if (this.#torrents.get(torrent.infohashHex) !== torrent) {
      throw new Error("This torrent is not in the session");
    }
    await torrent.ready;
    for (const p of to.paths ?? []) {
      // each component a plain name: nothing may be moved out of the download directory
      if (!Array.isArray(p) || p.length === 0 || !p.every(plainName)) {
        throw new TypeError(`Not a path inside the torrent: ${JSON.stringify(p)}`);
      }
    }
    if (to.paths && to.paths.length !== torrent.metainfo.files.length) {
      throw new TypeError(`${torrent.metainfo.files.length} file paths expected`);
    }
    const position = this.#order.indexOf(torrent);
    const meta = torrent.metainfo;
    const from = { basedir: torrent.basedir, paths: meta.files.map((f) => f.path) };
    const target = { basedir: resolve(to.basedir ?? from.basedir), paths: to.paths ?? from.paths };
    const { peers: _peers, pieceCache: _cache, ...kept } = torrent.options;
    const base: TorrentAddOptions = {
      ...kept,
      state: torrent.finished ? "stopped" : torrent.desired,
      priorities: [...(torrent.engine?.priorities ?? [])],
      downloadLimit: torrent.limits.download,
      uploadLimit: torrent.limits.upload,
    };
    const saved = {
      ...torrent.totals,
      added: torrent.dates.added,
      done: torrent.dates.done,
      finished: torrent.finished,
    };
    const bytes = torrent.torrentFile;
    this.#forget(torrent);
    await torrent.close();
    const load = async (place: { basedir: string; paths: string[][] }) => {
      const { paths: _paths, ...rest } = base;
      const t = new SessionTorrent(this.#host, { torrent: bytes }, {
        ...rest,
        basedir: place.basedir,
        ...(to.paths || torrent.options.paths ? { paths: place.paths } : {}),
      });
      t.id = torrent.id;
      t.restore(saved);
      t.ready.catch((err) => this.#dispatch("error", { torrent: t, error: asError(err) }));
      await this.#adopted(t, { quiet: true });
      this.setQueuePosition(t, position);
      return t;
    };
    if (to.move) {
      try {
        await moveTorrentFiles(meta, from, target);
      } catch (err) {
        await load(from);
        throw err;
      }
    }
    return await load(target);
  }

  /** Incoming connections are routed by every hash of every torrent (both of a hybrid's, BEP 52). */
  #rehash(): void {
    this.#router.rehash(this.#order);
  }

  #forget(torrent: SessionTorrent): void {
    this.#torrents.delete(torrent.infohashHex);
    const i = this.#order.indexOf(torrent);
    if (i >= 0) this.#order.splice(i, 1);
    this.#rehash();
    this.#discovery.forget(torrent);
  }

  /**
   * A torrent by id or info hash (40 or 64 hex digits, any case).
   *
   * @param which The id or info hash.
   */
  get(which: number | string): SessionTorrent | undefined {
    if (typeof which === "number") return this.#order.find((t) => t.id === which);
    const hex = which.toLowerCase();
    return this.#torrents.get(hex) ?? this.#router.route(hex.slice(0, 40)) ??
      this.#order.find((t) => t.infohashHex === hex.slice(0, 40));
  }

  /** The session's torrents, in queue order (a snapshot). */
  get torrents(): SessionTorrent[] {
    return [...this.#order];
  }

  /** A torrent's place in the queue (0 = first). */
  queuePosition(torrent: SessionTorrent): number {
    return this.#order.indexOf(torrent);
  }

  /**
   * Moves a torrent in the queue.
   *
   * @param torrent The torrent.
   * @param position Its new place (0 = first; clamped).
   */
  setQueuePosition(torrent: SessionTorrent, position: number): void {
    const i = this.#order.indexOf(torrent);
    if (i < 0) return;
    this.#order.splice(i, 1);
    this.#order.splice(Math.max(0, Math.min(position, this.#order.length)), 0, torrent);
    this.#rehash();
    for (const t of this.#order) this.#records.changed(t);
    this.#queue.requeue();
  }

  // ------------------------------------------------------------ limits and state

  /** The port every torrent listens on (0 until the session listens): TCP's, and UDP's for uTP and the DHT. */
  get port(): number {
    return (this.#listener?.addr as Deno.NetAddr | undefined)?.port ?? this.#udp?.port ?? 0;
  }

  /** The UDP port of uTP and the DHT: {@linkcode Session.port}'s number unless UDP could not have it (0 without). */
  get udpPort(): number {
    return this.#udp?.port ?? 0;
  }

  /** The default download directory of added torrents. */
  get basedir(): string {
    return this.#basedir;
  }

  /** Our peer id. */
  get peerId(): Uint8Array {
    return this.#peerId;
  }

  /** The DHT node, if the session runs one and it is open. */
  get dht(): Dht | undefined {
    return this.#discovery.dht;
  }

  /** The current limits. */
  get limits(): Readonly<Required<SessionLimits>> {
    return { ...this.#limits };
  }

  /**
   * Changes limits at runtime (only the fields given); bandwidth limits apply at once, queue sizes at the next
   * tick. Saved in the state directory.
   *
   * @param limits The limits to change.
   */
  setLimits(limits: SessionLimits): void {
    Object.assign(this.#limits, definedOnly(limits));
    this.#applyRates();
    this.#queue.requeue();
    this.#records.saveSessionLater(this.#nextId, this.#limits);
  }

  #applyRates(): void {
    const l = this.#limits;
    this.#down.rate = l.altEnabled ? l.altDownload : l.download;
    this.#up.rate = l.altEnabled ? l.altUpload : l.upload;
  }

  /**
   * True when `host:port` reaches this session's own listener over loopback, as when a tracker lists us among
   * the peers: such an address is never dialled (the connection would cost two handshakes to find out).
   */
  #isOwnAddress(host: string, port: number): boolean {
    if (port === 0 || port !== this.port || !isLoopback(host)) return false;
    const bound = (this.#listener?.addr as Deno.NetAddr | undefined)?.hostname ?? this.#opts.host ??
      "::";
    if (bound === "::") return true; // dual stack: every loopback address reaches it
    const h = unmapIpv4(host);
    if (bound === "0.0.0.0") return !h.includes(":");
    return unmapIpv4(bound) === h;
  }

  /** Totals over every torrent. */
  get stats(): SessionStats {
    return totalStats(this.#order, {
      downloaded: this.#downloadedBefore,
      uploaded: this.#uploadedBefore,
    });
  }

  // ------------------------------------------------------------ what torrents share

  #makeHost(): TorrentHost {
    // deno-lint-ignore no-this-alias
    const session = this;
    const o = this.#opts;
    return {
      get ready() {
        return session.#listening.promise;
      },
      peerId: this.#peerId,
      get port() {
        return session.port;
      },
      now: this.#now,
      engine: {
        ...(o.engine ?? {}),
        uploadCache: new CacheBudget(o.engine?.uploadMemory ?? 32 * 1024 * 1024),
        pieceMemoryPool: new PieceMemoryPool(o.engine?.pieceMemory ?? PIECE_MEMORY),
        ...(o.tickMs ? { tickMs: o.tickMs } : {}),
        ...(o.encryption ? { encryption: o.encryption } : {}),
        ...(o.rc4Only ? { rc4Only: true } : {}),
        ...(o.utp !== false
          ? {
            connectUtp: (
              host: string,
              port: number,
              opts: { timeoutMs: number; signal?: AbortSignal },
            ) =>
              this.#udp
                ? this.#udp.connectUtp(host, port, opts)
                : Promise.reject(new Error("uTP is not running")),
          }
          : {}),
        ...(o.tcp === false ? { tcp: false } : {}),
        ...(o.utpFirst ? { utpFirst: o.utpFirst } : {}),
        udpSocket: (family: 4 | 6) => this.#udp?.mux(family)?.trackers,
        dualStack: () =>
          this.#listener?.addr.transport === "tcp" && this.#listener.addr.hostname === "::",
        ownAddress: (host: string, port: number) => this.#isOwnAddress(host, port),
        maxPeers: this.#limits.connectionsPerTorrent,
      },
      resumePath: (hex) => this.#records.store?.resumePath(hex),
      dht: () => this.#discovery.open(),
      get stopRules() {
        return {
          ratioLimit: session.#limits.ratioLimit,
          seedTimeLimit: session.#limits.seedTimeLimit,
          idleSeedingLimit: session.#limits.idleSeedingLimit,
        };
      },
      adopt: (t) => this.#adopt(t),
      loaded: (t) => this.#loaded(t),
      gate: (down, up) => rateGate(this.#bandwidth, [down, this.#down], [up, this.#up]),
      admit: () => this.#admit(),
      changed: (t) => {
        this.#records.changed(t);
        return this.#queue.requeue();
      },
    };
  }

  readonly #listening = Promise.withResolvers<void>();

  /** @internal What a `Client` sharing (or owning) this session gives its torrent. */
  get torrentHost(): TorrentHost {
    return this.#host;
  }

  #adopt(t: SessionTorrent): void {
    if (this.#closed) throw new Error("The session is closed");
    const hex = t.infohashHex;
    const existing = this.#torrents.get(hex);
    if (existing && existing !== t) throw new DuplicateTorrentError(existing);
    this.#torrents.set(hex, t);
    if (!this.#order.includes(t)) this.#order.push(t);
    this.#rehash();
    if (t.id === 0) t.id = this.#nextId++;
    else this.#nextId = Math.max(this.#nextId, t.id + 1);
    t.addEventListener("complete", () => this.#dispatch("done", { torrent: t }));
    t.addEventListener(
      "error",
      (e) => this.#dispatch("error", { torrent: t, error: e.detail.error }),
    );
    t.addEventListener("metadata", () => {
      this.#records.changed(t);
      this.#rehash(); // a hybrid magnet link's v2 hash is known now
    });
    this.#discovery.track(t);
    t.dispatchEvent(new CustomEvent("adopted"));
  }

  #loaded(t: SessionTorrent): Promise<void> {
    this.#records.changed(t);
    this.#discovery.loaded(t);
    return this.#queue.requeue().then(() => this.#discovery.changed());
  }

  #admit(): boolean {
    let connections = 0, connecting = 0;
    for (const t of this.#order) {
      const e = t.engine;
      if (!e) continue;
      const c = e.connections;
      connections += c.live + c.connecting;
      connecting += c.connecting;
    }
    return connections < this.#limits.connections && connecting < this.#limits.halfOpen;
  }

  // ------------------------------------------------------------ incoming connections

  /** Binds the UDP socket(s) on the peer port's number: uTP, and the DHT's socket. */
  async #openUdp(): Promise<void> {
    const o = this.#opts;
    const dhtHere = !!o.dht && !(o.dht instanceof Dht);
    if (o.utp === false && !dhtHere) return;
    this.#udp = await UdpSockets.open({
      ...(o.host !== undefined ? { host: o.host } : {}),
      port: this.#listener ? this.port : o.port ?? 0,
      utp: o.utp !== false,
      onConnection: (conn) => {
        if (this.#closed) return conn.reset();
        this.#router.incoming(conn, "utp");
      },
    });
  }

  #admitIncoming(): boolean {
    let connections = 0;
    for (const t of this.#order) {
      const c = t.engine?.connections;
      if (c) connections += c.live + c.connecting;
    }
    return connections < this.#limits.connections + 10;
  }

  // ------------------------------------------------------------ the tick

  #tick(): void {
    const now = this.#now();
    let stopped = false;
    for (const t of this.#order) {
      try {
        if (t.tick(now)) {
          stopped = true;
          this.#records.changed(t);
        }
      } catch (err) {
        this.#dispatch("error", { torrent: t, error: asError(err) });
      }
    }
    if (stopped) this.#queue.requeue();
    this.#discovery.lookups(now);
    this.#records.saveChanged();
    if (now - this.#lastStats >= (this.#opts.statsIntervalMs ?? 1000)) {
      this.#lastStats = now;
      this.#dispatch("stats", this.stats);
    }
  }

  #dispatch<K extends keyof SessionEventMap>(
    type: K,
    detail: SessionEventMap[K] extends CustomEvent<infer D> ? D : never,
  ): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ------------------------------------------------------------ closing

  /** Stops every torrent (announcing `stopped`), saves state, closes the listener, DHT and LSD. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.ready.catch(() => {});
    clearInterval(this.#timer);
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    await this.#acceptLoop;
    await this.#router.close(); // connections still in their handshakes
    this.#discovery.stopLsd();
    // writes started by the tick or setLimits finish before the last ones
    await this.#records.settle();
    const torrents = [...this.#order];
    await Promise.all(torrents.map(async (t) => {
      await t.close();
      if (this.#torrents.get(t.infohashHex) === t) await this.#records.save(t).catch(() => {});
    }));
    await this.#records.saveSession(this.#nextId, this.#limits).catch(() => {});
    this.#bandwidth.down.close();
    this.#bandwidth.up.close();
    await this.#discovery.closeDht();
    await this.#udp?.close();
  }

  /** Same as {@linkcode Session.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Typed event listener overloads of {@linkcode Session}. */
export interface Session {
  /** Typed listener for a {@linkcode SessionEventMap} event. */
  addEventListener<K extends keyof SessionEventMap>(
    type: K,
    listener: (this: Session, ev: SessionEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Any other listener. */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Removes a typed listener. */
  removeEventListener<K extends keyof SessionEventMap>(
    type: K,
    listener: (this: Session, ev: SessionEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Removes any other listener. */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export type { InitialState };
