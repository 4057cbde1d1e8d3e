/**
 * The 68-byte BitTorrent handshake (BEP 3) with the reserved bits for the fast extension (BEP 6), the extension
 * protocol (BEP 10), the DHT (BEP 5) and BEP 52's upgrade to v2: a peer that sends a hybrid torrent's v1 info hash
 * with the v2 bit set may get the (truncated) v2 info hash back, and the connection then speaks v2.
 *
 * @module
 */

import { WireError } from "./errors.ts";

/** Length of a handshake. */
export const HANDSHAKE_LENGTH = 68;

const PSTR = new TextEncoder().encode("BitTorrent protocol");

/** A parsed handshake. */
export interface Handshake {
  /** The torrent's 20-byte info hash. */
  infoHash: Uint8Array;
  /** The sender's 20-byte peer id. */
  peerId: Uint8Array;
  /** The 8 reserved bytes. */
  reserved: Uint8Array;
  /** Fast extension (BEP 6): reserved byte 7, bit 0x04. */
  fast: boolean;
  /** Extension protocol (BEP 10): reserved byte 5, bit 0x10. */
  extended: boolean;
  /** DHT (BEP 5): reserved byte 7, bit 0x01. */
  dht: boolean;
  /** BEP 52 v2 support (upgrade of a hybrid torrent's connection): reserved byte 7, bit 0x10. */
  v2: boolean;
}

/** What to put in a handshake. */
export interface HandshakeInit {
  /** The torrent's info hash. */
  infoHash: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Advertise the fast extension. */
  fast?: boolean;
  /** Advertise the extension protocol. */
  extended?: boolean;
  /** Advertise the DHT. */
  dht?: boolean;
  /** Advertise BEP 52 v2 support. */
  v2?: boolean;
  /** Reserved bytes to start from (other extension bits); the flags above are added to them. */
  reserved?: Uint8Array;
}

/**
 * Encodes a handshake.
 *
 * @example Encode and parse
 * ```ts
 * import { encodeHandshake, parseHandshake } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeHandshake({ infoHash: new Uint8Array(20), peerId: new Uint8Array(20), fast: true });
 * assert.equal(bytes.length, 68);
 * assert.equal(parseHandshake(bytes).fast, true);
 * ```
 *
 * @param init Info hash, peer id and the extensions to advertise.
 * @returns 68 bytes.
 */
export function encodeHandshake(init: HandshakeInit): Uint8Array<ArrayBuffer> {
  if (init.infoHash.length !== 20 || init.peerId.length !== 20) {
    throw new TypeError("Info hash and peer id must be 20 bytes each");
  }
  const out = new Uint8Array(HANDSHAKE_LENGTH);
  out[0] = 19;
  out.set(PSTR, 1);
  if (init.reserved?.length === 8) out.set(init.reserved, 20);
  if (init.extended) out[25] |= 0x10;
  if (init.fast) out[27] |= 0x04;
  if (init.dht) out[27] |= 0x01;
  if (init.v2) out[27] |= 0x10;
  out.set(init.infoHash, 28);
  out.set(init.peerId, 48);
  return out;
}

/**
 * Parses a handshake.
 *
 * @param bytes At least 68 bytes.
 * @returns The handshake (fields are copies).
 * @throws {WireError} When the protocol string is not "BitTorrent protocol".
 */
export function parseHandshake(bytes: Uint8Array): Handshake {
  if (bytes.length < HANDSHAKE_LENGTH) throw new WireError(`handshake of ${bytes.length} bytes`);
  if (bytes[0] !== 19) {
    throw new WireError(`handshake protocol string length ${bytes[0]}, expected 19`);
  }
  for (let i = 0; i < 19; i++) {
    if (bytes[1 + i] !== PSTR[i]) {
      throw new WireError('handshake protocol is not "BitTorrent protocol"');
    }
  }
  const reserved = bytes.slice(20, 28);
  return {
    reserved,
    infoHash: bytes.slice(28, 48),
    peerId: bytes.slice(48, 68),
    fast: (reserved[7] & 0x04) !== 0,
    extended: (reserved[5] & 0x10) !== 0,
    dht: (reserved[7] & 0x01) !== 0,
    v2: (reserved[7] & 0x10) !== 0,
  };
}
