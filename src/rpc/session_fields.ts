/**
 * `session-get` and `session-set`: the session's arguments of Transmission's RPC mapped onto a
 * {@linkcode Session}'s limits (speed limits and the alternative "turtle" set, queue sizes, ratio and idle seeding
 * limits, connection limits) and onto the RPC's own settings (default download directory, start added torrents,
 * and what takes a new session to change: peer port, encryption, DHT, local peer discovery, uTP).
 *
 * Speeds are in kB/s (1000 bytes, Transmission's `units.speed-bytes`). A limit that is switched off keeps its
 * value for when it is switched on again, as Transmission's does. Switches for features Seedbed does not have
 * (blocklists, port forwarding, uTP, scripts, the alt-speed schedule, an incomplete-files folder) read as off and
 * can only be set to off; unknown and read-only keys are ignored, as Transmission ignores them.
 *
 * @module
 */

import { isAbsolute } from "node:path";
import type { Session, SessionLimits } from "../session/session.ts";
import { VERSION } from "../version.ts";
import { RPC_ERROR, RpcError } from "./errors.ts";
import { snakeCase } from "./names.ts";
import { SPEED_K } from "./torrent_fields.ts";

/** The RPC's own settings: what Transmission's session has and a {@linkcode Session}'s limits do not. */
export interface RpcSettings {
  /** Where added torrents go unless a request says otherwise (an absolute path). */
  downloadDir: string;
  /** Start added torrents unless the request says `paused`. */
  startAddedTorrents: boolean;
  /** Peer port the daemon listens on (the session's actual port is reported while it listens). */
  peerPort: number;
  /** Transmission's encryption mode. */
  encryption: "required" | "preferred" | "tolerated";
  /** Run a DHT node. */
  dht: boolean;
  /** Local peer discovery. */
  lsd: boolean;
  /** uTP (BEP 29) beside TCP. */
  utp: boolean;
  /** Limits kept while switched off, kB/s and counts. */
  remembered: {
    speedLimitDown: number;
    speedLimitUp: number;
    downloadQueueSize: number;
    seedQueueSize: number;
    seedRatioLimit: number;
    idleSeedingLimit: number;
  };
  /** Values stored for clients but without effect: the alt-speed schedule and other settings. */
  stored: {
    altSpeedTimeBegin: number;
    altSpeedTimeEnd: number;
    altSpeedTimeDay: number;
    cacheSizeMb: number;
    queueStalledMinutes: number;
  };
}

/** Settings a new daemon starts with. */
export function defaultSettings(downloadDir: string): RpcSettings {
  return {
    downloadDir,
    startAddedTorrents: true,
    peerPort: 51413,
    encryption: "preferred",
    dht: true,
    lsd: false,
    utp: true,
    remembered: {
      speedLimitDown: 100,
      speedLimitUp: 100,
      downloadQueueSize: 5,
      seedQueueSize: 10,
      seedRatioLimit: 2,
      idleSeedingLimit: 30,
    },
    stored: {
      altSpeedTimeBegin: 540,
      altSpeedTimeEnd: 1020,
      altSpeedTimeDay: 127,
      cacheSizeMb: 4,
      queueStalledMinutes: 30,
    },
  };
}

/** What `session-get` and `session-set` work on. */
export interface SessionContext {
  /** The session. */
  session: Session;
  /** The RPC's settings (changed in place by `session-set`). */
  settings: RpcSettings;
  /** The `X-Transmission-Session-Id` value. */
  sessionId: string;
  /** The session's state directory (`config-dir`), if any. */
  stateDir: string | undefined;
  /**
   * Applies settings that take a new session (peer port, encryption, DHT, local peer discovery, uTP); without it they
   * cannot be changed through the RPC.
   */
  restart?: (settings: RpcSettings) => Promise<void>;
}

/** RPC version we speak: Transmission 4.0's (the old protocol; JSON-RPC 2.0 requests are answered too). */
export const RPC_VERSION = 17;

type Getter = (c: SessionContext) => unknown;

const kB = (bytes: number) => Math.round(bytes / SPEED_K);
const limits = (c: SessionContext) => c.session.limits;

