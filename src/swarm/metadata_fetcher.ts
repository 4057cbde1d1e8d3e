/**
 * Fetching a torrent's info dictionary from peers (BEP 9), for magnet links: peers from the link (`x.pe`) and its
 * trackers are dialed, the metadata is requested in 16 KiB pieces from every peer that offers it, and the result
 * is accepted only if it hashes to the link's info hash: its SHA-1 (`btih`), its SHA-256 (BEP 52's `btmh`), or
 * both for a hybrid link. Size-capped and time-bounded. A peer that fails to connect or goes away is dialled again
 * later (up to {@linkcode MAX_DIALS} dials, the waits doubling from {@linkcode REDIAL_MS}): a magnet link's one
 * peer that restarts is found again.
 *
 * @module
 */

import { addressKey } from "../_address.ts";
import { concat } from "../_bytes.ts";
import { infoDictMatches } from "../magnet.ts";
import { CLIENT_NAME } from "../version.ts";
import { PeerConnection } from "../peer.ts";
import type { PeerAddress } from "../tracker/compact.ts";
import { TrackerManager } from "../tracker/tiers.ts";
import {
  decodeMetadataMessage,
  encodeMetadataMessage,
  MAX_METADATA_SIZE,
  METADATA_PIECE,
  UT_METADATA_ID,
} from "../wire/metadata.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import { encodeHandshake } from "../wire/handshake.ts";
import type { PeerStream } from "../wire/stream.ts";
import { dialPeer, type DialTransport, type UtpFirst } from "./dialer.ts";

/** Most dials to one address during one fetch. */
export const MAX_DIALS = 5;
/** The wait before a second dial to an address (ms); it doubles for each dial after. */
export const REDIAL_MS = 1000;

/** Options for {@linkcode fetchMetadata}. */
export interface FetchMetadataOptions {
  /** The torrent's 20-byte info hash (the truncated v2 hash for a v2-only torrent): peers know it by this. */
  infoHash: Uint8Array;
  /** The full v2 info hash (SHA-256) from a `btmh` link: the info dictionary's SHA-256 must be this. */
  infoHashV2?: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Our listening port (told to trackers). */
  port: number;
  /** Peers to dial. */
  peers?: PeerAddress[];
  /** Tracker tiers to ask for peers. */
  trackers?: string[][];
  /** Give up after this long. @default {120000} */
  timeoutMs?: number;
  /** Most connections at once. @default {16} */
  maxPeers?: number;
  /** Stops the fetch. */
  signal?: AbortSignal;
  /** Called once at the start with a function that adds peers found elsewhere (the DHT) while the fetch runs. */
  discover?: (add: (peers: PeerAddress[]) => void) => void;
  /** Protocol encryption of the connections (as the engine's, `dialer.ts`). @default {"prefer"} */
  encryption?: EncryptionPolicy;
  /** After an MSE handshake, offer only RC4 for the payload. @default {false} */
  rc4Only?: boolean;
  /** The transports to dial over, in order (uTP first, as the engine's). @default {TCP only} */
  transports?: DialTransport[];
  /** Where uTP is dialled before TCP (as the engine's). @default {"remote"} */
  utpFirst?: UtpFirst;
}

interface Source {
  peer: PeerConnection;
  remoteId: number;
  inflight: Set<number>;
  /** The metadata size this peer announced. */
  size: number;
}

/**
 * Fetches and verifies a torrent's info dictionary.
 *
 * @param options The info hash, where to find peers, and limits.
 * @returns The raw bencoded info dictionary, which hashes to the info hash (see `infoDictMatches`).
 * @throws {Error} When no peer delivered valid metadata in time.
 */
