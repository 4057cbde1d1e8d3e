/**
 * RC4 as Message Stream Encryption uses it (the first 1024 bytes of keystream discarded), and the Web Streams
 * that apply it to a connection after the handshake in `mse.ts`: a byte stream decrypting in place into a BYOB
 * reader's buffer, a byte stream decrypting a chunked source into the reader's buffer, and a writable encrypting
 * into one reused buffer of its own (never the caller's).
 *
 * @module
 */

/** Reads of a connection without BYOB support are re-chunked into buffers of this size when decrypted. */
const CHUNK = 64 * 1024;
/** The RC4 writable encrypts a write in pieces of at most this many bytes into one reused buffer. */
const MAX_ENCRYPT_CHUNK = 256 * 1024;

/**
 * RC4 with the first 1024 bytes of keystream discarded, as MSE uses it.
 *
 * @example Encrypt and decrypt
 * ```ts
 * import { Rc4 } from "./rc4.ts";
 * import assert from "node:assert/strict";
 *
 * const key = new Uint8Array(20).fill(7);
 * const secret = new TextEncoder().encode("attack at dawn");
 * const sealed = new Uint8Array(secret.length);
 * new Rc4(key).process(secret, sealed);
 * new Rc4(key).process(sealed); // in place
 * assert.deepEqual(sealed, secret);
 * ```
 */
export class Rc4 {
  // Int32Array: measurably faster than a Uint8Array state in V8 (bench/mse_bench.ts)
  readonly #s = new Int32Array(256);
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

  /**
   * XORs `src` with the next `src.length` bytes of keystream into `dst` (encrypts or decrypts).
   *
   * @param src The input.
   * @param dst Where the output goes, at least `src.length` bytes: `src` itself (in place) or a buffer that does
   *   not overlap it.
   */
  process(src: Uint8Array, dst: Uint8Array = src): void {
    const s = this.#s;
    const n = src.length;
    let i = this.#i, j = this.#j, k = 0;
    // four bytes of keystream per 32-bit XOR when both buffers allow it (about a quarter faster than bytewise)
    if (n >= 64 && LITTLE_ENDIAN && ((src.byteOffset - dst.byteOffset) & 3) === 0) {
      for (; ((dst.byteOffset + k) & 3) !== 0; k++) {
        i = (i + 1) & 0xff;
        const si = s[i];
        j = (j + si) & 0xff;
        const sj = s[j];
        s[i] = sj;
        s[j] = si;
        dst[k] = src[k] ^ s[(si + sj) & 0xff];
      }
      const words = (n - k) >> 2;
      const from = new Int32Array(src.buffer, src.byteOffset + k, words);
      const to = new Int32Array(dst.buffer, dst.byteOffset + k, words);
      for (let w = 0; w < words; w++) {
        i = (i + 1) & 0xff;
        let si = s[i];
        j = (j + si) & 0xff;
        let sj = s[j];
        s[i] = sj;
        s[j] = si;
        let x = s[(si + sj) & 0xff];
        i = (i + 1) & 0xff;
        si = s[i];
        j = (j + si) & 0xff;
        sj = s[j];
        s[i] = sj;
        s[j] = si;
        x |= s[(si + sj) & 0xff] << 8;
        i = (i + 1) & 0xff;
        si = s[i];
        j = (j + si) & 0xff;
        sj = s[j];
        s[i] = sj;
        s[j] = si;
        x |= s[(si + sj) & 0xff] << 16;
        i = (i + 1) & 0xff;
        si = s[i];
        j = (j + si) & 0xff;
        sj = s[j];
        s[i] = sj;
        s[j] = si;
        to[w] = from[w] ^ (x | (s[(si + sj) & 0xff] << 24));
      }
      k += words << 2;
    }
    for (; k < n; k++) {
      i = (i + 1) & 0xff;
      const si = s[i];
      j = (j + si) & 0xff;
      const sj = s[j];
      s[i] = sj;
      s[j] = si;
      dst[k] = src[k] ^ s[(si + sj) & 0xff];
    }
    this.#i = i;
    this.#j = j;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A byte stream over a byte stream: each read goes straight into the reader's own buffer (a BYOB reader's, or
 * a 64 KiB one allocated for a default reader) and is decrypted there in place.
 *
 * @param source The connection's BYOB reader (after the handshake).
 * @param head Plain bytes that arrived with the handshake, read first.
 * @param decrypt The RC4 state to decrypt with, or undefined for plaintext.
 * @returns A byte stream of plain bytes.
 */
export function byobPassThrough(
  source: ReadableStreamBYOBReader,
  head: Uint8Array,
  decrypt: Rc4 | undefined,
): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: CHUNK,
    async pull(controller) {
      const request = controller.byobRequest!;
      const v = request.view!;
      const view = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (head.length > 0) {
        const n = Math.min(head.length, view.length);
        view.set(head.subarray(0, n));
        head = head.subarray(n);
        request.respond(n);
        return;
      }
      const r = await source.read(view);
      if (r.done) {
        controller.close();
        if (r.value) request.respondWithNewView(r.value);
        else request.respond(0);
        return;
      }
      decrypt?.process(r.value);
      request.respondWithNewView(r.value);
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  });
}

