/**
 * Message Stream Encryption (MSE, the "protocol encryption" every major client speaks): the receiving side.
 *
 * Peers such as WebTorrent open every outgoing connection with an MSE handshake (a Diffie-Hellman exchange,
 * then RC4) even when they accept plaintext afterwards. {@linkcode acceptConnection} looks at the first bytes of
 * an incoming connection: a plain BitTorrent handshake passes through untouched; an MSE handshake is answered,
 * plaintext is chosen when the peer offers it (it is cheaper), RC4 otherwise, and the caller gets a plain
 * {@linkcode PeerStream} either way.
 *
 * @module
 */

import { bytesEqual, concat, fromHex, toHex, utf8 } from "../_bytes.ts";
import type { PeerStream } from "./stream.ts";
import { WireError } from "./errors.ts";

const P = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
);
const KEY_BYTES = 96;
const MAX_PAD = 512;
const PLAINTEXT = 0x01, RC4_METHOD = 0x02;
const PSTR = utf8("\x13BitTorrent protocol");

/** RC4 with the first 1024 bytes of keystream discarded, as MSE uses it. */
export class Rc4 {
  readonly #s = new Uint8Array(256);
  #i = 0;
  #j = 0;

  /**
   * Creates an {@linkcode Rc4} keyed with `key`.
   *
   * @param key The key (20 bytes in MSE).
   */
  constructor(key: Uint8Array) {
    const s = this.#s;
    for (let i = 0; i < 256; i++) s[i] = i;
    for (let i = 0, j = 0; i < 256; i++) {
      j = (j + s[i] + key[i % key.length]) & 0xff;
      const t = s[i];
      s[i] = s[j];
      s[j] = t;
    }
    this.process(new Uint8Array(1024));
  }

  /** Encrypts or decrypts `data` in place. */
  process(data: Uint8Array): void {
    const s = this.#s;
    let i = this.#i, j = this.#j;
    for (let k = 0; k < data.length; k++) {
      i = (i + 1) & 0xff;
      j = (j + s[i]) & 0xff;
      const t = s[i];
      s[i] = s[j];
      s[j] = t;
      data[k] ^= s[(s[i] + s[j]) & 0xff];
    }
    this.#i = i;
    this.#j = j;
  }
}

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

function toBytes(n: bigint, length: number): Uint8Array {
  return fromHex(n.toString(16).padStart(length * 2, "0"))!;
}

async function sha1(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", concat(parts)));
}