/** `session-get`'s arguments, by their old-protocol names. */
const GET: Record<string, Getter> = {
  "alt-speed-down": (c) => kB(limits(c).altDownload),
  "alt-speed-enabled": (c) => limits(c).altEnabled,
  "alt-speed-time-begin": (c) => c.settings.stored.altSpeedTimeBegin,
  "alt-speed-time-day": (c) => c.settings.stored.altSpeedTimeDay,
  "alt-speed-time-enabled": () => false,
  "alt-speed-time-end": (c) => c.settings.stored.altSpeedTimeEnd,
  "alt-speed-up": (c) => kB(limits(c).altUpload),
  "blocklist-enabled": () => false,
  "blocklist-size": () => 0,
  "blocklist-url": () => "",
  "cache-size-mb": (c) => c.settings.stored.cacheSizeMb,
  "config-dir": (c) => c.stateDir ?? "",
  "default-trackers": () => "",
  "dht-enabled": (c) => c.settings.dht,
  "download-dir": (c) => c.settings.downloadDir,
  "download-queue-enabled": (c) => limits(c).activeDownloads > 0,
  "download-queue-size": (c) =>
    limits(c).activeDownloads || c.settings.remembered.downloadQueueSize,
  encryption: (c) => c.settings.encryption,
  "idle-seeding-limit": (c) =>
    limits(c).idleSeedingLimit > 0
      ? Math.max(1, Math.round(limits(c).idleSeedingLimit / 60))
      : c.settings.remembered.idleSeedingLimit,
  "idle-seeding-limit-enabled": (c) => limits(c).idleSeedingLimit > 0,
  "incomplete-dir": (c) => c.settings.downloadDir,
  "incomplete-dir-enabled": () => false,
  "lpd-enabled": (c) => c.settings.lsd,
  "peer-limit-global": (c) => limits(c).connections,
  "peer-limit-per-torrent": (c) => limits(c).connectionsPerTorrent,
  "peer-port": (c) => c.session.port || c.settings.peerPort,
  "peer-port-random-on-start": () => false,
  "pex-enabled": () => true,
  "port-forwarding-enabled": () => false,
  "queue-stalled-enabled": () => false,
  "queue-stalled-minutes": (c) => c.settings.stored.queueStalledMinutes,
  "rename-partial-files": () => false,
  "rpc-version": () => RPC_VERSION,
  "rpc-version-minimum": () => 14,
  "rpc-version-semver": () => "5.3.0",
  "script-torrent-added-enabled": () => false,
  "script-torrent-added-filename": () => "",
  "script-torrent-done-enabled": () => false,
  "script-torrent-done-filename": () => "",
  "script-torrent-done-seeding-enabled": () => false,
  "script-torrent-done-seeding-filename": () => "",
  "seed-queue-enabled": (c) => limits(c).activeSeeds > 0,
  "seed-queue-size": (c) => limits(c).activeSeeds || c.settings.remembered.seedQueueSize,
  seedRatioLimit: (c) => limits(c).ratioLimit || c.settings.remembered.seedRatioLimit,
  seedRatioLimited: (c) => limits(c).ratioLimit > 0,
  "session-id": (c) => c.sessionId,
  "speed-limit-down": (c) =>
    limits(c).download > 0 ? kB(limits(c).download) : c.settings.remembered.speedLimitDown,
  "speed-limit-down-enabled": (c) => limits(c).download > 0,
  "speed-limit-up": (c) =>
    limits(c).upload > 0 ? kB(limits(c).upload) : c.settings.remembered.speedLimitUp,
  "speed-limit-up-enabled": (c) => limits(c).upload > 0,
  "start-added-torrents": (c) => c.settings.startAddedTorrents,
  "tcp-enabled": () => true,
  "trash-original-torrent-files": () => false,
  units: () => ({
    "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
    "speed-bytes": SPEED_K,
    "size-units": ["kB", "MB", "GB", "TB"],
    "size-bytes": 1000,
    "memory-units": ["KiB", "MiB", "GiB", "TiB"],
    "memory-bytes": 1024,
  }),
  "utp-enabled": (c) => c.settings.utp,
  version: () => `${VERSION} (Seedbed)`,
};

const BY_SNAKE = new Map(Object.keys(GET).map((k) => [snakeCase(k), k]));

/**
 * `session-get`: the requested arguments (all of them without `fields`), by their old-protocol names.
 *
 * @param c The session and settings.
 * @param fields Names in any spelling; unknown ones are left out.
 * @returns The arguments.
 */
