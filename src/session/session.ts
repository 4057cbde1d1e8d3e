/**
 * Many torrents in one process: one listening port for all of them, TCP and uTP (BEP 29) on the same number
 * (incoming connections routed by info hash, and encrypted ones by the MSE `req2 ⊕ req3` lookup over every
 * torrent; dials try uTP first, then TCP), one UDP socket per address family shared by uTP and the DHT, one DHT
 * node and one LSD socket announcing
 * each torrent, limits shared by all (connections, half-open attempts, bandwidth up and down with an alternative
 * "turtle" set), queueing (at most N active downloads and N active seeds) with ratio and seeding-time stop rules,
 * one tick for everything, and a state directory from which a restarted session restores every torrent without
 * re-hashing.
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

import { join, resolve } from "node:path";
import { addressKey } from "../_address.ts";
import { asError } from "../_errors.ts";
import { toHex } from "../_bytes.ts";
import { Dht, type DhtOptions } from "../dht/dht.ts";
import { LocalDiscovery } from "../lsd.ts";
import { makePeerId } from "../peer_id.ts";
import { CacheBudget } from "../storage/piece_cache.ts";
import { Bandwidth, rateGate, TokenBucket } from "../transport/bandwidth.ts";
import { tcpStream } from "../transport/tcp.ts";
import type { PeerStream } from "../wire/stream.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import { acceptConnection } from "../wire/mse.ts";
import {
  type InitialState,
  type RunState,
  SessionTorrent,
  type TorrentAddOptions,
  type TorrentHost,
  type TorrentSource,
} from "./session_torrent.ts";
import { SessionStore, type TorrentRecord } from "./state.ts";
import { UdpSockets } from "./udp_sockets.ts";

/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
const HANDSHAKE_MS = 10_000;
/** DHT lookups running at once (a restored session with many torrents looks them up a few at a time). */
const DHT_LOOKUPS = 4;

/** Limits shared by every torrent of a session; each can be changed at runtime. */
export interface SessionLimits {
  /** Download limit for the whole session, bytes/s; 0 = none. @default {0} */
  download?: number;
  /** Upload limit for the whole session, bytes/s; 0 = none. @default {0} */
  upload?: number;
  /** The alternative ("turtle") limits, used while {@linkcode SessionLimits.altEnabled} is on. */
  altDownload?: number;
  /** Alternative upload limit, bytes/s. */
  altUpload?: number;
  /** Use the alternative limits. @default {false} */
  altEnabled?: boolean;
  /** Most peer connections over all torrents. @default {500} */
  connections?: number;
  /** Most connections per torrent (each torrent may lower it). @default {50} */
  connectionsPerTorrent?: number;
  /** Most outgoing connection attempts at once over all torrents. @default {32} */
  halfOpen?: number;
  /** Most torrents downloading at once; others wait in the queue (0 = no limit). @default {5} */
  activeDownloads?: number;
  /** Most torrents seeding at once; others wait in the queue (0 = no limit). @default {0} */
  activeSeeds?: number;
  /** Stop seeding a torrent once uploaded ÷ size reaches this (0 = never). @default {0} */
  ratioLimit?: number;
  /** Stop seeding a torrent after this many seconds of seeding (0 = never). @default {0} */
  seedTimeLimit?: number;
  /** Stop seeding a torrent after this many seconds without uploading (0 = never). @default {0} */
  idleSeedingLimit?: number;
}

/** Engine settings every torrent of a session uses. */
export interface EngineSettings {
  /** Our request pipeline depth per peer (capped by the peer's `reqq`). @default {768} */
  queueDepth?: number;
  /**
   * Most bytes of memory for pieces being downloaded, per torrent: those in progress and those waiting for their
   * hash check and write (at least 4 pieces). The budget starts at 8 MiB and grows with the peers' rates ×
   * round-trip times up to this. When the disk falls behind, the network slows to its pace.
   * @default {67108864}
   */
  pieceMemory?: number;
  /** Bytes of whole pieces kept in memory to serve uploads, shared by every torrent. @default {33554432} */
  uploadMemory?: number;
  /** Preallocate files on first write instead of creating sparse files. @default {false} */
  preallocate?: boolean;
  /** Hash downloaded pieces on a worker thread instead of the event loop's. @default {false} */
  hashWorker?: boolean;
  /**
   * When a verified piece cannot be written (a full disk, a read-only directory), the torrent pauses, keeps the
   * piece in memory and retries the write this often (ms); once it lands the download resumes by itself.
   * @default {5000}
   */
  diskRetryMs?: number;
  /** Milliseconds to connect to a peer. @default {5000} */
  connectTimeoutMs?: number;
  /** Milliseconds a uTP dial waits for the peer's answer before TCP is tried. @default {3000} */
  utpConnectTimeoutMs?: number;
  /** Most outgoing connection attempts at once per torrent. @default {8} */
  maxConnecting?: number;
}

