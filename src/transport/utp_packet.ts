/**
 * uTP packets (BEP 29): the 20-byte version 1 header, the linked list of extension headers and the selective
 * ack bitmask. A bounded parser of untrusted datagrams that fills a reused header object on the hot path
 * ({@linkcode parseUtpPacket}), a throwing decoder for tests and tools ({@linkcode decodeUtpPacket}), and
 * writers that put a header into a caller's buffer.
 *
 * @module
 */

/** Bytes in the fixed uTP header. */
export const UTP_HEADER_SIZE = 20;
/** The protocol version this module speaks. */
export const UTP_VERSION = 1;

/** Packet types (the high nibble of byte 0). */
export const PacketType = {
  /** Data; always carries a payload. */
  data: 0,
  /** The last packet of the stream (its sequence number is the end of the stream). */
  fin: 1,
  /** An ack without data. */
  state: 2,
  /** Terminates the connection forcefully. */
  reset: 3,
  /** Opens a connection. */
  syn: 4,
} as const;

/** Extension type of the selective ack. */
export const EXTENSION_SACK = 1;
/** Most extension headers a packet may chain before it is called malformed. */
export const MAX_EXTENSIONS = 8;

/** A header as read from the wire; sequence numbers and ids are 16 bits, the rest 32 bits, all unsigned. */
export interface UtpHeader {
  /** Packet type, 0–4 (see {@linkcode PacketType}). */
  type: number;
  /** Connection id. */
  connectionId: number;
  /** Sender's clock in microseconds (mod 2^32) when it sent the packet. */
  timestamp: number;
  /** The sender's last one-way delay measurement of our packets, microseconds. */
  timestampDiff: number;
  /** Bytes the sender can still receive (advertised window). */
  wndSize: number;
  /** Sequence number. */
  seq: number;
  /** Last sequence number the sender received in order from us. */
  ack: number;
  /** Offset of the selective ack bitmask in the datagram; 0 when there is none. */
  sackOffset: number;
  /** Bytes of the selective ack bitmask; 0 when there is none. */
  sackLength: number;
  /** Offset of the payload in the datagram (the payload runs to its end). */
  payloadOffset: number;
}

/** A fresh header object to reuse with {@linkcode parseUtpPacket}. */
export function emptyHeader(): UtpHeader {
  return {
    type: 0,
    connectionId: 0,
    timestamp: 0,
    timestampDiff: 0,
    wndSize: 0,
    seq: 0,
    ack: 0,
    sackOffset: 0,
    sackLength: 0,
    payloadOffset: 0,
  };
}

/** A malformed uTP packet, thrown by {@linkcode decodeUtpPacket}. */
export class UtpPacketError extends SyntaxError {
  /**
   * Creates a {@linkcode UtpPacketError}.
   *
   * @param message What is wrong with the packet.
   */
  constructor(message: string) {
    super(message);
    this.name = "UtpPacketError";
  }
}

/**
 * True when a datagram has the shape of a uTP packet: at least 20 bytes, version 1 in the low nibble of the
 * first byte and a type 0–4 in the high one. KRPC (`d…`) and UDP tracker replies (first byte 0) never match.
 *
 * @param data A datagram.
 * @returns Whether it looks like uTP (it may still be malformed further in).
 */
export function isUtpShaped(data: Uint8Array): boolean {
  if (data.length < UTP_HEADER_SIZE) return false;
  const b = data[0];
  return (b & 0x0f) === UTP_VERSION && (b >> 4) <= PacketType.syn;
}

/**
 * Parses a datagram into `out` without allocating. Checks the version, the type, every extension header's
 * length against the datagram, the number of extensions, and that a data packet carries a payload. A selective
 * ack of any length is accepted: BEP 29 asks for multiples of 4 bytes, but libtorrent sends whole bytes.
 *
 * @param data The datagram.
 * @param out The header object to fill (its fields are undefined when the result is not `undefined`).
 * @returns `undefined` when the packet is well formed, otherwise what is wrong with it.
 */
