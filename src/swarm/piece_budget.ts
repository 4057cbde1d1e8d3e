/**
 * How much memory the pieces being downloaded may hold, adapted to the link: enough for what is in flight on
 * the way from the peers (their rates × their round-trip times, three times over), at least a floor (what a fast local
 * peer needs: the disk, not the network, is then the limit) and at most a ceiling the user sets.
 *
 * The round-trip time is the shortest wait seen for a first block (asked for while nothing else was in flight
 * to that peer), not the average wait: a peer's queue of our own requests makes every later block wait longer,
 * and by Little's law (in flight = rate × wait) a budget sized from the average would justify any size it
 * already has. A loopback peer answers a first block in about a millisecond and keeps the floor; a peer 100 ms
 * away at 80 MB/s asks for 24 MB.
 *
 * Pure decision code, no timers: the torrent calls {@linkcode PieceBudget.update} once a tick.
 *
 * @module
 */

/** Options of {@linkcode PieceBudget}. */
export interface PieceBudgetOptions {
  /** Bytes the budget never goes below. */
  floor: number;
  /** Bytes the budget never goes above. */
  ceiling: number;
  /**
   * What is in flight is multiplied by this: room for pieces only partly in flight, for pieces waiting for
   * their hash check and write, and for the rate to grow (the rate follows the budget a round trip later).
   * @default {3}
   */
  headroom?: number;
}

/** Most the budget grows in one update (×), so that one odd sample does not jump it to the ceiling. */
const GROWTH = 4;
/** Most it shrinks in one update (×): slowly, a dip in rate does not throw away what a fast link needs. */
const SHRINK = 0.9;

/** The piece memory of one torrent. */
export class PieceBudget {
  readonly #floor: number;
  readonly #ceiling: number;
  readonly #headroom: number;
  #bytes: number;

  /**
   * Creates a {@linkcode PieceBudget} at its floor.
   *
   * @param options Floor, ceiling, headroom.
   */
  constructor(options: PieceBudgetOptions) {
    this.#ceiling = Math.max(1, options.ceiling);
    this.#floor = Math.min(Math.max(1, options.floor), this.#ceiling);
    this.#headroom = options.headroom ?? 3;
    this.#bytes = this.#floor;
  }

  /** The budget now, bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Moves the budget toward `headroom × rate × round trip`, within floor and ceiling.
   *
   * @example A distant fast peer raises it, a local one does not
   * ```ts
   * import { PieceBudget } from "./piece_budget.ts";
   * import assert from "node:assert/strict";
   *
   * const MiB = 1024 * 1024;
   * const budget = new PieceBudget({ floor: 8 * MiB, ceiling: 64 * MiB });
   * budget.update(500e6, 1); // loopback: 0.5 MB in flight
   * assert.equal(budget.bytes, 8 * MiB);
   * for (let i = 0; i < 5; i++) budget.update(100e6, 100); // 10 MB in flight
   * assert.equal(budget.bytes, 30e6);
   * ```
   *
   * @param rate Payload bytes per second received lately (over the last tick, not a slow average: the
   *   budget's own growth raises it).
   * @param rttMs The peers' round-trip time, ms (their shortest, weighted by their rates).
   * @returns The budget, bytes.
   */
  update(rate: number, rttMs: number): number {
    const inFlight = (Math.max(0, rate) * Math.max(0, rttMs)) / 1000;
    const target = Math.min(this.#ceiling, Math.max(this.#floor, this.#headroom * inFlight));
    if (target > this.#bytes) this.#bytes = Math.min(target, this.#bytes * GROWTH);
    else this.#bytes = Math.max(target, this.#bytes * SHRINK);
    return this.#bytes;
  }
}
