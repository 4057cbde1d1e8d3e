/**
 * `torrent-get`'s fields: each field Transmission's RPC defines, computed from a {@linkcode SessionTorrent}, its
 * session and the {@linkcode ActivityLog}. Fields are looked up by their snake_case name (see `names.ts`), so
 * `hashString`, `hash-string` and `hash_string` are the same field; nested objects (files, peers, trackers) are
 * built with the old protocol's names and respelled for JSON-RPC answers by the server.
 *
 * Transmission's meanings, where ours differ:
 * - `status`: 0 stopped (also a paused torrent), 2 verifying, 3/5 waiting in the download/seed queue, 4
 *   downloading (also a magnet link fetching its metadata), 6 seeding; `isFinished` only when a seeding limit
 *   stopped the torrent.
 * - File priorities: the engine's priority 0 is "not wanted", 1 low, 2 normal, 3 and more high (a torrent added
 *   through the RPC gets 2 for every wanted file).
 * - `desiredAvailable` counts what connected seeds can give (the engine keeps no per-peer piece map here).
 * - Trackers report their last announce and the next one; there is no scrape.
 *
 * @module
 */

import { formatMagnet, parseMagnet } from "../magnet.ts";
import type { Session } from "../session/session.ts";
import type { SessionTorrent } from "../session/session_torrent.ts";
import type { PeerInfo } from "../swarm/types.ts";
import type { ActivityLog } from "./activity.ts";

/** Bytes in Transmission's "kB" of speeds (its `units.speed-bytes`). */
export const SPEED_K = 1000;

/** Status codes of `torrent-get`'s `status`. */
export const STATUS = {
  stopped: 0,
  checkWait: 1,
  check: 2,
  downloadWait: 3,
  download: 4,
  seedWait: 5,
  seed: 6,
} as const;

/** Everything a field needs besides the torrent. */
export interface FieldContext {
  /** The session. */
  session: Session;
  /** What the engine does not keep. */
  activity: ActivityLog;
  /** Answering in JSON-RPC 2.0 (booleans where the old protocol has 0/1). */
  jsonrpc: boolean;
  /** Where the session keeps .torrent files (`torrentFile`); none without a state directory. */
  stateDir: string | undefined;
  /** Per-torrent speed limits shown while not limited, kB/s. */
  speedLimits(t: SessionTorrent): { down: number; up: number };
}

/**
 * The Transmission view of an engine priority.
 *
 * @param p The engine's file priority.
 * @returns Wanted, and -1 (low), 0 (normal) or 1 (high).
 */
export function transmissionPriority(p: number): { wanted: boolean; priority: number } {
  return { wanted: p > 0, priority: p <= 0 || p === 2 ? 0 : p === 1 ? -1 : 1 };
}

/**
 * The engine priority for a Transmission file setting.
 *
 * @param wanted Whether to download the file.
 * @param priority -1 (low), 0 (normal) or 1 (high).
 * @returns The engine's priority (0 = not wanted).
 */
export function enginePriority(wanted: boolean, priority: number): number {
  return wanted ? Math.max(-1, Math.min(1, priority)) + 2 : 0;
}

/** The Transmission status of a torrent. */
export function torrentStatus(t: SessionTorrent): number {
  if (t.checking) return STATUS.check;
  if (!t.hasMetadata) {
    return t.desired === "stopped" || t.errorText ? STATUS.stopped : STATUS.download;
  }
  const e = t.engine;
  if (!e || !t.loaded) return t.errorText ? STATUS.stopped : STATUS.checkWait;
  if (t.desired !== "started" || t.run === "off") return STATUS.stopped;
  if (t.run === "queued") return e.complete ? STATUS.seedWait : STATUS.downloadWait;
  return e.complete ? STATUS.seed : STATUS.download;
}

/** The torrent's name, before its metadata too (the magnet link's `dn`, else the info hash). */
export function torrentName(t: SessionTorrent): string {
  if (t.hasMetadata) return t.name;
  try {
    if (t.magnetUri) return parseMagnet(t.magnetUri).name ?? t.infohashHex;
  } catch { /* a link we added parses */ }
  return t.infohashHex;
}

/** One torrent's fields, computed on demand and each computed once. */
export class TorrentView {
  readonly t: SessionTorrent;
  readonly #ctx: FieldContext;
  #peers: PeerInfo[] | undefined;
  #files: number[] | undefined;

  /**
   * Creates a view of one torrent for one request.
   *
   * @param t The torrent.
   * @param ctx The session and what else the fields need.
   */
  constructor(t: SessionTorrent, ctx: FieldContext) {
    this.t = t;
    this.#ctx = ctx;
  }

