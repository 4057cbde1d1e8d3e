/**
 * Which block to ask which peer for: pieces with a deadline first (a stream's reader waits for them; picked by
 * `urgent_pieces.ts`), then rarest first (or in order, when sequential), weighted by file priority, partial pieces
 * first, and endgame. Web seeds take runs of whole pieces instead (`piece_runs.ts`).
 *
 * The picker owns the buffers of pieces in progress: a received block is copied straight into its piece's buffer,
 * and a piece whose every block has arrived is handed back whole for hashing. It also owns the torrent's one
 * {@linkcode RequestStore}: peers record their requests there, and a block nobody has in flight any more is free
 * again. No sockets, no disk, no timers.
 *
 * @module
 */

import { Bitfield } from "../bitfield.ts";
import { pieceRangeOfFile, type StorageFile } from "../storage/layout.ts";
import { BLOCK_SIZE, RequestStore } from "./requests.ts";
import {
  type BlockRequest,
  FREE,
  type PartialPiece,
  type PickerPieces,
  RECEIVED,
  REQUESTED,
} from "./partial_piece.ts";
import { firstNewPiece, type NewPieceView, rarestNewPiece } from "./new_piece.ts";
import { pickRun, type PickRunOptions, type PieceRun, receiveRunPiece } from "./piece_runs.ts";
import { UrgentPieces } from "./urgent_pieces.ts";

export { BLOCK_SIZE };
export type { BlockRequest, PartialPiece, PickRunOptions, PieceRun };

/** Options of {@linkcode PiecePicker.pick}. */
export interface PickOptions {
  /**
   * Most blocks of pieces with a deadline this peer may have in flight, counting those it has already: a slow
   * peer gets a few, so the pieces a reader waits for go to the fast ones. Blocks of pieces with a deadline are
   * never handed out otherwise (not even when this is 0).
   * @default {Infinity}
   */
  urgent?: number;
}

/** Options for {@linkcode PiecePicker}. */
export interface PiecePickerOptions {
  /** Number of pieces. */
  pieceCount: number;
  /** Bytes per piece (the last may be shorter). */
  pieceLength: number;
  /** Total bytes in the torrent. */
  totalLength: number;
  /** Pieces already verified and on disk. */
  have: Bitfield;
  /**
   * How many peers may be asked for the same block in endgame.
   * @default {2}
   */
  endgameDuplicates?: number;
  /**
   * Most pieces held in memory at once: in progress, plus complete and waiting for their hash check and write
   * (each holds a piece-sized buffer). No new piece is started while this many are held, which bounds memory
   * and throttles the network to the speed of the disk. At least 2.
   * @default {32}
   */
  maxInMemory?: number;
  /** Random source for tie-breaking; tests pass a seeded one. */
  random?: () => number;
  /**
   * Start new pieces in order (lowest index first, within the highest priority) instead of rarest first.
   * @default {false}
   */
  sequential?: boolean;
}

/** Rarest-first piece picker with deadlines, priorities, partial-piece preference and endgame. */
export class PiecePicker {
  readonly #pieceCount: number;
  readonly #pieceLength: number;
  readonly #totalLength: number;
  readonly #have: Bitfield;
  /** How many connected peers have each piece. */
  readonly #availability: Uint32Array;
  /** Download priority of each piece: the highest priority of the files it touches; 0 = not wanted. */
  readonly #priority: Int32Array;
  readonly #partial = new Map<number, PartialPiece>();
  /** Pieces fully received and waiting for their hash check / write; not picked again meanwhile. */
  readonly #pending = new Set<number>();
  /**
   * Pieces handed out whole ({@linkcode PiecePicker.pickRun}): no buffer yet, no blocks; nobody else is given
   * them until they arrive ({@linkcode PiecePicker.receivePiece}) or come back
   * ({@linkcode PiecePicker.unreserve}).
   */
  readonly #reserved = new Set<number>();
  readonly #endgameDuplicates: number;
  /**
   * Pieces that failed their hash check with blocks from several peers: the next copy comes from one peer alone
   * (its request view, once one started it), so that it passes or names its one sender. Without this a liar
   * whose blocks land in every piece keeps every piece failing and is never found (smart ban needs a good copy).
   */
  readonly #alone = new Map<number, { has(key: number): boolean } | undefined>();
  #maxInMemory: number;
  readonly #random: () => number;
  readonly #pool: Uint8Array<ArrayBuffer>[] = [];
  #lastStarted = -2;
  #sequential: boolean;
  /** Pieces with a deadline. */
  readonly #urgent: UrgentPieces;
  /** 1 for each piece with a deadline (the flags of {@linkcode PiecePicker.#urgent}). */
  readonly #isUrgent: Uint8Array;
  /**
   * 1 for each piece in memory (in progress, waiting for its check, reserved) while a new piece is being chosen
   * (see {@linkcode PiecePicker.#markHeld}), 0 otherwise: the scan over every piece reads one byte instead of
   * looking each piece up in three collections.
   */
  readonly #heldFlags: Uint8Array;
  /** What the parts of picking beside this file see of the pieces in memory. */
  readonly #pieces: PickerPieces;
  /** Our requests in flight, by peer and by block: the one place they are kept. */
  readonly requests: RequestStore;
  /**
   * Take equally rare pieces in order (sequential writes) rather than at random: set while every connected peer
   * is a seed, when there is no one to trade with anyway.
   */
  extentAffinity = true;

