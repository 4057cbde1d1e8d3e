/**
 * One torrent's BEP 52 hash exchange wired (v2 and hybrid torrents; none for v1): it serves our merkle hashes
 * from the verified pieces, and asks ready v2 peers for the piece layers a magnet link's torrent lacks; a layer
 * that arrives makes its file's pieces requestable at once.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import type { PeerConnection } from "../peer.ts";
import type { TorrentData } from "../storage/torrent_data.ts";
import { HashExchange } from "./hash_exchange.ts";
import type { PeerSet } from "./peer_set.ts";
import type { PeerEntry } from "./types.ts";

/** Options of {@linkcode v2Hashes}. */
export interface V2HashesOptions {
  /** The torrent. */
  meta: Metainfo;
  /** The torrent's data (pieces are read from its storage). */
  data: TorrentData;
  /** The pieces verified on disk. */
  have: Bitfield;
  /** The torrent's peers. */
  peers: PeerSet;
  /** The torrent is active. */
  active: () => boolean;
  /** Asks a ready peer for blocks. */
  fill: (e: PeerEntry) => void;
  /** Every piece layer is known now (only after some were missing). */
  onComplete: () => void;
  /** The clock (ms). */
  now: () => number;
}

/**
 * Makes the hash exchange of a v2 or hybrid torrent.
 *
 * @param o The torrent and its parts.
 * @returns The exchange; undefined for a v1 torrent.
 */
export function v2Hashes(o: V2HashesOptions): HashExchange | undefined {
  if (o.meta.version === 1) return undefined;
  return new HashExchange({
    meta: o.meta,
    readPiece: (i) => o.data.storage?.readPiece(i) ?? Promise.resolve(undefined),
    have: (i) => o.have.has(i),
    peers: function* () {
      for (const e of o.peers.ready()) yield e.conn;
    },
    now: o.now,
    // pieces of the file may be requested now
    onLayer: () => {
      if (o.active()) { for (const e of o.peers.ready()) o.fill(e); }
    },
    onComplete: o.onComplete,
  });
}

/**
 * Asks v2 peers for piece layers the torrent lacks (a magnet link's).
 *
 * @param hashes The torrent's hash exchange, if any.
 */
export function askHashes(hashes: HashExchange | undefined): void {
  if (hashes && !hashes.complete) hashes.ask();
}

/**
 * True for a v2 peer kept while it may still give us piece layers (a seed connection is not closed for that).
 *
 * @param hashes The torrent's hash exchange, if any.
 * @param peer The connection.
 * @returns Whether the torrent still needs the peer's hashes.
 */
export function needsHashes(hashes: HashExchange | undefined, peer: PeerConnection): boolean {
  return hashes !== undefined && !hashes.complete && peer.speaksV2;
}
