/**
 * What each connection of one torrent tells it, routed to the part it concerns: a {@linkcode PeerHandler} for the
 * torrent's connections. A ready peer gets our bitfield (and DHT port); bitfields, haves, unchokes, rejects and
 * blocks go to the downloads, requests and drains to the uploads, hash messages to the BEP 52 exchange, PEX to
 * the peer set; a closed connection leaves every part. Two seeds hang up on each other, unless we still need
 * the peer's piece layers.
 *
 * @module
 */

import { splitAddressKey } from "../_address.ts";
import type { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import type { PeerConnection, PeerHandler } from "../peer.ts";
import { UT_METADATA_ID } from "../wire/metadata.ts";
import { PEX_UTP, UT_PEX_ID } from "../wire/pex.ts";
import type { Choker } from "./choker.ts";
import type { Downloads } from "./downloads.ts";
import type { HashExchange } from "./hash_exchange.ts";
import { serveMetadata } from "./metadata_server.ts";
import type { PeerSet } from "./peer_set.ts";
import type { Pex } from "./pex.ts";
import type { PeerEntry, PeerSource, TorrentEmit, TorrentOptions, TorrentState } from "./types.ts";
import type { Uploads } from "./uploads.ts";
import { askHashes, needsHashes } from "./v2_hashes.ts";

/** The parts of a torrent that {@linkcode peerEvents} routes to, and what it asks the torrent. */
export interface PeerEventsOptions {
  /** The torrent. */
  meta: Metainfo;
  /** Our peer id (a connection to ourselves is closed). */
  peerId: Uint8Array;
  /** The pieces verified on disk (sent to a ready peer; full = we are a seed). */
  have: Bitfield;
  /** The torrent's peers. */
  peers: PeerSet;
  /** The download side. */
  downloads: Downloads;
  /** The upload side. */
  uploads: Uploads;
  /** The choker (a free slot unchokes an interested peer at once). */
  choker: Choker;
  /** Peer exchange. */
  pex: Pex;
  /** The BEP 52 hash exchange (v2 and hybrid torrents). */
  hashes: HashExchange | undefined;
  /** The torrent's state. */
  state: () => TorrentState;
  /** Our DHT port, 0 when none. */
  dhtPort: () => number;
  /** Adds a peer address to dial. */
  addPeer: (host: string, port: number, options: { source: PeerSource; utp?: boolean }) => void;
  /** Payload bytes were sent to a peer. */
  onUploaded: (bytes: number) => void;
  /** Receives engine events. */
  emit: TorrentEmit;
  /** The torrent's options (`trace`, `onDhtNode`). */
  settings: Pick<TorrentOptions, "trace" | "onDhtNode">;
}

/**
 * Makes the handler of a torrent's connections.
 *
 * @param o The parts it routes to.
 * @returns The handler.
 */
export function peerEvents(o: PeerEventsOptions): PeerHandler {
  const { meta, peers, downloads, uploads, hashes } = o;
  const withEntry = (peer: PeerConnection, fn: (e: PeerEntry) => unknown): void => {
    const e = peers.entries.get(peer);
    if (e) fn(e);
  };
  const onReady = (peer: PeerConnection): void => {
    const e = peers.entries.get(peer);
    if (!e) return;
    const verdict = peers.checkReady(e, o.peerId);
    if (!verdict.ok) return peer.close(verdict.reason);
    peer.sendBitfield(o.have);
    const dhtPort = o.dhtPort();
    if (dhtPort > 0 && peer.remoteHandshake?.dht) peer.sendPort(dhtPort);
    o.emit("peer", { address: e.key, peerId: peer.remotePeerId, incoming: e.incoming });
  };
  // BEP 11: peers a connected peer knows
  const onPex = (peer: PeerConnection, payload: Uint8Array): void => {
    for (const p of o.pex.received(peer, payload)) {
      o.addPeer(p.host, p.port, {
        source: "pex",
        ...(p.flags !== undefined ? { utp: (p.flags & PEX_UTP) !== 0 } : {}),
      });
    }
  };
  const onClose = (e: PeerEntry, reason: string): void => {
    peers.remove(e);
    uploads.closed(e);
    downloads.closed(e);
    if (e.ready) o.emit("peerclose", { address: e.key, reason });
    if (o.state() !== "stopped") queueMicrotask(() => peers.connectMore());
  };
  return {
    onReady,
    onBitfield: (peer) =>
      withEntry(peer, (e) => {
        if (o.have.full && peer.bitfield.full && !needsHashes(hashes, peer)) {
          peer.close("both sides are seeds");
        } else downloads.bitfield(e);
        askHashes(hashes);
      }),
    onHave: (peer, index) => withEntry(peer, (e) => downloads.have(e, index)),
    onUnchoke: (peer) => withEntry(peer, (e) => downloads.unchoked(e)),
    onAllowedFast: (peer) => withEntry(peer, (e) => peer.peerChoking && downloads.fill(e)),
    onReject: (peer, index) => withEntry(peer, (e) => downloads.rejected(e, index)),
    onInterested: (peer) => {
      if (o.state() !== "active" || !peer.amChoking) return;
      if (!o.choker.hasFreeSlot(peers.unchokedCount(), o.have.full)) return;
      peer.unchoke();
      const e = peers.entries.get(peer);
      if (e) o.settings.trace?.({ type: "unchoke", peer: e.key, optimistic: false });
    },
    onExtended: (peer, id, payload) => {
      if (id === UT_METADATA_ID) serveMetadata(peer, payload, meta.info);
      else if (id === UT_PEX_ID && !meta.private) onPex(peer, payload);
    },
    onPort: (peer, port) =>
      withEntry(peer, (e) => {
        if (!meta.private && port > 0) {
          o.settings.onDhtNode?.(splitAddressKey(e.key).host, port);
        }
      }),
    onBlock: (peer, index, begin, data) =>
      withEntry(peer, (e) => downloads.block(e, index, begin, data)),
    onRequest: (peer, index, begin, length) =>
      withEntry(peer, (e) => uploads.request(e, index, begin, length)),
    onDrain: (peer) => withEntry(peer, (e) => uploads.drained(e)),
    onHashMessage: (peer, id, payload) => hashes?.message(peer, id, payload),
    onUploaded: (_peer, bytes) => o.onUploaded(bytes),
    onClose: (peer, reason) => {
      hashes?.closed(peer);
      withEntry(peer, (e) => onClose(e, reason));
    },
  };
}