  /**
   * The value of a field, or `undefined` for a field we do not know.
   *
   * @param name The field's snake_case name.
   */
  get(name: string): unknown {
    const f = FIELDS[name];
    return f ? f(this, this.#ctx) : undefined;
  }

  /** The connected peers (read once per request). */
  get peers(): PeerInfo[] {
    return this.#peers ??= this.t.peers;
  }

  /** Verified bytes of each file. */
  get fileBytes(): number[] {
    return this.#files ??= fileBytesCompleted(this.t);
  }

  /** Bytes of every verified piece. */
  get haveValid(): number {
    const t = this.t;
    const have = t.engine?.have;
    if (!have || !t.hasMetadata) return 0;
    const m = t.metainfo;
    if (have.full) return m.length;
    let bytes = have.count * m.pieceLength;
    const last = m.pieceCount - 1;
    if (have.has(last)) bytes -= m.pieceCount * m.pieceLength - m.length;
    return bytes;
  }

  /** Bytes of the wanted files. */
  get sizeWhenDone(): number {
    return this.t.hasMetadata ? this.t.progress.total : 0;
  }

  /** Wanted bytes not verified yet. */
  get leftUntilDone(): number {
    if (!this.t.hasMetadata) return 0;
    const p = this.t.progress;
    return Math.max(0, p.total - p.have);
  }
}

type Field = (v: TorrentView, ctx: FieldContext) => unknown;

const seconds = (ms: number) => Math.floor(ms / 1000);
const meta = (v: TorrentView) => v.t.hasMetadata ? v.t.metainfo : undefined;
const bool01 = (b: boolean, ctx: FieldContext) => ctx.jsonrpc ? b : b ? 1 : 0;

/** The fields, by snake_case name. */
const FIELDS: Record<string, Field> = {
  activity_date: (v, c) => c.activity.of(v.t).activityDate,
  added_date: (v) => seconds(v.t.dates.added),
  bandwidth_priority: () => 0,
  comment: (v) => meta(v)?.comment ?? "",
  corrupt_ever: (v, c) => c.activity.of(v.t).corruptEver,
  creator: (v) => meta(v)?.createdBy ?? "",
  date_created: (v) => {
    const d = meta(v)?.creationDate;
    return d ? seconds(d.getTime()) : 0;
  },
  desired_available: (v) => {
    const m = meta(v);
    return m && v.peers.some((p) => p.have === m.pieceCount) ? v.leftUntilDone : 0;
  },
  done_date: (v) => seconds(v.t.dates.done),
  download_dir: (v) => v.t.basedir,
  downloaded_ever: (v) => v.t.totals.downloaded,
  download_limit: (v, c) =>
    v.t.limits.download > 0
      ? Math.max(1, Math.round(v.t.limits.download / SPEED_K))
      : c.speedLimits(v.t).down,
  download_limited: (v) => v.t.limits.download > 0,
  edit_date: () => 0,
  error: (v) => torrentError(v).code,
  error_string: (v) => torrentError(v).text,
  eta: (v) => eta(v),
  eta_idle: () => -1,
  file_count: (v) => meta(v)?.files.length ?? 0,
  files: (v) => {
    const m = meta(v);
    if (!m) return [];
    const bytes = v.fileBytes;
    return m.files.map((f, i) => ({
      bytesCompleted: bytes[i],
      length: f.length,
      name: f.path.join("/"),
      beginPiece: Math.floor(f.offset / m.pieceLength),
      endPiece: f.length === 0
        ? Math.floor(f.offset / m.pieceLength)
        : Math.floor((f.offset + f.length - 1) / m.pieceLength) + 1,
    }));
  },
  file_stats: (v) => {
    const e = v.t.engine;
    if (!meta(v) || !e) return [];
    const bytes = v.fileBytes;
    return e.priorities.map((p, i) => {
      const tp = transmissionPriority(p);
      return { bytesCompleted: bytes[i], wanted: tp.wanted, priority: tp.priority };
    });
  },
  group: () => "",
  hash_string: (v) => v.t.infohashHex,
  have_unchecked: () => 0,
  have_valid: (v) => v.haveValid,
  honors_session_limits: () => true,
  id: (v) => v.t.id,
  is_finished: (v) => v.t.finished,
  is_private: (v) => meta(v)?.private ?? false,
  is_stalled: () => false,
  labels: () => [],
  left_until_done: (v) => v.leftUntilDone,
  magnet_link: (v) => {
    const m = meta(v);
    if (!m) return v.t.magnetUri ?? formatMagnet({ infoHash: v.t.infohash });
    return formatMagnet({
      infoHash: v.t.infohash,
      name: m.name,
      trackers: m.announceList.flat(),
    });
  },
  manual_announce_time: () => -1,
  max_connected_peers: (v) => maxPeers(v.t),
  metadata_percent_complete: (v) => v.t.hasMetadata ? 1 : 0,
  name: (v) => torrentName(v.t),
  peer_limit: (v) => maxPeers(v.t),
  peers: (v) => v.peers.map((p) => peerEntry(p, meta(v)?.pieceCount ?? 0)),
  peers_connected: (v) => v.peers.length,
  peers_from: (v) => {
    const from = {
      fromCache: 0,
      fromDht: 0,
      fromIncoming: 0,
      fromLpd: 0,
      fromLtep: 0,
      fromPex: 0,
      fromTracker: 0,
    };
    for (const p of v.peers) {
      if (p.source === "dht") from.fromDht++;
      else if (p.source === "incoming") from.fromIncoming++;
      else if (p.source === "lsd") from.fromLpd++;
      else if (p.source === "pex") from.fromPex++;
      else if (p.source === "tracker") from.fromTracker++;
      else from.fromCache++;
    }
    return from;
  },
  peers_getting_from_us: (v) => v.peers.filter((p) => p.uploadRate >= 1).length,
  peers_sending_to_us: (v) => v.peers.filter((p) => p.downloadRate >= 1).length,
  percent_complete: (v) => {
    const m = meta(v);
    return m && m.length > 0 ? v.haveValid / m.length : 0;
  },
  percent_done: (v) => {
    const total = v.sizeWhenDone;
    return total > 0 ? (total - v.leftUntilDone) / total : 0;
  },
  pieces: (v) => v.t.engine?.have.bytes.toBase64() ?? "",
  piece_count: (v) => meta(v)?.pieceCount ?? 0,
  piece_size: (v) => meta(v)?.pieceLength ?? 0,
  priorities: (v) =>
    v.t.engine && meta(v) ? v.t.engine.priorities.map((p) => transmissionPriority(p).priority) : [],
  primary_mime_type: (v) => {
    const m = meta(v);
    if (!m || m.files.length === 0) return "application/octet-stream";
    const biggest = m.files.reduce((a, b) => (b.length > a.length ? b : a));
    return mimeType(biggest.path[biggest.path.length - 1]);
  },
  queue_position: (v, c) => Math.max(0, c.session.queuePosition(v.t)),
  rate_download: (v) => Math.round(v.t.downloadRate),
  rate_upload: (v) => Math.round(v.t.uploadRate),
  recheck_progress: (v) => v.t.progress.checking ?? 0,
  seconds_downloading: (v, c) => c.activity.of(v.t).secondsDownloading,
  seconds_seeding: (v) => Math.floor(v.t.totals.seedingSeconds),
  seed_idle_limit: (v, c) => {
    const own = v.t.options.idleSeedingLimit;
    const s = own === undefined || own === 0 ? c.session.limits.idleSeedingLimit : own;
    return s > 0 ? Math.max(1, Math.round(s / 60)) : 30;
  },
  seed_idle_mode: (v) => stopMode(v.t.options.idleSeedingLimit),
  seed_ratio_limit: (v, c) => {
    const own = v.t.options.ratioLimit;
    const r = own === undefined || own === 0 ? c.session.limits.ratioLimit : own;
    return r > 0 ? r : 2;
  },
  seed_ratio_mode: (v) => stopMode(v.t.options.ratioLimit),
  size_when_done: (v) => v.sizeWhenDone,
  start_date: (v, c) => c.activity.of(v.t).startDate,
  status: (v) => torrentStatus(v.t),
  torrent_file: (v, c) =>
    c.stateDir && v.t.hasMetadata ? `${c.stateDir}/torrents/${v.t.infohashHex}.torrent` : "",
  total_size: (v) => meta(v)?.length ?? 0,
  trackers: (v) =>
    trackerList(v).map(({ url, tier, id }) => ({
      announce: url,
      id,
      scrape: scrapeUrl(url),
      sitename: sitename(url),
      tier,
    })),
  tracker_list: (v) => (meta(v)?.announceList ?? []).map((tier) => tier.join("\n")).join("\n\n"),
  tracker_stats: (v) => trackerStats(v),
  uploaded_ever: (v) => v.t.totals.uploaded,
  upload_limit: (v, c) =>
    v.t.limits.upload > 0
      ? Math.max(1, Math.round(v.t.limits.upload / SPEED_K))
      : c.speedLimits(v.t).up,
  upload_limited: (v) => v.t.limits.upload > 0,
  upload_ratio: (v) => {
    const up = v.t.totals.uploaded;
    const base = v.t.totals.downloaded || v.haveValid;
    return base > 0 ? up / base : up > 0 ? -2 : -1;
  },
  wanted: (v, c) => v.t.engine && meta(v) ? v.t.engine.priorities.map((p) => bool01(p > 0, c)) : [],
  webseeds: (v) => meta(v)?.urlList ?? [],
  webseeds_sending_to_us: () => 0,
};

/** Every field `torrent-get` knows, by snake_case name. */
export const TORRENT_FIELDS: readonly string[] = Object.keys(FIELDS);

function maxPeers(t: SessionTorrent): number {
  return t.engine?.maxPeers ?? t.options.maxPeers ?? 50;
}

/** Transmission's seed ratio/idle mode: 0 the session's, 1 the torrent's own, 2 unlimited. */
function stopMode(own: number | undefined): number {
  return own === undefined ? 0 : own > 0 ? 1 : 2;
}

function eta(v: TorrentView): number {
  const t = v.t;
  if (torrentStatus(t) !== STATUS.download) return -1;
  const left = v.leftUntilDone;
  if (left === 0) return -1;
  const rate = t.downloadRate;
  return rate >= 1 ? Math.ceil(left / rate) : -2;
}

/** Transmission's `error` (0 none, 1 tracker warning, 2 tracker error, 3 local error) and its text. */
function torrentError(v: TorrentView): { code: number; text: string } {
  const local = v.t.errorText;
  if (local) return { code: 3, text: local };
  let warning: string | undefined;
  for (const tier of v.t.engine ? v.t.trackers : []) {
    for (const a of tier.announces ?? []) {
      // only a tracker's refusal is an error, as in Transmission (one that cannot be reached is retried)
      if (a.failureReason !== undefined) return { code: 2, text: a.failureReason };
      if (a.ok && a.message) warning ??= a.message;
    }
  }
  return warning ? { code: 1, text: warning } : { code: 0, text: "" };
}

/** Verified bytes of each file of the torrent, from the piece bitfield. */
export function fileBytesCompleted(t: SessionTorrent): number[] {
  const have = t.engine?.have;
  if (!t.hasMetadata || !have) return [];
  const m = t.metainfo;
  const P = m.pieceLength;
  return m.files.map((f) => {
    if (f.length === 0 || have.full) return f.length;
    const end = f.offset + f.length;
    let bytes = 0;
    for (let i = Math.floor(f.offset / P); i * P < end; i++) {
      if (have.has(i)) bytes += Math.min(end, (i + 1) * P) - Math.max(f.offset, i * P);
    }
    return bytes;
  });
}

/** A peer as Transmission describes it, with its flags ("DUEI" and so on). */
function peerEntry(p: PeerInfo, pieceCount: number): Record<string, unknown> {
  const m = /^\[(.*)\]:(\d+)$/.exec(p.address) ?? /^(.*):(\d+)$/.exec(p.address);
  const downloadingFrom = p.amInterested && !p.peerChoking;
  const uploadingTo = p.peerInterested && !p.amChoking;
  let flags = "";
  if (downloadingFrom) flags += "D";
  else if (p.amInterested) flags += "d";
  if (uploadingTo) flags += "U";
  else if (p.peerInterested) flags += "u";
  if (!p.peerChoking && !p.amInterested) flags += "K";
  if (!p.amChoking && !p.peerInterested) flags += "?";
  if (p.source === "dht") flags += "H";
  if (p.source === "pex") flags += "X";
  if (p.encrypted !== false) flags += "E";
  if (p.incoming) flags += "I";
  if (p.transport === "utp") flags += "T";
  return {
    address: m ? m[1] : p.address,
    clientName: p.client,
    clientIsChoked: p.peerChoking,
    clientIsInterested: p.amInterested,
    flagStr: flags,
    isDownloadingFrom: downloadingFrom && p.downloadRate >= 1,
    isEncrypted: p.encrypted !== false,
    isIncoming: p.incoming,
    isUploadingTo: uploadingTo && p.uploadRate >= 1,
    isUTP: p.transport === "utp",
    peerIsChoked: p.amChoking,
    peerIsInterested: p.peerInterested,
    port: m ? Number(m[2]) : 0,
    progress: pieceCount > 0 ? p.have / pieceCount : 0,
    rateToClient: Math.round(p.downloadRate),
    rateToPeer: Math.round(p.uploadRate),
    bytesToClient: p.downloaded,
    bytesToPeer: p.uploaded,
  };
}

/** The torrent's trackers in tier order, numbered as Transmission numbers them. */
function trackerList(v: TorrentView): { url: string; tier: number; id: number; backup: boolean }[] {
  const m = meta(v);
  if (!m) return [];
  const out: { url: string; tier: number; id: number; backup: boolean }[] = [];
  let id = 0;
  // the engine's view orders each tier with the tracker in use first
  const tiers = v.t.engine ? v.t.trackers.map((t) => t.urls) : m.announceList;
  tiers.forEach((urls, tier) => {
    urls.forEach((url, i) => out.push({ url, tier, id: id++, backup: i > 0 }));
  });
  return out;
}

function trackerStats(v: TorrentView): Record<string, unknown>[] {
  const tiers = v.t.engine ? v.t.trackers : [];
  return trackerList(v).map(({ url, tier, id, backup }) => {
    const view = tiers[tier];
    const a = view?.announces?.find((r) => r.url === url);
    const counts = a?.ok ? view : undefined;
    const next = !backup && view?.nextAnnounce ? Math.floor(view.nextAnnounce / 1000) : 0;
    return {
      announce: url,
      // 1 = waiting for the next announce, 0 = none scheduled (stopped)
      announceState: next > 0 ? 1 : 0,
      downloadCount: -1,
      hasAnnounced: a !== undefined,
      hasScraped: false,
      host: trackerHost(url),
      id,
      isBackup: backup,
      lastAnnouncePeerCount: a?.ok ? a.peers : 0,
      lastAnnounceResult: !a ? "" : a.ok ? "Success" : a.failureReason ?? trackerMessage(a.message),
      lastAnnounceStartTime: 0,
      lastAnnounceSucceeded: a?.ok ?? false,
      lastAnnounceTime: a ? Math.floor(a.at / 1000) : 0,
      lastAnnounceTimedOut: a !== undefined && !a.ok && /timed? ?out|abort/i.test(a.message ?? ""),
      lastScrapeResult: "",
      lastScrapeStartTime: 0,
      lastScrapeSucceeded: false,
      lastScrapeTime: 0,
      lastScrapeTimedOut: false,
      leecherCount: counts ? counts.incomplete : -1,
      nextAnnounceTime: next,
      nextScrapeTime: 0,
      scrape: scrapeUrl(url),
      scrapeState: 0,
      seederCount: counts ? counts.complete : -1,
      sitename: sitename(url),
      tier,
    };
  });
}

/** A tracker error without the "Tracker <url>: " the engine puts before it. */
function trackerMessage(message: string | undefined): string {
  return (message ?? "Could not connect to tracker").replace(/^Tracker \S+: /, "");
}

/** BEP 48's scrape URL: `…/announce…` → `…/scrape…`; empty when the tracker has none. */
function scrapeUrl(announce: string): string {
  const slash = announce.lastIndexOf("/");
  if (slash < 0 || !announce.startsWith("announce", slash + 1)) return "";
  return announce.slice(0, slash + 1) + "scrape" + announce.slice(slash + 1 + "announce".length);
}

function trackerHost(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return url;
  }
}

