// IPv6 peers end to end through the real Client: the dual-stack listener takes IPv4 and IPv6 connections (IPv4
// shown as IPv4), and IPv6 addresses from every source are dialled — the user's, a tracker's peers6 (BEP 7), PEX
// added6 (BEP 11), a magnet link's x.pe and the DHT (BEP 32). Everything on ::1 and 127.0.0.1.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { Dht } from "../src/dht/dht.ts";
import { formatMagnet } from "../src/magnet.ts";
import { TrackerServer } from "../src/tracker/server.ts";
import { makeTorrent, nextEvent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const PIECE = 32 * 1024;
const FILES: SpecFile[] = [{ path: "a.bin", length: 4 * PIECE + 99 }];

async function setup(announce?: string) {
  const root = await Deno.makeTempDir({ prefix: "seedbed-ipv6-" });
  const seedDir = join(root, "seed");
  const { meta } = await makeTorrent(seedDir, "t", FILES, {
    pieceLength: PIECE,
    ...(announce ? { announce: [[announce]] } : {}),
  });
  return { root, seedDir, meta, cleanup: () => Deno.remove(root, { recursive: true }) };
}

const v6 = { host: "::1", resumeFile: false as const, tickMs: 50 };

Deno.test("the default listener takes IPv4 and IPv6 peers; an IPv4 peer is shown as IPv4, not ::ffff:", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    // no host: every IPv6 and IPv4 address ("::", dual-stack)
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: seedDir,
      resumeFile: false,
      tickMs: 50,
    });
    const leech = (host: string) =>
      Client.open({
        metainfo: meta,
        basedir: join(root, host === "::1" ? "six" : "four"),
        host,
        resumeFile: false,
        state: "paused",
        peers: [{ host, port: seeder.port }],
      });
    await using four = await leech("127.0.0.1");
    await using six = await leech("::1");
    // each end's handshakes done (the seeder may be through before a leecher has read its MSE reply)
    const toSeeder = (c: Client, host: string) => () =>
      c.peers.some((p) => p.peerId && p.address === `${host}:${seeder.port}`);
    await Promise.all(
      ([
        [seeder, () => seeder.peers.filter((p) => p.peerId && p.incoming).length >= 2],
        [four, toSeeder(four, "127.0.0.1")],
        [six, toSeeder(six, "[::1]")],
      ] as [Client, () => boolean][]).map(async ([c, ready]) => {
        if (!ready()) await within(10_000, "the connections", nextEvent(c, "peer", ready));
      }),
    );
    // the seeder's two incoming connections: one over each family, the IPv4 one without ::ffff:
    const addresses = seeder.peers.filter((p) => p.incoming)
      .map((p) => p.address.slice(0, p.address.lastIndexOf(":"))).sort();
    assert.deepEqual(addresses, ["127.0.0.1", "[::1]"]);
    await Promise.all([four.start(), six.start()]);
    await within(20_000, "both downloads", Promise.all([four.done, six.done]));
    for (const d of ["four", "six"]) {
      assert.ok(await sameFiles(join(seedDir, "t"), join(root, d, "t"), FILES), d);
    }
  } finally {
    await cleanup();
  }
});

