/**
 * The metadata exchange (BEP 9, `ut_metadata`): the info dictionary travels between peers in 16 KiB pieces, so a
 * magnet link (just an info hash) is enough to start.
 *
 * @module
 */

import { concat } from "../_bytes.ts";
import { type BencodeDict, decodePrefix, encode } from "../bencode.ts";
import { WireError } from "./errors.ts";

/** Size of a metadata piece. */
export const METADATA_PIECE = 16384;

/** Largest metadata we accept (an info dictionary bigger than this is not a torrent worth fetching). */
export const MAX_METADATA_SIZE = 16 * 1024 * 1024;

/** Our local extension id for `ut_metadata` (what we announce in the extension handshake). */
export const UT_METADATA_ID = 2;

/** A `ut_metadata` message. */
export type MetadataMessage =
  | { type: "request"; piece: number }
  | { type: "data"; piece: number; totalSize: number; data: Uint8Array }
  | { type: "reject"; piece: number };

/**
 * Decodes a `ut_metadata` message (the bytes after the extended message's id).
 *
 * @throws {WireError} When it is malformed.
 */
export function decodeMetadataMessage(payload: Uint8Array): MetadataMessage {
  let dict: BencodeDict, length: number;
  try {
    const r = decodePrefix(payload, { maxDepth: 4, maxTokens: 64 });
    dict = r.value as BencodeDict;
    length = r.length;
  } catch (err) {
    throw new WireError(`ut_metadata message is not bencode: ${(err as Error).message}`);
  }
  if (!dict || typeof dict !== "object" || dict instanceof Uint8Array || Array.isArray(dict)) {
    throw new WireError("ut_metadata message is not a dictionary");
  }
  const type = dict["msg_type"], piece = dict["piece"];
  if (
    typeof type !== "number" || typeof piece !== "number" || piece < 0 ||
    piece > MAX_METADATA_SIZE / METADATA_PIECE
  ) {
    throw new WireError("ut_metadata message without a valid msg_type and piece");
  }
  if (type === 0) return { type: "request", piece };
  if (type === 2) return { type: "reject", piece };
  if (type === 1) {
    const total = dict["total_size"];
    if (typeof total !== "number" || total <= 0 || total > MAX_METADATA_SIZE) {
      throw new WireError("ut_metadata data message with a bad total_size");
    }
    return { type: "data", piece, totalSize: total, data: payload.subarray(length) };
  }
  throw new WireError(`unknown ut_metadata msg_type ${type}`);
}

/** Encodes a `ut_metadata` message. */
export function encodeMetadataMessage(m: MetadataMessage): Uint8Array {
  if (m.type === "data") {
    return concat([encode({ msg_type: 1, piece: m.piece, total_size: m.totalSize }), m.data]);
  }
  return encode({ msg_type: m.type === "request" ? 0 : 2, piece: m.piece });
}
