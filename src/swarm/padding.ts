/**
 * Padding inside pieces: BEP 47 padding files (hybrid torrents) and the gaps a v2-only torrent leaves after each
 * file are part of the pieces but not data anyone downloads, so what a tracker hears as `left` leaves them out.
 *
 * @module
 */

import type { StorageFile } from "../storage/layout.ts";

/**
 * Bytes of padding in each piece that has any.
 *
 * @example A padding file between two files
 * ```ts
 * import { paddingByPiece } from "./padding.ts";
 * import assert from "node:assert/strict";
 *
 * const files = [
 *   { path: ["a"], length: 20000, offset: 0 },
 *   { path: [".pad", "12768"], length: 12768, offset: 20000, padding: true },
 *   { path: ["b"], length: 5, offset: 32768 },
 * ];
 * assert.deepEqual(paddingByPiece({ files, pieceLength: 16384 }), new Map([[1, 12768]]));
 * ```
 *
 * @param geometry The files and the piece length (a parsed torrent will do).
 * @returns Piece index → padding bytes in it.
 */
export function paddingByPiece(
  geometry: { readonly files: readonly StorageFile[]; readonly pieceLength: number },
): Map<number, number> {
  const out = new Map<number, number>();
  const pl = geometry.pieceLength;
  for (const f of geometry.files) {
    if (!f.padding || f.length === 0) continue;
    let pos = f.offset;
    const end = f.offset + f.length;
    while (pos < end) {
      const piece = Math.floor(pos / pl);
      const n = Math.min(end, (piece + 1) * pl) - pos;
      out.set(piece, (out.get(piece) ?? 0) + n);
      pos += n;
    }
  }
  return out;
}
