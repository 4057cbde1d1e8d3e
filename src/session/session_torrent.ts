/**
 * One torrent of a {@linkcode Session}: where it comes from (a .torrent file, its bytes, a parsed torrent or a
 * magnet link whose metadata is fetched first), its engine, its events, and the members of AnyEvent::BitTorrent's
 * API (every member of `Client` — `Client` is this class with a session of its own).
 *
 * The session provides what torrents share ({@linkcode TorrentHost}): the peer id and listening port, the DHT
 * node, bandwidth and connection limits, the tick, and the state directory; it decides when the torrent may run
 * (queueing) and routes incoming connections to it.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { bytesEqual } from "../_bytes.ts";
import { asError } from "../_errors.ts";
import type { Dht } from "../dht/dht.ts";
import type { StreamSource } from "../http/stream_handler.ts";
import { formatMagnet, type MagnetLink, parseMagnet, torrentFromMetadata } from "../magnet.ts";
import { type Metainfo, parseMetainfo } from "../metainfo.ts";
import type { PieceCacheIndex } from "../storage/storage.ts";
import { Torrent } from "../swarm/torrent.ts";
import type { PeerInfo, TorrentEvents, TorrentOptions, TorrentState } from "../swarm/types.ts";
import type { PeerAddress } from "../tracker/compact.ts";
import type { TrackerTierView } from "../tracker/tiers.ts";
import { type RateGate, TokenBucket } from "../transport/bandwidth.ts";
import type { Encryption } from "../wire/mse.ts";
import type { PeerStream } from "../wire/stream.ts";
import { type ClientFile, clientFiles, streamSourceOf } from "./client_files.ts";
import type { FileStreamOptions } from "./file_stream.ts";
import type { InitialState, TorrentAddOptions, TorrentSource } from "./torrent_options.ts";
import { fetchMagnetMetadata, selectOnly, webSeedsOption, withPaths } from "./torrent_metadata.ts";

export type { ClientFile, FileStreamOptions, InitialState, TorrentAddOptions, TorrentSource };

/** The events a torrent dispatches: each of the engine's {@linkcode TorrentEvents} as a `CustomEvent`. */
export type ClientEventMap = { [K in keyof TorrentEvents]: CustomEvent<TorrentEvents[K]> };

/** What a torrent gets from its session. */
export interface TorrentHost {
  /** Resolves once the session listens. */
  readonly ready: Promise<void>;
  /** Our peer id. */
  readonly peerId: Uint8Array;
  /** The session's listening port (0 until it listens). */
  readonly port: number;
  /** The clock (ms). */
  readonly now: () => number;
  /** Engine settings shared by every torrent (pipeline depth, memory, tick, …). */
  readonly engine: Partial<TorrentOptions>;
  /** Where resume data goes by default, given the torrent's info hash; undefined without a state directory. */
  resumePath(infoHashHex: string): string | undefined;
  /** The DHT node, once open; undefined when the session runs none. */
  dht(): Promise<Dht | undefined>;
  /** The session's ratio, seeding-time and idle limits, for torrents without their own. */
  readonly stopRules: { ratioLimit: number; seedTimeLimit: number; idleSeedingLimit?: number };
  /** The torrent's identity is known: it is registered (throws when the session already has it). */
  adopt(torrent: SessionTorrent): void;
  /** The torrent's metadata is known and its storage checked: it may run; resolves once the session decided. */
  loaded(torrent: SessionTorrent): Promise<void>;
  /** A rate gate for the torrent's connections: its own buckets and the session's. */
  gate(down: TokenBucket, up: TokenBucket): RateGate;
  /** Room for one more connection in the session's budget. */
  admit(): boolean;
  /**
   * The user asked to start / stop the torrent, or something to save changed: the session re-decides what runs
   * (resolves once that is applied) and saves the torrent.
   */
  changed(torrent: SessionTorrent): Promise<void>;
}

/** How often a torrent with nothing going on is ticked (ms). */
const IDLE_TICK_MS = 5000;

/** How the torrent's engine is driven, decided by the session. */
export type RunState = "running" | "queued" | "off";

