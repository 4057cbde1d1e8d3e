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
 * That rule alone stalls on a lossy link: a lost segment holds back everything behind it, blocks take several
 * times the shortest round trip, and a budget sized from it delivers a rate too low to ask for more (0.5 % loss at
 * 50 ms: 8 MiB and 25 MB/s, where the link carries 80). So where one or two peers, or mostly seeds, carry the
 * download over a round trip of 10 ms or more, the budget also probes: it doubles, and keeps the doubling only if
 * the rate clearly rose.
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

/** Where the download's rate comes from (see {@linkcode PieceBudget.update}). */
export interface RateSources {
  /** How many peers, counted by their shares of the rate. */
  peers: number;
  /** The share of the rate from peers that have every piece, 0–1. */
  seeds: number;
}

/** Most the budget grows in one update (×), so that one odd sample does not jump it to the ceiling. */
const GROWTH = 4;
/** Most it shrinks in one update (×): slowly, a dip in rate does not throw away what a fast link needs. */
const SHRINK = 0.9;
/**
 * A probe multiplies the budget by this, and keeps it when the rate rises clearly (see {@linkcode PieceBudget.#clearly}):
 * a link that the budget limits answers twice the room with nearly twice the rate, one that something else limits
 * (an upload cap, a peer's choking, the disk) with about none.
 */
const PROBE = 2;
/** The least rise (×) a probe must bring to be kept. */
const CONFIRM = 1.3;
/**
 * How many standard errors above the rate before it a probe's rate must be: a swarm's rate swings threefold from
 * one update to the next with no change of budget, so a rise is judged against that spread.
 */
const CONFIRM_SE = 2;
/** Updates a probe's rate is averaged over, after one that it lets pass (part old budget, part new). */
const PROBE_SPAN = 2;
/** Rates kept as the reference for the next probe (at the budget of now), and the fewest a probe needs. */
const HISTORY = 8;
const HISTORY_MIN = 4;
/** Shortest round trip (ms) at which probing starts: a link answering faster needs no more than the floor. */
const PROBE_RTT_MS = 10;
/**
 * Where probing is worth it: the download comes from one or two peers (counted by their shares of the rate), or
 * mostly (this share of the rate) from seeds. Either way the rate answers the budget. Among leechers trading with
 * each other, their rates swing with their own downloads, uploads and choking, and a probe reads noise: in a
 * swarm of 8 on loopback a version that probed there made the whole swarm 13 % slower.
 */
const PROBE_PEERS = 2;
const PROBE_SEEDS = 0.75;
/** Most updates a probe that failed waits before the next (it doubles from 2 after each failure). */
const PROBE_WAIT_MAX = 16;
/** What a probe gained fades by this each update while a failed probe waits, so a gain the link no longer needs goes. */
const FADE = 0.97;

/** The piece memory of one torrent. */
export class PieceBudget {
  readonly #floor: number;
  readonly #ceiling: number;
  readonly #headroom: number;
  /** The budget rate × round trip asks for, before probing. */
  #base: number;
  /** What probing found the link to need beyond {@linkcode PieceBudget.#base} (×, at least 1). */
  #gain = 1;
  /** The probe under way: the gain before it, and the rates seen since it began. */
  #probe: { gain: number; rates: number[] } | undefined;
  /** Updates until the next probe, and how long the next failure makes it wait. */
  #wait = 0;
  #backoff = 2;
  /** The rates of the last updates at the present gain (at most {@linkcode HISTORY}): a probe's reference. */
  #rates: number[] = [];

  /**
   * Creates a {@linkcode PieceBudget} at its floor.
   *
   * @param options Floor, ceiling, headroom.
   */
  constructor(options: PieceBudgetOptions) {
    this.#ceiling = Math.max(1, options.ceiling);
    this.#floor = Math.min(Math.max(1, options.floor), this.#ceiling);
    this.#headroom = options.headroom ?? 3;
    this.#base = this.#floor;
  }