export function sessionGet(c: SessionContext, fields?: readonly string[]): Record<string, unknown> {
  const names = fields === undefined
    ? Object.keys(GET)
    : fields.map((f) => BY_SNAKE.get(snakeCase(f))).filter((k) => k !== undefined);
  const out: Record<string, unknown> = {};
  for (const k of names) out[k] = GET[k](c);
  return out;
}

/** Switches of features Seedbed does not have: accepted only with the value they read as. */
const FIXED: Record<string, boolean> = {
  alt_speed_time_enabled: false,
  blocklist_enabled: false,
  incomplete_dir_enabled: false,
  peer_port_random_on_start: false,
  pex_enabled: true,
  port_forwarding_enabled: false,
  queue_stalled_enabled: false,
  rename_partial_files: false,
  script_torrent_added_enabled: false,
  script_torrent_done_enabled: false,
  script_torrent_done_seeding_enabled: false,
  tcp_enabled: true,
  trash_original_torrent_files: false,
};

const ENCRYPTION = new Map<string, RpcSettings["encryption"]>([
  ["required", "required"],
  ["preferred", "preferred"],
  ["tolerated", "tolerated"],
  ["allowed", "tolerated"],
]);

/**
 * `session-set`: checks every argument first (nothing changes when one is wrong), then applies them; settings that
 * take a new session are applied through `c.restart`.
 *
 * @param c The session and settings.
 * @param args The arguments by snake_case name.
 * @returns Whether the settings changed (for saving them).
 * @throws {RpcError} When an argument has the wrong type or a value that cannot be honoured.
 */
