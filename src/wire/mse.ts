/**
 * Message Stream Encryption (MSE, also called protocol encryption or PE): the Diffie-Hellman handshake every
 * major client speaks, in both roles, and the RC4 payload stream that may follow it.
 *
 * The handshake (the Vuze "Message Stream Encryption" description; there is no BEP), A dialling B:
 *
 * 1. A→B: `Ya`, `PadA`. 2. B→A: `Yb`, `PadB` (DH-768 public keys, 0–512 random bytes of padding each).
 * 3. A→B: `HASH('req1', S)`, `HASH('req2', SKEY) xor HASH('req3', S)`,
 *    `ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA))`, `ENCRYPT(IA)`.
 * 4. B→A: `ENCRYPT(VC, crypto_select, len(PadD), PadD)`, then the payload in the selected method.
 *
 * `S` is the shared secret, `SKEY` the torrent's info hash, `ENCRYPT` RC4 keyed with `HASH('keyA', S, SKEY)`
 * (A→B) or `HASH('keyB', S, SKEY)` (B→A) with the first 1024 bytes of keystream discarded, `VC` eight zero
 * bytes, `crypto_provide`/`crypto_select` bit 0x01 for plaintext and 0x02 for RC4, and `IA` the initial payload
 * (we put the BitTorrent handshake there, saving a round trip).
 *
 * {@linkcode initiateConnection} is A, {@linkcode acceptConnection} is B (it also lets a plain BitTorrent
 * handshake through). Both return the connection as a {@linkcode PeerStream} carrying plain BitTorrent bytes:
 * when RC4 was chosen its readable decrypts and its writable encrypts (into a reused buffer of its own, never the
 * caller's). The readable is a byte stream whenever the connection's is (a `Deno.Conn`'s is) and whenever it
 * decrypts, so a BYOB reader reads straight into its own buffer; without RC4 the bytes are never copied after
 * the handshake. The cipher and the streams that apply it are in `rc4.ts`.
 *
 * @module
 */

import { bytesEqual, concat, fromHex, toHex, utf8 } from "../_bytes.ts";
import type { PeerStream } from "./stream.ts";
import { WireError } from "./errors.ts";
import { acceptsEncrypted, acceptsPlain, type EncryptionPolicy } from "./encryption_policy.ts";
import { byobPassThrough, decryptChunks, encryptingWritable, Rc4 } from "./rc4.ts";

export type { EncryptionPolicy } from "./encryption_policy.ts";
export { Rc4 } from "./rc4.ts";

/** The 768-bit MODP prime of MSE (the generator is 2). */
const P = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
);
const KEY_BYTES = 96;
/** Most padding either side may put in PadA/PadB/PadC/PadD. */
const MAX_PAD = 512;
const VC_BYTES = 8;
const PLAINTEXT = 0x01, RC4_METHOD = 0x02;
const PSTR = utf8("\x13BitTorrent protocol");
/** The plain handshake up to and including the info hash. */
const PLAIN_PREFIX = 48;
/** Bytes read from the socket at a time during the handshake (BYOB). */
const HANDSHAKE_READ = 4096;
/** The most a hostile peer can make us buffer during a handshake: its key, padding, hashes and a 64 KiB IA. */
const MAX_HANDSHAKE_BYTES = KEY_BYTES + MAX_PAD + 20 + 20 + 14 + MAX_PAD + 2 + 65535;

/**
 * What a connection carries after the handshake: `"rc4"` (MSE, then RC4), `"plaintext-header"` (MSE, then the
 * payload in plaintext) or `false` (a plain BitTorrent connection, no MSE at all).
 */
export type Encryption = "rc4" | "plaintext-header" | false;

/** A connection after {@linkcode initiateConnection} or {@linkcode acceptConnection}. */
export interface EncryptedConnection {
  /**
   * The connection as plain BitTorrent bytes: bytes that arrived with the handshake come first, RC4 is undone
   * on the readable and applied on the writable. Hand it to a {@linkcode PeerConnection}. `close()` closes the
   * underlying connection.
   */
  stream: PeerStream;
  /** What was negotiated. */
  encryption: Encryption;
  /**
   * The torrent the peer asked for: `SKEY` of an MSE handshake, or the info hash of a plain handshake (always
   * one of those we serve).
   */
  infoHash: Uint8Array;
}

