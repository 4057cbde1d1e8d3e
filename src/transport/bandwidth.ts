/**
 * Bandwidth limits as token buckets: a connection asks for the bytes it just read (or is about to write) from
 * each bucket it belongs to — its torrent's and the session's — and waits while any of them is in debt. Buckets
 * refill continuously at their rate; a grant may take a bucket below zero (a 256 KiB write is not split), and the
 * next requests wait until the debt is repaid, so the average rate is exact and no byte is delayed twice.
 *
 * One timer for all waiters of a {@linkcode Bandwidth}, armed only while someone waits; waiters are served in
 * order, so no connection starves. A rate of 0 means unlimited; changing a rate takes effect at once.
 *
 * @module
 */

/** How long a bucket may save up unused tokens (its burst), in seconds of its rate. */
const BURST_SECONDS = 0.25;
/** How often waiting requests are looked at (ms). */
const GRANT_INTERVAL_MS = 20;

/** One rate limit. */
export class TokenBucket {
  #rate: number;
  #tokens = 0;
  #at: number;
  readonly #now: () => number;

  /**
   * Creates a {@linkcode TokenBucket}.
   *
   * @param rate Bytes per second; 0 = unlimited.
   * @param now The clock (ms).
   */
  constructor(rate: number, now: () => number = performance.now.bind(performance)) {
    this.#rate = rate;
    this.#now = now;
    this.#at = now();
  }

  /** Bytes per second; 0 = unlimited. */
  get rate(): number {
    return this.#rate;
  }

  /** Changes the rate (debt and savings are kept within the new burst). */
  set rate(rate: number) {
    this.#refill();
    this.#rate = Math.max(0, rate);
    if (this.#rate === 0) this.#tokens = 0;
    else this.#tokens = Math.min(this.#tokens, this.#rate * BURST_SECONDS);
  }

  /** True when a request may be granted now. */
  ready(): boolean {
    if (this.#rate === 0) return true;
    this.#refill();
    return this.#tokens > 0;
  }

  /** Takes `n` bytes (possibly into debt). */
  take(n: number): void {
    if (this.#rate === 0) return;
    this.#refill();
    this.#tokens -= n;
  }

  /** Milliseconds until the bucket is out of debt (0 when it is). */
  waitMs(): number {
    if (this.#rate === 0) return 0;
    this.#refill();
    return this.#tokens > 0 ? 0 : Math.ceil((-this.#tokens + 1) / this.#rate * 1000);
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = (now - this.#at) / 1000;
    this.#at = now;
    if (this.#rate > 0 && elapsed > 0) {
      this.#tokens = Math.min(this.#tokens + elapsed * this.#rate, this.#rate * BURST_SECONDS);
    }
  }
}

interface Waiter {
  buckets: readonly TokenBucket[];
  bytes: number;
  resolve(): void;
}

/** Grants bytes against token buckets, in order; one timer for every waiter. */
export class Bandwidth {
  readonly #waiting: Waiter[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Accounts for `bytes` against every bucket.
   *
   * @param buckets The buckets the connection belongs to (its torrent's, the session's).
   * @param bytes Bytes read or about to be written.
   * @returns Undefined when granted at once, else a promise that resolves when granted.
   */
  request(buckets: readonly TokenBucket[], bytes: number): Promise<void> | undefined {
    if (buckets.every((b) => b.rate === 0)) return undefined; // unlimited: never queued behind others
    if (this.#waiting.length === 0 && buckets.every((b) => b.ready())) {
      for (const b of buckets) b.take(bytes);
      return undefined;
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push({ buckets, bytes, resolve });
    this.#arm();
    return promise;
  }

  /** Requests waiting. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Grants everything waiting at once and stops the timer (closing). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiting.splice(0)) w.resolve();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#waiting.length === 0) return;
    let wait = GRANT_INTERVAL_MS;
    for (const b of this.#waiting[0].buckets) wait = Math.max(wait, Math.min(b.waitMs(), 1000));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#grant();
      this.#arm();
    }, wait);
  }

  #grant(): void {
    // in order; a waiter whose buckets are in debt holds up only those after it that share a bucket with it
    const blocked = new Set<TokenBucket>();
    let kept = 0;
    for (const w of this.#waiting) {
      if (w.buckets.some((b) => blocked.has(b) || !b.ready())) {
        for (const b of w.buckets) blocked.add(b);
        this.#waiting[kept++] = w;
        continue;
      }
      for (const b of w.buckets) b.take(w.bytes);
      w.resolve();
    }
    this.#waiting.length = kept;
  }
}

/**
 * What a connection is limited by: the buckets its downloads and uploads count against, and the
 * {@linkcode Bandwidth} that arbitrates them.
 */
export interface RateGate {
  /** Bytes were read: resolves (or returns undefined) when the next read may start. */
  down(bytes: number): Promise<void> | undefined;
  /** Bytes are about to be written: resolves (or returns undefined) when they may go. */
  up(bytes: number): Promise<void> | undefined;
  /** True while an upload limit applies (writes are then sliced so the rate stays smooth). */
  readonly upLimited: boolean;
}

/**
 * A {@linkcode RateGate} over bucket lists, each direction with its own arbiter (a download waiting never holds up
 * an upload, nor the reverse).
 *
 * @param arbiters One {@linkcode Bandwidth} per direction.
 * @param down Buckets for received bytes.
 * @param up Buckets for sent bytes.
 */
export function rateGate(
  arbiters: { down: Bandwidth; up: Bandwidth },
  down: readonly TokenBucket[],
  up: readonly TokenBucket[],
): RateGate {
  return {
    down: (n) => arbiters.down.request(down, n),
    up: (n) => arbiters.up.request(up, n),
    get upLimited() {
      return up.some((b) => b.rate > 0);
    },
  };
}
