/**
 * The BEP 52 hash messages: `hash request` (21), `hashes` (22) and `hash reject` (23). Each names one file's
 * merkle tree by its `pieces root` and a range of one layer (base layer, index, length) with the number of proof
 * layers; `hashes` adds the requested hashes and their uncle hashes (see `uncleCount` in storage/merkle.ts).
 * Every number comes from a peer: a `hashes` message must be exactly as long as its header says, and requests are
 * checked against the torrent's files before anything is looked up.
 *
 * @module
 */

import { bytesEqual } from "../_bytes.ts";
import {
  checkHashRequest,
  HASH_SIZE,
  type HashRequest,
  MAX_HASH_REQUEST_LENGTH,
  nextPowerOfTwo,
  uncleCount,
} from "../storage/merkle.ts";
import { WireError } from "./errors.ts";

export type { HashRequest };

/** Message ids of the hash messages. */
export const HashMessageId = {
  hashRequest: 21,
  hashes: 22,
  hashReject: 23,
} as const;

/** Bytes of a hash request (and of the header of the other two): root, base layer, index, length, proof layers. */
export const HASH_REQUEST_SIZE: number = HASH_SIZE + 16;

/** Most proof layers a message may carry (a tree of 2^53 bytes in 16 KiB blocks has 39 layers). */
const MAX_PROOF_LAYERS = 63;

/** A decoded hash message; `hashes` is a view into the received bytes. */
export type HashMessage =
  | { type: "hashrequest"; request: HashRequest }
  | { type: "hashes"; request: HashRequest; hashes: Uint8Array }
  | { type: "hashreject"; request: HashRequest };

/**
 * Decodes the payload of a hash message (the bytes after the message id).
 *
 * @example Decode a hash request
 * ```ts
 * import { decodeHashMessage, encodeHashRequest } from "./hashes.ts";
 * import assert from "node:assert/strict";
 *
 * const request = { piecesRoot: new Uint8Array(32).fill(1), baseLayer: 0, index: 8, length: 4, proofLayers: 3 };
 * const frame = encodeHashRequest(request);
 * assert.deepEqual(decodeHashMessage(frame[4], frame.subarray(5)), { type: "hashrequest", request });
 * ```
 *
 * @param id The message id: 21, 22 or 23.
 * @param payload The payload.
 * @returns The message.
 * @throws {WireError} When the id is not a hash message, the header is short, or a `hashes` message carries a
 *   length that is not a power of two up to 8192, more than 63 proof layers, or not exactly the hashes they call
 *   for.
 */
export function decodeHashMessage(id: number, payload: Uint8Array): HashMessage {
  if (id < HashMessageId.hashRequest || id > HashMessageId.hashReject) {
    throw new WireError(`message ${id} is not a hash message`);
  }
  const name = id === 21 ? "hash request" : id === 22 ? "hashes" : "hash reject";
  if (
    id !== HashMessageId.hashes
      ? payload.length !== HASH_REQUEST_SIZE
      : payload.length < HASH_REQUEST_SIZE
  ) {
    throw new WireError(`${name} message with ${payload.length} payload bytes`);
  }
  const u32 = (o: number) =>
    ((payload[o] << 24) | (payload[o + 1] << 16) | (payload[o + 2] << 8) | payload[o + 3]) >>> 0;
  const request: HashRequest = {
    piecesRoot: payload.slice(0, HASH_SIZE),
    baseLayer: u32(32),
    index: u32(36),
    length: u32(40),
    proofLayers: u32(44),
  };
  if (id === HashMessageId.hashRequest) return { type: "hashrequest", request };
  if (id === HashMessageId.hashReject) return { type: "hashreject", request };
  const { length, proofLayers } = request;
  if (length < 1 || length > MAX_HASH_REQUEST_LENGTH || nextPowerOfTwo(length) !== length) {
    throw new WireError(`hashes message for ${length} hashes (not a power of two up to 8192)`);
  }
  if (proofLayers > MAX_PROOF_LAYERS) {
    throw new WireError(`hashes message with ${proofLayers} proof layers`);
  }
  const count = length + uncleCount(length, proofLayers);
  if (payload.length !== HASH_REQUEST_SIZE + count * HASH_SIZE) {
    throw new WireError(
      `hashes message with ${payload.length - HASH_REQUEST_SIZE} bytes of hashes, expected ${
        count * HASH_SIZE
      } (${count} hashes)`,
    );
  }
  return { type: "hashes", request, hashes: payload.subarray(HASH_REQUEST_SIZE) };
}