/** The tracker's site: the name below the top-level domain, or the address. */
function sitename(url: string): string {
  try {
    const host = new URL(url).hostname;
    if (/^[0-9.]+$/.test(host) || host.startsWith("[")) return host;
    const labels = host.split(".");
    return labels.length >= 2 ? labels[labels.length - 2] : host;
  } catch {
    return "";
  }
}

const MIME: [RegExp, string][] = [
  [/\.(mp4|m4v)$/i, "video/mp4"],
  [/\.(mkv|webm|avi|mov|ts|mpe?g|ogv|wmv|flv)$/i, "video/x-matroska"],
  [/\.(mp3|flac|ogg|oga|opus|m4a|wav|aac|wma)$/i, "audio/mpeg"],
  [/\.(jpe?g|png|gif|webp|bmp|tiff?)$/i, "image/jpeg"],
  [/\.(txt|nfo|md|srt|vtt|pdf|epub|docx?)$/i, "text/plain"],
  [/\.(zip|rar|7z|gz|xz|bz2|tar|iso|img|dmg)$/i, "application/zip"],
];

/** A rough type of a file from its extension: what clients pick an icon by (`primary-mime-type`). */
function mimeType(name: string): string {
  for (const [re, type] of MIME) if (re.test(name)) return type;
  return "application/octet-stream";
}
