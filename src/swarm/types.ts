/**
 * Types shared by the parts of one torrent's engine and by whoever owns it (Session, Client): its state, its
 * options and events, a live connection's record and the public view of a peer. Types only.
 *
 * @module
 */

import type { Metainfo } from "../metainfo.ts";
import type { PeerConnection } from "../peer.ts";
import type { PieceCacheIndex } from "../storage/storage.ts";
import type { CacheBudget } from "../storage/piece_cache.ts";
import type { RateGate } from "../transport/bandwidth.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import type { Encryption } from "../wire/mse.ts";
import type { PeerStream } from "../wire/stream.ts";
import type { UdpSocket } from "../udp.ts";
import type { UtpFirst } from "./dialer.ts";
import type { PieceMemoryPool } from "./piece_memory_pool.ts";

/** The three states of the seed's API. */
export type TorrentState = "active" | "paused" | "stopped";

/**
 * Where a peer's address came from ("incoming" when it connected to us; "webseed" for a web seed, BEP 19 / 17,
 * whose address is its URL).
 */
export type PeerSource = "user" | "tracker" | "dht" | "pex" | "lsd" | "incoming" | "webseed";

/** Events the engine reports to its owner (Client and Session turn them into DOM events). */
export interface TorrentEvents {
  /** A piece passed its hash check. */
  hashpass: { index: number };
  /** A piece failed its hash check. */
  hashfail: { index: number };
  /** A downloaded piece was verified and written. */
  piece: { index: number };
  /** A peer connection completed its handshake. */
  peer: { address: string; peerId: Uint8Array | undefined; incoming: boolean };
  /** A peer connection ended, with the reason. */
  peerclose: { address: string; reason: string };
  /**
   * A connection to a peer got no BitTorrent handshake through (an unreachable address is not reported): why
   * each attempt failed, e.g. an MSE handshake refused by a peer without encryption while ours is required.
   */
  peerfail: { address: string; incoming: boolean; reason: string };
  /** A tracker answered, failed, or warned. */
  tracker: {
    type: "announce" | "error" | "warning";
    url: string;
    peers?: number;
    message?: string;
  };
  /** The state changed. */
  state: { state: TorrentState };
  /** Every wanted piece is verified on disk. */
  complete: Record<string, never>;
  /** Something went wrong that did not stop the torrent (a disk error; tracker errors are `tracker` events). */
  error: { error: Error };
  /**
   * Something the torrent asked for was not done, e.g. a BEP 47 symbolic link or executable bit not applied once
   * the download completed (one line for a person).
   */
  warning: { message: string };
  /**
   * Every BEP 52 piece layer of a v2 or hybrid torrent is known now: those a magnet link's torrent lacked were
   * fetched from peers and proved against the files' roots (the torrent's `meta.pieceLayers` hold them).
   */
  piecelayers: Record<string, never>;
}

/**
 * One decision of the engine, as it happens (see {@linkcode TorrentOptions.trace}): a block requested from a
 * peer, a block received, an endgame duplicate cancelled, a peer unchoked (`optimistic` when it got the
 * optimistic slot) or choked; an attempt to write pieces the disk refused that failed again (`pending`: pieces
 * waiting). `peer` is the connection's address (`host:port`, `[v6]:port`).
 */
export type TorrentTrace =
  | { type: "request"; peer: string; index: number; begin: number }
  | { type: "block"; peer: string; index: number; begin: number }
  | { type: "cancel"; peer: string; index: number; begin: number }
  | { type: "unchoke"; peer: string; optimistic: boolean }
  | { type: "choke"; peer: string }
  | { type: "diskretry"; pending: number };

/** Receives engine events. */
export type TorrentEmit = <K extends keyof TorrentEvents>(
  type: K,
  detail: TorrentEvents[K],
) => void;