function frame(id: number, request: HashRequest, extra: number): Uint8Array<ArrayBuffer> {
  if (request.piecesRoot.length !== HASH_SIZE) {
    throw new TypeError(`A pieces root is 32 bytes, not ${request.piecesRoot.length}`);
  }
  for (const k of ["baseLayer", "index", "length", "proofLayers"] as const) {
    const v = request[k];
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new TypeError(`${k} ${v} is not a 32-bit unsigned integer`);
    }
  }
  const out = new Uint8Array(4 + 1 + HASH_REQUEST_SIZE + extra);
  const view = new DataView(out.buffer);
  view.setUint32(0, 1 + HASH_REQUEST_SIZE + extra);
  out[4] = id;
  out.set(request.piecesRoot, 5);
  view.setUint32(37, request.baseLayer);
  view.setUint32(41, request.index);
  view.setUint32(45, request.length);
  view.setUint32(49, request.proofLayers);
  return out;
}

/**
 * Encodes a `hash request` frame (length prefix included).
 *
 * @param request What to ask for.
 * @returns The frame.
 * @throws {TypeError} When the root is not 32 bytes or a number is not a 32-bit unsigned integer.
 */
export function encodeHashRequest(request: HashRequest): Uint8Array<ArrayBuffer> {
  return frame(HashMessageId.hashRequest, request, 0);
}

/**
 * Encodes a `hash reject` frame: the request it refuses, echoed.
 *
 * @param request The refused request.
 * @returns The frame.
 * @throws {TypeError} When the root is not 32 bytes or a number is not a 32-bit unsigned integer.
 */
export function encodeHashReject(request: HashRequest): Uint8Array<ArrayBuffer> {
  return frame(HashMessageId.hashReject, request, 0);
}

/**
 * Encodes a `hashes` frame answering `request`.
 *
 * @param request The request answered.
 * @param hashes The requested hashes then the uncles (e.g. from `MerkleTree.hashes`).
 * @returns The frame.
 * @throws {TypeError} When the number of hashes is not what the request calls for.
 */
export function encodeHashes(request: HashRequest, hashes: Uint8Array): Uint8Array<ArrayBuffer> {
  const count = request.length + uncleCount(request.length, request.proofLayers);
  if (hashes.length !== count * HASH_SIZE) {
    throw new TypeError(`The request calls for ${count} hashes, got ${hashes.length / HASH_SIZE}`);
  }
  const out = frame(HashMessageId.hashes, request, hashes.length);
  out.set(hashes, 5 + HASH_REQUEST_SIZE);
  return out;
}

/**
 * Whether two requests are the same (a `hashes` or `hash reject` message answers exactly its request).
 *
 * @param a A request.
 * @param b Another.
 * @returns True when every field is equal.
 */
export function sameHashRequest(a: HashRequest, b: HashRequest): boolean {
  return a.baseLayer === b.baseLayer && a.index === b.index && a.length === b.length &&
    a.proofLayers === b.proofLayers && bytesEqual(a.piecesRoot, b.piecesRoot);
}

/** A file as {@linkcode findHashRequestFile} needs it (a torrent's files will do). */
export interface HashFile {
  /** The file's merkle root. */
  piecesRoot?: Uint8Array;
  /** Bytes in the file. */
  length: number;
  /** Padding entries have no tree. */
  padding?: boolean;
}

/**
 * Finds the file a hash message is about and checks the request against its tree: a `hash request` that fails is
 * answered with `hash reject`; a `hashes` or `hash reject` message must also match a request we sent.
 *
 * @example Validate a request against a torrent's files
 * ```ts
 * import { findHashRequestFile } from "./hashes.ts";
 * import assert from "node:assert/strict";
 *
 * const root = new Uint8Array(32).fill(3);
 * const files = [{ length: 10 * 16384, piecesRoot: root }, { length: 5, padding: true }];
 * const ok = findHashRequestFile({ piecesRoot: root, baseLayer: 0, index: 0, length: 16, proofLayers: 0 }, files);
 * assert.deepEqual(ok, { file: 0 });
 * const bad = findHashRequestFile({ piecesRoot: root, baseLayer: 0, index: 0, length: 32, proofLayers: 0 }, files);
 * assert.ok("error" in bad);
 * ```
 *
 * @param request The request (or the header of a `hashes` / `hash reject` message).
 * @param files The torrent's files.
 * @returns The file's index, or why the request is invalid.
 */
export function findHashRequestFile(
  request: HashRequest,
  files: readonly HashFile[],
): { file: number } | { error: string } {
  const file = files.findIndex((f) =>
    !f.padding && f.length > 0 && f.piecesRoot !== undefined &&
    bytesEqual(f.piecesRoot, request.piecesRoot)
  );
  if (file < 0) return { error: "no file of the torrent has this pieces root" };
  const error = checkHashRequest(request, files[file].length);
  return error === undefined ? { file } : { error };
}
