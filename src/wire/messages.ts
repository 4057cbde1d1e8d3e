/**
 * Peer wire messages: BEP 3 (choke … port), BEP 6 fast extension (suggest, have all, have none, reject, allowed
 * fast) and BEP 10 (extended). Encoders write length-prefixed frames; {@linkcode decodeMessage} turns one frame's
 * id and payload into a {@linkcode PeerMessage}.
 *
 * @module
 */

import { encodeHandshake, type Handshake } from "./handshake.ts";

/** Message ids. */
export const MessageId = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  notInterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
  suggest: 13,
  haveAll: 14,
  haveNone: 15,
  reject: 16,
  allowedFast: 17,
  extended: 20,
} as const;

/**
 * One decoded peer message. Piece `data` and other byte fields are views into the received bytes. `handshake` is
 * the first message of a connection (see {@linkcode FrameDecoderOptions.handshake}).
 */
export type PeerMessage =
  | { type: "handshake"; handshake: Handshake }
  | { type: "keepalive" }
  | { type: "choke" }
  | { type: "unchoke" }
  | { type: "interested" }
  | { type: "notinterested" }
  | { type: "have"; index: number }
  | { type: "bitfield"; bits: Uint8Array }
  | { type: "request"; index: number; begin: number; length: number }
  | { type: "piece"; index: number; begin: number; data: Uint8Array }
  | { type: "cancel"; index: number; begin: number; length: number }
  | { type: "port"; port: number }
  | { type: "suggest"; index: number }
  | { type: "haveall" }
  | { type: "havenone" }
  | { type: "reject"; index: number; begin: number; length: number }
  | { type: "allowedfast"; index: number }
  | { type: "extended"; id: number; payload: Uint8Array }
  | { type: "unknown"; id: number; payload: Uint8Array };

import { WireError } from "./errors.ts";
export { WireError };

/** Names of the known messages, for error text. */
const NAMES: Record<number, string> = {
  0: "choke",
  1: "unchoke",
  2: "interested",
  3: "not interested",
  4: "have",
  5: "bitfield",
  6: "request",
  7: "piece",
  8: "cancel",
  9: "port",
  13: "suggest",
  14: "have all",
  15: "have none",
  16: "reject",
  17: "allowed fast",
  20: "extended",
};

/** Expected payload length (after the id byte) of fixed-size messages; -1 when variable. */
const FIXED: Record<number, number> = {
  0: 0,
  1: 0,
  2: 0,
  3: 0,
  4: 4,
  6: 12,
  8: 12,
  9: 2,
  13: 4,
  14: 0,
  15: 0,
  16: 12,
  17: 4,
};

/**
 * Decodes one frame (the bytes after the 4-byte length prefix).
 *
 * @example Decode a have message
 * ```ts
 * import { decodeMessage } from "./messages.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(decodeMessage(new Uint8Array([4, 0, 0, 1, 2])), { type: "have", index: 258 });
 * ```
 *
 * @param frame The frame: empty for keep-alive, otherwise the id byte and its payload.
 * @returns The message.
 * @throws {WireError} When a known message has the wrong length.
 */
export function decodeMessage(frame: Uint8Array): PeerMessage {
  if (frame.length === 0) return { type: "keepalive" };
  const id = frame[0];
  const p = frame.subarray(1);
  const fixed = FIXED[id];
  if (fixed !== undefined && p.length !== fixed) {
    throw new WireError(
      fixed === 0
        ? `${NAMES[id]} with a payload (message ${id} has ${p.length} payload bytes, expected 0)`
        : `${
          NAMES[id]
        } message of wrong length (message ${id} has ${p.length} payload bytes, expected ${fixed})`,
    );
  }
  const u32 = (o: number) => ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
  switch (id) {
    case 0:
      return { type: "choke" };
    case 1:
      return { type: "unchoke" };
    case 2:
      return { type: "interested" };
    case 3:
      return { type: "notinterested" };
    case 4:
      return { type: "have", index: u32(0) };
    case 5:
      return { type: "bitfield", bits: p };
    case 6:
      return { type: "request", index: u32(0), begin: u32(4), length: u32(8) };
    case 7:
      if (p.length < 8) throw new WireError(`short piece message (${p.length} payload bytes)`);
      return { type: "piece", index: u32(0), begin: u32(4), data: p.subarray(8) };
    case 8:
      return { type: "cancel", index: u32(0), begin: u32(4), length: u32(8) };
    case 9:
      return { type: "port", port: (p[0] << 8) | p[1] };
    case 13:
      return { type: "suggest", index: u32(0) };
    case 14:
      return { type: "haveall" };
    case 15:
      return { type: "havenone" };
    case 16:
      return { type: "reject", index: u32(0), begin: u32(4), length: u32(8) };
    case 17:
      return { type: "allowedfast", index: u32(0) };
    case 20:
      if (p.length < 1) throw new WireError("extended message without an id");
      return { type: "extended", id: p[0], payload: p.subarray(1) };
    default:
      return { type: "unknown", id, payload: p };
  }
}

function frame(
  id: number,
  payloadLength: number,
): { buf: Uint8Array<ArrayBuffer>; view: DataView } {
  const buf = new Uint8Array(5 + payloadLength);
  const view = new DataView(buf.buffer);
  view.setUint32(0, 1 + payloadLength);
  buf[4] = id;
  return { buf, view };
}