/** A live connection and what the engine tracks about it. */
export interface PeerEntry {
  /** Where its address came from. */
  source: PeerSource;
  /** A number unique within the torrent (blamed for bad data, owner of uploads). */
  id: number;
  /** The connection. */
  conn: PeerConnection;
  /** Its address key (`host:port`, `[v6]:port`). */
  key: string;
  /** The peer connected to us. */
  incoming: boolean;
  /** What the connection carries: RC4, plaintext after an MSE handshake, or no MSE at all. */
  encryption: Encryption;
  /** The transport it runs over. */
  transport: "tcp" | "utp";
  /** An outgoing connection whose dial is still deciding (its handshakes are not done). */
  dialling: boolean;
  /** When the connection was made (ms). */
  connectedAt: number;
  /** When it last sent us a block we asked for (ms). */
  lastBlockAt: number;
  /** Both handshakes are done and it was accepted (not ourselves, not a duplicate). */
  ready: boolean;
  /** Its pieces are counted in the picker's availability. */
  availabilityAdded: boolean;
  /** It sent nothing for a minute while we had requests out: it gets no regular unchoke slot. */
  snubbed: boolean;
  /** Pieces this peer rejected while unchoking us → until when (ms) we do not ask it for them again. */
  rejected: Map<number, number>;
  /** Payload bytes per second from the peer (moving average). */
  rateDown: number;
  /** Payload bytes per second to the peer (moving average). */
  rateUp: number;
  /** `conn.downloaded` at the last tick. */
  lastDown: number;
  /** `conn.uploaded` at the last tick. */
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
  /**
   * The client on the other end, for people: the `v` of its extension handshake (BEP 10), or what its peer id
   * says ("libtorrent/2.0.8", "Transmission 3.00"); printable and bounded; "unknown" when nothing says.
   */
  client: string;
  /**
   * Protocol encryption: `"rc4"` (MSE, then RC4), `"plaintext-header"` (MSE, then plaintext) or `false` (a plain
   * BitTorrent handshake).
   */
  encrypted: Encryption;
  /** Both sides support the fast extension (BEP 6). */
  fast: boolean;
  /** The transport: TCP, uTP, or HTTP for a web seed. */
  transport: "tcp" | "utp" | "http";
}

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
  /**
   * True for an address that is our own listener (a tracker or a peer's PEX may list us): never dialled.
   * @default {nothing is}
   */
  ownAddress?: (host: string, port: number) => boolean;
  /** Receives events. */
  emit: TorrentEmit;
  /** Per-file priorities; 1 each by default, 0 = do not download. */
  priorities?: number[];
  /** Part-file index from a previous run. */
  pieceCache?: PieceCacheIndex;
  /** Where resume data is kept; none when omitted. */
  resumePath?: string;
  /** Resume data written by an older version, read once when `resumePath` has none (then replaced). */
  legacyResumePath?: string;
  /** Announce to the torrent's trackers. @default {true} */
  trackers?: boolean;
  /**
   * Download from the torrent's web seeds (BEP 19 `url-list`, BEP 17 `httpseeds`); `extraWebSeeds` are used
   * either way.
   * @default {true}
   */
  webSeeds?: boolean;
  /** More web seeds (BEP 19 URLs: a file, or a folder ending in `/` holding the torrent's files). */
  extraWebSeeds?: string[];
  /** Most connected peers. @default {50} */
  maxPeers?: number;
  /** Most outgoing connection attempts at once. @default {8} */
  maxConnecting?: number;
  /**
   * Our request pipeline depth per peer (capped by the peer's `reqq`). Once the piece budget grew past its floor
   * (a fast distant peer), a peer whose share of it is larger gets a deeper one, up to its `reqq`.
   * @default {768}
   */
  queueDepth?: number;
  /** Peers a seed uploads to at once (plus one optimistic unchoke), in turns of 30 s. @default {8} */
  seedSlots?: number;
  /**
   * Most bytes of piece buffers for downloading: pieces in progress plus complete pieces waiting for their hash
   * check and write (at least 4 pieces). The budget starts at 8 MiB (or this, if less) and follows what the
   * peers have in flight (their rates × round-trip times, three times over) up to this ceiling: a distant fast peer
   * needs more than a local one. When the disk falls behind, no new piece is started until a write lands.
   * @default {268435456}
   */
  pieceMemory?: number;
  /** The session's total for pieces being downloaded, shared with other torrents above the budget's floor. */
  pieceMemoryPool?: PieceMemoryPool;
  /** Bytes of whole pieces kept in memory to serve uploads (at least 2 pieces). @default {33554432} */
  uploadMemory?: number;
  /** The upload cache's memory, shared with other torrents (a session's); `uploadMemory` is then not used. */
  uploadCache?: CacheBudget;
  /** Milliseconds between calls of {@linkcode Torrent.tick} by the owner (choking every 10 ticks). @default {1000} */
  tickMs?: number;
  /** Milliseconds to connect to a peer. @default {5000} */
  connectTimeoutMs?: number;
  /** Preallocate files. @default {false} */
  preallocate?: boolean;
  /** Start new pieces in order (lowest index first) instead of rarest first. @default {false} */
  sequential?: boolean;
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
  /** Bandwidth limits for every connection of the torrent (its own and its session's). */
  rate?: RateGate;
  /** Room for one more connection in a budget shared with other torrents (a session's); false defers a dial. */
  admit?: () => boolean;
  /**
   * Called with every decision as it is made (requests, blocks, endgame cancels, chokes and unchokes, failed
   * write retries):
   * for tests and diagnostics that watch the engine work in a real swarm. Keep it cheap: it runs per block.
   */
  trace?: (event: TorrentTrace) => void;
  /** Opens an outgoing TCP connection to a peer. @default {connectTcp} */
  connect?: (
    host: string,
    port: number,
    options: { timeoutMs: number; signal?: AbortSignal },
  ) => Promise<PeerStream>;
  /**
   * Opens an outgoing uTP connection to a peer (the owner's endpoint, BEP 29). With it every dial tries uTP first
   * and TCP when uTP fails (a SYN nobody answers, or a connection closed before the BitTorrent handshake),
   * remembering per peer what worked; without it, dials are TCP only.
   */
  connectUtp?: (
    host: string,
    port: number,
    options: { timeoutMs: number; signal?: AbortSignal },
  ) => Promise<PeerStream>;
  /** Milliseconds a uTP dial waits for the peer's answer before TCP is tried. @default {3000} */
  utpConnectTimeoutMs?: number;
  /**
   * Where uTP is dialled before TCP (with `connectUtp`): `"remote"`, peers beyond this machine and its local
   * networks (TCP first on loopback and a LAN); `"always"`, every peer. @default {"remote"}
   */
  utpFirst?: UtpFirst;
  /** Dial peers over TCP; off, dials are uTP only (`connectUtp`). @default {true} */
  tcp?: boolean;
  /**
   * Protocol encryption (MSE/PE) of the connections we dial: `"prefer"` dials with MSE and once more with a plain
   * handshake when that fails (remembering per peer what worked), `"require"` never sends a plain handshake,
   * `"allow"` and `"disable"` dial plain. Incoming connections are sorted out by the owner's listener.
   * @default {"prefer"}
   */
  encryption?: EncryptionPolicy;
  /** After an MSE handshake we dial, offer only RC4 for the payload (not plaintext). @default {false} */
  rc4Only?: boolean;
  /**
   * The owner accepts connections over IPv4 and IPv6 (a dual-stack listener): trackers whose host has addresses
   * of both families get one announce over each (BEP 7).
   * @default {() => false}
   */
  dualStack?: () => boolean;
  /**
   * The socket UDP trackers are asked from, by address family: the owner's peer port, shared with uTP and the
   * DHT. A fresh socket per request when it gives none.
   */
  udpSocket?: (family: 4 | 6) => UdpSocket | undefined;
}