/** Options for {@linkcode acceptConnection}. */
export interface AcceptOptions {
  /**
   * Which handshakes are accepted: `"require"` refuses a plain BitTorrent handshake, `"disable"` refuses MSE.
   *
   * @default {"prefer"}
   */
  policy?: EncryptionPolicy;
  /**
   * Select RC4 for the payload even when the peer offers plaintext; a peer that offers only plaintext is
   * refused.
   *
   * @default {false}
   */
  rc4Only?: boolean;
  /**
   * Milliseconds for the whole encryption handshake (or the first 48 bytes of a plain handshake).
   *
   * @default {10000}
   */
  timeoutMs?: number;
  /** Abandons the handshake (and closes the connection) when aborted. */
  signal?: AbortSignal;
}

/** Options for {@linkcode initiateConnection}. */
export interface InitiateOptions {
  /**
   * The initial payload (IA), sent encrypted with the third handshake message: pass our 68-byte BitTorrent
   * handshake here to save a round trip. The bytes are sent as part of the handshake, so the caller must not
   * send them again (give the {@linkcode PeerConnection} `handshakeSent: true`). At most 65535 bytes.
   *
   * libtorrent dials this way. Transmission 3.00 set to prefer plaintext selects plaintext and then reads the
   * IA (RC4-encrypted, as the spec says) as plaintext, and hangs up: dial such a peer again without the IA
   * (or plain), as `dialAttempts` in `encryption_policy.ts` does.
   */
  initialPayload?: Uint8Array;
  /**
   * Offer only RC4 for the payload (by default plaintext and RC4 are offered, and the peer picks). A peer that
   * selects plaintext anyway is refused.
   *
   * @default {false}
   */
  rc4Only?: boolean;
  /**
   * Milliseconds for the whole encryption handshake.
   *
   * @default {10000}
   */
  timeoutMs?: number;
  /** Abandons the handshake (and closes the connection) when aborted. */
  signal?: AbortSignal;
}

// ------------------------------------------------------------------ Diffie-Hellman and hashes

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  base %= mod;
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % mod;
    base = (base * base) % mod;
    exp >>= 1n;
  }
  return result;
}

function toBytes(n: bigint): Uint8Array {
  return fromHex(n.toString(16).padStart(KEY_BYTES * 2, "0"))!;
}

function toBigInt(bytes: Uint8Array): bigint {
  return BigInt("0x" + toHex(bytes));
}

/** A DH key pair: a 160-bit private key (the spec asks for at least 128) and the 96-byte public key. */
function keyPair(): { secret: bigint; publicKey: Uint8Array } {
  const secret = toBigInt(crypto.getRandomValues(new Uint8Array(20)));
  return { secret, publicKey: toBytes(modPow(2n, secret, P)) };
}

/** The shared secret S from the peer's public key, or undefined for a degenerate key (1, P-1, ≥ P). */
function sharedSecret(theirs: Uint8Array, secret: bigint): Uint8Array | undefined {
  const y = toBigInt(theirs);
  if (y <= 1n || y >= P - 1n) return undefined;
  return toBytes(modPow(y, secret, P));
}

async function hash(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", concat(parts)));
}

const REQ2_CACHE = new WeakMap<Uint8Array, Uint8Array>();

/** `HASH('req2', infoHash)`, cached per info hash object (a session passes the same ones every time). */
async function req2Of(infoHash: Uint8Array): Promise<Uint8Array> {
  let h = REQ2_CACHE.get(infoHash);
  if (!h) {
    h = await hash(utf8("req2"), infoHash);
    REQ2_CACHE.set(infoHash, h);
  }
  return h;
}

