/**
 * One peer connection: the handshake, choke/interest state both ways, the peer's pieces, our pipelined requests,
 * the fast extension (BEP 6) and the extension protocol (BEP 10), over any pair of Web Streams.
 *
 * A peer that breaks the protocol is disconnected and reported through `onClose` with the reason; nothing is
 * ever thrown into the caller. Outgoing messages produced in one turn of the event loop are written together.
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { bytesEqual } from "./_bytes.ts";
import { allowedFastSet } from "./wire/allowed_fast.ts";
import {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  type ExtensionHandshake,
} from "./wire/extension.ts";
import { FrameParser } from "./wire/frame_decoder.ts";
import {
  encodeHandshake,
  type Handshake,
  HANDSHAKE_LENGTH,
  parseHandshake,
} from "./wire/handshake.ts";
import {
  encodeBitfield,
  encodeExtended,
  encodeIndex,
  encodeKeepAlive,
  encodePort,
  encodeSimple,
  MessageId,
  WireError,
  writeBlockMessage,
  writePieceHeader,
} from "./wire/messages.ts";

import type { PeerStream } from "./wire/stream.ts";
export type { PeerStream } from "./wire/stream.ts";

/** Options for {@linkcode PeerConnection}. */
export interface PeerConnectionOptions {
  /** The torrent's info hash. */
  infoHash: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Pieces in the torrent; 0 while unknown (a metadata-only connection for a magnet link). */
  pieceCount: number;
  /** Bytes per piece. */
  pieceLength: number;
  /** Total bytes. */
  totalLength: number;
  /** Advertise and use the fast extension. @default {true} */
  fast?: boolean;
  /** Advertise and use the extension protocol. @default {true} */
  extended?: boolean;
  /** Advertise DHT support. @default {false} */
  dht?: boolean;
  /**
   * Our handshake already went out (in the initial payload of an MSE handshake, `initiateConnection`): do not
   * send it again. It must have been made with the same info hash, peer id and extension bits.
   * @default {false}
   */
  handshakeSent?: boolean;
  /** Our extension handshake fields (`m`, `v`, `p`, `reqq`, …). */
  extensionHandshake?: Record<string, unknown>;
  /** Most requests we keep outstanding. @default {256} */
  queueDepth?: number;
  /** Most unanswered requests the peer may have with us; more is a violation. @default {1000} */
  maxIncomingRequests?: number;
  /** Milliseconds to complete the handshake. @default {10000} */
  handshakeTimeoutMs?: number;
  /** Milliseconds without any message from the peer before closing. @default {180000} */
  idleTimeoutMs?: number;
  /** Milliseconds without sending before a keep-alive. @default {60000} */
  keepAliveMs?: number;
  /** Closes the connection when aborted. */
  signal?: AbortSignal;
  /** The peer's address (for the allowed-fast set and reports). */
  remoteAddress?: { host: string; port: number };
}

/** A block (piece index, offset, length). */
export interface BlockRef {
  /** Piece index. */
  index: number;
  /** Offset in the piece. */
  begin: number;
  /** Bytes. */
  length: number;
}

