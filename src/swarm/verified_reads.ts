/**
 * Reads of one torrent's verified bytes (streaming, or any reader of its data): from the files on disk or the
 * part file, also while the torrent is stopped. The reads in progress are tracked so that storage closes only
 * after them; once the torrent is closed, new reads fail.
 *
 * @module
 */

import { StorageError } from "../storage/storage.ts";
import type { TorrentData } from "../storage/torrent_data.ts";

/** Options of {@linkcode VerifiedReads}. */
export interface VerifiedReadsOptions {
  /** Bytes of a piece. */
  pieceLength: number;
  /** True when the piece is verified on disk. */
  has: (index: number) => boolean;
  /** The torrent's data (its storage is opened for a read while the torrent is stopped). */
  data: TorrentData;
}

/** The reads of one torrent's verified bytes. */
export class VerifiedReads {
  readonly #o: VerifiedReadsOptions;
  /** Reads in progress (storage closes after them). */
  readonly #reads = new Set<Promise<unknown>>();
  #closed = false;

  /**
   * Creates a {@linkcode VerifiedReads}.
   *
   * @param options The piece size, what is had, and the data.
   */
  constructor(options: VerifiedReadsOptions) {
    this.#o = options;
  }

  /**
   * Reads `into.length` bytes at byte `offset` of the torrent's data. Every piece they touch must be had.
   *
   * @param offset Where to start, in the torrent's data.
   * @param into Where the bytes go; filled completely.
   * @throws {RangeError} When a piece is not had.
   * @throws {StorageError} When the data cannot be read, or the torrent was closed.
   */
  async read(offset: number, into: Uint8Array): Promise<void> {
    if (this.#closed) throw new StorageError("The torrent was closed");
    const reading = this.#read(offset, into);
    const settled = reading.catch(() => {});
    this.#reads.add(settled);
    settled.then(() => this.#reads.delete(settled));
    await reading;
  }

  /** New reads fail from now on (the torrent is closing). */
  close(): void {
    this.#closed = true;
  }

  /**
   * Waits for the reads in progress to settle.
   *
   * @returns When they have.
   */
  async settled(): Promise<void> {
    await Promise.all(this.#reads);
  }

  async #read(offset: number, into: Uint8Array): Promise<void> {
    const pl = this.#o.pieceLength;
    const data = this.#o.data;
    let done = 0;
    while (done < into.length) {
      const at = offset + done;
      const index = Math.floor(at / pl);
      if (!this.#o.has(index)) throw new RangeError(`Piece ${index} is not verified yet`);
      // a stopped torrent's storage opens for the read; close() closes it again
      const storage = data.storage ?? data.open();
      const got = await storage.readPiece(index, into.subarray(done), { begin: at - index * pl });
      if (!got || got.length === 0) {
        throw new StorageError(`Piece ${index} is missing from the files on disk`);
      }
      done += got.length;
    }
  }
}
