/**
 * The error an RPC method answers with: its message is the old protocol's `result` string, its code the JSON-RPC
 * 2.0 error code (Transmission 4.1's numbering).
 *
 * @module
 */

/** JSON-RPC 2.0 error codes as Transmission 4.1 numbers them. */
export const RPC_ERROR = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  pathNotAbsolute: 3,
  unrecognizedInfo: 4,
  systemError: 5,
  fileIndexOutOfRange: 6,
  httpError: 8,
  corruptTorrent: 9,
} as const;

/** A method's failure, answered as the protocol's error result (never an HTTP error). */
export class RpcError extends Error {
  /** The JSON-RPC 2.0 error code. */
  readonly code: number;

  /**
   * Creates an {@linkcode RpcError}.
   *
   * @param message What went wrong, in Transmission's words where it has some (the old protocol's `result`).
   * @param code The JSON-RPC 2.0 error code.
   */
  constructor(message: string, code: number = RPC_ERROR.invalidParams) {
    super(message);
    this.name = "RpcError";
    this.code = code;
  }
}
