// Fuzz targets for every parser of untrusted bytes. Each mutates valid seeds (byte flips, truncation, insertion,
// splicing, random bytes) and checks that the parser either succeeds or throws its own documented error class —
// never a TypeError, RangeError or a hang. A short run is part of `deno task test` (fuzz_test.ts); the long run is
// `deno task fuzz [runs-per-target]` (default 1 000 000).

import { BencodeError, decode, encode } from "../src/bencode.ts";
import { decodeKrpc, KrpcError } from "../src/dht/krpc.ts";
import { parseLsdAnnounce } from "../src/lsd.ts";
import { MagnetError, parseMagnet } from "../src/magnet.ts";
import { MetainfoError, parseMetainfo } from "../src/metainfo.ts";
import { parseCompactPeers } from "../src/tracker/compact.ts";
import { decodeTrackerBody, parseAnnounceResponse, TrackerError } from "../src/tracker/http.ts";
import { decodeExtensionHandshake } from "../src/wire/extension.ts";
import {
  decodeHashMessage,
  encodeHashes,
  encodeHashReject,
  encodeHashRequest,
} from "../src/wire/hashes.ts";
import { WireDecoder } from "../src/wire/frame_decoder.ts";
import { WireError } from "../src/wire/messages.ts";
import { decodeMetadataMessage } from "../src/wire/metadata.ts";
import { decodePex } from "../src/wire/pex.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { acceptConnection } from "../src/wire/mse.ts";
import {
  decodeUtpPacket,
  encodeUtpPacket,
  PacketType,
  UtpPacketError,
} from "../src/transport/utp_packet.ts";

const enc = new TextEncoder();
const HANDSHAKE = encodeHandshake({
  infoHash: new Uint8Array(20).fill(1),
  peerId: new Uint8Array(20).fill(2),
  fast: true,
  extended: true,
});

/** A fuzz target: seeds, the parser, and the error classes it may throw. */
export interface Target {
  name: string;
  seeds: Uint8Array[];
  run(input: Uint8Array): unknown;
  allowed: (new (...args: never[]) => Error)[];
}

function torrentSeed(): Uint8Array {
  return encode({
    announce: "http://127.0.0.1:1/announce",
    info: {
      name: "dir",
      "piece length": 16384,
      pieces: new Uint8Array(40),
      files: [{ length: 20000, path: ["a", "b.bin"] }, { length: 5, path: ["c"] }],
    },
  });
}

const fixtures = new URL("../fixtures/", import.meta.url).pathname;

/** v2-only and hybrid torrents made by libtorrent, and a crafted one with odd names. */
const v2Seeds = [
  "real/libtorrent_v2_multi.torrent",
  "real/libtorrent_hybrid_multi.torrent",
  "sanitised_v2/v2_tree_unsafe_names.torrent",
].map((f) => Deno.readFileSync(fixtures + f));

/** Hash message frames without their length prefix: the id byte, then the payload. */
function hashSeeds(): Uint8Array[] {
  const request = {
    piecesRoot: new Uint8Array(32).fill(7),
    baseLayer: 0,
    index: 4,
    length: 4,
    proofLayers: 3,
  };
  return [
    encodeHashRequest(request).subarray(4),
    encodeHashReject(request).subarray(4),
    encodeHashes(request, new Uint8Array(6 * 32).fill(9)).subarray(4),
  ];
}

