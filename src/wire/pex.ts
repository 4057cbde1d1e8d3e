/**
 * Peer exchange (BEP 11, `ut_pex`): connected peers tell each other whom they are connected to.
 *
 * @module
 */

import { type BencodeDict, decode, encode } from "../bencode.ts";
import { encodeCompactPeers, parseCompactPeers, type PeerAddress } from "../tracker/compact.ts";
import { WireError } from "./errors.ts";

/** Our local extension id for `ut_pex`. */
export const UT_PEX_ID = 1;

/** Most contacts taken from one PEX message (BEP 11 asks senders for at most 50 after the first message). */
export const MAX_PEX_PEERS = 200;

/** A decoded PEX message. */
export interface PexMessage {
  /** Peers the sender connected to. */
  added: PeerAddress[];
  /** Peers the sender disconnected from. */
  dropped: PeerAddress[];
}

/**
 * Decodes a `ut_pex` payload, keeping at most {@linkcode MAX_PEX_PEERS} contacts of each kind.
 *
 * @throws {WireError} When it is not a bencoded dictionary.
 */
export function decodePex(payload: Uint8Array): PexMessage {
  let d: unknown;
  try {
    d = decode(payload, { maxDepth: 4, maxTokens: 64, maxLength: 64 * 1024 });
  } catch (err) {
    throw new WireError(`ut_pex message is not bencode: ${(err as Error).message}`);
  }
  if (!d || typeof d !== "object" || d instanceof Uint8Array || Array.isArray(d)) {
    throw new WireError("ut_pex message is not a dictionary");
  }
  const dict = d as BencodeDict;
  const peers = (key: string, family: 4 | 6) => {
    const v = dict[key];
    return v instanceof Uint8Array ? parseCompactPeers(v, family) : [];
  };
  return {
    added: [...peers("added", 4), ...peers("added6", 6)].slice(0, MAX_PEX_PEERS),
    dropped: [...peers("dropped", 4), ...peers("dropped6", 6)].slice(0, MAX_PEX_PEERS),
  };
}

/**
 * Encodes a `ut_pex` payload, with the `added.f` / `added6.f` flag bytes (one per added peer, none set): libtorrent
 * ignores added peers without them.
 */
export function encodePex(m: PexMessage): Uint8Array {
  const added = encodeCompactPeers(m.added, 4), added6 = encodeCompactPeers(m.added, 6);
  return encode({
    added,
    "added.f": new Uint8Array(added.length / 6),
    added6,
    "added6.f": new Uint8Array(added6.length / 18),
    dropped: encodeCompactPeers(m.dropped, 4),
    dropped6: encodeCompactPeers(m.dropped, 6),
  });
}
