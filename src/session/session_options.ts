/**
 * What a `Session` is configured with and reports: its options, the limits shared by its torrents, the engine
 * settings every torrent uses, and the totals of its `stats` events.
 *
 * @module
 */

import type { Dht, DhtOptions } from "../dht/dht.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import type { UtpFirst } from "../swarm/dialer.ts";

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
   * Peers a seeding torrent uploads to at once (plus one optimistic unchoke), in turns of 30 s; while downloading,
   * a torrent unchokes the 4 that send it the most (BEP 3's tit-for-tat). @default {8}
   */
  seedSlots?: number;
  /**
   * Most bytes of memory for pieces being downloaded, over every torrent: those in progress and those waiting
   * for their hash check and write. Each torrent's budget starts at 8 MiB (or this, if less), which it always
   * keeps, and grows with its peers' rates × round-trip times; above 8 MiB the torrents that want more share this
   * total fairly (one alone may use all of it). When the disk falls behind, the network slows to its pace.
   * @default {268435456}
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

/** Options for `Session`. */
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
   * Where uTP is dialled before TCP: `"remote"`, peers beyond this machine and its local networks (loopback,
   * RFC 1918, link-local, fc00::/7 are dialled over TCP first: LEDBAT has no shared home uplink to protect there,
   * and TCP costs far less CPU); `"always"`, every peer, as libtorrent does. uTP is accepted either way.
   * @default {"remote"}
   */
  utpFirst?: UtpFirst;
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

/** What `stats` events and `Session.stats` report. */
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

/** A torrent as the session's totals count it. */
export interface CountedTorrent {
  /** How it is driven now. */
  readonly run: string;
  /** What the user asked for. */
  readonly state: string;
  /** Its engine once loaded. */
  readonly engine:
    | {
      readonly connections: { readonly live: number };
      readonly downloadRate: number;
      readonly uploadRate: number;
      readonly downloaded: number;
      readonly uploaded: number;
    }
    | undefined;
}

/**
 * Totals over every torrent of a session.
 *
 * @param torrents The torrents.
 * @param before Payload bytes counted before (by torrents no longer in the session).
 * @returns The totals.
 */
export function totalStats(
  torrents: readonly CountedTorrent[],
  before: { downloaded: number; uploaded: number },
): SessionStats {
  let peers = 0, down = 0, up = 0, active = 0, downloaded = 0, uploaded = 0;
  for (const t of torrents) {
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
    torrents: torrents.length,
    active,
    peers,
    downloadRate: down,
    uploadRate: up,
    downloaded: before.downloaded + downloaded,
    uploaded: before.uploaded + uploaded,
  };
}
