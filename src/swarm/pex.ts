/**
 * Peer exchange (BEP 11, `ut_pex`) for one torrent: the addresses connected peers tell us (used within our
 * connection limits, never trusted beyond them), and what we tell each of them — a first message soon after the
 * connection, then at most one a minute with the changes since the last one (≤ 50 each way), each added peer with
 * its flags (uTP when our connection to it is uTP, reachable when we dialled it, seed, encryption). Never for
 * private torrents (BEP 27).
 *
 * @module
 */

import { addressKey, splitAddressKey } from "../_address.ts";
import type { PeerConnection } from "../peer.ts";
import type { PeerAddress } from "../tracker/compact.ts";
import {
  decodePex,
  encodePex,
  PEX_ENCRYPTION,
  PEX_REACHABLE,
  PEX_SEED,
  PEX_UTP,
  type PexPeer,
} from "../wire/pex.ts";
import type { PeerEntry } from "./types.ts";

/** What we told one peer. */
interface PexState {
  /** Addresses we told this peer about. */
  sent: Map<string, PeerAddress>;
  /** Whether it got its first message (later ones go out once a minute). */
  greeted: boolean;
}

/** Most addresses added or dropped per message after the first. */
const PER_MESSAGE = 50;

/** Peer exchange for one torrent. */
export class Pex {
  readonly #state = new WeakMap<PeerEntry, PexState>();

  /**
   * Reads a peer's `ut_pex` message; a malformed one closes the connection.
   *
   * @param peer The connection it came on.
   * @param payload The extended message's payload.
   * @returns The addresses it says were added, with their flags when it sent them.
   */
  received(peer: PeerConnection, payload: Uint8Array): PexPeer[] {
    try {
      return decodePex(payload).added;
    } catch (err) {
      peer.close(`protocol violation: ${(err as Error).message}`);
      return [];
    }
  }

  /**
   * Sends PEX messages: to peers not yet greeted (`onlyNew`), or to every peer with changes to tell.
   *
   * @param peers The torrent's ready connections.
   * @param onlyNew Greet new peers only (between the once-a-minute rounds).
   */
  send(peers: readonly PeerEntry[], onlyNew: boolean): void {
    const current = new Map<string, PexPeer>();
    for (const e of peers) {
      const a = listenAddress(e);
      if (a) current.set(addressKey(a.host, a.port), a);
    }
    for (const e of peers) {
      const remoteId = e.conn.remoteExtensions?.m["ut_pex"];
      if (!remoteId) continue;
      let st = this.#state.get(e);
      if (!st) this.#state.set(e, st = { sent: new Map(), greeted: false });
      if (onlyNew && st.greeted) continue;
      st.greeted = true;
      const self = listenAddress(e);
      const selfKey = self ? addressKey(self.host, self.port) : "";
      const first = st.sent.size === 0;
      const added: PexPeer[] = [], dropped: PeerAddress[] = [];
      for (const [k, a] of current) {
        if (k !== selfKey && !st.sent.has(k) && (first || added.length < PER_MESSAGE)) {
          added.push(a);
        }
      }
      for (const [k, a] of st.sent) {
        if (!current.has(k) && dropped.length < PER_MESSAGE) dropped.push(a);
      }
      if (added.length === 0 && dropped.length === 0) continue;
      for (const a of added) st.sent.set(addressKey(a.host, a.port), a);
      for (const a of dropped) st.sent.delete(addressKey(a.host, a.port));
      e.conn.sendExtended(remoteId, encodePex({ added, dropped }));
    }
  }
}

/**
 * The address other peers can dial for a connected peer (its own port for outgoing, its `p` for incoming) and
 * its flags.
 */
function listenAddress(e: PeerEntry): PexPeer | undefined {
  const { host, port } = splitAddressKey(e.key);
  const flags = (e.transport === "utp" ? PEX_UTP : 0) | (e.incoming ? 0 : PEX_REACHABLE) |
    (e.encryption !== false ? PEX_ENCRYPTION : 0) | (e.conn.bitfield.full ? PEX_SEED : 0);
  if (!e.incoming) return { host, port, flags };
  const p = e.conn.remoteExtensions?.p;
  return p ? { host, port: p, flags } : undefined;
}
