/**
 * Length-prefixed frame decoding for the peer wire: a small "bytes still needed" state machine that works with
 * frames split at any byte boundary and many frames per chunk, refuses a length prefix over the limit before
 * allocating anything, and hands on frames that lie within one chunk as views (no copy).
 *
 * @module
 */

import { decodeMessage, type PeerMessage, WireError } from "./messages.ts";

/** Default largest frame: a 16 KiB block plus header, or a bitfield / extended message of up to 1 MiB. */
export const DEFAULT_MAX_MESSAGE_LENGTH = 1024 * 1024 + 64;

/**
 * Splits a byte stream into frames. `push` calls `onFrame` synchronously for each complete frame with a view
 * that is valid only during the call.
 */
export class FrameParser {
  readonly #max: number;
  readonly #header = new Uint8Array(4);
  #headerFill = 0;
  #pending: Uint8Array | undefined;
  #pendingFill = 0;

  /**

   * Creates a {@linkcode FrameParser}.

   *

   * @param maxMessageLength Largest frame accepted (excluding the 4-byte prefix).

   */
  constructor(maxMessageLength: number = DEFAULT_MAX_MESSAGE_LENGTH) {
    this.#max = maxMessageLength;
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.#headerFill + this.#pendingFill;
  }

  /**
   * Feeds bytes.
   *
   * @param chunk The next bytes of the stream.
   * @param onFrame Receives each complete frame (id byte + payload; empty for keep-alive).
   * @throws {WireError} When a length prefix exceeds the limit.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.#pending) {
        const need = this.#pending.length - this.#pendingFill;
        const n = Math.min(need, len - pos);
        this.#pending.set(chunk.subarray(pos, pos + n), this.#pendingFill);
        this.#pendingFill += n;
        pos += n;
        if (this.#pendingFill === this.#pending.length) {
          const f = this.#pending;
          this.#pending = undefined;
          this.#pendingFill = 0;
          onFrame(f);
        }
        continue;
      }
      let size: number;
      if (this.#headerFill === 0 && len - pos >= 4) {
        size =
          ((chunk[pos] << 24) | (chunk[pos + 1] << 16) | (chunk[pos + 2] << 8) | chunk[pos + 3]) >>>
          0;
        pos += 4;
      } else {
        while (this.#headerFill < 4 && pos < len) this.#header[this.#headerFill++] = chunk[pos++];
        if (this.#headerFill < 4) return;
        const h = this.#header;
        size = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
        this.#headerFill = 0;
      }
      if (size > this.#max) {
        throw new WireError(`message length ${size} exceeds the limit of ${this.#max}`);
      }
      if (len - pos >= size) {
        onFrame(chunk.subarray(pos, pos + size));
        pos += size;
      } else {
        this.#pending = new Uint8Array(size);
        this.#pendingFill = 0;
      }
    }
  }
}

/**
 * A `TransformStream` from raw peer-wire bytes (after the handshake) to {@linkcode PeerMessage}s. Errors the
 * stream with a {@linkcode WireError} on an oversize or malformed frame.
 *
 * @example Decode frames split across chunks
 * ```ts
 * import { FrameDecoder } from "./frame_decoder.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = new Uint8Array([0, 0, 0, 5, 4, 0, 0, 0, 7, 0, 0, 0, 0]);
 * const messages = await Array.fromAsync(
 *   ReadableStream.from([bytes.subarray(0, 3), bytes.subarray(3)]).pipeThrough(new FrameDecoder()),
 * );
 * assert.deepEqual(messages, [{ type: "have", index: 7 }, { type: "keepalive" }]);
 * ```
 */
export class FrameDecoder extends TransformStream<Uint8Array, PeerMessage> {
  /**
   * Creates a {@linkcode FrameDecoder}.
   *
   * @param maxMessageLength Largest frame accepted.
   */
  constructor(maxMessageLength: number = DEFAULT_MAX_MESSAGE_LENGTH) {
    const parser = new FrameParser(maxMessageLength);
    super({
      transform(chunk, controller) {
        // frames that lie inside the chunk are views of it: copy piece data only if the source reuses buffers
        parser.push(chunk, (frame) => controller.enqueue(decodeMessage(frame)));
      },
      flush() {
        if (parser.buffered > 0) {
          throw new WireError(`stream ended inside a frame (${parser.buffered} bytes)`);
        }
      },
    });
  }
}
