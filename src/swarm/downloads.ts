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
import type { PeerEntry, TorrentTrace } from "./types.ts";

/** A peer that sent nothing for this long while we had requests out is snubbed: its requests go elsewhere. */
const SNUB_MS = 60_000;
/** How long a piece a peer rejected is not asked of that peer again. */
const REJECT_BACKOFF_MS = 10_000;
/**
 * While a reader waits for pieces (deadlines are set), a peer's queue holds about this many seconds of its rate,
 * so a request for a piece a reader needs is served soon after it is made.
 */
const STREAM_QUEUE_S = 2;
/** ... and at least this many requests (until its rate is known). */
const STREAM_MIN_QUEUE = 64;
/** A peer slower than this share of the fastest gets only a few blocks of pieces with a deadline … */
const SLOW_PEER_SHARE = 0.5;
/** … as many as it delivers in this many seconds, at least {@linkcode SLOW_PEER_MIN_URGENT}. */
const SLOW_PEER_URGENT_S = 2;
const SLOW_PEER_MIN_URGENT = 2;
/** When a reader waits for a piece nobody was asked for, a peer keeps this many seconds of its queue … */
const EXPEDITE_KEEP_S = 0.25;
/** … and at least this many requests. */
const EXPEDITE_KEEP_MIN = 8;
/** Fewest requests a peer that unchokes us may have in flight, whatever its share of the piece budget. */
const MIN_DEPTH = 8;
/** A peer's weight in the piece budget is at least this fraction of the average peer's rate. */
const MIN_SHARE = 0.1;

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
  /** Receives requests, blocks and cancels as they happen (`TorrentOptions.trace`). */
  trace?: (event: TorrentTrace) => void;
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
  /** The fastest peer's rate and when it was measured (for the deadline allowance). */
  #best = { at: -1, rate: 0 };
  /** The piece budget at its floor (the picker's at the start): beyond it, pipelines may deepen. */
  readonly #floorPieces: number;
  /** Sum of the weights of the peers that unchoke us (see {@linkcode Downloads.rebalance}). */
  #weights = 0;
  /** The least weight of a peer (a fraction of the average rate). */
  #floor = 0;
  /**
   * Per peer: the shortest wait seen for a first block (asked for while nothing else was in flight to it), and
   * the block being timed (`at` < 0: none).
   */
  readonly #rtt = new WeakMap<PeerEntry, { min: number; key: number; at: number }>();

  /**
   * Creates a {@linkcode Downloads}.
   *
   * @param options The picker and the torrent's state.
   */
  constructor(options: DownloadsOptions) {
    this.#opts = options;
    this.#picker = options.picker;
    this.#floorPieces = options.picker.maxInMemory;
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
    this.rebalance();
    this.fill(e);
  }

  /**
   * Shares the piece budget among the peers that unchoke us, by their download rates (call it every tick and
   * when a peer unchokes us): each may have in flight its share of the blocks the budget holds. Without this,
   * whichever peer asks first takes the whole budget, and the others, unchoking us, get nothing to send while
   * it works through its queue — in a swarm every peer is slow compared with the budget.
   */
  rebalance(): void {
    let sum = 0, n = 0;
    for (const e of this.#opts.peers()) {
      if (!e.ready || e.conn.peerChoking) continue;
      sum += e.rateDown;
      n++;
    }
    // peers not measured yet (or all of them, at the start) weigh a fraction of the average, at least 1 byte/s
    this.#floor = Math.max(1, (MIN_SHARE * sum) / Math.max(1, n));
    this.#weights = sum + n * this.#floor;
  }

  /**
   * How many requests the peer may have in flight now: its share of the piece budget, in blocks, within the
   * connection's pipeline depth — which grows for a share beyond it once the budget grew past its floor (a fast
   * peer far away) up to what the peer said it takes (`reqq`).
   */
  #depth(e: PeerEntry): number {
    const peer = e.conn;
    const budget = this.#picker.maxInMemory * this.#picker.requests.blocksPerPiece;
    const weight = Math.max(e.rateDown, this.#floor);
    const share = Math.max(
      MIN_DEPTH,
      this.#weights > 0 ? Math.ceil((budget * weight) / this.#weights) : budget,
    );
    const reqq = peer.remoteExtensions?.reqq;
    if (
      share > peer.queueDepth && reqq !== undefined && reqq > peer.queueDepth &&
      this.#picker.maxInMemory > this.#floorPieces
    ) {
      peer.setQueueDepth(Math.min(share, reqq));
    }
    return Math.min(peer.queueDepth, share);
  }

  /**
   * The peer rejected a request: while it unchokes us it is not asked for that piece for a while (out of its
   * reach, or it serves each piece only once); other peers can provide it meanwhile.
   */
  rejected(e: PeerEntry, index: number): void {
    if (!e.conn.peerChoking) e.rejected.set(index, this.#opts.now() + REJECT_BACKOFF_MS);
    this.fill(e);
  }

  /**
   * The shortest round trip seen to this peer (ms): from asking for a block while nothing else was in flight to
   * it until the block arrived. Undefined before the first such block.
   */
  rttMs(e: PeerEntry): number | undefined {
    const r = this.#rtt.get(e);
    return r && r.min !== Infinity ? r.min : undefined;
  }

  /** A block we asked for arrived (the connection already took it off its requests). */
  block(e: PeerEntry, index: number, begin: number, data: Uint8Array): void {
    const now = e.lastBlockAt = this.#opts.now();
    const rtt = this.#rtt.get(e);
    if (rtt && rtt.at >= 0 && rtt.key === this.#picker.requests.key(index, begin)) {
      rtt.min = Math.min(rtt.min, now - rtt.at);
      rtt.at = -1;
    }
    e.snubbed = false;
    this.#opts.onBytes(data.length);
    this.#opts.trace?.({ type: "block", peer: e.key, index, begin });
    const result = this.#picker.receive(index, begin, data, e.id);
    // endgame: the same block may be in flight from other peers: cancel those requests
    if (
      result !== undefined &&
      this.#picker.requests.inflight(this.#picker.requests.key(index, begin)) > 0
    ) {
      for (const other of this.#opts.peers()) {
        if (other !== e && other.conn.hasRequested(index, begin)) {
          other.conn.cancel(index, begin, data.length);
          this.#opts.trace?.({ type: "cancel", peer: other.key, index, begin });
        }
      }
    }
    if (result) this.#opts.onPiece(result);
    this.fill(e);
  }

  /**
   * Tops up the peer's request pipeline from the picker (in batches, a quarter of the pipeline at a time). While
   * pieces have deadlines the pipeline holds about two seconds of the peer's rate, and a peer much slower than the
   * fastest gets only a few of their blocks.
   */
  fill(e: PeerEntry): void {
    const peer = e.conn;
    if (!this.#opts.active() || peer.closed || !e.ready) return;
    if (peer.peerChoking && peer.allowedFast.size === 0) return;
    const streaming = this.#picker.hasDeadlines;
    const depth = streaming
      ? Math.min(
        this.#depth(e),
        Math.max(STREAM_MIN_QUEUE, Math.ceil(e.rateDown * STREAM_QUEUE_S / BLOCK_SIZE)),
      )
      : this.#depth(e);
    const space = depth - peer.outstanding;
    if (space <= 0 || (space < depth / 4 && peer.outstanding > 8)) return;
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
      streaming ? { urgent: this.#urgentAllowance(e) } : undefined,
    );
    const trace = this.#opts.trace;
    const idle = peer.outstanding === 0;
    for (const b of blocks) {
      if (!peer.request(b.index, b.begin, b.length)) this.#picker.unpick(b.index, b.begin);
      else trace?.({ type: "request", peer: e.key, index: b.index, begin: b.begin });
    }
    if (idle && blocks.length > 0 && peer.outstanding > 0) {
      // nothing was in flight: the first block's wait is the round trip (plus the peer's time to read it)
      const key = this.#picker.requests.key(blocks[0].index, blocks[0].begin);
      const rtt = this.#rtt.get(e);
      if (rtt) {
        rtt.key = key;
        rtt.at = this.#opts.now();
      } else this.#rtt.set(e, { min: Infinity, key, at: this.#opts.now() });
    }
    if (blocks.length === 0 && peer.outstanding === 0) this.updateInterest(e);
  }

  /**
   * Blocks of pieces with a deadline this peer may have in flight: any number for the fastest peers (within
   * half the best rate), a couple of seconds of its own rate for slower ones, none for a snubbed one.
   */
  #urgentAllowance(e: PeerEntry): number {
    if (e.snubbed) return 0;
    const now = this.#opts.now();
    if (this.#best.at !== now) {
      let best = 0;
      for (const o of this.#opts.peers()) if (o.ready && o.rateDown > best) best = o.rateDown;
      this.#best = { at: now, rate: best };
    }
    if (e.rateDown >= this.#best.rate * SLOW_PEER_SHARE) return Infinity;
    return Math.max(SLOW_PEER_MIN_URGENT, Math.ceil(e.rateDown * SLOW_PEER_URGENT_S / BLOCK_SIZE));
  }

  /**
   * A reader needs piece `index` now (a seek, or it waits for it): every unchoking peer that has it withdraws its
   * requests for pieces without a deadline that are queued ahead of that piece (all of them when it was not
   * asked for the piece), beyond the oldest quarter second of its rate (those are on their way already), so
   * the piece comes next instead of behind a long queue. The withdrawn blocks are free again for later.
   *
   * @param index The piece a reader needs.
   */
  expedite(index: number): void {
    const picker = this.#picker;
    const requests = picker.requests;
    for (const e of this.#opts.peers()) {
      const peer = e.conn;
      if (!e.ready || peer.closed || peer.peerChoking || e.snubbed) continue;
      if (!peer.bitfield.has(index)) continue;
      const keep = Math.max(
        EXPEDITE_KEEP_MIN,
        Math.ceil(e.rateDown * EXPEDITE_KEEP_S / BLOCK_SIZE),
      );
      if (peer.outstanding <= keep) continue;
      const keys = [...peer.requests.keys()]; // oldest first: the order the peer serves them
      let ahead = keys.findIndex((k) => requests.indexOf(k) === index);
      if (ahead < 0) ahead = keys.length;
      for (let j = keep; j < ahead; j++) {
        const i = requests.indexOf(keys[j]);
        if (picker.hasDeadline(i)) continue;
        const begin = requests.beginOf(keys[j]);
        peer.cancel(i, begin, Math.min(BLOCK_SIZE, picker.pieceSize(i) - begin));
      }
    }
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
