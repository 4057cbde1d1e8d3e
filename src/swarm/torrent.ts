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

import { join } from "node:path";
import { addressKey, splitAddressKey } from "../_address.ts";
import { bytesEqual } from "../_bytes.ts";
import { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import { PeerConnection, type PeerHandler } from "../peer.ts";
import { PieceHasher } from "../storage/hasher.ts";
import { pieceRangeOfFile } from "../storage/layout.ts";
import { PieceCache } from "../storage/piece_cache.ts";
import { Storage, type StorageError } from "../storage/storage.ts";
import type { PieceCacheIndex } from "../storage/storage.ts";
import type { PeerAddress } from "../tracker/compact.ts";
import { TrackerManager, type TrackerTierView } from "../tracker/tiers.ts";
import { connectTcp } from "../transport/tcp.ts";
import { CLIENT_NAME } from "../version.ts";
import { UT_METADATA_ID } from "../wire/metadata.ts";
import { UT_PEX_ID } from "../wire/pex.ts";
import type { PeerStream } from "../wire/stream.ts";
import { Choker } from "./choker.ts";
import { serveMetadata } from "./metadata_server.ts";
import { type Candidate, PeerSet } from "./peer_set.ts";
import { Pex } from "./pex.ts";
import { BLOCK_SIZE, type PartialPiece, PiecePicker } from "./piece_picker.ts";
import { PieceWriter } from "./piece_writer.ts";
import { SmartBan } from "./smart_ban.ts";
import { ownerKey, UploadOnce } from "./superseed.ts";
import type {
  PeerEntry,
  PeerInfo,
  PeerSource,
  TorrentEmit,
  TorrentEvents,
  TorrentState,
} from "./types.ts";
import { Uploads } from "./uploads.ts";

export type { PeerInfo, PeerSource, TorrentEmit, TorrentEvents, TorrentState };

/** Options for {@linkcode Torrent}. */
export interface TorrentOptions {
  /** The parsed torrent. */
  meta: Metainfo;
  /** Download directory (multi-file torrents get a folder named after the torrent below it). */
  dir: string;
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** Our listening port (for trackers and the extension handshake). */
  port: () => number;
  /** Receives events. */
  emit: TorrentEmit;
  /** Per-file priorities; 1 each by default, 0 = do not download. */
  priorities?: number[];
  /** Part-file index from a previous run. */
  pieceCache?: PieceCacheIndex;
  /** Where resume data is kept; none when omitted. */
  resumePath?: string;
  /** Announce to the torrent's trackers. @default {true} */
  trackers?: boolean;
  /** Most connected peers. @default {50} */
  maxPeers?: number;
  /** Most outgoing connection attempts at once. @default {8} */
  maxConnecting?: number;
  /** Our request pipeline depth per peer (capped by the peer's `reqq`). @default {768} */
  queueDepth?: number;
  /**
   * Bytes of piece buffers for downloading: pieces in progress plus complete pieces waiting for their hash check
   * and write (at least 4 pieces). When the disk falls behind, no new piece is started until a write lands.
   * @default {8388608}
   */
  pieceMemory?: number;
  /** Bytes of whole pieces kept in memory to serve uploads (at least 2 pieces). @default {33554432} */
  uploadMemory?: number;
  /** Milliseconds between calls of {@linkcode Torrent.tick} by the owner (choking every 10 ticks). @default {1000} */
  tickMs?: number;
  /** Milliseconds to connect to a peer. @default {5000} */
  connectTimeoutMs?: number;
  /** Preallocate files. @default {false} */
  preallocate?: boolean;
  /**
   * Send every block of the torrent at most once, to whichever peer asks first, and reject repeat requests:
   * peers must trade the rest among themselves (a seeding strategy for a first seed with little upload).
   * @default {false}
   */
  uploadEachPieceOnce?: boolean;
  /**
   * Our DHT node's UDP port: peers are told we support the DHT (BEP 5) and sent a PORT message. Never used for
   * private torrents.
   */
  dhtPort?: () => number;
  /** Called with a peer's DHT node address when it sends a PORT message. */
  onDhtNode?: (host: string, port: number) => void;
  /**
   * Milliseconds between attempts to write verified pieces that a disk error (a full disk, a read-only or
   * unwritable directory) kept from being written; the torrent stays paused until they are written.
   * @default {5000}
   */
  diskRetryMs?: number;
  /** Hash downloaded pieces on a worker thread instead of the event loop's. @default {false} */
  hashWorker?: boolean;
  /** The clock (ms), shared with the connections. @default {Date.now} */
  now?: () => number;
  /** Opens an outgoing connection to a peer. @default {connectTcp} */
  connect?: (host: string, port: number, options: { timeoutMs: number }) => Promise<PeerStream>;
}

/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
const HANDSHAKE_MS = 10_000;
const SNUB_MS = 60_000;
/** Ticks between PEX rounds (one a minute at the default tick). */
const PEX_TICKS = 60;
/** How long a piece a peer rejected is not asked of that peer again. */
const REJECT_BACKOFF_MS = 10_000;
const RECHOKE_TICKS = 10;
const RESUME_SAVE_MS = 30_000;
/** Default of {@linkcode TorrentOptions.uploadMemory}. */
const UPLOAD_MEMORY = 32 * 1024 * 1024;
/** Default of {@linkcode TorrentOptions.pieceMemory}. */
const PIECE_MEMORY = 8 * 1024 * 1024;

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
  readonly #choker = new Choker();
  readonly #peers: PeerSet;
  readonly #pex = new Pex();
  readonly #smartBan = new SmartBan();
  readonly #cache: PieceCache;
  readonly #uploads: Uploads;
  readonly #once: UploadOnce | undefined;
  readonly #writer: PieceWriter;
  #storage: Storage | undefined;
  #pieceCache: PieceCacheIndex | undefined;
  #priorities: number[];
  #trackers: TrackerManager | undefined;
  #state: TorrentState = "stopped";
  #ticks = 0;
  #lastTick = 0;
  #uploaded = 0;
  #downloaded = 0;
  #completeSent = false;
  #resumeDirty = false;
  #lastResumeSave = 0;
  #error: Error | undefined;
  /** We paused because of the disk (not the user): resume once everything is written. */
  #diskPaused = false;
  readonly #abort = new AbortController();
  #hashchecking = 0;
  #hasher: PieceHasher;
  #checkProgress = 0;
  #priorityChain: Promise<void> = Promise.resolve();
  #starvingBackoff = 5_000;
  #nextStarvingAnnounce: number;

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
    this.#nextStarvingAnnounce = this.#now() + 10_000;
    this.#pieceCache = options.pieceCache;
    this.#priorities = options.priorities?.slice() ?? meta.files.map(() => 1);
    this.have = new Bitfield(meta.pieceCount);
    this.#picker = new PiecePicker({
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      have: this.have,
      maxInMemory: Math.max(
        4,
        Math.floor((options.pieceMemory ?? PIECE_MEMORY) / meta.pieceLength),
      ),
    });
    this.#peers = new PeerSet({
      maxPeers: options.maxPeers ?? 50,
      maxConnecting: options.maxConnecting ?? 8,
      now: this.#now,
      dial: (c) => this.#dial(c),
    });
    this.#cache = new PieceCache({
      pieceLength: meta.pieceLength,
      pieceSize: (i) => this.#picker.pieceSize(i),
      capacity: Math.floor((options.uploadMemory ?? UPLOAD_MEMORY) / meta.pieceLength),
      read: (index, into) => this.#storage?.readPiece(index, into) ?? Promise.resolve(undefined),
    });
    this.#once = options.uploadEachPieceOnce
      ? new UploadOnce({
        blocksPerPiece: this.#picker.requests.blocksPerPiece,
        blocksIn: (i) => Math.ceil(this.#picker.pieceSize(i) / BLOCK_SIZE),
      })
      : undefined;
    this.#uploads = new Uploads({
      cache: this.#cache,
      canServe: (index) => this.#state === "active" && this.have.has(index),
      ...(this.#once ? { once: this.#once } : {}),
      isLive: (id) => this.#peers.byId(id) !== undefined,
      onUploaded: (n) => this.#uploaded += n,
      onError: (error) => this.#emit("error", { error }),
    });
    this.#hasher = new PieceHasher({ worker: options.hashWorker ?? false });
    this.#writer = this.#makeWriter();
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
    let n = 0;
    for (let i = 0; i < this.meta.pieceCount; i++) {
      if (this.#picker.wants(i)) n += this.#picker.pieceSize(i);
    }
    return n;
  }

  /** Bytes of wanted pieces in total and verified so far, and hash-check progress (0-1) while one runs. */
  get progress(): { have: number; total: number; checking: number | undefined } {
    let have = 0, total = 0;
    for (let i = 0; i < this.meta.pieceCount; i++) {
      if (this.#picker.priority(i) <= 0) continue;
      const size = this.#picker.pieceSize(i);
      total += size;
      if (this.have.has(i)) have += size;
    }
    return { have, total, checking: this.#hashchecking > 0 ? this.#checkProgress : undefined };
  }

  /** True when every wanted piece is verified on disk. */
  get complete(): boolean {
    for (let i = 0; i < this.meta.pieceCount; i++) if (this.#picker.wants(i)) return false;
    return true;
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
    return this.#hashchecking > 0;
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
    return this.#storage?.pieceCache() ?? this.#pieceCache;
  }

  /** The seed's `trackers()`. */
  trackers(): TrackerTierView[] {
    if (this.#trackers) return this.#trackers.trackers();
    return this.meta.announceList.map((urls) => ({
      urls: [...urls],
      complete: 0,
      incomplete: 0,
      failures: 0,
      peers: new Uint8Array(0),
      peers6: new Uint8Array(0),
    }));
  }

  /** Connected peers. */
  peers(): PeerInfo[] {
    const out: PeerInfo[] = [];
    for (const e of this.#peers.entries.values()) {
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
      });
    }
    return out;
  }

  /** Sum of the peers' download rates, bytes/s. */
  get downloadRate(): number {
    let n = 0;
    for (const e of this.#peers.entries.values()) n += e.rateDown;
    return n;
  }

  /** Sum of the peers' upload rates, bytes/s. */
  get uploadRate(): number {
    let n = 0;
    for (const e of this.#peers.entries.values()) n += e.rateUp;
    return n;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Opens storage and learns what is already on disk: resume data when it is still valid (pieces of changed
   * files are re-verified), otherwise a hash check of the files that exist.
   */
  async open(): Promise<void> {
    this.#openStorage();
    const storage = this.#storage!;
    const resume = this.#opts.resumePath ? await storage.loadResume() : undefined;
    if (resume) {
      for (const i of resume.have) this.have.set(i);
      if (resume.recheck.length > 0) await this.hashcheck(resume.recheck, false);
    } else {
      const pieces = await this.#piecesOfExistingFiles();
      if (pieces.length > 0) await this.hashcheck(pieces, false);
    }
  }

  /**
   * Verifies pieces against their hashes; passing pieces are marked had, failing ones are not.
   *
   * @param pieces Which pieces; all when omitted.
   * @param emitEvents Dispatch hashpass / hashfail for each piece.
   */
  async hashcheck(pieces?: Iterable<number>, emitEvents = true): Promise<void> {
    this.#openStorage();
    this.#hashchecking++;
    this.#checkProgress = 0;
    try {
      await this.#storage!.hashcheck(pieces, {
        onPass: (i: number) => {
          if (this.have.set(i)) this.#afterNewPiece(i);
          if (emitEvents) this.#emit("hashpass", { index: i });
        },
        onFail: (i: number) => {
          this.have.clear(i);
          if (emitEvents) this.#emit("hashfail", { index: i });
        },
        onProgress: (done: number, total: number) => {
          this.#checkProgress = total === 0 ? 1 : done / total;
        },
        signal: this.#abort.signal,
      });
    } finally {
      this.#hashchecking--;
    }
    this.#resumeDirty = true;
  }

  /** Starts or resumes: connections, requests, uploads, trackers (`started`). */
  start(): void {
    this.#diskPaused = false;
    if (this.#state === "active") return;
    const wasStopped = this.#state === "stopped";
    this.#setState("active");
    this.#openStorage();
    this.#peers.enabled = true;
    if (wasStopped && this.#opts.trackers !== false && this.meta.announceList.length > 0) {
      this.#trackers = new TrackerManager({
        announceList: this.meta.announceList,
        infoHash: this.meta.infoHash,
        peerId: this.peerId,
        port: this.#opts.port,
        stats: () => ({ uploaded: this.#uploaded, downloaded: this.#downloaded, left: this.left }),
        onPeers: (peers: PeerAddress[]) => {
          for (const p of peers) this.addPeer(p.host, p.port, { source: "tracker" });
        },
        onEvent: (e) =>
          this.#emit("tracker", {
            type: e.type,
            url: e.url,
            ...(e.peers !== undefined ? { peers: e.peers } : {}),
            ...(e.error ? { message: e.error.message } : e.message ? { message: e.message } : {}),
          }),
      });
      this.#trackers.start();
      if (this.complete && this.have.count > 0) this.#completeSent = true;
    }
    for (const e of this.#peers.ready()) {
      this.#updateInterest(e);
      this.#fillRequests(e);
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
    for (const e of this.#peers.entries.values()) this.#cancelRequests(e);
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
    const trackers = this.#trackers;
    this.#trackers = undefined;
    await Promise.all([trackers?.stop(), this.#writer.drain()]);
    this.#hasher.close();
    // a fresh one (its worker, if any, started lazily) if we start again
    this.#hasher = new PieceHasher({ worker: this.#opts.hashWorker ?? false });
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
    // storage changes run one after another, so awaiting any call also waits for earlier ones
    const storage = this.#storage;
    const step = this.#priorityChain.then(() => storage?.setPriority(file, priority));
    this.#priorityChain = step.catch(() => {});
    await step;
    for (const e of this.#peers.ready()) {
      this.#updateInterest(e);
      this.#fillRequests(e);
    }
  }

  #applyPriorities(): void {
    const prio = new Int32Array(this.meta.pieceCount);
    const files = this.meta.files;
    for (let f = 0; f < files.length; f++) {
      const range = pieceRangeOfFile(this.meta, f);
      if (!range || files[f].padding) continue;
      const [first, last] = range;
      const p = this.#priorities[f];
      for (let i = first; i <= last; i++) if (p > prio[i]) prio[i] = p;
    }
    this.#picker.setPriorities(prio);
    for (let i = 0; i < prio.length; i++) if (prio[i] === 0) this.#picker.abandon(i);
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
    onBitfield: (peer) => this.#with(peer, (e) => this.#onBitfield(e)),
    onHave: (peer, index) => this.#with(peer, (e) => this.#onHave(e, index)),
    onUnchoke: (peer) =>
      this.#with(peer, (e) => {
        e.rejected.clear();
        this.#fillRequests(e);
      }),
    onAllowedFast: (peer) => this.#with(peer, (e) => peer.peerChoking && this.#fillRequests(e)),
    onReject: (peer, index) =>
      this.#with(peer, (e) => {
        // a peer that unchokes us but rejects: not asked for this piece for a while (out of its reach, or it
        // serves each piece only once); other peers can provide it meanwhile
        if (!peer.peerChoking) e.rejected.set(index, this.#now() + REJECT_BACKOFF_MS);
        this.#fillRequests(e);
      }),
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
      this.#with(peer, (e) => this.#onBlock(e, index, begin, data)),
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

  #onBitfield(e: PeerEntry): void {
    const peer = e.conn;
    if (e.availabilityAdded) this.#picker.removeAvailability(peer.bitfield);
    this.#picker.addAvailability(peer.bitfield);
    e.availabilityAdded = true;
    if (this.seed && peer.bitfield.full) return peer.close("both sides are seeds");
    this.#updateInterest(e);
  }

  #onHave(e: PeerEntry, index: number): void {
    const peer = e.conn;
    if (!e.availabilityAdded) {
      e.availabilityAdded = true;
      this.#picker.addAvailability(peer.bitfield);
    } else {
      this.#picker.incrementAvailability(index);
    }
    if (!peer.amInterested && this.#picker.wants(index) && this.#state !== "stopped") {
      peer.interested();
    }
    if (!peer.peerChoking) this.#fillRequests(e);
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
    const peer = e.conn;
    this.#peers.remove(e);
    const me = ownerKey(e);
    this.#once?.closed(e, [...this.#peers.entries.values()].some((o) => ownerKey(o) === me));
    if (e.availabilityAdded) this.#picker.removeAvailability(peer.bitfield);
    if (e.ready) this.#emit("peerclose", { address: e.key, reason });
    if (this.#state !== "stopped") queueMicrotask(() => this.#peers.connectMore());
  }

  #unchokedCount(): number {
    let n = 0;
    for (const e of this.#peers.entries.values()) if (!e.conn.amChoking) n++;
    return n;
  }

  // ---------------------------------------------------------------- download

  #onBlock(e: PeerEntry, index: number, begin: number, data: Uint8Array): void {
    e.lastBlockAt = this.#now();
    e.snubbed = false;
    this.#downloaded += data.length;
    const requests = this.#picker.requests;
    const result = this.#picker.receive(index, begin, data, e.id);
    if (result !== undefined) {
      // endgame: the same block may be in flight from other peers: cancel those requests
      const key = requests.key(index, begin);
      if (requests.inflight(key) > 0) {
        for (const other of this.#peers.entries.values()) {
          if (other !== e && other.conn.hasRequested(index, begin)) {
            other.conn.cancel(index, begin, data.length);
          }
        }
      }
    }
    if (result) this.#writer.add(result);
    this.#fillRequests(e);
  }

  #fillRequests(e: PeerEntry): void {
    const peer = e.conn;
    if (this.#state !== "active" || peer.closed || !e.ready) return;
    if (peer.peerChoking && peer.allowedFast.size === 0) return;
    const space = peer.queueDepth - peer.outstanding;
    // refill in batches: one pick per quarter of the pipeline, not one per block
    if (space <= 0 || (space < peer.queueDepth / 4 && peer.outstanding > 8)) return;
    let offered = peer.bitfield;
    if (e.rejected.size > 0) {
      const now = this.#now();
      offered = peer.bitfield.clone();
      for (const [i, until] of e.rejected) {
        if (until <= now) e.rejected.delete(i);
        else offered.clear(i);
      }
    }
    const blocks = this.#picker.pick(
      offered,
      space,
      peer.requests,
      peer.peerChoking ? peer.allowedFast : undefined,
    );
    for (const b of blocks) {
      if (!peer.request(b.index, b.begin, b.length)) this.#picker.unpick(b.index, b.begin);
    }
    if (blocks.length === 0 && peer.outstanding === 0) this.#updateInterest(e);
  }

  /** Withdraws every request to this peer (paused, or it is snubbing us). */
  #cancelRequests(e: PeerEntry): void {
    const requests = this.#picker.requests;
    for (const key of e.conn.requests.keys()) {
      const index = requests.indexOf(key), begin = requests.beginOf(key);
      e.conn.cancel(index, begin, Math.min(BLOCK_SIZE, this.#picker.pieceSize(index) - begin));
    }
  }

  #updateInterest(e: PeerEntry): void {
    const peer = e.conn;
    if (peer.closed || !e.ready) return;
    let wants = false;
    if (this.#state !== "stopped" && !this.complete) {
      for (const i of peer.bitfield) {
        if (this.#picker.wants(i)) {
          wants = true;
          break;
        }
      }
    }
    if (wants && !peer.amInterested) peer.interested();
    else if (!wants && peer.amInterested) peer.notInterested();
  }

  // ---------------------------------------------------------------- verify + write

  #makeWriter(): PieceWriter {
    const picker = this.#picker;
    return new PieceWriter({
      verify: async (piece) => {
        if (!this.#storage) return undefined;
        const size = picker.pieceSize(piece.index);
        const { digest, buffer } = await this.#hasher.hash(piece.buffer, size);
        piece.buffer = buffer;
        const i = piece.index * 20;
        return bytesEqual(digest, this.meta.pieces.subarray(i, i + 20));
      },
      write: (piece) => {
        const storage = this.#storage;
        if (!storage) return Promise.reject(new Error("storage closed"));
        return storage.writePieceMoving(piece.index, piece);
      },
      onPassed: (piece) => {
        for (const id of this.#smartBan.passed(piece)) {
          this.#banId(
            id,
            `sent blocks that failed the hash check for piece ${piece.index} (smart ban)`,
          );
        }
      },
      onFailed: (piece) => {
        this.#emit("hashfail", { index: piece.index });
        for (const id of this.#smartBan.failed(piece, picker.pieceSize(piece.index))) {
          this.#banId(id, `sent data that failed the hash check for piece ${piece.index}`);
        }
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

  #banId(id: number, reason: string): void {
    const e = this.#peers.byId(id);
    if (e) this.#peers.ban(e, reason);
  }

  #written(piece: PartialPiece): void {
    this.#error = undefined;
    this.#picker.pieceVerified(piece);
    this.#picker.release(piece.buffer);
    if (this.have.set(piece.index)) this.#afterNewPiece(piece.index);
    this.#emit("hashpass", { index: piece.index });
    this.#emit("piece", { index: piece.index });
    // requests may have paused while verification and writes were behind
    if (this.#state === "active") { for (const e of this.#peers.ready()) this.#fillRequests(e); }
  }

  #afterNewPiece(index: number): void {
    this.#resumeDirty = true;
    for (const e of this.#peers.ready()) if (!e.conn.closed) e.conn.have(index);
    if (!this.complete) return;
    this.#picker.trimPool(); // the spare download buffers are not needed any more
    for (const e of this.#peers.entries.values()) this.#updateInterest(e);
    if (!this.#completeSent && this.#state !== "stopped" && this.#hashchecking === 0) {
      this.#completeSent = true;
      this.#trackers?.completed(); // sends `completed` once per session, whatever we call
      this.#emit("complete", {});
    }
    if (this.seed) {
      for (const e of this.#peers.ready()) {
        if (e.conn.bitfield.full) e.conn.close("both sides are seeds");
      }
    }
  }

  // ---------------------------------------------------------------- storage

  #openStorage(): void {
    if (this.#storage) return;
    this.#storage = new Storage({
      dir: this.dir,
      layout: this.meta,
      priorities: this.#priorities,
      ...(this.#pieceCache ? { pieceCache: this.#pieceCache } : {}),
      ...(this.#opts.resumePath ? { resumePath: this.#opts.resumePath } : {}),
      ...(this.#opts.preallocate ? { preallocate: true } : {}),
    });
  }

  async #closeStorage(): Promise<void> {
    await this.#priorityChain;
    const storage = this.#storage;
    if (!storage) return;
    this.#cache.clear();
    if (this.#opts.resumePath) {
      try {
        await storage.saveResume(this.have);
      } catch (err) {
        this.#emit("error", { error: err instanceof Error ? err : new Error(String(err)) });
      }
    }
    this.#pieceCache = storage.pieceCache();
    this.#storage = undefined;
    await storage.close();
  }

  async #piecesOfExistingFiles(): Promise<number[]> {
    const set = new Set<number>();
    const files = this.meta.files;
    for (let f = 0; f < files.length; f++) {
      const file = files[f];
      if (file.length === 0 || file.padding) continue;
      try {
        const st = await Deno.stat(join(this.dir, ...file.path));
        if (!st.isFile || st.size === 0) continue;
      } catch {
        continue;
      }
      const [first, last] = pieceRangeOfFile(this.meta, f)!;
      for (let i = first; i <= last; i++) set.add(i);
    }
    return [...set].sort((a, b) => a - b);
  }

  /** Writes resume data now. */
  async saveResume(): Promise<void> {
    if (this.#storage && this.#opts.resumePath) {
      await this.#writer.drain();
      await this.#storage.saveResume(this.have);
      this.#resumeDirty = false;
    }
  }

  /** Storage error as a typed value (for callers that care about codes). */
  get storageError(): StorageError | undefined {
    return this.#storage?.error;
  }

  // ---------------------------------------------------------------- tick

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
    for (const e of [...this.#peers.entries.values()]) {
      const c = e.conn;
      c.tick(now);
      if (c.closed) continue;
      // exponential moving average over ~2 ticks
      e.rateDown = e.rateDown * 0.5 + ((c.downloaded - e.lastDown) / secs) * 0.5;
      e.rateUp = e.rateUp * 0.5 + ((c.uploaded - e.lastUp) / secs) * 0.5;
      e.lastDown = c.downloaded;
      e.lastUp = c.uploaded;
      if (c.outstanding > 0 && now - e.lastBlockAt > SNUB_MS && !e.snubbed) {
        e.snubbed = true;
        this.#cancelRequests(e);
      }
      if (this.#state === "active") this.#fillRequests(e);
    }
    if (this.#state === "active" && this.#ticks % RECHOKE_TICKS === 0) this.#rechoke(now);
    // PEX: a first message soon after connecting, then one a minute
    if (!this.meta.private) this.#pex.send([...this.#peers.ready()], this.#ticks % PEX_TICKS !== 0);
    if (this.#ticks % 5 === 0) {
      for (const e of this.#peers.entries.values()) this.#updateInterest(e);
    }
    this.#peers.connectMore();
    this.#writer.tick(now);
    this.#announceWhenStarving(now);
    if (this.#resumeDirty && this.#opts.resumePath && now - this.#lastResumeSave > RESUME_SAVE_MS) {
      this.#resumeDirty = false;
      this.#lastResumeSave = now;
      this.#storage?.saveResume(this.have).catch((err) =>
        this.#emit("error", { error: err instanceof Error ? err : new Error(String(err)) })
      );
    }
  }

  /**
   * No peer to download from and nothing left to dial: ask the trackers again, backing off 10 s, 20 s, 40 s …
   * up to 5 min (the tracker's own min interval is respected by announceNow).
   */
  #announceWhenStarving(now: number): void {
    if (
      this.#state === "active" && !this.complete && this.#peers.size === 0 &&
      this.#peers.connecting === 0
    ) {
      if (now >= this.#nextStarvingAnnounce) {
        this.#trackers?.announceNow();
        this.#starvingBackoff = Math.min(300_000, this.#starvingBackoff * 2);
        this.#nextStarvingAnnounce = now + this.#starvingBackoff;
      }
    } else {
      this.#starvingBackoff = 5_000;
      this.#nextStarvingAnnounce = now + 10_000;
    }
  }

  #rechoke(now: number): void {
    const list = [...this.#peers.ready()];
    const unchoke = this.#choker.round(
      list.map((e) => ({
        id: e.id,
        peerInterested: e.conn.peerInterested,
        downloadRate: e.rateDown,
        uploadRate: e.rateUp,
        snubbed: e.snubbed,
        connectedAt: e.connectedAt,
      })),
      this.seed,
      now,
    );
    for (const e of list) {
      if (unchoke.has(e.id)) e.conn.unchoke();
      else if (!e.conn.amChoking) e.conn.choke();
    }
  }
}