/** One torrent of a session. */
export class SessionTorrent extends EventTarget implements AsyncDisposable {
  /** Resolves once the torrent is loaded (metadata known, existing data checked) and registered. */
  readonly ready: Promise<void>;
  readonly #host: TorrentHost;
  readonly #source: TorrentSource;
  readonly #opts: TorrentAddOptions;
  readonly #basedir: string;
  #infoHash: Uint8Array | undefined;
  #meta: Metainfo | undefined;
  #torrentBytes: Uint8Array | undefined;
  #torrent: Torrent | undefined;
  #wanted: InitialState;
  #run: RunState = "off";
  #closed = false;
  /** The engine has loaded what is on disk (resume data read, pieces checked): the session may run it. */
  #loaded = false;
  #id = 0;
  readonly #abort = new AbortController();
  readonly #done: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly #down = new TokenBucket(0);
  readonly #up = new TokenBucket(0);
  #dhtPeers: ((peers: PeerAddress[]) => void) | undefined;
  readonly #dhtFound: PeerAddress[] = [];
  /** Totals over the torrent's life (restored from state), and seconds spent seeding. */
  #base = { uploaded: 0, downloaded: 0, seedingSeconds: 0 };
  #finished = false;
  /** Uploaded bytes at the last tick and seconds since they last grew (the idle seeding limit). */
  #idle = { uploaded: -1, seconds: 0 };
  #lastTick = 0;
  #addedAt = Date.now();
  #doneAt = 0;
  #error: string | undefined;

