/**
 * One torrent's trackers over its life: the tiers (BEP 12) started with the torrent and stopped with it
 * (`started` / `stopped`), `completed` once, and asking again early when the torrent starves — no peer to
 * download from and nothing left to dial — backing off 10 s, 20 s, 40 s … up to 5 minutes (the tracker's own
 * minimum interval is still respected).
 *
 * @module
 */

import type { PeerAddress } from "../tracker/compact.ts";
import { TrackerManager, type TrackerTierView } from "../tracker/tiers.ts";
import type { UdpSocket } from "../udp.ts";
import type { TorrentEvents } from "./types.ts";

/** Options for {@linkcode Announcer}. */
export interface AnnouncerOptions {
  /** Tracker tiers (BEP 12). */
  announceList: string[][];
  /** The info hash trackers know the torrent by. */
  infoHash: Uint8Array;
  /**
   * A second info hash to announce under as well: a hybrid torrent's truncated v2 hash (BEP 52), so that v2-only
   * peers find us too. Each is announced as its own torrent; {@linkcode Announcer.trackers} shows the first's.
   */
  alsoInfoHash?: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Our listening port. */
  port: () => number;
  /** Bytes up, down and left, for each announce. */
  stats: () => { uploaded: number; downloaded: number; left: number };
  /** Peers a tracker returned. */
  onPeers: (peers: PeerAddress[]) => void;
  /** A tracker answered, failed or warned. */
  onEvent: (event: TorrentEvents["tracker"]) => void;
  /** The clock (ms). */
  now: () => number;
  /** We accept IPv4 and IPv6 connections: announce over both families where a tracker has both (BEP 7). */
  dualStack?: () => boolean;
  /** The socket UDP trackers are asked from, by family (the owner's peer port); a fresh one per request otherwise. */
  udpSocket?: (family: 4 | 6) => UdpSocket | undefined;
}

/** Talks to one torrent's trackers. */
export class Announcer {
  readonly #opts: AnnouncerOptions;
  #trackers: TrackerManager | undefined;
  #also: TrackerManager | undefined;
  #backoff = 5_000;
  #next: number;

  /**
   * Creates an {@linkcode Announcer}; nothing is sent before {@linkcode Announcer.start}.
   *
   * @param options The torrent's trackers and what to tell them.
   */
  constructor(options: AnnouncerOptions) {
    this.#opts = options;
    this.#next = options.now() + 10_000;
  }

  /** Announces `started` and keeps announcing; false when there is no tracker to talk to. */
  start(): boolean {
    if (this.#trackers || this.#opts.announceList.length === 0) return this.#trackers !== undefined;
    this.#trackers = this.#manager(this.#opts.infoHash);
    if (this.#opts.alsoInfoHash) this.#also = this.#manager(this.#opts.alsoInfoHash);
    this.#trackers.start();
    this.#also?.start();
    return true;
  }

  #manager(infoHash: Uint8Array): TrackerManager {
    const o = this.#opts;
    return new TrackerManager({
      announceList: o.announceList,
      infoHash,
      peerId: o.peerId,
      port: o.port,
      stats: o.stats,
      onPeers: o.onPeers,
      ...(o.dualStack ? { dualStack: o.dualStack } : {}),
      ...(o.udpSocket ? { udpSocket: o.udpSocket } : {}),
      onEvent: (e) =>
        o.onEvent({
          type: e.type,
          url: e.url,
          ...(e.peers !== undefined ? { peers: e.peers } : {}),
          ...(e.error ? { message: e.error.message } : e.message ? { message: e.message } : {}),
        }),
    });
  }

  /** Announces `stopped` (bounded) and stops. */
  async stop(): Promise<void> {
    const trackers = [this.#trackers, this.#also];
    this.#trackers = this.#also = undefined;
    await Promise.all(trackers.map((t) => t?.stop()));
  }

  /** Announces `completed` (once per start, whatever is called). */
  completed(): void {
    this.#trackers?.completed();
    this.#also?.completed();
  }

  /** Asks the trackers again now (as soon as their minimum interval allows): a user's "reannounce". */
  announceNow(): void {
    this.#trackers?.announceNow();
    this.#also?.announceNow();
  }

  /** The seed's `trackers()`: tiers with counts, failures and the peers each returned. */
  trackers(): TrackerTierView[] {
    if (this.#trackers) return this.#trackers.trackers();
    return this.#opts.announceList.map((urls) => ({
      urls: [...urls],
      complete: 0,
      incomplete: 0,
      failures: 0,
      peers: new Uint8Array(0),
      peers6: new Uint8Array(0),
    }));
  }

  /**
   * Asks the trackers again early while the torrent starves.
   *
   * @param now The current time (ms).
   * @param starving True when there is no peer to download from and nothing left to dial.
   */
  tick(now: number, starving: boolean): void {
    if (!starving) {
      this.#backoff = 5_000;
      this.#next = now + 10_000;
    } else if (now >= this.#next) {
      this.announceNow();
      this.#backoff = Math.min(300_000, this.#backoff * 2);
      this.#next = now + this.#backoff;
    }
  }
}