export async function fetchMetadata(options: FetchMetadataOptions): Promise<Uint8Array> {
  const { infoHash } = options;
  const done = Promise.withResolvers<Uint8Array>();
  const candidates = new Map<string, PeerAddress>();
  /** Per address: dials so far, and when the next may start (ms). */
  const tries = new Map<string, { dials: number; next: number }>();
  /** Addresses being dialled or connected (never dialled twice at once). */
  const live = new Set<string>();
  /** Addresses that sent metadata that does not hash right: never dialled again. */
  const banned = new Set<string>();
  const connections = new Set<PeerConnection>();
  const keyOf = new Map<PeerConnection, string>();
  const sources = new Map<PeerConnection, Source>();
  let size = 0;
  let pieces: (Uint8Array | undefined)[] = [];
  let attempts = 0;
  let finished = false;
  const maxPeers = options.maxPeers ?? 16;
  /** Dials in progress (their encryption handshakes), ended and awaited when the fetch is over. */
  const dials = new Set<Promise<unknown>>();
  const stopDials = new AbortController();
  const onStop = () => stopDials.abort();
  options.signal?.addEventListener("abort", onStop, { once: true });

  // After a hash failure whose pieces came from several peers, the culprit is unknown: from then on the whole
  // info dictionary is fetched from one peer at a time, so the next failure names its sender.
  let singleSource = false;
  const contributors = new Set<PeerConnection>();
  const active = (): Source[] => {
    const same = [...sources.values()].filter((s) => s.size === size && !s.inflight.has(-1));
    return singleSource ? same.slice(0, 1) : same;
  };
  const reset = () => {
    // the current size has no usable source left: take the size another peer announced
    if (!active().length) {
      const other = [...sources.values()].find((s) => !s.inflight.has(-1));
      size = other?.size ?? 0;
    }
    pieces = new Array(Math.ceil(size / METADATA_PIECE)).fill(undefined);
    contributors.clear();
  };

  const request = () => {
    if (finished) return;
    if (size === 0 || !active().length) reset();
    if (size === 0) return;
    for (const s of active()) {
      if (s.inflight.size >= 2) continue;
      for (let i = 0; i < pieces.length && s.inflight.size < 2; i++) {
        if (pieces[i] || [...sources.values()].some((o) => o.inflight.has(i))) continue;
        s.inflight.add(i);
        s.peer.sendExtended(s.remoteId, encodeMetadataMessage({ type: "request", piece: i }));
      }
    }
  };

  const complete = async () => {
    const info = concat(pieces as Uint8Array[]);
    const hashes = options.infoHashV2 ? { infoHash, infoHashV2: options.infoHashV2 } : { infoHash };
    if (await infoDictMatches(info, hashes)) {
      finished = true;
      done.resolve(info);
      return;
    }
    // wrong data: a lone sender is dropped; with several, the next tries go one peer at a time
    attempts++;
    if (contributors.size === 1) {
      for (const c of contributors) {
        const key = keyOf.get(c);
        if (key) banned.add(key);
        c.close("sent metadata that does not match the info hash");
      }
    } else singleSource = true;
    if (attempts >= 8) {
      done.reject(new Error("peers sent metadata that does not match the info hash, 8 times"));
      return;
    }
    pieces = new Array(pieces.length).fill(undefined);
    contributors.clear();
    request();
  };

  const dial = async (p: PeerAddress) => {
    const key = addressKey(p.host, p.port);
    if (finished || connections.size >= maxPeers || live.has(key) || banned.has(key)) return;
    const now = Date.now(), tried = tries.get(key);
    if (tried && (tried.dials >= MAX_DIALS || now < tried.next)) return;
    const count = (tried?.dials ?? 0) + 1;
    tries.set(key, { dials: count, next: now + REDIAL_MS * 2 ** (count - 1) });
    live.add(key);
    const dialing = dialPeer(p.host, p.port, {
      infoHash,
      handshake: encodeHandshake({ infoHash, peerId: options.peerId, fast: true, extended: true }),
      ...(options.encryption ? { policy: options.encryption } : {}),
      ...(options.rc4Only ? { rc4Only: true } : {}),
      ...(options.transports ? { transports: options.transports } : {}),
      ...(options.utpFirst ? { utpFirst: options.utpFirst } : {}),
      signal: stopDials.signal,
      start: async (a) => {
        if (finished) {
          a.stream.close?.();
          return { ok: false, reason: "metadata fetched" };
        }
        const peer = open(a.stream, p, key, a.handshakeSent, a.handshakeTimeoutMs);
        await peer.start();
        return peer.remoteHandshake ? { ok: true } : { ok: false, reason: peer.closeReason ?? "" };
      },
    });
    dials.add(dialing);
    try {
      await dialing;
    } finally {
      dials.delete(dialing);
      // a dial that did not end in an open connection frees the address for a later dial
      if (![...keyOf.values()].includes(key)) live.delete(key);
    }
  };

  const open = (
    conn: PeerStream,
    p: PeerAddress,
    key: string,
    handshakeSent: boolean,
    handshakeTimeoutMs: number,
  ): PeerConnection => {
    const peer = new PeerConnection(conn, {
      infoHash,
      peerId: options.peerId,
      pieceCount: 0,
      pieceLength: 1,
      totalLength: 0,
      extensionHandshake: {
        m: { ut_metadata: UT_METADATA_ID },
        v: CLIENT_NAME,
        p: options.port,
      },
      remoteAddress: p,
      handshakeSent,
      handshakeTimeoutMs,
    }, {
      onBlock() {},
      onExtended: (peer, id, payload) => {
        if (id === 0) {
          const ext = peer.remoteExtensions;
          const remoteId = ext?.m["ut_metadata"];
          const msize = ext?.metadataSize;
          // an absurd size is never trusted (a peer announcing 1 GiB of metadata gets no requests)
          if (!remoteId || !msize || msize > MAX_METADATA_SIZE) return;
          // sizes that disagree are all kept: the one that hashes right wins, the others' peers are dropped
          sources.set(peer, { peer, remoteId, inflight: new Set(), size: msize });
          if (size === 0) reset();
          request();
          return;
        }
        if (id !== UT_METADATA_ID) return;
        let m;
        try {
          m = decodeMetadataMessage(payload);
        } catch (err) {
          return peer.close(`protocol violation: ${(err as Error).message}`);
        }
        const s = sources.get(peer);
        if (m.type === "request") {
          peer.sendExtended(
            s?.remoteId ?? 0,
            encodeMetadataMessage({ type: "reject", piece: m.piece }),
          );
          return;
        }
        if (!s || !s.inflight.delete(m.piece)) return;
        if (m.type === "reject") {
          s.inflight.add(-1); // this peer will not serve: stop asking it
          return;
        }
        const expected = Math.min(METADATA_PIECE, size - m.piece * METADATA_PIECE);
        if (m.totalSize !== size || m.data.length !== expected) {
          return peer.close("protocol violation: metadata piece of the wrong size");
        }
        pieces[m.piece] = m.data.slice();
        contributors.add(peer);
        if (pieces.every((x) => x)) void complete();
        else request();
      },
      onClose: (peer) => {
        connections.delete(peer);
        const key = keyOf.get(peer);
        keyOf.delete(peer);
        if (key) live.delete(key);
        const gone = sources.get(peer);
        sources.delete(peer);
        if (gone) {
          // its unanswered requests go to others; its pieces stay (the hash check judges them)
          gone.inflight.clear();
        }
        request();
        dialMore();
      },
    });
    connections.add(peer);
    keyOf.set(peer, key);
    return peer;
  };

  const dialMore = () => {
    for (const p of candidates.values()) {
      if (connections.size >= maxPeers) break;
      void dial(p);
    }
  };
  const add = (peers: PeerAddress[]) => {
    for (const p of peers) {
      if (candidates.size < 2000) candidates.set(addressKey(p.host, p.port), p);
    }
    dialMore();
  };

  const trackers = options.trackers && options.trackers.length > 0
    ? new TrackerManager({
      announceList: options.trackers,
      infoHash,
      peerId: options.peerId,
      port: options.port,
      stats: () => ({ uploaded: 0, downloaded: 0, left: 1 }),
      onPeers: add,
    })
    : undefined;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const timer = setTimeout(
    () =>
      done.reject(
        new Error(
          `could not fetch the torrent's metadata within ${
            Math.round(timeoutMs / 1000)
          } s (${tries.size} peers tried)`,
        ),
      ),
    timeoutMs,
  );
  // peers that failed or went away are dialled again once their wait is over
  const redial = setInterval(dialMore, REDIAL_MS);
  const onAbort = () => done.reject(new Error("metadata fetch aborted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    add(options.peers ?? []);
    options.discover?.((peers) => {
      if (!finished) add(peers);
    });
    trackers?.start();
    return await done.promise;
  } finally {
    finished = true;
    clearTimeout(timer);
    clearInterval(redial);
    options.signal?.removeEventListener("abort", onAbort);
    options.signal?.removeEventListener("abort", onStop);
    stopDials.abort();
    for (const c of connections) c.close("metadata fetched");
    await Promise.all([...connections].map((c) => c.done));
    await Promise.all([...dials]);
    await trackers?.stop();
  }
}