export async function sessionSet(
  c: SessionContext,
  args: Record<string, unknown>,
): Promise<boolean> {
  const next: SessionLimits = {};
  const s = structuredClone(c.settings);
  const cur = c.session.limits;
  for (const [key, fixed] of Object.entries(FIXED)) {
    if (key in args && readBool(args, key) !== fixed) {
      throw new RpcError(`${key.replace(/_/g, "-")} cannot be ${fixed ? "off" : "on"} in Seedbed`);
    }
  }
  const speed = (key: string) => readNumber(args, key, { min: 0, max: 4_000_000, integer: true });
  const pairs: [string, string, keyof RpcSettings["remembered"], "download" | "upload"][] = [
    ["speed_limit_down", "speed_limit_down_enabled", "speedLimitDown", "download"],
    ["speed_limit_up", "speed_limit_up_enabled", "speedLimitUp", "upload"],
  ];
  for (const [valueKey, enabledKey, remember, limit] of pairs) {
    const value = speed(valueKey);
    const enabled = readBool(args, enabledKey);
    if (value !== undefined) s.remembered[remember] = value;
    const on = enabled ?? cur[limit] > 0;
    if (value !== undefined || enabled !== undefined) {
      next[limit] = on ? Math.max(1, s.remembered[remember]) * SPEED_K : 0;
    }
  }
  const altDown = speed("alt_speed_down"), altUp = speed("alt_speed_up");
  if (altDown !== undefined) next.altDownload = altDown * SPEED_K;
  if (altUp !== undefined) next.altUpload = altUp * SPEED_K;
  const alt = readBool(args, "alt_speed_enabled");
  if (alt !== undefined) next.altEnabled = alt;

  const queues: [
    string,
    string,
    "downloadQueueSize" | "seedQueueSize",
    "activeDownloads" | "activeSeeds",
  ][] = [
    ["download_queue_size", "download_queue_enabled", "downloadQueueSize", "activeDownloads"],
    ["seed_queue_size", "seed_queue_enabled", "seedQueueSize", "activeSeeds"],
  ];
  for (const [sizeKey, enabledKey, remember, limit] of queues) {
    const size = readNumber(args, sizeKey, { min: 1, max: 100_000, integer: true });
    const enabled = readBool(args, enabledKey);
    if (size !== undefined) s.remembered[remember] = size;
    if (size !== undefined || enabled !== undefined) {
      next[limit] = (enabled ?? cur[limit] > 0) ? s.remembered[remember] : 0;
    }
  }

  const ratio = readNumber(args, "seed_ratio_limit", { min: 0, max: 1e6 });
  const ratioOn = readBool(args, "seed_ratio_limited");
  if (ratio !== undefined && ratio > 0) s.remembered.seedRatioLimit = ratio;
  if (ratio !== undefined || ratioOn !== undefined) {
    next.ratioLimit = (ratioOn ?? cur.ratioLimit > 0) ? s.remembered.seedRatioLimit : 0;
  }
  const idle = readNumber(args, "idle_seeding_limit", { min: 1, max: 1e6, integer: true });
  const idleOn = readBool(args, "idle_seeding_limit_enabled");
  if (idle !== undefined) s.remembered.idleSeedingLimit = idle;
  if (idle !== undefined || idleOn !== undefined) {
    next.idleSeedingLimit = (idleOn ?? cur.idleSeedingLimit > 0)
      ? s.remembered.idleSeedingLimit * 60
      : 0;
  }
  const global = readNumber(args, "peer_limit_global", { min: 1, max: 100_000, integer: true });
  if (global !== undefined) next.connections = global;
  const perTorrent = readNumber(args, "peer_limit_per_torrent", {
    min: 1,
    max: 100_000,
    integer: true,
  });
  if (perTorrent !== undefined) next.connectionsPerTorrent = perTorrent;

  const dir = readString(args, "download_dir");
  if (dir !== undefined) {
    if (!isAbsolute(dir)) {
      throw new RpcError("download directory path is not absolute", RPC_ERROR.pathNotAbsolute);
    }
    s.downloadDir = dir;
  }
  const start = readBool(args, "start_added_torrents");
  if (start !== undefined) s.startAddedTorrents = start;
  for (
    const [key, field] of [
      ["alt_speed_time_begin", "altSpeedTimeBegin"],
      ["alt_speed_time_end", "altSpeedTimeEnd"],
      ["alt_speed_time_day", "altSpeedTimeDay"],
      ["cache_size_mib", "cacheSizeMb"],
      ["queue_stalled_minutes", "queueStalledMinutes"],
    ] as const
  ) {
    const v = readNumber(args, key, { min: 0, max: 1e6, integer: true });
    if (v !== undefined) s.stored[field] = v;
  }

  // what takes a new session
  const port = readNumber(args, "peer_port", { min: 0, max: 65535, integer: true });
  if (port !== undefined) s.peerPort = port;
  const enc = readString(args, "encryption");
  if (enc !== undefined) {
    const mode = ENCRYPTION.get(enc);
    if (!mode) {
      throw new RpcError(`encryption must be required, preferred or tolerated, not ${enc}`);
    }
    s.encryption = mode;
  }
  const dht = readBool(args, "dht_enabled");
  if (dht !== undefined) s.dht = dht;
  const lsd = readBool(args, "lpd_enabled");
  if (lsd !== undefined) s.lsd = lsd;
  const utp = readBool(args, "utp_enabled");
  if (utp !== undefined) s.utp = utp;
  const restart = s.peerPort !== c.settings.peerPort || s.encryption !== c.settings.encryption ||
    s.dht !== c.settings.dht || s.lsd !== c.settings.lsd || s.utp !== c.settings.utp;
  if (restart && !c.restart) {
    throw new RpcError(
      "peer-port, encryption, dht-enabled, lpd-enabled and utp-enabled cannot be changed here",
    );
  }

  const changed = JSON.stringify(s) !== JSON.stringify(c.settings);
  Object.assign(c.settings, s);
  if (Object.keys(next).length > 0) c.session.setLimits(next);
  if (restart) await c.restart!(c.settings);
  return changed;
}

/**
 * A boolean argument (also 0/1, as Transmission reads them).
 *
 * @throws {RpcError} When it is something else.
 */
export function readBool(args: Record<string, unknown>, key: string): boolean | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (typeof v === "boolean") return v;
  if (v === 0 || v === 1) return v === 1;
  throw new RpcError(`${key} must be a boolean`);
}

/**
 * A number argument within bounds.
 *
 * @throws {RpcError} When it is not a number, not an integer where one is needed, or out of bounds.
 */
export function readNumber(
  args: Record<string, unknown>,
  key: string,
  bounds: { min: number; max: number; integer?: boolean },
): number | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (bounds.integer && !Number.isInteger(v))) {
    throw new RpcError(`${key} must be ${bounds.integer ? "an integer" : "a number"}`);
  }
  if (v < bounds.min || v > bounds.max) {
    throw new RpcError(`${key} must be between ${bounds.min} and ${bounds.max}`);
  }
  return v;
}

/**
 * A string argument.
 *
 * @throws {RpcError} When it is not a string.
 */
export function readString(args: Record<string, unknown>, key: string): string | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new RpcError(`${key} must be a string`);
  return v;
}