  /** The budget now, bytes. */
  get bytes(): number {
    return Math.min(this.#ceiling, this.#base * this.#gain);
  }

  /**
   * Moves the budget toward `headroom × rate × round trip`, within floor and ceiling; once there, on a link of
   * 10 ms or more that one or two peers or mostly seeds carry, also probes above it, and keeps what raised the
   * rate.
   *
   * The probe is what a lossy link needs: there a lost segment holds back everything behind it, blocks take
   * several times the shortest round trip, and a budget sized from that round trip delivers a rate too low to
   * ask for a bigger one. Growing only where the rate follows keeps the budget of a peer limited by anything
   * else (its upload, our disk) where it is, which matters in a swarm: many pieces half-fetched are pieces no
   * one can share yet.
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
   * budget.update(100e6, 100); // 10 MB in flight
   * assert.equal(budget.bytes, 30e6);
   * ```
   *
   * @param rate Payload bytes per second received lately (over the last tick, not a slow average: the
   *   budget's own growth raises it).
   * @param rttMs The peers' round-trip time, ms (their shortest, weighted by their rates).
   * @param from Where the rate comes from: `peers`, how many peers, counted by their shares (`(Σ rate)² ÷
   *   Σ rate²`: two equal peers are 2, one peer with nearly all of it about 1); `seeds`, the share of it from
   *   peers that have every piece (0–1).
   * @returns The budget, bytes.
   */
  update(rate: number, rttMs: number, from: RateSources = { peers: 1, seeds: 1 }): number {
    rate = Math.max(0, rate);
    const inFlight = (rate * Math.max(0, rttMs)) / 1000;
    const target = Math.min(this.#ceiling, Math.max(this.#floor, this.#headroom * inFlight));
    const growing = target > this.#base;
    if (growing) this.#base = Math.min(target, this.#base * GROWTH);
    else this.#base = Math.max(target, this.#base * SHRINK);
    const probing = rttMs >= PROBE_RTT_MS &&
      (from.peers <= PROBE_PEERS || from.seeds >= PROBE_SEEDS);
    if (!probing) { // nothing can confirm the gain now: let it go
      if (this.#probe) this.#gain = this.#probe.gain;
      this.#probe = undefined;
      this.#gain = Math.max(1, this.#gain * SHRINK);
    } else if (this.#probe) {
      this.#judge(rate);
      return this.bytes;
    }
    this.#rates.push(rate);
    if (this.#rates.length > HISTORY) this.#rates.shift();
    if (probing && !growing) this.#maybeProbe(rate);
    return this.bytes;
  }

  /** A probe is under way: once it has its rates, keep its gain if they rose clearly, else go back and wait. */
  #judge(rate: number): void {
    const probe = this.#probe!;
    probe.rates.push(rate);
    if (probe.rates.length <= PROBE_SPAN) return;
    this.#probe = undefined;
    const rates = probe.rates.slice(1);
    if (this.#clearly(rates)) {
      this.#rates = rates; // the reference from now on: rates at the new gain
      this.#backoff = 2;
      this.#wait = 0;
    } else {
      this.#gain = probe.gain;
      this.#wait = this.#backoff;
      this.#backoff = Math.min(PROBE_WAIT_MAX, this.#backoff * 2);
    }
  }

  /** No probe is under way: wait out a failed one's pause (the gain fading), else start the next. */
  #maybeProbe(rate: number): void {
    if (this.#wait > 0) {
      this.#wait--;
      this.#gain = Math.max(1, this.#gain * FADE);
      return;
    }
    const rates = this.#rates, n = rates.length;
    if (this.bytes >= this.#ceiling || rate <= 0 || n < HISTORY_MIN) return;
    // a rate still rising by itself (connections opening, a swarm starting to trade) would confirm any probe
    if (rates[n - 1] + rates[n - 2] > CONFIRM * (rates[n - 3] + rates[n - 4])) return;
    this.#probe = { gain: this.#gain, rates: [] };
    this.#gain = Math.min(this.#gain * PROBE, this.#ceiling / this.#base);
  }

  /**
   * Whether `rates` (a probe's) are clearly above the reference rates: by {@linkcode CONFIRM} at least, and by
   * {@linkcode CONFIRM_SE} standard errors of the difference of the means (the spread pooled from both).
   */
  #clearly(rates: readonly number[]): boolean {
    const before = this.#rates, m0 = mean(before), m1 = mean(rates);
    let squares = 0;
    for (const r of before) squares += (r - m0) ** 2;
    for (const r of rates) squares += (r - m1) ** 2;
    const variance = squares / Math.max(1, before.length + rates.length - 2);
    const se = Math.sqrt(variance * (1 / before.length + 1 / rates.length));
    return m1 >= m0 * CONFIRM && m1 >= m0 + CONFIRM_SE * se;
  }
}

/** The mean of `values` (not empty). */
function mean(values: readonly number[]): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}
