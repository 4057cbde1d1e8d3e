// The one dialler (src/swarm/dialer.ts): each policy's attempts and fallbacks against an in-memory acceptor with
// its own policy, no sockets. The peer side is acceptConnection, then a BitTorrent handshake read and answered.
import assert from "node:assert/strict";
import { type DialAttempt, dialPeer, type HandshakeOutcome } from "../src/swarm/dialer.ts";
import type { EncryptionPolicy } from "../src/wire/encryption_policy.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { acceptConnection } from "../src/wire/mse.ts";
import type { PeerStream } from "../src/wire/stream.ts";
import { socketPair, type TestSocket } from "./_swarm.ts";

const INFO_HASH = new Uint8Array(20).fill(7);
const OURS = encodeHandshake({ infoHash: INFO_HASH, peerId: new Uint8Array(20).fill(1) });
const THEIRS = encodeHandshake({ infoHash: INFO_HASH, peerId: new Uint8Array(20).fill(2) });

/** Reads exactly `n` bytes (or fewer at the end of the stream). */
async function readBytes(stream: PeerStream, n: number): Promise<Uint8Array> {
  const reader = stream.readable.getReader();
  const out = new Uint8Array(n);
  let got = 0;
  try {
    while (got < n) {
      const { value, done } = await reader.read();
      if (done || !value) break;
      const take = Math.min(value.length, n - got);
      out.set(value.subarray(0, take), got);
      got += take;
    }
  } finally {
    reader.releaseLock();
  }
  return out.subarray(0, got);
}

interface Peer {
  /** What each connection started with: "plain", "mse" or the reason it was refused. */
  seen: string[];
  connect: (host: string, port: number) => Promise<PeerStream>;
  /** Resolves once every connection the peer took is finished. */
  settled(): Promise<void>;
}

/**
 * An in-memory peer: acceptConnection under `policy`, then our handshake read and its own sent back (or, with
 * `hangUpAfterMse`, the connection closed right after an MSE handshake, before any BitTorrent handshake).
 */
function peer(policy: EncryptionPolicy, options: { hangUpAfterMse?: boolean } = {}): Peer {
  const seen: string[] = [];
  const running: Promise<void>[] = [];
  const serve = async (end: TestSocket) => {
    let accepted;
    try {
      accepted = await acceptConnection(end, [INFO_HASH], { policy, timeoutMs: 5000 });
    } catch (err) {
      seen.push(`refused: ${(err as Error).message}`);
      end.close();
      return;
    }
    seen.push(accepted.encryption === false ? "plain" : `mse ${accepted.encryption}`);
    if (options.hangUpAfterMse && accepted.encryption !== false) {
      accepted.stream.close?.();
      return;
    }
    const hs = await readBytes(accepted.stream, 68);
    assert.deepEqual(hs, OURS);
    const writer = accepted.stream.writable.getWriter();
    await writer.write(THEIRS);
    writer.releaseLock();
  };
  return {
    seen,
    connect() {
      const { a, b } = socketPair();
      running.push(serve(b));
      return Promise.resolve(a);
    },
    async settled() {
      await Promise.all(running);
    },
  };
}

/** A `start` that sends our handshake unless it went out in the IA, then waits for the peer's. */
function bitTorrentHandshake(opened: DialAttempt[]) {
  return async (a: DialAttempt): Promise<HandshakeOutcome> => {
    opened.push(a);
    if (!a.handshakeSent) {
      const writer = a.stream.writable.getWriter();
      await writer.write(OURS).catch(() => {});
      writer.releaseLock();
    }
    const hs = await readBytes(a.stream, 68);
    a.stream.close?.();
    return hs.length === 68
      ? { ok: true }
      : { ok: false, reason: "connection closed during handshake" };
  };
}

const CASES: {
  ours: EncryptionPolicy;
  theirs: EncryptionPolicy;
  ok: boolean;
  mode?: string;
  seen: string[];
}[] = [
  // MSE with the handshake in the IA, plaintext payload
  { ours: "prefer", theirs: "prefer", ok: true, mode: "mse", seen: ["mse plaintext-header"] },
  { ours: "prefer", theirs: "require", ok: true, mode: "mse", seen: ["mse plaintext-header"] },
  // the peer refuses MSE: the one plain retry
  {
    ours: "prefer",
    theirs: "disable",
    ok: true,
    mode: "plain",
    seen: ["refused: not a BitTorrent handshake (encrypted handshakes are disabled)", "plain"],
  },
  { ours: "allow", theirs: "prefer", ok: true, mode: "plain", seen: ["plain"] },
  { ours: "disable", theirs: "prefer", ok: true, mode: "plain", seen: ["plain"] },
  { ours: "allow", theirs: "require", ok: false, seen: [/* see below */] },
  { ours: "require", theirs: "require", ok: true, mode: "mse", seen: ["mse plaintext-header"] },
  // never a plain handshake: both MSE attempts refused, and nothing else sent
  { ours: "require", theirs: "disable", ok: false, seen: [] },
];

