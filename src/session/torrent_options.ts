/**
 * What one torrent of a session is made from and how it behaves: its source (a .torrent file, its bytes, a parsed
 * torrent or a magnet link), its initial state, and its options (directory, priorities, limits, paths, …).
 *
 * @module
 */

import type { MagnetLink } from "../magnet.ts";
import type { Metainfo } from "../metainfo.ts";
import type { PieceCacheIndex } from "../storage/storage.ts";
import type { TorrentTrace } from "../swarm/types.ts";

/** Initial state, as in the seed: started (default), paused or stopped. */
export type InitialState = "started" | "paused" | "stopped";

/** Where a torrent comes from: exactly one of these. */
export interface TorrentSource {
  /** Path to a .torrent file. */
  path?: string;
  /** The bytes of a .torrent file. */
  torrent?: Uint8Array;
  /** An already parsed torrent. */
  metainfo?: Metainfo;
  /**
   * A magnet link (BEP 9): the info dictionary is fetched from the link's peers (`x.pe`), trackers (`tr`) and
   * the DHT first, verified against the info hash, then the download proceeds as for a .torrent.
   */
  magnet?: string | MagnetLink;
}

/** How one torrent behaves (each defaults to its session's setting where the session has one). */
export interface TorrentAddOptions {
  /**
   * Directory the data is stored in / read from; multi-file torrents get a folder below it.
   * @default {the session's basedir}
   */
  basedir?: string;
  /**
   * "started" (normal), "paused" (connections made and accepted, peers choked, no requests made or
   * filled) or "stopped" (no outgoing connections, incoming refused, files closed). `start()` resumes from
   * either.
   * @default {"started"}
   */
  state?: InitialState;
  /**
   * Per-file priorities (default 1 each; 0 = do not download). Without them, a magnet link's file selection
   * (BEP 53 `so=`) decides: 1 for the files it names, 0 for the others.
   */
  priorities?: number[];
  /** Peers to dial at start. */
  peers?: { host: string; port: number }[];
  /** Announce to the torrent's trackers. @default {true} */
  trackers?: boolean;
  /**
   * Download from the torrent's web seeds (BEP 19 `url-list`, BEP 17 `httpseeds`; a magnet link's `ws=`);
   * `extraWebSeeds` are used either way.
   * @default {true}
   */
  webSeeds?: boolean;
  /** More web seeds: BEP 19 URLs (a file, or a folder ending in `/` holding the torrent's files). */
  extraWebSeeds?: string[];
  /** Most connected peers for this torrent. @default {50} */
  maxPeers?: number;
  /** This torrent's download limit, bytes/s (0 = none; the session's limit applies too). @default {0} */
  downloadLimit?: number;
  /** This torrent's upload limit, bytes/s (0 = none; the session's limit applies too). @default {0} */
  uploadLimit?: number;
  /** Stop seeding once uploaded ÷ size reaches this (0 = never). @default {the session's} */
  ratioLimit?: number;
  /** Stop seeding after this many seconds of seeding (0 = never). @default {the session's} */
  seedTimeLimit?: number;
  /** Stop seeding after this many seconds without uploading anything (0 = never). @default {the session's} */
  idleSeedingLimit?: number;
  /**
   * Where each file lives, replacing the torrent's own paths (files the user renamed): one list of path
   * components relative to `basedir` per file, in torrent order, each component a plain name (no separators,
   * no `.` or `..`).
   */
  paths?: string[][];
  /** How long to look for the metadata of a magnet link (ms). @default {120000} */
  metadataTimeoutMs?: number;
  /** The value of `pieceCache` from a previous instance, to restore the part file's index. */
  pieceCache?: PieceCacheIndex;
  /**
   * Where resume data is kept; `false` for none.
   * @default {"<stateDir>/resume/<infohash>.resume", or "<basedir>/.<name>.seedbed-resume" without a stateDir}
   */
  resumeFile?: string | false;
  /** Upload every block at most once, to the first peer that asks. @default {false} */
  uploadEachPieceOnce?: boolean;
  /**
   * Download pieces in order (lowest first) instead of rarest first: the whole torrent plays from the start
   * while it downloads, at some cost to the swarm. Readers of `ClientFile.stream` get their pieces
   * first either way.
   * @default {false}
   */
  sequential?: boolean;
  /** Called with the piece index whenever a piece passes its hash check. */
  onHashPass?: (index: number) => void;
  /** Called with the piece index whenever a piece fails its hash check. */
  onHashFail?: (index: number) => void;
  /**
   * Called with each decision of the engine as it is made: blocks requested and received, endgame cancels,
   * chokes and unchokes (optimistic or not), failed write retries. For tests and diagnostics; it runs per block.
   */
  trace?: (event: TorrentTrace) => void;
}
