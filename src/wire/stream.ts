/**
 * The byte stream a peer connection runs over: a TCP connection, a uTP connection, or either of them behind
 * protocol encryption. Everything above it (handshake, framing, messages) sees only these two Web Streams.
 *
 * @module
 */

/** The two directions of a connection (a `Deno.Conn` is one). */
export interface PeerStream {
  /** Bytes from the peer. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  writable: WritableStream<Uint8Array>;
  /** Releases the underlying resource (a socket). */
  close?(): void;
  /**
   * A chunk read from `readable` is no longer used (every view into it is gone): a reader that recycles its
   * buffers may read into it again. Optional; calling it is never required for correctness.
   */
  release?(chunk: Uint8Array): void;
  /**
   * Puts bytes back in front of what `readable` yields next (bytes an encryption handshake read past its end,
   * when the connection goes on in plaintext): the caller's reader must have released its lock and `readable`
   * is then read from directly, with no stream in between. Optional.
   */
  unread?(bytes: Uint8Array): void;
}