/** Callbacks for what a peer does; plain calls, no event objects on the hot path. */
export interface PeerHandler {
  /** Both handshakes are done. */
  onReady?(peer: PeerConnection): void;
  /** The peer told us its pieces (bitfield, have all, have none). */
  onBitfield?(peer: PeerConnection): void;
  /** The peer has a new piece. */
  onHave?(peer: PeerConnection, index: number): void;
  /** The peer choked us (dropped requests were reported first through onRequestsDropped). */
  onChoke?(peer: PeerConnection): void;
  /** The peer unchoked us. */
  onUnchoke?(peer: PeerConnection): void;
  /** The peer wants data from us. */
  onInterested?(peer: PeerConnection): void;
  /** The peer no longer wants data from us. */
  onNotInterested?(peer: PeerConnection): void;
  /** A block we requested arrived; `data` is valid only during the call. */
  onBlock(peer: PeerConnection, index: number, begin: number, data: Uint8Array): void;
  /** The peer asks for a block (validated); answer with sendPiece or reject. */
  onRequest?(peer: PeerConnection, index: number, begin: number, length: number): void;
  /** The peer withdrew a request. */
  onCancel?(peer: PeerConnection, index: number, begin: number, length: number): void;
  /** A socket write completed: {@linkcode PeerConnection.sendQueueBytes} went down (serve held requests). */
  onDrain?(peer: PeerConnection): void;
  /** The peer rejected one of our requests (fast extension). */
  onReject?(peer: PeerConnection, index: number, begin: number, length: number): void;
  /** Our outstanding requests were dropped (the peer choked us without the fast extension). */
  onRequestsDropped?(peer: PeerConnection, blocks: BlockRef[]): void;
  /** The peer lets us request this piece while choked. */
  onAllowedFast?(peer: PeerConnection, index: number): void;
  /** The peer suggests a piece. */
  onSuggest?(peer: PeerConnection, index: number): void;
  /** An extended message (the handshake, id 0, is parsed into `remoteExtensions` first). */
  onExtended?(peer: PeerConnection, id: number, payload: Uint8Array): void;
  /** The peer's DHT port. */
  onPort?(peer: PeerConnection, port: number): void;
  /** The connection ended, for this reason; called exactly once. */
  onClose?(peer: PeerConnection, reason: string): void;
}

const BLOCK_MAX = 16 * 1024;
/** Queued bytes that start a socket write at once (smaller amounts go at the end of the current task). */
const WRITE_BATCH = 256 * 1024;
/** The two send buffers grow as needed; one bigger than this after a burst is not kept. */
const MAX_SPARE = 2 * 1024 * 1024;
const EMPTY = new Uint8Array(0);
const CANCELLED_MEMORY = 2048;

/** One connection to a peer. */
export class PeerConnection implements AsyncDisposable {
  readonly #stream: PeerStream;
  readonly #opts: PeerConnectionOptions;
  readonly #h: PeerHandler;
  readonly #bitfield: Bitfield;
  readonly #pieceLength: number;
  readonly #lastPieceSize: number;
  #remote: Handshake | undefined;
  #remoteExt: ExtensionHandshake | undefined;
  #ready = false;
  #gotBitfield = false;
  #amChoking = true;
  #amInterested = false;
  #peerChoking = true;
  #peerInterested = false;
  #queueDepth: number;
  /** our requests: key → length asked for */
  readonly #requests = new Map<number, number>();
  readonly #cancelled = new Set<number>();
  /** the peer's requests not yet answered */
  readonly #incoming = new Set<number>();
  readonly #allowedFast = new Set<number>();
  #duplicateRequests = 0;
  #downloaded = 0;
  #uploaded = 0;
  #lastReceived = Date.now();
  #lastSent = Date.now();
  #closed = false;
  #closeReason: string | undefined;
  readonly #done = Promise.withResolvers<void>();
  // writing
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** Messages not yet handed to the socket: `#outBuf[0, #outLen)`. */
  #outBuf: Uint8Array = EMPTY;
  #outLen = 0;
  #outSpare: Uint8Array | undefined;
  #flushScheduled = false;
  #writing = false;
  // reading
  #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader | undefined;
  readonly #parser: FrameParser;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  #onAbort: (() => void) | undefined;

