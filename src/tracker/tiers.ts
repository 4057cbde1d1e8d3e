/**
 * Tracker tiers (BEP 12): each tier shuffled once, trackers tried in order, a responding tracker moved to the
 * front of its tier, the next tier tried when a whole tier fails; `started` once per tracker, `completed` once,
 * `stopped` at the end; regular announces at the tracker's interval, exponential backoff after failures.
 *
 * @module
 */

import { encodeCompactPeers, type PeerAddress } from "./compact.ts";
import {
  announce as httpAnnounce,
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
} from "./http.ts";
import { announceUdp } from "./udp.ts";

/** Announces over HTTP(S) or UDP (BEP 15), by the URL's scheme. */
export function announceAny(url: string, req: AnnounceRequest): Promise<AnnounceResponse> {
  return url.startsWith("udp:") ? announceUdp(url, req) : httpAnnounce(url, req);
}

/** One tier as the seed's `trackers()` shows it. */
export interface TrackerTierView {
  /** The tier's URLs in their current order. */
  urls: string[];
  /** Seeds, from the most recent announce. */
  complete: number;
  /** Leechers, from the most recent announce. */
  incomplete: number;
  /** Failed announces in a row (reset on success). */
  failures: number;
  /** Compact IPv4 peers (BEP 23) from the most recent announce. */
  peers: Uint8Array;
  /** Compact IPv6 peers (BEP 7) from the most recent announce. */
  peers6: Uint8Array;
  /** The last answer of each of the tier's trackers that was asked, in the tier's order. */
  announces?: TrackerAnnounceResult[];
  /** When the next regular announce is due (ms since the epoch), while announcing. */
  nextAnnounce?: number;
}

/** How one tracker answered its last announce. */
export interface TrackerAnnounceResult {
  /** The tracker. */
  url: string;
  /** When the answer came (or the attempt failed), ms since the epoch. */
  at: number;
  /** It answered with peers. */
  ok: boolean;
  /** Peers it returned (when `ok`). */
  peers: number;
  /** Why it failed, or its warning. */
  message?: string;
  /** The tracker's own `failure reason`, when it refused the announce. */
  failureReason?: string;
}

/** What the manager reports. */
export interface TrackerEvent {
  /** An announce succeeded, failed, or came with a warning. */
  type: "announce" | "error" | "warning";
  /** Which tracker. */
  url: string;
  /** Peers returned (on announce). */
  peers?: number;
  /** The failure (on error). */
  error?: TrackerError;
  /** The warning (on warning). */
  message?: string;
}

/** Options for {@linkcode TrackerManager}. */
export interface TrackerManagerOptions {
  /** The tiers of announce URLs. */
  announceList: string[][];
  /** The torrent's info hash. */
  infoHash: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Our listening port. */
  port: number | (() => number);
  /** Current transfer totals. */
  stats: () => { uploaded: number; downloaded: number; left: number };
  /** Receives the peers each announce returns. */
  onPeers: (peers: PeerAddress[], source: string) => void;
  /** Receives announce results and errors. */
  onEvent?: (e: TrackerEvent) => void;
  /** The announce function (injectable for tests and other transports). @default {announceAny (HTTP or UDP)} */
  announce?: (url: string, req: AnnounceRequest) => Promise<AnnounceResponse>;
  /** Peers to ask for. @default {80} */
  numwant?: number;
  /** Random source for the tier shuffle. */
  random?: () => number;
  /** Least seconds between regular announces, whatever the tracker says. @default {30} */
  minIntervalFloorSec?: number;
  /** First retry delay after a failed round, seconds; doubles up to 30 minutes. @default {15} */
  retryBaseSec?: number;
  /** Per-request timeout. @default {15000} */
  timeoutMs?: number;
}

interface Tier {
  urls: string[];
  complete: number;
  incomplete: number;
  failures: number;
  peers: Uint8Array;
  peers6: Uint8Array;
  results: Map<string, TrackerAnnounceResult>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Announces one torrent to its trackers. */
export class TrackerManager implements AsyncDisposable {
  readonly #o: TrackerManagerOptions;
  readonly #tiers: Tier[];
  readonly #announce: (url: string, req: AnnounceRequest) => Promise<AnnounceResponse>;
  readonly #started = new Set<string>();
  readonly #trackerIds = new Map<string, string>();
  readonly #key: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #running = false;
  #completedSent = false;
  #roundFailures = 0;
  #lastAnnounce = 0;
  #nextAt = 0;
  #minInterval = 0;
  #abort = new AbortController();

