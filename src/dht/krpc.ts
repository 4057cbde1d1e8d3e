/**
 * KRPC (BEP 5): the bencoded query / response / error messages of the DHT, decoded strictly and within fixed
 * bounds, since every packet comes from an untrusted sender. Also the compact node formats of BEP 5 (26 bytes,
 * IPv4) and BEP 32 (38 bytes, IPv6).
 *
 * @module
 */

import { type BencodeDict, type BencodeInput, decode, encode } from "../bencode.ts";
import { fromLatin1, latin1 } from "../_bytes.ts";
import { ipv4Bytes, ipv6Bytes, parseCompactPeers } from "../tracker/compact.ts";

/** Largest DHT packet accepted or sent, in bytes (BEP 5 packets fit one Ethernet frame; 4 KiB leaves room). */
export const MAX_KRPC_PACKET = 4096;
/** Deepest nesting accepted in a packet (message → arguments → list → string is 3). */
export const MAX_KRPC_DEPTH = 4;
/** Most bencode values accepted in one packet. */
export const MAX_KRPC_TOKENS = 512;
/** Longest token accepted from a node (BEP 5 leaves the size open; real ones are 4-20 bytes). */
export const MAX_TOKEN_LENGTH = 64;

/** KRPC error codes (BEP 5). */
export const KrpcErrorCode = {
  generic: 201,
  server: 202,
  protocol: 203,
  methodUnknown: 204,
} as const;

/** A DHT node's contact: 20-byte id and UDP address. */
export interface NodeContact {
  /** The 20-byte node id. */
  id: Uint8Array;
  /** IP address (IPv6 without brackets). */
  host: string;
  /** UDP port. */
  port: number;
}

/** A decoded KRPC message. */
export type KrpcMessage =
  | {
    y: "q";
    /** Transaction id (1-16 bytes). */
    t: Uint8Array;
    /** Method name. */
    q: string;
    /** Arguments; `id` is checked to be 20 bytes. */
    a: BencodeDict & { id: Uint8Array };
    /** BEP 43: the sender is read-only and must not be added to routing tables. */
    ro: boolean;
    /** Client version, when present. */
    v?: Uint8Array;
  }
  | {
    y: "r";
    t: Uint8Array;
    /** Return values; `id` is checked to be 20 bytes. */
    r: BencodeDict & { id: Uint8Array };
    /** BEP 42: our address as the responder sees it, when present. */
    ip?: Uint8Array;
    v?: Uint8Array;
  }
  | { y: "e"; t: Uint8Array; code: number; message: string; v?: Uint8Array };

/** Thrown for a packet that is not a valid KRPC message; the text says what is wrong. */
export class KrpcError extends Error {
  /**
   * Creates a {@linkcode KrpcError}.
   *
   * @param message What is wrong with the packet.
   */
  constructor(message: string) {
    super(message);
    this.name = "KrpcError";
  }
}

/**
 * Decodes one KRPC packet, within {@linkcode MAX_KRPC_PACKET} bytes, {@linkcode MAX_KRPC_DEPTH} levels and
 * {@linkcode MAX_KRPC_TOKENS} values.
 *
 * @example Decode the ping query of BEP 5
 * ```ts
 * import { decodeKrpc } from "./krpc.ts";
 * import assert from "node:assert/strict";
 *
 * const m = decodeKrpc(new TextEncoder().encode("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"));
 * assert.equal(m.y, "q");
 * assert.equal(m.y === "q" && m.q, "ping");
 * ```
 *
 * @param packet The datagram.
 * @returns The message.
 * @throws {KrpcError} When the packet is not a valid KRPC message (BencodeError causes are wrapped).
 */
export function decodeKrpc(packet: Uint8Array): KrpcMessage {
  if (packet.length > MAX_KRPC_PACKET) {
    throw new KrpcError(
      `packet of ${packet.length} bytes is over the ${MAX_KRPC_PACKET}-byte limit`,
    );
  }
  let value;
  try {
    value = decode(packet, {
      maxDepth: MAX_KRPC_DEPTH,
      maxTokens: MAX_KRPC_TOKENS,
      maxLength: MAX_KRPC_PACKET,
    });
  } catch (err) {
    throw new KrpcError(`not bencode: ${(err as Error).message}`);
  }
  if (!isDict(value)) throw new KrpcError("not a dictionary");
  const t = value["t"], y = value["y"];
  if (!(t instanceof Uint8Array) || t.length === 0 || t.length > 16) {
    throw new KrpcError("missing or invalid transaction id 't'");
  }
  const v = value["v"] instanceof Uint8Array ? value["v"] : undefined;
  const kind = y instanceof Uint8Array ? latin1(y) : "";
  if (kind === "q") {
    const q = value["q"], a = value["a"];
    if (!(q instanceof Uint8Array) || q.length === 0 || q.length > 32) {
      throw new KrpcError("query without a method name 'q'");
    }
    if (!isDict(a) || !isId(a["id"])) throw new KrpcError("query without a 20-byte 'id' argument");
    return {
      y: "q",
      t,
      q: latin1(q),
      a: a as BencodeDict & { id: Uint8Array },
      ro: value["ro"] === 1,
      ...(v ? { v } : {}),
    };
  }
  if (kind === "r") {
    const r = value["r"];
    if (!isDict(r) || !isId(r["id"])) throw new KrpcError("response without a 20-byte 'id'");
    const ip = value["ip"];
    return {
      y: "r",
      t,
      r: r as BencodeDict & { id: Uint8Array },
      ...(ip instanceof Uint8Array ? { ip } : {}),
      ...(v ? { v } : {}),
    };
  }
  if (kind === "e") {
    const e = value["e"];
    if (!Array.isArray(e) || typeof e[0] !== "number") throw new KrpcError("error without a code");
    const text = e[1] instanceof Uint8Array ? latin1(e[1].subarray(0, 200)) : "";
    return { y: "e", t, code: e[0], message: text, ...(v ? { v } : {}) };
  }
  throw new KrpcError("'y' is not q, r or e");
}

