// The DHT feeding the Client: magnet links whose only peer is learnt from the DHT, private torrents that never
// touch it, and the command line of the "done when" (a standalone node, a seeder, a magnet leecher).

import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { Dht } from "../src/dht/dht.ts";
import { formatMagnet } from "../src/magnet.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { openUdpSocket } from "../src/udp.ts";
import { freePort, needs, type Proc, spawn } from "./_lab.ts";
import { makeTorrent, payload, sameFiles, within } from "./_swarm.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const LT_DHT = new URL("./peers/lt_dht.py", import.meta.url).pathname;
const FILES = [{ path: "a.bin", length: 300_000 }, { path: "sub/b.bin", length: 70_000 }];

Deno.test("a magnet link with only an info hash finds its peer through the DHT and downloads", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-dht-" });
  await using router = await Dht.open({ host: "127.0.0.1", bootstrap: [], queryTimeoutMs: 500 });
  const bootstrap = [`127.0.0.1:${router.port}`];
  try {
    const { meta } = await makeTorrent(join(root, "seed"), "t", FILES, { pieceLength: 16384 });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
      dht: { bootstrap, queryTimeoutMs: 500 },
    });
    assert.ok(seeder.dht && seeder.dht.port > 0);
    // nothing but the info hash: no trackers, no x.pe
    const magnet = formatMagnet({ infoHash: meta.infoHash });
    await using leecher = await Client.open({
      magnet,
      basedir: join(root, "leech"),
      host: "127.0.0.1",
      resumeFile: false,
      metadataTimeoutMs: 60_000,
      dht: { bootstrap, queryTimeoutMs: 500 },
    });
    assert.equal(leecher.infohashHex, meta.infoHashHex);
    await within(60_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "leech", "t"), FILES));
    // the router stores both peers: the seeder, and the leecher that announced too
    assert.ok(router.stats().storedPeers >= 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a private torrent (BEP 27) never touches the DHT, even when the client is given a node", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-dht-private-" });
  await using router = await Dht.open({ host: "127.0.0.1", bootstrap: [], queryTimeoutMs: 500 });
  await using node = await Dht.open({
    host: "127.0.0.1",
    bootstrap: [`127.0.0.1:${router.port}`],
    queryTimeoutMs: 500,
  });
  await node.bootstrapped;
  let lookups = 0;
  const lookup = node.lookup.bind(node);
  node.lookup = (...args) => {
    lookups++;
    return lookup(...args);
  };
  try {
    await Deno.mkdir(join(root, "p"), { recursive: true });
    await Deno.writeFile(join(root, "p", "x.bin"), payload(50_000));
    const meta = await parseMetainfo(
      await createTorrent(join(root, "p", "x.bin"), { pieceLength: 16384, private: true }),
    );
    const before = node.stats().queriesOut;
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "p"),
      host: "127.0.0.1",
      resumeFile: false,
      trackers: false,
      dht: node,
    });
    await seeder.done;
    // a peer that connects is told nothing about a DHT (no reserved bit, no PORT message)
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
    try {
      const hs = new Uint8Array(68);
      hs[0] = 19;
      hs.set(new TextEncoder().encode("BitTorrent protocol"), 1);
      hs[27] = 0x01; // we support the DHT
      hs.set(meta.infoHash, 28);
      hs.set(payload(20, 9), 48);
      await conn.write(hs);
      const got = new Uint8Array(68);
      let n = 0;
      while (n < 68) {
        const r = await within(5000, "the handshake", conn.read(got.subarray(n)));
        if (r === null) break;
        n += r;
      }
      assert.equal(n, 68);
      assert.equal(got[27] & 0x01, 0, "DHT bit set for a private torrent");
    } finally {
      conn.close();
    }
    assert.equal(lookups, 0);
    assert.equal(node.stats().queriesOut, before);
    assert.equal(router.stats().torrents, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

async function freeUdpPort(): Promise<number> {
  const s = await openUdpSocket({ host: "127.0.0.1" });
  const port = s.port;
  s.close();
  return port;
}

Deno.test("CLI: `dht -p PORT` as the only bootstrap, a seeder announcing through it, a magnet leecher completes", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-dht-cli-" });
  const dhtPort = await freeUdpPort();
  const run = (args: string[]) =>
    spawn(Deno.execPath(), ["run", "-A", MAIN, ...args], 0, {
      env: { NO_COLOR: "1", XDG_STATE_HOME: join(root, "state") },
    });
  const node = run(["dht", "-p", String(dhtPort), "--host", "127.0.0.1", "-q"]);
  let seeder: ReturnType<typeof run> | undefined;
  let leecher: ReturnType<typeof run> | undefined;
  await using probe = await Dht.open({ host: "127.0.0.1", bootstrap: [], queryTimeoutMs: 500 });
  try {
    const { bytes, meta } = await makeTorrent(join(root, "seed"), "t", FILES, {
      pieceLength: 16384,
    });
    await Deno.writeFile(join(root, "t.torrent"), bytes);
    // the node is up once it answers a ping (bounded: 20 tries of 500 ms)
    let up = false;
    for (let i = 0; i < 20 && !up; i++) up = await probe.ping("127.0.0.1", dhtPort);
    assert.ok(up, `the DHT node did not answer: ${node.stderr()}`);
    const boot = `127.0.0.1:${dhtPort}`;
    seeder = run([
      "seed",
      join(root, "t.torrent"),
      "-o",
      join(root, "seed"),
      "-p",
      "0",
      "--dht-bootstrap",
      boot,
      "--dht-state",
      join(root, "seeder-dht.json"),
      "-q",
    ]);
    leecher = run([
      `magnet:?xt=urn:btih:${meta.infoHashHex}`,
      "-o",
      join(root, "leech"),
      "-p",
      "0",
      "--dht-bootstrap",
      boot,
      "--dht-state",
      join(root, "leecher-dht.json"),
      "-q",
    ]);
    const code = await within(90_000, "the magnet download", leecher.exited);
    assert.equal(code, 0, leecher.stderr());
    assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "leech", "t"), FILES));
    // the leecher saved its routing table (it knows the node and the seeder's node)
    const saved = JSON.parse(await Deno.readTextFile(join(root, "leecher-dht.json")));
    assert.match(saved.id, /^[0-9a-f]{40}$/);
    assert.ok(saved.nodes.some((n: { port: number }) => n.port === dhtPort), JSON.stringify(saved));
  } finally {
    await leecher?.stop();
    await seeder?.stop();
    await node.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name:
    "libtorrent's DHT node: it announces through Seedbed's node, answers our lookups, and we download from it",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-dht-lt-" });
    await using router = await Dht.open({ host: "127.0.0.1", bootstrap: [], queryTimeoutMs: 1000 });
    let lt: Proc | undefined;
    try {
      const { bytes, meta } = await makeTorrent(join(root, "seed"), "t", FILES, {
        pieceLength: 16384,
      });
      await Deno.writeFile(join(root, "t.torrent"), bytes);
      const port = freePort();
      lt = spawn(
        "/usr/bin/python3",
        [
          LT_DHT,
          join(root, "t.torrent"),
          join(root, "seed"),
          String(port),
          `127.0.0.1:${router.port}`,
        ],
        port,
      );
      await lt.line("ready", 60_000);
      // libtorrent joined through our node and announced the torrent to it (it got a token from get_peers)
      await within(
        30_000,
        "libtorrent's announce",
        (async () => {
          for (let i = 0; i < 300 && router.stats().storedPeers === 0; i++) {
            await new Promise((r) => setTimeout(r, 100));
          }
        })(),
      );
      assert.ok(router.stats().storedPeers >= 1, "libtorrent never announced to our node");
      assert.ok(
        router.table.get("127.0.0.1", port),
        "libtorrent's node is not in our routing table",
      );
      // a second Seedbed node looks the torrent up: it asks our router and libtorrent's node
      await using searcher = await Dht.open({
        host: "127.0.0.1",
        bootstrap: [`127.0.0.1:${router.port}`],
        queryTimeoutMs: 1000,
      });
      await searcher.bootstrapped;
      const ping = await searcher.ping("127.0.0.1", port);
      assert.ok(ping, "libtorrent's node does not answer our ping");
      const found = await searcher.lookup(meta.infoHash);
      assert.ok(found.some((p) => p.port === port), `found ${JSON.stringify(found)}`);
      // and a magnet download with nothing but the info hash gets the files from libtorrent
      await using leecher = await Client.open({
        magnet: formatMagnet({ infoHash: meta.infoHash }),
        basedir: join(root, "leech"),
        host: "127.0.0.1",
        resumeFile: false,
        metadataTimeoutMs: 60_000,
        dht: searcher,
      });
      await within(60_000, "the download from libtorrent", leecher.done);
      assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "leech", "t"), FILES));
    } finally {
      await lt?.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
