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
 *
 * Data path of a download: peer (validated block) → picker (copied into its piece buffer) → writer (SHA-1, one
 * piece after another; then the writer thread) → `have` broadcast. Uploads: request → piece cache → send buffer.
 *
 * @module
 */

import { asError } from "../_errors.ts";
import { addressKey, splitAddressKey } from "../_address.ts";
import { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import { PeerConnection, type PeerHandler } from "../peer.ts";
import { PieceVerifier } from "../storage/hasher.ts";
import { CacheBudget } from "../storage/piece_cache.ts";
import type { PieceCacheIndex, StorageError } from "../storage/storage.ts";
import { type CheckCallbacks, TorrentData } from "../storage/torrent_data.ts";
import type { TrackerTierView } from "../tracker/tiers.ts";
import { connectTcp } from "../transport/tcp.ts";
import { CLIENT_NAME } from "../version.ts";
import { UT_METADATA_ID } from "../wire/metadata.ts";
import { UT_PEX_ID } from "../wire/pex.ts";
import type { PeerStream } from "../wire/stream.ts";
import { Announcer } from "./announcer.ts";
import { Choker, rechoke } from "./choker.ts";
import { Downloads } from "./downloads.ts";
import { serveMetadata } from "./metadata_server.ts";
import { type Candidate, PeerSet } from "./peer_set.ts";
import { Pex } from "./pex.ts";
import { PieceBudget } from "./piece_budget.ts";
import { type PartialPiece, PiecePicker } from "./piece_picker.ts";
import { PieceWriter } from "./piece_writer.ts";
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

export type { PeerInfo, PeerSource, TorrentEmit, TorrentEvents, TorrentOptions, TorrentState };

/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
const HANDSHAKE_MS = 10_000;
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
  readonly #verifier: PieceVerifier;

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
    });
    this.#peers = new PeerSet({
      maxPeers: options.maxPeers ?? 50,
      maxConnecting: options.maxConnecting ?? 8,
      now: this.#now,
      dial: (c) => this.#dial(c),
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
      onUploaded: (n) => this.#uploaded += n,
      onError: (error) => this.#emit("error", { error }),
    });
    this.#verifier = new PieceVerifier({
      pieces: meta.pieces,
      layout: meta,
      worker: options.hashWorker ?? false,
    });
    this.#writer = this.#makeWriter();
    this.#downloads = new Downloads({
      picker: this.#picker,
      now: this.#now,
      active: () => this.#state === "active",
      wanting: () => this.#state !== "stopped" && !this.complete,
      peers: () => this.#peers.entries.values(),
      onPiece: (piece) => this.#writer.add(piece),
      onBytes: (n) => this.#downloaded += n,
    });
    this.#announcer = new Announcer({
      announceList: options.trackers === false ? [] : meta.announceList,
      infoHash: meta.infoHash,
      peerId: this.peerId,
      port: options.port,
      stats: () => ({ uploaded: this.#uploaded, downloaded: this.#downloaded, left: this.left }),
      onPeers: (peers) => {
        for (const p of peers) this.addPeer(p.host, p.port, { source: "tracker" });
      },
      onEvent: (e) => this.#emit("tracker", e),
      now: this.#now,
    });
    this.#applyPriorities();
  }

  // ---------------------------------------------------------------- state

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
    const bits = new Bitfield(this.meta.pieceCount);
    for (let i = 0; i < this.meta.pieceCount; i++) if (this.#picker.wants(i)) bits.set(i);
    return bits.bytes;
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

  /** Connected peers. */
  peers(): PeerInfo[] {
    return this.#peers.info();
  }

  /** Nothing going on: no connection, nothing to dial, nothing being verified or written. */
  get idle(): boolean {
    return this.#peers.size === 0 && this.#peers.connecting === 0 && this.#peers.candidates === 0 &&
      this.#writer.pending === 0;
  }

  /** Live connections (handshaking or ready). */
  get peerCount(): number {
    return this.#peers.size;
  }

  /** Live connections (handshaking or ready) plus attempts in progress. */
  get connectionCount(): number {
    return this.#peers.size + this.#peers.connecting;
  }

  /** Outgoing connection attempts in progress. */
  get connectingCount(): number {
    return this.#peers.connecting;
  }

  /** Most connections (changeable at runtime; live ones are kept). */
  get maxPeers(): number {
    return this.#peers.maxPeers;
  }

  set maxPeers(n: number) {
    this.#peers.maxPeers = n;
  }

  /** Sum of the peers' download rates, bytes/s. */
  get downloadRate(): number {
    return this.#peers.rates().down;
  }

  /** Sum of the peers' upload rates, bytes/s. */
  get uploadRate(): number {
    return this.#peers.rates().up;
  }

  // ---------------------------------------------------------------- lifecycle

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
    this.#data.open();
    this.#peers.enabled = true;
    if (wasStopped && this.#announcer.start() && this.complete && this.have.count > 0) {
      this.#completeSent = true;
    }
    for (const e of this.#peers.ready()) {
      this.#downloads.updateInterest(e);
      this.#downloads.fill(e);
    }
    this.#peers.connectMore();
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
  }

  /** Announces `stopped`, closes every connection and file, writes resume data. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#setState("stopped");
    this.#peers.enabled = false;
    // pieces the disk refused are dropped (they are downloaded again after a restart)
    this.#diskPaused = false;
    this.#writer.abandon();
    this.#picker.trimPool();
    const peers = [...this.#peers.entries.values()];
    for (const e of peers) e.conn.close("stopped");
    await Promise.all(peers.map((e) => e.conn.done));
    await Promise.all([this.#announcer.stop(), this.#writer.drain()]);
    this.#verifier.close();
    await this.#closeStorage();
  }

  /** Stops and releases everything. */
  async close(): Promise<void> {
    await this.stop();
    await this.#closeStorage(); // also when never started (e.g. only hash-checked)
    this.#abort.abort();
  }

  /** Same as {@linkcode Torrent.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------- files

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
  }

  #applyPriorities(): void {
    this.#picker.setFilePriorities(this.meta, this.#priorities);
  }

  // ---------------------------------------------------------------- peers

  /**
   * Adds a peer address to dial (tracker-less use, or peers from any source).
   *
   * @param host IPv4/IPv6 address or host name.
   * @param port TCP port.
   * @param options Where it came from (shown in {@linkcode PeerInfo}); user-given peers (the default) are
   *   retried forever with backoff.
   */
  addPeer(host: string, port: number, options: { source?: PeerSource } = {}): void {
    const source = options.source ?? "user";
    this.#peers.add(host, port, { source, manual: source === "user" });
  }

  /**
   * Takes an incoming connection whose encryption handshake, if any, is done.
   *
   * @param stream The connection (plain BitTorrent bytes from here on).
   * @param options The peer's address and how much of the handshake deadline is left.
   * @returns False when it was refused (stopped, full, or a banned address); the stream is then closed.
   */
  accept(
    stream: PeerStream,
    options: { host: string; port: number; handshakeTimeoutMs?: number },
  ): boolean {
    if (
      this.#state === "stopped" || !this.#peers.hasRoom() || this.#peers.isBanned(options.host)
    ) {
      try {
        stream.close?.();
      } catch { /* already closed */ }
      return false;
    }
    this.#attach(stream, {
      key: addressKey(options.host, options.port),
      incoming: true,
      source: "incoming",
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_MS,
    });
    return true;
  }

  async #dial(c: Candidate): Promise<boolean> {
    const connect = this.#opts.connect ?? connectTcp;
    let stream: PeerStream;
    try {
      stream = await connect(c.host, c.port, { timeoutMs: this.#opts.connectTimeoutMs ?? 5000 });
    } catch {
      return false;
    }
    if (this.#state === "stopped") {
      stream.close?.();
      c.connected = false;
      return true;
    }
    this.#attach(stream, { key: c.key, incoming: false, source: c.source });
    return true;
  }

  #attach(
    stream: PeerStream,
    o: { key: string; incoming: boolean; source: PeerSource; handshakeTimeoutMs?: number },
  ): void {
    const meta = this.meta;
    const requests = this.#picker.requests.forPeer();
    const conn = new PeerConnection(stream, {
      infoHash: meta.infoHash,
      peerId: this.peerId,
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      queueDepth: this.#opts.queueDepth ?? 768,
      extensionHandshake: {
        v: CLIENT_NAME,
        p: this.#opts.port(),
        reqq: 500,
        // private torrents (BEP 27) get peers from their trackers only: no PEX
        m: meta.private
          ? { ut_metadata: UT_METADATA_ID }
          : { ut_metadata: UT_METADATA_ID, ut_pex: UT_PEX_ID },
        metadata_size: meta.info.length,
      },
      remoteAddress: splitAddressKey(o.key),
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? HANDSHAKE_MS,
      dht: this.#dhtPort() > 0,
      signal: this.#abort.signal,
      now: this.#now,
      selfTimed: false,
      requests,
      ...(this.#opts.rate ? { rate: this.#opts.rate } : {}),
    }, this.#handler);
    this.#peers.register(conn, o);
    void conn.start();
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
        if (this.seed && peer.bitfield.full) peer.close("both sides are seeds");
        else this.#downloads.bitfield(e);
      }),
    onHave: (peer, index) => this.#with(peer, (e) => this.#downloads.have(e, index)),
    onUnchoke: (peer) => this.#with(peer, (e) => this.#downloads.unchoked(e)),
    onAllowedFast: (peer) => this.#with(peer, (e) => peer.peerChoking && this.#downloads.fill(e)),
    onReject: (peer, index) => this.#with(peer, (e) => this.#downloads.rejected(e, index)),
    onInterested: (peer) => {
      if (this.#state !== "active" || !peer.amChoking) return;
      if (this.#choker.hasFreeSlot(this.#unchokedCount())) peer.unchoke();
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
    onClose: (peer, reason) => this.#with(peer, (e) => this.#onClose(e, reason)),
  };

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
    let added;
    try {
      added = this.#pex.received(payload);
    } catch (err) {
      return peer.close(`protocol violation: ${(err as Error).message}`);
    }
    for (const p of added) this.addPeer(p.host, p.port, { source: "pex" });
  }

  #onClose(e: PeerEntry, reason: string): void {
    this.#peers.remove(e);
    this.#uploads.closed(e);
    this.#downloads.closed(e);
    if (e.ready) this.#emit("peerclose", { address: e.key, reason });
    if (this.#state !== "stopped") queueMicrotask(() => this.#peers.connectMore());
  }

  #unchokedCount(): number {
    let n = 0;
    for (const e of this.#peers.entries.values()) if (!e.conn.amChoking) n++;
    return n;
  }

  // ---------------------------------------------------------------- verify + write

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
        this.#smartBan.failed(piece, picker.pieceSize(piece.index));
        picker.pieceFailed(piece);
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
        const secs = (this.#opts.diskRetryMs ?? 5000) / 1000;
        this.#error = new Error(
          `${cause.message}; ${
            this.#diskPaused ? "download paused, it resumes by itself" : "retrying"
          } once the data can be written (tried every ${secs} s)`,
          { cause },
        );
        this.#emit("error", { error: this.#error });
      },
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
    this.#emit("hashpass", { index: piece.index });
    this.#emit("piece", { index: piece.index });
    // requests may have paused while verification and writes were behind
    if (this.#state === "active") { for (const e of this.#peers.ready()) this.#downloads.fill(e); }
  }

  #afterNewPiece(index: number): void {
    this.#data.changed();
    for (const e of this.#peers.ready()) if (!e.conn.closed) e.conn.have(index);
    if (!this.complete) return;
    this.#picker.trimPool(); // the spare download buffers are not needed any more
    for (const e of this.#peers.entries.values()) this.#downloads.updateInterest(e);
    if (!this.#completeSent && this.#state !== "stopped" && !this.#data.checking) {
      this.#completeSent = true;
      this.#announcer.completed();
      this.#emit("complete", {});
    }
    if (this.seed) {
      for (const e of this.#peers.ready()) {
        if (e.conn.bitfield.full) e.conn.close("both sides are seeds");
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
    try {
      await this.#data.close();
    } catch (err) {
      this.#emit("error", { error: asError(err) });
    }
  }

  // ---------------------------------------------------------------- tick

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
        rechoke(this.#choker, ready, this.seed, now);
      }
      // PEX: a first message soon after connecting, then one a minute
      if (!this.meta.private) this.#pex.send(ready, this.#ticks % PEX_TICKS !== 0);
      if (this.#ticks % 5 === 0) { for (const e of ready) this.#downloads.updateInterest(e); }
    }
    if (this.#peers.candidates > 0) this.#peers.connectMore();
    this.#writer.tick(now);
    const starving = this.#peers.size === 0 && this.#peers.connecting === 0 &&
      this.#state === "active" && !this.complete;
    this.#announcer.tick(now, starving);
    this.#data.saveIfDue(now)?.catch((err) => this.#emit("error", { error: asError(err) }));
  }
}
