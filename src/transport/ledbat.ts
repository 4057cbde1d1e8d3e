/**
 * LEDBAT, the delay-based congestion controller of uTP (BEP 29, "congestion control"): the window grows while
 * the one-way queuing delay stays under a target (100 ms) and shrinks when it goes over, so a uTP transfer yields
 * to TCP and to interactive traffic sharing the uplink. Loss halves the window like TCP; a timeout drops it to
 * one packet. The window never goes below one packet.
 *
 * The delay samples are the `timestamp_difference_microseconds` the peer echoes: its clock minus ours, plus the
 * path delay. Only changes matter, so the lowest sample of the last several minutes is the *base delay* and a
 * sample minus the base is the *queuing delay*. The base is kept as one minimum per time bucket (2 minutes by
 * default, 7 buckets: the last 12–14 minutes), so a route change or clock drift ages out.
 *
 * @module
 */

/** Options for {@linkcode Ledbat}. */
export interface LedbatOptions {
  /** Payload bytes of a full packet: the smallest window and the unit of slow start. */
  mss: number;
  /** The queuing delay aimed at, microseconds. @default {100000} */
  targetDelayUs?: number;
  /** Most bytes the window grows per round trip when there is no queuing delay. @default {3000} */
  gain?: number;
  /** The starting window, bytes. @default {2 * mss} */
  initialWindow?: number;
  /** The largest window, bytes. @default {4194304} */
  maxWindow?: number;
  /** Length of one base-delay bucket, milliseconds. @default {120000} */
  bucketMs?: number;
  /** Buckets of base-delay history kept. @default {7} */
  buckets?: number;
}

/** How many recent samples the current delay is the minimum of (filters out single late packets). */
const CURRENT_FILTER = 3;

/**
 * The minimum of 32-bit wrapping delay samples over the last `buckets` time buckets.
 *
 * @example Base delay
 * ```ts
 * import { DelayHistory } from "./ledbat.ts";
 *
 * const h = new DelayHistory(60_000, 3);
 * h.add(5000, 0);
 * h.add(4000, 1000);
 * if (h.base !== 4000) throw new Error("the base is the lowest sample");
 * ```
 */
export class DelayHistory {
  readonly #bucketMs: number;
  readonly #capacity: number;
  readonly #mins: number[] = [];
  #bucketStart = 0;
  #base = 0;

  /**
   * Creates a {@linkcode DelayHistory}.
   *
   * @param bucketMs Length of a bucket, milliseconds.
   * @param buckets Buckets kept.
   */
  constructor(bucketMs: number, buckets: number) {
    this.#bucketMs = bucketMs;
    this.#capacity = Math.max(1, buckets);
  }

  /** True once a sample was added. */
  get initialized(): boolean {
    return this.#mins.length > 0;
  }

  /** The lowest sample in the history (0 before any). */
  get base(): number {
    return this.#base;
  }

