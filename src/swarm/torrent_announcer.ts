/**
 * One torrent's {@linkcode Announcer} made from its options: its trackers (none when turned off), a hybrid
 * torrent's second info hash, and the `left` the trackers hear (without padding: BEP 47 padding files, a v2
 * torrent's gaps).
 *
 * @module
 */

import type { Metainfo } from "../metainfo.ts";
import { Announcer } from "./announcer.ts";
import { paddingByPiece } from "./padding.ts";
import type { PiecePicker } from "./piece_picker.ts";
import type { TorrentEmit, TorrentOptions } from "./types.ts";

/** Options of {@linkcode torrentAnnouncer}. */
export interface TorrentAnnouncerOptions {
  /** The torrent. */
  meta: Metainfo;
  /** The torrent's options (`trackers`, `port`, `dualStack`, `udpSocket`). */
  settings: Pick<TorrentOptions, "trackers" | "port" | "dualStack" | "udpSocket">;
  /** Our peer id. */
  peerId: Uint8Array;
  /** The picker (what is left, what is wanted). */
  picker: PiecePicker;
  /** Payload bytes sent and received so far. */
  transferred: () => { uploaded: number; downloaded: number };
  /** A tracker gave a peer. */
  addPeer: (host: string, port: number) => void;
  /** Receives engine events. */
  emit: TorrentEmit;
  /** The clock (ms). */
  now: () => number;
}

/**
 * Makes the announcer of one torrent.
 *
 * @param o The torrent, its options and what the trackers hear.
 * @returns The announcer.
 */
export function torrentAnnouncer(o: TorrentAnnouncerOptions): Announcer {
  const { meta, settings, picker } = o;
  /** Padding bytes of pieces that have any (not counted in what trackers hear as `left`). */
  const padding = paddingByPiece(meta);
  const left = (): number => {
    let left = picker.leftBytes;
    for (const [i, pad] of padding) if (picker.wants(i)) left -= pad;
    return Math.max(0, left);
  };
  return new Announcer({
    announceList: settings.trackers === false ? [] : meta.announceList,
    infoHash: meta.infoHash,
    // a hybrid torrent is announced under its truncated v2 hash too (BEP 52)
    ...(meta.version === "hybrid" ? { alsoInfoHash: meta.infoHashV2!.subarray(0, 20) } : {}),
    peerId: o.peerId,
    port: settings.port,
    stats: () => ({ ...o.transferred(), left: left() }),
    onPeers: (peers) => {
      for (const p of peers) o.addPeer(p.host, p.port);
    },
    onEvent: (e) => o.emit("tracker", e),
    now: o.now,
    ...(settings.dualStack ? { dualStack: settings.dualStack } : {}),
    ...(settings.udpSocket ? { udpSocket: settings.udpSocket } : {}),
  });
}