/** Every target. */
export const TARGETS: Target[] = [
  {
    name: "bencode",
    seeds: [
      enc.encode("d3:bar4:spam3:fooi42e4:listl1:a1:bi-3eee"),
      enc.encode("li1ei2eli3ee"),
      torrentSeed(),
    ],
    run: (b) => decode(b, { maxDepth: 64, maxTokens: 10_000 }),
    allowed: [BencodeError],
  },
  {
    name: "metainfo",
    seeds: [torrentSeed(), ...v2Seeds],
    run: (b) => parseMetainfo(b),
    allowed: [BencodeError, MetainfoError],
  },
  {
    name: "magnet",
    seeds: [
      enc.encode(
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=x&tr=http%3A%2F%2Fa%2Fann&x.pe=127.0.0.1:1&so=0,2-4",
      ),
      enc.encode("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYU&x.pe=[::1]:6881"),
      enc.encode(
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&xt=urn:btmh:1220" +
          "ab".repeat(32) + "&dn=hybrid",
      ),
    ],
    run: (b) => parseMagnet(new TextDecoder().decode(b)),
    allowed: [MagnetError],
  },
  {
    name: "frame-decoder",
    seeds: [
      new Uint8Array([
        0,
        0,
        0,
        1,
        2,
        0,
        0,
        0,
        5,
        4,
        0,
        0,
        0,
        7,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        13,
        6,
        0,
        0,
        0,
        1,
      ]),
      new Uint8Array([0, 0, 0, 3, 9, 0x1a, 0xe1, 0, 0, 0, 2, 20, 0]),
    ],
    // exactly the decoder every PeerConnection reads through (FrameDecoder's core), handshake first
    run: (b) => {
      const d = new WireDecoder({ maxMessageLength: 1 << 16, handshake: true });
      d.push(HANDSHAKE, () => {});
      d.push(b, () => {});
    },
    allowed: [WireError],
  },
  {
    name: "hash-messages",
    seeds: hashSeeds(),
    run: (b) => b.length > 0 && decodeHashMessage(b[0], b.subarray(1)),
    allowed: [WireError],
  },
  {
    name: "krpc",
    seeds: [
      enc.encode(
        "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
      ),
      enc.encode(
        "d1:rd2:id20:mnopqrstuvwxyz1234565:token8:aaaaaaaa6:valuesl6:abcdefee1:t2:aa1:y1:re",
      ),
      enc.encode("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"),
    ],
    run: (b) => decodeKrpc(b),
    allowed: [KrpcError],
  },
  {
    name: "extension-handshake",
    seeds: [
      encode({ m: { ut_metadata: 2, ut_pex: 1 }, p: 6881, v: "x", reqq: 500, metadata_size: 1000 }),
    ],
    run: (b) => decodeExtensionHandshake(b),
    allowed: [WireError],
  },
  {
    name: "ut_metadata",
    seeds: [
      encode({ msg_type: 1, piece: 0, total_size: 3 }),
      encode({ msg_type: 0, piece: 1 }),
    ],
    run: (b) => decodeMetadataMessage(b),
    allowed: [WireError],
  },
  {
    name: "ut_pex",
    seeds: [
      encode({
        added: new Uint8Array([127, 0, 0, 1, 0, 80]),
        "added.f": new Uint8Array([1]),
        dropped: "",
      }),
    ],
    run: (b) => decodePex(b),
    allowed: [WireError],
  },
  {
    name: "lsd",
    seeds: [
      enc.encode(
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\ncookie: x\r\n\r\n\r\n",
      ),
    ],
    run: (b) => parseLsdAnnounce(b),
    allowed: [],
  },
  {
    name: "tracker-response",
    seeds: [
      encode({
        interval: 1800,
        "min interval": 60,
        complete: 3,
        incomplete: 1,
        peers: new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]),
        peers6: new Uint8Array(18),
      }),
      encode({
        interval: 900,
        peers: [{ ip: "10.0.0.1", port: 6881, "peer id": "x" }, { ip: "::1", port: 1 }],
      }),
      encode({ "failure reason": "unregistered torrent", "warning message": "w" }),
      enc.encode("<html><body>502 Bad Gateway</body></html>"),
      enc.encode('{"peers": []}'),
    ],
    run: (b) =>
      parseAnnounceResponse("http://t/announce", decodeTrackerBody("http://t/announce", b)),
    allowed: [TrackerError],
  },
  {
    name: "utp-packet",
    seeds: [
      encodeUtpPacket({ type: PacketType.syn, connectionId: 0x1234, seq: 1, wndSize: 1 << 20 }),
      encodeUtpPacket({
        type: PacketType.state,
        connectionId: 0x1235,
        seq: 65535,
        ack: 1,
        sack: new Uint8Array([0x0f, 0, 0, 0x80]),
      }),
      encodeUtpPacket({
        type: PacketType.data,
        connectionId: 7,
        timestamp: 0xffffffff,
        timestampDiff: 100,
        seq: 2,
        ack: 3,
        payload: new Uint8Array([19, 66, 105, 116]),
      }),
      // an unknown extension, then a one-byte selective ack (as libtorrent sends)
      new Uint8Array([0x21, 9, 0, 1, ...new Uint8Array(16), 1, 2, 0xaa, 0xbb, 0, 1, 5]),
    ],
    run: (b) => decodeUtpPacket(b),
    allowed: [UtpPacketError],
  },
  {
    name: "compact-peers",
    seeds: [new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 1, 0, 1])],
    run: (b) => [parseCompactPeers(b, 4), parseCompactPeers(b, 6)],
    allowed: [],
  },
  {
    // the first bytes of an incoming connection: a plain handshake, or an MSE public key and what follows
    // (the responder's key is random, so deeper stages are reached by tests/mse_test.ts's corrupting relay)
    name: "mse-accept",
    seeds: [
      encodeHandshake({ infoHash: new Uint8Array(20).fill(1), peerId: new Uint8Array(20) }),
      new Uint8Array(96 + 40 + 20).fill(0x77),
    ],
    async run(b) {
      const conn = {
        readable: ReadableStream.from([b]),
        writable: new WritableStream<Uint8Array>(),
      };
      const accepted = await acceptConnection(conn, [new Uint8Array(20).fill(1)]);
      await accepted.stream.readable.cancel();
    },
    allowed: [WireError],
  },
];

