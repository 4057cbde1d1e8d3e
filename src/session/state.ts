/**
 * A session's state directory: everything a restarted session needs to carry on, written atomically.
 *
 * ```
 * <stateDir>/session.json            next torrent id, limits
 * <stateDir>/dht.json                the DHT node's id and routing table
 * <stateDir>/torrents/<hash>.torrent the metadata (absent while a magnet link's is being fetched)
 * <stateDir>/torrents/<hash>.json    id, magnet link, directory, state, priorities, limits, queue place, totals
 * <stateDir>/resume/<hash>.resume    resume data (+ .journal): verified pieces
 * ```
 *
 * Files are keyed by the info hash the wire uses (lower-case hex).
 *
 * @module
 */

import { join } from "node:path";
import { asError } from "../_errors.ts";
import type { DhtState } from "../dht/dht.ts";
import { formatMagnet } from "../magnet.ts";
import { denoBackend } from "../storage/storage.ts";
import type { InitialState, SessionTorrent } from "./session_torrent.ts";

/** What is kept of one torrent. */
export interface TorrentRecord {
  /** Record format. */
  version: 1;
  /** The session's number for it. */
  id: number;
  /** Info hash (hex). */
  infoHash: string;
  /** The saved metadata file, when the metadata is known. */
  torrentPath?: string;
  /** The magnet link, while the metadata is not known. */
  magnet?: string;
  /** Download directory. */
  basedir: string;
  /** What the user asked for. */
  state: InitialState;
  /** Per-file priorities. */
  priorities?: number[];
  /** Place in the queue. */
  queuePosition: number;
  /** Own limits, bytes/s. */
  downloadLimit?: number;
  /** Own upload limit, bytes/s. */
  uploadLimit?: number;
  /** Own ratio limit. */
  ratioLimit?: number;
  /** Own seeding-time limit, s. */
  seedTimeLimit?: number;
  /** Own idle seeding limit, s. */
  idleSeedingLimit?: number;
  /** File paths the user renamed (one list of components per file). */
  paths?: string[][];
  /** Own connection limit. */
  maxPeers?: number;
  /** Announce to trackers. */
  trackers?: boolean;
  /** Use the torrent's web seeds. */
  webSeeds?: boolean;
  /** Web seeds added by the user. */
  extraWebSeeds?: string[];
  /** Payload bytes uploaded over its life. */
  uploaded: number;
  /** Payload bytes downloaded over its life. */
  downloaded: number;
  /** Seconds spent seeding. */
  seedingSeconds: number;
  /** When it was added (ms since the epoch). */
  added: number;
  /** When it completed (0 = not yet). */
  done: number;
  /** A seeding limit stopped it. */
  finished: boolean;
}

/** The saved session. */
export interface SessionRecord {
  /** Record format. */
  version: 1;
  /** The next torrent id. */
  nextId: number;
  /** Limits as last set. */
  limits: Record<string, number | boolean>;
}

const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** Reads and writes a session's state directory. */
export class SessionStore {
  readonly #dir: string;
  /** The .torrent bytes last written (or found) for each torrent. */
  readonly #savedMetadata = new WeakMap<SessionTorrent, Uint8Array>();