export function parseUtpPacket(data: Uint8Array, out: UtpHeader): string | undefined {
  const n = data.length;
  if (n < UTP_HEADER_SIZE) return `packet of ${n} bytes is shorter than the header`;
  const b0 = data[0];
  if ((b0 & 0x0f) !== UTP_VERSION) return `version ${b0 & 0x0f}`;
  const type = b0 >> 4;
  if (type > PacketType.syn) return `type ${type}`;
  out.type = type;
  out.connectionId = (data[2] << 8) | data[3];
  out.timestamp = u32(data, 4);
  out.timestampDiff = u32(data, 8);
  out.wndSize = u32(data, 12);
  out.seq = (data[16] << 8) | data[17];
  out.ack = (data[18] << 8) | data[19];
  out.sackOffset = 0;
  out.sackLength = 0;
  let ext = data[1];
  let pos = UTP_HEADER_SIZE;
  let count = 0;
  while (ext !== 0) {
    if (++count > MAX_EXTENSIONS) return `more than ${MAX_EXTENSIONS} extension headers`;
    if (pos + 2 > n) return `extension header ${ext} runs past the end`;
    const next = data[pos], len = data[pos + 1];
    pos += 2;
    if (pos + len > n) return `extension ${ext} of ${len} bytes runs past the end`;
    if (ext === EXTENSION_SACK) {
      // BEP 29 says a multiple of 4 bytes, but libtorrent sends whole bytes (even 1): any length is read
      if (out.sackLength === 0 && len > 0) {
        out.sackOffset = pos;
        out.sackLength = len;
      }
    }
    pos += len;
    ext = next;
  }
  out.payloadOffset = pos;
  if (type === PacketType.data && pos === n) return "data packet without a payload";
  return undefined;
}

/** A decoded packet, for tests and tools (the hot path uses {@linkcode parseUtpPacket}). */
export interface UtpPacket {
  /** Packet type, 0–4. */
  type: number;
  /** Connection id. */
  connectionId: number;
  /** Sender's clock, microseconds mod 2^32. */
  timestamp: number;
  /** The sender's last delay measurement, microseconds. */
  timestampDiff: number;
  /** Advertised receive window, bytes. */
  wndSize: number;
  /** Sequence number. */
  seq: number;
  /** Ack number. */
  ack: number;
  /** Selective ack bitmask, when present. */
  sack?: Uint8Array;
  /** Payload (may be empty). */
  payload: Uint8Array;
}

/**
 * Decodes one datagram.
 *
 * @example Round trip
 * ```ts
 * import { decodeUtpPacket, encodeUtpPacket, PacketType } from "./utp_packet.ts";
 *
 * const bytes = encodeUtpPacket({ type: PacketType.state, connectionId: 7, seq: 1, ack: 65535 });
 * const p = decodeUtpPacket(bytes);
 * if (p.connectionId !== 7 || p.ack !== 65535) throw new Error("round trip failed");
 * ```
 *
 * @param data The datagram.
 * @returns The packet; `sack` and `payload` are views into `data`.
 * @throws {UtpPacketError} When the packet is malformed.
 */
export function decodeUtpPacket(data: Uint8Array): UtpPacket {
  const h = emptyHeader();
  const err = parseUtpPacket(data, h);
  if (err !== undefined) throw new UtpPacketError(`Cannot decode uTP packet: ${err}`);
  return {
    type: h.type,
    connectionId: h.connectionId,
    timestamp: h.timestamp,
    timestampDiff: h.timestampDiff,
    wndSize: h.wndSize,
    seq: h.seq,
    ack: h.ack,
    ...(h.sackLength ? { sack: data.subarray(h.sackOffset, h.sackOffset + h.sackLength) } : {}),
    payload: data.subarray(h.payloadOffset),
  };
}

/**
 * Writes a 20-byte header at the start of `buf`.
 *
 * @param buf At least 20 bytes.
 * @param type Packet type.
 * @param extension The first extension's type (0 for none).
 * @param connectionId Connection id (16 bits).
 * @param timestamp Our clock, microseconds mod 2^32.
 * @param timestampDiff Our last delay measurement of the peer's packets.
 * @param wndSize Bytes we can still receive.
 * @param seq Sequence number.
 * @param ack Ack number.
 */