/** The 4-byte keep-alive (a zero length prefix). */
export function encodeKeepAlive(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(4);
}

/**
 * A message with no payload: choke, unchoke, interested, not interested, have all, have none.
 *
 * @param id The message id.
 */
export function encodeSimple(id: number): Uint8Array<ArrayBuffer> {
  return frame(id, 0).buf;
}

/**
 * A message whose payload is one 32-bit index: have, suggest, allowed fast.
 *
 * @param id The message id.
 * @param index The piece index.
 */
export function encodeIndex(id: number, index: number): Uint8Array<ArrayBuffer> {
  const { buf, view } = frame(id, 4);
  view.setUint32(5, index);
  return buf;
}

/**
 * Writes a request, cancel or reject (17 bytes) into `buf` at `offset`.
 *
 * @returns The offset after the message.
 */
export function writeBlockMessage(
  buf: Uint8Array,
  offset: number,
  id: number,
  index: number,
  begin: number,
  length: number,
): number {
  putU32(buf, offset, 13);
  buf[offset + 4] = id;
  putU32(buf, offset + 5, index);
  putU32(buf, offset + 9, begin);
  putU32(buf, offset + 13, length);
  return offset + 17;
}

/** A request, cancel or reject message. */
export function encodeBlockMessage(
  id: number,
  index: number,
  begin: number,
  length: number,
): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(17);
  writeBlockMessage(buf, 0, id, index, begin, length);
  return buf;
}

/**
 * Writes the 13-byte header of a piece message carrying `dataLength` bytes into `buf` at `offset`; the data
 * follows it. Lets the sender place header and data in one batch without concatenating.
 *
 * @returns The offset after the header.
 */
export function writePieceHeader(
  buf: Uint8Array,
  offset: number,
  index: number,
  begin: number,
  dataLength: number,
): number {
  putU32(buf, offset, 9 + dataLength);
  buf[offset + 4] = MessageId.piece;
  putU32(buf, offset + 5, index);
  putU32(buf, offset + 9, begin);
  return offset + 13;
}

/** Big-endian 32-bit store (no DataView per message on the hot path). */
function putU32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
}

/** A complete piece message. */
export function encodePiece(
  index: number,
  begin: number,
  data: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(13 + data.length);
  writePieceHeader(buf, 0, index, begin, data.length);
  buf.set(data, 13);
  return buf;
}

/** A bitfield message. */
export function encodeBitfield(bits: Uint8Array): Uint8Array<ArrayBuffer> {
  const { buf } = frame(MessageId.bitfield, bits.length);
  buf.set(bits, 5);
  return buf;
}

/** A port message (DHT port, BEP 5). */
export function encodePort(port: number): Uint8Array<ArrayBuffer> {
  const { buf, view } = frame(MessageId.port, 2);
  view.setUint16(5, port);
  return buf;
}

/** An extended message (BEP 10): extension id 0 is the extension handshake. */
export function encodeExtended(id: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const { buf } = frame(MessageId.extended, 1 + payload.length);
  buf[5] = id;
  buf.set(payload, 6);
  return buf;
}

/**
 * Encodes any {@linkcode PeerMessage} as a frame.
 *
 * @example Round trip
 * ```ts
 * import { decodeMessage, encodeMessage } from "./messages.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeMessage({ type: "request", index: 1, begin: 16384, length: 16384 });
 * assert.deepEqual(decodeMessage(bytes.subarray(4)), { type: "request", index: 1, begin: 16384, length: 16384 });
 * ```
 *
 * @param m The message.
 * @returns The frame including its length prefix.
 */
export function encodeMessage(m: PeerMessage): Uint8Array<ArrayBuffer> {
  switch (m.type) {
    case "handshake":
      return encodeHandshake(m.handshake);
    case "keepalive":
      return encodeKeepAlive();
    case "choke":
      return encodeSimple(MessageId.choke);
    case "unchoke":
      return encodeSimple(MessageId.unchoke);
    case "interested":
      return encodeSimple(MessageId.interested);
    case "notinterested":
      return encodeSimple(MessageId.notInterested);
    case "haveall":
      return encodeSimple(MessageId.haveAll);
    case "havenone":
      return encodeSimple(MessageId.haveNone);
    case "have":
      return encodeIndex(MessageId.have, m.index);
    case "suggest":
      return encodeIndex(MessageId.suggest, m.index);
    case "allowedfast":
      return encodeIndex(MessageId.allowedFast, m.index);
    case "bitfield":
      return encodeBitfield(m.bits);
    case "request":
      return encodeBlockMessage(MessageId.request, m.index, m.begin, m.length);
    case "cancel":
      return encodeBlockMessage(MessageId.cancel, m.index, m.begin, m.length);
    case "reject":
      return encodeBlockMessage(MessageId.reject, m.index, m.begin, m.length);
    case "piece":
      return encodePiece(m.index, m.begin, m.data);
    case "port":
      return encodePort(m.port);
    case "extended":
      return encodeExtended(m.id, m.payload);
    case "unknown": {
      const { buf } = frame(m.id, m.payload.length);
      buf.set(m.payload, 5);
      return buf;
    }
  }
}