/** Reads from a stream into a growing buffer. */
class Input {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  buf: Uint8Array = new Uint8Array(0);
  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }
  /** Ensures at least n bytes are buffered (up to a cap). */
  async need(n: number): Promise<void> {
    while (this.buf.length < n) {
      const { value, done } = await this.#reader.read();
      if (done) throw new WireError("connection closed during the encryption handshake");
      this.buf = this.buf.length === 0 ? value : concat([this.buf, value]);
      if (this.buf.length > 80_000) throw new WireError("encryption handshake too long");
    }
  }
  take(n: number): Uint8Array {
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/** What {@linkcode acceptConnection} made of an incoming connection. */
export interface AcceptedConnection {
  /** The connection as plain BitTorrent bytes (decrypted when RC4 was chosen). */
  stream: PeerStream;
  /** "plaintext" (no MSE), "mse-plaintext" (MSE handshake, then plaintext) or "rc4". */
  mode: "plaintext" | "mse-plaintext" | "rc4";
}

/**
 * Sorts out an incoming connection: plain BitTorrent handshake or MSE.
 *
 * @param conn The accepted connection.
 * @param infoHashes The torrents we serve (MSE identifies the torrent by a hash of its info hash).
 * @param options `timeoutMs` bounds the encryption handshake (default 10 s); `allowPlaintext` (default true)
 *   lets the peer choose plaintext after the handshake.
 * @returns The connection to hand to a {@linkcode PeerConnection}.
 * @throws {WireError} When the bytes are neither, or the peer asks for a torrent we do not serve.
 */
export async function acceptConnection(
  conn: PeerStream,
  infoHashes: Uint8Array[],
  options: { timeoutMs?: number; allowPlaintext?: boolean } = {},
): Promise<AcceptedConnection> {
  const reader = conn.readable.getReader();
  const input = new Input(reader);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new WireError("encryption handshake timed out")),
      options.timeoutMs ?? 10_000,
    );
  });
  try {
    return await Promise.race([
      handshake(conn, reader, input, infoHashes, options.allowPlaintext ?? true),
      timeout,
    ]);
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function handshake(
  conn: PeerStream,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  input: Input,
  infoHashes: Uint8Array[],
  allowPlaintext: boolean,
): Promise<AcceptedConnection> {
  await input.need(1);
  if (input.buf[0] === 19) {
    await input.need(PSTR.length);
    if (bytesEqual(input.buf.subarray(0, PSTR.length), PSTR)) {
      return { stream: rebuild(conn, reader, input.buf, undefined, undefined), mode: "plaintext" };
    }
  }
  // 1. Ya (and up to 512 bytes of padding we skip while looking for req1)
  await input.need(KEY_BYTES);
  const ya = BigInt("0x" + toHex(input.take(KEY_BYTES)));
  if (ya <= 1n || ya >= P - 1n) throw new WireError("invalid encryption handshake public key");
  // 2. Yb + PadB
  const xb = BigInt("0x" + toHex(crypto.getRandomValues(new Uint8Array(20))));
  const yb = toBytes(modPow(2n, xb, P), KEY_BYTES);
  const padB = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 64)));
  // writes are not awaited: over TCP they complete at once, and a failure shows up as a failed read
  const writer = conn.writable.getWriter();
  writer.write(concat([yb, padB])).catch(() => {});
  const s = toBytes(modPow(ya, xb, P), KEY_BYTES);
  // 3. find HASH('req1', S) after PadA
  const req1 = await sha1(utf8("req1"), s);
  let at = -1;
  for (;;) {
    await input.need(20);
    const buf = input.buf;
    for (let i = 0; i + 20 <= buf.length && i <= MAX_PAD; i++) {
      if (bytesEqual(buf.subarray(i, i + 20), req1)) {
        at = i;
        break;
      }
    }
    if (at >= 0) break;
    if (buf.length >= MAX_PAD + 20) {
      throw new WireError("encryption handshake: no req1 within the padding");
    }
    await input.need(buf.length + 1);
  }
  input.take(at + 20);
  await input.need(20);
  const xored = input.take(20);
  const req3 = await sha1(utf8("req3"), s);
  const req2 = xored.map((b, i) => b ^ req3[i]);
  let skey: Uint8Array | undefined;
  for (const ih of infoHashes) {
    if (bytesEqual(await sha1(utf8("req2"), ih), req2)) skey = ih;
  }
  if (!skey) throw new WireError("encryption handshake for a torrent we do not serve");
  const decrypt = new Rc4(await sha1(utf8("keyA"), s, skey));
  const encrypt = new Rc4(await sha1(utf8("keyB"), s, skey));
  // VC, crypto_provide, len(PadC)
  await input.need(14);
  const head = input.take(14);
  decrypt.process(head);
  if (head.subarray(0, 8).some((b) => b !== 0)) {
    throw new WireError("encryption handshake: bad verification constant");
  }
  const provide = ((head[8] << 24) | (head[9] << 16) | (head[10] << 8) | head[11]) >>> 0;
  const padC = (head[12] << 8) | head[13];
  if (padC > MAX_PAD) throw new WireError("encryption handshake: padding too long");
  await input.need(padC + 2);
  const padAndLen = input.take(padC + 2);
  decrypt.process(padAndLen);
  const iaLen = (padAndLen[padC] << 8) | padAndLen[padC + 1];
  if (iaLen > 65535) throw new WireError("encryption handshake: initial payload too long");
  await input.need(iaLen);
  const ia = input.take(iaLen);
  decrypt.process(ia);
  let select: number;
  if (allowPlaintext && provide & PLAINTEXT) select = PLAINTEXT;
  else if (provide & RC4_METHOD) select = RC4_METHOD;
  else throw new WireError("encryption handshake: no common encryption method");
  // 4. VC, crypto_select, len(PadD) = 0
  const reply = new Uint8Array(14);
  reply[11] = select;
  encrypt.process(reply);
  writer.write(reply).catch(() => {});
  writer.releaseLock(); // the queued write still goes out, ahead of anything written later
  const rc4 = select === RC4_METHOD;
  const rest = input.buf;
  if (rc4) decrypt.process(rest);
  return {
    stream: rebuild(
      conn,
      reader,
      concat([ia, rest]),
      rc4 ? decrypt : undefined,
      rc4 ? encrypt : undefined,
    ),
    mode: rc4 ? "rc4" : "mse-plaintext",
  };
}

/** A PeerStream that first yields `prefix`, then the rest of the connection (decrypted / encrypted with RC4). */
function rebuild(
  conn: PeerStream,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  prefix: Uint8Array,
  decrypt: Rc4 | undefined,
  encrypt: Rc4 | undefined,
): PeerStream {
  let first = prefix.length > 0 ? prefix : undefined;
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        controller.enqueue(first);
        first = undefined;
        return;
      }
      const { value, done } = await reader.read();
      if (done) return controller.close();
      if (decrypt) decrypt.process(value);
      controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  const writable = encrypt
    ? (() => {
      const w = conn.writable.getWriter();
      return new WritableStream<Uint8Array>({
        write(chunk) {
          const out = chunk.slice(); // never encrypt the caller's buffer in place
          encrypt.process(out);
          return w.write(out);
        },
        close: () => w.close(),
        abort: (reason) => w.abort(reason),
      });
    })()
    : conn.writable;
  return {
    readable,
    writable,
    close: () => conn.close?.(),
    ...(conn.release ? { release: (chunk: Uint8Array) => conn.release!(chunk) } : {}),
  };
}