/**
 * A byte stream over a stream of chunks (no BYOB): each chunk is decrypted into the reader's buffer, never in
 * place (the chunk may still belong to whoever wrote it).
 *
 * @param source The connection's default reader (after the handshake).
 * @param head Plain bytes that arrived with the handshake, read first.
 * @param decrypt The RC4 state to decrypt with.
 * @param release Hands a source chunk back to its owner once it has been decrypted out of entirely.
 * @returns A byte stream of plain bytes.
 */
export function decryptChunks(
  source: ReadableStreamDefaultReader<Uint8Array>,
  head: Uint8Array,
  decrypt: Rc4,
  release: ((chunk: Uint8Array) => void) | undefined,
): ReadableStream<Uint8Array> {
  let raw: Uint8Array = new Uint8Array(0);
  let held: Uint8Array | undefined;
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: CHUNK,
    async pull(controller) {
      const request = controller.byobRequest!;
      const v = request.view!;
      const view = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (head.length > 0) {
        const n = Math.min(head.length, view.length);
        view.set(head.subarray(0, n));
        head = head.subarray(n);
        request.respond(n);
        return;
      }
      while (raw.length === 0) {
        if (held) release?.(held); // decrypted out of it entirely: the source may reuse it
        held = undefined;
        const r = await source.read();
        if (r.done) {
          controller.close();
          request.respond(0);
          return;
        }
        raw = held = r.value;
      }
      const n = Math.min(raw.length, view.length);
      decrypt.process(raw.subarray(0, n), view);
      raw = raw.subarray(n);
      request.respond(n);
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  });
}

/**
 * Encrypts each write into one reused buffer (never the caller's: it may reuse its buffer as soon as the write
 * resolves) and resolves once the connection has taken the bytes, so the buffer is free again and backpressure
 * reaches the caller.
 *
 * @param writer The connection's writer (after the handshake).
 * @param encrypt The RC4 state to encrypt with.
 * @returns A writable taking plain bytes.
 */
export function encryptingWritable(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  encrypt: Rc4,
): WritableStream<Uint8Array> {
  let spare: Uint8Array | undefined;
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let at = 0; at < chunk.length;) {
        const n = Math.min(chunk.length - at, MAX_ENCRYPT_CHUNK);
        const out = spare && spare.length >= n ? spare : new Uint8Array(Math.max(n, 16 * 1024));
        spare = undefined;
        encrypt.process(chunk.subarray(at, at + n), out);
        await writer.write(out.subarray(0, n));
        spare = out;
        at += n;
      }
    },
    close() {
      return writer.close();
    },
    abort(reason) {
      return writer.abort(reason);
    },
  });
}
