/**
 * The methods of Transmission's RPC over a {@linkcode Session}: adding (a .torrent file's path or URL, its bytes in
 * base64, a magnet link), reading (`torrent-get`, both formats, `recently-active` with `removed`), changing,
 * starting, stopping, verifying, reannouncing, removing, moving and renaming torrents, the queue, and the session's
 * settings and statistics. Each takes its arguments by snake_case name (see `names.ts`) and answers with the old
 * protocol's names; a wrong argument is an {@linkcode RpcError}.
 *
 * Torrents are named by the session's ids, which stay the same across restarts, or by info hash wherever an id
 * may be given.
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { sanitizeComponent } from "../_paths.ts";
import { parseMagnet } from "../magnet.ts";
import { parseMetainfo } from "../metainfo.ts";
import { DuplicateTorrentError } from "../session/session.ts";
import type { SessionTorrent, TorrentAddOptions } from "../session/session_torrent.ts";
import type { ActivityLog } from "./activity.ts";
import { RPC_ERROR, RpcError } from "./errors.ts";
import { snakeCase } from "./names.ts";
import {
  readBool,
  readNumber,
  readString,
  type SessionContext,
  sessionGet,
  sessionSet,
} from "./session_fields.ts";
import {
  enginePriority,
  type FieldContext,
  SPEED_K,
  torrentName,
  TorrentView,
  transmissionPriority,
} from "./torrent_fields.ts";

/** Largest .torrent file read from a path or a URL. */
export const MAX_TORRENT_FILE_BYTES = 50 * 1024 * 1024;
/** Time allowed to fetch a .torrent file from a URL. */
const FETCH_TIMEOUT_MS = 30_000;
/** How long a method waits for a torrent to take a start, stop or removal before it answers anyway. */
const SETTLE_MS = 3_000;

/** What the methods work on. */
export interface MethodContext extends SessionContext {
  /** What the engine does not keep. */
  activity: ActivityLog;
  /** Answering in JSON-RPC 2.0. */
  jsonrpc: boolean;
  /** Per-torrent speed limits shown while not limited, kB/s. */
  speedLimits: WeakMap<SessionTorrent, { down: number; up: number }>;
  /** When the RPC started (ms). */
  startedAt: number;
  /** Shuts the daemon down (`session-close`); without it the method is refused. */
  close?: () => void;
  /** Settings changed: save them. */
  saved?: () => void;
  /** Something failed after the answer was sent (a verify, a start). */
  onError: (torrent: SessionTorrent | undefined, error: unknown) => void;
}

type Method = (c: MethodContext, args: Record<string, unknown>) => Promise<Record<string, unknown>>;

/**
 * Runs one method.
 *
 * @param c The session and everything else the methods need.
 * @param method The method's name, in any spelling.
 * @param args Its arguments by snake_case name.
 * @returns The answer's arguments.
 * @throws {RpcError} For an unknown method or a wrong argument.
 */
export async function callMethod(
  c: MethodContext,
  method: string,
  args: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const m = Object.hasOwn(METHODS, snakeCase(method)) ? METHODS[snakeCase(method)] : undefined;
  if (!m) throw new RpcError("method name not recognized", RPC_ERROR.methodNotFound);
  return await m(c, args);
}

