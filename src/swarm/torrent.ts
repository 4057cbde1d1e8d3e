/**
 * One torrent's engine: the peer set, the piece picker, the choker, verification and the write path.
 *
 * Data path of a download: peer (validated block) → picker (copied into its piece buffer) → SHA-1 check, one piece
 * after another → storage (one write per piece) → `have` broadcast. Uploads: peer request → piece read (cached) →
 * batched socket write. One timer per torrent drives rates, choking, reconnects, snub detection and resume saves.
 *
 * @module
 */

import { join } from "node:path";
import { Bitfield } from "../bitfield.ts";
import { addressKey, splitAddressKey, unmapIpv4 } from "../_address.ts";
import { bytesEqual, compareBytes, toHex } from "../_bytes.ts";
import { CLIENT_NAME } from "../version.ts";
import type { Metainfo } from "../metainfo.ts";
import { PeerConnection, type PeerHandler } from "../peer.ts";
import type { PeerStream } from "../wire/stream.ts";
import { acceptConnection } from "../wire/mse.ts";
import { decodePex, encodePex, UT_PEX_ID } from "../wire/pex.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  METADATA_PIECE,
  UT_METADATA_ID,
} from "../wire/metadata.ts";
import { PieceHasher } from "../storage/hasher.ts";
import { Storage, type StorageError } from "../storage/storage.ts";
import type { PieceCacheIndex } from "../storage/storage.ts";
import type { PeerAddress } from "../tracker/compact.ts";
import { TrackerManager, type TrackerTierView } from "../tracker/tiers.ts";
import { Choker } from "./choker.ts";
import { BLOCK_SIZE, type PartialPiece, PiecePicker } from "./piece_picker.ts";

/** The three states of the seed's API. */
export type TorrentState = "active" | "paused" | "stopped";

/** Events the engine reports to its owner (the Client turns them into DOM events). */
export interface TorrentEvents {
  hashpass: { index: number };
  hashfail: { index: number };
  piece: { index: number };
  peer: { address: string; peerId: Uint8Array | undefined; incoming: boolean };
  peerclose: { address: string; reason: string };
  tracker: {
    type: "announce" | "error" | "warning";
    url: string;
    peers?: number;
    message?: string;
  };
  state: { state: TorrentState };
  complete: Record<string, never>;
  error: { error: Error };
}

/** Receives engine events. */
export type TorrentEmit = <K extends keyof TorrentEvents>(
  type: K,
  detail: TorrentEvents[K],
) => void;

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
  /** Milliseconds per engine tick. @default {1000} */
  tickMs?: number;
  /** Hostname to connect from/to: tests pin 127.0.0.1. */
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
}

/** One known peer address and its connection history. */
/** Where a peer's address came from. */
export type PeerSource = "user" | "tracker" | "dht" | "pex" | "lsd" | "incoming";

interface Candidate {
  source: PeerSource;
  host: string;
  port: number;
  key: string;
  failures: number;
  nextAttempt: number;
  banned: boolean;
  connected: boolean;
  /** Added by the user (`addPeer`): never given up on. */
  manual: boolean;
}

/** A live connection and what the engine tracks about it. */
interface PeerEntry {
  source: PeerSource;
  id: number;
  conn: PeerConnection;
  key: string;
  incoming: boolean;
  connectedAt: number;
  lastBlockAt: number;
  /** Our outstanding requests to this peer, as block keys. */
  requests: Set<number>;
  ready: boolean;
  availabilityAdded: boolean;
  snubbed: boolean;
  /** Addresses we told this peer about through PEX. */
  pexSent: Map<string, PeerAddress>;
  /** Whether this peer got its first PEX message (later ones go out once a minute). */
  pexGreeted: boolean;
  /** Pieces this peer rejected while unchoking us → until when (ms) we do not ask it for them again. */
  rejected: Map<number, number>;
  /**
   * Requests held while the peer's send queue is full, as (index, begin, length) triples, served as its socket
   * drains. They stay outstanding in the connection, so a peer asking faster than it reads hits its limit.
   */
  held: number[];
  rateDown: number;
  rateUp: number;
  lastDown: number;
  lastUp: number;
}

/** Public view of a connected peer. */
export interface PeerInfo {
  /** "host:port". */
  address: string;
  /** The peer's id, once the handshake is done. */
  peerId: Uint8Array | undefined;
  /** True when the peer connected to us. */
  incoming: boolean;
  /** Where we learnt its address ("incoming" when it connected to us). */
  source: PeerSource;
  /** Pieces the peer has. */
  have: number;
  /** Payload bytes per second from the peer. */
  downloadRate: number;
  /** Payload bytes per second to the peer. */
  uploadRate: number;
  /** Payload bytes received from the peer. */
  downloaded: number;
  /** Payload bytes sent to the peer. */
  uploaded: number;
  /** We are choking the peer. */
  amChoking: boolean;
  /** We want data from the peer. */
  amInterested: boolean;
  /** The peer is choking us. */
  peerChoking: boolean;
  /** The peer wants data from us. */
  peerInterested: boolean;
  /** Our requests in flight to this peer. */
  outstanding: number;
}

const SNUB_MS = 60_000;
/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
const HANDSHAKE_MS = 10_000;
/** Ticks between PEX messages (one a minute at the default tick). */
const PEX_TICKS = 60;
/** How long a piece a peer rejected is not asked of that peer again. */
const REJECT_BACKOFF_MS = 10_000;
/** Failed pieces kept (a piece-sized copy each) until they pass, to find which peer lied. */
const MAX_SUSPECT_PIECES = 8;
const RECHOKE_TICKS = 10;
const RESUME_SAVE_MS = 30_000;
/** Bytes queued for one peer's socket above which its further requests are held until it drains. */
const SEND_QUEUE_BYTES = 1024 * 1024;
/** Default of {@linkcode TorrentOptions.uploadMemory}. */
const UPLOAD_MEMORY = 32 * 1024 * 1024;
/** Default of {@linkcode TorrentOptions.pieceMemory}. */
const PIECE_MEMORY = 8 * 1024 * 1024;