/** Options for {@linkcode Session}. */
export interface SessionOptions {
  /**
   * Port to listen on for every torrent, over TCP and (the same number) UDP for uTP and the DHT; 0 lets the system
   * choose.
   * @default {0}
   */
  port?: number;
  /**
   * uTP (BEP 29): accept uTP connections on the port's UDP socket and dial every peer over uTP first (TCP when
   * uTP fails, remembering per peer what worked), as libtorrent, qBittorrent and Transmission do.
   * @default {true}
   */
  utp?: boolean;
  /** TCP: listen and dial over TCP. Off, peers are reached over uTP only (for tests). @default {true} */
  tcp?: boolean;
  /**
   * Address to listen on; by default every IPv6 and IPv4 address (dual-stack "::", or "0.0.0.0" where the
   * system has no IPv6).
   */
  host?: string;
  /** Default download directory of added torrents. @default {Deno.cwd()} */
  basedir?: string;
  /**
   * Where the session keeps its torrents, their options and resume data, so that a restarted session carries on;
   * none when omitted (torrents then keep resume data beside their data, as a lone `Client` does).
   */
  stateDir?: string;
  /** Our 20-byte peer id; a fresh `-SE0010-…` id by default. */
  peerId?: Uint8Array;
  /**
   * The DHT (BEP 5): `true` runs a node (joining through the public routers), an options object configures it,
   * a {@linkcode Dht} instance is used as is (not closed with the session). A node the session opens runs on the
   * peer port's UDP socket, beside uTP, unless the options name a `port`, `host` or `socket` of their own. Its
   * routing table is kept in `stateDir`. Never used for private torrents.
   * @default {false}
   */
  dht?: boolean | DhtOptions | Dht;
  /**
   * Local Service Discovery (BEP 14) on one socket for every torrent; never for private torrents.
   * @default {false}
   */
  lsd?: boolean | { multicastPort?: number; interfaceAddress?: string };
  /** Limits; see {@linkcode SessionLimits}. */
  limits?: SessionLimits;
  /**
   * Protocol encryption (MSE/PE), in and out: `"prefer"` dials with MSE and once more with a plain handshake when
   * that fails (remembering per peer what worked), and accepts both; `"require"` never sends or accepts a plain
   * BitTorrent handshake; `"allow"` dials plain and accepts both; `"disable"` dials plain and refuses MSE.
   * @default {"prefer"}
   */
  encryption?: EncryptionPolicy;
  /**
   * After an MSE handshake, RC4 for the payload only: we offer only RC4 when we dial and select it when we are
   * dialled (a peer offering only plaintext is refused). Otherwise we offer both and take plaintext unless the
   * other side insists on RC4.
   * @default {false}
   */
  rc4Only?: boolean;
  /** Restore the torrents saved in `stateDir`. @default {true} */
  restore?: boolean;
  /** Milliseconds per tick (rates, choking every 10 ticks, reconnects, stop rules, saving state). @default {1000} */
  tickMs?: number;
  /** Milliseconds between `stats` events. @default {1000} */
  statsIntervalMs?: number;
  /** Engine settings for every torrent (pipeline depth, piece memory, upload memory, …). */
  engine?: EngineSettings;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
}

