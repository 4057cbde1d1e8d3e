// The DHT: KRPC decoding, the routing table, and whole DHTs of many nodes on loopback.

import assert from "node:assert/strict";
import { encode } from "../src/bencode.ts";
import { Dht } from "../src/dht/dht.ts";
import {
  decodeKrpc,
  encodeCompactNodes,
  KrpcError,
  MAX_KRPC_PACKET,
  parseCompactNodes,
} from "../src/dht/krpc.ts";
import { commonPrefixBits, K, randomIdInBucket, RoutingTable } from "../src/dht/routing_table.ts";
import { openUdpSocket, type UdpSocket } from "../src/udp.ts";
import { within } from "./_swarm.ts";

const enc = new TextEncoder();

function idWithPrefix(first: number): Uint8Array {
  const id = crypto.getRandomValues(new Uint8Array(20));
  id[0] = first;
  return id;
}

Deno.test("KRPC: the packets of BEP 5 decode; malformed ones are rejected with a reason", () => {
  const q = decodeKrpc(
    enc.encode(
      "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    ),
  );
  assert.equal(q.y, "q");
  if (q.y === "q") assert.equal(q.q, "find_node");
  const r = decodeKrpc(enc.encode("d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"));
  assert.equal(r.y, "r");
  const e = decodeKrpc(enc.encode("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"));
  assert.equal(e.y === "e" && e.code, 201);
  const bad: [string, RegExp][] = [
    ["", /not bencode/],
    ["i1e", /not a dictionary/],
    ["d1:y1:qe", /transaction id/],
    ["d1:t2:aa1:y1:xe", /'y'/],
    ["d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", /20-byte 'id'/],
    ["d1:rd2:id2:abe1:t2:aa1:y1:re", /20-byte 'id'/],
    ["d1:t2:aa1:y1:q1:ad2:id20:abcdefghij0123456789ee", /method name/],
    ["d1:t2:aa1:y1:q1:ad2:id20:abcdefghij0123456789e1:q4:ping", /not bencode/],
    [
      `d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:abcdefghij01234567891:x${"l".repeat(10)}${
        "e".repeat(10)
      }ee`,
      /not bencode/,
    ],
  ];
  for (const [text, reason] of bad) {
    assert.throws(() => decodeKrpc(enc.encode(text)), (err: Error) => {
      assert.ok(err instanceof KrpcError, text);
      assert.match(err.message, reason, text);
      return true;
    });
  }
  const huge = new Uint8Array(MAX_KRPC_PACKET + 1);
  assert.throws(() => decodeKrpc(huge), /over the 4096-byte limit/);
});

Deno.test("KRPC: compact node info round-trips for IPv4 (26 bytes) and IPv6 (38 bytes)", () => {
  const nodes = [
    { id: new Uint8Array(20).fill(1), host: "127.0.0.1", port: 6881 },
    { id: new Uint8Array(20).fill(2), host: "10.1.2.3", port: 1 },
  ];
  const v4 = encodeCompactNodes(nodes, 4);
  assert.equal(v4.length, 52);
  assert.deepEqual(parseCompactNodes(v4, 4), nodes);
  const six = [{ id: new Uint8Array(20).fill(3), host: "::1", port: 6881 }];
  const v6 = encodeCompactNodes([...six, ...nodes], 6);
  assert.equal(v6.length, 38);
  assert.deepEqual(parseCompactNodes(v6, 6), six);
  assert.deepEqual(parseCompactNodes(v4.subarray(0, 30), 4).length, 1);
});

Deno.test("routing table: buckets split only around our id, hold K nodes, refuse repeated IPs", () => {
  const own = new Uint8Array(20); // all zero: buckets near 0 split
  const table = new RoutingTable(own);
  // far half (first bit 1): only K fit, the rest wait as replacements
  for (let i = 0; i < K + 3; i++) {
    const r = table.add(
      { id: idWithPrefix(0x80 | i), host: `10.0.0.${i + 1}`, port: 1000 },
      "response",
    );
    assert.equal(r.type, i < K ? "added" : "full", `node ${i}`);
  }
  // near ids split the table further
  for (let i = 0; i < 30; i++) {
    const id = idWithPrefix(0x01);
    id[1] = i;
    table.add({ id, host: `10.1.0.${i + 1}`, port: 1000 }, "response");
  }
  assert.ok(table.bucketCount > 2, `buckets: ${table.bucketCount}`);
  assert.ok(table.size <= table.bucketCount * K);
  // same IP, other port: refused outside loopback
  const again = table.add({ id: idWithPrefix(0x40), host: "10.0.0.1", port: 2000 }, "query");
  assert.equal(again.type, "rejected");
  // our own id is refused
  assert.equal(table.add({ id: own, host: "10.9.9.9", port: 1 }, "response").type, "rejected");
  // closest is sorted by XOR distance
  const target = idWithPrefix(0x01);
  const closest = table.closest(target, 5);
  for (let i = 1; i < closest.length; i++) {
    assert.ok(
      commonPrefixBits(closest[i - 1].id, target) >= commonPrefixBits(closest[i].id, target),
    );
  }
});

Deno.test("routing table: a node failing twice is bad and replaced from the bucket's cache", () => {
  const table = new RoutingTable(new Uint8Array(20).fill(0xff));
  const nodes = Array.from({ length: K }, (_, i) => ({
    id: idWithPrefix(i),
    host: `10.0.0.${i + 1}`,
    port: 1,
  }));
  for (const n of nodes) table.add(n, "response");
  const extra = { id: idWithPrefix(0x30), host: "10.0.1.1", port: 1 };
  assert.equal(table.add(extra, "response").type, "full");
  table.failed(nodes[0].host, 1);
  assert.ok(table.get(nodes[0].host, 1));
  table.failed(nodes[0].host, 1);
  assert.equal(table.get(nodes[0].host, 1), undefined);
  assert.ok(table.get(extra.host, 1), "the replacement took the bad node's place");
});

Deno.test("routing table: randomIdInBucket shares exactly the bucket's prefix", () => {
  const own = crypto.getRandomValues(new Uint8Array(20));
  for (const bits of [0, 1, 7, 8, 9, 63, 150, 159]) {
    assert.equal(commonPrefixBits(randomIdInBucket(own, bits), own), bits);
  }
});

async function startSwarm(n: number, options: { family?: 4 | 6 } = {}): Promise<Dht[]> {
  const host = options.family === 6 ? "::1" : "127.0.0.1";
  const first = await Dht.open({ host, bootstrap: [], queryTimeoutMs: 500, ...options });
  const boot = options.family === 6 ? `[::1]:${first.port}` : `127.0.0.1:${first.port}`;
  const rest = await Promise.all(
    Array.from(
      { length: n - 1 },
      () => Dht.open({ host, bootstrap: [boot], queryTimeoutMs: 500, ...options }),
    ),
  );
  const all = [first, ...rest];
  await within(20_000, "every node joined", Promise.all(all.map((d) => d.bootstrapped)));
  return all;
}

Deno.test("DHT: 40 nodes on 127.0.0.1 form a DHT; an announced peer is found by other nodes", async () => {
  const nodes = await startSwarm(40);
  try {
    // every node knows some others (same IP, different ports: allowed on loopback)
    for (const d of nodes.slice(1)) {
      assert.ok(d.table.size >= 1, "a node joined with an empty table");
    }
    // a second round of joining lets late nodes be found
    await Promise.all(nodes.map((d) => d.findNode(d.id)));
    const sizes = nodes.map((d) => d.table.size);
    assert.ok(sizes.reduce((a, b) => a + b) / nodes.length >= K, `average table size: ${sizes}`);
    const infoHash = crypto.getRandomValues(new Uint8Array(20));
    const before = await nodes[7].lookup(infoHash, { announcePort: 5555 });
    assert.deepEqual(before, []);
    // the peer is stored on the nodes closest to the info hash, and found from anywhere
    for (const searcher of [nodes[20], nodes[33], nodes[0]]) {
      const streamed: string[] = [];
      const found = await within(
        10_000,
        "lookup",
        searcher.lookup(infoHash, {
          onPeers: (p) => streamed.push(...p.map((x) => `${x.host}:${x.port}`)),
        }),
      );
      assert.deepEqual(found, [{ host: "127.0.0.1", port: 5555 }]);
      assert.deepEqual(streamed, ["127.0.0.1:5555"]);
    }
    const stored = nodes.reduce((a, d) => a + d.stats().storedPeers, 0);
    assert.ok(stored >= 1 && stored <= K, `stored on ${stored} nodes`);
  } finally {
    await Promise.all(nodes.map((d) => d.close()));
  }
});

Deno.test("DHT (BEP 32): nodes on ::1 exchange nodes6 and IPv6 peers", async () => {
  const nodes = await startSwarm(8, { family: 6 });
  try {
    const infoHash = crypto.getRandomValues(new Uint8Array(20));
    await nodes[3].lookup(infoHash, { announcePort: 7777 });
    const found = await nodes[6].lookup(infoHash);
    assert.deepEqual(found, [{ host: "::1", port: 7777 }]);
  } finally {
    await Promise.all(nodes.map((d) => d.close()));
  }
});

Deno.test("DHT: the saved state restores the id and rejoins without bootstrap nodes", async () => {
  const nodes = await startSwarm(6);
  let restarted: Dht | undefined;
  try {
    const state = nodes[5].state();
    assert.ok(state.nodes.length >= 1);
    const id = nodes[5].id;
    await nodes[5].close();
    restarted = await Dht.open({ host: "127.0.0.1", state, bootstrap: [], queryTimeoutMs: 500 });
    await within(5000, "rejoined", restarted.bootstrapped);
    assert.deepEqual(restarted.id, id);
    assert.ok(restarted.table.size >= 1, "no node known after restoring");
    // JSON round trip is what the CLI saves
    assert.deepEqual(JSON.parse(JSON.stringify(state)), state);
  } finally {
    await restarted?.close();
    await Promise.all(nodes.map((d) => d.close()));
  }
});

Deno.test("DHT (BEP 43): a read-only node looks up but answers nothing and stays out of tables", async () => {
  const nodes = await startSwarm(5);
  const ro = await Dht.open({
    host: "127.0.0.1",
    readOnly: true,
    bootstrap: [`127.0.0.1:${nodes[0].port}`],
    queryTimeoutMs: 300,
  });
  try {
    await within(5000, "read-only joined", ro.bootstrapped);
    assert.ok(ro.table.size >= 1);
    for (const d of nodes) assert.equal(d.table.get("127.0.0.1", ro.port), undefined);
    assert.equal(await nodes[1].ping("127.0.0.1", ro.port), false);
    const ih = crypto.getRandomValues(new Uint8Array(20));
    await nodes[2].lookup(ih, { announcePort: 4242 });
    assert.deepEqual(await ro.lookup(ih), [{ host: "127.0.0.1", port: 4242 }]);
  } finally {
    await ro.close();
    await Promise.all(nodes.map((d) => d.close()));
  }
});

/** Sends raw packets to a node and collects what comes back. */
async function rawClient(): Promise<{ sock: UdpSocket; replies: Uint8Array[] }> {
  const sock = await openUdpSocket({ host: "127.0.0.1" });
  const replies: Uint8Array[] = [];
  sock.onMessage((d) => replies.push(d.data.slice()));
  return { sock, replies };
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("DHT server: bad tokens and bad arguments get error 203, unknown methods 204", async () => {
  const dht = await Dht.open({ host: "127.0.0.1", bootstrap: [] });
  const { sock, replies } = await rawClient();
  try {
    const id = new Uint8Array(20).fill(9);
    const ih = new Uint8Array(20).fill(7);
    const send = (m: Record<string, unknown>) =>
      sock.send(encode(m as Parameters<typeof encode>[0]), "127.0.0.1", dht.port);
    await send({
      t: "a1",
      y: "q",
      q: "announce_peer",
      a: { id, info_hash: ih, port: 1, token: "nope" },
    });
    await send({ t: "a2", y: "q", q: "find_node", a: { id, target: "short" } });
    await send({ t: "a3", y: "q", q: "fly", a: { id } });
    await send({ t: "a4", y: "q", q: "get_peers", a: { id, info_hash: ih } });
    await waitFor("4 replies", () => replies.length >= 4);
    const byT = new Map(replies.map((r) => {
      const m = decodeKrpc(r);
      return [new TextDecoder().decode(m.t), m];
    }));
    const e1 = byT.get("a1")!, e2 = byT.get("a2")!, e3 = byT.get("a3")!, r4 = byT.get("a4")!;
    assert.ok(e1.y === "e" && e1.code === 203 && /token/.test(e1.message));
    assert.ok(e2.y === "e" && e2.code === 203);
    assert.ok(e3.y === "e" && e3.code === 204);
    assert.ok(r4.y === "r" && r4.r["token"] instanceof Uint8Array);
    // the real token is accepted, and the peer is then returned
    const token = r4.y === "r" ? r4.r["token"] as Uint8Array : new Uint8Array(0);
    await send({
      t: "a5",
      y: "q",
      q: "announce_peer",
      a: { id, info_hash: ih, port: 4000, token },
    });
    await waitFor("the announce's reply", () => replies.length >= 5);
    await send({ t: "a6", y: "q", q: "get_peers", a: { id, info_hash: ih } });
    await waitFor("6 replies", () => replies.length >= 6);
    const r6 = decodeKrpc(replies[5]);
    assert.equal(new TextDecoder().decode(r6.t), "a6");
    assert.ok(r6.y === "r");
    assert.deepEqual(r6.r["values"], [new Uint8Array([127, 0, 0, 1, 0x0f, 0xa0])]);
  } finally {
    sock.close();
    await dht.close();
  }
});

Deno.test("DHT under attack: garbage, floods and node spam are dropped, memory stays bounded", async () => {
  const dht = await Dht.open({
    host: "127.0.0.1",
    bootstrap: [],
    maxQueriesPerSecondPerAddress: 20,
    maxTorrents: 50,
    maxPeersPerTorrent: 20,
  });
  const attackers = await Promise.all(Array.from({ length: 8 }, () => rawClient()));
  const honest = await Dht.open({ host: "127.0.0.1", bootstrap: [`127.0.0.1:${dht.port}`] });
  try {
    await honest.bootstrapped;
    const a = attackers[0];
    // garbage of every kind
    const garbage = [
      new Uint8Array(0),
      enc.encode("d"),
      enc.encode("d1:t99999999999:x"),
      enc.encode(`${"l".repeat(5000)}`),
      new Uint8Array(MAX_KRPC_PACKET + 100).fill(0x64),
      enc.encode("d1:t2:aa1:y1:r1:rd2:id20:abcdefghij0123456789ee"), // an answer to nothing
    ];
    for (const g of garbage) await a.sock.send(g, "127.0.0.1", dht.port);
    // a flood of queries from one address: a burst of 40 is answered, then 20 a second; the rest is dropped
    const id = new Uint8Array(20).fill(1);
    const floodStart = performance.now();
    for (let i = 0; i < 500; i++) {
      await a.sock.send(encode({ t: "fl", y: "q", q: "ping", a: { id } }), "127.0.0.1", dht.port);
    }
    // the kernel may drop part of the flood (a full receive buffer); of what arrives, only the burst is answered
    await waitFor("the flood answered", () => a.replies.length >= 40);
    await waitFor("the flood drained", () => dht.stats().dropped >= 100);
    // every reply counted was sent after the flood started: at most the burst plus the refill since
    const answered = a.replies.length, elapsed = (performance.now() - floodStart) / 1000;
    assert.ok(
      answered <= 40 + Math.ceil(20 * elapsed) + 1,
      `answered ${answered} of a flood in ${elapsed.toFixed(2)} s`,
    );
    // announces from seven more addresses, one address at a time (so the kernel drops none): each gets a token,
    // then announces 15 peers of one shared torrent and 15 torrents of its own; the store stays within its caps
    const shared = new Uint8Array(20).fill(0x5a);
    for (const [i, at] of attackers.slice(1).entries()) {
      const from = new Uint8Array(20).fill(i + 2);
      await at.sock.send(
        encode({ t: "gp", y: "q", q: "get_peers", a: { id: from, info_hash: shared } }),
        "127.0.0.1",
        dht.port,
      );
      await waitFor(`attacker ${i + 1}'s token`, () => at.replies.length >= 1);
      const m = decodeKrpc(at.replies[0]);
      assert.ok(
        m.y === "r" && m.r["token"] instanceof Uint8Array,
        `attacker ${i + 1} got no token`,
      );
      const token = m.r["token"] as Uint8Array;
      for (let k = 0; k < 30; k++) {
        const ih = k < 15 ? shared : crypto.getRandomValues(new Uint8Array(20));
        await at.sock.send(
          encode({
            t: "an",
            y: "q",
            q: "announce_peer",
            a: { id: from, info_hash: ih, port: 1000 + 100 * i + k, token },
          }),
          "127.0.0.1",
          dht.port,
        );
      }
      await waitFor(`attacker ${i + 1}'s announces answered`, () => at.replies.length >= 31);
      const answers = at.replies.slice(1).map((r) => decodeKrpc(r));
      // accepted until the store is full; then refused with a reason, never dropped silently
      assert.ok(answers.every((r) => r.y === "r" || (r.y === "e" && /full/.test(r.message))));
    }
    // the honest node still gets answers
    assert.equal(await honest.ping("127.0.0.1", dht.port), true);
    const s = dht.stats();
    assert.ok(s.dropped >= 100, `dropped ${s.dropped}`);
    // 106 torrents were announced: the store took 50 and no more
    assert.equal(s.torrents, 50);
    // the shared torrent, announced from 105 ports, keeps 20 of them; every other torrent one
    assert.equal(s.storedPeers, 20 + 49);
    assert.ok(s.nodes <= 160 * K);
  } finally {
    for (const x of attackers) x.sock.close();
    await honest.close();
    await dht.close();
  }
});