/** Our client version in KRPC messages: "SE" and two version bytes. */
export const KRPC_VERSION: Uint8Array = new Uint8Array([0x53, 0x45, 0, 1]);

/**
 * Encodes a query.
 *
 * @param t Transaction id.
 * @param q Method name.
 * @param a Arguments (must include our `id`).
 * @param readOnly Marks us read-only (BEP 43).
 * @returns The packet.
 */
export function encodeQuery(
  t: Uint8Array,
  q: string,
  a: Record<string, BencodeInput | undefined>,
  readOnly = false,
): Uint8Array {
  return encode({ t, y: "q", q, a, v: KRPC_VERSION, ...(readOnly ? { ro: 1 } : {}) });
}

/**
 * Encodes a response.
 *
 * @param t The query's transaction id.
 * @param r Return values (must include our `id`).
 * @param ip The querier's address in compact form (BEP 42), when known.
 * @returns The packet.
 */
export function encodeResponse(
  t: Uint8Array,
  r: Record<string, BencodeInput | undefined>,
  ip?: Uint8Array,
): Uint8Array {
  return encode({ t, y: "r", r, v: KRPC_VERSION, ...(ip ? { ip } : {}) });
}

/**
 * Encodes an error.
 *
 * @param t The query's transaction id.
 * @param code One of {@linkcode KrpcErrorCode}.
 * @param message A short explanation.
 * @returns The packet.
 */
export function encodeError(t: Uint8Array, code: number, message: string): Uint8Array {
  return encode({ t, y: "e", e: [code, message], v: KRPC_VERSION });
}

/**
 * Parses compact node info: 26 bytes per IPv4 node (BEP 5) or 38 per IPv6 node (BEP 32). Entries with port 0
 * are dropped; a trailing partial entry is ignored; at most `max` are returned.
 *
 * @example One IPv4 node
 * ```ts
 * import { parseCompactNodes } from "./krpc.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = new Uint8Array(26).fill(1);
 * bytes.set([127, 0, 0, 1, 0x1a, 0xe1], 20);
 * const [n] = parseCompactNodes(bytes, 4);
 * assert.equal(`${n.host}:${n.port}`, "127.0.0.1:6881");
 * ```
 *
 * @param bytes The compact string.
 * @param family 4 or 6.
 * @param max Most nodes returned.
 * @returns The nodes, ids copied out of the packet.
 */
export function parseCompactNodes(bytes: Uint8Array, family: 4 | 6, max = 64): NodeContact[] {
  const size = family === 4 ? 26 : 38;
  const out: NodeContact[] = [];
  for (let off = 0; off + size <= bytes.length && out.length < max; off += size) {
    const [addr] = parseCompactPeers(bytes.subarray(off + 20, off + size), family);
    if (!addr) continue;
    out.push({ id: bytes.slice(off, off + 20), host: addr.host, port: addr.port });
  }
  return out;
}

/**
 * Encodes nodes of one family in compact form; nodes of the other family are skipped.
 *
 * @param nodes The nodes.
 * @param family 4 or 6.
 * @returns The compact string.
 */
export function encodeCompactNodes(nodes: readonly NodeContact[], family: 4 | 6): Uint8Array {
  const size = family === 4 ? 26 : 38;
  const out = new Uint8Array(nodes.length * size);
  let off = 0;
  for (const n of nodes) {
    const ip = family === 4 ? ipv4Bytes(n.host) : ipv6Bytes(n.host);
    if (!ip || n.id.length !== 20) continue;
    out.set(n.id, off);
    out.set(ip, off + 20);
    out[off + size - 2] = n.port >> 8;
    out[off + size - 1] = n.port & 0xff;
    off += size;
  }
  return out.subarray(0, off);
}

/**
 * A transaction id from a counter (2 bytes, as BEP 5 suggests).
 *
 * @param n The counter value.
 * @returns Two bytes.
 */
export function transactionId(n: number): Uint8Array {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}

/** The key of a transaction id in maps. */
export function transactionKey(t: Uint8Array): string {
  return latin1(t);
}

/** Inverse of {@linkcode transactionKey}. */
export function transactionFromKey(key: string): Uint8Array {
  return fromLatin1(key);
}

function isDict(v: unknown): v is BencodeDict {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isId(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === 20;
}