  /**
   * Creates a {@linkcode PeerConnection}.
   *
   * @param stream The connection's streams (a `Deno.Conn` will do).
   * @param options The torrent and our limits.
   * @param handler Receives what the peer does.
   */
  constructor(stream: PeerStream, options: PeerConnectionOptions, handler: PeerHandler) {
    this.#stream = stream;
    this.#opts = options;
    this.#h = handler;
    this.#bitfield = new Bitfield(options.pieceCount);
    this.#pieceLength = options.pieceLength;
    this.#lastPieceSize = options.totalLength - (options.pieceCount - 1) * options.pieceLength;
    this.#queueDepth = options.queueDepth ?? 256;
    this.#parser = new FrameParser(
      Math.max(BLOCK_MAX + 13, Math.ceil(options.pieceCount / 8) + 1, 1024 * 1024),
    );
  }

  // ---------------------------------------------------------------- state

  /** The peer's handshake, once received. */
  get remoteHandshake(): Handshake | undefined {
    return this.#remote;
  }
  /** The peer's id, once the handshake is received. */
  get remotePeerId(): Uint8Array | undefined {
    return this.#remote?.peerId;
  }
  /** The peer's extension handshake (BEP 10), once received. */
  get remoteExtensions(): ExtensionHandshake | undefined {
    return this.#remoteExt;
  }
  /** Both sides support the fast extension. */
  get supportsFast(): boolean {
    return (this.#opts.fast ?? true) && (this.#remote?.fast ?? false);
  }
  /** Both sides support the extension protocol. */
  get supportsExtended(): boolean {
    return (this.#opts.extended ?? true) && (this.#remote?.extended ?? false);
  }
  /** We are choking the peer. */
  get amChoking(): boolean {
    return this.#amChoking;
  }
  /** We are interested in the peer. */
  get amInterested(): boolean {
    return this.#amInterested;
  }
  /** The peer is choking us. */
  get peerChoking(): boolean {
    return this.#peerChoking;
  }
  /** The peer is interested in us. */
  get peerInterested(): boolean {
    return this.#peerInterested;
  }
  /** The peer's pieces. */
  get bitfield(): Bitfield {
    return this.#bitfield;
  }
  /** Our requests in flight. */
  get outstanding(): number {
    return this.#requests.size;
  }
  /** Most requests we keep in flight. */
  get queueDepth(): number {
    return this.#queueDepth;
  }
  /** Pieces the peer allows us to request while choked. */
  get allowedFast(): ReadonlySet<number> {
    return this.#allowedFast;
  }
  /** Payload bytes received. */
  get downloaded(): number {
    return this.#downloaded;
  }
  /** Payload bytes sent. */
  get uploaded(): number {
    return this.#uploaded;
  }
  /** When the last message arrived (ms since the epoch). */
  get lastReceived(): number {
    return this.#lastReceived;
  }
  /** Bytes queued for sending. */
  get sendQueueBytes(): number {
    return this.#outLen;
  }
  /** True once the connection ended. */
  get closed(): boolean {
    return this.#closed;
  }
  /** Why the connection ended. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }
  /** Resolves when the connection has ended and released its resources. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Sets how many requests we keep in flight (capped by the peer's `reqq`). */
  setQueueDepth(n: number): void {
    this.#queueDepth = Math.max(1, Math.min(n, this.#remoteExt?.reqq ?? Infinity));
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Sends our handshake, reads the peer's, then keeps reading in the background.
   *
   * @returns True once both handshakes are done; false if the connection ended instead. Never rejects.
   */
  start(): Promise<boolean> {
    const ready = Promise.withResolvers<boolean>();
    if (this.#opts.signal?.aborted) {
      this.close("aborted");
      ready.resolve(false);
      return ready.promise;
    }
    if (this.#opts.signal) {
      this.#onAbort = () => this.close("aborted");
      this.#opts.signal.addEventListener("abort", this.#onAbort, { once: true });
    }
    try {
      this.#writer = this.#stream.writable.getWriter();
    } catch (err) {
      this.close(`cannot write: ${errorText(err)}`);
      ready.resolve(false);
      return ready.promise;
    }
    this.#handshakeTimer = setTimeout(
      () => this.close("handshake timed out"),
      this.#opts.handshakeTimeoutMs ?? 10_000,
    );
    if (!this.#opts.handshakeSent) {
      this.#enqueue(encodeHandshake({
        infoHash: this.#opts.infoHash,
        peerId: this.#opts.peerId,
        fast: this.#opts.fast ?? true,
        extended: this.#opts.extended ?? true,
        dht: this.#opts.dht ?? false,
      }));
    }
    this.#readLoop(ready).catch((err) => this.close(`read failed: ${errorText(err)}`))
      .finally(() => ready.resolve(false));
    return ready.promise;
  }

  /** Ends the connection (idempotent). */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#timer);
    if (this.#onAbort) this.#opts.signal?.removeEventListener("abort", this.#onAbort);
    this.#outLen = 0;
    this.#outSpare = undefined;
    this.#requests.clear();
    this.#incoming.clear();
    try {
      this.#h.onClose?.(this, reason);
    } catch {
      // a handler error must not keep the connection open
    }
    this.#release();
  }

  async #release(): Promise<void> {
    const reader = this.#reader, writer = this.#writer;
    try {
      await reader?.cancel().catch(() => {});
    } catch { /* already released */ }
    try {
      if (writer) {
        // wait for a write in flight, then close our side
        await writer.abort().catch(() => {});
      }
    } catch { /* already closed */ }
    try {
      this.#stream.close?.();
    } catch { /* already closed */ }
    this.#done.resolve();
  }

  /** Same as {@linkcode PeerConnection.close}, then waits for the resources to be released. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close("disposed");
    await this.#done.promise;
  }

  // ---------------------------------------------------------------- reading

  async #readLoop(ready: PromiseWithResolvers<boolean>): Promise<void> {
    let byob: ReadableStreamBYOBReader | undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      byob = this.#stream.readable.getReader({ mode: "byob" });
      this.#reader = byob;
    } catch {
      reader = this.#stream.readable.getReader();
      this.#reader = reader;
    }
    let buffer: ArrayBuffer = new ArrayBuffer(256 * 1024);
    const handshake = new Uint8Array(HANDSHAKE_LENGTH);
    let hsFill = 0;
    const onFrame = (frame: Uint8Array) => this.#onFrame(frame);
    while (!this.#closed) {
      let chunk: Uint8Array | undefined;
      if (byob) {
        const r = await byob.read(new Uint8Array(buffer, 0, buffer.byteLength));
        if (r.done || !r.value) break;
        chunk = r.value;
        buffer = r.value.buffer as ArrayBuffer;
      } else {
        const r = await reader!.read();
        if (r.done) break;
        chunk = r.value;
      }
      if (this.#closed) return;
      this.#lastReceived = Date.now();
      let pos = 0;
      if (!this.#remote) {
        const n = Math.min(HANDSHAKE_LENGTH - hsFill, chunk.length);
        handshake.set(chunk.subarray(0, n), hsFill);
        hsFill += n;
        pos = n;
        if (hsFill >= 1 && handshake[0] !== 19) return this.close("not a BitTorrent handshake");
        if (hsFill < HANDSHAKE_LENGTH) continue;
        if (!this.#onHandshake(handshake)) return;
        ready.resolve(true);
        if (pos === chunk.length) continue;
      }
      try {
        this.#parser.push(pos === 0 ? chunk : chunk.subarray(pos), onFrame);
      } catch (err) {
        return this.close(
          err instanceof WireError ? err.message : `internal error: ${(err as Error).message}`,
        );
      }
    }
    this.close(this.#remote ? "connection closed by peer" : "connection closed during handshake");
  }

  #onHandshake(bytes: Uint8Array): boolean {
    let hs: Handshake;
    try {
      hs = parseHandshake(bytes);
    } catch (err) {
      this.close((err as Error).message);
      return false;
    }
    if (!bytesEqual(hs.infoHash, this.#opts.infoHash)) {
      this.close("handshake for a different torrent (info hash mismatch)");
      return false;
    }
    this.#remote = hs;
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    const keepAlive = this.#opts.keepAliveMs ?? 60_000;
    const idle = this.#opts.idleTimeoutMs ?? 180_000;
    this.#timer = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastReceived > idle) return this.close("idle timeout");
      if (now - this.#lastSent >= keepAlive) this.#enqueue(encodeKeepAlive());
    }, Math.max(50, Math.min(keepAlive, idle) / 2));
    if (this.supportsExtended) {
      this.#enqueue(
        encodeExtended(0, encodeExtensionHandshake(this.#opts.extensionHandshake ?? {})),
      );
    }
    this.#ready = true;
    this.#h.onReady?.(this);
    return !this.#closed;
  }

  #pieceSize(index: number): number {
    return index === this.#opts.pieceCount - 1 ? this.#lastPieceSize : this.#pieceLength;
  }

  #key(index: number, begin: number): number {
    return index * 536870912 + begin; // 2^29: piece length is limited to 512 MiB
  }

  #violation(reason: string): void {
    this.close(`protocol violation: ${reason}`);
  }

  #onFrame(f: Uint8Array): void {
    if (this.#closed) return;
    if (f.length === 0) return; // keep-alive
    const id = f[0];
    const n = f.length - 1;
    const u32 = (o: number) => ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0;
    const count = this.#opts.pieceCount;
    // metadata-only connections (magnet links: the torrent's size is not known yet) ignore piece information
    if (
      count === 0 && id !== MessageId.extended && id !== MessageId.piece && id !== MessageId.port &&
      id > 3
    ) return;
    switch (id) {
      case MessageId.piece: {
        if (n < 8) return this.#violation("short piece message");
        const index = u32(1), begin = u32(5);
        const data = f.subarray(9);
        // range first: an offset past the piece must not alias the key of another piece's block
        if (index >= count || begin + data.length > this.#pieceSize(index)) {
          return this.#violation(`piece ${index}+${begin} is outside the torrent`);
        }
        const key = this.#key(index, begin);
        const asked = this.#requests.get(key);
        if (asked === undefined) {
          if (this.#cancelled.delete(key)) return; // we cancelled it; it crossed on the wire
          return this.#violation(`piece ${index}+${begin} was never requested`);
        }
        if (asked !== data.length) {
          return this.#violation(
            `block ${index}+${begin} has ${data.length} bytes, we asked for ${asked}`,
          );
        }
        this.#requests.delete(key);
        this.#downloaded += data.length;
        this.#h.onBlock(this, index, begin, data);
        return;
      }
      case MessageId.request: {
        if (n !== 12) return this.#violation("request message of wrong length");
        const index = u32(1), begin = u32(5), length = u32(9);
        if (index >= count) return this.#violation(`request for piece ${index} of ${count}`);
        if (length === 0 || length > BLOCK_MAX) {
          return this.#violation(`request for ${length} bytes`);
        }
        if (begin + length > this.#pieceSize(index)) {
          return this.#violation(`request ${index}+${begin}+${length} is outside the piece`);
        }
        if (this.#incoming.size >= (this.#opts.maxIncomingRequests ?? 1000)) {
          return this.#violation("too many outstanding requests");
        }
        if (this.#amChoking && !this.supportsFast) return; // ignored: we told it we choke
        const key = this.#key(index, begin);
        if (this.#incoming.has(key) && ++this.#duplicateRequests > 64) {
          return this.#violation("request flood (the same blocks requested over and over)");
        }
        this.#incoming.add(key);
        this.#h.onRequest?.(this, index, begin, length);
        return;
      }
      case MessageId.have: {
        if (n !== 4) return this.#violation("have message of wrong length");
        const index = u32(1);
        if (index >= count) return this.#violation(`have for piece ${index} of ${count}`);
        this.#gotBitfield = true;
        if (this.#bitfield.set(index)) this.#h.onHave?.(this, index);
        return;
      }
      case MessageId.choke:
      case MessageId.unchoke:
      case MessageId.interested:
      case MessageId.notInterested:
      case MessageId.haveAll:
      case MessageId.haveNone:
        if (n !== 0) return this.#violation(`message ${id} with a payload`);
        return this.#onSimple(id);
      case MessageId.bitfield: {
        if (!Bitfield.isValid(count, f.subarray(1))) {
          return this.#violation(`bitfield of ${n} bytes (or spare bits set) for ${count} pieces`);
        }
        const fresh = new Bitfield(count, f.subarray(1));
        if (this.#gotBitfield) {
          // late bitfield (aria2 sends one after have none): only ever adds pieces, reported as haves
          for (const i of fresh) if (this.#bitfield.set(i)) this.#h.onHave?.(this, i);
          return;
        }
        this.#gotBitfield = true;
        for (const i of fresh) this.#bitfield.set(i);
        this.#h.onBitfield?.(this);
        return;
      }
      case MessageId.cancel: {
        if (n !== 12) return this.#violation("cancel message of wrong length");
        const index = u32(1), begin = u32(5), length = u32(9);
        if (this.#incoming.delete(this.#key(index, begin))) {
          this.#h.onCancel?.(this, index, begin, length);
        }
        return;
      }
      case MessageId.reject: {
        if (!this.supportsFast) return this.#violation("reject without the fast extension");
        if (n !== 12) return this.#violation("reject message of wrong length");
        const index = u32(1), begin = u32(5), length = u32(9);
        if (index >= count || begin >= this.#pieceSize(index)) {
          return this.#violation(`reject ${index}+${begin} is outside the torrent`);
        }
        const key = this.#key(index, begin);
        if (this.#requests.delete(key)) this.#h.onReject?.(this, index, begin, length);
        else this.#cancelled.delete(key);
        return;
      }
      case MessageId.allowedFast: {
        if (!this.supportsFast) return this.#violation("allowed fast without the fast extension");
        if (n !== 4) return this.#violation("allowed fast message of wrong length");
        const index = u32(1);
        if (index >= count) return; // BEP 6: ignore out-of-range allowed fast
        if (this.#allowedFast.size < 256) this.#allowedFast.add(index);
        this.#h.onAllowedFast?.(this, index);
        return;
      }
      case MessageId.suggest: {
        if (!this.supportsFast) return this.#violation("suggest without the fast extension");
        if (n !== 4) return this.#violation("suggest message of wrong length");
        const index = u32(1);
        if (index < count) this.#h.onSuggest?.(this, index);
        return;
      }
      case MessageId.port: {
        if (n !== 2) return this.#violation("port message of wrong length");
        this.#h.onPort?.(this, (f[1] << 8) | f[2]);
        return;
      }
      case MessageId.extended: {
        if (!this.supportsExtended) {
          return this.#violation("extended message without the extension protocol");
        }
        if (n < 1) return this.#violation("extended message without an id");
        const ext = f[1];
        const payload = f.subarray(2);
        if (ext === 0) {
          try {
            this.#remoteExt = decodeExtensionHandshake(payload);
          } catch (err) {
            return this.#violation((err as Error).message);
          }
          if (this.#remoteExt.reqq !== undefined && this.#remoteExt.reqq > 0) {
            this.#queueDepth = Math.min(this.#queueDepth, this.#remoteExt.reqq);
          }
        }
        this.#h.onExtended?.(this, ext, payload);
        return;
      }
      default:
        return; // unknown message ids are ignored (BEP 3/10 leave room for extensions)
    }
  }

  #onSimple(id: number): void {
    switch (id) {
      case MessageId.choke: {
        if (this.#peerChoking) return;
        this.#peerChoking = true;
        if (!this.supportsFast && this.#requests.size > 0) {
          const dropped = this.#takeRequests(() => true);
          this.#h.onRequestsDropped?.(this, dropped);
        }
        this.#h.onChoke?.(this);
        return;
      }
      case MessageId.unchoke:
        if (!this.#peerChoking) return;
        this.#peerChoking = false;
        this.#h.onUnchoke?.(this);
        return;
      case MessageId.interested:
        if (this.#peerInterested) return;
        this.#peerInterested = true;
        this.#h.onInterested?.(this);
        return;
      case MessageId.notInterested:
        if (!this.#peerInterested) return;
        this.#peerInterested = false;
        this.#h.onNotInterested?.(this);
        return;
      case MessageId.haveAll:
      case MessageId.haveNone:
        if (!this.supportsFast) return this.#violation("have all/none without the fast extension");
        if (this.#gotBitfield) {
          // late have all / have none (aria2 sends have all when it completes): only ever adds pieces
          if (id === MessageId.haveAll) {
            for (let i = 0; i < this.#opts.pieceCount; i++) {
              if (this.#bitfield.set(i)) this.#h.onHave?.(this, i);
            }
          }
          return;
        }
        this.#gotBitfield = true;
        if (id === MessageId.haveAll) this.#bitfield.setAll();
        this.#h.onBitfield?.(this);
        return;
    }
  }

  #takeRequests(test: (index: number) => boolean): BlockRef[] {
    const out: BlockRef[] = [];
    for (const key of this.#requests.keys()) {
      const index = Math.floor(key / 536870912), begin = key % 536870912;
      if (!test(index)) continue;
      this.#requests.delete(key);
      out.push({ index, begin, length: Math.min(BLOCK_MAX, this.#pieceSize(index) - begin) });
    }
    return out;
  }

  // ---------------------------------------------------------------- sending

  /**
   * Room for `n` more bytes in the send buffer; returns the offset to write them at (the caller fills them,
   * then calls `#queued`). Messages are copied into one reused buffer as they are
   * made, so the socket gets few large writes and nothing per message is allocated or kept alive.
   */
  #reserve(n: number): number {
    const need = this.#outLen + n;
    if (need > this.#outBuf.length) {
      const grown = new Uint8Array(Math.max(4096, need * 2));
      grown.set(this.#outBuf.subarray(0, this.#outLen));
      this.#outBuf = grown;
    }
    return this.#outLen;
  }

  #queued(n: number): void {
    this.#outLen += n;
    if (this.#outLen >= WRITE_BATCH) {
      if (!this.#writing) void this.#flush();
    } else if (!this.#flushScheduled && !this.#writing) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        if (!this.#writing) void this.#flush();
      });
    }
  }

  #enqueue(bytes: Uint8Array): void {
    if (this.#closed) return;
    const at = this.#reserve(bytes.length);
    this.#outBuf.set(bytes, at);
    this.#queued(bytes.length);
  }

  async #flush(): Promise<void> {
    if (this.#writing || !this.#writer) return;
    this.#writing = true;
    try {
      while (this.#outLen > 0 && !this.#closed) {
        // write the filled buffer; new messages go to the spare one meanwhile (double buffering)
        const buf = this.#outBuf, len = this.#outLen;
        this.#outBuf = this.#outSpare ?? EMPTY;
        this.#outSpare = undefined;
        this.#outLen = 0;
        this.#lastSent = Date.now();
        await this.#writer.write(buf.subarray(0, len));
        // written: the buffer can be filled again (one that grew for a burst is let go)
        if (buf.length <= MAX_SPARE) this.#outSpare = buf;
        if (!this.#closed) this.#h.onDrain?.(this);
      }
    } catch (err) {
      this.close(`write failed: ${errorText(err)}`);
    } finally {
      this.#writing = false;
    }
  }

  /** Stops uploading to the peer; with the fast extension its pending requests are rejected. */
  choke(): void {
    if (this.#closed || this.#amChoking) return;
    this.#amChoking = true;
    this.#enqueue(encodeSimple(MessageId.choke));
    if (this.supportsFast) {
      for (const key of this.#incoming) {
        const index = Math.floor(key / 536870912), begin = key % 536870912;
        this.#sendBlockMessage(
          MessageId.reject,
          index,
          begin,
          Math.min(BLOCK_MAX, this.#pieceSize(index) - begin),
        );
      }
    }
    this.#incoming.clear();
  }

  /** Lets the peer request blocks. */
  unchoke(): void {
    if (this.#closed || !this.#amChoking) return;
    this.#amChoking = false;
    this.#enqueue(encodeSimple(MessageId.unchoke));
  }

  /** Tells the peer we want its data. */
  interested(): void {
    if (this.#closed || this.#amInterested) return;
    this.#amInterested = true;
    this.#enqueue(encodeSimple(MessageId.interested));
  }

  /** Tells the peer we want nothing from it. */
  notInterested(): void {
    if (this.#closed || !this.#amInterested) return;
    this.#amInterested = false;
    this.#enqueue(encodeSimple(MessageId.notInterested));
  }

  /** Announces a piece we now have. */
  have(index: number): void {
    if (this.#ready) this.#enqueue(encodeIndex(MessageId.have, index));
  }

  /** Sends our pieces: have all / have none with the fast extension when that says it, else a bitfield. */
  sendBitfield(bits: Bitfield): void {
    if (this.supportsFast && bits.full) this.#enqueue(encodeSimple(MessageId.haveAll));
    else if (this.supportsFast && bits.count === 0) this.#enqueue(encodeSimple(MessageId.haveNone));
    else if (bits.count > 0) this.#enqueue(encodeBitfield(bits.bytes));
    if (this.supportsFast && this.#remote && !bits.full) void this.#sendAllowedFast(bits);
  }

  async #sendAllowedFast(bits: Bitfield): Promise<void> {
    const host = this.#opts.remoteAddress?.host;
    if (!host || !/^\d+\.\d+\.\d+\.\d+$/.test(host) || this.#opts.pieceCount < 20) return;
    const set = await allowedFastSet(host, this.#opts.infoHash, this.#opts.pieceCount, 10);
    for (const i of set) if (bits.has(i)) this.allowFast(i);
  }

  /** Pieces we allow the peer to request while it is choked. */
  readonly grantedFast: Set<number> = new Set();

  /**
   * Requests a block.
   *
   * @returns False when it cannot be sent now (choked and not allowed fast, queue full, duplicate, closed).
   */
  request(index: number, begin: number, length: number): boolean {
    if (this.#closed || !this.#ready) return false;
    if (this.#peerChoking && !this.#allowedFast.has(index)) return false;
    if (this.#requests.size >= this.#queueDepth) return false;
    const key = this.#key(index, begin);
    if (this.#requests.has(key)) return false;
    this.#requests.set(key, length);
    this.#cancelled.delete(key);
    this.#sendBlockMessage(MessageId.request, index, begin, length);
    return true;
  }

  /** True when the peer asked for this block and we have neither sent nor refused it yet. */
  isRequestedByPeer(index: number, begin: number): boolean {
    return this.#incoming.has(this.#key(index, begin));
  }

  /** True when we have a request out for this block. */
  hasRequested(index: number, begin: number): boolean {
    return this.#requests.has(this.#key(index, begin));
  }

  /** Withdraws a request; a block that still arrives is dropped silently. */
  cancel(index: number, begin: number, length: number): void {
    const key = this.#key(index, begin);
    if (!this.#requests.delete(key)) return;
    if (this.#cancelled.size >= CANCELLED_MEMORY) this.#cancelled.clear();
    this.#cancelled.add(key);
    this.#sendBlockMessage(MessageId.cancel, index, begin, length);
  }

  /** Sends a block the peer requested (dropped if it cancelled the request meanwhile). */
  sendPiece(index: number, begin: number, data: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#incoming.delete(this.#key(index, begin))) return;
    this.#uploaded += data.length;
    // header and block straight into the send buffer: the caller's buffer is free again on return
    const at = this.#reserve(13 + data.length);
    writePieceHeader(this.#outBuf, at, index, begin, data.length);
    this.#outBuf.set(data, at + 13);
    this.#queued(13 + data.length);
  }

  /** Refuses a request (fast extension). */
  reject(index: number, begin: number, length: number): void {
    if (this.#closed) return;
    this.#incoming.delete(this.#key(index, begin));
    if (this.supportsFast) this.#sendBlockMessage(MessageId.reject, index, begin, length);
  }

  /** Lets the peer request this piece while choked (fast extension). */
  allowFast(index: number): void {
    if (!this.supportsFast || this.grantedFast.has(index)) return;
    this.grantedFast.add(index);
    this.#enqueue(encodeIndex(MessageId.allowedFast, index));
  }

  /** Suggests a piece (fast extension). */
  suggest(index: number): void {
    if (this.supportsFast) this.#enqueue(encodeIndex(MessageId.suggest, index));
  }

  /** Sends an extended message (BEP 10). */
  sendExtended(id: number, payload: Uint8Array): void {
    if (this.supportsExtended) this.#enqueue(encodeExtended(id, payload));
  }

  /** Sends our DHT port. */
  sendPort(port: number): void {
    this.#enqueue(encodePort(port));
  }

  #sendBlockMessage(id: number, index: number, begin: number, length: number): void {
    if (this.#closed) return;
    const at = this.#reserve(17);
    writeBlockMessage(this.#outBuf, at, id, index, begin, length);
    this.#queued(17);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err ?? "stream cancelled");
}