/** A piece read from disk to serve uploads. */
interface UploadEntry {
  read: Promise<Uint8Array | undefined>;
  /** The piece, once read (while the entry is cached). */
  data?: Uint8Array | undefined;
  /** The full-size buffer the piece is read into, recycled once evicted and unused. */
  buffer: Uint8Array<ArrayBuffer> | undefined;
  /** The read in flight plus requests waiting to copy a block out. */
  users: number;
  evicted: boolean;
}

/** One torrent's swarm engine. */
export class Torrent implements AsyncDisposable {
  readonly meta: Metainfo;
  readonly dir: string;
  readonly peerId: Uint8Array;
  readonly have: Bitfield;
  readonly #emit: TorrentEmit;
  readonly #port: () => number;
  readonly #opts: TorrentOptions;
  readonly #picker: PiecePicker;
  readonly #choker: Choker;
  readonly #blocksPerPiece: number;
  #storage: Storage | undefined;
  #pieceCache: PieceCacheIndex | undefined;
  #priorities: number[];
  #trackers: TrackerManager | undefined;
  #state: TorrentState = "stopped";
  readonly #peers = new Map<PeerConnection, PeerEntry>();
  readonly #candidates = new Map<string, Candidate>();
  #connecting = 0;
  #nextPeerId = 1;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ticks = 0;
  #uploaded = 0;
  #downloaded = 0;
  #verifyQueue: PartialPiece[] = [];
  #verifying: Promise<void> | undefined;
  #writes = new Set<Promise<void>>();
  #completeSent = false;
  #resumeDirty = false;
  #lastResumeSave = 0;
  /** Whole pieces read from disk for uploading, least recently used first. */
  #uploadCache = new Map<number, UploadEntry>();
  /** Piece buffers of evicted upload entries that nothing reads any more, for the next disk reads. */
  #uploadSpare: Uint8Array<ArrayBuffer>[] = [];
  readonly #uploadCapacity: number;
  #error: Error | undefined;
  /** Verified pieces a disk error kept from being written, held in memory and retried (never marked had). */
  readonly #unwritten: PartialPiece[] = [];
  /** We paused because of the disk (not the user): resume once everything is written. */
  #diskPaused = false;
  #diskRetry: ReturnType<typeof setTimeout> | undefined;
  #abort = new AbortController();
  #hashchecking = 0;
  readonly #suspects = new Map<number, { data: Uint8Array; senders: Int32Array }>();
  #hasher: PieceHasher;
  /** With uploadEachPieceOnce: block key → the connection (entry id) it was sent on. */
  readonly #uploadedBlocks: Map<number, number> | undefined;
  /** With uploadEachPieceOnce: the peer (by peer id) each piece goes to; only it may have that piece's blocks. */
  readonly #pieceOwner = new Map<number, string>();
  #checkProgress = 0;
  #priorityChain: Promise<void> = Promise.resolve();
  #starvingBackoff = 5_000;
  #nextStarvingAnnounce = Date.now() + 10_000;