for (const c of CASES) {
  Deno.test(`dialPeer: ours ${c.ours}, theirs ${c.theirs} → ${c.ok ? c.mode : "no connection"}`, async () => {
    const p = peer(c.theirs);
    const opened: DialAttempt[] = [];
    const result = await dialPeer("peer.test", 6881, {
      infoHash: INFO_HASH,
      handshake: OURS,
      policy: c.ours,
      connect: p.connect,
      start: bitTorrentHandshake(opened),
    });
    await p.settled();
    assert.equal(result.ok, c.ok, JSON.stringify(result));
    assert.equal(result.unreachable, false);
    if (c.ok) {
      assert.equal(result.mode, c.mode);
      assert.deepEqual(p.seen, c.seen);
      const last = opened.at(-1)!;
      assert.equal(
        last.handshakeSent,
        c.mode === "mse",
        "the handshake rides in the IA of an mse attempt",
      );
    } else if (c.ours === "require") {
      assert.deepEqual(p.seen, [
        "refused: not a BitTorrent handshake (encrypted handshakes are disabled)",
        "refused: not a BitTorrent handshake (encrypted handshakes are disabled)",
      ]);
      assert.deepEqual(result.failures.map((f) => f.split(":")[0]), ["mse", "mse-no-ia"]);
      assert.ok(opened.length === 0, "no BitTorrent handshake was ever tried");
    } else {
      assert.deepEqual(p.seen, [
        "refused: plain BitTorrent handshake refused: encryption is required",
      ]);
      assert.deepEqual(result.failures.map((f) => f.split(":")[0]), ["plain"]);
    }
  });
}

Deno.test("dialPeer: a peer that hangs up after MSE, before the BitTorrent handshake, gets the next mode", async () => {
  const p = peer("prefer", { hangUpAfterMse: true });
  const opened: DialAttempt[] = [];
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    policy: "prefer",
    connect: p.connect,
    start: bitTorrentHandshake(opened),
  });
  await p.settled();
  assert.equal(result.ok, true);
  assert.equal(result.mode, "plain");
  assert.deepEqual(p.seen, ["mse plaintext-header", "plain"]);
  assert.deepEqual(result.failures, ["mse: connection closed during handshake"]);
  assert.deepEqual(opened.map((a) => a.encryption), ["plaintext-header", false]);
});

Deno.test("dialPeer: what worked last time is tried alone", async () => {
  const p = peer("prefer");
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    policy: "prefer",
    worked: "plain",
    connect: p.connect,
    start: bitTorrentHandshake([]),
  });
  await p.settled();
  assert.equal(result.mode, "plain");
  assert.deepEqual(p.seen, ["plain"]);
});

Deno.test("dialPeer: rc4Only offers only RC4, and the peer selects it", async () => {
  const p = peer("prefer");
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    rc4Only: true,
    connect: p.connect,
    start: bitTorrentHandshake([]),
  });
  await p.settled();
  assert.equal(result.encryption, "rc4");
  assert.deepEqual(p.seen, ["mse rc4"]);
});

Deno.test("dialPeer: a refused connect is not retried another way", async () => {
  let calls = 0;
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    connect: () => {
      calls++;
      return Promise.reject(new Error("Connection refused (os error 111)"));
    },
    start: () => Promise.resolve({ ok: true }),
  });
  assert.equal(calls, 1);
  assert.deepEqual(result, {
    ok: false,
    unreachable: true,
    failures: ["mse: Connection refused (os error 111)"],
  });
});

Deno.test("dialPeer: one deadline across both handshakes (the BitTorrent one gets what MSE left)", async () => {
  const p = peer("prefer");
  let clock = 1000;
  const opened: DialAttempt[] = [];
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    handshakeTimeoutMs: 10_000,
    now: () => (clock += 3000), // each reading of the clock: 3 s later
    connect: p.connect,
    start: bitTorrentHandshake(opened),
  });
  await p.settled();
  assert.equal(result.ok, true);
  assert.equal(opened[0].handshakeTimeoutMs, 7000);
});

Deno.test("dialPeer: an aborted dial stops between attempts", async () => {
  const abort = new AbortController();
  const p = peer("disable");
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    signal: abort.signal,
    connect: (host, port) => {
      const conn = p.connect(host, port);
      abort.abort(); // gone while the first attempt runs
      return conn;
    },
    start: bitTorrentHandshake([]),
  });
  await p.settled();
  assert.equal(result.ok, false);
  assert.equal(result.failures.length, 1);
  assert.match(result.failures[0], /^mse: encryption handshake aborted/);
});

// ---------------------------------------------------------------- transports (uTP first, then TCP)

