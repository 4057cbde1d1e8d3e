/**
 * One torrent's readers wired to its downloads: the {@linkcode PieceDeadlines} of its open readers go to the
 * picker, and when they change the peers are asked for the new pieces at once, after making room in their
 * queues for a piece a reader needs now.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import { PieceDeadlines } from "./deadlines.ts";
import type { Downloads } from "./downloads.ts";
import type { PeerSet } from "./peer_set.ts";
import type { PiecePicker } from "./piece_picker.ts";

/** Options of {@linkcode streamingDeadlines}. */
export interface StreamingOptions {
  /** The torrent. */
  meta: Metainfo;
  /** The pieces verified on disk. */
  have: Bitfield;
  /** The picker (it gets the deadlines). */
  picker: PiecePicker;
  /** The torrent's peers. */
  peers: PeerSet;
  /** The download side. */
  downloads: Downloads;
  /** The torrent is active. */
  active: () => boolean;
  /** The torrent's download rate, bytes/s. */
  rate: () => number;
}

/**
 * Makes the deadlines of one torrent's readers.
 *
 * @param o The torrent and its parts.
 * @returns The deadlines.
 */
export function streamingDeadlines(o: StreamingOptions): PieceDeadlines {
  const { picker, downloads } = o;
  return new PieceDeadlines({
    pieceLength: o.meta.pieceLength,
    totalLength: o.meta.length,
    has: (i) => o.have.has(i),
    apply: (deadlines) => picker.setDeadlines(deadlines),
    rate: o.rate,
    // peers are asked for the new pieces at once, after making room in their queues for `head`, a piece a
    // reader needs now (a seek's first piece, or one waited for that nobody was asked for)
    changed: (head) => {
      if (!o.active()) return;
      if (head !== undefined && picker.needsBlocks(head)) downloads.expedite(head);
      for (const e of o.peers.ready()) {
        if (!e.conn.amInterested) downloads.updateInterest(e);
        downloads.fill(e);
      }
    },
  });
}
