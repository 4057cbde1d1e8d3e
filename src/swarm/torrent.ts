/**
 * One torrent's engine, as a coordinator: it wires the parts (each one concern, in its own file) and runs the
 * torrent's tick. Nothing here owns a socket that other torrents need: the owner (a Client or a Session) accepts
 * connections, sorts out encryption, and hands each one over with {@linkcode Torrent.accept}; it also drives
 * {@linkcode Torrent.tick}.
 *
 * - `peer_set.ts`: known addresses, dialling within limits, live connections, bans
 * - `piece_picker.ts` + `requests.ts`: which block to ask whom for, and the one store of requests in flight
 * - `piece_writer.ts`: verify → write → retry when the disk refuses; `smart_ban.ts`: who sent bad data
 * - `uploads.ts` + `storage/piece_cache.ts`: serving requests; `superseed.ts`: upload each piece once
 * - `choker.ts`: tit-for-tat with an optimistic slot; `pex.ts`: peer exchange; `metadata_server.ts`: BEP 9
 * - `webseeds.ts`: web seeds (BEP 19 / 17), whole pieces over HTTP into the same verify → write path
 * - `deadlines.ts`: readers of the torrent's bytes (streaming) and the deadlines they put on pieces
 *
 * Data path of a download: peer (validated block) → picker (copied into its piece buffer) → writer (SHA-1, one
 * piece after another; then the writer thread) → `have` broadcast. Uploads: request → piece cache → send buffer.
 *
 * @module
 */

