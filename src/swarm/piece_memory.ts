/**
 * The piece budget of one torrent kept up to date: the payload rate since the last update × the peers' round
 * trip (their shortest waits for a first block, weighted by their rates) feeds {@linkcode PieceBudget}, whose
 * bytes become the picker's count of pieces held in memory. In a session, what a budget holds above its floor
 * comes out of the session's total ({@linkcode PieceMemoryPool}).
 *
 * @module
 */

import { PieceBudget } from "./piece_budget.ts";
import type { PieceMemoryPool } from "./piece_memory_pool.ts";

/**
 * Default of `TorrentOptions.pieceMemory` (the most the piece budget may grow to) and of a session's total. Several
 * seeds behind lossy long links need about this much; on a link under 10 ms the budget stays at its floor.
 */
export const PIECE_MEMORY = 256 * 1024 * 1024;
/** Where the piece budget starts and what it keeps when the link needs less (a fast local peer). */
const PIECE_MEMORY_FLOOR = 8 * 1024 * 1024;

/** A peer as the budget sees it: its download rate and round trip. */
export interface MemoryPeer {
  /** Payload bytes per second from the peer. */
  rateDown: number;
}

/** Options of {@linkcode PieceMemory}. */
export interface PieceMemoryOptions<P extends MemoryPeer> {
  /** Bytes of a piece. */
  pieceLength: number;
  /** The most the budget may grow to, bytes. @default {256 MiB} */
  ceiling?: number | undefined;
  /** The session's total, which the budget shares above its floor with other torrents. */
  pool?: PieceMemoryPool | undefined;
  /** The torrent's peers. */
  peers: () => Iterable<P>;
  /** A peer's round trip (ms), undefined when not known yet. */
  rttMs: (peer: P) => number | undefined;
  /** Whether the peer has every piece. */
  seed: (peer: P) => boolean;
  /** Payload bytes downloaded so far. */
  downloaded: () => number;
  /** The budget was updated: the new count of pieces (see {@linkcode PieceMemory.pieces}). */
  apply: (pieces: number) => void;
}

/** The piece budget of one torrent, and when it was last updated. */
export class PieceMemory<P extends MemoryPeer> {
  readonly #o: PieceMemoryOptions<P>;
  readonly #budget: PieceBudget;
  readonly #floor: number;
  /** What the budget may hold now: its bytes, or less when the session's total is shared. */
  #granted: number;
  /** When the piece budget was last updated (ms), and the bytes downloaded then. */
  #budgetAt = 0;
  #downloadedAtBudget = 0;

  /**
   * Creates a {@linkcode PieceMemory} at the budget's floor.
   *
   * @param options The piece size, the ceiling, and where rates and round trips come from.
   */
  constructor(options: PieceMemoryOptions<P>) {
    this.#o = options;
    const ceiling = options.ceiling ?? PIECE_MEMORY;
    this.#floor = Math.min(PIECE_MEMORY_FLOOR, ceiling);
    this.#budget = new PieceBudget({ floor: this.#floor, ceiling });
    this.#granted = this.#budget.bytes;
  }

  /** The piece budget now, bytes (what the session's total grants of it). */
  get bytes(): number {
    return this.#granted;
  }

  /** The piece budget in pieces (at least 4). */
  get pieces(): number {
    return Math.max(4, Math.floor(this.#granted / this.#o.pieceLength));
  }

  /**
   * The torrent downloads nothing now (stopped, paused, complete, or without peers): it gives back its share of
   * the session's total and holds its floor until the next update.
   */
  release(): void {
    this.#o.pool?.release(this);
    if (this.#granted > this.#floor) {
      this.#granted = this.#floor;
      this.#o.apply(this.pieces);
    }
  }

  /**
   * The piece budget follows the payload rate since its last update × the peers' round trip: every tick, and
   * as pieces arrive once two round trips (at least 250 ms) have passed, so that it grows within a second on a
   * long fast link rather than over several. A tick that comes soon after such an update (under half that time)
   * is skipped: a rate over a few milliseconds is noise.
   *
   * @param now The clock (ms).
   * @param early Called between ticks: only when enough time has passed.
   */
  update(now: number, early = false): void {
    let weighted = 0, weights = 0, squares = 0, seeds = 0;
    for (const e of this.#o.peers()) {
      const rtt = this.#o.rttMs(e);
      if (rtt === undefined || e.rateDown <= 0) continue;
      weighted += e.rateDown * rtt;
      weights += e.rateDown;
      squares += e.rateDown * e.rateDown;
      if (this.#o.seed(e)) seeds += e.rateDown;
    }
    const rtt = weights > 0 ? weighted / weights : 0;
    const elapsed = now - this.#budgetAt;
    const period = Math.max(250, 2 * rtt);
    if (elapsed <= 0 || elapsed < (early ? period : period / 2)) return;
    const downloaded = this.#o.downloaded();
    const rate = ((downloaded - this.#downloadedAtBudget) * 1000) / elapsed;
    this.#budgetAt = now;
    this.#downloadedAtBudget = downloaded;
    this.#budget.update(rate, rtt, {
      peers: squares > 0 ? (weights * weights) / squares : 1,
      seeds: weights > 0 ? seeds / weights : 0,
    });
    const want = this.#budget.bytes;
    this.#granted = this.#o.pool ? this.#o.pool.grant(this, want, this.#floor) : want;
    this.#o.apply(this.pieces);
  }
}