  /**
   * Creates a {@linkcode TrackerManager}.
   *
   * @param options Tiers, identity, stats and callbacks.
   */
  constructor(options: TrackerManagerOptions) {
    this.#o = options;
    this.#announce = options.announce ?? announceAny;
    const random = options.random ?? Math.random;
    this.#tiers = options.announceList.filter((t) => t.length > 0).map((urls) => ({
      urls: shuffle([...new Set(urls)], random),
      complete: 0,
      incomplete: 0,
      failures: 0,
      peers: new Uint8Array(0),
      peers6: new Uint8Array(0),
      results: new Map(),
    }));
    this.#key = Array.from(
      crypto.getRandomValues(new Uint8Array(4)),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
  }

  /** The seed's `trackers()` view, one entry per tier. */
  trackers(): TrackerTierView[] {
    return this.#tiers.map(({ results, ...t }) => ({
      ...t,
      urls: [...t.urls],
      announces: t.urls.flatMap((u) => results.get(u) ?? []),
      ...(this.#running && this.#nextAt ? { nextAnnounce: this.#nextAt } : {}),
    }));
  }

  /** Starts announcing: `started` now, then regular announces. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#queue(undefined);
  }

  /** Announces `completed` once (only after a successful `started`). */
  completed(): void {
    if (this.#completedSent || !this.#running) return;
    this.#completedSent = true;
    this.#queue("completed");
  }

  /** Announces now (respecting the tracker's minimum interval), e.g. when more peers are needed. */
  announceNow(): void {
    if (!this.#running) return;
    const wait = this.#lastAnnounce + this.#minInterval * 1000 - Date.now();
    if (wait <= 0) this.#queue(undefined);
  }

  /** Sends `stopped` to every tracker that was started (at most 5 s), then stops all timers. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
    await this.#chain.catch(() => {});
    const urls = [...this.#started];
    this.#started.clear();
    await Promise.all(
      urls.map((url) =>
        this.#announce(url, { ...this.#request("stopped", url), timeoutMs: 5000 }).catch(() => {})
      ),
    );
  }

  /** Same as {@linkcode TrackerManager.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #request(event: AnnounceRequest["event"], url: string): AnnounceRequest {
    const s = this.#o.stats();
    const port = typeof this.#o.port === "function" ? this.#o.port() : this.#o.port;
    const trackerId = this.#trackerIds.get(url);
    return {
      infoHash: this.#o.infoHash,
      peerId: this.#o.peerId,
      port,
      uploaded: s.uploaded,
      downloaded: s.downloaded,
      left: s.left,
      numwant: event === "stopped" ? 0 : this.#o.numwant ?? 80,
      key: this.#key,
      ...(event ? { event } : {}),
      ...(trackerId ? { trackerId } : {}),
      timeoutMs: this.#o.timeoutMs ?? 15_000,
    };
  }

  #queue(event: AnnounceRequest["event"]): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#chain = this.#chain.then(() => this.#round(event)).catch(() => {});
  }

  /** One announce round: the first tracker that answers, in tier order. */
  async #round(event: AnnounceRequest["event"]): Promise<void> {
    if (!this.#running) return;
    let interval: number | undefined;
    outer:
    for (const tier of this.#tiers) {
      for (let i = 0; i < tier.urls.length; i++) {
        if (!this.#running) return;
        const url = tier.urls[i];
        // a tracker that never got `started` gets it now, whatever the round was for
        const ev = event === "completed" && !this.#started.has(url) ? "started" : event ??
          (this.#started.has(url) ? undefined : "started");
        let res: AnnounceResponse;
        try {
          res = await this.#announce(url, {
            ...this.#request(ev, url),
            signal: this.#abort.signal,
          });
        } catch (err) {
          if (!this.#running) return;
          tier.failures++;
          const error = err instanceof TrackerError
            ? err
            : new TrackerError(url, String(err), { cause: err });
          tier.results.set(url, {
            url,
            at: Date.now(),
            ok: false,
            peers: 0,
            message: error.message,
            ...(error.failureReason !== undefined ? { failureReason: error.failureReason } : {}),
          });
          this.#o.onEvent?.({ type: "error", url, error });
          continue;
        }
        if (!this.#running && ev !== "stopped") return;
        if (ev === "started") this.#started.add(url);
        tier.failures = 0;
        tier.complete = res.complete ?? 0;
        tier.incomplete = res.incomplete ?? 0;
        tier.peers = encodeCompactPeers(res.peers, 4);
        tier.peers6 = encodeCompactPeers(res.peers6, 6);
        if (res.trackerId) this.#trackerIds.set(url, res.trackerId);
        // BEP 12: a tracker that answers moves to the front of its tier
        if (i > 0) {
          tier.urls.splice(i, 1);
          tier.urls.unshift(url);
        }
        tier.results.set(url, {
          url,
          at: Date.now(),
          ok: true,
          peers: res.peers.length + res.peers6.length,
          ...(res.warning ? { message: res.warning } : {}),
        });
        if (res.warning) this.#o.onEvent?.({ type: "warning", url, message: res.warning });
        this.#o.onEvent?.({ type: "announce", url, peers: res.peers.length + res.peers6.length });
        const all = [...res.peers, ...res.peers6];
        if (all.length > 0) this.#o.onPeers(all, url);
        interval = res.interval;
        this.#minInterval = res.minInterval ?? 0;
        break outer;
      }
    }
    this.#lastAnnounce = Date.now();
    if (!this.#running) return;
    let delaySec: number;
    if (interval !== undefined) {
      this.#roundFailures = 0;
      delaySec = Math.max(interval, this.#minInterval, this.#o.minIntervalFloorSec ?? 30);
    } else {
      this.#roundFailures++;
      const base = this.#o.retryBaseSec ?? 15;
      delaySec = Math.min(1800, base * 2 ** Math.min(this.#roundFailures - 1, 10));
    }
    // an event that failed everywhere is retried with the next round
    const retryEvent = interval === undefined && event === "completed" ? "completed" : undefined;
    const delay = Math.min(MAX_TIMER_MS, delaySec * 1000);
    this.#nextAt = Date.now() + delay;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#queue(retryEvent);
    }, delay);
  }
}

function shuffle<T>(list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}