Deno.test("a tracker's peers6 (BEP 7): an IPv6-only leecher finds an IPv6-only seeder and downloads", async () => {
  await using tracker = new TrackerServer({ hostname: "::1" });
  const { root, seedDir, meta, cleanup } = await setup(tracker.url);
  try {
    await using seeder = await Client.open({ ...v6, metainfo: meta, basedir: seedDir });
    const listed = nextEvent(seeder, "tracker", (d: { type: string }) => d.type === "announce");
    await within(10_000, "the seeder's announce", listed);
    await using leecher = await Client.open({ ...v6, metainfo: meta, basedir: join(root, "l") });
    const met = nextEvent<{ address: string }>(leecher, "peer");
    assert.equal((await within(10_000, "the connection", met)).address, `[::1]:${seeder.port}`);
    assert.equal(leecher.peers[0]?.source, "tracker");
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "l", "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("PEX added6 (BEP 11): a leecher that knows only another leecher learns the seeder's IPv6 address", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({ ...v6, metainfo: meta, basedir: seedDir });
    await using b = await Client.open({
      ...v6,
      metainfo: meta,
      basedir: join(root, "b"),
      state: "paused",
    });
    const bMet = nextEvent(b, "peer");
    b.addPeer("::1", seeder.port);
    await within(10_000, "b to connect to the seeder", bMet);
    await using c = await Client.open({
      ...v6,
      metainfo: meta,
      basedir: join(root, "c"),
      state: "paused",
    });
    c.addPeer("::1", b.port);
    // whoever dialled (both may, at once), the address came from b's ut_pex message (added6); each side's
    // view is checked once its own handshakes are done
    const sameId = (a: Uint8Array | undefined, b: Uint8Array) => a?.every((x, i) => x === b[i]);
    const cDialled = () =>
      c.peers.some((p) =>
        sameId(p.peerId, seeder.peerid) && !p.incoming && p.source === "pex" &&
        p.address === `[::1]:${seeder.port}`
      );
    const seederDialled = () =>
      seeder.peers.some((p) =>
        sameId(p.peerId, c.peerid) && !p.incoming && p.source === "pex" &&
        p.address === `[::1]:${c.port}`
      );
    const met = () => cDialled() || seederDialled();
    if (!met()) {
      await within(
        10_000,
        "c and the seeder to hear of each other through b and connect",
        Promise.race([nextEvent(c, "peer", met), nextEvent(seeder, "peer", met)]),
      );
    }
    await c.start();
    await within(20_000, "c's download", c.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "c", "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("a magnet link's x.pe=[::1]:port: metadata and data over IPv6", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({ ...v6, metainfo: meta, basedir: seedDir });
    const magnet = formatMagnet({
      infoHash: meta.infoHash,
      peers: [{ host: "::1", port: seeder.port }],
    });
    assert.match(magnet, /x\.pe=%5B%3A%3A1%5D%3A\d+/);
    await using leecher = await Client.open({
      ...v6,
      magnet,
      basedir: join(root, "l"),
      metadataTimeoutMs: 15_000,
    });
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "l", "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("the DHT on ::1 (BEP 32): a magnet link with only an info hash finds an IPv6 seeder and downloads", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  await using router = await Dht.open({
    host: "::1",
    family: 6,
    bootstrap: [],
    queryTimeoutMs: 500,
  });
  const dht = { bootstrap: [`[::1]:${router.port}`], queryTimeoutMs: 500 };
  try {
    await using seeder = await Client.open({ ...v6, metainfo: meta, basedir: seedDir, dht });
    await using leecher = await Client.open({
      ...v6,
      magnet: formatMagnet({ infoHash: meta.infoHash }), // no x.pe, no tracker
      basedir: join(root, "l"),
      metadataTimeoutMs: 30_000,
      state: "paused",
      dht,
    });
    // whichever side dialled (each looks the torrent up in the DHT), it dialled an IPv6 address the DHT gave
    const sameId = (x: Uint8Array | undefined, y: Uint8Array) => x?.every((v, i) => v === y[i]);
    const viaDht = () =>
      leecher.peers.some((p) =>
        sameId(p.peerId, seeder.peerid) && !p.incoming && p.source === "dht" &&
        p.address === `[::1]:${seeder.port}`
      ) ||
      seeder.peers.some((p) =>
        sameId(p.peerId, leecher.peerid) && !p.incoming && p.source === "dht" &&
        p.address === `[::1]:${leecher.port}`
      );
    if (!viaDht()) {
      await within(
        20_000,
        "a connection over an address from the DHT",
        Promise.race([nextEvent(leecher, "peer", viaDht), nextEvent(seeder, "peer", viaDht)]),
      );
    }
    await leecher.start();
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "l", "t"), FILES));
  } finally {
    await cleanup();
  }
});