const METHODS: Record<string, Method> = {
  torrent_add: torrentAdd,
  torrent_get: torrentGet,
  torrent_set: torrentSet,
  torrent_start: (c, a) => action(c, a, (t) => t.start()),
  torrent_start_now: (c, a) =>
    action(c, a, (t) => {
      c.session.setQueuePosition(t, 0);
      return t.start();
    }),
  // answered as soon as the torrent is marked stopped (it shows as stopped at once), not once its engine has
  // closed its connections and files, as Transmission answers
  torrent_stop: (c, a) => action(c, a, (t) => t.stop(), 0),
  torrent_verify: (c, a) =>
    action(c, a, (t) => {
      // a full check can take long: answered at once, reported when it fails
      t.hashcheck().catch((err) => c.onError(t, err));
      return Promise.resolve();
    }),
  torrent_reannounce: (c, a) =>
    action(c, a, (t) => {
      t.reannounce();
      return Promise.resolve();
    }),
  torrent_remove: torrentRemove,
  torrent_set_location: torrentSetLocation,
  torrent_rename_path: torrentRenamePath,
  queue_move_top: (c, a) => queueMove(c, a, "top"),
  queue_move_up: (c, a) => queueMove(c, a, "up"),
  queue_move_down: (c, a) => queueMove(c, a, "down"),
  queue_move_bottom: (c, a) => queueMove(c, a, "bottom"),
  session_get: (c, a) => {
    const fields = a.fields;
    if (fields !== undefined && !(Array.isArray(fields) && fields.every(isString))) {
      throw new RpcError("fields must be a list of names");
    }
    const got = sessionGet(c, fields as string[] | undefined);
    // Transmission 4.1 renamed "tolerated" to "allowed"
    if (c.jsonrpc && got.encryption === "tolerated") got.encryption = "allowed";
    return Promise.resolve(got);
  },
  session_set: async (c, a) => {
    if (await sessionSet(c, a)) c.saved?.();
    return {};
  },
  session_stats: (c) => Promise.resolve(sessionStats(c)),
  free_space: freeSpace,
  port_test: () => {
    throw new RpcError(
      "port-test is not available: Seedbed does not ask a third party to test its port",
      RPC_ERROR.httpError,
    );
  },
  session_close: (c) => {
    if (!c.close) throw new RpcError("session-close is not available here");
    queueMicrotask(c.close);
    return Promise.resolve({});
  },
  blocklist_update: () => {
    throw new RpcError("blocklists are not supported");
  },
  group_get: () => Promise.resolve({ group: [] }),
  group_set: () => {
    throw new RpcError("bandwidth groups are not supported");
  },
};

// ------------------------------------------------------------------ torrent ids

const HASH = /^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/;

/**
 * The torrents an `ids` argument names: all when absent, one id, a hash, a list of both, or `recently-active`.
 * Names that match nothing are skipped, as Transmission skips them.
 *
 * @throws {RpcError} When `ids` is neither.
 */
export function resolveIds(
  c: MethodContext,
  ids: unknown,
): { torrents: SessionTorrent[]; recent: boolean } {
  const all = c.session.torrents.sort((a, b) => a.id - b.id);
  if (ids === undefined) return { torrents: all, recent: false };
  if (ids === "recently-active" || ids === "recently_active") {
    return { torrents: all.filter((t) => c.activity.recentlyActive(t)), recent: true };
  }
  const list = Array.isArray(ids) ? ids : [ids];
  if (list.length > 100_000) throw new RpcError("too many ids");
  const wanted = new Set<SessionTorrent>();
  for (const id of list) {
    let t: SessionTorrent | undefined;
    if (typeof id === "number" && Number.isInteger(id)) t = c.session.get(id);
    else if (typeof id === "string" && HASH.test(id)) t = c.session.get(id.toLowerCase());
    else if (typeof id === "string" && /^\d{1,15}$/.test(id)) t = c.session.get(Number(id));
    else throw new RpcError(`invalid torrent id ${JSON.stringify(id)?.slice(0, 80)}`);
    if (t) wanted.add(t);
  }
  return { torrents: all.filter((t) => wanted.has(t)), recent: false };
}

// ------------------------------------------------------------------ torrent-add

async function torrentAdd(
  c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const filename = readString(a, "filename");
  const metainfo = readString(a, "metainfo");
  if (!filename && !metainfo) throw new RpcError("no filename or metainfo specified");
  const dir = readString(a, "download_dir");
  if (dir !== undefined && !isAbsolute(dir)) {
    throw new RpcError("download directory path is not absolute", RPC_ERROR.pathNotAbsolute);
  }
  const paused = readBool(a, "paused");
  const maxPeers = readNumber(a, "peer_limit", { min: 1, max: 100_000, integer: true });
  const cookies = readString(a, "cookies");
  const bandwidth = readNumber(a, "bandwidth_priority", { min: -1, max: 1, integer: true });
  if (bandwidth) throw new RpcError("bandwidth priority is not supported");
  checkLabels(a.labels);
  let source: string | Uint8Array;
  if (metainfo) {
    try {
      source = Uint8Array.fromBase64(metainfo.replace(/\s+/g, ""));
    } catch {
      throw new RpcError(
        "invalid or corrupt torrent file: metainfo is not base64",
        RPC_ERROR.corruptTorrent,
      );
    }
  } else if (/^magnet:/i.test(filename!)) {
    try {
      parseMagnet(filename!);
    } catch (err) {
      throw new RpcError(`invalid magnet link: ${message(err)}`, RPC_ERROR.unrecognizedInfo);
    }
    source = filename!;
  } else if (/^https?:\/\//i.test(filename!)) {
    source = await fetchTorrentFile(filename!, cookies);
  } else {
    source = await readTorrentFile(filename!);
  }
  const options: TorrentAddOptions = {
    basedir: dir ?? c.settings.downloadDir,
    state: (paused ?? !c.settings.startAddedTorrents) ? "stopped" : "started",
    ...(maxPeers ? { maxPeers } : {}),
  };
  if (source instanceof Uint8Array) {
    let files: number;
    try {
      files = (await parseMetainfo(source)).files.length;
    } catch (err) {
      throw new RpcError(
        `invalid or corrupt torrent file: ${message(err)}`,
        RPC_ERROR.corruptTorrent,
      );
    }
    options.priorities = filePriorities(a, new Array(files).fill(enginePriority(true, 0)));
  }
  let t: SessionTorrent;
  try {
    t = await c.session.add(source, options);
  } catch (err) {
    if (err instanceof DuplicateTorrentError) {
      return { "torrent-duplicate": brief(err.existing) };
    }
    throw new RpcError(
      `invalid or corrupt torrent file: ${message(err)}`,
      RPC_ERROR.corruptTorrent,
    );
  }
  if (typeof source === "string") normalNowKnown(c, t);
  c.activity.touch(t);
  return { "torrent-added": brief(t) };
}

