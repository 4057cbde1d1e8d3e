/**
 * One torrent's engine, as a coordinator: it wires the parts (each one concern, in its own file) and runs the
 * torrent's tick. Nothing here owns a socket that other torrents need: the owner (a Client or a Session) accepts
 * connections, sorts out encryption, and hands each one over with {@linkcode Torrent.accept}; it also drives
 * {@linkcode Torrent.tick}.
 *
 * - `peer_set.ts`: addresses, dialling, live connections, bans; `peer_events.ts`: what each connection says, routed
 * - `piece_picker.ts` + `requests.ts`: which block to ask whom for; `piece_memory.ts`: the piece budget kept current
 * - `write_path.ts` + `piece_writer.ts`: verify → write → retry, the disk pause; `smart_ban.ts`: who sent bad data
 * - `completion.ts`: a piece becoming ours, and completing; `v2_hashes.ts`: BEP 52 hashes; `torrent_announcer.ts`
 * - `uploads.ts` + `storage/piece_cache.ts`: serving requests; `superseed.ts`; `choker.ts`; `pex.ts`; BEP 9 metadata
 * - `webseeds.ts`: web seeds (BEP 19 / 17), whole pieces over HTTP into the same verify → write path
 * - `streaming.ts` + `deadlines.ts`: readers' deadlines on pieces; `verified_reads.ts`: reads of verified bytes
 *
 * Data path of a download: peer (validated block) → picker (copied into its piece buffer) → writer (SHA-1, one
 * piece after another; then the writer thread) → `have` broadcast. Uploads: request → piece cache → send buffer.
 *
 * @module
 */

