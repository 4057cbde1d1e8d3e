/**
 * The extension protocol handshake (BEP 10): which extensions a peer supports and under which message ids,
 * its client name, listen port and request queue depth.
 *
 * @module
 */

import { fromUtf8 } from "../_bytes.ts";
import { type BencodeDict, decode, encode } from "../bencode.ts";
import { WireError } from "./errors.ts";

/** A peer's extension handshake, validated. */
export interface ExtensionHandshake {
  /** Extension name → message id the peer wants for it (0 = disabled). */
  m: Record<string, number>;
  /** Client name and version. */
  v: string | undefined;
  /** The peer's listen port. */
  p: number | undefined;
  /** How many outstanding requests the peer accepts. */
  reqq: number | undefined;
  /** Our address as the peer sees it (4 or 16 bytes). */
  yourip: Uint8Array | undefined;
  /** Size of the info dictionary (BEP 9). */
  metadataSize: number | undefined;
  /** The whole dictionary, for extensions not interpreted here. */
  raw: BencodeDict;
}

/** Largest extension handshake accepted. */
export const MAX_EXTENSION_HANDSHAKE = 64 * 1024;

/**
 * Decodes and validates an extension handshake payload.
 *
 * @param payload The bytes after the extended message's id byte (id 0).
 * @returns The handshake.
 * @throws {WireError} When it is not a bencoded dictionary or a field has the wrong type.
 */
export function decodeExtensionHandshake(payload: Uint8Array): ExtensionHandshake {
  if (payload.length > MAX_EXTENSION_HANDSHAKE) {
    throw new WireError(`extension handshake of ${payload.length} bytes`);
  }
  let d: unknown;
  try {
    d = decode(payload, { maxDepth: 8, maxTokens: 2000 });
  } catch (err) {
    throw new WireError(`extension handshake is not bencode: ${(err as Error).message}`);
  }
  if (!d || typeof d !== "object" || d instanceof Uint8Array || Array.isArray(d)) {
    throw new WireError("extension handshake is not a dictionary");
  }
  const dict = d as BencodeDict;
  const m: Record<string, number> = {};
  const rawM = dict["m"];
  if (rawM !== undefined) {
    if (typeof rawM !== "object" || rawM instanceof Uint8Array || Array.isArray(rawM)) {
      throw new WireError("extension handshake field m is not a dictionary");
    }
    for (const [name, id] of Object.entries(rawM as BencodeDict)) {
      if (typeof id === "number" && id >= 0 && id <= 255) m[name] = id;
    }
  }
  const int = (v: unknown, max: number) =>
    typeof v === "number" && v >= 0 && v <= max ? v : undefined;
  const v = dict["v"];
  const yourip = dict["yourip"];
  return {
    m,
    v: v instanceof Uint8Array ? fromUtf8(v.subarray(0, 100)) : undefined,
    p: int(dict["p"], 65535),
    reqq: int(dict["reqq"], 100_000),
    yourip: yourip instanceof Uint8Array && (yourip.length === 4 || yourip.length === 16)
      ? yourip
      : undefined,
    metadataSize: int(dict["metadata_size"], 64 * 1024 * 1024),
    raw: dict,
  };
}

/**
 * Encodes our extension handshake.
 *
 * @param fields The dictionary: `m` (extension name → id), `v`, `p`, `reqq`, `metadata_size`, …
 * @returns The payload for an extended message with id 0.
 */
export function encodeExtensionHandshake(fields: Record<string, unknown>): Uint8Array {
  return encode({ m: {}, ...fields } as Parameters<typeof encode>[0]);
}