/** A small deterministic generator (xorshift32), so any failure reproduces from its seed. */
export function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** One mutation of a seed. */
export function mutate(
  seed: Uint8Array,
  other: Uint8Array,
  rand: (n: number) => number,
): Uint8Array {
  let b = seed.slice();
  const rounds = 1 + rand(4);
  for (let r = 0; r < rounds; r++) {
    switch (rand(7)) {
      case 0: // flip bytes
        for (let k = 0; k <= rand(4); k++) if (b.length) b[rand(b.length)] = rand(256);
        break;
      case 1: // truncate
        b = b.subarray(0, rand(b.length + 1));
        break;
      case 2: { // insert bytes
        const at = rand(b.length + 1);
        const ins = Uint8Array.from({ length: 1 + rand(8) }, () => rand(256));
        b = new Uint8Array([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
        break;
      }
      case 3: { // splice in part of another seed
        const at = rand(b.length + 1);
        const from = rand(other.length + 1);
        b = new Uint8Array([...b.subarray(0, at), ...other.subarray(from, from + rand(32))]);
        break;
      }
      case 4: { // interesting digits
        const at = rand(b.length + 1);
        const digits =
          ["0", "-0", "00", "4294967296", "9".repeat(30), "-1", "18446744073709551616"][rand(7)];
        b = new Uint8Array([...b.subarray(0, at), ...enc.encode(digits), ...b.subarray(at)]);
        break;
      }
      case 5: { // duplicate a region (nesting, repeated keys)
        const start = rand(b.length + 1), len = rand(64);
        const region = b.subarray(start, start + len);
        b = new Uint8Array([
          ...b.subarray(0, start),
          ...region,
          ...region,
          ...b.subarray(start + len),
        ]);
        break;
      }
      default: // random bytes
        b = Uint8Array.from({ length: rand(96) }, () => rand(256));
    }
  }
  return b;
}

/**
 * Runs a target; throws on the first disallowed outcome, naming the input (as hex) and the seed.
 *
 * @returns How many inputs were accepted (parsed without error).
 */
export async function fuzz(target: Target, runs: number, seed = 1): Promise<number> {
  const rand = rng(seed);
  let accepted = 0;
  for (let i = 0; i < runs; i++) {
    const s = target.seeds[rand(target.seeds.length)];
    const o = target.seeds[rand(target.seeds.length)];
    const input = mutate(s, o, rand);
    try {
      await target.run(input);
      accepted++;
    } catch (err) {
      if (!target.allowed.some((c) => err instanceof c)) {
        throw new Error(
          `fuzz ${target.name}: input ${input.toHex()} (run ${i}, seed ${seed}) threw ${
            (err as Error)?.name
          }: ${(err as Error)?.message}`,
        );
      }
    }
  }
  return accepted;
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 1_000_000);
  const only = Deno.args[1];
  for (const t of TARGETS) {
    if (only && t.name !== only) continue;
    const started = performance.now();
    const accepted = await fuzz(t, runs, 0x5eedbed);
    console.log(
      `${t.name}: ${runs} inputs, ${accepted} accepted, ${
        runs - accepted
      } rejected with the documented error, ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }
}
