/**
 * A session torrent's metadata phase: a magnet link's info dictionary fetched from its peers, trackers and the DHT
 * (BEP 9) and made a .torrent, the user's renamed paths applied to the metadata, and what a magnet link adds to the
 * download — its file selection (BEP 53 `so`) and web seeds (`ws`).
 *
 * @module
 */

import { type MagnetLink, torrentFromMetadata } from "../magnet.ts";
import type { Metainfo } from "../metainfo.ts";
import { dialTransports } from "../swarm/dialer.ts";
import { fetchMetadata } from "../swarm/metadata_fetcher.ts";
import type { TorrentOptions } from "../swarm/types.ts";
import type { PeerAddress } from "../tracker/compact.ts";

/** Options for {@linkcode fetchMagnetMetadata}. */
export interface MagnetMetadataOptions {
  /** Our peer id. */
  peerId: Uint8Array;
  /** Our listening port. */
  port: number;
  /** Peers to ask besides the link's own (`x.pe`). */
  peers: readonly { host: string; port: number }[];
  /** Aborts the fetch. */
  signal: AbortSignal;
  /** Gives the fetch a sink for the peers the DHT finds. */
  discover: (add: (peers: PeerAddress[]) => void) => void;
  /** The session's engine settings (encryption, transports). */
  engine: Partial<TorrentOptions>;
  /** How long to look for the metadata (ms). @default {120000} */
  timeoutMs?: number;
}

/**
 * Fetches a magnet link's info dictionary (verified against its info hash) and makes it a .torrent with the
 * link's trackers.
 *
 * @param link The magnet link.
 * @param options Who we are and whom to ask.
 * @returns The .torrent's bytes.
 * @throws {Error} When the metadata cannot be fetched in time, or the fetch is aborted.
 */
export async function fetchMagnetMetadata(
  link: MagnetLink,
  options: MagnetMetadataOptions,
): Promise<Uint8Array> {
  const engine = options.engine;
  const info = await fetchMetadata({
    infoHash: link.infoHash,
    ...(link.infoHashV2 ? { infoHashV2: link.infoHashV2 } : {}),
    peerId: options.peerId,
    port: options.port,
    peers: [...link.peers, ...options.peers],
    trackers: link.trackers.map((t) => [t]),
    signal: options.signal,
    discover: options.discover,
    ...(engine.encryption ? { encryption: engine.encryption } : {}),
    ...(engine.rc4Only ? { rc4Only: true } : {}),
    transports: dialTransports(engine),
    ...(engine.utpFirst ? { utpFirst: engine.utpFirst } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  return torrentFromMetadata(info, link.trackers);
}

/**
 * A magnet link's file selection (BEP 53 `so`) as priorities: 1 for the files it names, 0 for the others;
 * undefined when it names none of the torrent's files (everything is downloaded).
 */
export function selectOnly(link: MagnetLink, meta: Metainfo): number[] | undefined {
  const chosen = new Set(
    link.selectOnly?.filter((i) => i < meta.files.length && !meta.files[i].padding),
  );
  if (chosen.size === 0) return undefined;
  return meta.files.map((_, i) => chosen.has(i) ? 1 : 0);
}

/** The user's web seeds and a magnet link's (`ws=`), as the engine's option. */
export function webSeedsOption(
  user: readonly string[] | undefined,
  magnet: readonly string[] | undefined,
): { extraWebSeeds?: string[] } {
  const all = [...(user ?? []), ...(magnet ?? [])];
  return all.length > 0 ? { extraWebSeeds: all } : {};
}

/**
 * The torrent with its files at other paths (files renamed by the user); the name follows a renamed single file
 * or top folder.
 *
 * @throws {TypeError} When the list does not fit the torrent or a component is not a plain name.
 */
export function withPaths(meta: Metainfo, paths: string[][]): Metainfo {
  if (!Array.isArray(paths) || paths.length !== meta.files.length) {
    throw new TypeError(`paths: ${meta.files.length} file paths expected`);
  }
  for (const p of paths) {
    if (!Array.isArray(p) || p.length === 0 || !p.every(isPlainName)) {
      throw new TypeError(`paths: ${JSON.stringify(p)} is not a relative path of plain names`);
    }
  }
  const tops = new Set(paths.map((p) => p[0]));
  const name = tops.size === 1 ? paths[0][0] : meta.name;
  return { ...meta, name, files: meta.files.map((f, i) => ({ ...f, path: [...paths[i]] })) };
}

/** A path component that stays where it is put: no separator, NUL, `.` or `..`. */
function isPlainName(name: string): boolean {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." &&
    !/[\/\\\0]/.test(name);
}
