/**
 * A session's queue: which torrents run, in queue order — those the user started, up to `activeDownloads`
 * incomplete ones and `activeSeeds` complete ones; the rest wait ("queued"), stopped ones are off. Changes that
 * come together are decided once, and decisions are applied one after another.
 *
 * @module
 */

import { asError } from "../_errors.ts";

/** How a torrent's engine is driven, as the queue decides. */
export type QueueState = "running" | "queued" | "off";

/** A torrent as the queue sees it. */
export interface QueuedTorrent {
  /** Its engine (undefined before it is made). */
  readonly engine: { readonly complete: boolean } | undefined;
  /** The engine has loaded what is on disk: until then nothing is decided for it. */
  readonly loaded: boolean;
  /** What the user asked for. */
  readonly desired: "started" | "paused" | "stopped";
  /** How it is driven now. */
  readonly run: QueueState;
  /** Drives it as decided (resolves once applied). */
  drive(run: QueueState): Promise<void>;
}

/** What a {@linkcode TorrentQueue} needs from its session. */
export interface TorrentQueueOptions<T extends QueuedTorrent> {
  /** The torrents, in queue order. */
  torrents: () => readonly T[];
  /** The most torrents downloading and seeding at once (0 = no limit). */
  limits: () => { readonly activeDownloads: number; readonly activeSeeds: number };
  /** Whether the session is closed (nothing is decided then). */
  closed: () => boolean;
  /** A decision failed. */
  onError: (error: Error) => void;
}

/** Decides which of a session's torrents run. */
export class TorrentQueue<T extends QueuedTorrent> {
  readonly #opts: TorrentQueueOptions<T>;
  #pending: Promise<void> | undefined;
  #running: Promise<void> = Promise.resolve();

  /**
   * Creates a {@linkcode TorrentQueue}.
   *
   * @param options The session's torrents, limits and state.
   */
  constructor(options: TorrentQueueOptions<T>) {
    this.#opts = options;
  }

  /**
   * Re-decides soon which torrents run (several changes in one task are decided once, decisions one after
   * another); resolves once the decision is applied.
   */
  requeue(): Promise<void> {
    if (this.#opts.closed()) return Promise.resolve();
    this.#pending ??= this.#running.then(() => {
      this.#pending = undefined;
      return this.#decide();
    }).catch((err) => this.#opts.onError(asError(err)));
    this.#running = this.#pending;
    return this.#pending;
  }

  /**
   * Which torrents run: in queue order, those the user started, up to `activeDownloads` incomplete ones and
   * `activeSeeds` complete ones; the rest wait ("queued"). Paused torrents run (they keep their connections) and
   * count as active. Stopped ones are off.
   */
  async #decide(): Promise<void> {
    const l = this.#opts.limits();
    let downloads = 0, seeds = 0;
    const plan: [T, QueueState][] = [];
    for (const t of this.#opts.torrents()) {
      if (!t.engine || !t.loaded) continue; // not loaded yet: started only once it knows what it has
      if (t.desired === "stopped") {
        plan.push([t, "off"]);
        continue;
      }
      const complete = t.engine.complete;
      const limit = complete ? l.activeSeeds : l.activeDownloads;
      const count = complete ? seeds : downloads;
      if (limit > 0 && count >= limit) {
        plan.push([t, "queued"]);
        continue;
      }
      if (complete) seeds++;
      else downloads++;
      plan.push([t, "running"]);
    }
    await Promise.all(
      plan.filter(([t, r]) => t.run !== r || r === "running").map(([t, r]) => t.drive(r)),
    );
  }
}
