/**
 * Keeping the state directory's records in step with a session (`state.ts` reads and writes the files): torrents
 * that changed are saved on the session's next tick, writes nobody awaits are tracked so that closing waits for
 * them, and saved torrents are restored a few at a time with the options they were saved with.
 *
 * @module
 */

import { resolve } from "node:path";
import { SessionStore, type TorrentRecord } from "./state.ts";
import type { SessionTorrent, TorrentAddOptions, TorrentSource } from "./session_torrent.ts";

/** Options for {@linkcode StateRecords}. */
export interface StateRecordsOptions {
  /** The state directory; without one nothing is saved or restored. */
  stateDir?: string;
  /** A torrent's place in the session's queue (saved with it). */
  position(torrent: SessionTorrent): number;
  /** True while the torrent is in the session (a removed or relocated one is not saved again). */
  current(torrent: SessionTorrent): boolean;
  /** A write nobody awaits failed. */
  onError(error: unknown, torrent?: SessionTorrent): void;
}

/** A session's records in its state directory: what changed, the writes in flight, and restoring. */
export class StateRecords {
  /** The state directory's files, when the session has one. */
  readonly store: SessionStore | undefined;
  readonly #opts: StateRecordsOptions;
  /** Torrents to save on the next tick. */
  readonly #dirty = new Set<SessionTorrent>();
  /** Writes that nobody awaits. */
  readonly #writes = new Set<Promise<void>>();

  /**
   * Creates a {@linkcode StateRecords}.
   *
   * @param options The state directory and what the session tells of its torrents.
   */
  constructor(options: StateRecordsOptions) {
    this.#opts = options;
    this.store = options.stateDir ? new SessionStore(resolve(options.stateDir)) : undefined;
  }

  /**
   * A torrent changed: its record is saved on the next {@linkcode StateRecords.saveChanged}.
   *
   * @param torrent The torrent.
   */
  changed(torrent: SessionTorrent): void {
    this.#dirty.add(torrent);
  }

  /** Saves the torrents that changed and are still in the session (the session's tick calls it). */
  saveChanged(): void {
    if (this.#dirty.size > 0 && this.store) {
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      for (const t of dirty) {
        if (this.#opts.current(t)) {
          this.save(t).catch((err) => this.#opts.onError(err, t));
        }
      }
    }
  }

  /**
   * Saves a torrent's record (and its metadata once).
   *
   * @param torrent The torrent.
   */
  async save(torrent: SessionTorrent): Promise<void> {
    if (!this.store) return;
    await this.#writing(this.store.saveTorrent(torrent, this.#opts.position(torrent)));
  }

  /**
   * Saves the session's own record.
   *
   * @param nextId The next torrent id.
   * @param limits The session's limits.
   */
  async saveSession(nextId: number, limits: object): Promise<void> {
    await this.store?.saveSession(nextId, limits);
  }

  /**
   * Saves the session's own record in the background (errors go to `onError`; closing waits for it).
   *
   * @param nextId The next torrent id.
   * @param limits The session's limits.
   */
  saveSessionLater(nextId: number, limits: object): void {
    if (this.store) {
      this.#writing(this.store.saveSession(nextId, limits)).catch((err) => this.#opts.onError(err));
    }
  }

  /**
   * Forgets a torrent: its record, metadata and resume data.
   *
   * @param infoHashHex The torrent's info hash (hex).
   */
  async remove(infoHashHex: string): Promise<void> {
    await this.store?.removeTorrent(infoHashHex);
  }

  /** Waits for the writes in flight (started by the tick or by a change of limits). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#writes]);
  }

  /**
   * Restores every saved torrent, in queue order, a few at a time (each reads its metadata and resume data).
   *
   * @param restore Restores one record (a failure goes to `onFailure`).
   * @param onFailure One record could not be restored.
   * @returns Each saved torrent's place in the queue, by info hash (hex).
   */
  async restoreAll(
    restore: (record: TorrentRecord) => Promise<void>,
    onFailure: (record: TorrentRecord, error: unknown) => void,
  ): Promise<Map<string, number>> {
    const records = await this.store?.loadTorrents() ?? [];
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(16, records.length) }, async () => {
      while (next < records.length) {
        const r = records[next++];
        await restore(r).catch((err) => onFailure(r, err));
      }
    }));
    return new Map(records.map((r, i) => [r.infoHash, i]));
  }

  /** A write to the state directory that nobody awaits: `settle()` waits for it (no file left open behind). */
  #writing(write: Promise<void>): Promise<void> {
    this.#writes.add(write);
    const done = () => void this.#writes.delete(write);
    write.then(done, done);
    return write;
  }
}

/**
 * Where a saved torrent's metadata comes from: its saved .torrent file, or its magnet link.
 *
 * @param r The record.
 * @returns The source to load the torrent from.
 */
export async function recordSource(r: TorrentRecord): Promise<TorrentSource> {
  return r.torrentPath ? { torrent: await Deno.readFile(r.torrentPath) } : { magnet: r.magnet! };
}

/**
 * The options a saved torrent was added with.
 *
 * @param r The record.
 * @returns Options for a new `SessionTorrent`.
 */
export function recordOptions(r: TorrentRecord): TorrentAddOptions {
  return {
    basedir: r.basedir,
    state: r.state,
    ...(r.priorities ? { priorities: r.priorities } : {}),
    ...(r.maxPeers ? { maxPeers: r.maxPeers } : {}),
    ...(r.downloadLimit ? { downloadLimit: r.downloadLimit } : {}),
    ...(r.uploadLimit ? { uploadLimit: r.uploadLimit } : {}),
    ...(r.ratioLimit !== undefined ? { ratioLimit: r.ratioLimit } : {}),
    ...(r.seedTimeLimit !== undefined ? { seedTimeLimit: r.seedTimeLimit } : {}),
    ...(r.idleSeedingLimit !== undefined ? { idleSeedingLimit: r.idleSeedingLimit } : {}),
    ...(r.paths ? { paths: r.paths } : {}),
    ...(r.trackers === false ? { trackers: false } : {}),
    ...(r.webSeeds === false ? { webSeeds: false } : {}),
    ...(r.extraWebSeeds?.length ? { extraWebSeeds: r.extraWebSeeds } : {}),
  };
}