/** Random padding of 0–512 random bytes. */
function padding(): Uint8Array {
  const n = crypto.getRandomValues(new Uint16Array(1))[0] % (MAX_PAD + 1);
  return crypto.getRandomValues(new Uint8Array(n));
}

function u16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Position of `needle` in `hay` starting at most at `last`, or -1. */
function find(hay: Uint8Array, needle: Uint8Array, last: number): number {
  const end = Math.min(last, hay.length - needle.length);
  outer: for (let i = 0; i <= end; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

// ------------------------------------------------------------------ handshake I/O

/** The connection during a handshake: one reader (BYOB when the stream allows it), one writer, a buffer. */
class HandshakeIo {
  readonly conn: PeerStream;
  readonly byob: ReadableStreamBYOBReader | undefined;
  readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Bytes read and not yet taken. Never written to: with a default reader it may be the sender's chunk. */
  buf: Uint8Array = new Uint8Array(0);
  /** Set by the deadline, the signal or a failed write: the one reason the handshake failed. */
  failure: WireError | undefined;

  constructor(conn: PeerStream) {
    this.conn = conn;
    try {
      this.byob = conn.readable.getReader({ mode: "byob" });
    } catch {
      this.reader = conn.readable.getReader();
    }
    try {
      this.writer = conn.writable.getWriter();
    } catch (err) {
      (this.byob ?? this.reader)!.releaseLock();
      throw err;
    }
  }

  /** Makes sure at least `n` bytes are buffered. */
  async need(n: number): Promise<void> {
    if (n > MAX_HANDSHAKE_BYTES) throw new WireError("encryption handshake too long");
    while (this.buf.length < n) {
      let chunk: Uint8Array | undefined;
      if (this.byob) {
        const r = await this.byob.read(
          new Uint8Array(Math.max(HANDSHAKE_READ, n - this.buf.length)),
        );
        chunk = r.done ? undefined : r.value;
      } else {
        const r = await this.reader!.read();
        chunk = r.done ? undefined : r.value;
      }
      if (this.failure) throw this.failure;
      if (!chunk) {
        throw new WireError("connection closed during the encryption handshake");
      }
      this.buf = this.buf.length === 0 ? chunk : concat([this.buf, chunk]);
    }
  }

  /** Takes the first `n` buffered bytes (a copy the caller may decrypt in place). */
  take(n: number): Uint8Array {
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Drops the first `n` buffered bytes. */
  skip(n: number): void {
    this.buf = this.buf.subarray(n);
  }

  /** Queues bytes to send; a failure surfaces as the handshake's failure (the next read then fails too). */
  send(bytes: Uint8Array): void {
    this.writer.write(bytes).catch((err) => {
      this.failure ??= new WireError(
        `write failed during the encryption handshake: ${errorText(err)}`,
      );
    });
  }

  /** Ends a failed handshake: cancels the reader (a pending read returns), aborts the writer, closes. */
  async dispose(): Promise<void> {
    await (this.byob ?? this.reader)!.cancel().catch(() => {});
    await this.writer.abort().catch(() => {});
    try {
      this.conn.close?.();
    } catch { /* already closed */ }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err ?? "stream closed");
}

/**
 * Runs a handshake with a deadline and an abort signal: either interrupts it by cancelling the reader, so a
 * pending read returns and nothing is left running. On failure the connection is closed and the one reason is
 * thrown.
 */
async function withDeadline<T>(
  conn: PeerStream,
  options: { timeoutMs?: number; signal?: AbortSignal },
  body: (io: HandshakeIo) => Promise<T>,
): Promise<T> {
  const io = new HandshakeIo(conn);
  const stop = (reason: string) => {
    io.failure ??= new WireError(reason);
    void (io.byob ?? io.reader)!.cancel().catch(() => {});
  };
  const ms = options.timeoutMs ?? 10_000;
  const timer = setTimeout(() => stop(`encryption handshake timed out after ${ms} ms`), ms);
  const onAbort = () => stop("encryption handshake aborted");
  const signal = options.signal;
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const result = await body(io);
    if (io.failure) throw io.failure;
    return result;
  } catch (err) {
    await io.dispose();
    throw io.failure ?? (err instanceof WireError ? err : new WireError(errorText(err)));
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

// ------------------------------------------------------------------ initiator (A)

/**
 * Opens an outgoing connection with an MSE handshake (we are "A").
 *
 * We offer plaintext and RC4 for the payload (RC4 only with `rc4Only`); the peer selects. Put our BitTorrent
 * handshake in `initialPayload` and tell the {@linkcode PeerConnection} `handshakeSent: true`.
 *
 * @example Dial a peer with MSE, the BitTorrent handshake riding in the initial payload
 * ```ts
 * import { acceptConnection, initiateConnection } from "./mse.ts";
 * import { encodeHandshake } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(1);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const handshake = encodeHandshake({ infoHash, peerId: new Uint8Array(20).fill(2) });
 * const [ours, theirs] = await Promise.all([
 *   Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port })
 *     .then((conn) => initiateConnection(conn, infoHash, { initialPayload: handshake })),
 *   listener.accept().then((conn) => acceptConnection(conn, [infoHash], { rc4Only: true })),
 * ]);
 * assert.equal(ours.encryption, "rc4");
 * const { value } = await theirs.stream.readable.getReader().read();
 * assert.deepEqual(value, handshake); // decrypted
 * ours.stream.close?.();
 * theirs.stream.close?.();
 * ```
 *
 * @param conn A fresh outgoing connection (nothing sent or read yet).
 * @param infoHash The torrent (MSE's `SKEY`).
 * @param options The initial payload, the payload ciphers to offer, a deadline.
 * @returns The connection as plain BitTorrent bytes and what was negotiated.
 * @throws {TypeError} When the info hash is not 20 bytes.
 * @throws {RangeError} When the initial payload is longer than 65535 bytes.
 * @throws {WireError} When the handshake fails (the peer closed the connection, sent no verification constant
 *   within the padding, selected a method we did not offer, took longer than `timeoutMs`); the connection is
 *   closed by then.
 */
export async function initiateConnection(
  conn: PeerStream,
  infoHash: Uint8Array,
  options: InitiateOptions = {},
): Promise<EncryptedConnection> {
  const payload = options.initialPayload ?? new Uint8Array(0);
  if (infoHash.length !== 20) throw new TypeError("Info hash must be 20 bytes");
  if (payload.length > 65535) throw new RangeError("Initial payload is longer than 65535 bytes");
  const provide = options.rc4Only ? RC4_METHOD : PLAINTEXT | RC4_METHOD;
  return await withDeadline(conn, options, (io) => initiate(io, infoHash, provide, payload));
}

async function initiate(
  io: HandshakeIo,
  skey: Uint8Array,
  provide: number,
  payload: Uint8Array,
): Promise<EncryptedConnection> {
  // 1. Ya, PadA
  const { secret, publicKey } = keyPair();
  io.send(concat([publicKey, padding()]));
  // 2. Yb (PadB follows; we find its end by the encrypted VC). A peer without MSE that read our key as a
  // handshake and answered with its own plain one fails the attempt at once (a key starts so once in 2^160).
  await io.need(PSTR.length);
  if (bytesEqual(io.buf.subarray(0, PSTR.length), PSTR)) {
    throw new WireError(
      "encryption handshake: the peer answered with a plain BitTorrent handshake",
    );
  }
  await io.need(KEY_BYTES);
  const s = sharedSecret(io.take(KEY_BYTES), secret);
  if (!s) throw new WireError("encryption handshake: invalid public key from the peer");
  const [req1, req2, req3, keyA, keyB] = await Promise.all([
    hash(utf8("req1"), s),
    req2Of(skey),
    hash(utf8("req3"), s),
    hash(utf8("keyA"), s, skey),
    hash(utf8("keyB"), s, skey),
  ]);
  const encrypt = new Rc4(keyA), decrypt = new Rc4(keyB);
  // 3. HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), ENCRYPT(VC, crypto_provide, len(PadC), PadC,
  //    len(IA)), ENCRYPT(IA)
  const padC = padding();
  const secretPart = new Uint8Array(VC_BYTES + 4 + 2 + padC.length + 2 + payload.length);
  let at = VC_BYTES;
  secretPart[at + 3] = provide;
  at += 4;
  secretPart[at++] = padC.length >> 8;
  secretPart[at++] = padC.length & 0xff;
  secretPart.set(padC, at);
  at += padC.length;
  secretPart[at++] = payload.length >> 8;
  secretPart[at++] = payload.length & 0xff;
  secretPart.set(payload, at);
  encrypt.process(secretPart);
  io.send(concat([req1, req2.map((b, i) => b ^ req3[i]), secretPart]));
  // 4. find ENCRYPT(VC) after PadB, then crypto_select, len(PadD), PadD
  const vc = new Uint8Array(VC_BYTES);
  new Rc4(keyB).process(vc);
  let found = -1;
  for (;;) {
    found = find(io.buf, vc, MAX_PAD);
    if (found >= 0) break;
    if (io.buf.length >= MAX_PAD + VC_BYTES) {
      throw new WireError(
        "encryption handshake: no verification constant from the peer within 512 bytes of padding",
      );
    }
    await io.need(io.buf.length + 1);
  }
  io.skip(found);
  await io.need(VC_BYTES + 4 + 2);
  const head = io.take(VC_BYTES + 4 + 2);
  decrypt.process(head);
  const select = u32(head, VC_BYTES);
  if (select !== PLAINTEXT && select !== RC4_METHOD || (select & provide) === 0) {
    throw new WireError(
      `encryption handshake: the peer selected method 0x${select.toString(16)}, we offered 0x${
        provide.toString(16)
      }`,
    );
  }
  const padD = u16(head, VC_BYTES + 4);
  if (padD > MAX_PAD) throw new WireError(`encryption handshake: ${padD} bytes of padding`);
  await io.need(padD);
  decrypt.process(io.take(padD));
  const rc4 = select === RC4_METHOD;
  // what arrived after the handshake: the start of the payload stream
  let rest = io.buf;
  if (rc4 && rest.length > 0) {
    rest = rest.slice();
    decrypt.process(rest);
  }
  return {
    stream: payloadStream(io, rest, rc4 ? decrypt : undefined, rc4 ? encrypt : undefined),
    encryption: rc4 ? "rc4" : "plaintext-header",
    infoHash: skey,
  };
}

// ------------------------------------------------------------------ responder (B)

/**
 * Sorts out an incoming connection (we are "B"): a plain BitTorrent handshake passes through untouched, an MSE
 * handshake is answered. The payload method: plaintext when the peer offers it, RC4 otherwise (or always RC4
 * with `rc4Only`).
 *
 * The torrent is found among `infoHashes` (MSE names it only by `HASH('req2', SKEY)`), so one listener can
 * serve every torrent of a session; the result says which one.
 *
 * @example Accept a plain BitTorrent handshake
 * ```ts
 * import { acceptConnection } from "./mse.ts";
 * import { encodeHandshake } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(1);
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const handshake = encodeHandshake({ infoHash, peerId: new Uint8Array(20).fill(2) });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * await conn.write(handshake);
 * const accepted = await acceptConnection(await listener.accept(), [infoHash]);
 * assert.equal(accepted.encryption, false);
 * assert.deepEqual(accepted.infoHash, infoHash);
 * const reader = accepted.stream.readable.getReader({ mode: "byob" }); // a byte stream
 * const { value } = await reader.read(new Uint8Array(68));
 * assert.deepEqual(value, handshake);
 * conn.close();
 * accepted.stream.close?.();
 * ```
 *
 * @param conn The accepted connection (nothing read yet).
 * @param infoHashes The torrents we serve.
 * @param options The policy, `rc4Only`, a deadline.
 * @returns The connection as plain BitTorrent bytes, what was negotiated and the torrent.
 * @throws {WireError} When the bytes are neither handshake, the policy refuses the kind of handshake, the peer
 *   asks for a torrent we do not serve, no payload method is acceptable to both, or the handshake takes longer
 *   than `timeoutMs`; the connection is closed by then.
 */
export function acceptConnection(
  conn: PeerStream,
  infoHashes: Iterable<Uint8Array>,
  options: AcceptOptions = {},
): Promise<EncryptedConnection> {
  const hashes = [...infoHashes];
  return withDeadline(conn, options, (io) => respond(io, hashes, options));
}

async function respond(
  io: HandshakeIo,
  infoHashes: Uint8Array[],
  options: AcceptOptions,
): Promise<EncryptedConnection> {
  const policy = options.policy ?? "prefer";
  await io.need(1);
  if (io.buf[0] === PSTR[0]) {
    await io.need(PSTR.length);
    if (bytesEqual(io.buf.subarray(0, PSTR.length), PSTR)) {
      if (!acceptsPlain(policy)) {
        throw new WireError("plain BitTorrent handshake refused: encryption is required");
      }
      await io.need(PLAIN_PREFIX);
      const wanted = io.buf.subarray(PLAIN_PREFIX - 20, PLAIN_PREFIX);
      const infoHash = infoHashes.find((h) => bytesEqual(h, wanted));
      if (!infoHash) throw new WireError("handshake for a torrent we do not serve");
      return { stream: payloadStream(io, io.buf), encryption: false, infoHash };
    }
  }
  if (!acceptsEncrypted(policy)) {
    throw new WireError("not a BitTorrent handshake (encrypted handshakes are disabled)");
  }
  // 1. Ya (PadA follows; we find its end by HASH('req1', S))
  await io.need(KEY_BYTES);
  const { secret, publicKey } = keyPair();
  const s = sharedSecret(io.take(KEY_BYTES), secret);
  if (!s) throw new WireError("encryption handshake: invalid public key from the peer");
  // 2. Yb, PadB
  io.send(concat([publicKey, padding()]));
  // 3. HASH('req1', S) within PadA's 512 bytes, then HASH('req2', SKEY) xor HASH('req3', S)
  const [req1, req3] = await Promise.all([hash(utf8("req1"), s), hash(utf8("req3"), s)]);
  let found = -1;
  for (;;) {
    found = find(io.buf, req1, MAX_PAD);
    if (found >= 0) break;
    if (io.buf.length >= MAX_PAD + 20) {
      throw new WireError("encryption handshake: no req1 hash within 512 bytes of padding");
    }
    await io.need(io.buf.length + 1);
  }
  io.skip(found + 20);
  await io.need(20);
  const req2 = io.take(20).map((b, i) => b ^ req3[i]);
  let skey: Uint8Array | undefined;
  for (const h of infoHashes) {
    if (bytesEqual(await req2Of(h), req2)) {
      skey = h;
      break;
    }
  }
  if (!skey) throw new WireError("encryption handshake for a torrent we do not serve");
  const [keyA, keyB] = await Promise.all([
    hash(utf8("keyA"), s, skey),
    hash(utf8("keyB"), s, skey),
  ]);
  const decrypt = new Rc4(keyA), encrypt = new Rc4(keyB);
  // ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
  await io.need(VC_BYTES + 4 + 2);
  const head = io.take(VC_BYTES + 4 + 2);
  decrypt.process(head);
  if (head.subarray(0, VC_BYTES).some((b) => b !== 0)) {
    throw new WireError("encryption handshake: bad verification constant");
  }
  const provide = u32(head, VC_BYTES);
  const padC = u16(head, VC_BYTES + 4);
  if (padC > MAX_PAD) throw new WireError(`encryption handshake: ${padC} bytes of padding`);
  await io.need(padC + 2);
  const padAndLength = io.take(padC + 2);
  decrypt.process(padAndLength);
  const iaLength = u16(padAndLength, padC);
  await io.need(iaLength);
  const ia = io.take(iaLength);
  decrypt.process(ia);
  let select: number;
  if (options.rc4Only) {
    if (!(provide & RC4_METHOD)) {
      throw new WireError("encryption handshake: the peer does not offer RC4, which we require");
    }
    select = RC4_METHOD;
  } else if (provide & PLAINTEXT) select = PLAINTEXT;
  else if (provide & RC4_METHOD) select = RC4_METHOD;
  else {
    throw new WireError(
      `encryption handshake: no common payload method (the peer offers 0x${provide.toString(16)})`,
    );
  }
  // 4. ENCRYPT(VC, crypto_select, len(PadD), PadD)
  const padD = padding();
  const reply = new Uint8Array(VC_BYTES + 4 + 2 + padD.length);
  reply[VC_BYTES + 3] = select;
  reply[VC_BYTES + 4] = padD.length >> 8;
  reply[VC_BYTES + 5] = padD.length & 0xff;
  reply.set(padD, VC_BYTES + 6);
  encrypt.process(reply);
  io.send(reply);
  const rc4 = select === RC4_METHOD;
  // the initial payload (decrypted above), then whatever followed it (RC4 or plaintext)
  let rest = io.buf;
  if (rc4 && rest.length > 0) {
    rest = rest.slice();
    decrypt.process(rest);
  }
  return {
    stream: payloadStream(
      io,
      rest.length === 0 ? ia : concat([ia, rest]),
      rc4 ? decrypt : undefined,
      rc4 ? encrypt : undefined,
    ),
    encryption: rc4 ? "rc4" : "plaintext-header",
    infoHash: skey,
  };
}

// ------------------------------------------------------------------ the payload stream

/**
 * The connection after the handshake: `head` (plain bytes that arrived with the handshake) first, then the
 * connection's own bytes, decrypted with `decrypt` when given; writes encrypted with `encrypt` when given.
 */
function payloadStream(
  io: HandshakeIo,
  head: Uint8Array,
  decrypt?: Rc4,
  encrypt?: Rc4,
): PeerStream {
  const conn = io.conn;
  let readable: ReadableStream<Uint8Array>;
  const release = conn.release ? (chunk: Uint8Array) => conn.release!(chunk) : undefined;
  if (io.byob) readable = byobPassThrough(io.byob, head, decrypt);
  else if (decrypt) readable = decryptChunks(io.reader!, head, decrypt, release);
  else if (conn.unread) {
    // plaintext after the handshake: the connection's own stream, with what came along put back in front (no
    // stream in between: every chunk of a download would pay for one)
    io.reader!.releaseLock();
    conn.unread(head);
    readable = conn.readable;
  } else readable = prefixChunks(io.reader!, head);
  let writable: WritableStream<Uint8Array>;
  if (encrypt) writable = encryptingWritable(io.writer, encrypt);
  else {
    // queued handshake writes stay queued ahead of anything written later
    io.writer.releaseLock();
    writable = conn.writable;
  }
  // the connection object lives as long as either stream does: Deno closes the socket of a collected Deno.Conn,
  // and a caller may keep only the streams
  KEEP_ALIVE.set(readable, conn);
  KEEP_ALIVE.set(writable, conn);
  return {
    readable,
    writable,
    close() {
      conn.close?.();
    },
    // the source's own chunks pass through unchanged (plaintext): the reader may hand them back to its pool
    ...(release && !io.byob && !decrypt ? { release } : {}),
    ...(conn.unread && readable === conn.readable
      ? { unread: (b: Uint8Array) => conn.unread!(b) }
      : {}),
  };
}

const KEEP_ALIVE = new WeakMap<object, PeerStream>();

/** The prefix, then the source's chunks as they are (no BYOB source, no RC4: nothing to copy). */
function prefixChunks(
  source: ReadableStreamDefaultReader<Uint8Array>,
  head: Uint8Array,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (head.length > 0) {
        controller.enqueue(head);
        head = new Uint8Array(0);
        return;
      }
      const r = await source.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