const UTP_TIMEOUT = () => Promise.reject(new Error("no answer from peer.test:6881 over uTP"));

Deno.test("dialPeer: uTP first; a uTP connect nobody answers falls back to TCP, which gets through", async () => {
  const tcp = peer("prefer");
  const asked: string[] = [];
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    transports: [
      {
        name: "utp",
        connect: (_h, _p, o) => {
          asked.push(`utp ${o.timeoutMs}`);
          return UTP_TIMEOUT();
        },
        connectTimeoutMs: 3000,
      },
      {
        name: "tcp",
        connect: (h, p, o) => {
          asked.push(`tcp ${o.timeoutMs}`);
          return tcp.connect(h, p);
        },
      },
    ],
    connectTimeoutMs: 5000,
    start: bitTorrentHandshake([]),
  });
  await tcp.settled();
  assert.deepEqual(asked, ["utp 3000", "tcp 5000"]);
  assert.equal(result.ok, true);
  assert.equal(result.transport, "tcp");
  assert.equal(result.mode, "mse");
  assert.deepEqual(result.failures, ["utp mse: no answer from peer.test:6881 over uTP"]);
});

Deno.test("dialPeer: a uTP connection closed before the BitTorrent handshake fails uTP (every mode), then TCP", async () => {
  const utp = peer("prefer", { hangUpAfterMse: true });
  const hangUp = (): Promise<PeerStream> => {
    // a peer that closes a plain connection at once
    const { a, b } = socketPair();
    b.close();
    return Promise.resolve(a);
  };
  let utpCalls = 0;
  const tcp = peer("prefer");
  const opened: DialAttempt[] = [];
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    transports: [
      { name: "utp", connect: (h, p) => ++utpCalls === 1 ? utp.connect(h, p) : hangUp() },
      { name: "tcp", connect: tcp.connect },
    ],
    start: bitTorrentHandshake(opened),
  });
  await utp.settled();
  await tcp.settled();
  assert.equal(result.ok, true);
  assert.equal(result.transport, "tcp");
  assert.deepEqual(opened.map((a) => [a.transport, a.mode]), [["utp", "mse"], ["utp", "plain"], [
    "tcp",
    "mse",
  ]]);
  assert.equal(result.failures.length, 2);
  assert.match(result.failures[0], /^utp mse: /);
  assert.match(result.failures[1], /^utp plain: /);
});

Deno.test("dialPeer: the transport that worked last time is tried first; unreachable only when none connects", async () => {
  const tcp = peer("prefer");
  const asked: string[] = [];
  const result = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    transports: [
      { name: "utp", connect: () => (asked.push("utp"), UTP_TIMEOUT()) },
      { name: "tcp", connect: (h, p) => (asked.push("tcp"), tcp.connect(h, p)) },
    ],
    workedTransport: "tcp",
    start: bitTorrentHandshake([]),
  });
  await tcp.settled();
  assert.deepEqual(asked, ["tcp"]);
  assert.equal(result.transport, "tcp");

  const none = await dialPeer("peer.test", 6881, {
    infoHash: INFO_HASH,
    handshake: OURS,
    transports: [
      { name: "utp", connect: UTP_TIMEOUT },
      { name: "tcp", connect: () => Promise.reject(new Error("Connection refused")) },
    ],
    start: () => Promise.resolve({ ok: true }),
  });
  assert.deepEqual(none, {
    ok: false,
    unreachable: true,
    failures: ["utp mse: no answer from peer.test:6881 over uTP", "tcp mse: Connection refused"],
  });
});

Deno.test("dialPeer: a peer on loopback or a local network is dialled over TCP first, unless utpFirst is always", async () => {
  const order = async (host: string, utpFirst?: "remote" | "always") => {
    const asked: string[] = [];
    const refuse = (name: string) => () => {
      asked.push(name);
      return Promise.reject(new Error("Connection refused"));
    };
    await dialPeer(host, 6881, {
      infoHash: INFO_HASH,
      handshake: OURS,
      transports: [{ name: "utp", connect: refuse("utp") }, {
        name: "tcp",
        connect: refuse("tcp"),
      }],
      ...(utpFirst ? { utpFirst } : {}),
      start: () => Promise.resolve({ ok: true }),
    });
    return asked.join(",");
  };
  for (
    const local of [
      "127.0.0.1",
      "::1",
      "10.1.2.3",
      "172.20.0.5",
      "192.168.1.9",
      "169.254.3.4",
      "fd12::1",
      "fe80::1",
      "::ffff:192.168.0.2",
    ]
  ) {
    assert.equal(await order(local), "tcp,utp", local);
    assert.equal(await order(local, "always"), "utp,tcp", local);
  }
  for (const remote of ["203.0.113.7", "172.32.0.1", "2001:db8::5", "peer.test"]) {
    assert.equal(await order(remote), "utp,tcp", remote);
  }
});
