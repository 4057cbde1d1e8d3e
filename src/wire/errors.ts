// The one error class of the wire layer. A leaf: every wire module throws it, peer.ts turns it into a reason.

/** A peer broke the protocol; the connection ends with this reason. */
export class WireError extends Error {
  /**
   * Creates a {@linkcode WireError}.
   *
   * @param message What the peer did wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}
