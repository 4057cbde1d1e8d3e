/**
 * The Client: AnyEvent::BitTorrent's public API in TypeScript, as a thin facade over one torrent's engine.
 *
 * @module
 */

import { isAbsolute, join, resolve } from "node:path";
import { addressKey } from "./_address.ts";
import { makePeerId } from "./peer_id.ts";
import { type MagnetLink, parseMagnet, torrentFromMetadata } from "./magnet.ts";
import { type Metainfo, parseMetainfo } from "./metainfo.ts";
import { fetchMetadata } from "./swarm/metadata_fetcher.ts";
import { LocalDiscovery } from "./lsd.ts";
import { Dht, type DhtOptions } from "./dht/dht.ts";
import type { PeerAddress } from "./tracker/compact.ts";
import type { PieceCacheIndex } from "./storage/storage.ts";
import { type PeerInfo, Torrent, type TorrentEvents, type TorrentState } from "./swarm/torrent.ts";
import { type TcpStream, tcpStream } from "./transport/tcp.ts";
import { acceptConnection } from "./wire/mse.ts";
import type { TrackerTierView } from "./tracker/tiers.ts";

export { CLIENT_CODE, VERSION } from "./version.ts";
export { makePeerId } from "./peer_id.ts";

/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
const HANDSHAKE_MS = 10_000;

/** Initial state, as in the seed: started (default), paused or stopped. */
export type InitialState = "started" | "paused" | "stopped";

/** Options for {@linkcode Client}; exactly one of `path`, `torrent`, `metainfo` or `magnet` is required. */
export interface ClientOptions {
  /** Path to a .torrent file. */
  path?: string;
  /** The bytes of a .torrent file. */
  torrent?: Uint8Array;
  /** An already parsed torrent. */
  metainfo?: Metainfo;
  /**
   * A magnet link (BEP 9): the info dictionary is fetched from the link's peers (`x.pe`) and trackers (`tr`)
   * first, verified against the info hash, then the download proceeds as for a .torrent.
   */
  magnet?: string | MagnetLink;
  /**
   * How long to look for the metadata of a magnet link.
   * @default {120000}
   */
  metadataTimeoutMs?: number;
  /**
   * Directory all data is stored in / read from; multi-file torrents get a folder below it.
   * @default {Deno.cwd()}
   */
  basedir?: string;
  /**
   * Port to listen on; 0 lets the system choose.
   * @default {0}
   */
  port?: number;
  /**
   * Address to listen on; by default every IPv6 and IPv4 address (dual-stack "::", or "0.0.0.0" where the
   * system has no IPv6).
   */
  host?: string;
  /** Called with the piece index whenever a piece passes its hash check. */
  onHashPass?: (index: number) => void;
  /** Called with the piece index whenever a piece fails its hash check. */
  onHashFail?: (index: number) => void;
  /**
   * "started" (normal), "paused" (connections made and accepted, no requests made or filled) or "stopped"
   * (no outgoing connections, incoming refused, files closed). {@linkcode Client.start} resumes from either.
   * @default {"started"}
   */
  state?: InitialState;
  /** The value of {@linkcode Client.pieceCache} from a previous instance, to restore the part file's index. */
  pieceCache?: PieceCacheIndex;
  /** Our 20-byte peer id; a fresh `-SE0010-…` id by default. */
  peerId?: Uint8Array;
  /** Per-file priorities (default 1 each; 0 = do not download). */
  priorities?: number[];
  /**
   * Where resume data is kept; `false` for none.
   * @default {"<basedir>/.<name>.seedbed-resume"}
   */
  resumeFile?: string | false;
  /**
   * Announce to the torrent's trackers.
   * @default {true}
   */
  trackers?: boolean;
  /** Peers to dial at start. */
  peers?: { host: string; port: number }[];
  /**
   * Local Service Discovery (BEP 14): find peers on the local network by multicast. Off by default, since it
   * sends to the whole network; never used for private torrents. The announces go out on `host` when it is a
   * specific address (127.0.0.1 keeps them on this machine).
   * @default {false}
   */
  lsd?: boolean | { multicastPort?: number; interfaceAddress?: string };
  /**
   * The DHT (BEP 5): `true` runs a node for this client (joining through the public routers of
   * {@linkcode DEFAULT_BOOTSTRAP}), an options object configures that node (`bootstrap`, `port`, `state`, …), and a
   * {@linkcode Dht} instance is used as is and shared (it is not closed with the client; one node can serve many
   * clients). The torrent's peers are looked up and we are announced at start, again every 15 minutes (sooner
   * while nothing is found); peers that send a PORT message are offered to the node. Never used for private
   * torrents. Off by default: it talks to the whole Internet.
   * @default {false}
   */
  dht?: boolean | DhtOptions | Dht;
  /**
   * Most connected peers.
   * @default {50}
   */
  maxPeers?: number;
  /**
   * Our request pipeline depth per peer (capped by the peer's `reqq`).
   * @default {768}
   */
  queueDepth?: number;
  /**
   * Bytes of memory for pieces being downloaded: those in progress and those waiting for their hash check and
   * write (at least 4 pieces' worth). Bounds the client's memory whatever the swarm does; when the disk falls
   * behind, the network slows to its pace (no new piece is started until a write lands) without emptying the
   * request pipelines.
   * @default {8388608}
   */
  pieceMemory?: number;
  /**
   * Bytes of whole pieces kept in memory to serve uploads, read from disk once and sent to whoever asks (at
   * least 2 pieces' worth).
   * @default {33554432}
   */
  uploadMemory?: number;
  /**
   * Milliseconds per engine tick (rates, choking rounds every 10 ticks, reconnects).
   * @default {1000}
   */
  tickMs?: number;
  /**
   * Preallocate files on first write instead of creating sparse files.
   * @default {false}
   */
  preallocate?: boolean;
  /**
   * Upload every block at most once, to the first peer that asks; peers must trade the rest among themselves.
   * @default {false}
   */
  uploadEachPieceOnce?: boolean;
  /**
   * When a verified piece cannot be written (a full disk, a read-only or unwritable directory), the client
   * dispatches `error`, pauses, keeps the piece in memory and retries the write this often; once it lands the
   * download resumes by itself. Nothing is marked had before it is on disk.
   * @default {5000}
   */
  diskRetryMs?: number;
  /**
   * Hash downloaded pieces (Web Crypto SHA-1) on a worker thread instead of the event loop's thread. Off by
   * default: on 2 cores the worker's buffer copies and thread wake-ups cost more than they overlap.
   * @default {false}
   */
  hashWorker?: boolean;
}

