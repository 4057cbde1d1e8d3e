/**
 * What Transmission's clients ask about torrents that the engine does not keep: when a torrent last moved data,
 * when it was started, how long it has been downloading, how many bytes failed their hash check, and which
 * torrents changed or were removed lately (`recently-active`). Learnt from the
 * session's and the torrents' events and from the session's once-a-second `stats`; kept in memory (a restart
 * starts these counts again, except what the session itself saves).
 *
 * @module
 */

import type { Session } from "../session/session.ts";
import type { SessionTorrent } from "../session/session_torrent.ts";

/** How long a torrent counts as recently active after it changed, and a removal is reported (seconds). */
export const RECENT_SECONDS = 60;

/** What is kept per torrent. */
export interface TorrentActivity {
  /** Last time data moved or the torrent changed (s). */
  activityDate: number;
  /** Last time it started running (s; 0 = not since the daemon started). */
  startDate: number;
  /** Seconds spent downloading since the daemon started. */
  secondsDownloading: number;
  /** Bytes of pieces that failed their hash check. */
  corruptEver: number;
  /** Last change of anything shown (s): for `recently-active`. */
  changed: number;
}

/** Follows a session's torrents; see the module documentation. */
export class ActivityLog implements Disposable {
  #session: Session | undefined;
  readonly #now: () => number;
  readonly #byTorrent = new WeakMap<SessionTorrent, TorrentActivity>();
  /** Torrent id → when it was removed (s). */
  readonly #removed = new Map<number, number>();
  readonly #onStats = () => this.#tick();
  readonly #onRemoved = (e: Event) => {
    const t = (e as CustomEvent<{ torrent: SessionTorrent }>).detail.torrent;
    this.#removed.set(t.id, this.#seconds());
  };
  readonly #onAdded = (e: Event) => {
    this.of((e as CustomEvent<{ torrent: SessionTorrent }>).detail.torrent);
  };

  /**
   * Creates an {@linkcode ActivityLog}; {@linkcode ActivityLog.follow} gives it a session.
   *
   * @param now The clock (ms).
   */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /**
   * Follows this session from now on (and no longer the previous one).
   *
   * @param session The session.
   */
  follow(session: Session): void {
    this[Symbol.dispose]();
    this.#session = session;
    session.addEventListener("stats", this.#onStats);
    session.addEventListener("removed", this.#onRemoved);
    session.addEventListener("added", this.#onAdded);
    for (const t of session.torrents) this.of(t);
  }

  /** Stops following the session. */
  [Symbol.dispose](): void {
    this.#session?.removeEventListener("stats", this.#onStats);
    this.#session?.removeEventListener("removed", this.#onRemoved);
    this.#session?.removeEventListener("added", this.#onAdded);
    this.#session = undefined;
  }

  /**
   * What is known of a torrent (its events are followed from the first call on).
   *
   * @param t The torrent.
   * @returns Its record.
   */
  of(t: SessionTorrent): TorrentActivity {
    let a = this.#byTorrent.get(t);
    if (a) return a;
    const now = this.#seconds();
    a = {
      activityDate: 0,
      startDate: t.state === "active" ? now : 0,
      secondsDownloading: 0,
      corruptEver: 0,
      changed: now,
    };
    this.#byTorrent.set(t, a);
    const rec = a;
    const touch = () => rec.changed = this.#seconds();
    t.addEventListener("state", (e) => {
      touch();
      if (e.detail.state === "active") rec.startDate = this.#seconds();
    });
    t.addEventListener("complete", touch);
    t.addEventListener("error", touch);
    t.addEventListener("metadata", touch);
    t.addEventListener("hashfail", () => {
      rec.corruptEver += t.hasMetadata ? t.pieceLength : 0;
      touch();
    });
    t.addEventListener("tracker", touch);
    return a;
  }

  /**
   * Marks a torrent changed now (an RPC call changed it).
   *
   * @param t The torrent.
   */
  touch(t: SessionTorrent): void {
    this.of(t).changed = this.#seconds();
  }

  /**
   * Whether a torrent changed or moved data in the last {@linkcode RECENT_SECONDS}.
   *
   * @param t The torrent.
   */
  recentlyActive(t: SessionTorrent): boolean {
    const a = this.of(t);
    const since = this.#seconds() - RECENT_SECONDS;
    return a.changed >= since || a.activityDate >= since || t.checking;
  }

  /** Ids of the torrents removed in the last {@linkcode RECENT_SECONDS}. */
  recentlyRemoved(): number[] {
    const since = this.#seconds() - RECENT_SECONDS;
    const out: number[] = [];
    for (const [id, at] of this.#removed) {
      if (at < since) this.#removed.delete(id);
      else out.push(id);
    }
    return out;
  }

  #seconds(): number {
    return Math.floor(this.#now() / 1000);
  }

  /** Once a second (the session's `stats`): activity dates and downloading time. */
  #tick(): void {
    const now = this.#seconds();
    for (const t of this.#session?.torrents ?? []) {
      const a = this.of(t);
      if (t.downloadRate >= 1 || t.uploadRate >= 1) a.activityDate = now;
      if (t.run === "running" && t.state === "active" && t.hasMetadata && t.engine && !t.complete) {
        a.secondsDownloading++;
      }
    }
  }
}