/** A magnet link's files get the normal priority once they are known (the engine's default is our "low"). */
function normalNowKnown(c: MethodContext, t: SessionTorrent): void {
  t.ready.then(async () => {
    const e = t.engine;
    if (!e || !e.priorities.every((p) => p === 1)) return;
    for (let i = 0; i < e.priorities.length; i++) await t.setPriority(i, enginePriority(true, 0));
  }).catch((err) => {
    if (!t.errorText) c.onError(t, err);
  });
}

function brief(t: SessionTorrent): Record<string, unknown> {
  return { hashString: t.infohashHex, id: t.id, name: torrentName(t) };
}

async function readTorrentFile(path: string): Promise<Uint8Array> {
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) throw new Error("not a file");
    if (st.size > MAX_TORRENT_FILE_BYTES) throw new Error(`${st.size} bytes is too big`);
    return await Deno.readFile(path);
  } catch (err) {
    throw new RpcError(
      `invalid or corrupt torrent file: ${message(err)}`,
      RPC_ERROR.corruptTorrent,
    );
  }
}

async function fetchTorrentFile(url: string, cookies: string | undefined): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: cookies ? { cookie: cookies } : {},
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (err) {
    throw new RpcError(`http error 0: ${message(err)}`, RPC_ERROR.httpError);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new RpcError(`http error ${res.status}: ${res.statusText}`, RPC_ERROR.httpError);
  }
  const length = Number(res.headers.get("content-length") ?? 0);
  if (length > MAX_TORRENT_FILE_BYTES) {
    await res.body?.cancel();
    throw new RpcError(
      `http error: ${length} bytes is too big for a torrent file`,
      RPC_ERROR.httpError,
    );
  }
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? ReadableStream.from<Uint8Array>([])) {
      total += chunk.byteLength;
      if (total > MAX_TORRENT_FILE_BYTES) throw new Error("too big for a torrent file");
      parts.push(chunk);
    }
  } catch (err) {
    throw new RpcError(`http error: ${message(err)}`, RPC_ERROR.httpError);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * Engine priorities after `files-wanted`, `files-unwanted` and `priority-*` (an empty list means every file).
 *
 * @throws {RpcError} When an index is not a file of the torrent.
 */
function filePriorities(a: Record<string, unknown>, current: readonly number[]): number[] {
  const n = current.length;
  const state = current.map((p) => transmissionPriority(p));
  const indexes = (key: string): number[] | undefined => {
    const v = a[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw new RpcError(`${key} must be a list of file indexes`);
    if (v.length === 0) return [...current.keys()];
    for (const i of v) {
      if (!Number.isInteger(i) || i < 0 || i >= n) {
        throw new RpcError("file index out of range", RPC_ERROR.fileIndexOutOfRange);
      }
    }
    return v as number[];
  };
  for (const i of indexes("files_wanted") ?? []) state[i].wanted = true;
  for (const i of indexes("files_unwanted") ?? []) state[i].wanted = false;
  for (
    const [key, level] of [["priority_low", -1], ["priority_normal", 0], [
      "priority_high",
      1,
    ]] as const
  ) {
    for (const i of indexes(key) ?? []) state[i].priority = level;
  }
  return state.map((s) => enginePriority(s.wanted, s.priority));
}

const FILE_KEYS = [
  "files_wanted",
  "files_unwanted",
  "priority_low",
  "priority_normal",
  "priority_high",
];

function checkLabels(labels: unknown): void {
  if (labels !== undefined && !(Array.isArray(labels) && labels.length === 0)) {
    throw new RpcError("labels are not supported");
  }
}

// ------------------------------------------------------------------ torrent-get

function fieldContext(c: MethodContext): FieldContext {
  return {
    session: c.session,
    activity: c.activity,
    jsonrpc: c.jsonrpc,
    stateDir: c.stateDir,
    speedLimits: (t) => c.speedLimits.get(t) ?? { down: 100, up: 100 },
  };
}

function torrentGet(
  c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const fields = a.fields;
  if (!Array.isArray(fields) || fields.length === 0 || !fields.every(isString)) {
    throw new RpcError("no fields specified");
  }
  if (fields.length > 1000) throw new RpcError("too many fields");
  const format = readString(a, "format") ?? "objects";
  if (format !== "objects" && format !== "table") {
    throw new RpcError(`format must be objects or table, not ${format}`);
  }
  const { torrents, recent } = resolveIds(c, a.ids);
  const ctx = fieldContext(c);
  const names = (fields as string[]).map(snakeCase);
  const views = torrents.map((t) => new TorrentView(t, ctx));
  const out: Record<string, unknown> = {};
  if (format === "table") {
    out.torrents = [
      fields,
      ...views.map((v) => names.map((n) => v.get(n) ?? null)),
    ];
  } else {
    out.torrents = views.map((v) => {
      const o: Record<string, unknown> = {};
      names.forEach((n, i) => {
        const value = v.get(n);
        if (value !== undefined) o[fields[i] as string] = value;
      });
      return o;
    });
  }
  if (recent) out.removed = c.activity.recentlyRemoved();
  return Promise.resolve(out);
}

// ------------------------------------------------------------------ torrent-set

async function torrentSet(
  c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const { torrents } = resolveIds(c, a.ids);
  // everything is checked before anything changes
  const down = readNumber(a, "download_limit", { min: 0, max: 4_000_000, integer: true });
  const downOn = readBool(a, "download_limited");
  const up = readNumber(a, "upload_limit", { min: 0, max: 4_000_000, integer: true });
  const upOn = readBool(a, "upload_limited");
  const peerLimit = readNumber(a, "peer_limit", { min: 1, max: 100_000, integer: true });
  const queuePosition = readNumber(a, "queue_position", { min: 0, max: 1e9, integer: true });
  const ratio = readNumber(a, "seed_ratio_limit", { min: 0, max: 1e6 });
  const ratioMode = readNumber(a, "seed_ratio_mode", { min: 0, max: 2, integer: true });
  const idle = readNumber(a, "seed_idle_limit", { min: 1, max: 1e6, integer: true });
  const idleMode = readNumber(a, "seed_idle_mode", { min: 0, max: 2, integer: true });
  const location = readString(a, "location");
  if (location !== undefined && !isAbsolute(location)) {
    throw new RpcError("new location path is not absolute", RPC_ERROR.pathNotAbsolute);
  }
  if (readNumber(a, "bandwidth_priority", { min: -1, max: 1, integer: true })) {
    throw new RpcError("bandwidth priority is not supported");
  }
  if (readBool(a, "honors_session_limits") === false) {
    throw new RpcError("session limits always apply in Seedbed");
  }
  if (readBool(a, "sequential_download")) {
    throw new RpcError("sequential download is not supported");
  }
  if (![undefined, ""].includes(readString(a, "group"))) {
    throw new RpcError("bandwidth groups are not supported");
  }
  checkLabels(a.labels);
  for (const k of ["tracker_add", "tracker_remove", "tracker_replace", "tracker_list"]) {
    if (a[k] !== undefined) throw new RpcError("changing trackers is not supported");
  }
  const files = FILE_KEYS.some((k) => a[k] !== undefined);
  const plans = torrents.map((t) => {
    const e = t.engine;
    if (!files) return { t, priorities: undefined };
    if (!e || !t.hasMetadata) {
      throw new RpcError("file index out of range", RPC_ERROR.fileIndexOutOfRange);
    }
    return { t, priorities: filePriorities(a, e.priorities) };
  });

  for (const { t, priorities } of plans) {
    const remembered = c.speedLimits.get(t) ?? { down: 100, up: 100 };
    if (down !== undefined) remembered.down = down;
    if (up !== undefined) remembered.up = up;
    c.speedLimits.set(t, remembered);
    const limits: { download?: number; upload?: number } = {};
    if (down !== undefined || downOn !== undefined) {
      limits.download = (downOn ?? t.limits.download > 0)
        ? Math.max(1, remembered.down) * SPEED_K
        : 0;
    }
    if (up !== undefined || upOn !== undefined) {
      limits.upload = (upOn ?? t.limits.upload > 0) ? Math.max(1, remembered.up) * SPEED_K : 0;
    }
    if (limits.download !== undefined || limits.upload !== undefined) t.limits = limits;
    const rules: Parameters<SessionTorrent["configure"]>[0] = {};
    if (peerLimit !== undefined) rules.maxPeers = peerLimit;
    if (ratioMode !== undefined || ratio !== undefined) {
      const mode = ratioMode ?? (t.options.ratioLimit === undefined ? 0 : 1);
      const value = ratio ?? (t.options.ratioLimit || c.session.limits.ratioLimit || 2);
      rules.ratioLimit = mode === 0 ? null : mode === 2 ? 0 : value;
    }
    if (idleMode !== undefined || idle !== undefined) {
      const mode = idleMode ?? (t.options.idleSeedingLimit === undefined ? 0 : 1);
      const value = (idle ?? Math.round((t.options.idleSeedingLimit || 1800) / 60)) * 60;
      rules.idleSeedingLimit = mode === 0 ? null : mode === 2 ? 0 : value;
    }
    if (Object.keys(rules).length > 0) t.configure(rules);
    if (priorities) {
      const e = t.engine!;
      for (let i = 0; i < priorities.length; i++) {
        if (e.priorities[i] !== priorities[i]) await t.setPriority(i, priorities[i]);
      }
    }
    if (queuePosition !== undefined) c.session.setQueuePosition(t, queuePosition);
    c.activity.touch(t);
  }
  if (location !== undefined) await relocate(c, torrents, location, false);
  return {};
}

// ------------------------------------------------------------------ actions

async function action(
  c: MethodContext,
  a: Record<string, unknown>,
  fn: (t: SessionTorrent) => Promise<void>,
  waitMs = SETTLE_MS,
): Promise<Record<string, unknown>> {
  const { torrents } = resolveIds(c, a.ids);
  await Promise.all(torrents.map((t) => {
    c.activity.touch(t);
    return settle(fn(t).catch((err) => c.onError(t, err)), waitMs);
  }));
  return {};
}

async function torrentRemove(
  c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const { torrents } = resolveIds(c, a.ids);
  const deleteData = readBool(a, "delete_local_data") ?? false;
  await Promise.all(torrents.map((t) =>
    settle(
      c.session.remove(t, { deleteData }).then(() => {}, (err) => c.onError(t, err)),
      10_000,
    )
  ));
  return {};
}

async function torrentSetLocation(
  c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const { torrents } = resolveIds(c, a.ids);
  const location = readString(a, "location");
  if (location === undefined) throw new RpcError("no location");
  if (!isAbsolute(location)) {
    throw new RpcError("new location path is not absolute", RPC_ERROR.pathNotAbsolute);
  }
  await relocate(c, torrents, location, readBool(a, "move") ?? false);
  return {};
}

async function relocate(
  c: MethodContext,
  torrents: SessionTorrent[],
  basedir: string,
  move: boolean,
): Promise<void> {
  for (const t of torrents) {
    if (!t.hasMetadata || !t.engine) continue;
    const limits = c.speedLimits.get(t);
    try {
      const moved = await c.session.relocate(t, { basedir, move });
      if (limits) c.speedLimits.set(moved, limits);
      c.activity.touch(moved);
    } catch (err) {
      throw new RpcError(message(err), RPC_ERROR.systemError);
    }
  }
}

async function torrentRenamePath(
  c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const { torrents } = resolveIds(c, a.ids);
  if (torrents.length !== 1) throw new RpcError("torrent-rename-path requires 1 torrent");
  const t = torrents[0];
  const path = readString(a, "path");
  const name = readString(a, "name");
  if (path === undefined || name === undefined) throw new RpcError("path and name are required");
  if (name === "" || sanitizeComponent(name) !== name) {
    throw new RpcError(
      `invalid name ${JSON.stringify(name)}: a file or folder name, without / or ..`,
    );
  }
  const from = path.split("/");
  if (from.some((p) => p === "" || p === "." || p === "..")) {
    throw new RpcError(`invalid path ${JSON.stringify(path)}`);
  }
  if (!t.hasMetadata || !t.engine) throw new RpcError("the torrent's files are not known yet");
  const current = t.metainfo.files.map((f) => f.path);
  const under = (p: string[]) => p.length >= from.length && from.every((x, i) => p[i] === x);
  if (!current.some(under)) {
    throw new RpcError(`no file or folder ${JSON.stringify(path)} in this torrent`);
  }
  const depth = from.length - 1;
  const paths = current.map((p) => under(p) ? p.map((x, i) => (i === depth ? name : x)) : p);
  // the new names must not meet each other: no file twice, no file where a folder is
  const filesSeen = new Set<string>(), folders = new Set<string>();
  for (const p of paths) {
    const key = p.join("/");
    if (filesSeen.has(key)) throw new RpcError(`${key} would be there twice`);
    filesSeen.add(key);
    for (let i = 1; i < p.length; i++) folders.add(p.slice(0, i).join("/"));
  }
  for (const f of filesSeen) {
    if (folders.has(f)) throw new RpcError(`${f} would be a file and a folder`);
  }
  if (name !== from[depth]) {
    const limits = c.speedLimits.get(t);
    try {
      const renamed = await c.session.relocate(t, { paths, move: true });
      if (limits) c.speedLimits.set(renamed, limits);
      c.activity.touch(renamed);
    } catch (err) {
      throw new RpcError(message(err), RPC_ERROR.systemError);
    }
  }
  return { path, name, id: t.id };
}

function queueMove(
  c: MethodContext,
  a: Record<string, unknown>,
  where: "top" | "up" | "down" | "bottom",
): Promise<Record<string, unknown>> {
  const { torrents } = resolveIds(c, a.ids);
  const s = c.session;
  const chosen = torrents.sort((x, y) => s.queuePosition(x) - s.queuePosition(y));
  const last = s.torrents.length - 1;
  if (where === "top") [...chosen].reverse().forEach((t) => s.setQueuePosition(t, 0));
  else if (where === "bottom") chosen.forEach((t) => s.setQueuePosition(t, last));
  else if (where === "up") {
    for (const t of chosen) s.setQueuePosition(t, Math.max(0, s.queuePosition(t) - 1));
  } else {
    for (const t of chosen.reverse()) s.setQueuePosition(t, s.queuePosition(t) + 1);
  }
  for (const t of chosen) c.activity.touch(t);
  return Promise.resolve({});
}

// ------------------------------------------------------------------ the session

function sessionStats(c: MethodContext): Record<string, unknown> {
  const s = c.session;
  const stats = s.stats;
  const torrents = s.torrents;
  let up = 0, down = 0;
  for (const t of torrents) {
    up += t.totals.uploaded;
    down += t.totals.downloaded;
  }
  const seconds = Math.floor((Date.now() - c.startedAt) / 1000);
  const paused = torrents.filter((t) => t.desired !== "started").length;
  return {
    activeTorrentCount: torrents.length - paused,
    downloadSpeed: Math.round(stats.downloadRate),
    pausedTorrentCount: paused,
    torrentCount: torrents.length,
    uploadSpeed: Math.round(stats.uploadRate),
    "cumulative-stats": {
      uploadedBytes: up,
      downloadedBytes: down,
      filesAdded: torrents.length,
      sessionCount: 1,
      secondsActive: seconds,
    },
    "current-stats": {
      uploadedBytes: stats.uploaded,
      downloadedBytes: stats.downloaded,
      filesAdded: torrents.length,
      sessionCount: 1,
      secondsActive: seconds,
    },
  };
}

async function freeSpace(
  _c: MethodContext,
  a: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const path = readString(a, "path");
  if (path === undefined) throw new RpcError("no path");
  if (!isAbsolute(path)) {
    throw new RpcError("directory path is not absolute", RPC_ERROR.pathNotAbsolute);
  }
  try {
    const st = await statfs(path);
    return { path, "size-bytes": st.bavail * st.bsize, total_size: st.blocks * st.bsize };
  } catch (err) {
    throw new RpcError(message(err), RPC_ERROR.systemError);
  }
}

// ------------------------------------------------------------------ helpers

function isString(x: unknown): x is string {
  return typeof x === "string";
}

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}

/** Waits for `p` at most `ms` (it goes on in the background); with 0, only for what is already settled. */
async function settle(p: Promise<unknown>, ms = SETTLE_MS): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p.catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}