  /**
   * Creates a {@linkcode PiecePicker}.
   *
   * @param options Torrent geometry and what we already have.
   */
  constructor(options: PiecePickerOptions) {
    this.#pieceCount = options.pieceCount;
    this.#pieceLength = options.pieceLength;
    this.#totalLength = options.totalLength;
    this.#have = options.have;
    this.#availability = new Uint32Array(options.pieceCount);
    this.#priority = new Int32Array(options.pieceCount).fill(1);
    this.#endgameDuplicates = options.endgameDuplicates ?? 2;
    this.#maxInMemory = Math.max(2, options.maxInMemory ?? 32);
    this.#random = options.random ?? Math.random;
    this.#sequential = options.sequential ?? false;
    this.requests = new RequestStore({
      pieceLength: options.pieceLength,
      onIdle: (index, begin) => this.#blockIdle(index, begin),
    });
    this.#pieces = this.#makePieces();
    this.#urgent = new UrgentPieces(this.#pieces);
    this.#isUrgent = this.#urgent.flags;
    this.#heldFlags = new Uint8Array(options.pieceCount);
  }

  #makePieces(): PickerPieces {
    // deno-lint-ignore no-this-alias
    const picker = this;
    return {
      pieceCount: this.#pieceCount,
      have: this.#have,
      priority: this.#priority,
      partial: this.#partial,
      pending: this.#pending,
      reserved: this.#reserved,
      requests: this.requests,
      endgameDuplicates: this.#endgameDuplicates,
      get maxInMemory() {
        return picker.#maxInMemory;
      },
      get held() {
        return picker.#held;
      },
      wants: (index) => this.wants(index),
      pieceSize: (index) => this.pieceSize(index),
      blockLength: (index, block) => this.#blockLength(index, block),
      newPiece: (index) => this.#newPiece(index),
      startPiece: (index) => this.#startPiece(index),
      takeFree: (p, out, max) => this.#takeFree(p, out, max),
      sortedPartials: () => this.#sortedPartials(),
      abandon: (index) => this.abandon(index),
    };
  }

  /**
   * Most pieces held in memory at once (see {@linkcode PiecePickerOptions.maxInMemory}); it may change while
   * downloading (pieces already held are kept). At least 2.
   */
  get maxInMemory(): number {
    return this.#maxInMemory;
  }

  set maxInMemory(n: number) {
    this.#maxInMemory = Math.max(2, Math.floor(n));
    if (this.#pool.length > this.#maxInMemory) this.#pool.length = this.#maxInMemory;
  }

  /** Bytes in piece `index`. */
  pieceSize(index: number): number {
    return index === this.#pieceCount - 1
      ? this.#totalLength - index * this.#pieceLength
      : this.#pieceLength;
  }

  /** Sets the priority of every piece at once (0 = not wanted). */
  setPriorities(priorities: ArrayLike<number>): void {
    for (let i = 0; i < this.#pieceCount; i++) this.#priority[i] = priorities[i];
  }

  /**
   * Sets piece priorities from file priorities: each piece gets the highest priority of the files it touches
   * (padding files do not count); pieces in progress that are no longer wanted are dropped.
   *
   * @param geometry The files and piece length.
   * @param filePriorities Priority of each file (0 = do not download).
   */
  setFilePriorities(
    geometry: { readonly files: readonly StorageFile[]; readonly pieceLength: number },
    filePriorities: readonly number[],
  ): void {
    const prio = new Int32Array(this.#pieceCount);
    for (let f = 0; f < geometry.files.length; f++) {
      const range = pieceRangeOfFile(geometry, f);
      if (!range || geometry.files[f].padding) continue;
      const p = filePriorities[f];
      for (let i = range[0]; i <= range[1]; i++) if (p > prio[i]) prio[i] = p;
    }
    this.setPriorities(prio);
    for (let i = 0; i < prio.length; i++) if (prio[i] === 0 && !this.#isUrgent[i]) this.abandon(i);
  }

  /** Priority of a piece (0 = not wanted). */
  priority(index: number): number {
    return this.#priority[index];
  }

  /** Whether new pieces are started in order rather than rarest first. */
  get sequential(): boolean {
    return this.#sequential;
  }

  set sequential(on: boolean) {
    this.#sequential = on;
  }

  /**
   * Replaces the pieces with a deadline (those a stream's reader waits for, and the window ahead of it). They are
   * requested before anything else, soonest deadline first, and are wanted whatever their file's priority.
   * Pieces already had are ignored; an empty list ends streaming's urgency.
   *
   * @example The reader's next pieces go first
   * ```ts
   * import { Bitfield } from "../bitfield.ts";
   * import { PiecePicker } from "./piece_picker.ts";
   * import assert from "node:assert/strict";
   *
   * const all = new Bitfield(10);
   * all.setAll();
   * const picker = new PiecePicker({
   *   pieceCount: 10, pieceLength: 16384, totalLength: 10 * 16384, have: new Bitfield(10),
   * });
   * picker.setDeadlines([[8, 0], [9, 16384]]);
   * const blocks = picker.pick(all, 3, picker.requests.forPeer());
   * assert.deepEqual(blocks.map((b) => b.index).slice(0, 2), [8, 9]);
   * ```
   *
   * @param deadlines `[piece index, deadline]` pairs; a lower deadline is sooner (any unit: bytes ahead of the
   *   reader, milliseconds); ties go to the lower index.
   */
  setDeadlines(deadlines: Iterable<readonly [number, number]>): void {
    this.#urgent.set(deadlines);
  }

  /** True while some piece has a deadline. */
  get hasDeadlines(): boolean {
    return this.#urgent.order.length > 0;
  }

  /** True when piece `index` has a deadline. */
  hasDeadline(index: number): boolean {
    return this.#isUrgent[index] === 1;
  }

  /**
   * True when piece `index` is wanted and some of its blocks are not requested from anyone (it is not started,
   * or started with free blocks).
   */
  hasFreeBlocks(index: number): boolean {
    if (!this.wants(index) || this.#pending.has(index) || this.#reserved.has(index)) return false;
    const p = this.#partial.get(index);
    return !p || p.free > 0;
  }

  /** True when piece `index` is wanted and some of its blocks are still to come (not in memory complete). */
  needsBlocks(index: number): boolean {
    return this.wants(index) && !this.#pending.has(index) && !this.#reserved.has(index);
  }

  /** True when the piece is wanted (by a file's priority or a deadline) and not yet had. */
  wants(index: number): boolean {
    return (this.#priority[index] > 0 || this.#isUrgent[index] === 1) && !this.#have.has(index);
  }

  /** The pieces that are wanted and not yet had. */
  wantedBits(): Bitfield {
    const bits = new Bitfield(this.#pieceCount);
    for (let i = 0; i < this.#pieceCount; i++) if (this.wants(i)) bits.set(i);
    return bits;
  }

  /** Bytes of wanted pieces not yet had. */
  get leftBytes(): number {
    let n = 0;
    for (let i = 0; i < this.#pieceCount; i++) if (this.wants(i)) n += this.pieceSize(i);
    return n;
  }

  /** Bytes of wanted pieces in total and had so far. */
  wantedBytes(): { have: number; total: number } {
    let have = 0, total = 0;
    for (let i = 0; i < this.#pieceCount; i++) {
      if (this.#priority[i] <= 0) continue;
      const size = this.pieceSize(i);
      total += size;
      if (this.#have.has(i)) have += size;
    }
    return { have, total };
  }

  /** True when every wanted piece is had. */
  get complete(): boolean {
    for (let i = 0; i < this.#pieceCount; i++) if (this.wants(i)) return false;
    return true;
  }

  /** Number of pieces that are wanted and not yet had. */
  get wantedLeft(): number {
    let n = 0;
    for (let i = 0; i < this.#pieceCount; i++) if (this.wants(i)) n++;
    return n;
  }

  /** A peer announced it has every piece in `bits`. */
  addAvailability(bits: Bitfield): void {
    for (const i of bits) this.#availability[i]++;
  }

  /** A peer with these pieces went away. */
  removeAvailability(bits: Bitfield): void {
    for (const i of bits) if (this.#availability[i] > 0) this.#availability[i]--;
  }

  /** A peer announced one more piece. */
  incrementAvailability(index: number): void {
    this.#availability[index]++;
  }

  /** How many connected peers have piece `index`. */
  availability(index: number): number {
    return this.#availability[index];
  }

  /** Pieces currently in progress. */
  get partialCount(): number {
    return this.#partial.size;
  }

  /** Pieces complete in memory, waiting to be verified and written. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Pieces handed out whole by {@linkcode PiecePicker.pickRun} and not yet received or given back. */
  get reservedCount(): number {
    return this.#reserved.size;
  }

  /** True when no wanted block is left unrequested: every remaining block is in flight somewhere. */
  get inEndgame(): boolean {
    for (const p of this.#partial.values()) if (p.free > 0) return false;
    for (let i = 0; i < this.#pieceCount; i++) {
      if (
        this.wants(i) && !this.#partial.has(i) && !this.#pending.has(i) && !this.#reserved.has(i)
      ) {
        return false;
      }
    }
    return true;
  }

  /**
   * Chooses up to `max` blocks to request from a peer that has the pieces in `peerHas`.
   *
   * Order: pieces with a deadline (see {@linkcode PiecePicker.setDeadlines}), soonest first, up to the peer's
   * `urgent` allowance, started while fewer than twice `maxInMemory` pieces are held, and once every block of
   * them is requested, duplicate requests for the blocks of the nearest ones still in flight elsewhere; then
   * blocks of pieces already in progress (highest priority, then most complete), then new pieces by priority
   * and rarity (ties broken at random, except that the piece after the last one started wins a tie, so runs of
   * equally rare pieces are fetched and written in order; in order when sequential), while fewer than
   * `maxInMemory` pieces are held; when nothing is left unrequested, endgame: blocks already in flight from
   * other peers, at most `endgameDuplicates` requests per block.
   *
   * @param peerHas The peer's pieces.
   * @param max Most blocks to return.
   * @param peerRequests The blocks this peer has in flight (it is never asked twice for one); the caller records
   *   each returned block there as it sends the request (see {@linkcode RequestStore}), or gives it back with
   *   {@linkcode PiecePicker.unpick}.
   * @param allowed When given, only these pieces may be picked (a choked peer's allowed-fast set).
   * @param options How many blocks of pieces with a deadline this peer may have.
   * @returns Blocks to request; each is marked as requested.
   */
  pick(
    peerHas: Bitfield,
    max: number,
    peerRequests: { has(key: number): boolean },
    allowed?: ReadonlySet<number>,
    options?: PickOptions,
  ): BlockRequest[] {
    const out: BlockRequest[] = [];
    if (max <= 0) return out;
    // 0. pieces a reader waits for
    if (this.#urgent.order.length > 0) {
      let quota = options?.urgent ?? Infinity;
      if (quota !== Infinity && quota > 0) quota -= this.#urgent.inflight(peerRequests);
      if (quota > 0) this.#urgent.pick(peerHas, Math.min(max, quota), out, peerRequests, allowed);
      if (out.length >= max) return out;
    }
    const urgent = this.#isUrgent;
    // 1. pieces in progress with blocks left to ask this peer for, best first: usually few of them (most pieces
    // in progress have every block in flight), so only those are sorted — this runs for every block received
    const partials = [...this.#partial.values()];
    const open: PartialPiece[] = [];
    for (const p of partials) {
      if (p.free === 0 || !peerHas.has(p.index) || (allowed && !allowed.has(p.index))) continue;
      if (!urgent[p.index]) open.push(p);
    }
    for (const p of this.#sortPartials(open)) {
      if (this.#mayTake(p, peerRequests)) this.#takeFree(p, out, max);
      if (out.length >= max) return out;
    }
    // 2. new pieces: highest priority, rarest, random tie-break
    while (out.length < max && this.#held < this.#maxInMemory) {
      const index = this.#chooseNewPiece(peerHas, allowed);
      if (index < 0) break;
      const p = this.#startPiece(index);
      if (this.#alone.has(index)) this.#alone.set(index, peerRequests);
      this.#takeFree(p, out, max);
    }
    if (out.length >= max) return out;
    // 3. endgame: duplicate requests for blocks in flight elsewhere
    if (this.inEndgame) {
      for (const p of this.#sortPartials(partials)) {
        if (!peerHas.has(p.index) || (allowed && !allowed.has(p.index)) || urgent[p.index]) {
          continue;
        }
        if (!this.#mayTake(p, peerRequests)) continue;
        const blocks = p.state.length;
        const first = p.index * this.requests.blocksPerPiece;
        for (let b = 0; b < blocks && out.length < max; b++) {
          if (p.state[b] !== REQUESTED || peerRequests.has(first + b)) continue;
          if (this.requests.inflight(first + b) >= this.#endgameDuplicates) continue;
          out.push({
            index: p.index,
            begin: b * BLOCK_SIZE,
            length: this.#blockLength(p.index, b),
          });
        }
        if (out.length >= max) break;
      }
    }
    return out;
  }

  /**
   * Hands out a run of whole pieces, for a source that serves byte ranges rather than blocks (a web seed,
   * BEP 19): contiguous pieces that are wanted, not had and that nobody is working on, starting at the
   * beginning of the longest such gap among the highest-priority pieces (BEP 19: "start at the beginning of
   * the biggest gap"; ties go to the lowest index). The pieces are reserved: {@linkcode PiecePicker.pick}
   * never hands out their blocks until they arrive through {@linkcode PiecePicker.receivePiece} or come back
   * through {@linkcode PiecePicker.unreserve}. Reserved pieces count toward `maxInMemory` (each will need a
   * buffer once it arrives), so a run is at most as long as the memory left allows.
   *
   * When no piece is free, a piece in progress that no peer has a request out for (its peers went away) is
   * taken over as a run of one: the blocks it had received are discarded.
   *
   * @example Two web seeds take the two ends of a fresh download
   * ```ts
   * import { Bitfield } from "../bitfield.ts";
   * import { PiecePicker } from "./piece_picker.ts";
   * import assert from "node:assert/strict";
   *
   * const picker = new PiecePicker({
   *   pieceCount: 10, pieceLength: 16384, totalLength: 10 * 16384, have: new Bitfield(10),
   * });
   * assert.deepEqual(picker.pickRun(4), { first: 0, count: 4 });
   * assert.deepEqual(picker.pickRun(4), { first: 4, count: 4 });
   * picker.unreserve(5); // the second seed failed before piece 5
   * assert.deepEqual(picker.pickRun(4), { first: 8, count: 2 }); // the longest gap is now 8..9
   * ```
   *
   * @param max Most pieces in the run.
   * @param options Which pieces the source can serve.
   * @returns The run, or undefined when nothing can be handed out now.
   */
  pickRun(max: number, options: PickRunOptions = {}): PieceRun | undefined {
    return pickRun(this.#pieces, max, options);
  }

  /**
   * A whole piece handed out by {@linkcode PiecePicker.pickRun} arrived: it is copied into a piece buffer and
   * returned like a piece completed block by block, for the caller to verify (then
   * {@linkcode PiecePicker.pieceVerified} or {@linkcode PiecePicker.pieceFailed}). Every block is credited to
   * `sender`, so a piece that fails its hash check names that one source.
   *
   * @param index Piece index.
   * @param data The piece's bytes (copied; the caller may reuse its buffer).
   * @param sender Identifier of the source (blamed if the piece fails its hash).
   * @returns The piece, or undefined when it was not reserved (given back or abandoned meanwhile) or `data`
   *   is not the piece's size.
   */
  receivePiece(index: number, data: Uint8Array, sender: number): PartialPiece | undefined {
    return receiveRunPiece(this.#pieces, index, data, sender);
  }

  /**
   * A piece handed out by {@linkcode PiecePicker.pickRun} will not arrive (its source failed, was dropped or
   * was too slow): it can be picked again.
   *
   * @param index Piece index.
   * @returns True when the piece was reserved.
   */
  unreserve(index: number): boolean {
    return this.#reserved.delete(index);
  }

  /**
   * A block returned by {@linkcode PiecePicker.pick} could not be requested after all: it is free again unless
   * another peer has it in flight.
   */
  unpick(index: number, begin: number): void {
    if (this.requests.inflight(this.requests.key(index, begin)) === 0) {
      this.#blockIdle(index, begin);
    }
  }

  /** No peer has this block in flight any more (withdrawn, rejected, choked, closed): it is free again. */
  #blockIdle(index: number, begin: number): void {
    const p = this.#partial.get(index);
    if (!p) return;
    const b = begin / BLOCK_SIZE;
    if (p.state[b] !== REQUESTED) return;
    p.state[b] = FREE;
    p.free++;
  }

  /**
   * A block arrived: copies it into its piece's buffer.
   *
   * @param index Piece index.
   * @param begin Byte offset in the piece.
   * @param data The block's bytes (copied; the caller may reuse its buffer).
   * @param sender Identifier of the peer that sent it (blamed if the piece fails its hash).
   * @returns The piece, when this block completed it (the caller verifies it and calls
   *   {@linkcode PiecePicker.pieceVerified} or {@linkcode PiecePicker.pieceFailed}); `null` when the block was
   *   stored but the piece is not complete; `undefined` when the block was not wanted (duplicate or unknown).
   */
  receive(
    index: number,
    begin: number,
    data: Uint8Array,
    sender: number,
  ): PartialPiece | null | undefined {
    const p = this.#partial.get(index);
    if (!p || begin % BLOCK_SIZE !== 0) return undefined;
    const b = begin / BLOCK_SIZE;
    if (b >= p.state.length || p.state[b] === RECEIVED) return undefined;
    if (data.length !== this.#blockLength(index, b)) return undefined;
    if (p.state[b] === FREE) p.free--;
    p.state[b] = RECEIVED;
    p.buffer.set(data, begin);
    p.received++;
    p.senders.add(sender);
    p.blockSenders[b] = sender;
    if (p.received < p.state.length) return null;
    this.#partial.delete(index);
    this.#pending.add(index);
    return p;
  }

  /** The piece passed its hash check and is being written; its buffer may go back to the pool afterwards. */
  pieceVerified(piece: PartialPiece): void {
    this.#pending.delete(piece.index);
    this.#alone.delete(piece.index);
  }

  /**
   * The piece failed its hash check: every block is wanted again. When several peers sent it, the next copy
   * comes from a single peer.
   */
  pieceFailed(piece: PartialPiece): void {
    this.#pending.delete(piece.index);
    if (piece.senders.size > 1) this.#alone.set(piece.index, undefined);
    else this.#alone.delete(piece.index);
    this.release(piece.buffer);
  }

  /**
   * Whether a peer may be given blocks of a piece in progress: yes, unless the piece is one to fetch from a single
   * peer and another peer is still fetching it (one that stopped, by choking or closing, hands it over).
   */
  #mayTake(p: PartialPiece, peerRequests: { has(key: number): boolean }): boolean {
    if (!this.#alone.has(p.index)) return true;
    const owner = this.#alone.get(p.index);
    if (owner === peerRequests) return true;
    if (owner) {
      const first = p.index * this.requests.blocksPerPiece;
      for (let b = 0; b < p.state.length; b++) if (owner.has(first + b)) return false;
    }
    this.#alone.set(p.index, peerRequests);
    return true;
  }

  /** Gives a piece buffer back for reuse once nothing reads it any more. */
  release(buffer: Uint8Array<ArrayBuffer>): void {
    if (buffer.length === this.#pieceLength && this.#pool.length < this.#maxInMemory) {
      this.#pool.push(buffer);
    }
  }

  /** Drops the spare piece buffers (the download finished or stopped). */
  trimPool(): void {
    this.#pool.length = 0;
  }

  /** Forgets a piece in progress or reserved (e.g. its file's priority dropped to 0). */
  abandon(index: number): void {
    this.#reserved.delete(index);
    const p = this.#partial.get(index);
    if (!p) return;
    this.#partial.delete(index);
    this.release(p.buffer);
  }

  /** True when piece `index` is in progress, reserved, or waiting for verification. */
  isBusy(index: number): boolean {
    return this.#partial.has(index) || this.#pending.has(index) || this.#reserved.has(index);
  }

  /** Pieces that hold (or, reserved, will hold) a buffer: compared with `maxInMemory`. */
  get #held(): number {
    return this.#partial.size + this.#pending.size + this.#reserved.size;
  }

  /** Bytes received for pieces still in progress (counted toward "downloaded" but not yet verified). */
  get partialBytes(): number {
    let n = 0;
    for (const p of this.#partial.values()) n += p.received * BLOCK_SIZE;
    return n;
  }

  #blockLength(index: number, block: number): number {
    const size = this.pieceSize(index);
    return Math.min(BLOCK_SIZE, size - block * BLOCK_SIZE);
  }

  #sortedPartials(): PartialPiece[] {
    return this.#sortPartials([...this.#partial.values()]);
  }

  /** Sorts pieces in progress best first (in place): priority, then the most complete, then in order. */
  #sortPartials(list: PartialPiece[]): PartialPiece[] {
    if (list.length > 1) {
      list.sort(
        this.#sequential
          ? (a, b) => (this.#priority[b.index] - this.#priority[a.index]) || (a.index - b.index)
          : (a, b) =>
            (this.#priority[b.index] - this.#priority[a.index]) ||
            ((b.received / b.state.length) - (a.received / a.state.length)) ||
            (a.index - b.index),
      );
    }
    return list;
  }

  #takeFree(p: PartialPiece, out: BlockRequest[], max: number): void {
    const blocks = p.state.length;
    for (let b = 0; b < blocks && out.length < max && p.free > 0; b++) {
      if (p.state[b] !== FREE) continue;
      p.state[b] = REQUESTED;
      p.free--;
      out.push({ index: p.index, begin: b * BLOCK_SIZE, length: this.#blockLength(p.index, b) });
    }
  }

  /** Sets (1) or clears (0) {@linkcode PiecePicker.#heldFlags} for the pieces in memory. */
  #markHeld(on: 0 | 1): void {
    const flags = this.#heldFlags;
    for (const i of this.#partial.keys()) flags[i] = on;
    for (const i of this.#pending) flags[i] = on;
    for (const i of this.#reserved) flags[i] = on;
  }

  /**
   * The next new piece for a peer (see new_piece.ts): highest priority, then rarest with a random tie-break and,
   * while {@linkcode PiecePicker.extentAffinity} is on, the piece after the last one started winning a tie; in
   * sequential mode the lowest-numbered. Pieces in memory are flagged for the scan.
   */
  #chooseNewPiece(peerHas: Bitfield, allowed?: ReadonlySet<number>): number {
    const view: NewPieceView = {
      pieceCount: this.#pieceCount,
      have: this.#have,
      priority: this.#priority,
      availability: this.#availability,
      urgent: this.#isUrgent,
      held: this.#heldFlags,
      random: this.#random,
      affinityAfter: this.extentAffinity ? this.#lastStarted : undefined,
    };
    this.#markHeld(1);
    try {
      if (this.#sequential) return firstNewPiece(view, peerHas, allowed);
      const best = rarestNewPiece(view, peerHas, allowed);
      if (best >= 0) this.#lastStarted = best;
      return best;
    } finally {
      this.#markHeld(0);
    }
  }

  #startPiece(index: number): PartialPiece {
    const p = this.#newPiece(index);
    this.#partial.set(index, p);
    return p;
  }

  #newPiece(index: number): PartialPiece {
    const size = this.pieceSize(index);
    const blocks = Math.ceil(size / BLOCK_SIZE);
    let buffer: Uint8Array<ArrayBuffer>;
    if (size === this.#pieceLength && this.#pool.length > 0) buffer = this.#pool.pop()!;
    else buffer = new Uint8Array(size);
    return {
      index,
      buffer,
      state: new Uint8Array(blocks),
      received: 0,
      free: blocks,
      senders: new Set(),
      blockSenders: new Int32Array(blocks),
    };
  }
}
