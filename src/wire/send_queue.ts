/**
 * The write side of the peer wire: messages are framed straight into one of two reused send buffers as they are
 * made (no object or array per message), and the filled buffer is written to the socket in one call while new
 * messages go into the other (double buffering). A batch goes out at the end of the current task, or at once
 * when it reaches 256 KiB. Seeding allocates nothing per block this way.
 *
 * @module
 */

/** Queued bytes that start a socket write at once (smaller amounts go at the end of the current task). */
const WRITE_BATCH = 256 * 1024;
/** The two send buffers grow as needed; one bigger than this after a burst is not kept. */
const MAX_SPARE = 2 * 1024 * 1024;
const EMPTY = new Uint8Array(0);
/** Bytes granted and written at a time while a rate limit applies. */
const LIMITED_SLICE = 64 * 1024;

/** Options for {@linkcode SendQueue}. */
export interface SendQueueOptions {
  /** Where the bytes go. */
  writer: WritableStreamDefaultWriter<Uint8Array>;
  /** A write completed: the queue is shorter now. */
  onDrain?: () => void;
  /**
   * A write completed: the payload bytes it carried (as {@linkcode SendQueue.commit} was told), now handed to
   * the socket.
   */
  onSent?: (payload: number) => void;
  /** A write failed; nothing more is sent. */
  onError: (err: unknown) => void;
  /** The clock (ms), for {@linkcode SendQueue.lastSent}. @default {Date.now} */
  now?: () => number;
  /** Bandwidth limits: each write waits for its bytes to be granted. */
  rate?: { up(bytes: number): Promise<void> | undefined; readonly upLimited: boolean };
}

/** Double-buffered, batched writes of framed messages. */
export class SendQueue {
  readonly #opts: SendQueueOptions;
  /** Messages not yet handed to the socket: `#buf[0, #len)`. */
  #buf: Uint8Array = EMPTY;
  #len = 0;
  /** Payload bytes among the queued ones. */
  #payload = 0;
  #spare: Uint8Array | undefined;
  #scheduled = false;
  #writing = false;
  #closed = false;
  #lastSent: number;

  /**
   * Creates a {@linkcode SendQueue}.
   *
   * @param options The socket's writer and whom to tell.
   */
  constructor(options: SendQueueOptions) {
    this.#opts = options;
    this.#lastSent = (options.now ?? Date.now)();
  }

  /** Bytes queued and not yet handed to the socket. */
  get length(): number {
    return this.#len;
  }

  /** When the last write started (ms). */
  get lastSent(): number {
    return this.#lastSent;
  }

  /**
   * Room for `n` more bytes: returns the buffer and the offset to write them at. The caller fills them, then
   * calls {@linkcode SendQueue.commit}.
   */
  reserve(n: number): { buf: Uint8Array; at: number } {
    const need = this.#len + n;
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(4096, need * 2));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    return { buf: this.#buf, at: this.#len };
  }

  /**
   * The `n` bytes reserved are filled: queue them.
   *
   * @param n Bytes filled.
   * @param payload How many of them are payload (block data), reported by `onSent` once written.
   */
  commit(n: number, payload = 0): void {
    this.#len += n;
    this.#payload += payload;
    if (this.#len >= WRITE_BATCH) {
      if (!this.#writing) void this.#flush();
    } else if (!this.#scheduled && !this.#writing) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        if (!this.#writing) void this.#flush();
      });
    }
  }

  /** Queues a copy of `bytes` (the caller may reuse them at once). */
  push(bytes: Uint8Array): void {
    if (this.#closed) return;
    const { buf, at } = this.reserve(bytes.length);
    buf.set(bytes, at);
    this.commit(bytes.length);
  }

  /** Drops everything queued; nothing more is written. */
  close(): void {
    this.#closed = true;
    this.#len = 0;
    this.#payload = 0;
    this.#spare = undefined;
  }

  async #flush(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#len > 0 && !this.#closed) {
        // write the filled buffer; new messages go to the spare one meanwhile (double buffering)
        const buf = this.#buf, len = this.#len, payload = this.#payload;
        this.#buf = this.#spare ?? EMPTY;
        this.#spare = undefined;
        this.#len = 0;
        this.#payload = 0;
        this.#lastSent = (this.#opts.now ?? Date.now)();
        if (this.#opts.rate?.upLimited) {
          // under a limit, bytes go out in slices that are granted one by one: the rate stays smooth
          for (let at = 0; at < len && !this.#closed; at += LIMITED_SLICE) {
            const n = Math.min(LIMITED_SLICE, len - at);
            const wait = this.#opts.rate.up(n);
            if (wait) await wait;
            if (!this.#closed) await this.#opts.writer.write(buf.subarray(at, at + n));
          }
        } else {
          await this.#opts.writer.write(buf.subarray(0, len));
        }
        // written: the buffer can be filled again (one that grew for a burst is let go)
        if (buf.length <= MAX_SPARE) this.#spare = buf;
        if (this.#closed) break;
        if (payload > 0) this.#opts.onSent?.(payload);
        this.#opts.onDrain?.();
      }
    } catch (err) {
      this.#opts.onError(err);
    } finally {
      this.#writing = false;
    }
  }
}
