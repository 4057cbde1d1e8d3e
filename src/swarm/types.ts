/**
 * Types shared by the parts of one torrent's engine and by whoever owns it (Session, Client): its state, its
 * events, a live connection's record and the public view of a peer. A leaf: it imports only `PeerConnection`'s
 * type.
 *
 * @module
 */

import type { PeerConnection } from "../peer.ts";

/** The three states of the seed's API. */
export type TorrentState = "active" | "paused" | "stopped";

/** Where a peer's address came from ("incoming" when it connected to us). */
export type PeerSource = "user" | "tracker" | "dht" | "pex" | "lsd" | "incoming";

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
}

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
}
