/**
 * One peer connection: the handshake, choke/interest state both ways, the peer's pieces, our pipelined requests,
 * the fast extension (BEP 6) and the extension protocol (BEP 10), over any pair of Web Streams.
 *
 * Reading: the connection's readable (already decrypted when the connection is encrypted) is piped through the
 * wire's one decoder, {@linkcode FrameDecoder}, which yields the handshake and then one message per frame; this
 * file validates each message against the torrent and the connection's state. Writing: messages are copied into
 * two reused send buffers as they are made and written in large batches (double buffering).
 *
 * A peer that breaks the protocol is disconnected and reported through `onClose` with the reason; nothing is
 * ever thrown into the caller. Outgoing messages produced in one turn of the event loop are written together.
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { bytesEqual } from "./_bytes.ts";
import { allowedFastSet } from "./wire/allowed_fast.ts";
import { decodeExtensionHandshake, type ExtensionHandshake } from "./wire/extension.ts";
import { FrameDecoder, type MessageBatch } from "./wire/frame_decoder.ts";
import type { Handshake } from "./wire/handshake.ts";
import {
  encodeHashes,
  encodeHashReject,
  encodeHashRequest,
  HashMessageId,
  type HashRequest,
} from "./wire/hashes.ts";
import { SendQueue } from "./wire/send_queue.ts";
import {
  encodeBitfield,
  encodeExtended,
  encodeIndex,
  encodeKeepAlive,
  encodePort,
  encodeSimple,
  MessageId,
  type PeerMessage,
  WireError,
  writeBlockMessage,
  writePieceHeader,
} from "./wire/messages.ts";

import type { PeerStream } from "./wire/stream.ts";
export type { PeerStream } from "./wire/stream.ts";
import type { BlockRef, OutstandingRequests, PeerConnectionOptions } from "./peer_options.ts";
import {
  agreedInfoHash,
  encodeOurExtensionHandshake,
  encodeOurHandshake,
} from "./peer_handshake.ts";
import { BLOCK_MAX, PeerBlocks } from "./peer_blocks.ts";
export type { BlockRef, OutstandingRequests, PeerConnectionOptions } from "./peer_options.ts";

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
  /**
   * Block data went to the socket (a write of queued pieces completed): these bytes now count in
   * {@linkcode PeerConnection.uploaded}. Pieces dropped with the queue (the connection closed first) never count.
   */
  onUploaded?(peer: PeerConnection, bytes: number): void;
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
  /**
   * A BEP 52 hash message (21 hash request, 22 hashes, 23 hash reject) on a connection that speaks v2; decode it
   * with `decodeHashMessage`. `payload` is valid only during the call. On a v1 connection they are a violation.
   */
  onHashMessage?(peer: PeerConnection, id: number, payload: Uint8Array): void;
  /** The connection ended, for this reason; called exactly once. */
  onClose?(peer: PeerConnection, reason: string): void;
}

