/**
 * Peer exchange (BEP 11, `ut_pex`): connected peers tell each other whom they are connected to, with one flags
 * byte per added peer (`added.f`, `added6.f`): it prefers encryption, it is a seed, it speaks uTP, it was
 * reachable (we dialled it).
 *
 * @module
 */

import { type BencodeDict, decode, encode } from "../bencode.ts";
import {
  encodeCompactPeers,
  ipv4Bytes,
  ipv6Bytes,
  parseCompactPeers,
  type PeerAddress,
} from "../tracker/compact.ts";
import { WireError } from "./errors.ts";

/** Our local extension id for `ut_pex`. */
export const UT_PEX_ID = 1;

/** Most contacts taken from one PEX message (BEP 11 asks senders for at most 50 after the first message). */
export const MAX_PEX_PEERS = 200;

/** `added.f` bit: the peer prefers encryption. */
export const PEX_ENCRYPTION = 0x01;
/** `added.f` bit: the peer is a seed (or upload-only). */
export const PEX_SEED = 0x02;
/** `added.f` bit: the peer supports uTP (BEP 29). */
export const PEX_UTP = 0x04;
/** `added.f` bit: the peer supports `ut_holepunch` (BEP 55). */
export const PEX_HOLEPUNCH = 0x08;
/** `added.f` bit: the peer is reachable (the sender connected to it). */
export const PEX_REACHABLE = 0x10;

/** An added peer with its flags. */
export interface PexPeer extends PeerAddress {
  /** Its `added.f` byte (`PEX_UTP` and the others), when the sender sent one. */
  flags?: number;
}

/** A decoded PEX message. */
export interface PexMessage {
  /** Peers the sender connected to. */
  added: PexPeer[];
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
  const added = (key: string, family: 4 | 6): PexPeer[] => {
    const v = dict[key], f = dict[`${key}.f`];
    if (!(v instanceof Uint8Array)) return [];
    if (!(f instanceof Uint8Array)) return parseCompactPeers(v, family);
    // one flags byte per entry, so entries are parsed one at a time (the count is bounded by the 64 KiB message)
    const size = family === 4 ? 6 : 18;
    const out: PexPeer[] = [];
    const seen = new Set<string>();
    for (let i = 0; (i + 1) * size <= v.length && out.length < MAX_PEX_PEERS; i++) {
      const p = parseCompactPeers(v.subarray(i * size, (i + 1) * size), family)[0];
      if (!p) continue;
      const key = `${p.host}|${p.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(i < f.length ? { ...p, flags: f[i] } : p);
    }
    return out;
  };
  return {
    added: [...added("added", 4), ...added("added6", 6)].slice(0, MAX_PEX_PEERS),
    dropped: [...peers("dropped", 4), ...peers("dropped6", 6)].slice(0, MAX_PEX_PEERS),
  };
}

/**
 * Encodes a `ut_pex` payload, with the `added.f` / `added6.f` flag bytes, one per added peer (0 for a peer without
 * flags): libtorrent ignores added peers without them.
 */
export function encodePex(m: PexMessage): Uint8Array {
  const flags = (family: 4 | 6) => {
    const bytes = family === 4 ? ipv4Bytes : ipv6Bytes;
    // the same peers, in the same order, as encodeCompactPeers keeps
    return Uint8Array.from(
      m.added.filter((p) => p.port > 0 && p.port < 65536 && bytes(p.host)),
      (p) => p.flags ?? 0,
    );
  };
  return encode({
    added: encodeCompactPeers(m.added, 4),
    "added.f": flags(4),
    added6: encodeCompactPeers(m.added, 6),
    "added6.f": flags(6),
    dropped: encodeCompactPeers(m.dropped, 4),
    dropped6: encodeCompactPeers(m.dropped, 6),
  });
}