import { asError } from "../_errors.ts";
import { splitAddressKey } from "../_address.ts";
import { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import type { PeerConnection, PeerHandler } from "../peer.ts";
import { PieceVerifier } from "../storage/hasher.ts";
import { CacheBudget } from "../storage/piece_cache.ts";
import { type PieceCacheIndex, StorageError } from "../storage/storage.ts";
import { type CheckCallbacks, TorrentData } from "../storage/torrent_data.ts";
import type { TrackerTierView } from "../tracker/tiers.ts";
import type { Encryption } from "../wire/mse.ts";
import { UT_METADATA_ID } from "../wire/metadata.ts";
import { PEX_UTP, UT_PEX_ID } from "../wire/pex.ts";
import type { PeerStream } from "../wire/stream.ts";
import { Announcer } from "./announcer.ts";
import { Choker, rechoke } from "./choker.ts";
import { Connector } from "./connector.ts";
import { type DeadlineReader, PieceDeadlines } from "./deadlines.ts";
import { Downloads } from "./downloads.ts";
import { HashExchange } from "./hash_exchange.ts";
import { serveMetadata } from "./metadata_server.ts";
import { PeerSet } from "./peer_set.ts";
import { Pex } from "./pex.ts";
import { paddingByPiece } from "./padding.ts";
import { PieceBudget } from "./piece_budget.ts";
import { type PartialPiece, PiecePicker } from "./piece_picker.ts";
import { diskError, PieceWriter } from "./piece_writer.ts";
import { SmartBan } from "./smart_ban.ts";
import type {
  PeerEntry,
  PeerInfo,
  PeerSource,
  TorrentEmit,
  TorrentEvents,
  TorrentOptions,
  TorrentState,
} from "./types.ts";
import { Uploads } from "./uploads.ts";
import { WebSeeds } from "./webseeds.ts";

export type { PeerInfo, PeerSource, TorrentEmit, TorrentEvents, TorrentOptions, TorrentState };

/** Ticks between PEX rounds (one a minute at the default tick). */
const PEX_TICKS = 60;
const RECHOKE_TICKS = 10;
/** Default of {@linkcode TorrentOptions.uploadMemory}. */
const UPLOAD_MEMORY = 32 * 1024 * 1024;
/** Default of {@linkcode TorrentOptions.pieceMemory}: the most the piece budget may grow to. */
const PIECE_MEMORY = 64 * 1024 * 1024;
/** Where the piece budget starts and what it keeps when the link needs less (a fast local peer). */
const PIECE_MEMORY_FLOOR = 8 * 1024 * 1024;

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
  readonly #budget: PieceBudget;
  readonly #choker = new Choker();
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
  /** When the piece budget was last updated (ms), and the bytes downloaded then. */
  #budgetAt = 0;
  #downloadedAtBudget = 0;
  #completeSent = false;
  #error: Error | undefined;
  /** We paused because of the disk (not the user): resume once everything is written. */
  #diskPaused = false;
  readonly #abort = new AbortController();
  readonly #connector: Connector;
  readonly #verifier: PieceVerifier;
  readonly #deadlines: PieceDeadlines;
  /** Reads of verified bytes in progress (storage closes after them). */
  readonly #reads = new Set<Promise<unknown>>();
  #closing = false;
  /** BEP 52 hash messages (v2 and hybrid torrents): serving them, and fetching missing piece layers. */
  readonly #hashes: HashExchange | undefined;
  /** Padding bytes of pieces that have any (not counted in what trackers hear as `left`). */
  readonly #padding: Map<number, number>;

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
    const ceiling = options.pieceMemory ?? PIECE_MEMORY;
    this.#budget = new PieceBudget({ floor: Math.min(PIECE_MEMORY_FLOOR, ceiling), ceiling });
    this.#picker = new PiecePicker({
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      have: this.have,
      maxInMemory: this.#budgetPieces(),
      ...(options.sequential ? { sequential: true } : {}),
    });
    this.#peers = new PeerSet({
      maxPeers: options.maxPeers ?? 50,
      maxConnecting: options.maxConnecting ?? 8,
      now: this.#now,
      dial: (c) => this.#connector.dial(c),
      ...(options.admit ? { admit: options.admit } : {}),
    });
    this.#connector = new Connector({
      meta,
      peerId: this.peerId,
      port: options.port,
      peers: this.#peers,
      picker: this.#picker,
      handler: this.#handler,
      dhtPort: () => this.#dhtPort(),
      stopped: () => this.#state === "stopped",
      wantsV2: () => this.#hashes?.complete === false,
      onFail: (e) => this.#emit("peerfail", e),
      signal: this.#abort.signal,
      now: this.#now,
      settings: options,
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
    this.#writer = this.#makeWriter();
    this.#padding = paddingByPiece(meta);
    this.#hashes = meta.version === 1 ? undefined : new HashExchange({
      meta,
      readPiece: (i) => this.#data.storage?.readPiece(i) ?? Promise.resolve(undefined),
      have: (i) => this.have.has(i),
      peers: () => this.#readyConnections(),
      now: this.#now,
      // pieces of the file may be requested now
      onLayer: () => {
        if (this.#state === "active") this.#fillAll();
      },
      onComplete: () => {
        this.#emit("piecelayers", {});
        if (!this.seed) return;
        for (const e of this.#peers.ready()) {
          if (e.conn.bitfield.full) e.conn.close("both sides are seeds");
        }
      },
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
    this.#deadlines = new PieceDeadlines({
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      has: (i) => this.have.has(i),
      apply: (deadlines) => this.#picker.setDeadlines(deadlines),
      rate: () => this.downloadRate,
      changed: (head) => this.#urgencyChanged(head),
    });
    this.#announcer = new Announcer({
      announceList: options.trackers === false ? [] : meta.announceList,
      infoHash: meta.infoHash,
      // a hybrid torrent is announced under its truncated v2 hash too (BEP 52)
      ...(meta.version === "hybrid" ? { alsoInfoHash: meta.infoHashV2!.subarray(0, 20) } : {}),
      peerId: this.peerId,
      port: options.port,
      stats: () => ({
        uploaded: this.#uploaded,
        downloaded: this.#downloaded,
        left: this.#trackerLeft(),
      }),
      onPeers: (peers) => {
        for (const p of peers) this.addPeer(p.host, p.port, { source: "tracker" });
      },
      onEvent: (e) => this.#emit("tracker", e),
      now: this.#now,
      ...(options.dualStack ? { dualStack: options.dualStack } : {}),
      ...(options.udpSocket ? { udpSocket: options.udpSocket } : {}),
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

  /** {@linkcode Torrent.left} without padding (BEP 47 padding files, a v2 torrent's gaps): for trackers. */
  #trackerLeft(): number {
    let left = this.left;
    for (const [i, pad] of this.#padding) if (this.#picker.wants(i)) left -= pad;
    return Math.max(0, left);
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
    return this.#error;
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

  /** Sum of the peers' upload rates, bytes/s. */
  get uploadRate(): number {
    return this.#peers.rates().up;
  }

  /**
   * Opens storage and learns what is already on disk: resume data when it is still valid (pieces of changed
   * files are re-verified), otherwise a hash check of the files that exist.
   */
  async open(): Promise<void> {
    await this.#data.load(this.#checkCallbacks(false));
  }

  /**
   * Verifies pieces against their hashes; passing pieces are marked had, failing ones are not.
   *
   * @param pieces Which pieces; all when omitted.
   * @param emitEvents Dispatch hashpass / hashfail for each piece.
   */
  async hashcheck(pieces?: Iterable<number>, emitEvents = true): Promise<void> {
    await this.#data.hashcheck(pieces, this.#checkCallbacks(emitEvents), this.#abort.signal);
  }

  #checkCallbacks(emitEvents: boolean): CheckCallbacks {
    return {
      onPass: (i) => {
        if (this.have.set(i)) this.#afterNewPiece(i);
        this.#deadlines.had(i);
        if (emitEvents) this.#emit("hashpass", { index: i });
      },
      onFail: (i) => emitEvents && this.#emit("hashfail", { index: i }),
    };
  }

  /** Starts or resumes: connections, requests, uploads, trackers (`started`). */
  start(): void {
    this.#diskPaused = false;
    if (this.#state === "active") return;
    const wasStopped = this.#state === "stopped";
    this.#setState("active");
    this.#connector.resume();
    this.#data.open();
    this.#peers.enabled = true;
    if (wasStopped && this.#announcer.start() && this.complete && this.have.count > 0) {
      this.#completeSent = true;
    }
    if (this.complete && this.have.count > 0) void this.#applyAttributes();
    for (const e of this.#peers.ready()) {
      this.#downloads.updateInterest(e);
      this.#downloads.fill(e);
    }
    this.#peers.connectMore();
    queueMicrotask(() => this.#runWebSeeds()); // not when start() is the first step of pause()
  }

  /** Keeps connections but makes and fills no requests. */
  pause(): void {
    this.#diskPaused = false;
    this.#pause();
  }

  #pause(): void {
    if (this.#state === "paused") return;
    if (this.#state === "stopped") this.start();
    this.#setState("paused");
    for (const e of this.#peers.entries.values()) this.#downloads.cancelAll(e);
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
    this.#peers.enabled = false;
    const dials = this.#connector.stop(); // aborted now, awaited below
    // pieces the disk refused are dropped (they are downloaded again after a restart)
    this.#diskPaused = false;
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
    this.#closing = true;
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
    // more wanted now: completing again dispatches `complete` again (trackers still hear `completed` once)
    if (!this.complete) this.#completeSent = false;
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

  // ---------------------------------------------------------------- streaming

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
    if (this.#closing) throw new StorageError("The torrent was closed");
    const reading = this.#read(offset, into);
    const settled = reading.catch(() => {});
    this.#reads.add(settled);
    settled.then(() => this.#reads.delete(settled));
    await reading;
  }

  async #read(offset: number, into: Uint8Array): Promise<void> {
    const pl = this.meta.pieceLength;
    let done = 0;
    while (done < into.length) {
      const at = offset + done;
      const index = Math.floor(at / pl);
      if (!this.have.has(index)) throw new RangeError(`Piece ${index} is not verified yet`);
      // a stopped torrent's storage opens for the read; close() closes it again
      const storage = this.#data.storage ?? this.#data.open();
      const got = await storage.readPiece(index, into.subarray(done), { begin: at - index * pl });
      if (!got || got.length === 0) {
        throw new StorageError(`Piece ${index} is missing from the files on disk`);
      }
      done += got.length;
    }
  }

  /**
   * Deadlines changed: peers are asked for the new pieces at once, after making room in their queues for `head`,
   * a piece a reader needs now (a seek's first piece, or one waited for that nobody was asked for).
   */
  #urgencyChanged(head: number | undefined): void {
    if (this.#state !== "active") return;
    if (head !== undefined && this.#picker.needsBlocks(head)) this.#downloads.expedite(head);
    for (const e of this.#peers.ready()) {
      if (!e.conn.amInterested) this.#downloads.updateInterest(e);
      this.#downloads.fill(e);
    }
  }

  // ---------------------------------------------------------------- peers

  /**
   * Adds a peer address to dial (tracker-less use, or peers from any source).
   *
   * @param host IPv4/IPv6 address or host name.
   * @param port TCP port.
   * @param options Where it came from (shown in {@linkcode PeerInfo}); user-given peers (the default) are
   *   retried forever with backoff; `utp`: whether the source says the peer speaks uTP (PEX flags), which
   *   decides the transport dialled first.
   */
  addPeer(host: string, port: number, options: { source?: PeerSource; utp?: boolean } = {}): void {
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

  /** What each connection tells us, routed to the part it concerns. */
  readonly #handler: PeerHandler = {
    onReady: (peer) => this.#onReady(peer),
    onBitfield: (peer) =>
      this.#with(peer, (e) => {
        if (this.seed && peer.bitfield.full && !this.#needsHashes(peer)) {
          peer.close("both sides are seeds");
        } else this.#downloads.bitfield(e);
        this.#askHashes();
      }),
    onHave: (peer, index) => this.#with(peer, (e) => this.#downloads.have(e, index)),
    onUnchoke: (peer) => this.#with(peer, (e) => this.#downloads.unchoked(e)),
    onAllowedFast: (peer) => this.#with(peer, (e) => peer.peerChoking && this.#downloads.fill(e)),
    onReject: (peer, index) => this.#with(peer, (e) => this.#downloads.rejected(e, index)),
    onInterested: (peer) => {
      if (this.#state !== "active" || !peer.amChoking) return;
      if (!this.#choker.hasFreeSlot(this.#peers.unchokedCount())) return;
      peer.unchoke();
      const e = this.#peers.entries.get(peer);
      if (e) this.#opts.trace?.({ type: "unchoke", peer: e.key, optimistic: false });
    },
    onExtended: (peer, id, payload) => {
      if (id === UT_METADATA_ID) serveMetadata(peer, payload, this.meta.info);
      else if (id === UT_PEX_ID && !this.meta.private) this.#onPex(peer, payload);
    },
    onPort: (peer, port) =>
      this.#with(peer, (e) => {
        if (!this.meta.private && port > 0) {
          this.#opts.onDhtNode?.(splitAddressKey(e.key).host, port);
        }
      }),
    onBlock: (peer, index, begin, data) =>
      this.#with(peer, (e) => this.#downloads.block(e, index, begin, data)),
    onRequest: (peer, index, begin, length) =>
      this.#with(peer, (e) => this.#uploads.request(e, index, begin, length)),
    onDrain: (peer) => this.#with(peer, (e) => this.#uploads.drained(e)),
    onHashMessage: (peer, id, payload) => this.#hashes?.message(peer, id, payload),
    onUploaded: (_peer, bytes) => this.#uploaded += bytes,
    onClose: (peer, reason) => {
      this.#hashes?.closed(peer);
      this.#with(peer, (e) => this.#onClose(e, reason));
    },
  };

  /** Asks v2 peers for piece layers the torrent lacks (a magnet link's). */
  #askHashes(): void {
    if (this.#hashes && !this.#hashes.complete) this.#hashes.ask();
  }

  *#readyConnections(): Iterable<PeerConnection> {
    for (const e of this.#peers.ready()) yield e.conn;
  }

  /** A v2 peer kept while it may still give us piece layers (a seed connection is not closed for that). */
  #needsHashes(peer: PeerConnection): boolean {
    return this.#hashes !== undefined && !this.#hashes.complete && peer.speaksV2;
  }

  #fillAll(): void {
    for (const e of this.#peers.ready()) this.#downloads.fill(e);
  }

  /** BEP 47 attributes (executable bit, symbolic links) once the download is complete. */
  async #applyAttributes(): Promise<void> {
    if (!this.meta.files.some((f) => f.executable || f.symlink)) return;
    const warnings = await this.#data.storage?.applyAttributes().catch((err) => [
      `cannot apply file attributes: ${asError(err).message}`,
    ]) ?? [];
    for (const message of warnings) this.#emit("warning", { message });
  }

  #with(peer: PeerConnection, fn: (e: PeerEntry) => unknown): void {
    const e = this.#peers.entries.get(peer);
    if (e) fn(e);
  }

  #onReady(peer: PeerConnection): void {
    const e = this.#peers.entries.get(peer);
    if (!e) return;
    const verdict = this.#peers.checkReady(e, this.peerId);
    if (!verdict.ok) return peer.close(verdict.reason);
    peer.sendBitfield(this.have);
    const dhtPort = this.#dhtPort();
    if (dhtPort > 0 && peer.remoteHandshake?.dht) peer.sendPort(dhtPort);
    this.#emit("peer", { address: e.key, peerId: peer.remotePeerId, incoming: e.incoming });
  }

  /** BEP 11: peers a connected peer knows. */
  #onPex(peer: PeerConnection, payload: Uint8Array): void {
    for (const p of this.#pex.received(peer, payload)) {
      this.addPeer(p.host, p.port, {
        source: "pex",
        ...(p.flags !== undefined ? { utp: (p.flags & PEX_UTP) !== 0 } : {}),
      });
    }
  }

  #onClose(e: PeerEntry, reason: string): void {
    this.#peers.remove(e);
    this.#uploads.closed(e);
    this.#downloads.closed(e);
    if (e.ready) this.#emit("peerclose", { address: e.key, reason });
    if (this.#state !== "stopped") queueMicrotask(() => this.#peers.connectMore());
  }

  #makeWriter(): PieceWriter {
    const picker = this.#picker;
    return new PieceWriter({
      verify: (piece) =>
        this.#data.storage
          ? this.#verifier.verify(piece, picker.pieceSize(piece.index))
          : Promise.resolve(undefined),
      write: (piece) =>
        this.#data.storage?.writePieceMoving(piece.index, piece) ??
          Promise.reject(new Error("storage closed")),
      onPassed: (piece) => this.#smartBan.passed(piece),
      onFailed: (piece) => {
        this.#emit("hashfail", { index: piece.index });
        // a web seed's piece names that seed (dropped); a peer's goes to the smart ban
        if (!this.#webSeeds.failed(piece)) {
          this.#smartBan.failed(piece, picker.pieceSize(piece.index));
        }
        picker.pieceFailed(piece);
        this.#webSeeds.tick(); // the piece may be fetched again
      },
      onWritten: (piece) => this.#written(piece),
      onLost: (piece, error) => {
        picker.pieceFailed(piece);
        if (error) this.#emit("error", { error });
      },
      onDiskError: (cause) => {
        if (this.#state === "active") {
          this.#pause();
          this.#diskPaused = true;
        }
        this.#error = diskError(cause, this.#diskPaused, this.#opts.diskRetryMs ?? 5000);
        this.#emit("error", { error: this.#error });
      },
      onRetryFailed: () => this.#opts.trace?.({ type: "diskretry", pending: this.#writer.pending }),
      onDiskRecovered: () => {
        if (this.#diskPaused && this.#state === "paused") this.start(); // clears #diskPaused
      },
      retryMs: this.#opts.diskRetryMs ?? 5000,
      now: this.#now,
    });
  }

  #written(piece: PartialPiece): void {
    this.#error = undefined;
    // had once the journal says so: a crash after this point never downloads or checks the piece again
    this.#data.written(piece.index).then(() => this.#had(piece));
  }

  #had(piece: PartialPiece): void {
    this.#updateBudget(this.#now(), true);
    this.#picker.pieceVerified(piece);
    this.#picker.release(piece.buffer);
    if (this.have.set(piece.index)) this.#afterNewPiece(piece.index);
    this.#deadlines.had(piece.index);
    this.#emit("hashpass", { index: piece.index });
    this.#emit("piece", { index: piece.index });
    // requests may have paused while verification and writes were behind
    if (this.#state === "active") { for (const e of this.#peers.ready()) this.#downloads.fill(e); }
    this.#webSeeds.tick(); // memory is free for a new run
  }

  #afterNewPiece(index: number): void {
    this.#data.changed();
    for (const e of this.#peers.ready()) if (!e.conn.closed) e.conn.have(index);
    if (!this.complete) return;
    this.#runWebSeeds(); // nothing more to fetch
    this.#picker.trimPool(); // the spare download buffers are not needed any more
    for (const e of this.#peers.entries.values()) this.#downloads.updateInterest(e);
    if (!this.#completeSent && this.#state !== "stopped" && !this.#data.checking) {
      this.#completeSent = true;
      this.#announcer.completed();
      void this.#applyAttributes();
      this.#emit("complete", {});
    }
    if (this.seed) {
      for (const e of this.#peers.ready()) {
        if (e.conn.bitfield.full && !this.#needsHashes(e.conn)) {
          e.conn.close("both sides are seeds");
        }
      }
    }
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
    await Promise.all(this.#reads);
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

  /** The piece budget in pieces (at least 4). */
  #budgetPieces(): number {
    return Math.max(4, Math.floor(this.#budget.bytes / this.meta.pieceLength));
  }

  /**
   * The piece budget follows the payload rate since its last update × the peers' round trip: every tick, and
   * as pieces arrive once two round trips (at least 250 ms) have passed, so that it grows within a second on a
   * long fast link rather than over several.
   *
   * @param now The clock (ms).
   * @param early Called between ticks: only when enough time has passed.
   */
  #updateBudget(now: number, early = false): void {
    let weighted = 0, weights = 0;
    for (const e of this.#peers.entries.values()) {
      const rtt = this.#downloads.rttMs(e);
      if (rtt === undefined || e.rateDown <= 0) continue;
      weighted += e.rateDown * rtt;
      weights += e.rateDown;
    }
    const rtt = weights > 0 ? weighted / weights : 0;
    const elapsed = now - this.#budgetAt;
    if (elapsed <= 0 || (early && elapsed < Math.max(250, 2 * rtt))) return;
    const rate = ((this.#downloaded - this.#downloadedAtBudget) * 1000) / elapsed;
    this.#budgetAt = now;
    this.#downloadedAtBudget = this.#downloaded;
    this.#budget.update(rate, rtt);
    this.#picker.maxInMemory = this.#budgetPieces();
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
    if (this.#peers.size > 0) {
      this.#peers.tick(now, secs);
      this.#updateBudget(now);
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
    this.#askHashes();
    this.#writer.tick(now);
    this.#deadlines.tick();
    const starving = this.#peers.size === 0 && this.#peers.connecting === 0 &&
      this.#state === "active" && !this.complete;
    this.#announcer.tick(now, starving);
    this.#data.saveIfDue(now)?.catch((err) => this.#emit("error", { error: asError(err) }));
  }
}