/** One connection to a peer. */
export class PeerConnection implements AsyncDisposable {
  readonly #stream: PeerStream;
  readonly #opts: PeerConnectionOptions;
  readonly #h: PeerHandler;
  readonly #bitfield: Bitfield;
  readonly #blocks: PeerBlocks;
  #remote: Handshake | undefined;
  /** The info hash both handshakes carry (ours follows the peer's with `answerHandshake`). */
  #agreedHash: Uint8Array | undefined;
  #remoteExt: ExtensionHandshake | undefined;
  #ready = false;
  #gotBitfield = false;
  #amChoking = true;
  #amInterested = false;
  #peerChoking = true;
  #peerInterested = false;
  #queueDepth: number;
  /** our requests in flight, as block keys */
  readonly #requests: OutstandingRequests;
  readonly #now: () => number;
  /** the peer's requests not yet answered */
  readonly #incoming = new Set<number>();
  readonly #allowedFast = new Set<number>();
  #duplicateRequests = 0;
  #downloaded = 0;
  #uploaded = 0;
  #lastReceived: number;
  #startedAt = 0;
  #closed = false;
  #closeReason: string | undefined;
  readonly #done = Promise.withResolvers<void>();
  // writing
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #out: SendQueue | undefined;
  // reading
  #reader: ReadableStreamDefaultReader<MessageBatch> | undefined;
  readonly #maxMessageLength: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
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
    this.#blocks = new PeerBlocks(options.pieceCount, options.pieceLength, options.totalLength);
    this.#queueDepth = options.queueDepth ?? 256;
    this.#requests = options.requests ?? new Set<number>();
    this.#now = options.now ?? Date.now;
    this.#lastReceived = this.#now();
    this.#maxMessageLength = Math.max(
      BLOCK_MAX + 13,
      Math.ceil(options.pieceCount / 8) + 1,
      1024 * 1024,
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
  /**
   * The connection speaks BitTorrent v2 (BEP 52): its handshakes carry the truncated v2 info hash (a v2-only
   * torrent, or a hybrid's connection upgraded); hash messages may be exchanged.
   */
  get speaksV2(): boolean {
    const v2 = this.#opts.infoHashV2;
    return v2 !== undefined && this.#agreedHash !== undefined && bytesEqual(this.#agreedHash, v2);
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
  /** Our requests in flight, as block keys (read it; the connection keeps it). */
  get requests(): OutstandingRequests {
    return this.#requests;
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
  /** Payload bytes sent (handed to the socket). */
  get uploaded(): number {
    return this.#uploaded;
  }
  /** When the last message arrived (ms since the epoch). */
  get lastReceived(): number {
    return this.#lastReceived;
  }
  /** Bytes queued for sending. */
  get sendQueueBytes(): number {
    return this.#out?.length ?? 0;
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
      this.#out = new SendQueue({
        writer: this.#writer,
        now: this.#now,
        onDrain: () => this.#h.onDrain?.(this),
        onSent: (payload) => {
          this.#uploaded += payload;
          this.#h.onUploaded?.(this, payload);
        },
        onError: (err) => this.close(`write failed: ${errorText(err)}`),
        ...(this.#opts.rate ? { rate: this.#opts.rate } : {}),
      });
    } catch (err) {
      this.close(`cannot write: ${errorText(err)}`);
      ready.resolve(false);
      return ready.promise;
    }
    this.#startedAt = this.#now();
    if (this.#opts.selfTimed ?? true) {
      const ms = this.#opts.handshakeTimeoutMs ?? 10_000;
      this.#timer = setTimeout(() => this.tick(), ms);
    }
    if (!this.#opts.handshakeSent && !this.#opts.answerHandshake) {
      this.#enqueue(this.handshakeBytes());
    }
    this.#readLoop(ready).catch((err) => this.close(`read failed: ${errorText(err)}`))
      .finally(() => ready.resolve(false));
    return ready.promise;
  }

