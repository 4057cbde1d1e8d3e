/**
 * The allowed-fast set of BEP 6: pieces a peer may request from us while choked, computed canonically from its
 * IPv4 address and the info hash.
 *
 * @module
 */

/**
 * Computes the canonical allowed-fast set.
 *
 * @example BEP 6's published vector
 * ```ts
 * import { allowedFastSet } from "./allowed_fast.ts";
 * import assert from "node:assert/strict";
 *
 * const infoHash = new Uint8Array(20).fill(0xaa);
 * assert.deepEqual(await allowedFastSet("80.4.4.200", infoHash, 1313, 7), [1059, 431, 808, 1217, 287, 376, 1188]);
 * ```
 *
 * @param ip The peer's IPv4 address, dotted quad.
 * @param infoHash The torrent's info hash.
 * @param pieceCount Pieces in the torrent.
 * @param k How many pieces the set holds (at most `pieceCount`).
 * @returns The piece indexes, in generation order.
 * @throws {TypeError} When `ip` is not an IPv4 address.
 */
export async function allowedFastSet(
  ip: string,
  infoHash: Uint8Array,
  pieceCount: number,
  k: number,
): Promise<number[]> {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`Not an IPv4 address: ${ip}`);
  }
  const want = Math.min(k, pieceCount);
  const out: number[] = [];
  if (want <= 0) return out;
  let x: Uint8Array<ArrayBuffer> = new Uint8Array(24);
  x.set([parts[0], parts[1], parts[2], 0]);
  x.set(infoHash.subarray(0, 20), 4);
  while (out.length < want) {
    x = new Uint8Array(await crypto.subtle.digest("SHA-1", x));
    const view = new DataView(x.buffer);
    for (let i = 0; i < 5 && out.length < want; i++) {
      const index = view.getUint32(i * 4) % pieceCount;
      if (!out.includes(index)) out.push(index);
    }
  }
  return out;
}