import { asError } from "../_errors.ts";
import { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import { PieceVerifier } from "../storage/hasher.ts";
import { CacheBudget } from "../storage/piece_cache.ts";
import type { PieceCacheIndex, StorageError } from "../storage/storage.ts";
import { TorrentData } from "../storage/torrent_data.ts";
import type { TrackerTierView } from "../tracker/tiers.ts";
import type { Encryption } from "../wire/mse.ts";
import type { PeerStream } from "../wire/stream.ts";
import type { Announcer } from "./announcer.ts";
import { chokePeer, Choker, rechoke } from "./choker.ts";
import { Completion } from "./completion.ts";
import { Connector } from "./connector.ts";
import type { DeadlineReader, PieceDeadlines } from "./deadlines.ts";
import { Downloads } from "./downloads.ts";
import type { HashExchange } from "./hash_exchange.ts";
import { PeerSet } from "./peer_set.ts";
import { Pex } from "./pex.ts";
import { peerEvents } from "./peer_events.ts";
import { PieceMemory } from "./piece_memory.ts";
import { type PartialPiece, PiecePicker } from "./piece_picker.ts";
import type { PieceWriter } from "./piece_writer.ts";
import { SmartBan } from "./smart_ban.ts";
import { streamingDeadlines } from "./streaming.ts";
import type {
  PeerEntry,
  PeerInfo,
  PeerSource,
  TorrentEmit,
  TorrentEvents,
  TorrentOptions,
  TorrentState,
} from "./types.ts";
import { torrentAnnouncer } from "./torrent_announcer.ts";
import { Uploads } from "./uploads.ts";
import { askHashes, v2Hashes } from "./v2_hashes.ts";
import { VerifiedReads } from "./verified_reads.ts";
import { WebSeeds } from "./webseeds.ts";
import { type DiskState, pieceWriter } from "./write_path.ts";

export type { PeerInfo, PeerSource, TorrentEmit, TorrentEvents, TorrentOptions, TorrentState };

/** Ticks between PEX rounds (one a minute at the default tick). */
const PEX_TICKS = 60;
const RECHOKE_TICKS = 10;
/** Default of {@linkcode TorrentOptions.uploadMemory}. */
const UPLOAD_MEMORY = 32 * 1024 * 1024;

/** One torrent's swarm engine. */
export class Torrent implements AsyncDisposable {
  /** The parsed torrent. */
  readonly meta: Metainfo;
  /** The download directory. */
  readonly dir: string;
  /** Our peer id. */
  readonly peerId: Uint8Array;
  /** The pieces verified on disk. */
  readonly have: Bitfield;
  readonly #emit: TorrentEmit;
  readonly #opts: TorrentOptions;
  readonly #now: () => number;
  readonly #picker: PiecePicker;
  readonly #memory: PieceMemory<PeerEntry>;
  readonly #choker: Choker;
  readonly #peers: PeerSet;
  readonly #pex = new Pex();
  readonly #smartBan = new SmartBan((id, reason) => {
    const e = this.#peers.byId(id);
    if (e) this.#peers.ban(e, reason);
  });
  readonly #uploads: Uploads;
  readonly #writer: PieceWriter;
  readonly #downloads: Downloads;
  readonly #webSeeds: WebSeeds;
  readonly #data: TorrentData;
  #priorities: number[];
  readonly #announcer: Announcer;
  #state: TorrentState = "stopped";
  #ticks = 0;
  #lastTick = 0;
  #uploaded = 0;
  #downloaded = 0;
  /** What the disk did: a pause of ours, and the last storage error. */
  readonly #disk: DiskState = { paused: false, error: undefined };
  readonly #abort = new AbortController();
  readonly #connector: Connector;
  readonly #verifier: PieceVerifier;
  readonly #deadlines: PieceDeadlines;
  readonly #reads: VerifiedReads;
  readonly #completion: Completion;
  /** BEP 52 hash messages (v2 and hybrid torrents): serving them, and fetching missing piece layers. */
  readonly #hashes: HashExchange | undefined;

  /**
   * Creates a {@linkcode Torrent}.
   *
   * @param options The torrent, where its data lives, and how to behave.
   */
  constructor(options: TorrentOptions) {
    const meta = options.meta;
    this.meta = meta;
    this.dir = options.dir;
    this.peerId = options.peerId;
    this.#emit = options.emit;
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    this.#priorities = options.priorities?.slice() ?? meta.files.map(() => 1);
    this.have = new Bitfield(meta.pieceCount);
    this.#data = new TorrentData({
      layout: meta,
      dir: options.dir,
      priorities: this.#priorities,
      have: this.have,
      ...(options.pieceCache ? { pieceCache: options.pieceCache } : {}),
      ...(options.resumePath ? { resumePath: options.resumePath, resumeId: meta.infoHashHex } : {}),
      ...(options.legacyResumePath ? { legacyResumePath: options.legacyResumePath } : {}),
      ...(options.preallocate ? { preallocate: true } : {}),
    });
    this.#choker = new Choker(options.seedSlots ? { seedSlots: options.seedSlots } : {});
    this.#memory = new PieceMemory({
      pieceLength: meta.pieceLength,
      ceiling: options.pieceMemory,
      pool: options.pieceMemoryPool,
      peers: () => this.#peers.entries.values(),
      rttMs: (e) => this.#downloads.rttMs(e),
      seed: (e) => e.conn.bitfield.full,
      downloaded: () => this.#downloaded,
      apply: (pieces) => this.#picker.maxInMemory = pieces,
    });
    this.#picker = new PiecePicker({
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      have: this.have,
      maxInMemory: this.#memory.pieces,
      ...(options.sequential ? { sequential: true } : {}),
    });
    this.#peers = new PeerSet({
      maxPeers: options.maxPeers ?? 50,
      maxConnecting: options.maxConnecting ?? 8,
      now: this.#now,
      dial: (c) => this.#connector.dial(c),
      ...(options.admit ? { admit: options.admit } : {}),
    });
    this.#uploads = new Uploads({
      pieceLength: meta.pieceLength,
      pieceSize: (i) => this.#picker.pieceSize(i),
      budget: options.uploadCache ??
        new CacheBudget(Math.max(2 * meta.pieceLength, options.uploadMemory ?? UPLOAD_MEMORY)),
      read: (index, into) =>
        this.#data.storage?.readPiece(index, into) ?? Promise.resolve(undefined),
      canServe: (index) => this.#state === "active" && this.have.has(index),
      eachPieceOnce: options.uploadEachPieceOnce ?? false,
      peers: () => this.#peers.entries.values(),
      onError: (error) => this.#emit("error", { error }),
    });
    this.#verifier = new PieceVerifier({
      pieces: meta.pieces,
      layout: meta,
      worker: options.hashWorker ?? false,
    });
    this.#hashes = v2Hashes({
      meta,
      data: this.#data,
      have: this.have,
      peers: this.#peers,
      active: () => this.#state === "active",
      fill: (e) => this.#downloads.fill(e),
      onComplete: () => {
        this.#emit("piecelayers", {});
        if (this.seed) this.#completion.closeSeeds();
      },
      now: this.#now,
    });
    this.#downloads = new Downloads({
      picker: this.#picker,
      now: this.#now,
      active: () => this.#state === "active",
      wanting: () => this.#state !== "stopped" && !this.complete,
      peers: () => this.#peers.entries.values(),
      onPiece: (piece) => this.#writer.add(piece),
      onBytes: (n) => this.#downloaded += n,
      ...(options.trace ? { trace: options.trace } : {}),
      held: () => this.#hashes?.held,
    });
    this.#webSeeds = new WebSeeds({
      meta,
      picker: this.#picker,
      ...(options.webSeeds === false ? { enabled: false } : {}),
      ...(options.extraWebSeeds ? { extra: options.extraWebSeeds } : {}),
      onPiece: (piece) => this.#writer.add(piece),
      onBytes: (n) => this.#downloaded += n,
      emit: this.#emit,
    });
    this.#writer = pieceWriter({
      data: this.#data,
      verifier: this.#verifier,
      picker: this.#picker,
      smartBan: this.#smartBan,
      webSeeds: this.#webSeeds,
      disk: this.#disk,
      emit: this.#emit,
      state: () => this.#state,
      pause: () => this.#pause(),
      start: () => this.start(),
      onWritten: (piece) => this.#written(piece),
      settings: options,
      now: this.#now,
    });
    this.#deadlines = streamingDeadlines({
      meta,
      have: this.have,
      picker: this.#picker,
      peers: this.#peers,
      downloads: this.#downloads,
      active: () => this.#state === "active",
      rate: () => this.downloadRate,
    });
    this.#reads = new VerifiedReads({
      pieceLength: meta.pieceLength,
      has: (i) => this.have.has(i),
      data: this.#data,
    });
    this.#announcer = torrentAnnouncer({
      meta,
      settings: options,
      peerId: this.peerId,
      picker: this.#picker,
      transferred: () => ({ uploaded: this.#uploaded, downloaded: this.#downloaded }),
      addPeer: (host, port) => this.addPeer(host, port, { source: "tracker" }),
      emit: this.#emit,
      now: this.#now,
    });
    this.#completion = new Completion({
      meta,
      have: this.have,
      data: this.#data,
      picker: this.#picker,
      peers: this.#peers,
      downloads: this.#downloads,
      deadlines: this.#deadlines,
      webSeeds: this.#webSeeds,
      announcer: this.#announcer,
      hashes: this.#hashes,
      emit: this.#emit,
      state: () => this.#state,
      beforeHad: () => this.#memory.update(this.#now(), true),
      runWebSeeds: () => this.#runWebSeeds(),
    });
    this.#connector = new Connector({
      meta,
      peerId: this.peerId,
      port: options.port,
      peers: this.#peers,
      picker: this.#picker,
      handler: peerEvents({
        meta,
        peerId: this.peerId,
        have: this.have,
        peers: this.#peers,
        downloads: this.#downloads,
        uploads: this.#uploads,
        choker: this.#choker,
        pex: this.#pex,
        hashes: this.#hashes,
        state: () => this.#state,
        dhtPort: () => this.#dhtPort(),
        addPeer: (host, port, o) => this.addPeer(host, port, o),
        onUploaded: (bytes) => this.#uploaded += bytes,
        emit: this.#emit,
        settings: options,
      }),
      dhtPort: () => this.#dhtPort(),
      stopped: () => this.#state === "stopped",
      wantsV2: () => this.#hashes?.complete === false,
      onFail: (e) => this.#emit("peerfail", e),
      signal: this.#abort.signal,
      now: this.#now,
      settings: options,
    });
    this.#applyPriorities();
  }

  /** "active", "paused" or "stopped". */
  get state(): TorrentState {
    return this.#state;
  }

  /** Payload bytes sent to peers. */
  get uploaded(): number {
    return this.#uploaded;
  }

  /** Payload bytes received from peers. */
  get downloaded(): number {
    return this.#downloaded;
  }

  /** Bytes of wanted pieces we do not have yet. */
  get left(): number {
    return this.#picker.leftBytes;
  }

  /** Bytes of wanted pieces in total and verified so far, and hash-check progress (0-1) while one runs. */
  get progress(): { have: number; total: number; checking: number | undefined } {
    return { ...this.#picker.wantedBytes(), checking: this.#data.checkProgress };
  }

  /** True when every wanted piece is verified on disk. */
  get complete(): boolean {
    return this.#picker.complete;
  }

  /** True when we have every piece. */
  get seed(): boolean {
    return this.have.full;
  }

  /** The last storage error, until a write succeeds again. */
  get error(): Error | undefined {
    return this.#disk.error;
  }

  /** True while a hash check runs. */
  get checking(): boolean {
    return this.#data.checking;
  }

  /** Pieces hashed when the torrent was opened (0 when resume data vouched for everything). */
  get checkedAtLoad(): number {
    return this.#data.checkedAtLoad;
  }

  /** Packed bitfield of wanted pieces we do not have (the seed's `wanted()`). */
  wantedBits(): Uint8Array {
    return this.#picker.wantedBits().bytes;
  }

  /** Priority of each file. */
  get priorities(): readonly number[] {
    return this.#priorities;
  }

  /** The seed's `piece_cache()`: what the part file holds. */
  get pieceCache(): PieceCacheIndex | undefined {
    return this.#data.pieceCache;
  }

  /** The seed's `trackers()`. */
  trackers(): TrackerTierView[] {
    return this.#announcer.trackers();
  }

  /** Asks the trackers for peers now (as soon as their minimum interval allows). */
  reannounce(): void {
    this.#announcer.announceNow();
  }

  /** Connected peers, and the web seeds that are not dropped (`source: "webseed"`). */
  peers(): PeerInfo[] {
    const peers = this.#peers.info();
    if (this.#webSeeds.size > 0) peers.push(...this.#webSeeds.peers());
    return peers;
  }

  /** Nothing going on: no connection, nothing to dial, nothing being verified or written, no web seed at work. */
  get idle(): boolean {
    return this.#peers.size === 0 && this.#peers.connecting === 0 && this.#peers.candidates === 0 &&
      this.#writer.pending === 0 && !this.#webSeeds.busy;
  }

  /** Live connections (handshaking or ready) and outgoing attempts in progress. */
  get connections(): { live: number; connecting: number } {
    return { live: this.#peers.size, connecting: this.#peers.connecting };
  }

  /** Most connections (changeable at runtime; live ones are kept). */
  get maxPeers(): number {
    return this.#peers.maxPeers;
  }

  set maxPeers(n: number) {
    this.#peers.maxPeers = n;
  }

  /** Sum of the peers' and web seeds' download rates, bytes/s. */
  get downloadRate(): number {
    return this.#peers.rates().down + this.#webSeeds.downloadRate;
  }

  /**
   * Bytes the pieces being downloaded may hold now: the piece budget, which adapts to the link between 8 MiB
   * and {@linkcode TorrentOptions.pieceMemory} (less when a session's other torrents share its total), and holds
   * 8 MiB while the torrent downloads nothing.
   */
  get pieceBudget(): number {
    return this.#memory.bytes;
  }

  /** Sum of the peers' upload rates, bytes/s. */
  get uploadRate(): number {
    return this.#peers.rates().up;
  }

  /**
   * Opens storage and learns what is already on disk: resume data when it is still valid (pieces of changed
   * files are re-verified), otherwise a hash check of the files that exist.
   */
  async open(): Promise<void> {
    await this.#data.load(this.#completion.checkCallbacks(false));
  }

  /**
   * Verifies pieces against their hashes; passing pieces are marked had, failing ones are not.
   *
   * @param pieces Which pieces; all when omitted.
   * @param emitEvents Dispatch hashpass / hashfail for each piece.
   */
  async hashcheck(pieces?: Iterable<number>, emitEvents = true): Promise<void> {
    await this.#data.hashcheck(
      pieces,
      this.#completion.checkCallbacks(emitEvents),
      this.#abort.signal,
    );
  }

  /** Starts or resumes: connections, requests, uploads, trackers (`started`). */
  start(): void {
    this.#disk.paused = false;
    if (this.#state === "active") return;
    const wasStopped = this.#state === "stopped";
    this.#setState("active");
    this.#connector.resume();
    this.#data.open();
    this.#peers.enabled = true;
    this.#completion.started(wasStopped && this.#announcer.start());
    const ready = [...this.#peers.ready()];
    for (const e of ready) {
      this.#downloads.updateInterest(e);
      this.#downloads.fill(e);
    }
    // peers that became interested while we were paused are answered now, not at the next choke round
    if (ready.length > 0) rechoke(this.#choker, ready, this.seed, this.#now(), this.#opts.trace);
    this.#peers.connectMore();
    queueMicrotask(() => this.#runWebSeeds()); // not when start() is the first step of pause()
  }

  /** Keeps connections but makes and fills no requests (every peer is choked until {@linkcode Torrent.start}). */
  pause(): void {
    this.#disk.paused = false;
    this.#pause();
  }

  #pause(): void {
    if (this.#state === "paused") return;
    if (this.#state === "stopped") this.start();
    this.#setState("paused");
    this.#memory.release();
    for (const e of this.#peers.entries.values()) {
      this.#downloads.cancelAll(e);
      // nothing is served while paused: peers stop asking (their requests are rejected) until start()
      chokePeer(e, this.#opts.trace);
    }
    this.#runWebSeeds();
  }

  /** Announces `stopped`, closes every connection and file, writes resume data. */
  async stop(): Promise<void> {
    // a second call while the first is still closing things (a seeding limit, then close()) waits for it
    if (this.#stopping) return await this.#stopping;
    if (this.#state === "stopped") return;
    this.#stopping = this.#stop().finally(() => this.#stopping = undefined);
    await this.#stopping;
  }

  #stopping: Promise<void> | undefined;

  async #stop(): Promise<void> {
    this.#setState("stopped");
    this.#memory.release();
    this.#peers.enabled = false;
    const dials = this.#connector.stop(); // aborted now, awaited below
    // pieces the disk refused are dropped (they are downloaded again after a restart)
    this.#disk.paused = false;
    this.#writer.abandon();
    this.#picker.trimPool();
    const peers = [...this.#peers.entries.values()];
    for (const e of peers) e.conn.close("stopped");
    await Promise.all([...peers.map((e) => e.conn.done), this.#webSeeds.run(false)]);
    await dials;
    await Promise.all([this.#announcer.stop(), this.#writer.drain(), this.#hashes?.idle()]);
    this.#verifier.close();
    await this.#closeStorage();
  }

  /** Stops and releases everything; readers of its bytes fail. */
  async close(): Promise<void> {
    this.#reads.close();
    this.#deadlines.close(new Error("The torrent was closed"));
    await this.stop();
    await this.#webSeeds.close();
    await this.#closeStorage(); // also when never started (e.g. only hash-checked)
    this.#abort.abort();
  }

  /** Same as {@linkcode Torrent.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Changes a file's priority (0 = do not download).
   *
   * @param file File index.
   * @param priority New priority, a non-negative integer.
   */
  async setPriority(file: number, priority: number): Promise<void> {
    if (!Number.isInteger(priority) || priority < 0) {
      throw new RangeError(`Priority must be a non-negative integer, got ${priority}`);
    }
    if (file < 0 || file >= this.#priorities.length) throw new RangeError(`No file ${file}`);
    this.#priorities[file] = priority;
    this.#applyPriorities();
    this.#completion.wantedMore();
    await this.#data.setPriority(file, priority);
    for (const e of this.#peers.ready()) {
      this.#downloads.updateInterest(e);
      this.#downloads.fill(e);
    }
    this.#runWebSeeds();
  }

  #applyPriorities(): void {
    this.#picker.setFilePriorities(this.meta, this.#priorities);
  }

  /** New pieces start in order (lowest index first) instead of rarest first. */
  get sequential(): boolean {
    return this.#picker.sequential;
  }

  set sequential(on: boolean) {
    this.#picker.sequential = on;
  }

  /**
   * A reader of the bytes `[start, end)` of the torrent (its files' bytes, concatenated in torrent order): the
   * pieces just ahead of its position get deadlines, so they are requested first, from the fastest peers. Advance
   * it as bytes are delivered, wait on it for pieces, and close it when done (its deadlines go).
   *
   * @param range The bytes, in the torrent's data.
   * @returns The reader.
   * @throws {Error} When the torrent was closed.
   */
  openReader(range: { start: number; end: number }): DeadlineReader {
    return this.#deadlines.open(range);
  }

  /** Readers open now (see {@linkcode Torrent.openReader}). */
  get readers(): number {
    return this.#deadlines.readers;
  }

  /**
   * Reads verified bytes: `into.length` bytes at byte `offset` of the torrent's data, from the files on disk (or
   * the part file). Every piece they touch must be had. Works while the torrent is stopped too.
   *
   * @param offset Where to start, in the torrent's data.
   * @param into Where the bytes go; filled completely.
   * @throws {RangeError} When a piece is not had.
   * @throws {StorageError} When the data cannot be read, or the torrent was closed.
   */
  async read(offset: number, into: Uint8Array): Promise<void> {
    await this.#reads.read(offset, into);
  }

  /**
   * Adds a peer address to dial (tracker-less use, or peers from any source).
   *
   * @param host IPv4/IPv6 address or host name.
   * @param port TCP port.
   * @param options Where it came from (shown in {@linkcode PeerInfo}); user-given peers (the default) are
   *   retried forever with backoff; `utp`: whether the source says the peer speaks uTP (PEX flags), which
   *   decides the transport dialled first. Our own address ({@linkcode TorrentOptions.ownAddress}) is ignored.
   */
  addPeer(host: string, port: number, options: { source?: PeerSource; utp?: boolean } = {}): void {
    if (this.#opts.ownAddress?.(host, port)) return;
    const source = options.source ?? "user";
    this.#peers.add(host, port, {
      source,
      manual: source === "user",
      ...(options.utp !== undefined ? { utp: options.utp } : {}),
    });
  }

  /**
   * Takes an incoming connection whose encryption handshake, if any, is done.
   *
   * @param stream The connection (plain BitTorrent bytes from here on).
   * @param options The peer's address, how much of the handshake deadline is left, what the encryption
   *   handshake negotiated (shown in {@linkcode PeerInfo.encrypted}) and the transport (TCP by default).
   * @returns False when it was refused (stopped, full, or a banned address); the stream is then closed.
   */
  accept(
    stream: PeerStream,
    options: {
      host: string;
      port: number;
      handshakeTimeoutMs?: number;
      encryption?: Encryption;
      transport?: "tcp" | "utp";
    },
  ): boolean {
    return this.#connector.accept(stream, options);
  }

  /** Our DHT port, 0 when there is no DHT for this torrent (none, or a private torrent). */
  #dhtPort(): number {
    return this.meta.private ? 0 : this.#opts.dhtPort?.() ?? 0;
  }

  #written(piece: PartialPiece): void {
    this.#disk.error = undefined;
    // had once the journal says so: a crash after this point never downloads or checks the piece again
    this.#data.written(piece.index).then(() => this.#completion.had(piece));
  }

  /** Writes resume data now. */
  async saveResume(): Promise<void> {
    await this.#writer.drain();
    await this.#data.saveResume();
  }

  /** Storage error as a typed value (for callers that care about codes). */
  get storageError(): StorageError | undefined {
    return this.#data.storage?.error;
  }

  async #closeStorage(): Promise<void> {
    this.#uploads.clear();
    await this.#reads.settled();
    try {
      await this.#data.close();
    } catch (err) {
      this.#emit("error", { error: asError(err) });
    }
  }

  /** Web seeds fetch while the torrent is active and wants pieces. */
  #runWebSeeds(): void {
    void this.#webSeeds.run(this.#state === "active" && !this.complete);
  }

  #setState(state: TorrentState): void {
    this.#state = state;
    this.#emit("state", { state });
  }

  /**
   * Time-driven work, called by the owner about every `tickMs`: rates, the connections' own checks (handshake
   * deadline, keep-alives, idle), snubbing, choking every 10 ticks, PEX, reconnects, asking trackers again when
   * starving, retrying refused writes, saving resume data.
   *
   * @param now The current time (ms), from the same clock as the `now` option.
   */
  tick(now: number = this.#now()): void {
    if (this.#state === "stopped") return;
    this.#ticks++;
    const secs = this.#lastTick > 0 ? Math.max(0.001, (now - this.#lastTick) / 1000) : 1;
    this.#lastTick = now;
    // a torrent that has what it wants, or no peers, gives back its share of the session's piece memory
    const downloading = this.#peers.size > 0 && !this.complete && this.#state === "active";
    if (!downloading) this.#memory.release();
    if (this.#peers.size > 0) {
      this.#peers.tick(now, secs);
      if (downloading) this.#memory.update(now);
      this.#downloads.rebalance();
      for (const e of this.#peers.entries.values()) {
        this.#downloads.checkSnub(e, now);
        this.#downloads.fill(e);
      }
      const ready = [...this.#peers.ready()];
      this.#picker.extentAffinity = ready.every((e) => e.conn.bitfield.full);
      if (this.#state === "active" && this.#ticks % RECHOKE_TICKS === 0) {
        rechoke(this.#choker, ready, this.seed, now, this.#opts.trace);
      }
      // PEX: a first message soon after connecting, then one a minute
      if (!this.meta.private) this.#pex.send(ready, this.#ticks % PEX_TICKS !== 0);
      if (this.#ticks % 5 === 0) { for (const e of ready) this.#downloads.updateInterest(e); }
    }
    if (this.#peers.candidates > 0) this.#peers.connectMore();
    if (this.#webSeeds.size > 0) {
      this.#runWebSeeds();
      this.#webSeeds.tick(); // seeds whose wait is over
    }
    askHashes(this.#hashes);
    this.#writer.tick(now);
    this.#deadlines.tick();
    const starving = this.#peers.size === 0 && this.#peers.connecting === 0 &&
      this.#state === "active" && !this.complete;
    this.#announcer.tick(now, starving);
    this.#data.saveIfDue(now)?.catch((err) => this.#emit("error", { error: asError(err) }));
  }
}