  /**

   * Creates a {@linkcode Torrent}.

   *

   * @param options The torrent, where its data lives, and how to behave.

   */
  constructor(options: TorrentOptions) {
    this.meta = options.meta;
    this.dir = options.dir;
    this.peerId = options.peerId;
    this.#emit = options.emit;
    this.#port = options.port;
    this.#opts = options;
    this.#pieceCache = options.pieceCache;
    this.#priorities = options.priorities?.slice() ?? options.meta.files.map(() => 1);
    this.have = new Bitfield(options.meta.pieceCount);
    this.#picker = new PiecePicker({
      pieceCount: options.meta.pieceCount,
      pieceLength: options.meta.pieceLength,
      totalLength: options.meta.length,
      have: this.have,
      maxInMemory: Math.max(
        4,
        Math.floor((options.pieceMemory ?? PIECE_MEMORY) / options.meta.pieceLength),
      ),
    });
    this.#uploadCapacity = Math.max(
      2,
      Math.floor((options.uploadMemory ?? UPLOAD_MEMORY) / options.meta.pieceLength),
    );
    this.#choker = new Choker();
    this.#blocksPerPiece = Math.ceil(options.meta.pieceLength / BLOCK_SIZE);
    this.#uploadedBlocks = options.uploadEachPieceOnce ? new Map() : undefined;
    this.#hasher = new PieceHasher({ worker: options.hashWorker ?? false });
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
    for (const e of this.#peers.values()) {
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
    for (const e of this.#peers.values()) n += e.rateDown;
    return n;
  }

  /** Sum of the peers' upload rates, bytes/s. */
  get uploadRate(): number {
    let n = 0;
    for (const e of this.#peers.values()) n += e.rateUp;
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
          const added = this.have.set(i);
          if (added) this.#afterNewPiece(i);
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
    if (wasStopped) {
      if (this.#opts.trackers !== false && this.meta.announceList.length > 0) {
        this.#trackers = new TrackerManager({
          announceList: this.meta.announceList,
          infoHash: this.meta.infoHash,
          peerId: this.peerId,
          port: this.#port,
          stats: () => ({
            uploaded: this.#uploaded,
            downloaded: this.#downloaded,
            left: this.left,
          }),
          onPeers: (peers: PeerAddress[]) => {
            for (const p of peers) this.addPeer(p.host, p.port, false, "tracker");
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
      this.#timer = setInterval(() => this.#tick(), this.#opts.tickMs ?? 1000);
    }
    for (const e of this.#peers.values()) {
      this.#updateInterest(e);
      this.#fillRequests(e);
    }
    this.#connectMore();
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
    for (const e of this.#peers.values()) this.#dropRequests(e, true);
  }

  /** Announces `stopped`, closes every connection and file, writes resume data. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#setState("stopped");
    // pieces the disk refused are dropped (they are downloaded again after a restart)
    clearTimeout(this.#diskRetry);
    this.#diskRetry = undefined;
    this.#diskPaused = false;
    for (const p of this.#unwritten.splice(0)) this.#picker.pieceFailed(p);
    this.#picker.trimPool();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const e of [...this.#peers.values()]) e.conn.close("stopped");
    await Promise.all([...this.#peers.values()].map((e) => e.conn.done));
    const trackers = this.#trackers;
    this.#trackers = undefined;
    await Promise.all([trackers?.stop(), this.#drain()]);
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
    for (const e of this.#peers.values()) {
      this.#updateInterest(e);
      this.#fillRequests(e);
    }
  }

  #applyPriorities(): void {
    const prio = new Int32Array(this.meta.pieceCount);
    const files = this.meta.files;
    const pl = this.meta.pieceLength;
    for (let f = 0; f < files.length; f++) {
      const file = files[f];
      if (file.length === 0 || file.padding) continue;
      const first = Math.floor(file.offset / pl);
      const last = Math.floor((file.offset + file.length - 1) / pl);
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
   * @param manual True for user-given peers, which are retried forever with backoff.
   * @param source Where the address came from (shown in {@linkcode PeerInfo}).
   */
  addPeer(host: string, port: number, manual = true, source?: PeerSource): void {
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return;
    const key = addressKey(host, port);
    let c = this.#candidates.get(key);
    if (!c) {
      if (this.#candidates.size >= 2000 && !manual) return;
      c = {
        source: source ?? (manual ? "user" : "tracker"),
        host,
        port,
        key,
        failures: 0,
        nextAttempt: 0,
        banned: false,
        connected: false,
        manual,
      };
      this.#candidates.set(key, c);
    } else if (manual) {
      c.manual = true;
      c.nextAttempt = 0;
    }
    this.#connectMore();
  }

  /**
   * Takes an incoming connection (the listener accepted it).
   *
   * @param conn The accepted connection.
   */
  accept(conn: Deno.Conn): void {
    noDelay(conn);
    if (this.#state === "stopped" || this.#peers.size >= (this.#opts.maxPeers ?? 50) + 10) {
      try {
        conn.close();
      } catch { /* already closed */ }
      return;
    }
    const addr = conn.remoteAddr as Deno.NetAddr;
    // dual-stack listeners report IPv4 peers as IPv4-mapped IPv6 addresses
    const host = unmapIpv4(addr.hostname);
    // a plain handshake passes through; an encrypted one (MSE, as WebTorrent dials) is answered first; one
    // deadline covers both handshakes, so a peer dripping bytes is gone within HANDSHAKE_MS of connecting
    const accepted = Date.now();
    acceptConnection(conn, [this.meta.infoHash], { timeoutMs: HANDSHAKE_MS }).then(
      ({ stream }) => {
        if (this.#state === "stopped") stream.close?.();
        else {
          const left = Math.max(1, HANDSHAKE_MS - (Date.now() - accepted));
          this.#attach(
            stream,
            addressKey(host, addr.port),
            true,
            host,
            addr.port,
            "incoming",
            left,
          );
        }
      },
      () => {
        try {
          conn.close();
        } catch { /* already closed */ }
      },
    );
  }

  #connectMore(): void {
    // seeds dial too: leechers that cannot dial us (Transmission never dials loopback) still get served
    if (this.#state === "stopped") return;
    const maxPeers = this.#opts.maxPeers ?? 50;
    const maxConnecting = this.#opts.maxConnecting ?? 8;
    const now = Date.now();
    for (const c of this.#candidates.values()) {
      if (this.#peers.size + this.#connecting >= maxPeers || this.#connecting >= maxConnecting) {
        break;
      }
      if (c.banned || c.connected || c.nextAttempt > now) continue;
      if (this.#isConnectedTo(c.key)) continue;
      this.#dial(c);
    }
  }

  #isConnectedTo(key: string): boolean {
    for (const e of this.#peers.values()) if (e.key === key) return true;
    return false;
  }

  async #dial(c: Candidate): Promise<void> {
    c.connected = true;
    this.#connecting++;
    let conn: Deno.Conn | undefined;
    try {
      conn = await connectWithTimeout(c.host, c.port, this.#opts.connectTimeoutMs ?? 5000);
    } catch {
      conn = undefined;
    } finally {
      this.#connecting--;
    }
    if (!conn) {
      this.#dialFailed(c);
      return;
    }
    if (this.#state === "stopped") {
      conn.close();
      c.connected = false;
      return;
    }
    this.#attach(conn, c.key, false, c.host, c.port, c.source);
  }

  #dialFailed(c: Candidate): void {
    c.connected = false;
    c.failures++;
    if (!c.manual && c.failures >= 5) {
      this.#candidates.delete(c.key);
      return;
    }
    c.nextAttempt = Date.now() + Math.min(60_000, 1000 * 2 ** Math.min(c.failures - 1, 6));
  }

  #attach(
    conn: PeerStream,
    key: string,
    incoming: boolean,
    host: string,
    port: number,
    source: PeerSource,
    handshakeTimeoutMs = HANDSHAKE_MS,
  ): void {
    const meta = this.meta;
    const peer = new PeerConnection(conn, {
      infoHash: meta.infoHash,
      peerId: this.peerId,
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      queueDepth: this.#opts.queueDepth ?? 768,
      extensionHandshake: {
        v: CLIENT_NAME,
        p: this.#port(),
        reqq: 500,
        // private torrents (BEP 27) get peers from their trackers only: no PEX
        m: meta.private
          ? { ut_metadata: UT_METADATA_ID }
          : { ut_metadata: UT_METADATA_ID, ut_pex: UT_PEX_ID },
        metadata_size: meta.info.length,
      },
      remoteAddress: { host, port },
      handshakeTimeoutMs,
      dht: this.#dhtPort() > 0,
      signal: this.#abort.signal,
    }, this.#handler);
    const now = Date.now();
    const entry: PeerEntry = {
      source,
      id: this.#nextPeerId++,
      conn: peer,
      key,
      incoming,
      connectedAt: now,
      lastBlockAt: now,
      requests: new Set(),
      ready: false,
      availabilityAdded: false,
      snubbed: false,
      rejected: new Map(),
      held: [],
      pexSent: new Map(),
      pexGreeted: false,
      rateDown: 0,
      rateUp: 0,
      lastDown: 0,
      lastUp: 0,
    };
    this.#peers.set(peer, entry);
    void peer.start();
  }

  #entry(peer: PeerConnection): PeerEntry | undefined {
    return this.#peers.get(peer);
  }

  /** Our DHT port, 0 when there is no DHT for this torrent (none, or a private torrent). */
  #dhtPort(): number {
    return this.meta.private ? 0 : this.#opts.dhtPort?.() ?? 0;
  }

  readonly #handler: PeerHandler = {
    onPort: (peer, port) => {
      const e = this.#entry(peer);
      if (!e || this.meta.private || !(port > 0)) return;
      this.#opts.onDhtNode?.(splitAddressKey(e.key).host, port);
    },
    onReady: (peer) => {
      const e = this.#entry(peer);
      if (!e) return;
      const remote = peer.remotePeerId;
      if (remote && bytesEqual(remote, this.peerId)) {
        const c = this.#candidates.get(e.key);
        if (c) c.banned = true;
        peer.close("connected to ourselves");
        return;
      }
      for (const other of this.#peers.values()) {
        if (
          other !== e && other.ready && remote && other.conn.remotePeerId &&
          bytesEqual(other.conn.remotePeerId, remote)
        ) {
          // Both sides may dial each other at once (PEX tells each about the other). Both must drop the same
          // connection, or each drops a different one and nothing is left: the connection opened by the peer
          // with the lower peer id survives.
          const keepIncoming = compareBytes(this.peerId, remote) > 0;
          if (e.incoming === keepIncoming && other.incoming !== keepIncoming) {
            other.conn.close("duplicate connection to the same peer");
            break;
          }
          peer.close("duplicate connection to the same peer");
          return;
        }
      }
      e.ready = true;
      peer.sendBitfield(this.have);
      const dhtPort = this.#dhtPort();
      if (dhtPort > 0 && peer.remoteHandshake?.dht) peer.sendPort(dhtPort);
      this.#emit("peer", { address: e.key, peerId: remote, incoming: e.incoming });
    },
    onBitfield: (peer) => {
      const e = this.#entry(peer);
      if (!e) return;
      if (e.availabilityAdded) this.#picker.removeAvailability(peer.bitfield);
      this.#picker.addAvailability(peer.bitfield);
      e.availabilityAdded = true;
      if (this.seed && peer.bitfield.full) {
        peer.close("both sides are seeds");
        return;
      }
      this.#updateInterest(e);
    },
    onHave: (peer, index) => {
      const e = this.#entry(peer);
      if (!e) return;
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
    },
    onUnchoke: (peer) => {
      const e = this.#entry(peer);
      if (!e) return;
      e.rejected.clear();
      this.#fillRequests(e);
    },
    onAllowedFast: (peer) => {
      const e = this.#entry(peer);
      if (e && peer.peerChoking) this.#fillRequests(e);
    },
    onRequestsDropped: (peer, blocks) => {
      const e = this.#entry(peer);
      if (!e) return;
      for (const b of blocks) this.#forget(e, b.index, b.begin);
    },
    onReject: (peer, index, begin) => {
      const e = this.#entry(peer);
      if (!e) return;
      this.#forget(e, index, begin);
      // a peer that unchokes us but rejects: do not ask it for this piece for a while (it may be out of its reach,
      // or it serves each piece only once); other peers can provide it meanwhile
      if (!peer.peerChoking) e.rejected.set(index, Date.now() + REJECT_BACKOFF_MS);
      this.#fillRequests(e);
    },
    onInterested: (peer) => {
      if (this.#state !== "active" || !peer.amChoking) return;
      if (this.#choker.hasFreeSlot(this.#unchokedCount())) peer.unchoke();
    },
    onExtended: (peer, id, payload) => {
      if (id === UT_METADATA_ID) this.#onMetadataMessage(peer, payload);
      else if (id === UT_PEX_ID && !this.meta.private) this.#onPex(peer, payload);
    },
    onBlock: (peer, index, begin, data) => this.#onBlock(peer, index, begin, data),
    onRequest: (peer, index, begin, length) => this.#onRequest(peer, index, begin, length),
    onDrain: (peer) => this.#onDrain(peer),
    onClose: (peer, reason) => this.#onClose(peer, reason),
  };

  /** BEP 11: peers a connected peer knows; used within our connection limits, never trusted beyond them. */
  #onPex(peer: PeerConnection, payload: Uint8Array): void {
    let m;
    try {
      m = decodePex(payload);
    } catch (err) {
      return peer.close(`protocol violation: ${(err as Error).message}`);
    }
    for (const p of m.added) this.addPeer(p.host, p.port, false, "pex");
  }

  /** The address other peers can dial for a connected peer: its own port for outgoing, its `p` for incoming. */
  #listenAddress(e: PeerEntry): PeerAddress | undefined {
    const { host, port } = splitAddressKey(e.key);
    if (!e.incoming) return { host, port };
    const p = e.conn.remoteExtensions?.p;
    return p ? { host, port: p } : undefined;
  }

  /** BEP 11: at most one message a minute per peer, the changes since the last one (the first may be longer). */
  #sendPex(onlyNew: boolean): void {
    if (this.meta.private) return;
    const current = new Map<string, PeerAddress>();
    for (const e of this.#peers.values()) {
      if (!e.ready) continue;
      const a = this.#listenAddress(e);
      if (a) current.set(addressKey(a.host, a.port), a);
    }
    for (const e of this.#peers.values()) {
      const remoteId = e.conn.remoteExtensions?.m["ut_pex"];
      if (!e.ready || !remoteId || (onlyNew && e.pexGreeted)) continue;
      e.pexGreeted = true;
      const self = this.#listenAddress(e);
      const selfKey = self ? addressKey(self.host, self.port) : "";
      const first = e.pexSent.size === 0;
      const added: PeerAddress[] = [], dropped: PeerAddress[] = [];
      for (const [k, a] of current) {
        if (k !== selfKey && !e.pexSent.has(k) && (first || added.length < 50)) added.push(a);
      }
      for (const k of e.pexSent.keys()) {
        if (!current.has(k) && dropped.length < 50) dropped.push(e.pexSent.get(k)!);
      }
      if (added.length === 0 && dropped.length === 0) continue;
      for (const a of added) e.pexSent.set(addressKey(a.host, a.port), a);
      for (const a of dropped) e.pexSent.delete(addressKey(a.host, a.port));
      e.conn.sendExtended(remoteId, encodePex({ added, dropped }));
    }
  }

  /** BEP 9: serve our info dictionary to peers that came with a magnet link. */
  #onMetadataMessage(peer: PeerConnection, payload: Uint8Array): void {
    let m;
    try {
      m = decodeMetadataMessage(payload);
    } catch (err) {
      return peer.close(`protocol violation: ${(err as Error).message}`);
    }
    if (m.type !== "request") return;
    const remoteId = peer.remoteExtensions?.m["ut_metadata"];
    if (!remoteId) return;
    const info = this.meta.info;
    const begin = m.piece * METADATA_PIECE;
    if (begin >= info.length) {
      peer.sendExtended(remoteId, encodeMetadataMessage({ type: "reject", piece: m.piece }));
      return;
    }
    peer.sendExtended(
      remoteId,
      encodeMetadataMessage({
        type: "data",
        piece: m.piece,
        totalSize: info.length,
        data: info.subarray(begin, begin + METADATA_PIECE),
      }),
    );
  }

  #forget(e: PeerEntry, index: number, begin: number): void {
    if (e.requests.delete(index * this.#blocksPerPiece + begin / BLOCK_SIZE)) {
      this.#picker.unrequest(index, begin);
    }
  }

  #onBlock(peer: PeerConnection, index: number, begin: number, data: Uint8Array): void {
    const e = this.#entry(peer);
    if (!e) return;
    const key = index * this.#blocksPerPiece + begin / BLOCK_SIZE;
    e.requests.delete(key);
    e.lastBlockAt = Date.now();
    e.snubbed = false;
    this.#downloaded += data.length;
    const result = this.#picker.receive(index, begin, data, e.id);
    if (result !== undefined && this.#picker.lastReceiveDuplicated) {
      // the same block may be in flight from other peers: cancel those requests
      for (const other of this.#peers.values()) {
        if (other !== e && other.requests.delete(key)) {
          other.conn.cancel(index, begin, data.length);
        }
      }
    }
    if (result) {
      this.#verifyQueue.push(result);
      if (!this.#verifying) this.#verifying = this.#verifyLoop();
    }
    this.#fillRequests(e);
  }

  #fillRequests(e: PeerEntry): void {
    const peer = e.conn;
    if (this.#state !== "active" || peer.closed || !e.ready) return;
    if (peer.peerChoking && peer.allowedFast.size === 0) return;
    const space = peer.queueDepth - peer.outstanding;
    // refill in batches: one pick per quarter of the pipeline, not one per block
    if (space <= 0 || (space < peer.queueDepth / 4 && peer.outstanding > 8)) return;
    const bpp = this.#blocksPerPiece;
    let offered = peer.bitfield;
    if (e.rejected.size > 0) {
      const now = Date.now();
      offered = peer.bitfield.clone();
      for (const [i, until] of e.rejected) {
        if (until <= now) e.rejected.delete(i);
        else offered.clear(i);
      }
    }
    const blocks = this.#picker.pick(
      offered,
      space,
      (i, b) => e.requests.has(i * bpp + b / BLOCK_SIZE),
      peer.peerChoking ? peer.allowedFast : undefined,
    );
    for (const b of blocks) {
      if (peer.request(b.index, b.begin, b.length)) {
        e.requests.add(b.index * bpp + b.begin / BLOCK_SIZE);
      } else this.#picker.unrequest(b.index, b.begin);
    }
    if (blocks.length === 0 && peer.outstanding === 0) this.#updateInterest(e);
  }

  #dropRequests(e: PeerEntry, sendCancel: boolean): void {
    for (const key of e.requests) {
      const index = Math.floor(key / this.#blocksPerPiece);
      const begin = (key % this.#blocksPerPiece) * BLOCK_SIZE;
      this.#picker.unrequest(index, begin);
      if (sendCancel) {
        const len = Math.min(BLOCK_SIZE, this.#picker.pieceSize(index) - begin);
        e.conn.cancel(index, begin, len);
      }
    }
    e.requests.clear();
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

  #onRequest(peer: PeerConnection, index: number, begin: number, length: number): void {
    const e = this.#entry(peer);
    if (!e) return;
    if (e.held.length > 0 || peer.sendQueueBytes >= SEND_QUEUE_BYTES) {
      // the peer is not reading as fast as it asks: keep the request until its socket drains
      e.held.push(index, begin, length);
      return;
    }
    this.#answer(e, peer, index, begin, length);
  }

  #onDrain(peer: PeerConnection): void {
    const e = this.#entry(peer);
    if (!e || e.held.length === 0) return;
    let k = 0;
    while (k < e.held.length && peer.sendQueueBytes < SEND_QUEUE_BYTES && !peer.closed) {
      const index = e.held[k], begin = e.held[k + 1], length = e.held[k + 2];
      k += 3;
      // cancelled, or refused when we choked it, meanwhile
      if (peer.isRequestedByPeer(index, begin)) this.#answer(e, peer, index, begin, length);
    }
    e.held.splice(0, k);
  }

  #answer(e: PeerEntry, peer: PeerConnection, index: number, begin: number, length: number): void {
    let allowed = this.#state === "active" && this.have.has(index) &&
      (!peer.amChoking || peer.grantedFast.has(index));
    if (allowed && this.#uploadedBlocks) {
      // a whole piece goes to one peer: blocks of one piece spread over several peers would leave none of
      // them with a piece it can pass on, and the rest never leaves the seed again
      const owner = this.#pieceOwner.get(index);
      const me = ownerKey(e);
      const key = index * this.#blocksPerPiece + begin / BLOCK_SIZE;
      // each block once, except when the connection it went out on has closed since (a duplicate connection,
      // say): then it may never have arrived
      const sentOn = this.#uploadedBlocks.get(key);
      const lost = sentOn !== undefined && ![...this.#peers.values()].some((o) => o.id === sentOn);
      if ((owner !== undefined && owner !== me) || (sentOn !== undefined && !lost)) allowed = false;
      else {
        this.#pieceOwner.set(index, me);
        this.#uploadedBlocks.set(key, e.id);
      }
    }
    if (!allowed) {
      if (peer.supportsFast) peer.reject(index, begin, length);
      return;
    }
    const entry = this.#readForUpload(index);
    if (entry.data) return this.#serve(peer, index, begin, length, entry.data); // in memory: at once
    entry.users++; // the buffer is not recycled before the block is copied out
    entry.read.then(
      (piece) => this.#serve(peer, index, begin, length, piece),
      (err) => this.#emit("error", { error: err instanceof Error ? err : new Error(String(err)) }),
    ).finally(() => this.#releaseUpload(entry));
  }

  #serve(
    peer: PeerConnection,
    index: number,
    begin: number,
    length: number,
    piece: Uint8Array | undefined,
  ): void {
    if (peer.closed) return;
    if (!piece || (peer.amChoking && !peer.grantedFast.has(index)) || this.#state !== "active") {
      if (peer.supportsFast) peer.reject(index, begin, length);
      return;
    }
    peer.sendPiece(index, begin, piece.subarray(begin, begin + length)); // copies the block
    this.#uploaded += length;
  }

  #readForUpload(index: number): UploadEntry {
    let entry = this.#uploadCache.get(index);
    if (entry) {
      this.#uploadCache.delete(index); // re-insert: most recently used last
      this.#uploadCache.set(index, entry);
      return entry;
    }
    const storage = this.#storage;
    const size = this.#picker.pieceSize(index);
    const buffer = size === this.meta.pieceLength ? this.#uploadSpare.pop() : undefined;
    const e: UploadEntry = {
      read: storage
        ? storage.readPiece(index, buffer).catch(() => undefined)
        : Promise.resolve(undefined),
      buffer,
      users: 1, // the read itself
      evicted: false,
    };
    entry = e;
    this.#uploadCache.set(index, e);
    const capacity = this.#uploadCapacity;
    if (this.#uploadCache.size > capacity) {
      const [oldest, old] = this.#uploadCache.entries().next().value as [number, UploadEntry];
      this.#uploadCache.delete(oldest);
      old.evicted = true;
      old.data = undefined;
      this.#releaseUpload(old, false);
    }
    e.read.then((data) => {
      if (!data && this.#uploadCache.get(index) === e) {
        this.#uploadCache.delete(index);
        e.evicted = true;
      }
      if (data && !e.buffer && data.length === this.meta.pieceLength) {
        e.buffer = data as Uint8Array<ArrayBuffer>;
      }
      if (data && !e.evicted) e.data = data;
      this.#releaseUpload(e);
    });
    return e;
  }

  /** One user of an upload entry is done; an evicted entry nobody uses gives its buffer back. */
  #releaseUpload(e: UploadEntry, done = true): void {
    if (done) e.users--;
    if (!e.evicted || e.users > 0 || !e.buffer) return;
    const capacity = this.#uploadCapacity;
    if (this.#uploadSpare.length < capacity) this.#uploadSpare.push(e.buffer);
    e.buffer = undefined;
    e.data = undefined;
  }

  #onClose(peer: PeerConnection, reason: string): void {
    const e = this.#entry(peer);
    if (!e) return;
    this.#peers.delete(peer);
    // pieces this peer was given only in part and never announced: they may go to someone else now (not when
    // the same peer is still connected another way)
    const me = ownerKey(e);
    const stillHere = [...this.#peers.values()].some((o) => ownerKey(o) === me);
    for (const [index, owner] of this.#pieceOwner) {
      if (stillHere || owner !== me || peer.bitfield.has(index)) continue;
      const first = index * this.#blocksPerPiece;
      const blocks = Math.ceil(this.#picker.pieceSize(index) / BLOCK_SIZE);
      let sent = 0;
      for (let b = 0; b < blocks; b++) if (this.#uploadedBlocks?.has(first + b)) sent++;
      if (sent === blocks) continue; // it got the whole piece
      this.#pieceOwner.delete(index);
      for (let b = 0; b < blocks; b++) this.#uploadedBlocks?.delete(first + b);
    }
    this.#dropRequests(e, false);
    if (e.availabilityAdded) this.#picker.removeAvailability(peer.bitfield);
    const c = this.#candidates.get(e.key);
    if (c) {
      c.connected = false;
      if (!e.ready) this.#dialFailed(c);
      else {
        c.failures = 0;
        c.nextAttempt = Date.now() + 5000;
      }
    }
    if (e.ready) this.#emit("peerclose", { address: e.key, reason });
    if (this.#state !== "stopped") queueMicrotask(() => this.#connectMore());
  }

  #unchokedCount(): number {
    let n = 0;
    for (const e of this.#peers.values()) if (!e.conn.amChoking) n++;
    return n;
  }

  // ---------------------------------------------------------------- verify + write

  async #verifyLoop(): Promise<void> {
    try {
      while (this.#verifyQueue.length > 0) {
        const piece = this.#verifyQueue.shift()!;
        const storage = this.#storage;
        if (!storage) {
          this.#picker.pieceFailed(piece);
          continue;
        }
        let ok: boolean;
        try {
          const size = this.#picker.pieceSize(piece.index);
          const { digest, buffer } = await this.#hasher.hash(piece.buffer, size);
          piece.buffer = buffer;
          ok = bytesEqual(
            digest,
            this.meta.pieces.subarray(piece.index * 20, piece.index * 20 + 20),
          );
        } catch {
          // the hasher was closed (stopping): the piece is simply not had; nobody is to blame
          this.#picker.pieceFailed(piece);
          continue;
        }
        if (!ok) {
          this.#hashFailed(piece);
          continue;
        }
        if (this.#suspects.size > 0) this.#smartBan(piece);
        const write = this.#write(storage, piece);
        this.#writes.add(write);
        write.finally(() => this.#writes.delete(write));
        // bound memory: at most a few pieces written at once
        if (this.#writes.size >= 4) await Promise.race(this.#writes);
      }
    } finally {
      this.#verifying = undefined;
    }
  }

  async #write(storage: Storage, piece: PartialPiece): Promise<void> {
    if (this.#unwritten.length > 0) {
      // the disk is failing: queue behind the pieces already waiting, in order
      this.#unwritten.push(piece);
      return;
    }
    try {
      await storage.writePieceMoving(piece.index, piece);
    } catch (err) {
      if (piece.buffer.byteLength === 0) {
        // the writer thread died with the bytes: download the piece again
        this.#picker.pieceFailed(piece);
        this.#emit("error", { error: err instanceof Error ? err : new Error(String(err)) });
        return;
      }
      this.#diskFailed(piece, err);
      return;
    }
    this.#written(piece);
  }

  /**
   * A verified piece could not be written (full disk, read-only or unwritable directory): it is kept in memory,
   * never marked had, the torrent pauses (if active) and the write is retried until it lands, then the torrent
   * resumes by itself.
   */
  #diskFailed(piece: PartialPiece, err: unknown): void {
    this.#unwritten.push(piece);
    const cause = err instanceof Error ? err : new Error(String(err));
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
    this.#scheduleDiskRetry();
  }

  #scheduleDiskRetry(): void {
    if (this.#diskRetry !== undefined || this.#state === "stopped") return;
    this.#diskRetry = setTimeout(() => void this.#retryWrites(), this.#opts.diskRetryMs ?? 5000);
  }

  async #retryWrites(): Promise<void> {
    this.#diskRetry = undefined;
    const storage = this.#storage;
    while (storage && this.#unwritten.length > 0 && this.#state !== "stopped") {
      const piece = this.#unwritten[0];
      try {
        await storage.writePieceMoving(piece.index, piece);
      } catch {
        if (piece.buffer.byteLength === 0 && this.#unwritten[0] === piece) {
          this.#unwritten.shift(); // lost with the writer thread: download it again
          this.#picker.pieceFailed(piece);
          continue;
        }
        this.#scheduleDiskRetry();
        return;
      }
      if (this.#unwritten[0] !== piece) return; // stopped meanwhile
      this.#unwritten.shift();
      this.#written(piece);
    }
    if (this.#diskPaused && this.#state === "paused") {
      this.start(); // clears #diskPaused
    }
  }

  #written(piece: PartialPiece): void {
    this.#error = undefined;
    this.#picker.pieceVerified(piece);
    this.#picker.release(piece.buffer);
    if (this.have.set(piece.index)) this.#afterNewPiece(piece.index);
    this.#emit("hashpass", { index: piece.index });
    this.#emit("piece", { index: piece.index });
    // requests may have paused while verification and writes were behind
    if (this.#state === "active") { for (const e of this.#peers.values()) this.#fillRequests(e); }
  }

  #hashFailed(piece: PartialPiece): void {
    this.#emit("hashfail", { index: piece.index });
    if (piece.senders.size === 1) {
      // the only sender of a bad piece: ban it
      for (const e of this.#peers.values()) {
        if (piece.senders.has(e.id)) {
          this.#ban(e, `sent data that failed the hash check for piece ${piece.index}`);
        }
      }
    } else {
      // several senders: keep the bad copy and who sent each block; once the piece passes, the blocks that
      // differ name the liars (smart ban, as libtorrent does)
      this.#suspects.set(piece.index, {
        data: piece.buffer.slice(0, this.#picker.pieceSize(piece.index)),
        senders: piece.blockSenders.slice(),
      });
      if (this.#suspects.size > MAX_SUSPECT_PIECES) {
        this.#suspects.delete(this.#suspects.keys().next().value as number);
      }
    }
    this.#picker.pieceFailed(piece);
  }

  /** A piece that once failed now passed: ban the senders of the blocks that were different. */
  #smartBan(piece: PartialPiece): void {
    const suspect = this.#suspects.get(piece.index);
    if (!suspect) return;
    this.#suspects.delete(piece.index);
    const liars = new Set<number>();
    for (let b = 0; b < suspect.senders.length; b++) {
      const begin = b * BLOCK_SIZE, end = Math.min(begin + BLOCK_SIZE, suspect.data.length);
      for (let i = begin; i < end; i++) {
        if (suspect.data[i] !== piece.buffer[i]) {
          liars.add(suspect.senders[b]);
          break;
        }
      }
    }
    for (const e of this.#peers.values()) {
      if (liars.has(e.id)) {
        this.#ban(e, `sent blocks that failed the hash check for piece ${piece.index} (smart ban)`);
      }
    }
  }

  #ban(e: PeerEntry, reason: string): void {
    const c = this.#candidates.get(e.key);
    if (c) c.banned = true;
    e.conn.close(reason);
  }

  #afterNewPiece(index: number): void {
    this.#resumeDirty = true;
    for (const e of this.#peers.values()) {
      if (e.ready && !e.conn.closed) e.conn.have(index);
    }
    if (this.complete) {
      this.#picker.trimPool(); // the spare download buffers are not needed any more
      for (const e of this.#peers.values()) this.#updateInterest(e);
      if (!this.#completeSent && this.#state !== "stopped" && this.#hashchecking === 0) {
        this.#completeSent = true;
        this.#trackers?.completed(); // sends `completed` once per session, whatever we call
        this.#emit("complete", {});
      }
      if (this.seed) {
        for (const e of this.#peers.values()) {
          if (e.ready && e.conn.bitfield.full) e.conn.close("both sides are seeds");
        }
      }
    }
  }

  async #drain(): Promise<void> {
    for (let i = 0; i < 100 && (this.#verifying || this.#writes.size > 0); i++) {
      await this.#verifying;
      await Promise.all(this.#writes);
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
    this.#uploadCache.clear();
    this.#uploadSpare.length = 0;
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
    const pl = this.meta.pieceLength;
    for (const file of this.meta.files) {
      if (file.length === 0 || file.padding) continue;
      try {
        const st = await Deno.stat(join(this.dir, ...file.path));
        if (!st.isFile || st.size === 0) continue;
      } catch {
        continue;
      }
      const first = Math.floor(file.offset / pl);
      const last = Math.floor((file.offset + file.length - 1) / pl);
      for (let i = first; i <= last; i++) set.add(i);
    }
    return [...set].sort((a, b) => a - b);
  }

  // ---------------------------------------------------------------- tick

  #setState(state: TorrentState): void {
    this.#state = state;
    this.#emit("state", { state });
  }

  #tick(): void {
    this.#ticks++;
    const now = Date.now();
    const secs = (this.#opts.tickMs ?? 1000) / 1000;
    for (const e of this.#peers.values()) {
      const c = e.conn;
      // exponential moving average over ~2 ticks
      e.rateDown = e.rateDown * 0.5 + ((c.downloaded - e.lastDown) / secs) * 0.5;
      e.rateUp = e.rateUp * 0.5 + ((c.uploaded - e.lastUp) / secs) * 0.5;
      e.lastDown = c.downloaded;
      e.lastUp = c.uploaded;
      if (e.requests.size > 0 && now - e.lastBlockAt > SNUB_MS && !e.snubbed) {
        e.snubbed = true;
        this.#dropRequests(e, true);
      }
      if (this.#state === "active") this.#fillRequests(e);
    }
    if (this.#state === "active" && this.#ticks % RECHOKE_TICKS === 0) this.#rechoke(now);
    // PEX: a first message soon after connecting, then one a minute
    this.#sendPex(this.#ticks % PEX_TICKS !== 0);
    if (this.#ticks % 5 === 0) { for (const e of this.#peers.values()) this.#updateInterest(e); }
    this.#connectMore();
    // starving: no peer to download from and nothing left to dial: ask the trackers again (backing off
    // 10 s, 20 s, 40 s … up to 5 min; the tracker's own min interval is respected by announceNow)
    if (
      this.#state === "active" && !this.complete && this.#peers.size === 0 && this.#connecting === 0
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
    if (this.#resumeDirty && this.#opts.resumePath && now - this.#lastResumeSave > RESUME_SAVE_MS) {
      this.#resumeDirty = false;
      this.#lastResumeSave = now;
      this.#storage?.saveResume(this.have).catch((err) =>
        this.#emit("error", { error: err instanceof Error ? err : new Error(String(err)) })
      );
    }
  }

  #rechoke(now: number): void {
    const list = [...this.#peers.values()].filter((e) => e.ready);
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

  /** Writes resume data now. */
  async saveResume(): Promise<void> {
    if (this.#storage && this.#opts.resumePath) {
      await this.#drain();
      await this.#storage.saveResume(this.have);
      this.#resumeDirty = false;
    }
  }

  /** Storage error as a typed value (for callers that care about codes). */
  get storageError(): StorageError | undefined {
    return this.#storage?.error;
  }
}

/** Who a peer is for uploadEachPieceOnce: its peer id (one peer may have two connections), else its address. */
function ownerKey(e: PeerEntry): string {
  const id = e.conn.remotePeerId;
  return id ? toHex(id) : e.key;
}

/**
 * Turns Nagle's algorithm off: our writes are already batched, and a request or the tail of a batch must not
 * wait for the peer's acknowledgement of the previous segment.
 */
function noDelay(conn: Deno.Conn): Deno.Conn {
  try {
    (conn as Deno.TcpConn).setNoDelay?.(true);
  } catch { /* not TCP, or already closed */ }
  return conn;
}

async function connectWithTimeout(host: string, port: number, ms: number): Promise<Deno.Conn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = Deno.connect({ hostname: host, port, transport: "tcp" });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connect to ${host}:${port} timed out`)), ms);
  });
  try {
    return noDelay(await Promise.race([attempt, timeout]));
  } catch (err) {
    attempt.then((c) => c.close(), () => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
