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
import type { UdpSocket } from "../udp.ts";
import { type Family, hostFamilies } from "./families.ts";

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
  /**
   * We accept connections over IPv4 and IPv6: a tracker whose host has addresses of both families gets one
   * announce over each (BEP 7), so that it can hand out both of our addresses. Checked before each round.
   * @default {() => false}
   */
  dualStack?: () => boolean;
  /** The address families of a tracker's host. @default {hostFamilies (the system's resolver)} */
  families?: (host: string) => Promise<(4 | 6)[]>;
  /**
   * The socket UDP trackers (BEP 15) are asked from, by address family — a session's peer port, shared with uTP
   * and the DHT, so that trackers and NATs see one port; undefined for a family: a fresh socket per request.
   * Not used with `announce`.
   */
  udpSocket?: (family: 4 | 6) => UdpSocket | undefined;
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
  /** Trackers that got `started`, as `url` or, for an announce over one family, `url family`. */
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
    const udpSocket = options.udpSocket;
    this.#announce = options.announce ??
      (udpSocket
        ? (url, req) => {
          if (!url.startsWith("udp:")) return httpAnnounce(url, req);
          const socket = udpSocket(req.family ?? urlFamily(url));
          return announceUdp(url, req, socket ? { socket } : {});
        }
        : announceAny);
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
    const keys = [...this.#started];
    this.#started.clear();
    await Promise.all(
      keys.map((key) => {
        const [url, family] = splitStartedKey(key);
        return this.#announce(url, {
          ...this.#request("stopped", url),
          ...(family ? { family } : {}),
          timeoutMs: 5000,
        }).catch(() => {});
      }),
    );
  }

  /** Same as {@linkcode TrackerManager.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The families to announce over: both when we listen on both and the tracker's host has both. */
  async #familiesOf(url: string): Promise<(Family | undefined)[]> {
    if (!this.#o.dualStack?.()) return [undefined];
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    } catch {
      return [undefined];
    }
    const families: Family[] = await (this.#o.families ?? hostFamilies)(host).catch(() => []);
    return families.includes(4) && families.includes(6) ? [4, 6] : [undefined];
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
        // one announce, or one per family (BEP 7) when we listen on both and the tracker has both
        const families = await this.#familiesOf(url);
        const events = families.map((family) => {
          const key = startedKey(url, family);
          // a tracker that never got `started` gets it now, whatever the round was for
          return event === "completed" && !this.#started.has(key) ? "started" : event ??
            (this.#started.has(key) ? undefined : "started");
        });
        const settled = await Promise.allSettled(families.map((family, k) =>
          this.#announce(url, {
            ...this.#request(events[k], url),
            ...(family ? { family } : {}),
            signal: this.#abort.signal,
          })
        ));
        const answered = settled.flatMap((r, k) =>
          r.status === "fulfilled" ? [{ res: r.value, ev: events[k], family: families[k] }] : []
        );
        const failed = settled.flatMap((r, k) =>
          r.status === "rejected" ? [{ err: r.reason as unknown, family: families[k] }] : []
        );
        if (answered.length === 0) {
          if (!this.#running) return;
          tier.failures++;
          const err = failed[0].err;
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
        // the other family answered: the tracker works, this is only worth a warning
        for (const f of failed) {
          if (!this.#running) break;
          const message = `IPv${f.family} announce failed: ${
            f.err instanceof Error ? f.err.message : String(f.err)
          }`;
          this.#o.onEvent?.({ type: "warning", url, message });
        }
        const res = mergeResponses(answered.map((a) => a.res));
        if (!this.#running && answered[0].ev !== "stopped") return;
        for (const a of answered) {
          if (a.ev === "started") this.#started.add(startedKey(url, a.family));
        }
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

/** The family a URL's host names literally (IPv6 in brackets), else 4: the family a name is looked up in. */
function urlFamily(url: string): 4 | 6 {
  try {
    return new URL(url).hostname.startsWith("[") ? 6 : 4;
  } catch {
    return 4;
  }
}

/** The key of a tracker that got `started` (over one family, or the system's choice). */
function startedKey(url: string, family: Family | undefined): string {
  return family ? `${url} ${family}` : url;
}

function splitStartedKey(key: string): [string, Family | undefined] {
  const m = / ([46])$/.exec(key);
  return m ? [key.slice(0, -2), Number(m[1]) as Family] : [key, undefined];
}

/** One answer from the answers over each family: the first one's counts and timing, every peer. */
function mergeResponses(all: AnnounceResponse[]): AnnounceResponse {
  if (all.length === 1) return all[0];
  const first = all[0];
  return {
    ...first,
    complete: Math.max(...all.map((r) => r.complete ?? 0)),
    incomplete: Math.max(...all.map((r) => r.incomplete ?? 0)),
    peers: all.flatMap((r) => r.peers).slice(0, 1000),
    peers6: all.flatMap((r) => r.peers6).slice(0, 1000),
  };
}

function shuffle<T>(list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}
