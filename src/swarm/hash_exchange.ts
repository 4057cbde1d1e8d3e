/**
 * BEP 52's hash messages for one v2 or hybrid torrent, routed: a `hash request` goes to the
 * {@linkcode HashServer}, `hashes` and `hash reject` to the {@linkcode PieceLayerFetcher} (for the layers a
 * magnet link's torrent lacks). A message that does not decode disconnects its sender.
 *
 * @module
 */

import type { Metainfo } from "../metainfo.ts";
import type { Bitfield } from "../bitfield.ts";
import { decodeHashMessage, type HashMessage } from "../wire/hashes.ts";
import { type HashPeer, HashServer } from "./hash_server.ts";
import { type LayerPeer, PieceLayerFetcher } from "./piece_layers.ts";

/** A connection as the exchange needs it (a `PeerConnection` will do). */
export type HashExchangePeer = HashPeer & LayerPeer;

/** Options for {@linkcode HashExchange}. */
export interface HashExchangeOptions {
  /** The torrent (v2 or hybrid). */
  meta: Metainfo;
  /** Reads a whole piece from disk (undefined when it cannot). */
  readPiece: (index: number) => Promise<Uint8Array | undefined>;
  /** True when we have the piece (verified on disk). */
  have: (index: number) => boolean;
  /** The torrent's ready connections (asked for layers). */
  peers: () => Iterable<HashExchangePeer>;
  /** A file's piece layer arrived. */
  onLayer?: (file: number) => void;
  /** Every piece layer is known now (only after some were missing). */
  onComplete?: () => void;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
}

/** Serves and fetches the merkle hashes of one torrent. */
export class HashExchange {
  readonly #server: HashServer;
  readonly #layers: PieceLayerFetcher;

  /**
   * Creates a {@linkcode HashExchange}.
   *
   * @param options The torrent, its data, and what to tell when layers arrive.
   */
  constructor(options: HashExchangeOptions) {
    const now = options.now ?? Date.now;
    this.#server = new HashServer({
      meta: options.meta,
      readPiece: options.readPiece,
      have: options.have,
      now,
    });
    this.#layers = new PieceLayerFetcher({
      meta: options.meta,
      now,
      peers: options.peers,
      ...(options.onLayer ? { onLayer: options.onLayer } : {}),
      ...(options.onComplete ? { onComplete: options.onComplete } : {}),
    });
  }

  /** Settles once no hash work is under way (trees being built, pieces being hashed). */
  idle(): Promise<void> {
    return this.#server.idle();
  }

  /** True when every piece layer is known. */
  get complete(): boolean {
    return this.#layers.complete;
  }

  /** Pieces not to download until their file's layer arrives (v2-only torrents); undefined when none. */
  get held(): Bitfield | undefined {
    return this.#layers.held;
  }

  /**
   * A hash message from a peer (the connection checked that it speaks v2).
   *
   * @param peer The connection.
   * @param id The message id (21, 22 or 23).
   * @param payload The payload (valid only during the call).
   */
  message(peer: HashExchangePeer, id: number, payload: Uint8Array): void {
    let m: HashMessage;
    try {
      m = decodeHashMessage(id, payload);
    } catch (err) {
      return peer.close(`protocol violation: ${(err as Error).message}`);
    }
    if (m.type === "hashrequest") void this.#server.request(peer, m.request);
    else if (m.type === "hashes") void this.#layers.hashes(peer, m.request, m.hashes);
    else this.#layers.rejected(peer, m.request);
  }

  /** Asks peers for missing layers (when peers connect or announce pieces, and on the tick). */
  ask(): void {
    this.#layers.ask();
  }

  /**
   * A connection ended.
   *
   * @param peer The connection.
   */
  closed(peer: HashExchangePeer): void {
    this.#layers.closed(peer);
  }
}
