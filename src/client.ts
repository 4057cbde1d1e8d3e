/**
 * The Client: AnyEvent::BitTorrent's public API in TypeScript — one torrent, with a {@linkcode Session} of its own
 * (its listener, DHT node and limits) or sharing one (`new Client({ session, … })`).
 *
 * @module
 */

import type { Dht, DhtOptions } from "./dht/dht.ts";
import { type EngineSettings, Session } from "./session/session.ts";
import {
  type ClientEventMap,
  type ClientFile,
  type InitialState,
  SessionTorrent,
  type TorrentAddOptions,
  type TorrentSource,
} from "./session/session_torrent.ts";
import type { EncryptionPolicy } from "./wire/encryption_policy.ts";
import type { UtpFirst } from "./swarm/dialer.ts";

export { CLIENT_CODE, VERSION } from "./version.ts";
export { makePeerId } from "./peer_id.ts";
export type { ClientEventMap, ClientFile, InitialState };

/** Options for {@linkcode Client}; exactly one of `path`, `torrent`, `metainfo` or `magnet` is required. */
export interface ClientOptions extends TorrentSource, TorrentAddOptions, EngineSettings {
  /**
   * A session to join: the torrent shares its port, DHT node and limits (closing the client removes the torrent
   * from it). Without one the client runs a session of its own with the options below.
   */
  session?: Session;
  /** Port to listen on; 0 lets the system choose. @default {0} */
  port?: number;
  /**
   * Address to listen on; by default every IPv6 and IPv4 address (dual-stack "::", or "0.0.0.0" where the
   * system has no IPv6).
   */
  host?: string;
  /** Our 20-byte peer id; a fresh `-SE0010-…` id by default. */
  peerId?: Uint8Array;
  /** Milliseconds per engine tick (rates, choking rounds every 10 ticks, reconnects). @default {1000} */
  tickMs?: number;
  /**
   * Local Service Discovery (BEP 14): find peers on the local network by multicast. Off by default, since it
   * sends to the whole network; never used for private torrents. The announces go out on `host` when it is a
   * specific address (127.0.0.1 keeps them on this machine).
   * @default {false}
   */
  lsd?: boolean | { multicastPort?: number; interfaceAddress?: string };
  /**
   * The DHT (BEP 5): `true` runs a node for this client (joining through the public routers), an options object
   * configures that node (`bootstrap`, `port`, `state`, …), and a {@linkcode Dht} instance is used as is and
   * shared (not closed with the client). The torrent is looked up and announced at start, again every 15
   * minutes (sooner while nothing is found); peers that send a PORT message are offered to the node. Never used
   * for private torrents. Off by default: it talks to the whole Internet.
   * @default {false}
   */
  dht?: boolean | DhtOptions | Dht;
  /**
   * Protocol encryption (MSE/PE), in and out: `"prefer"` dials with MSE and once more with a plain handshake when
   * that fails (remembering per peer what worked), and accepts both; `"require"` never sends or accepts a plain
   * BitTorrent handshake; `"allow"` dials plain and accepts both; `"disable"` dials plain and refuses MSE.
   * Ignored with `session` (the session's applies).
   * @default {"prefer"}
   */
  encryption?: EncryptionPolicy;
  /**
   * After an MSE handshake, RC4 for the payload only (otherwise plaintext unless the other side insists on RC4).
   * Ignored with `session`.
   * @default {false}
   */
  rc4Only?: boolean;
  /**
   * uTP (BEP 29) on the port's UDP number: accepted, and dialled first (TCP when it fails). Ignored with `session`.
   * @default {true}
   */
  utp?: boolean;
  /** Listen and dial over TCP; off, peers are reached over uTP only. Ignored with `session`. @default {true} */
  tcp?: boolean;
  /**
   * Where uTP is dialled before TCP: `"remote"` (TCP first on loopback and local networks) or `"always"`.
   * Ignored with `session`. @default {"remote"}
   */
  utpFirst?: UtpFirst;
}

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
export class Client extends SessionTorrent {
  readonly #session: Session;
  readonly #ownSession: boolean;

  /**
   * Creates a {@linkcode Client}.
   *
   * @param options What to download or seed, where, and how; see {@linkcode ClientOptions}.
   */
  constructor(options: ClientOptions) {
    const session = options.session ?? new Session({
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.host !== undefined ? { host: options.host } : {}),
      ...(options.peerId ? { peerId: options.peerId } : {}),
      ...(options.dht ? { dht: options.dht } : {}),
      ...(options.lsd ? { lsd: options.lsd } : {}),
      ...(options.encryption ? { encryption: options.encryption } : {}),
      ...(options.rc4Only ? { rc4Only: true } : {}),
      ...(options.utp === false ? { utp: false } : {}),
      ...(options.tcp === false ? { tcp: false } : {}),
      ...(options.utpFirst ? { utpFirst: options.utpFirst } : {}),
      ...(options.tickMs ? { tickMs: options.tickMs } : {}),
      ...(options.basedir ? { basedir: options.basedir } : {}),
      limits: {
        activeDownloads: 0,
        activeSeeds: 0,
        connections: Math.max(500, options.maxPeers ?? 0),
        ...(options.maxPeers ? { connectionsPerTorrent: options.maxPeers } : {}),
      },
      engine: {
        ...(options.queueDepth ? { queueDepth: options.queueDepth } : {}),
        ...(options.seedSlots ? { seedSlots: options.seedSlots } : {}),
        ...(options.pieceMemory ? { pieceMemory: options.pieceMemory } : {}),
        ...(options.uploadMemory ? { uploadMemory: options.uploadMemory } : {}),
        ...(options.preallocate ? { preallocate: true } : {}),
        ...(options.hashWorker ? { hashWorker: true } : {}),
        ...(options.diskRetryMs ? { diskRetryMs: options.diskRetryMs } : {}),
        ...(options.utpConnectTimeoutMs
          ? { utpConnectTimeoutMs: options.utpConnectTimeoutMs }
          : {}),
      },
      restore: false,
    });
    if (options.peerId && options.peerId.length !== 20) {
      throw new TypeError("peerId must be 20 bytes");
    }
    super(session.torrentHost, options, {
      ...options,
      basedir: options.basedir ?? Deno.cwd(),
    });
    this.#session = session;
    this.#ownSession = !options.session;
    if (this.#ownSession) {
      // incoming connections refused by our own listener are this client's
      session.addEventListener("peerfail", (e) => {
        this.dispatchEvent(new CustomEvent("peerfail", { detail: e.detail }));
      });
    }
    session.join(this).catch(() => {}); // a failure shows in `ready`
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

  /** The session the torrent runs in. */
  get session(): Session {
    return this.#session;
  }

  /** The DHT node this client uses, if any. */
  get dht(): Dht | undefined {
    return this.#session.dht;
  }

  /** Stops (announcing `stopped`), closes every file, and the client's own session (listener, DHT, LSD). */
  override async close(): Promise<void> {
    if (this.#ownSession) {
      await super.close();
      await this.#session.close();
    } else {
      await this.#session.remove(this);
      await super.close();
    }
  }
}
