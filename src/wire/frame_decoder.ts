/**
 * The one decoder of the peer wire, on Web Streams: a socket's bytes (decrypted first when the connection is
 * encrypted) go through {@linkcode FrameDecoder}, a `TransformStream` that reads the 68-byte handshake, then
 * length-prefixed frames, and turns each into a {@linkcode PeerMessage} with {@linkcode decodeMessage}. Every
 * `PeerConnection` reads through it, and the fuzzer drives its synchronous core, {@linkcode WireDecoder}.
 *
 * Frames are split at any byte boundary and many arrive per chunk; a length prefix over the limit is refused before
 * anything is allocated; frames that lie within one chunk are handed on as views (no copy).
 *
 * @module
 */

import { WireError } from "./errors.ts";
import { HANDSHAKE_LENGTH, parseHandshake } from "./handshake.ts";
import { decodeMessage, type PeerMessage } from "./messages.ts";

/** Default largest frame: a 16 KiB block plus header, or a bitfield / extended message of up to 1 MiB. */
export const DEFAULT_MAX_MESSAGE_LENGTH: number = 1024 * 1024 + 64;

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

/** Options for {@linkcode FrameDecoder} and {@linkcode WireDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Largest frame accepted (excluding the 4-byte prefix).
   * @default {1048640}
   */
  maxMessageLength?: number;
  /**
   * The stream starts with a BitTorrent handshake (68 bytes), decoded into a `handshake` message before any
   * frame. A first byte other than 19 is refused at once.
   * @default {false}
   */
  handshake?: boolean;
}

/**
 * The decoder's synchronous core: the handshake (when asked for), then frames, each decoded by
 * {@linkcode decodeMessage}. {@linkcode FrameDecoder} wraps it in a `TransformStream`; the fuzzer drives it
 * directly.
 */
export class WireDecoder {
  readonly #parser: FrameParser;
  #handshake: Uint8Array | undefined;
  #handshakeFill = 0;

  /**
   * Creates a {@linkcode WireDecoder}.
   *
   * @param options The frame limit and whether a handshake comes first.
   */
  constructor(options: FrameDecoderOptions = {}) {
    this.#parser = new FrameParser(options.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH);
    if (options.handshake) this.#handshake = new Uint8Array(HANDSHAKE_LENGTH);
  }

  /** Bytes held for an incomplete handshake or frame. */
  get buffered(): number {
    return this.#handshakeFill + this.#parser.buffered;
  }

  /**
   * Feeds bytes; `onMessage` is called synchronously for each complete message, whose byte fields are views
   * valid only during the call.
   *
   * @param chunk The next bytes of the stream.
   * @param onMessage Receives each message.
   * @throws {WireError} When the peer breaks the framing or sends a malformed message.
   */
  push(chunk: Uint8Array, onMessage: (message: PeerMessage) => void): void {
    const hs = this.#handshake;
    if (hs) {
      const n = Math.min(HANDSHAKE_LENGTH - this.#handshakeFill, chunk.length);
      hs.set(chunk.subarray(0, n), this.#handshakeFill);
      this.#handshakeFill += n;
      if (hs[0] !== 19) throw new WireError("not a BitTorrent handshake");
      if (this.#handshakeFill < HANDSHAKE_LENGTH) return;
      this.#handshake = undefined;
      this.#handshakeFill = 0;
      let handshake;
      try {
        handshake = parseHandshake(hs);
      } catch (err) {
        throw new WireError(`not a BitTorrent handshake: ${(err as Error).message}`);
      }
      onMessage({ type: "handshake", handshake });
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    this.#parser.push(chunk, (frame) => onMessage(decodeMessage(frame)));
  }

  /**
   * The stream ended.
   *
   * @throws {WireError} When it ended inside a handshake or a frame.
   */
  end(): void {
    if (this.buffered > 0) {
      throw new WireError(`stream ended inside a frame (${this.buffered} bytes)`);
    }
  }
}

/** The messages decoded from one chunk of the stream, and the chunk itself. */
export interface MessageBatch {
  /** The chunk's complete messages, in order (none when it held only part of a frame). */
  messages: PeerMessage[];
  /**
   * The chunk they were decoded from. Byte fields of the messages are views into it: once they are handled, a
   * reader that reuses buffers (see `PeerStream.release`) may take it back.
   */
  chunk: Uint8Array;
  /**
   * The violation that ended decoding inside this chunk, after the messages before it (a handshake followed by
   * a bad frame in one read, say). The stream then errors with it.
   */
  error?: WireError;
}

/**
 * A `TransformStream` from raw peer-wire bytes to {@linkcode PeerMessage}s: the handshake first when
 * `handshake` is set, then one message per frame, delivered as one {@linkcode MessageBatch} per chunk (one read
 * per chunk, not per message, and the chunk's buffer can be recycled once its batch is handled). Errors the
 * stream with a {@linkcode WireError} on an oversize or malformed frame (the messages decoded before it in the
 * same chunk come first, in a batch that carries the error).
 *
 * @example Decode frames split across chunks
 * ```ts
 * import { FrameDecoder } from "./frame_decoder.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = new Uint8Array([0, 0, 0, 5, 4, 0, 0, 0, 7, 0, 0, 0, 0]);
 * const batches = await Array.fromAsync(
 *   ReadableStream.from([bytes.subarray(0, 3), bytes.subarray(3)]).pipeThrough(new FrameDecoder()),
 * );
 * assert.deepEqual(batches.flatMap((b) => b.messages), [{ type: "have", index: 7 }, { type: "keepalive" }]);
 * ```
 */
export class FrameDecoder extends TransformStream<Uint8Array, MessageBatch> {
  /**
   * Creates a {@linkcode FrameDecoder}.
   *
   * @param options The largest frame accepted (a number, for short), or {@linkcode FrameDecoderOptions}.
   */
  constructor(options: number | FrameDecoderOptions = {}) {
    const decoder = new WireDecoder(
      typeof options === "number" ? { maxMessageLength: options } : options,
    );
    let failed: WireError | undefined;
    super({
      transform(chunk, controller) {
        if (failed) throw failed;
        const messages: PeerMessage[] = [];
        try {
          decoder.push(chunk, (message) => messages.push(message));
        } catch (err) {
          if (!(err instanceof WireError) || messages.length === 0) throw err;
          // the messages before the violation still count: deliver them with it, then error the stream
          failed = err;
          controller.enqueue({ messages, chunk, error: err });
          return;
        }
        controller.enqueue({ messages, chunk });
      },
      flush() {
        if (failed) throw failed;
        decoder.end();
      },
    });
  }
}
