/**
 * BEP 9, serving side: peers that came with a magnet link ask for our info dictionary in 16 KiB pieces over
 * `ut_metadata`; we answer with the piece or a reject. (The fetching side is `metadata_fetcher.ts`.)
 *
 * @module
 */

import type { PeerConnection } from "../peer.ts";
import { decodeMetadataMessage, encodeMetadataMessage, METADATA_PIECE } from "../wire/metadata.ts";

/**
 * Answers one `ut_metadata` message from a peer (requests only; data and rejects are for fetchers). A malformed
 * message closes the connection.
 *
 * @param peer The connection it came on.
 * @param payload The extended message's payload.
 * @param info The bencoded info dictionary.
 */
export function serveMetadata(peer: PeerConnection, payload: Uint8Array, info: Uint8Array): void {
  let m;
  try {
    m = decodeMetadataMessage(payload);
  } catch (err) {
    return peer.close(`protocol violation: ${(err as Error).message}`);
  }
  if (m.type !== "request") return;
  const remoteId = peer.remoteExtensions?.m["ut_metadata"];
  if (!remoteId) return;
  const begin = m.piece * METADATA_PIECE;
  if (begin >= info.length) {
    peer.sendExtended(remoteId, encodeMetadataMessage({ type: "reject", piece: m.piece }));
    return;
  }
  peer.sendExtended(
    remoteId,
    encodeMetadataMessage({
      type: "data",
      piece: m.piece,
      totalSize: info.length,
      data: info.subarray(begin, begin + METADATA_PIECE),
    }),
  );
}