  /**
   * Creates a {@linkcode SessionStore}.
   *
   * @param dir The state directory.
   */
  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Where a torrent's resume data goes. */
  resumePath(infoHashHex: string): string {
    return join(this.#dir, "resume", `${infoHashHex}.resume`);
  }

  /** The saved session, if any. */
  async loadSession(): Promise<SessionRecord | undefined> {
    const r = await this.#readJson<SessionRecord>(join(this.#dir, "session.json"));
    if (!r || r.version !== 1 || !Number.isInteger(r.nextId) || r.nextId < 1) return undefined;
    if (typeof r.limits !== "object" || r.limits === null) r.limits = {};
    return r;
  }

  /** Saves the session's own state. */
  async saveSession(nextId: number, limits: object): Promise<void> {
    const record: SessionRecord = {
      version: 1,
      nextId,
      limits: { ...limits } as SessionRecord["limits"],
    };
    await this.#write(join(this.#dir, "session.json"), record);
  }

  /** The saved DHT state, if any. */
  async loadDhtState(): Promise<DhtState | undefined> {
    return await this.#readJson<DhtState>(join(this.#dir, "dht.json"));
  }

  /** Saves the DHT node's state. */
  async saveDhtState(state: DhtState): Promise<void> {
    await this.#write(join(this.#dir, "dht.json"), state);
  }

  /** Every saved torrent, in queue order; unreadable records are skipped. */
  async loadTorrents(): Promise<TorrentRecord[]> {
    const dir = join(this.#dir, "torrents");
    const out: TorrentRecord[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (!e.isFile || !/^[0-9a-f]{40,64}\.json$/.test(e.name)) continue;
        const r = await this.#readJson<TorrentRecord>(join(dir, e.name));
        if (!r || r.version !== 1 || !Number.isInteger(r.id) || typeof r.basedir !== "string") {
          continue;
        }
        const torrentPath = join(dir, `${r.infoHash}.torrent`);
        if (await exists(torrentPath)) r.torrentPath = torrentPath;
        else delete r.torrentPath;
        if (!r.torrentPath && !r.magnet) continue;
        out.push(r);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return out.sort((a, b) => a.queuePosition - b.queuePosition || a.id - b.id);
  }

  /**
   * Saves a torrent: its metadata once (and again when it changes: a magnet link's v2 piece layers arrive after
   * its info dictionary), its record each time.
   */
  async saveTorrent(t: SessionTorrent, queuePosition: number): Promise<void> {
    const hex = t.infohashHex;
    const dir = join(this.#dir, "torrents");
    const torrentPath = join(dir, `${hex}.torrent`);
    if (t.hasMetadata && this.#savedMetadata.get(t) !== t.torrentFile) {
      const bytes = t.torrentFile;
      // the first save of a restored torrent finds its file there already (the same, unless layers came since)
      const size = this.#savedMetadata.has(t)
        ? -1
        : await Deno.stat(torrentPath).then((st) => st.size, () => -1);
      if (size !== bytes.length) {
        await denoBackend.mkdir(dir);
        await denoBackend.writeAtomic(torrentPath, bytes);
      }
      this.#savedMetadata.set(t, bytes);
    }
    const o = t.options;
    const totals = t.totals;
    const record: TorrentRecord = {
      version: 1,
      id: t.id,
      infoHash: hex,
      ...(t.hasMetadata ? {} : { magnet: magnetOf(t) }),
      basedir: t.basedir,
      state: t.finished ? "stopped" : t.desired,
      ...(t.hasMetadata && t.engine
        ? { priorities: [...t.engine.priorities] }
        : o.priorities
        ? { priorities: o.priorities }
        : {}),
      queuePosition,
      ...(t.limits.download ? { downloadLimit: t.limits.download } : {}),
      ...(t.limits.upload ? { uploadLimit: t.limits.upload } : {}),
      ...(o.ratioLimit !== undefined ? { ratioLimit: o.ratioLimit } : {}),
      ...(o.seedTimeLimit !== undefined ? { seedTimeLimit: o.seedTimeLimit } : {}),
      ...(o.idleSeedingLimit !== undefined ? { idleSeedingLimit: o.idleSeedingLimit } : {}),
      ...(o.paths ? { paths: o.paths } : {}),
      ...(o.maxPeers ? { maxPeers: o.maxPeers } : {}),
      ...(o.trackers === false ? { trackers: false } : {}),
      ...(o.webSeeds === false ? { webSeeds: false } : {}),
      ...(o.extraWebSeeds?.length ? { extraWebSeeds: o.extraWebSeeds } : {}),
      uploaded: totals.uploaded,
      downloaded: totals.downloaded,
      seedingSeconds: Math.round(totals.seedingSeconds),
      added: t.dates.added,
      done: t.dates.done,
      finished: t.finished,
    };
    await this.#write(join(dir, `${hex}.json`), record);
  }

  /** Forgets a torrent: its record, metadata and resume data. */
  async removeTorrent(infoHashHex: string): Promise<void> {
    const dir = join(this.#dir, "torrents");
    for (
      const p of [
        join(dir, `${infoHashHex}.json`),
        join(dir, `${infoHashHex}.torrent`),
        this.resumePath(infoHashHex),
        `${this.resumePath(infoHashHex)}.journal`,
        `${this.resumePath(infoHashHex)}.journal.prev`,
      ]
    ) {
      await Deno.remove(p).catch(() => {});
    }
  }

  async #write(path: string, value: unknown): Promise<void> {
    await denoBackend.mkdir(join(path, ".."));
    await denoBackend.writeAtomic(path, new TextEncoder().encode(JSON.stringify(value)));
  }

  async #readJson<T>(path: string): Promise<T | undefined> {
    try {
      const st = await Deno.stat(path);
      if (st.size > MAX_RECORD_BYTES) throw new Error(`${path} is ${st.size} bytes`);
      return JSON.parse(await Deno.readTextFile(path)) as T;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      if (err instanceof SyntaxError) return undefined; // torn or foreign: ignored
      throw asError(err);
    }
  }
}

function magnetOf(t: SessionTorrent): string {
  return t.magnetUri ?? formatMagnet({ infoHash: t.infohash });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