  /**
   * Creates a torrent of a session; use `Session.add` (or `new Client(…)`), which provide the host.
   *
   * @param host What the session provides.
   * @param source Where the torrent comes from.
   * @param options How it behaves.
   */
  constructor(host: TorrentHost, source: TorrentSource, options: TorrentAddOptions = {}) {
    super();
    const sources = [source.path, source.torrent, source.metainfo, source.magnet].filter((x) =>
      x !== undefined
    );
    if (sources.length !== 1) {
      throw new TypeError("A torrent needs exactly one of path, torrent, metainfo or magnet");
    }
    this.#host = host;
    this.#source = source;
    this.#opts = { ...options }; // configure() changes it
    this.#basedir = resolve(options.basedir ?? Deno.cwd());
    this.#wanted = options.state ?? "started";
    this.#down.rate = options.downloadLimit ?? 0;
    this.#up.rate = options.uploadLimit ?? 0;
    if (options.onHashPass) {
      const cb = options.onHashPass;
      this.addEventListener("hashpass", (e) => cb(e.detail.index));
    }
    if (options.onHashFail) {
      const cb = options.onHashFail;
      this.addEventListener("hashfail", (e) => cb(e.detail.index));
    }
    this.addEventListener("complete", () => this.#done.resolve());
    this.#done.promise.catch(() => {});
    this.ready = this.#init();
    this.ready.catch((err) => this.#error = asError(err).message);
  }

  async #init(): Promise<void> {
    await this.#host.ready;
    const s = this.#source;
    let link: MagnetLink | undefined;
    if (s.magnet) {
      link = typeof s.magnet === "string" ? parseMagnet(s.magnet) : s.magnet;
      this.#magnetUri = typeof s.magnet === "string" ? s.magnet : formatMagnet(s.magnet);
      this.#infoHash = link.infoHash;
      this.#infoHashV2 = link.infoHashV2;
    } else {
      if (s.metainfo) this.#meta = s.metainfo;
      else {
        this.#torrentBytes = s.torrent ?? await Deno.readFile(s.path!);
        // a v2 torrent saved before a magnet link's piece layers arrived gets the rest from peers
        this.#meta = await parseMetainfo(this.#torrentBytes, { allowMissingPieceLayers: true });
      }
      this.#infoHash = this.#meta.infoHash;
      this.#infoHashV2 = this.#meta.infoHashV2;
      if (this.#opts.paths) this.#meta = withPaths(this.#meta, this.#opts.paths);
    }
    this.#host.adopt(this);
    if (link) {
      this.#torrentBytes = await fetchMagnetMetadata(link, {
        peerId: this.#host.peerId,
        port: this.#host.port,
        peers: this.#opts.peers ?? [],
        signal: this.#abort.signal,
        discover: (add) => this.#setDhtSink(add),
        engine: this.#host.engine,
        ...(this.#opts.metadataTimeoutMs ? { timeoutMs: this.#opts.metadataTimeoutMs } : {}),
      });
      // a v2 info dictionary comes without its piece layers: the engine fetches them from peers (BEP 52)
      this.#meta = await parseMetainfo(this.#torrentBytes, { allowMissingPieceLayers: true });
      this.#infoHashV2 = this.#meta.infoHashV2;
      if (this.#opts.paths) this.#meta = withPaths(this.#meta, this.#opts.paths);
      this.dispatchEvent(new CustomEvent("metadata"));
    }
    const meta = this.#meta!;
    const o = this.#opts;
    const priorities = o.priorities ?? (link ? selectOnly(link, meta) : undefined);
    // without a state directory resume data lives beside the data, as it always did
    const legacy = join(this.#basedir, `.${meta.name}.seedbed-resume`);
    const resumeFile = o.resumeFile === false
      ? undefined
      : o.resumeFile !== undefined
      ? resolve(o.resumeFile)
      : this.#host.resumePath(meta.infoHashHex) ?? legacy;
    const torrent = new Torrent({
      ...this.#host.engine,
      meta,
      dir: this.#basedir,
      peerId: this.#host.peerId,
      port: () => this.#host.port,
      emit: (type, detail) => this.#dispatch(type, detail),
      now: this.#host.now,
      rate: this.#host.gate(this.#down, this.#up),
      admit: () => this.#host.admit(),
      ...(priorities ? { priorities } : {}),
      ...(o.pieceCache ? { pieceCache: o.pieceCache } : {}),
      ...(resumeFile ? { resumePath: resumeFile } : {}),
      ...(resumeFile && resumeFile !== legacy ? { legacyResumePath: legacy } : {}),
      ...(o.trackers === false ? { trackers: false } : {}),
      ...(o.webSeeds === false ? { webSeeds: false } : {}),
      ...webSeedsOption(o.extraWebSeeds, o.webSeeds === false ? [] : link?.webSeeds),
      ...(o.maxPeers ? { maxPeers: o.maxPeers } : {}),
      ...(o.uploadEachPieceOnce ? { uploadEachPieceOnce: true } : {}),
      ...(o.trace ? { trace: o.trace } : {}),
      ...(o.sequential ? { sequential: true } : {}),
      dhtPort: () => meta.private ? 0 : this.#dhtPort,
      onDhtNode: (host, port) => void this.#host.dht().then((d) => d?.ping(host, port)),
    });
    this.#torrent = torrent;
    await torrent.open();
    if (this.#closed) return;
    this.#loaded = true;
    for (const p of o.peers ?? []) torrent.addPeer(p.host, p.port);
    if (link) { for (const p of link.peers) torrent.addPeer(p.host, p.port); }
    this.#setDhtSink((peers) => {
      for (const p of peers) torrent.addPeer(p.host, p.port, { source: "dht" });
    });
    if (torrent.complete) this.#done.resolve();
    await this.#host.loaded(this);
  }

  #dhtPort = 0;
  #magnetUri: string | undefined;
  #infoHashV2: Uint8Array | undefined;
  #wireHashes: Uint8Array[] | undefined;

  /**
   * The 20-byte info hashes peers may use for this torrent: the one {@linkcode SessionTorrent.infohash} names, and
   * for a hybrid torrent also the truncated v2 hash (BEP 52). The same array until the metadata brings a new one.
   */
  get infoHashes(): readonly Uint8Array[] {
    const v1 = this.infohash;
    const v2 = this.#infoHashV2?.subarray(0, 20);
    if (!this.#wireHashes || (v2 && this.#wireHashes.length === 1 && !bytesEqual(v1, v2))) {
      this.#wireHashes = v2 && !bytesEqual(v1, v2) ? [v1, v2] : [v1];
    }
    return this.#wireHashes;
  }

  /** The magnet link it was added from, if it was. */
  get magnetUri(): string | undefined {
    return this.#magnetUri;
  }

  /**
   * Looks the torrent up in the DHT and announces us; called by the session when due.
   *
   * @returns How many peers were found.
   */
  async lookupDht(dht: Dht): Promise<number> {
    return await this.#lookup(dht);
  }

  async #lookup(dht: Dht): Promise<number> {
    if (this.#closed || this.#meta?.private || !this.#infoHash) return 0;
    this.#dhtPort = dht.port;
    // a hybrid torrent is looked up and announced under both hashes (BEP 52)
    const found = await Promise.all(this.infoHashes.map((hash) =>
      dht.lookup(hash, {
        announcePort: this.#host.port,
        onPeers: (peers) => {
          for (const p of peers) if (this.#dhtFound.length < 500) this.#dhtFound.push(p);
          this.#dhtPeers?.(peers);
        },
        signal: this.#abort.signal,
      }).catch(() => [])
    ));
    return found.reduce((n, f) => n + f.length, 0);
  }

  /** Where DHT peers go (the metadata fetch, then the torrent); the peers found so far are given at once. */
  #setDhtSink(sink: (peers: PeerAddress[]) => void): void {
    this.#dhtPeers = sink;
    if (this.#dhtFound.length) sink([...this.#dhtFound]);
  }

  #dispatch<K extends keyof TorrentEvents>(type: K, detail: TorrentEvents[K]): void {
    if (type === "complete") {
      this.#doneAt ||= Date.now();
      void this.#host.changed(this);
    }
    if (type === "piecelayers" && this.#meta) {
      // the .torrent is whole now: saved again with its piece layers
      this.#torrentBytes = torrentFromMetadata(this.#meta.info, this.#meta.announceList.flat(), {
        pieceLayers: this.#meta.pieceLayers,
      });
      void this.#host.changed(this);
    }
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #t(): Torrent {
    if (!this.#torrent) throw new Error("The torrent is not ready yet: await its ready first");
    return this.#torrent;
  }

  #m(): Metainfo {
    if (!this.#meta) throw new Error("The torrent is not ready yet: await its ready first");
    return this.#meta;
  }

  // ------------------------------------------------------------ for the session

  /** The session's number for this torrent, kept across restarts (0 until added). */
  get id(): number {
    return this.#id;
  }

  /** @internal Set by the session. */
  set id(id: number) {
    this.#id = id;
  }

  /** What the user asked for: started, paused or stopped. */
  get desired(): InitialState {
    return this.#wanted;
  }

  /** How the session drives the engine: running, queued (waiting for a slot) or off. */
  get run(): RunState {
    return this.#run;
  }

  /**
   * The engine (the session ticks it and hands it connections), from the moment it is made: it may still be
   * loading what is on disk, see {@linkcode SessionTorrent.loaded}.
   */
  get engine(): Torrent | undefined {
    return this.#torrent;
  }

  /**
   * True once the engine has loaded what is on disk (resume data read, pieces checked): only then does the
   * session start it, so that it never asks peers for pieces it already has.
   */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** True when a seeding limit stopped the torrent (Transmission's `isFinished`). */
  get finished(): boolean {
    return this.#finished;
  }

  /** This torrent's own limits (bytes/s; 0 = none). */
  get limits(): { download: number; upload: number } {
    return { download: this.#down.rate, upload: this.#up.rate };
  }

  /** Changes this torrent's own limits (bytes/s; 0 = none); effective at once. */
  set limits(l: { download?: number; upload?: number }) {
    if (l.download !== undefined) this.#down.rate = l.download;
    if (l.upload !== undefined) this.#up.rate = l.upload;
    void this.#host.changed(this);
  }

  /**
   * Changes this torrent's connection limit and its own stop rules from now on (saved with the session's
   * state); `null` makes a rule the session's again.
   *
   * @param options What to change.
   */
  configure(options: {
    maxPeers?: number;
    ratioLimit?: number | null;
    seedTimeLimit?: number | null;
    idleSeedingLimit?: number | null;
  }): void {
    const o = this.#opts;
    if (options.maxPeers !== undefined) {
      o.maxPeers = options.maxPeers;
      if (this.#torrent) this.#torrent.maxPeers = options.maxPeers;
    }
    for (const k of ["ratioLimit", "seedTimeLimit", "idleSeedingLimit"] as const) {
      const v = options[k];
      if (v === null) delete o[k];
      else if (v !== undefined) o[k] = v;
    }
    void this.#host.changed(this);
  }

  /** Asks the trackers for peers now (as soon as their minimum interval allows). */
  reannounce(): void {
    this.#torrent?.reannounce();
  }

  /** The options it was added with (for saving the session's state). */
  get options(): Readonly<TorrentAddOptions> {
    return this.#opts;
  }

  /** The download directory. */
  get basedir(): string {
    return this.#basedir;
  }

  /** When it was added and when it completed (ms since the epoch; 0 = not yet). */
  get dates(): { added: number; done: number } {
    return { added: this.#addedAt, done: this.#doneAt };
  }

  /** Payload bytes over the torrent's life (this run plus earlier ones), and seconds spent seeding. */
  get totals(): { uploaded: number; downloaded: number; seedingSeconds: number } {
    return {
      uploaded: this.#base.uploaded + this.uploaded,
      downloaded: this.#base.downloaded + this.downloaded,
      seedingSeconds: this.#base.seedingSeconds,
    };
  }

  /** Why loading failed, if it did. */
  get errorText(): string | undefined {
    return this.#error ?? this.#torrent?.error?.message;
  }

  /**
   * @internal The session restores what it saved: totals, dates, whether a limit stopped it.
   */
  restore(saved: {
    uploaded?: number;
    downloaded?: number;
    seedingSeconds?: number;
    added?: number;
    done?: number;
    finished?: boolean;
  }): void {
    this.#base = {
      uploaded: saved.uploaded ?? 0,
      downloaded: saved.downloaded ?? 0,
      seedingSeconds: saved.seedingSeconds ?? 0,
    };
    if (saved.added) this.#addedAt = saved.added;
    if (saved.done) this.#doneAt = saved.done;
    this.#finished = saved.finished ?? false;
  }

  /**
   * @internal The session's tick: the engine's tick, seeding time and the stop rules.
   *
   * @param now The current time (ms).
   * @returns True when a seeding limit was just reached (the torrent stops).
   */
  tick(now: number): boolean {
    const t = this.#torrent;
    if (!t || this.#run !== "running") {
      this.#lastTick = 0;
      return false;
    }
    // a torrent with nothing going on (no peers, nothing to dial, nothing being written) ticks every 5 s
    if (t.idle && this.#lastTick > 0 && now - this.#lastTick < IDLE_TICK_MS) return false;
    const seconds = this.#lastTick > 0 ? Math.max(0, (now - this.#lastTick) / 1000) : 0;
    this.#lastTick = now;
    t.tick(now);
    if (!t.complete || t.state !== "active") return false;
    this.#base.seedingSeconds += seconds;
    const uploaded = this.uploaded;
    if (uploaded !== this.#idle.uploaded) this.#idle = { uploaded, seconds: 0 };
    else this.#idle.seconds += seconds;
    const rules = this.#host.stopRules;
    const ratio = this.#opts.ratioLimit ?? rules.ratioLimit;
    const seedTime = this.#opts.seedTimeLimit ?? rules.seedTimeLimit;
    const idle = this.#opts.idleSeedingLimit ?? rules.idleSeedingLimit ?? 0;
    const size = this.#meta?.length ?? 0;
    const reached = (ratio > 0 && size > 0 && this.totals.uploaded / size >= ratio) ||
      (seedTime > 0 && this.#base.seedingSeconds >= seedTime) ||
      (idle > 0 && this.#idle.seconds >= idle);
    if (!reached) return false;
    this.#finished = true;
    this.#wanted = "stopped";
    return true;
  }

  /**
   * @internal The session decides how the engine runs.
   *
   * @param run Running (as the user wants it: started or paused), queued, or off.
   */
  async drive(run: RunState): Promise<void> {
    this.#run = run;
    const t = this.#torrent;
    if (!t || this.#closed) return;
    if (run !== "running") {
      if (t.state !== "stopped") await t.stop();
      return;
    }
    if (this.#wanted === "paused") t.pause();
    else if (this.#wanted === "started") t.start();
    else if (t.state !== "stopped") await t.stop();
  }

  /**
   * @internal An incoming connection for this torrent (its encryption handshake, if any, done).
   *
   * @returns False when refused.
   */
  accept(
    stream: PeerStream,
    options: {
      host: string;
      port: number;
      handshakeTimeoutMs: number;
      encryption?: Encryption;
      transport?: "tcp" | "utp";
    },
  ): boolean {
    if (!this.#torrent || this.#run !== "running") {
      stream.close?.();
      return false;
    }
    return this.#torrent.accept(stream, options);
  }

  // ------------------------------------------------------------ the seed's methods

  /** Resolves when every wanted piece is verified on disk (immediately when already complete). */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /**
   * Verifies data on disk: a list of pieces, a single piece, or (with no argument) everything. Each piece
   * dispatches `hashpass` or `hashfail` (and calls `onHashPass` / `onHashFail`).
   *
   * @param pieces A piece index, a list of indexes, or nothing for all pieces.
   */
  async hashcheck(pieces?: number | Iterable<number>): Promise<void> {
    await this.ready;
    const list = typeof pieces === "number" ? [pieces] : pieces;
    await this.#t().hashcheck(list);
  }

  /** Sends `started` to trackers and downloads/uploads normally (when the session's queue lets it run). */
  async start(): Promise<void> {
    await this.ready;
    this.#wanted = "started";
    this.#finished = false;
    this.#idle = { uploaded: -1, seconds: 0 };
    await this.#host.changed(this);
  }

  /** Sends `stopped` to trackers, closes every connection and file, refuses incoming peers. */
  async stop(): Promise<void> {
    await this.ready;
    this.#wanted = "stopped";
    await this.#host.changed(this);
  }

  /** Keeps connections but chokes every peer and makes and fills no requests; `start()` resumes. */
  async pause(): Promise<void> {
    await this.ready;
    this.#wanted = "paused";
    await this.#host.changed(this);
  }

  /** The 20-byte info hash peers and trackers know the torrent by (known before its metadata). */
  get infohash(): Uint8Array {
    if (!this.#infoHash) return this.#m().infoHash;
    return this.#infoHash;
  }

  /** The info hash as 40 lower-case hex digits. */
  get infohashHex(): string {
    return [...this.infohash].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Our 20-byte peer id. */
  get peerid(): Uint8Array {
    return this.#host.peerId;
  }

  /** The port we listen on (0 until the session listens). */
  get port(): number {
    return this.#host.port;
  }

  /** Total bytes of all files. */
  get size(): number {
    return this.#m().length;
  }

  /** The name the torrent suggests for the file or directory (sanitised). */
  get name(): string {
    return this.#m().name;
  }

  /** Payload bytes uploaded to peers since the torrent was loaded. */
  get uploaded(): number {
    return this.#torrent?.uploaded ?? 0;
  }

  /** Payload bytes downloaded from peers since the torrent was loaded. */
  get downloaded(): number {
    return this.#torrent?.downloaded ?? 0;
  }

  /** Bytes of wanted pieces not yet verified. */
  get left(): number {
    return this.#t().left;
  }

  /** Bytes per piece (the last piece may be shorter). */
  get pieceLength(): number {
    return this.#m().pieceLength;
  }

  /** Packed bitfield (piece 0 = high bit of byte 0) of the pieces we have. */
  get bitfield(): Uint8Array {
    return this.#t().have.bytes.slice();
  }

  /** Packed bitfield of the pieces we want and do not have; computed on every call. */
  get wanted(): Uint8Array {
    return this.#t().wantedBits();
  }

  /** True when everything wanted is downloaded (not necessarily everything). */
  get complete(): boolean {
    return this.#t().complete;
  }

  /** True when we have every piece and can seed. */
  get seed(): boolean {
    return this.#t().seed;
  }

  /**
   * The torrent's files with length, absolute path, (settable) priority, and a stream of their bytes; padding
   * files left out (`index` is a file's place in the torrent's list, padding files included).
   */
  get files(): ClientFile[] {
    const t = this.#t();
    return clientFiles(t, this.#m(), {
      basedir: this.#basedir,
      setPriority: (i, p) =>
        this.setPriority(i, p).catch((error) => this.#dispatch("error", { error: asError(error) })),
    });
  }

  /**
   * This torrent's files as a {@linkcode StreamSource} for the HTTP stream handler (`createStreamHandler`,
   * `serveStreams`): its name, its info hash (the v2 one for a v2-only torrent), and each file with live progress
   * and its {@linkcode ClientFile.stream}.
   *
   * @returns The source; its `files` are read afresh on every access.
   */
  streamSource(): StreamSource {
    return streamSourceOf(this.#m(), () => this.files);
  }

  /**
   * Sets a file's download priority and waits until storage has applied it (data of a file raised from 0 moved
   * out of the part file).
   *
   * @param file File index (as in `files`).
   * @param priority 0 = do not download; higher is sooner.
   */
  async setPriority(file: number, priority: number): Promise<void> {
    if (!this.#torrent) await this.ready;
    // applied at once (before the first await), so `files[i].priority` reads back the new value
    const step = this.#t().setPriority(file, priority);
    void this.#host.changed(this);
    await step;
  }

  /** Currently connected peers. */
  get peers(): PeerInfo[] {
    return this.#torrent?.peers() ?? [];
  }

  /** "active", "paused" or "stopped" (a queued torrent is stopped). */
  get state(): TorrentState {
    return this.#torrent?.state ?? "stopped";
  }

  /** Index of the part file holding pieces that overlap priority-0 files; pass it back as `pieceCache`. */
  get pieceCache(): PieceCacheIndex | undefined {
    return this.#torrent?.pieceCache;
  }

  /** Tracker tiers (BEP 12) with counts, failures and the peers each returned. */
  get trackers(): TrackerTierView[] {
    return this.#t().trackers();
  }

  // ------------------------------------------------------------ beyond the seed

  /** True once the metadata is known (a magnet link's is fetched first). */
  get hasMetadata(): boolean {
    return this.#meta !== undefined;
  }

  /** The .torrent file's bytes (built from the fetched metadata for a magnet link). */
  get torrentFile(): Uint8Array {
    const m = this.#m();
    this.#torrentBytes ??= torrentFromMetadata(
      m.info,
      m.announceList.flat(),
      m.version === 1 ? {} : { pieceLayers: m.pieceLayers },
    );
    return this.#torrentBytes;
  }

  /** The parsed torrent. */
  get metainfo(): Metainfo {
    return this.#m();
  }

  /** Current download rate, bytes/s. */
  get downloadRate(): number {
    return this.#torrent?.downloadRate ?? 0;
  }

  /**
   * Bytes the pieces being downloaded may hold now (0 before the torrent is ready): the piece budget, which adapts
   * to the link between 8 MiB and the `pieceMemory` setting, the session's total (shared with the other torrents
   * that want more than 8 MiB).
   */
  get pieceBudget(): number {
    return this.#torrent?.pieceBudget ?? 0;
  }

  /** Current upload rate, bytes/s. */
  get uploadRate(): number {
    return this.#torrent?.uploadRate ?? 0;
  }

  /** Bytes of wanted data in total and verified so far, and hash-check progress (0-1) while one runs. */
  get progress(): { have: number; total: number; checking: number | undefined } {
    return this.#torrent?.progress ??
      { have: 0, total: this.#meta?.length ?? 0, checking: undefined };
  }

  /** True while a hash check is running. */
  get checking(): boolean {
    return this.#torrent?.checking ?? false;
  }

  /** Pieces hashed when the torrent was loaded (0 when resume data vouched for everything). */
  get checkedAtLoad(): number {
    return this.#torrent?.checkedAtLoad ?? 0;
  }

  /**
   * Dials a peer directly (tracker-less use); retried with backoff until it answers.
   *
   * @param host IP address or host name.
   * @param port TCP port.
   */
  addPeer(host: string, port: number): void {
    this.#t().addPeer(host, port);
  }

  /** Writes resume data now (it is also written as pieces arrive and on stop). */
  async saveResume(): Promise<void> {
    await this.ready;
    await this.#t().saveResume();
  }

  /** Stops (announcing `stopped`) and closes every file; the session forgets it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    await this.ready.catch(() => {});
    await this.#torrent?.close();
    this.#done.reject(new Error("The torrent was closed before the download completed"));
  }

  /** Same as {@linkcode SessionTorrent.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// Typed event listeners, in the style of oak's Application.
/** Typed event listener overloads of {@linkcode SessionTorrent}. */
export interface SessionTorrent {
  /** Typed listener for a {@linkcode ClientEventMap} event. */
  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: SessionTorrent, ev: ClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Any other listener. */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Removes a typed listener. */
  removeEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: SessionTorrent, ev: ClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Removes any other listener. */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
