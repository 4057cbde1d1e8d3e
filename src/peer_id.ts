/**
 * Peer ids: ours (Azureus style, `-SE0010-` + 12 random bytes).
 *
 * @module
 */

import { randomBytes } from "./_bytes.ts";
import { CLIENT_CODE, VERSION } from "./version.ts";

/**
 * A new Azureus-style peer id: `-SE` + four version digits + `-` + 12 random bytes.
 *
 * @example Make a peer id
 * ```ts
 * import { makePeerId } from "./peer_id.ts";
 * import assert from "node:assert/strict";
 *
 * const id = makePeerId();
 * assert.equal(id.length, 20);
 * assert.equal(new TextDecoder().decode(id.subarray(0, 8)), "-SE0010-");
 * ```
 *
 * @returns 20 bytes.
 */
export function makePeerId(): Uint8Array {
  const [major, minor, patch] = VERSION.split(".").map(Number);
  const prefix = `-${CLIENT_CODE}${major}${String(minor).padStart(2, "0")}${patch}-`;
  const id = new Uint8Array(20);
  id.set(new TextEncoder().encode(prefix));
  id.set(randomBytes(12), 8);
  return id;
}
