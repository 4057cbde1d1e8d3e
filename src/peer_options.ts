/**
 * What a peer connection is made with: its options (the torrent, our extension bits, limits and timers), the
 * store our requests in flight are recorded in, and block references.
 *
 * @module
 */

import type { RateGate } from "./transport/bandwidth.ts";

/** Options for a `PeerConnection`. */
export interface PeerConnectionOptions {
  /** The torrent's info hash. */
  infoHash: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Pieces in the torrent; 0 while unknown (a metadata-only connection for a magnet link). */
  pieceCount: number;
  /** Bytes per piece. */
  pieceLength: number;
  /** Total bytes. */
  totalLength: number;
  /** Advertise and use the fast extension. @default {true} */
  fast?: boolean;
  /** Advertise and use the extension protocol. @default {true} */
  extended?: boolean;
  /** Advertise DHT support. @default {false} */
  dht?: boolean;
  /** Advertise BitTorrent v2 (BEP 52, reserved byte 7 bit 0x10): for v2 and hybrid torrents. @default {false} */
  v2?: boolean;
  /**
   * The truncated v2 info hash (first 20 bytes of the SHA-256) of a v2 or hybrid torrent. A connection whose
   * handshakes carry it speaks v2 (hash messages, `PeerConnection.speaksV2`). For a hybrid torrent
   * (`infoHash` is the SHA-1) the peer may answer with it instead of the SHA-1: BEP 52's upgrade.
   */
  infoHashV2?: Uint8Array;
  /**
   * Send our handshake only once the peer's has arrived, with the info hash it used (an incoming connection of a
   * hybrid torrent): a peer that sends the SHA-1 and sets the v2 bit is answered with the truncated v2 hash
   * (upgraded to v2, as libtorrent does). Not with `handshakeSent`.
   * @default {false}
   */
  answerHandshake?: boolean;
  /**
   * Our handshake already went out (in the initial payload of an MSE handshake, `initiateConnection`): do not
   * send it again. It must have been made with the same info hash, peer id and extension bits.
   * @default {false}
   */
  handshakeSent?: boolean;
  /** Our extension handshake fields (`m`, `v`, `p`, `reqq`, …). */
  extensionHandshake?: Record<string, unknown>;
  /** Most requests we keep outstanding. @default {256} */
  queueDepth?: number;
  /** Most unanswered requests the peer may have with us; more is a violation. @default {1000} */
  maxIncomingRequests?: number;
  /** Milliseconds to complete the handshake. @default {10000} */
  handshakeTimeoutMs?: number;
  /** Milliseconds without any message from the peer before closing. @default {180000} */
  idleTimeoutMs?: number;
  /** Milliseconds without sending before a keep-alive. @default {60000} */
  keepAliveMs?: number;
  /** Closes the connection when aborted. */
  signal?: AbortSignal;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
  /**
   * Run a timer of its own for the handshake deadline, keep-alives and the idle check. An owner that holds many
   * connections (a torrent) passes false and calls `PeerConnection.tick` from its own tick instead.
   * @default {true}
   */
  selfTimed?: boolean;
  /**
   * Where our requests in flight are recorded, as block keys (`index × blocksPerPiece + begin ÷ 16 KiB`): the
   * torrent passes its one request store's view of this peer; a set of its own by default.
   */
  requests?: OutstandingRequests;
  /** Bandwidth limits: every byte read and written is accounted for, and waits while a limit is in debt. */
  rate?: RateGate;
  /** The peer's address (for the allowed-fast set and reports). */
  remoteAddress?: { host: string; port: number };
}

/** A block (piece index, offset, length). */
export interface BlockRef {
  /** Piece index. */
  index: number;
  /** Offset in the piece. */
  begin: number;
  /** Bytes. */
  length: number;
}

/**
 * Our requests in flight to one peer, as block keys. A `Set<number>` will do; the torrent's request store
 * provides one that also counts how many peers have each block in flight.
 */
export interface OutstandingRequests {
  /** Number of requests in flight. */
  readonly size: number;
  /** Records a request. */
  add(key: number): unknown;
  /** Forgets a request; true when it was there. */
  delete(key: number): boolean;
  /** True when the request is in flight. */
  has(key: number): boolean;
  /** The keys in flight. */
  keys(): Iterable<number>;
}