/** What `stats` events and {@linkcode Session.stats} report. */
export interface SessionStats {
  /** Torrents in the session. */
  torrents: number;
  /** Torrents running (not queued, not stopped). */
  active: number;
  /** Connected peers over all torrents. */
  peers: number;
  /** Download rate over all torrents, bytes/s. */
  downloadRate: number;
  /** Upload rate over all torrents, bytes/s. */
  uploadRate: number;
  /** Payload bytes downloaded since the session started. */
  downloaded: number;
  /** Payload bytes uploaded since the session started. */
  uploaded: number;
}

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
  /** Info hashes in routing order, the same objects each time (MSE caches req2 by object). */
  #hashes: Uint8Array[] = [];
  /** Torrents by every 20-byte info hash peers may use (hex): a hybrid torrent's v1 and truncated v2 hash. */
  #routes = new Map<string, SessionTorrent>();
  readonly #order: SessionTorrent[] = [];
  readonly #bandwidth = { down: new Bandwidth(), up: new Bandwidth() };
  readonly #down = new TokenBucket(0);
  readonly #up = new TokenBucket(0);
  readonly #limits: Required<SessionLimits>;
  readonly #store: SessionStore | undefined;
  readonly #writes = new Set<Promise<void>>();
  #listener: Deno.Listener | undefined;
  #acceptLoop: Promise<void> | undefined;
  #udp: UdpSockets | undefined;
  #dht: Dht | undefined;
  #dhtOpening: Promise<Dht | undefined> | undefined;
  #ownDht = false;
  readonly #dhtDue = new Map<SessionTorrent, { at: number; delay: number }>();
  #dhtRunning = 0;
  #lsd: LocalDiscovery | undefined;
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
    this.#store = options.stateDir ? new SessionStore(resolve(options.stateDir)) : undefined;
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
    const saved = await this.#store?.loadSession().catch((err) => {
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
    if (this.#listener) this.#acceptLoop = this.#accept(this.#listener);
    try {
      await this.#openUdp();
      if (this.#opts.lsd) await this.#startLsd();
      if (this.#opts.dht) await this.#openDht();
    } catch (err) {
      this.#listening.reject(err);
      throw err;
    }
    this.#listening.resolve();
    this.#timer = setInterval(() => this.#tick(), this.#opts.tickMs ?? 1000);
    if (this.#store && this.#opts.restore !== false) {
      // in queue order, a few at a time (each reads its metadata and resume data)
      const records = await this.#store.loadTorrents();
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(16, records.length) }, async () => {
        while (next < records.length) {
          const r = records[next++];
          await this.#restore(r).catch((err) =>
            this.#dispatch("error", {
              error: new Error(`Cannot restore ${r.infoHash}: ${asError(err).message}`),
            })
          );
        }
      }));
      // restored a few at a time: back in their saved queue order
      const place = new Map(records.map((r, i) => [r.infoHash, i]));
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
      await this.#save(torrent);
      await this.#store?.saveSession(this.#nextId, this.#limits);
    }
    if (!options.quiet) this.#dispatch("added", { torrent });
  }

  async #restore(r: TorrentRecord): Promise<void> {
    const source: TorrentSource = r.torrentPath
      ? { torrent: await Deno.readFile(r.torrentPath) }
      : { magnet: r.magnet! };
    const torrent = new SessionTorrent(this.#host, source, {
      basedir: r.basedir,
      state: r.state,
      ...(r.priorities ? { priorities: r.priorities } : {}),
      ...(r.maxPeers ? { maxPeers: r.maxPeers } : {}),
      ...(r.downloadLimit ? { downloadLimit: r.downloadLimit } : {}),
      ...(r.uploadLimit ? { uploadLimit: r.uploadLimit } : {}),
      ...(r.ratioLimit !== undefined ? { ratioLimit: r.ratioLimit } : {}),
      ...(r.seedTimeLimit !== undefined ? { seedTimeLimit: r.seedTimeLimit } : {}),
      ...(r.idleSeedingLimit !== undefined ? { idleSeedingLimit: r.idleSeedingLimit } : {}),
      ...(r.paths ? { paths: r.paths } : {}),
      ...(r.trackers === false ? { trackers: false } : {}),
      ...(r.webSeeds === false ? { webSeeds: false } : {}),
      ...(r.extraWebSeeds?.length ? { extraWebSeeds: r.extraWebSeeds } : {}),
    });
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
    await this.#store?.removeTorrent(torrent.infohashHex);
    if (options.deleteData && torrent.hasMetadata) await deleteTorrentFiles(torrent);
    this.#dispatch("removed", { torrent, infoHash: torrent.infohashHex });
    this.#requeue();
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
    this.#hashes = this.#order.flatMap((t) => t.infoHashes);
    this.#routes = new Map(
      this.#order.flatMap((t) => t.infoHashes.map((h) => [toHex(h), t] as const)),
    );
  }

  #forget(torrent: SessionTorrent): void {
    this.#torrents.delete(torrent.infohashHex);
    const i = this.#order.indexOf(torrent);
    if (i >= 0) this.#order.splice(i, 1);
    this.#rehash();
    this.#dhtDue.delete(torrent);
  }

  /**
   * A torrent by id or info hash (40 or 64 hex digits, any case).
   *
   * @param which The id or info hash.
   */
  get(which: number | string): SessionTorrent | undefined {
    if (typeof which === "number") return this.#order.find((t) => t.id === which);
    const hex = which.toLowerCase();
    return this.#torrents.get(hex) ?? this.#routes.get(hex.slice(0, 40)) ??
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
    for (const t of this.#order) this.#dirty.add(t);
    this.#requeue();
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
    return this.#dht;
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
    this.#requeue();
    if (this.#store) {
      this.#writing(this.#store.saveSession(this.#nextId, this.#limits)).catch((err) =>
        this.#dispatch("error", { error: asError(err) })
      );
    }
  }

  #applyRates(): void {
    const l = this.#limits;
    this.#down.rate = l.altEnabled ? l.altDownload : l.download;
    this.#up.rate = l.altEnabled ? l.altUpload : l.upload;
  }

  /** Totals over every torrent. */
  get stats(): SessionStats {
    let peers = 0, down = 0, up = 0, active = 0, downloaded = 0, uploaded = 0;
    for (const t of this.#order) {
      if (t.run === "running" && t.state !== "stopped") active++;
      const e = t.engine;
      if (!e) continue;
      peers += e.connections.live;
      down += e.downloadRate;
      up += e.uploadRate;
      downloaded += e.downloaded;
      uploaded += e.uploaded;
    }
    return {
      torrents: this.#order.length,
      active,
      peers,
      downloadRate: down,
      uploadRate: up,
      downloaded: this.#downloadedBefore + downloaded,
      uploaded: this.#uploadedBefore + uploaded,
    };
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
        udpSocket: (family: 4 | 6) => this.#udp?.mux(family)?.trackers,
        dualStack: () =>
          this.#listener?.addr.transport === "tcp" && this.#listener.addr.hostname === "::",
        maxPeers: this.#limits.connectionsPerTorrent,
      },
      resumePath: (hex) => this.#store?.resumePath(hex),
      dht: () => this.#openDht(),
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
        this.#dirty.add(t);
        return this.#requeue();
      },
    };
  }

  readonly #dirty = new Set<SessionTorrent>();
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
      this.#dirty.add(t);
      this.#rehash(); // a hybrid magnet link's v2 hash is known now
    });
    // looked up in the DHT from now on (a magnet link's peers are found there too), at once
    if (this.#opts.dht && !this.#dhtDue.has(t) && !(t.hasMetadata && t.metainfo.private)) {
      this.#dhtDue.set(t, { at: 0, delay: 2500 });
      queueMicrotask(() => this.#runDhtLookups(this.#now()));
    }
    t.dispatchEvent(new CustomEvent("adopted"));
  }

  #loaded(t: SessionTorrent): Promise<void> {
    this.#dirty.add(t);
    if (t.metainfo.private) this.#dhtDue.delete(t); // BEP 27 (a magnet link can turn out private)
    else if (this.#opts.dht && t.metainfo.nodes.length > 0) void this.#joinThrough(t);
    return this.#requeue().then(() => {
      this.#lsdChanged();
      this.#runDhtLookups(this.#now());
    });
  }

  /**
   * A torrent names DHT nodes (BEP 5 `nodes`, trackerless torrents): they are pinged, joining our node's table
   * when they answer, and the torrent is looked up again at once through them.
   */
  async #joinThrough(t: SessionTorrent): Promise<void> {
    const dht = await this.#openDht().catch(() => undefined);
    if (!dht) return;
    const answered = await Promise.all(
      t.metainfo.nodes.slice(0, 20).map((n) => dht.ping(n.host, n.port).catch(() => false)),
    );
    const due = this.#dhtDue.get(t);
    if (!answered.includes(true) || !due || this.#closed) return;
    if (due.at !== Number.POSITIVE_INFINITY) due.at = 0; // not while a lookup runs: it asks them already
    this.#runDhtLookups(this.#now());
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

  async #openDht(): Promise<Dht | undefined> {
    const o = this.#opts.dht;
    if (!o || this.#closed) return undefined;
    if (this.#dht) return this.#dht;
    if (o instanceof Dht) return this.#dht = o;
    this.#dhtOpening ??= (async () => {
      const host = this.#opts.host;
      const specific = host && host !== "::" && host !== "0.0.0.0" ? host : undefined;
      const state = await this.#store?.loadDhtState();
      const family = specific?.includes(":") ? 6 : 4;
      // a socket of its own only when the options ask for another port, address or family than ours
      const own = o !== true && (o.socket !== undefined ||
        (o.port !== undefined && o.port !== 0 && o.port !== this.port && o.port !== this.udpPort) ||
        (o.host !== undefined && o.host !== specific) ||
        (o.family !== undefined && o.family !== family));
      // on the peer port's socket, beside uTP (closing the node closes only its view)
      const mux = own ? undefined : this.#udp?.mux(family);
      const { port: _port, host: _host, ...rest } = o === true ? {} : o;
      const dht = await Dht.open({
        ...(specific ? { host: specific, family } : {}),
        ...(state ? { state } : {}),
        ...(mux ? { ...rest, socket: mux.dht } : o === true ? {} : o),
      });
      if (this.#closed) {
        await dht.close();
        return undefined;
      }
      this.#ownDht = true;
      return this.#dht = dht;
    })();
    return await this.#dhtOpening;
  }

  async #startLsd(): Promise<void> {
    const opts = typeof this.#opts.lsd === "object" ? this.#opts.lsd : {};
    const h = this.#opts.host;
    const iface = opts.interfaceAddress ??
      (h && h !== "::" && h !== "0.0.0.0" && !h.includes(":") ? h : undefined);
    this.#lsd = new LocalDiscovery({
      infoHashes: () =>
        this.#order.filter((t) => t.hasMetadata && !t.metainfo.private && t.run === "running")
          .map((t) => t.infohash),
      port: () => this.port,
      onPeer: (host, port, ih) => {
        const t = this.#routes.get(toHex(ih));
        if (t?.run === "running") t.engine?.addPeer(host, port, { source: "lsd" });
      },
      ...(iface ? { interfaceAddress: iface } : {}),
      ...(opts.multicastPort ? { multicastPort: opts.multicastPort } : {}),
    });
    await this.#lsd.start();
  }

  #lsdChanged(): void {
    this.#lsd?.announceSoon();
  }

  // ------------------------------------------------------------ incoming connections

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#closed) {
          conn.close();
          continue;
        }
        this.#incoming(tcpStream(conn), "tcp");
      }
    } catch {
      // listener closed
    }
  }

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
        this.#incoming(conn, "utp");
      },
    });
  }

  /**
   * An incoming connection: the torrent it is for is found from the plain handshake's info hash, or from an
   * encryption handshake's `req2 ⊕ req3` over every torrent; one deadline covers both handshakes.
   */
  #incoming(
    stream: PeerStream & { readonly remoteAddress: { host: string; port: number }; close(): void },
    transport: "tcp" | "utp",
  ): void {
    if (!this.#admitIncoming()) return stream.close();
    const { host, port } = stream.remoteAddress;
    const accepted = this.#now();
    acceptConnection(stream, this.#hashes, {
      timeoutMs: HANDSHAKE_MS,
      ...(this.#opts.encryption ? { policy: this.#opts.encryption } : {}),
      ...(this.#opts.rc4Only ? { rc4Only: true } : {}),
    }).then(
      ({ stream: plain, infoHash, encryption }) => {
        const t = infoHash ? this.#routes.get(toHex(infoHash)) : undefined;
        if (!t) return plain.close?.();
        const left = Math.max(1, HANDSHAKE_MS - (this.#now() - accepted));
        t.accept(plain, { host, port, handshakeTimeoutMs: left, encryption, transport });
      },
      (err) => {
        stream.close();
        if (this.#closed) return;
        this.#dispatch("peerfail", {
          address: addressKey(host, port),
          incoming: true,
          reason: asError(err).message,
        });
      },
    );
  }

  #admitIncoming(): boolean {
    let connections = 0;
    for (const t of this.#order) {
      const c = t.engine?.connections;
      if (c) connections += c.live + c.connecting;
    }
    return connections < this.#limits.connections + 10;
  }

  // ------------------------------------------------------------ queueing

  #pending: Promise<void> | undefined;
  #running: Promise<void> = Promise.resolve();

  /**
   * Re-decides soon which torrents run (several changes in one task are decided once, decisions one after
   * another); resolves once the decision is applied.
   */
  #requeue(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#pending ??= this.#running.then(() => {
      this.#pending = undefined;
      return this.#decide();
    }).catch((err) => this.#dispatch("error", { error: asError(err) }));
    this.#running = this.#pending;
    return this.#pending;
  }

  /**
   * Which torrents run: in queue order, those the user started, up to `activeDownloads` incomplete ones and
   * `activeSeeds` complete ones; the rest wait ("queued"). Paused torrents run (they keep their connections) and
   * count as active. Stopped ones are off.
   */
  async #decide(): Promise<void> {
    const l = this.#limits;
    let downloads = 0, seeds = 0;
    const plan: [SessionTorrent, RunState][] = [];
    for (const t of this.#order) {
      if (!t.engine) continue; // not loaded yet
      if (t.desired === "stopped") {
        plan.push([t, "off"]);
        continue;
      }
      const complete = t.engine.complete;
      const limit = complete ? l.activeSeeds : l.activeDownloads;
      const count = complete ? seeds : downloads;
      if (limit > 0 && count >= limit) {
        plan.push([t, "queued"]);
        continue;
      }
      if (complete) seeds++;
      else downloads++;
      plan.push([t, "running"]);
    }
    await Promise.all(
      plan.filter(([t, r]) => t.run !== r || r === "running").map(([t, r]) => t.drive(r)),
    );
  }

  // ------------------------------------------------------------ the tick

  #tick(): void {
    const now = this.#now();
    let stopped = false;
    for (const t of this.#order) {
      try {
        if (t.tick(now)) {
          stopped = true;
          this.#dirty.add(t);
        }
      } catch (err) {
        this.#dispatch("error", { torrent: t, error: asError(err) });
      }
    }
    if (stopped) this.#requeue();
    this.#runDhtLookups(now);
    if (this.#dirty.size > 0 && this.#store) {
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      for (const t of dirty) {
        if (this.#torrents.get(t.infohashHex) === t) {
          this.#save(t).catch((err) =>
            this.#dispatch("error", { torrent: t, error: asError(err) })
          );
        }
      }
    }
    if (now - this.#lastStats >= (this.#opts.statsIntervalMs ?? 1000)) {
      this.#lastStats = now;
      this.#dispatch("stats", this.stats);
    }
  }

  /** Looks torrents up in the DHT when due: at start, then every 15 minutes (sooner while nothing is found). */
  #runDhtLookups(now: number): void {
    const dht = this.#dht;
    if (!this.#opts.dht || this.#dhtDue.size === 0) return;
    if (!dht) {
      void this.#openDht();
      return;
    }
    for (const [t, due] of this.#dhtDue) {
      if (this.#dhtRunning >= DHT_LOOKUPS) break;
      if (due.at > now || t.desired === "stopped") continue;
      if (t.hasMetadata && t.run !== "running") continue; // a magnet link's metadata is looked for regardless
      due.at = Number.POSITIVE_INFINITY; // running
      this.#dhtRunning++;
      t.lookupDht(dht).then((found) => {
        due.delay = found > 0 ? 15 * 60_000 : Math.min(due.delay * 2, 5 * 60_000);
        due.at = this.#now() + due.delay;
      }).finally(() => this.#dhtRunning--);
    }
  }

  async #save(t: SessionTorrent): Promise<void> {
    if (!this.#store) return;
    await this.#writing(this.#store.saveTorrent(t, this.#order.indexOf(t)));
  }

  /** A write to the state directory that nobody awaits: `close()` waits for it (no file left open behind). */
  #writing(write: Promise<void>): Promise<void> {
    this.#writes.add(write);
    const done = () => void this.#writes.delete(write);
    write.then(done, done);
    return write;
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
    this.#lsd?.stop();
    // writes started by the tick or setLimits finish before the last ones
    await Promise.allSettled([...this.#writes]);
    const torrents = [...this.#order];
    await Promise.all(torrents.map(async (t) => {
      await t.close();
      if (this.#torrents.get(t.infohashHex) === t) await this.#save(t).catch(() => {});
    }));
    await this.#store?.saveSession(this.#nextId, this.#limits).catch(() => {});
    this.#bandwidth.down.close();
    this.#bandwidth.up.close();
    const dht = this.#dht ?? await this.#dhtOpening?.catch(() => undefined);
    if (dht && this.#ownDht) {
      await this.#store?.saveDhtState(dht.state()).catch(() => {});
      await dht.close();
    }
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

function listen(host: string | undefined, port: number): Deno.Listener {
  if (host !== undefined) return Deno.listen({ hostname: host, port, transport: "tcp" });
  try {
    return Deno.listen({ hostname: "::", port, transport: "tcp" });
  } catch {
    return Deno.listen({ hostname: "0.0.0.0", port, transport: "tcp" });
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Deletes a torrent's files (and the folders it made, when empty); never anything else. */
async function deleteTorrentFiles(t: SessionTorrent): Promise<void> {
  const dirs = new Set<string>();
  for (const f of t.files) {
    await Deno.remove(f.path).catch(() => {});
    let d = f.path;
    for (;;) {
      const parent = join(d, "..");
      if (parent === d || !parent.startsWith(t.basedir + "/") || parent === t.basedir) break;
      dirs.add(parent);
      d = parent;
    }
  }
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    await Deno.remove(d).catch(() => {});
  }
  const name = t.metainfo.name;
  await Deno.remove(join(t.basedir, `.${name}.parts`)).catch(() => {});
}

/**
 * Moves a torrent's files (and its part file) from one place to another: renamed, or copied and deleted where a
 * rename cannot cross file systems; folders left empty are removed. On failure the files moved so far go back.
 */
async function moveTorrentFiles(
  meta: { files: { path: string[]; padding: boolean }[] },
  from: { basedir: string; paths: string[][] },
  to: { basedir: string; paths: string[][] },
): Promise<void> {
  const moves: [string, string][] = [];
  meta.files.forEach((f, i) => {
    if (!f.padding) {
      moves.push([join(from.basedir, ...from.paths[i]), join(to.basedir, ...to.paths[i])]);
    }
  });
  const fromTop = from.paths[0]?.[0], toTop = to.paths[0]?.[0];
  if (fromTop && toTop) {
    moves.push([join(from.basedir, `.${fromTop}.parts`), join(to.basedir, `.${toTop}.parts`)]);
  }
  const done: [string, string][] = [];
  try {
    for (const [a, b] of moves) {
      if (a === b || !(await Deno.lstat(a).then(() => true, () => false))) continue;
      if (await Deno.lstat(b).then(() => true, () => false)) {
        throw new Error(`Cannot move ${a}: ${b} already exists`);
      }
      await moveFile(a, b);
      done.push([a, b]);
    }
  } catch (err) {
    for (const [a, b] of done.reverse()) await moveFile(b, a).catch(() => {});
    throw err;
  }
  // folders the torrent's files leave empty, deepest first (never the download directory itself)
  const dirs = new Set<string>();
  for (const [a] of done) {
    for (
      let d = join(a, "..");
      d.startsWith(from.basedir + "/") && d !== from.basedir;
      d = join(d, "..")
    ) {
      dirs.add(d);
    }
  }
  for (const d of [...dirs].sort((x, y) => y.length - x.length)) {
    await Deno.remove(d).catch(() => {});
  }
}

function plainName(name: unknown): boolean {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." &&
    !/[\/\\\0]/.test(name);
}

async function moveFile(from: string, to: string): Promise<void> {
  await Deno.mkdir(join(to, ".."), { recursive: true });
  try {
    await Deno.rename(from, to);
  } catch (err) {
    if (!(err instanceof Error && /cross-device|EXDEV/i.test(err.message))) throw err;
    await Deno.copyFile(from, to);
    await Deno.remove(from);
  }
}

export type { InitialState };
