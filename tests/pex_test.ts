// Peer exchange for one torrent (src/swarm/pex.ts): each added peer goes out with its flags (BEP 11 added.f) —
// uTP when our connection to it is uTP, reachable when we dialled it, seed, encryption — and what a peer tells
// us comes back with the flags it sent. No sockets: connections are stand-ins that record what is sent.
import assert from "node:assert/strict";
import { encode } from "../src/bencode.ts";
import type { PeerConnection } from "../src/peer.ts";
import { encodeCompactPeers } from "../src/tracker/compact.ts";
import { Pex } from "../src/swarm/pex.ts";
import type { PeerEntry } from "../src/swarm/types.ts";
import {
  decodePex,
  encodePex,
  PEX_ENCRYPTION,
  PEX_REACHABLE,
  PEX_SEED,
  PEX_UTP,
} from "../src/wire/pex.ts";

interface Sent {
  id: number;
  payload: Uint8Array;
}

function entry(
  key: string,
  o: { incoming: boolean; transport: "tcp" | "utp"; rc4?: boolean; seed?: boolean; p?: number },
  sent: Sent[],
): PeerEntry {
  const conn = {
    remoteExtensions: { m: { ut_pex: 9 }, ...(o.p ? { p: o.p } : {}) },
    bitfield: { full: o.seed ?? false },
    sendExtended: (id: number, payload: Uint8Array) => sent.push({ id, payload }),
    close: () => {},
  } as unknown as PeerConnection;
  return {
    key,
    incoming: o.incoming,
    transport: o.transport,
    encryption: o.rc4 ? "rc4" : false,
    conn,
  } as unknown as PeerEntry;
}

Deno.test("PEX: each added peer carries its flags — uTP, reachable, encryption, seed", () => {
  const toA: Sent[] = [], other: Sent[] = [];
  const a = entry("10.0.0.1:6881", { incoming: false, transport: "tcp" }, toA);
  const utpOut = entry("10.0.0.2:6882", { incoming: false, transport: "utp", rc4: true }, other);
  const utpIn = entry(
    "10.0.0.3:50000",
    { incoming: true, transport: "utp", seed: true, p: 6883 },
    other,
  );
  const tcpIn = entry("[::1]:50001", { incoming: true, transport: "tcp", p: 6884 }, other);
  new Pex().send([a, utpOut, utpIn, tcpIn], false);
  assert.equal(toA.length, 1);
  assert.equal(toA[0].id, 9);
  const m = decodePex(toA[0].payload);
  assert.deepEqual(m.added, [
    { host: "10.0.0.2", port: 6882, flags: PEX_UTP | PEX_REACHABLE | PEX_ENCRYPTION },
    { host: "10.0.0.3", port: 6883, flags: PEX_UTP | PEX_SEED },
    { host: "::1", port: 6884, flags: 0 },
  ]);
});

Deno.test("PEX: what a peer says comes back with its flags (uTP or not), or none when it sent none", () => {
  const pex = new Pex();
  const conn = { close: () => {} } as unknown as PeerConnection;
  const got = pex.received(
    conn,
    encodePex({
      added: [{ host: "10.0.0.7", port: 1, flags: PEX_UTP }, {
        host: "10.0.0.8",
        port: 2,
        flags: 0,
      }],
      dropped: [],
    }),
  );
  assert.deepEqual(got.map((p) => p.flags), [PEX_UTP, 0]);
  // a message without added.f (as some clients send)
  const bare = pex.received(
    conn,
    encode({ added: encodeCompactPeers([{ host: "10.0.0.9", port: 3 }], 4) }),
  );
  assert.deepEqual(bare, [{ host: "10.0.0.9", port: 3 }]);
});