/** A file of the torrent, as the seed's `files()` lists it; `priority` is settable. */
export interface ClientFile {
  /** Size in bytes. */
  readonly length: number;
  /** Absolute path on disk. */
  readonly path: string;
  /** Download priority; 0 = do not download; higher is sooner. Settable. */
  priority: number;
}

/** The events {@linkcode Client} dispatches: each of the engine's {@linkcode TorrentEvents} as a `CustomEvent`. */
export type ClientEventMap = { [K in keyof TorrentEvents]: CustomEvent<TorrentEvents[K]> };

/**
 * A BitTorrent client for one torrent, with AnyEvent::BitTorrent's API.
 *
 * @example Download a torrent into a directory
 * ```ts ignore
 * import { Client } from "./client.ts";
 *
 * await using client = new Client({ path: "some.torrent", basedir: "./downloads" });
 * client.addEventListener("hashpass", (e) => console.log("piece", e.detail.index));
 * await client.ready;
 * await client.done;
 * ```
 */
export class Client extends EventTarget implements AsyncDisposable {
  /** Resolves once the torrent is loaded, existing data checked, and the port is listening. */
  readonly ready: Promise<void>;
  readonly #options: ClientOptions;
  readonly #peerId: Uint8Array;
  readonly #basedir: string;
  #meta: Metainfo | undefined;
  #torrent: Torrent | undefined;
  #listener: Deno.Listener | undefined;
  #acceptLoop: Promise<void> | undefined;
  #closed = false;
  readonly #abort = new AbortController();
  #torrentBytes: Uint8Array | undefined;
  #lsd: LocalDiscovery | undefined;
  #dht: Dht | undefined;
  #ownDht = false;
  #dhtSink: (peers: PeerAddress[]) => void = () => {};
  readonly #dhtFound = new Map<string, PeerAddress>();
  #dhtTimer: ReturnType<typeof setTimeout> | undefined;
  #dhtRun: Promise<void> | undefined;
  #dhtOff = false;
  #done: PromiseWithResolvers<void> = Promise.withResolvers();
  #ticker: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates a {@linkcode Client}.
   *
   * @param options What to download or seed, where, and how; see {@linkcode ClientOptions}.
   */
  constructor(options: ClientOptions) {
    super();
    if (!options.path && !options.torrent && !options.metainfo && !options.magnet) {
      throw new TypeError("Client needs one of path, torrent, metainfo or magnet");
    }
    this.#options = options;
    this.#peerId = options.peerId ?? makePeerId();
    if (this.#peerId.length !== 20) throw new TypeError("peerId must be 20 bytes");
    this.#basedir = resolve(options.basedir ?? Deno.cwd());
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
    this.ready.catch(() => {});
  }

  /**
   * Creates a client and waits until it is ready.
   *
   * @param options See {@linkcode ClientOptions}.
   * @returns The ready client.
   */
  static async open(options: ClientOptions): Promise<Client> {
    const client = new Client(options);
    try {
      await client.ready;
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  async #init(): Promise<void> {
    const o = this.#options;
    let meta: Metainfo;
    let magnetPeers: { host: string; port: number }[] = [];
    if (o.magnet) {
      // a magnet link: listen first (the port is told to trackers and peers), then fetch the info dictionary
      const link = typeof o.magnet === "string" ? parseMagnet(o.magnet) : o.magnet;
      this.#listener = listen(o.host, o.port ?? 0);
      this.#acceptLoop = this.#accept(this.#listener);
      magnetPeers = link.peers;
      await this.#openDht();
      if (this.#dht) this.#dhtLoop(link.infoHash);
      const info = await fetchMetadata({
        infoHash: link.infoHash,
        peerId: this.#peerId,
        port: this.port,
        peers: [...link.peers, ...(o.peers ?? [])],
        trackers: link.trackers.map((t) => [t]),
        signal: this.#abort.signal,
        discover: (add) => this.#setDhtSink(add),
        ...(o.metadataTimeoutMs ? { timeoutMs: o.metadataTimeoutMs } : {}),
      });
      this.#torrentBytes = torrentFromMetadata(info, link.trackers);
      meta = await parseMetainfo(this.#torrentBytes);
    } else if (o.metainfo) {
      meta = o.metainfo;
    } else {
      this.#torrentBytes = o.torrent ?? await Deno.readFile(o.path!);
      meta = await parseMetainfo(this.#torrentBytes);
    }
    this.#meta = meta;
    const resumeFile = o.resumeFile === false
      ? undefined
      : o.resumeFile ?? join(this.#basedir, `.${meta.name}.seedbed-resume`);
    const torrent = new Torrent({
      meta,
      dir: this.#basedir,
      peerId: this.#peerId,
      port: () => this.port,
      emit: (type, detail) => this.#dispatch(type, detail),
      ...(o.priorities ? { priorities: o.priorities } : {}),
      ...(o.pieceCache ? { pieceCache: o.pieceCache } : {}),
      ...(resumeFile
        ? { resumePath: isAbsolute(resumeFile) ? resumeFile : resolve(resumeFile) }
        : {}),
      ...(o.trackers === false ? { trackers: false } : {}),
      ...(o.maxPeers ? { maxPeers: o.maxPeers } : {}),
      ...(o.queueDepth ? { queueDepth: o.queueDepth } : {}),
      ...(o.pieceMemory ? { pieceMemory: o.pieceMemory } : {}),
      ...(o.uploadMemory ? { uploadMemory: o.uploadMemory } : {}),
      ...(o.tickMs ? { tickMs: o.tickMs } : {}),
      ...(o.preallocate ? { preallocate: true } : {}),
      ...(o.uploadEachPieceOnce ? { uploadEachPieceOnce: true } : {}),
      ...(o.diskRetryMs ? { diskRetryMs: o.diskRetryMs } : {}),
      ...(o.hashWorker ? { hashWorker: true } : {}),
      dhtPort: () => this.#dhtOff ? 0 : this.#dht?.port ?? 0,
      onDhtNode: (host, port) => void this.#dht?.ping(host, port),
    });
    this.#torrent = torrent;
    if (!this.#listener) {
      this.#listener = listen(o.host, o.port ?? 0);
      this.#acceptLoop = this.#accept(this.#listener);
    }
    await torrent.open();
    if (this.#closed) return;
    for (const p of [...magnetPeers, ...(o.peers ?? [])]) torrent.addPeer(p.host, p.port);
    this.#setDhtSink((peers) => {
      for (const p of peers) torrent.addPeer(p.host, p.port, { source: "dht" });
    });
    if (meta.private) this.#stopDht(); // BEP 27: a magnet link turned out to be a private torrent
    else if (!this.#dhtRun) {
      await this.#openDht();
      if (this.#dht) this.#dhtLoop(meta.infoHash);
    }
    if (o.lsd && !meta.private) {
      const opts = typeof o.lsd === "object" ? o.lsd : {};
      const iface = opts.interfaceAddress ??
        (o.host && o.host !== "::" && o.host !== "0.0.0.0" && !o.host.includes(":")
          ? o.host
          : undefined);
      this.#lsd = new LocalDiscovery({
        infoHashes: [meta.infoHash],
        port: () => this.port,
        onPeer: (host, port) => torrent.addPeer(host, port, { source: "lsd" }),
        ...(iface ? { interfaceAddress: iface } : {}),
        ...(opts.multicastPort ? { multicastPort: opts.multicastPort } : {}),
      });
      await this.#lsd.start();
    }
    this.#ticker = setInterval(() => torrent.tick(), o.tickMs ?? 1000);
    const state = o.state ?? "started";
    if (state === "started") torrent.start();
    else if (state === "paused") torrent.pause();
    if (torrent.complete) this.#done.resolve();
  }

  async #openDht(): Promise<void> {
    const o = this.#options.dht;
    if (!o || this.#closed || this.#dht) return;
    if (o instanceof Dht) {
      this.#dht = o;
      return;
    }
    const host = this.#options.host;
    const specific = host && host !== "::" && host !== "0.0.0.0" ? host : undefined;
    this.#dht = await Dht.open({
      ...(specific ? { host: specific, family: specific.includes(":") ? 6 : 4 } : {}),
      ...(o === true ? {} : o),
    });
    this.#ownDht = true;
  }

  /** Looks the torrent up now, then every 15 minutes once peers were found, sooner (5 s doubling) until then. */
  #dhtLoop(infoHash: Uint8Array): void {
    let delay = 2500;
    const run = async () => {
      this.#dhtTimer = undefined;
      const dht = this.#dht;
      if (!dht || this.#closed || this.#dhtOff) return;
      const found = await dht.lookup(infoHash, {
        announcePort: this.port,
        onPeers: (peers) => {
          for (const p of peers) {
            if (this.#dhtFound.size < 500) this.#dhtFound.set(addressKey(p.host, p.port), p);
          }
          this.#dhtSink(peers);
        },
        signal: this.#abort.signal,
      }).catch(() => []);
      if (this.#closed || this.#dhtOff) return;
      delay = found.length > 0 ? 15 * 60_000 : Math.min(delay * 2, 5 * 60_000);
      this.#dhtTimer = setTimeout(() => {
        this.#dhtRun = run();
      }, delay);
    };
    this.#dhtRun = run();
  }

  /** Where DHT peers go (the metadata fetch, then the torrent); the peers found so far are given at once. */
  #setDhtSink(sink: (peers: PeerAddress[]) => void): void {
    this.#dhtSink = sink;
    if (this.#dhtFound.size) sink([...this.#dhtFound.values()]);
  }

  #stopDht(): void {
    this.#dhtOff = true;
    clearTimeout(this.#dhtTimer);
  }

  /** The DHT node this client uses, if any. */
  get dht(): Dht | undefined {
    return this.#dht;
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#closed || !this.#torrent) {
          conn.close();
          continue;
        }
        this.#incoming(tcpStream(conn), this.#torrent);
      }
    } catch {
      // listener closed
    }
  }

  /**
   * An incoming connection: a plain handshake passes through; an encrypted one (MSE, as WebTorrent dials) is
   * answered first. One deadline covers both handshakes, so a peer dripping bytes is gone within 10 s.
   */
  #incoming(stream: TcpStream, torrent: Torrent): void {
    const { host, port } = stream.remoteAddress;
    if (torrent.state === "stopped") return stream.close();
    const accepted = Date.now();
    acceptConnection(stream, [torrent.meta.infoHash], { timeoutMs: HANDSHAKE_MS }).then(
      ({ stream: plain }) => {
        const left = Math.max(1, HANDSHAKE_MS - (Date.now() - accepted));
        torrent.accept(plain, { host, port, handshakeTimeoutMs: left });
      },
      () => stream.close(),
    );
  }

  #dispatch<K extends keyof TorrentEvents>(type: K, detail: TorrentEvents[K]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #t(): Torrent {
    if (!this.#torrent) throw new Error("Client is not ready yet: await client.ready first");
    return this.#torrent;
  }

  #m(): Metainfo {
    if (!this.#meta) throw new Error("Client is not ready yet: await client.ready first");
    return this.#meta;
  }

  /** Resolves when every wanted piece is verified on disk (immediately when already complete). */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  // ------------------------------------------------------------ the seed's methods

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

  /** Sends `started` to trackers and downloads/uploads normally. */
  async start(): Promise<void> {
    await this.ready;
    this.#t().start();
  }

  /** Sends `stopped` to trackers, closes every connection and file, refuses incoming peers. */
  async stop(): Promise<void> {
    await this.ready;
    await this.#t().stop();
  }

  /** Keeps connections but makes and fills no requests; {@linkcode Client.start} resumes. */
  async pause(): Promise<void> {
    await this.ready;
    this.#t().pause();
  }

  /** The 20-byte SHA-1 of the torrent's info dictionary. */
  get infohash(): Uint8Array {
    return this.#m().infoHash;
  }

  /** The info hash as 40 lower-case hex digits. */
  get infohashHex(): string {
    return this.#m().infoHashHex;
  }

  /** Our 20-byte peer id. */
  get peerid(): Uint8Array {
    return this.#peerId;
  }

  /** The port we listen on (0 until ready). */
  get port(): number {
    return (this.#listener?.addr as Deno.NetAddr | undefined)?.port ?? 0;
  }

  /** Total bytes of all files. */
  get size(): number {
    return this.#m().length;
  }

  /** The name the torrent suggests for the file or directory (sanitised). */
  get name(): string {
    return this.#m().name;
  }

  /** Payload bytes uploaded to peers in this session. */
  get uploaded(): number {
    return this.#torrent?.uploaded ?? 0;
  }

  /** Payload bytes downloaded from peers in this session. */
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

  /** The torrent's files with length, absolute path and (settable) priority. */
  get files(): ClientFile[] {
    const t = this.#t();
    const meta = this.#m();
    const setPriority = (i: number, p: number) =>
      this.setPriority(i, p).catch((error) =>
        this.#dispatch("error", {
          error: error instanceof Error ? error : new Error(String(error)),
        })
      );
    return meta.files.map((f, i) => {
      return {
        length: f.length,
        path: join(this.#basedir, ...f.path),
        get priority(): number {
          return t.priorities[i];
        },
        set priority(p: number) {
          setPriority(i, p);
        },
      };
    });
  }

  /**
   * Sets a file's download priority and waits until storage has applied it (data of a file raised from 0 moved
   * out of the part file).
   *
   * @param file File index (as in {@linkcode Client.files}).
   * @param priority 0 = do not download; higher is sooner.
   */
  async setPriority(file: number, priority: number): Promise<void> {
    if (!this.#torrent) await this.ready;
    // applied at once (before the first await), so `files[i].priority` reads back the new value
    await this.#t().setPriority(file, priority);
  }

  /** Currently connected peers. */
  get peers(): PeerInfo[] {
    return this.#torrent?.peers() ?? [];
  }

  /** "active", "paused" or "stopped". */
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

  /** The .torrent file's bytes (built from the fetched metadata for a magnet link); save it to skip the fetch next time. */
  get torrentFile(): Uint8Array {
    return this.#torrentBytes ?? torrentFromMetadata(this.#m().info, this.#m().announceList.flat());
  }

  /** The parsed torrent. */
  get metainfo(): Metainfo {
    return this.#m();
  }

  /** Current download rate, bytes/s. */
  get downloadRate(): number {
    return this.#torrent?.downloadRate ?? 0;
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

  /**
   * Dials a peer directly (tracker-less use); retried with backoff until it answers.
   *
   * @param host IP address or host name.
   * @param port TCP port.
   */
  addPeer(host: string, port: number): void {
    this.#t().addPeer(host, port);
  }

  /** Writes resume data now (it is also written periodically and on stop). */
  async saveResume(): Promise<void> {
    await this.ready;
    await this.#t().saveResume();
  }

  /** Stops (announcing `stopped`), closes the listener and every file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    try {
      await this.ready;
    } catch {
      // failed to load: nothing else to stop
    }
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    await this.#acceptLoop;
    this.#lsd?.stop();
    this.#stopDht();
    await this.#dhtRun;
    if (this.#ownDht) await this.#dht?.close();
    await this.#torrent?.close();
    clearInterval(this.#ticker);
    this.#done.reject(new Error("Client closed before the download completed"));
  }

  /** Same as {@linkcode Client.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function listen(host: string | undefined, port: number): Deno.Listener {
  if (host !== undefined) return Deno.listen({ hostname: host, port, transport: "tcp" });
  try {
    return Deno.listen({ hostname: "::", port, transport: "tcp" });
  } catch {
    return Deno.listen({ hostname: "0.0.0.0", port, transport: "tcp" });
  }
}

// Typed event listeners, in the style of oak's Application.
/** Typed event listener overloads of {@linkcode Client}. */
export interface Client {
  /** Typed listener for a {@linkcode ClientEventMap} event. */
  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, ev: ClientEventMap[K]) => void,
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
    listener: (this: Client, ev: ClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Removes any other listener. */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
