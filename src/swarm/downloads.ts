/**
 * The requesting side of one torrent: interest, keeping each peer's request pipeline full from the picker,
 * availability as peers announce pieces, blocks as they arrive (with endgame cancels), and the peers that
 * stop sending (snubbed) or reject while unchoking us (their pieces asked of others for a while).
 *
 * @module
 */

import { Bitfield } from "../bitfield.ts";
import type { PartialPiece, PiecePicker } from "./piece_picker.ts";
import { BLOCK_SIZE } from "./requests.ts";
import type { PeerEntry } from "./types.ts";

/** A peer that sent nothing for this long while we had requests out is snubbed: its requests go elsewhere. */
const SNUB_MS = 60_000;
/** How long a piece a peer rejected is not asked of that peer again. */
const REJECT_BACKOFF_MS = 10_000;

/** Options for {@linkcode Downloads}. */
export interface DownloadsOptions {
  /** The torrent's picker (and its request store). */
  picker: PiecePicker;
  /** The clock (ms). */
  now: () => number;
  /** True while requests may be made (the torrent is active). */
  active: () => boolean;
  /** True when interest makes sense at all (not stopped, not complete). */
  wanting: () => boolean;
  /** Every live connection (to cancel endgame duplicates). */
  peers: () => Iterable<PeerEntry>;
  /** A piece's last block arrived: verify and write it. */
  onPiece: (piece: PartialPiece) => void;
  /** Payload bytes arrived. */
  onBytes: (n: number) => void;
  /**
   * Pieces not to request for now, if any: a v2 torrent's pieces whose file's piece layer has not arrived yet
   * (nothing could verify them).
   */
  held?: () => Bitfield | undefined;
}

/** Our requests to the peers of one torrent. */
export class Downloads {
  readonly #opts: DownloadsOptions;
  readonly #picker: PiecePicker;

  /**
   * Creates a {@linkcode Downloads}.
   *
   * @param options The picker and the torrent's state.
   */
  constructor(options: DownloadsOptions) {
    this.#opts = options;
    this.#picker = options.picker;
  }

  /** The peer told us all its pieces (bitfield, have all, have none). */
  bitfield(e: PeerEntry): void {
    if (e.availabilityAdded) this.#picker.removeAvailability(e.conn.bitfield);
    this.#picker.addAvailability(e.conn.bitfield);
    e.availabilityAdded = true;
    this.updateInterest(e);
  }

  /** The peer has a new piece. */
  have(e: PeerEntry, index: number): void {
    const peer = e.conn;
    if (!e.availabilityAdded) {
      e.availabilityAdded = true;
      this.#picker.addAvailability(peer.bitfield);
    } else {
      this.#picker.incrementAvailability(index);
    }
    if (!peer.amInterested && this.#picker.wants(index) && this.#opts.wanting()) peer.interested();
    if (!peer.peerChoking) this.fill(e);
  }

  /** The connection ended: its pieces no longer count as available (its requests left the store with it). */
  closed(e: PeerEntry): void {
    if (e.availabilityAdded) this.#picker.removeAvailability(e.conn.bitfield);
  }

  /** The peer unchoked us. */
  unchoked(e: PeerEntry): void {
    e.rejected.clear();
    this.fill(e);
  }

  /**
   * The peer rejected a request: while it unchokes us it is not asked for that piece for a while (out of its
   * reach, or it serves each piece only once); other peers can provide it meanwhile.
   */
  rejected(e: PeerEntry, index: number): void {
    if (!e.conn.peerChoking) e.rejected.set(index, this.#opts.now() + REJECT_BACKOFF_MS);
    this.fill(e);
  }

  /** A block we asked for arrived (the connection already took it off its requests). */
  block(e: PeerEntry, index: number, begin: number, data: Uint8Array): void {
    e.lastBlockAt = this.#opts.now();
    e.snubbed = false;
    this.#opts.onBytes(data.length);
    const result = this.#picker.receive(index, begin, data, e.id);
    // endgame: the same block may be in flight from other peers: cancel those requests
    if (
      result !== undefined &&
      this.#picker.requests.inflight(this.#picker.requests.key(index, begin)) > 0
    ) {
      for (const other of this.#opts.peers()) {
        if (other !== e && other.conn.hasRequested(index, begin)) {
          other.conn.cancel(index, begin, data.length);
        }
      }
    }
    if (result) this.#opts.onPiece(result);
    this.fill(e);
  }

  /** Tops up the peer's request pipeline from the picker (in batches, a quarter of the pipeline at a time). */
  fill(e: PeerEntry): void {
    const peer = e.conn;
    if (!this.#opts.active() || peer.closed || !e.ready) return;
    if (peer.peerChoking && peer.allowedFast.size === 0) return;
    const space = peer.queueDepth - peer.outstanding;
    if (space <= 0 || (space < peer.queueDepth / 4 && peer.outstanding > 8)) return;
    let offered = peer.bitfield;
    const held = this.#opts.held?.();
    if (held) {
      const bytes = peer.bitfield.bytes.slice();
      for (let i = 0; i < bytes.length; i++) bytes[i] &= ~held.bytes[i];
      offered = new Bitfield(peer.bitfield.length, bytes);
    }
    if (e.rejected.size > 0) {
      const now = this.#opts.now();
      offered = offered.clone();
      for (const [i, until] of e.rejected) {
        if (until <= now) e.rejected.delete(i);
        else offered.clear(i);
      }
    }
    const blocks = this.#picker.pick(
      offered,
      space,
      peer.requests,
      peer.peerChoking ? peer.allowedFast : undefined,
    );
    for (const b of blocks) {
      if (!peer.request(b.index, b.begin, b.length)) this.#picker.unpick(b.index, b.begin);
    }
    if (blocks.length === 0 && peer.outstanding === 0) this.updateInterest(e);
  }

  /** Withdraws every request to this peer (we paused, or it is snubbing us). */
  cancelAll(e: PeerEntry): void {
    const requests = this.#picker.requests;
    for (const key of e.conn.requests.keys()) {
      const index = requests.indexOf(key), begin = requests.beginOf(key);
      e.conn.cancel(index, begin, Math.min(BLOCK_SIZE, this.#picker.pieceSize(index) - begin));
    }
  }

  /** A peer that sent nothing for a minute while we had requests out: its requests go to others. */
  checkSnub(e: PeerEntry, now: number): void {
    if (e.conn.outstanding > 0 && now - e.lastBlockAt > SNUB_MS && !e.snubbed) {
      e.snubbed = true;
      this.cancelAll(e);
    }
  }

  /** Interested exactly when the peer has a piece we want. */
  updateInterest(e: PeerEntry): void {
    const peer = e.conn;
    if (peer.closed || !e.ready) return;
    let wants = false;
    if (this.#opts.wanting()) {
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
}