export function writeUtpHeader(
  buf: Uint8Array,
  type: number,
  extension: number,
  connectionId: number,
  timestamp: number,
  timestampDiff: number,
  wndSize: number,
  seq: number,
  ack: number,
): void {
  buf[0] = (type << 4) | UTP_VERSION;
  buf[1] = extension;
  buf[2] = connectionId >> 8;
  buf[3] = connectionId;
  setU32(buf, 4, timestamp);
  setU32(buf, 8, timestampDiff);
  setU32(buf, 12, wndSize);
  buf[16] = seq >> 8;
  buf[17] = seq;
  buf[18] = ack >> 8;
  buf[19] = ack;
}

/**
 * Rewrites the fields of a header that change on every (re)transmission.
 *
 * @param buf A packet made with {@linkcode writeUtpHeader}.
 * @param timestamp Our clock, microseconds mod 2^32.
 * @param timestampDiff Our last delay measurement.
 * @param wndSize Bytes we can still receive.
 * @param ack Ack number.
 */
export function refreshUtpHeader(
  buf: Uint8Array,
  timestamp: number,
  timestampDiff: number,
  wndSize: number,
  ack: number,
): void {
  setU32(buf, 4, timestamp);
  setU32(buf, 8, timestampDiff);
  setU32(buf, 12, wndSize);
  buf[18] = ack >> 8;
  buf[19] = ack;
}

/** Fields for {@linkcode encodeUtpPacket}; omitted numbers are 0. */
export interface UtpPacketInit {
  /** Packet type. */
  type: number;
  /** Connection id. */
  connectionId?: number;
  /** Timestamp, microseconds. */
  timestamp?: number;
  /** Delay measurement, microseconds. */
  timestampDiff?: number;
  /** Advertised window. */
  wndSize?: number;
  /** Sequence number. */
  seq?: number;
  /** Ack number. */
  ack?: number;
  /** Selective ack bitmask (a multiple of 4 bytes, at least 4). */
  sack?: Uint8Array;
  /** Payload. */
  payload?: Uint8Array;
}

/**
 * Encodes a packet (one allocation; the connection code writes headers into its own buffers instead).
 *
 * @param p The fields.
 * @returns The datagram.
 * @throws {RangeError} When the selective ack is not a multiple of 4 bytes between 4 and 252.
 */
export function encodeUtpPacket(p: UtpPacketInit): Uint8Array {
  const sack = p.sack;
  if (sack && (sack.length < 4 || sack.length % 4 !== 0 || sack.length > 252)) {
    throw new RangeError(`selective ack of ${sack.length} bytes`);
  }
  const ext = sack ? 2 + sack.length : 0;
  const payload = p.payload ?? new Uint8Array(0);
  const buf = new Uint8Array(UTP_HEADER_SIZE + ext + payload.length);
  writeUtpHeader(
    buf,
    p.type,
    sack ? EXTENSION_SACK : 0,
    p.connectionId ?? 0,
    p.timestamp ?? 0,
    p.timestampDiff ?? 0,
    p.wndSize ?? 0,
    p.seq ?? 0,
    p.ack ?? 0,
  );
  if (sack) {
    buf[20] = 0;
    buf[21] = sack.length;
    buf.set(sack, 22);
  }
  buf.set(payload, UTP_HEADER_SIZE + ext);
  return buf;
}

/**
 * Whether sequence number `a` comes before `b` in 16-bit wrapping order.
 *
 * @param a A sequence number.
 * @param b Another.
 * @returns True when walking up from `a` reaches `b` in fewer than 32768 steps (and `a !== b`).
 */
export function seqBefore(a: number, b: number): boolean {
  const d = (b - a) & 0xffff;
  return d !== 0 && d < 0x8000;
}

function u32(d: Uint8Array, o: number): number {
  return ((d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3]) >>> 0;
}

function setU32(d: Uint8Array, o: number, v: number): void {
  d[o] = v >>> 24;
  d[o + 1] = v >>> 16;
  d[o + 2] = v >>> 8;
  d[o + 3] = v;
}