  /**
   * Adds a sample.
   *
   * @param sample A delay sample, microseconds mod 2^32.
   * @param nowMs The current time, milliseconds.
   * @returns The sample minus the base (0 when the sample is a new minimum).
   */
  add(sample: number, nowMs: number): number {
    sample >>>= 0;
    const mins = this.#mins;
    if (mins.length === 0) {
      mins.push(sample);
      this.#bucketStart = nowMs;
      this.#base = sample;
      return 0;
    }
    if (nowMs - this.#bucketStart >= this.#bucketMs) {
      this.#bucketStart = nowMs;
      mins.push(sample);
      if (mins.length > this.#capacity) mins.shift();
      let base = mins[0];
      for (let i = 1; i < mins.length; i++) if (wrapLess(mins[i], base)) base = mins[i];
      this.#base = base;
    } else if (wrapLess(sample, mins[mins.length - 1])) {
      mins[mins.length - 1] = sample;
    }
    if (wrapLess(sample, this.#base)) this.#base = sample;
    return (sample - this.#base) >>> 0;
  }

  /**
   * Moves the base by `delta` microseconds (compensates clock drift seen in the other direction).
   *
   * @param delta Microseconds to add to every bucket.
   */
  adjust(delta: number): void {
    for (let i = 0; i < this.#mins.length; i++) this.#mins[i] = (this.#mins[i] + delta) >>> 0;
    this.#base = (this.#base + delta) >>> 0;
  }
}

/**
 * The LEDBAT congestion window of one uTP connection.
 *
 * @example The window grows below the target delay and shrinks above it
 * ```ts
 * import { Ledbat } from "./ledbat.ts";
 *
 * const cc = new Ledbat({ mss: 1000, initialWindow: 10_000 });
 * cc.addDelaySample(50_000, 0); // the base delay
 * cc.addDelaySample(60_000, 10); // 10 ms of queuing: under the 100 ms target
 * const before = cc.window;
 * cc.onAck(5000, 10_000);
 * if (!(cc.window > before)) throw new Error("should grow");
 * ```
 */
export class Ledbat {
  readonly #mss: number;
  readonly #target: number;
  readonly #gain: number;
  readonly #max: number;
  readonly #history: DelayHistory;
  readonly #recent: number[] = [];
  #recentAt = 0;
  #cwnd: number;
  #slowStart = true;
  #ssthresh = 0;

  /**
   * Creates a {@linkcode Ledbat}.
   *
   * @param options Packet size, target delay, gain, window bounds and base-delay history.
   */
  constructor(options: LedbatOptions) {
    this.#mss = Math.max(1, options.mss);
    this.#target = options.targetDelayUs ?? 100_000;
    this.#gain = options.gain ?? 3000;
    this.#max = Math.max(this.#mss, options.maxWindow ?? 4 * 1024 * 1024);
    this.#cwnd = Math.min(this.#max, Math.max(this.#mss, options.initialWindow ?? 2 * this.#mss));
    this.#history = new DelayHistory(options.bucketMs ?? 120_000, options.buckets ?? 7);
  }

  /** The congestion window, bytes (never below one packet). */
  get window(): number {
    return this.#cwnd;
  }

  /** True while the window grows exponentially (until the first loss or the first delay over target). */
  get slowStart(): boolean {
    return this.#slowStart;
  }

  /** The base delay, microseconds (the peer's clock offset included; meaningful only relative to samples). */
  get baseDelay(): number {
    return this.#history.base;
  }

  /** The current queuing delay estimate: the smallest of the last few samples minus the base, microseconds. */
  get queuingDelay(): number {
    const r = this.#recent;
    if (r.length === 0) return 0;
    let d = r[0];
    for (let i = 1; i < r.length; i++) if (r[i] < d) d = r[i];
    return d;
  }

  /**
   * Records a one-way delay sample (the peer's `timestamp_difference_microseconds`).
   *
   * @param sampleUs The sample, microseconds mod 2^32; 0 means "none" and is ignored.
   * @param nowMs The current time, milliseconds.
   */
  addDelaySample(sampleUs: number, nowMs: number): void {
    if (sampleUs === 0) return;
    const delay = this.#history.add(sampleUs, nowMs);
    const r = this.#recent;
    if (r.length < CURRENT_FILTER) r.push(delay);
    else {
      r[this.#recentAt] = delay;
      this.#recentAt = (this.#recentAt + 1) % CURRENT_FILTER;
    }
  }

  /**
   * Adjusts the window for bytes the peer acknowledged (BEP 29: `max_window += gain * off_target / target *
   * acked / in_flight`, with slow start until the delay reaches the target — the window then halves — or the
   * window its threshold).
   *
   * @param ackedBytes Payload bytes newly acknowledged by this ack.
   * @param inFlightBefore Bytes that were in flight before the ack.
   * @param limited True when the sender was held back by the window since the last ack (else the window only
   *   changes when it was nearly full, so an idle application does not inflate it).
   * @param rttUs The round trip of the newest acked packet, if known: a one-way delay cannot exceed it.
   */
  onAck(ackedBytes: number, inFlightBefore: number, limited = false, rttUs?: number): void {
    if (ackedBytes <= 0) return;
    let delay = this.queuingDelay;
    if (rttUs !== undefined && delay > rttUs) delay = rttUs;
    const target = this.#target;
    if (delay >= target && this.#slowStart) {
      // slow start overshot: the window doubled during the round trip it took the delay to show. Back to
      // half, where the queue was still short of the target, instead of shrinking by one gain per round trip
      // from twice too high (which takes minutes behind a deep modem buffer).
      this.#ssthresh = this.#cwnd / 2;
      this.#set(this.#ssthresh);
      this.#slowStart = false;
    }
    const windowFactor = ackedBytes / Math.max(inFlightBefore, ackedBytes);
    const delayFactor = (target - delay) / target;
    const linear = this.#gain * windowFactor * delayFactor;
    const saturated = limited || inFlightBefore + this.#mss > this.#cwnd;
    let gain = 0;
    if (saturated) {
      gain = linear;
      if (this.#slowStart) {
        if (this.#ssthresh > 0 && this.#cwnd + ackedBytes > this.#ssthresh) this.#slowStart = false;
        else gain = Math.max(ackedBytes, linear);
      }
    }
    this.#set(this.#cwnd + gain);
  }

  /** A packet was lost (three duplicate acks or a selective ack past it): the window halves. */
  onLoss(): void {
    this.#set(this.#cwnd / 2);
    this.#ssthresh = this.#cwnd;
    this.#slowStart = false;
  }

  /** The retransmission timer fired: the window drops to one packet and slow start begins again. */
  onTimeout(): void {
    this.#ssthresh = Math.max(this.#cwnd / 2, this.#mss);
    this.#set(this.#mss);
    this.#slowStart = true;
  }

  #set(w: number): void {
    this.#cwnd = Math.min(this.#max, Math.max(this.#mss, w));
  }
}

/** a < b for 32-bit wrapping values */
function wrapLess(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}