  /** Our handshake, as sent (an encryption handshake may carry it as its initial payload). */
  handshakeBytes(): Uint8Array<ArrayBuffer> {
    return encodeOurHandshake(this.#opts, this.#opts.infoHash);
  }

  /**
   * Time-driven checks: the handshake deadline, the idle timeout and keep-alives. Called by the connection's
   * own timer, or by its owner's tick when `selfTimed` is false.
   *
   * @param now The current time (ms), from the same clock as the `now` option.
   */
  tick(now: number = this.#now()): void {
    if (this.#closed) return;
    if (!this.#remote) {
      if (now - this.#startedAt >= (this.#opts.handshakeTimeoutMs ?? 10_000)) {
        this.close("handshake timed out");
      }
      return;
    }
    if (now - this.#lastReceived > (this.#opts.idleTimeoutMs ?? 180_000)) {
      return this.close("idle timeout");
    }
    const out = this.#out;
    if (out && now - out.lastSent >= (this.#opts.keepAliveMs ?? 60_000) && out.length === 0) {
      this.#enqueue(encodeKeepAlive());
    }
  }

  /** Ends the connection (idempotent). */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    if (this.#onAbort) this.#opts.signal?.removeEventListener("abort", this.#onAbort);
    this.#out?.close();
    for (const key of [...this.#requests.keys()]) this.#requests.delete(key);
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
    // the connection first, then the writer: closing it fails a write in progress at once, and the abort (which
    // waits for that write) returns — a uTP write waiting for a peer that stopped reading would otherwise hold it
    // for the retransmission timeouts, a TCP write for the kernel's
    try {
      this.#stream.close?.();
    } catch { /* already closed */ }
    try {
      if (writer) await writer.abort().catch(() => {});
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
    const reader = this.#stream.readable
      .pipeThrough(new FrameDecoder({ handshake: true, maxMessageLength: this.#maxMessageLength }))
      .getReader();
    this.#reader = reader;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done || this.#closed) break;
        this.#lastReceived = this.#now();
        for (const m of r.value.messages) {
          if (this.#closed) return;
          if (m.type !== "handshake") this.#onMessage(m);
          else if (this.#onHandshake(m.handshake)) ready.resolve(true);
          else return;
        }
        if (r.value.error) return this.#violation(r.value.error.message);
        const bytes = r.value.chunk.length;
        // every view into the chunk is gone (handlers copy what they keep): its buffer may be read into again
        this.#stream.release?.(r.value.chunk);
        const wait = this.#opts.rate?.down(bytes);
        if (wait) await wait;
      }
    } catch (err) {
      if (this.#closed) return;
      if (!(err instanceof WireError)) return this.close(`read failed: ${errorText(err)}`);
      // a peer that hangs up inside a frame simply closed the connection
      if (!err.message.startsWith("stream ended")) return this.#violation(err.message);
    }
    this.close(this.#remote ? "connection closed by peer" : "connection closed during handshake");
  }

  #onHandshake(hs: Handshake): boolean {
    const agreed = agreedInfoHash(this.#opts, hs);
    if (!agreed) {
      this.close("handshake for a different torrent (info hash mismatch)");
      return false;
    }
    // we answer second: with the hash the peer used, or upgraded to v2 when it offers that
    if (this.#opts.answerHandshake) this.#enqueue(encodeOurHandshake(this.#opts, agreed));
    this.#agreedHash = agreed;
    this.#remote = hs;
    if (this.#opts.selfTimed ?? true) {
      clearTimeout(this.#timer);
      const keepAlive = this.#opts.keepAliveMs ?? 60_000;
      const idle = this.#opts.idleTimeoutMs ?? 180_000;
      this.#timer = setInterval(() => this.tick(), Math.max(50, Math.min(keepAlive, idle) / 2));
    }
    if (this.supportsExtended) {
      this.#enqueue(encodeOurExtensionHandshake(this.#opts));
    }
    this.#ready = true;
    this.#h.onReady?.(this);
    return !this.#closed;
  }

  #violation(reason: string): void {
    this.close(`protocol violation: ${reason}`);
  }

  #onMessage(m: PeerMessage): void {
    const count = this.#opts.pieceCount;
    // metadata-only connections (magnet links: the torrent's size is not known yet) ignore piece information
    if (
      count === 0 && m.type !== "extended" && m.type !== "piece" && m.type !== "port" &&
      m.type !== "choke" && m.type !== "unchoke" && m.type !== "interested" &&
      m.type !== "notinterested"
    ) return;
    switch (m.type) {
      case "piece": {
        const { index, begin, data } = m;
        // range first: an offset past the piece must not alias the key of another piece's block
        if (index >= count || begin + data.length > this.#blocks.pieceSize(index)) {
          return this.#violation(`piece ${index}+${begin} is outside the torrent`);
        }
        const aligned = begin % BLOCK_MAX === 0;
        const key = aligned ? this.#blocks.blockKey(index, begin) : -1;
        if (!aligned || !this.#requests.has(key)) {
          if (aligned && this.#blocks.answered(key)) return; // we cancelled it; it crossed on the wire
          return this.#violation(`piece ${index}+${begin} was never requested`);
        }
        const asked = this.#blocks.blockLength(index, begin);
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
      case "request": {
        const { index, begin, length } = m;
        if (index >= count) return this.#violation(`request for piece ${index} of ${count}`);
        if (length === 0 || length > BLOCK_MAX) {
          return this.#violation(`request for ${length} bytes`);
        }
        if (begin + length > this.#blocks.pieceSize(index)) {
          return this.#violation(`request ${index}+${begin}+${length} is outside the piece`);
        }
        if (this.#incoming.size >= (this.#opts.maxIncomingRequests ?? 1000)) {
          return this.#violation("too many outstanding requests");
        }
        if (this.#amChoking && !this.supportsFast) return; // ignored: we told it we choke
        const key = this.#blocks.peerKey(index, begin);
        if (this.#incoming.has(key) && ++this.#duplicateRequests > 64) {
          return this.#violation("request flood (the same blocks requested over and over)");
        }
        this.#incoming.add(key);
        this.#h.onRequest?.(this, index, begin, length);
        return;
      }
      case "have": {
        const index = m.index;
        if (index >= count) return this.#violation(`have for piece ${index} of ${count}`);
        this.#gotBitfield = true;
        if (this.#bitfield.set(index)) this.#h.onHave?.(this, index);
        return;
      }
      case "choke": {
        if (this.#peerChoking) return;
        this.#peerChoking = true;
        if (!this.supportsFast && this.#requests.size > 0) {
          const dropped: BlockRef[] = [];
          for (const key of [...this.#requests.keys()]) {
            this.#requests.delete(key);
            dropped.push(this.#blocks.block(key));
          }
          this.#h.onRequestsDropped?.(this, dropped);
        }
        this.#h.onChoke?.(this);
        return;
      }
      case "unchoke":
        if (!this.#peerChoking) return;
        this.#peerChoking = false;
        this.#h.onUnchoke?.(this);
        return;
      case "interested":
        if (this.#peerInterested) return;
        this.#peerInterested = true;
        this.#h.onInterested?.(this);
        return;
      case "notinterested":
        if (!this.#peerInterested) return;
        this.#peerInterested = false;
        this.#h.onNotInterested?.(this);
        return;
      case "haveall":
      case "havenone":
        if (!this.supportsFast) return this.#violation("have all/none without the fast extension");
        if (this.#gotBitfield) {
          // late have all / have none (aria2 sends have all when it completes): only ever adds pieces
          if (m.type === "haveall") {
            for (let i = 0; i < count; i++) if (this.#bitfield.set(i)) this.#h.onHave?.(this, i);
          }
          return;
        }
        this.#gotBitfield = true;
        if (m.type === "haveall") this.#bitfield.setAll();
        this.#h.onBitfield?.(this);
        return;
      case "bitfield": {
        if (!Bitfield.isValid(count, m.bits)) {
          return this.#violation(
            `bitfield of ${m.bits.length} bytes (or spare bits set) for ${count} pieces`,
          );
        }
        const fresh = new Bitfield(count, m.bits);
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
      case "cancel": {
        if (this.#incoming.delete(this.#blocks.peerKey(m.index, m.begin))) {
          this.#h.onCancel?.(this, m.index, m.begin, m.length);
        }
        return;
      }
      case "reject": {
        if (!this.supportsFast) return this.#violation("reject without the fast extension");
        const { index, begin, length } = m;
        if (index >= count || begin >= this.#blocks.pieceSize(index)) {
          return this.#violation(`reject ${index}+${begin} is outside the torrent`);
        }
        if (begin % BLOCK_MAX !== 0) return; // never one of ours
        const key = this.#blocks.blockKey(index, begin);
        // a reject answers a cancelled request first (the peer answers our messages in order: the cancel
        // before a later request for the same block)
        if (this.#blocks.answered(key)) return;
        if (this.#requests.delete(key)) this.#h.onReject?.(this, index, begin, length);
        return;
      }
      case "allowedfast": {
        if (!this.supportsFast) return this.#violation("allowed fast without the fast extension");
        if (m.index >= count) return; // BEP 6: ignore out-of-range allowed fast
        if (this.#allowedFast.size < 256) this.#allowedFast.add(m.index);
        this.#h.onAllowedFast?.(this, m.index);
        return;
      }
      case "suggest": {
        if (!this.supportsFast) return this.#violation("suggest without the fast extension");
        if (m.index < count) this.#h.onSuggest?.(this, m.index);
        return;
      }
      case "port":
        this.#h.onPort?.(this, m.port);
        return;
      case "extended": {
        if (!this.supportsExtended) {
          return this.#violation("extended message without the extension protocol");
        }
        if (m.id === 0) {
          try {
            this.#remoteExt = decodeExtensionHandshake(m.payload);
          } catch (err) {
            return this.#violation((err as Error).message);
          }
          if (this.#remoteExt.reqq !== undefined && this.#remoteExt.reqq > 0) {
            this.#queueDepth = Math.min(this.#queueDepth, this.#remoteExt.reqq);
          }
        }
        this.#h.onExtended?.(this, m.id, m.payload);
        return;
      }
      case "handshake":
        return this.#violation("a second handshake");
      case "unknown":
        if (
          m.id >= HashMessageId.hashRequest && m.id <= HashMessageId.hashReject &&
          this.#h.onHashMessage
        ) {
          if (!this.speaksV2) return this.#violation(`hash message ${m.id} on a v1 connection`);
          this.#h.onHashMessage(this, m.id, m.payload);
        }
        return; // other unknown message ids are ignored (BEP 3/10 leave room for extensions)
      case "keepalive":
        return;
    }
  }

  // ---------------------------------------------------------------- sending

  #enqueue(bytes: Uint8Array): void {
    if (!this.#closed) this.#out?.push(bytes);
  }

  /** Stops uploading to the peer; with the fast extension its pending requests are rejected. */
  choke(): void {
    if (this.#closed || this.#amChoking) return;
    this.#amChoking = true;
    this.#enqueue(encodeSimple(MessageId.choke));
    if (this.supportsFast) {
      for (const key of this.#incoming) {
        const index = this.#blocks.peerKeyIndex(key), begin = this.#blocks.peerKeyBegin(key);
        this.#sendBlockMessage(
          MessageId.reject,
          index,
          begin,
          this.#blocks.blockLength(index, begin),
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
    if (begin % BLOCK_MAX !== 0 || length !== this.#blocks.blockLength(index, begin)) return false;
    const key = this.#blocks.blockKey(index, begin);
    if (this.#requests.has(key)) return false;
    this.#requests.add(key);
    this.#sendBlockMessage(MessageId.request, index, begin, length);
    return true;
  }

  /** True when the peer asked for this block and we have neither sent nor refused it yet. */
  isRequestedByPeer(index: number, begin: number): boolean {
    return this.#incoming.has(this.#blocks.peerKey(index, begin));
  }

  /** True when we have a request out for this block. */
  hasRequested(index: number, begin: number): boolean {
    return begin % BLOCK_MAX === 0 && this.#requests.has(this.#blocks.blockKey(index, begin));
  }

  /** Withdraws a request; a block that still arrives is dropped silently. */
  cancel(index: number, begin: number, length: number): void {
    if (begin % BLOCK_MAX !== 0) return;
    const key = this.#blocks.blockKey(index, begin);
    if (!this.#requests.delete(key)) return;
    this.#blocks.cancelled(key);
    this.#sendBlockMessage(MessageId.cancel, index, begin, length);
  }

  /** Sends a block the peer requested (dropped if it cancelled the request meanwhile). */
  sendPiece(index: number, begin: number, data: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#incoming.delete(this.#blocks.peerKey(index, begin))) return;
    // header and block straight into the send buffer: the caller's buffer is free again on return
    if (!this.#out) return;
    const { buf, at } = this.#out.reserve(13 + data.length);
    writePieceHeader(buf, at, index, begin, data.length);
    buf.set(data, at + 13);
    this.#out.commit(13 + data.length, data.length); // counted as uploaded once written
  }

  /** Refuses a request (fast extension). */
  reject(index: number, begin: number, length: number): void {
    if (this.#closed) return;
    this.#incoming.delete(this.#blocks.peerKey(index, begin));
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

  /** Asks for hashes of a file's merkle tree (BEP 52 `hash request`; v2 connections only). */
  requestHashes(request: HashRequest): void {
    if (this.speaksV2) this.#enqueue(encodeHashRequest(request));
  }

  /** Answers a hash request with its hashes (BEP 52 `hashes`: the requested ones, then the uncles). */
  sendHashes(request: HashRequest, hashes: Uint8Array): void {
    if (this.speaksV2) this.#enqueue(encodeHashes(request, hashes));
  }

  /** Refuses a hash request (BEP 52 `hash reject`). */
  rejectHashes(request: HashRequest): void {
    if (this.speaksV2) this.#enqueue(encodeHashReject(request));
  }

  /** Sends our DHT port. */
  sendPort(port: number): void {
    this.#enqueue(encodePort(port));
  }

  #sendBlockMessage(id: number, index: number, begin: number, length: number): void {
    if (this.#closed || !this.#out) return;
    const { buf, at } = this.#out.reserve(17);
    writeBlockMessage(buf, at, id, index, begin, length);
    this.#out.commit(17);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err ?? "stream cancelled");
}
