// Protocol encryption through the real Client and Session, Seedbed on both ends over loopback sockets: each
// policy's handshakes in and out, RC4 when one side insists, the plain fallback and its memory, refusals with
// one clear line and nothing left hanging, and what PeerInfo says about the other end.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client, type ClientOptions } from "../src/client.ts";
import { formatMagnet } from "../src/magnet.ts";
import type { PeerInfo } from "../src/swarm/types.ts";
import { CLIENT_NAME } from "../src/version.ts";
import { makeTorrent, nextEvent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const PIECE = 32 * 1024;
const FILES: SpecFile[] = [{ path: "a.bin", length: 5 * PIECE + 123 }, {
  path: "b.bin",
  length: 777,
}];

type Fail = { address: string; incoming: boolean; reason: string };

async function setup() {
  const root = await Deno.makeTempDir({ prefix: "seedbed-enc-" });
  const seedDir = join(root, "seed");
  const { meta } = await makeTorrent(seedDir, "t", FILES, { pieceLength: PIECE });
  return { root, seedDir, meta, cleanup: () => Deno.remove(root, { recursive: true }) };
}

function collect(client: Client, type: "peerfail"): Fail[] {
  const out: Fail[] = [];
  client.addEventListener(type, (e) => out.push(e.detail));
  return out;
}

/** The connected peer at `port` as `client` sees it, once its handshakes are done. */
async function peerAt(client: Client, port: number, what: string): Promise<PeerInfo> {
  const byPort = (a: string) => Number(a.slice(a.lastIndexOf(":") + 1)) === port;
  const ready = () => client.peers.find((p) => p.peerId && byPort(p.address));
  if (!ready()) await within(10_000, what, nextEvent(client, "peer", () => ready() !== undefined));
  return ready()!;
}

/** The peer that dialled `client` (an incoming connection), once its handshakes are done. */
async function incomingPeer(client: Client, what: string): Promise<PeerInfo> {
  const ready = () => client.peers.find((p) => p.peerId && p.incoming);
  if (!ready()) await within(10_000, what, nextEvent(client, "peer", () => ready() !== undefined));
  return ready()!;
}

// TCP only: each policy's attempts are counted over one transport (uTP first, then TCP, is utp_engine_test.ts's)
const base = { host: "127.0.0.1", resumeFile: false as const, tickMs: 100, utp: false };

for (
  const c of [
    {
      name: "prefer on both sides: MSE with a plaintext payload",
      leech: {},
      seed: {},
      want: "plaintext-header",
    },
    { name: "rc4Only on the dialling side: RC4", leech: { rc4Only: true }, seed: {}, want: "rc4" },
    { name: "rc4Only on the accepting side: RC4", leech: {}, seed: { rc4Only: true }, want: "rc4" },
    {
      name: "require on both sides, rc4Only on one: RC4",
      leech: { encryption: "require" },
      seed: { encryption: "require", rc4Only: true },
      want: "rc4",
    },
    {
      name: "allow dials plain, and the prefer side takes it",
      leech: { encryption: "allow" },
      seed: {},
      want: false,
    },
  ] as {
    name: string;
    leech: Partial<ClientOptions>;
    seed: Partial<ClientOptions>;
    want: PeerInfo["encrypted"];
  }[]
) {
  Deno.test(`${c.name}; both ends say so, name each other, and the download is byte-exact`, async () => {
    const { root, seedDir, meta, cleanup } = await setup();
    try {
      await using seeder = await Client.open({
        ...base,
        ...c.seed,
        metainfo: meta,
        basedir: seedDir,
      });
      // paused: the connection stays up to be looked at, then the download runs over it
      await using leecher = await Client.open({
        ...base,
        ...c.leech,
        metainfo: meta,
        basedir: join(root, "leech"),
        state: "paused",
        peers: [{ host: "127.0.0.1", port: seeder.port }],
      });
      const ours = await peerAt(leecher, seeder.port, "the leecher's connection");
      const theirs = await incomingPeer(seeder, "the seeder's connection");
      for (const p of [ours, theirs]) {
        assert.equal(p.encrypted, c.want);
        assert.equal(p.client, CLIENT_NAME); // from the peer id ("-SE0010-") or the extension handshake
        assert.equal(p.fast, true);
        assert.equal(p.transport, "tcp");
      }
      assert.equal(ours.incoming, false);
      assert.equal(theirs.incoming, true);
      await leecher.start();
      await within(20_000, "the download", leecher.done);
      assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), FILES));
    } finally {
      await cleanup();
    }
  });
}

Deno.test("prefer dials a peer with encryption disabled: MSE refused once, the plain retry works and is remembered", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({
      ...base,
      metainfo: meta,
      basedir: seedDir,
      encryption: "disable",
    });
    const refused = collect(seeder, "peerfail");
    await using leecher = await Client.open({
      ...base,
      metainfo: meta,
      basedir: join(root, "leech"),
      state: "paused",
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    const dialFailures = collect(leecher, "peerfail");
    const first = await peerAt(leecher, seeder.port, "the plain retry");
    assert.equal(first.encrypted, false);
    assert.equal(refused.length, 1, JSON.stringify(refused));
    assert.match(refused[0].reason, /encrypted handshakes are disabled/);
    assert.equal(refused[0].incoming, true);
    assert.deepEqual(dialFailures, [], "the fallback worked: no failure to report");
    // the seeder drops everyone and comes back: the leecher dials again, plain at once
    const closed = nextEvent(leecher, "peerclose");
    await seeder.stop();
    await within(10_000, "the connection to close", closed);
    await seeder.start();
    const again = nextEvent<{ address: string }>(leecher, "peer");
    await within(20_000, "the second connection", again);
    assert.equal((await peerAt(leecher, seeder.port, "the second connection")).encrypted, false);
    assert.equal(refused.length, 1, "no second MSE attempt: " + JSON.stringify(refused));
    await leecher.start();
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("require dials a peer with encryption disabled: two MSE attempts refused, never plain, one clear line each side", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({
      ...base,
      metainfo: meta,
      basedir: seedDir,
      encryption: "disable",
    });
    const refused: Fail[] = [];
    const twice = new Promise<void>((resolve) =>
      seeder.addEventListener("peerfail", (e) => {
        if (refused.push(e.detail) === 2) resolve();
      })
    );
    await using leecher = await Client.open({
      ...base,
      metainfo: meta,
      basedir: join(root, "leech"),
      encryption: "require",
    });
    const failed = nextEvent<Fail>(leecher, "peerfail");
    leecher.addPeer("127.0.0.1", seeder.port);
    const [f] = await within(10_000, "the dial to fail", Promise.all([failed, twice]));
    assert.equal(f.address, `127.0.0.1:${seeder.port}`);
    assert.equal(f.incoming, false);
    assert.match(
      f.reason,
      /^mse: .+; mse-no-ia: .+; encryption is required, so no plain BitTorrent handshake was tried$/,
    );
    assert.deepEqual(refused.map((r) => r.reason), [
      "not a BitTorrent handshake (encrypted handshakes are disabled)",
      "not a BitTorrent handshake (encrypted handshakes are disabled)",
    ]);
    assert.deepEqual(leecher.peers, []);
    assert.deepEqual(seeder.peers, []);
  } finally {
    await cleanup();
  }
});

Deno.test("a peer with encryption disabled dials one that requires it: refused with one clear line each side", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({
      ...base,
      metainfo: meta,
      basedir: seedDir,
      encryption: "require",
    });
    const refused = nextEvent<Fail>(seeder, "peerfail");
    await using leecher = await Client.open({
      ...base,
      metainfo: meta,
      basedir: join(root, "leech"),
      encryption: "disable",
    });
    const failed = nextEvent<Fail>(leecher, "peerfail");
    leecher.addPeer("127.0.0.1", seeder.port);
    const [r, f] = await within(10_000, "both refusals", Promise.all([refused, failed]));
    assert.equal(r.reason, "plain BitTorrent handshake refused: encryption is required");
    assert.equal(r.incoming, true);
    assert.match(f.reason, /^plain: connection closed during handshake$/);
    assert.deepEqual(leecher.peers, []);
  } finally {
    await cleanup();
  }
});

Deno.test("a magnet link under require: the metadata comes over MSE too (a plain handshake would be refused)", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({
      ...base,
      metainfo: meta,
      basedir: seedDir,
      encryption: "require",
    });
    const refused = collect(seeder, "peerfail");
    await using leecher = await Client.open({
      ...base,
      magnet: formatMagnet({
        infoHash: meta.infoHash,
        peers: [{ host: "127.0.0.1", port: seeder.port }],
      }),
      basedir: join(root, "leech"),
      encryption: "require",
    });
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), FILES));
    assert.deepEqual(refused, []);
  } finally {
    await cleanup();
  }
});

Deno.test("a magnet link under require never sends a plain handshake: a peer with encryption disabled gives no metadata", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await Client.open({
      ...base,
      metainfo: meta,
      basedir: seedDir,
      encryption: "disable",
    });
    const refused = collect(seeder, "peerfail");
    const leecher = new Client({
      ...base,
      magnet: formatMagnet({
        infoHash: meta.infoHash,
        peers: [{ host: "127.0.0.1", port: seeder.port }],
      }),
      basedir: join(root, "leech"),
      encryption: "require",
      metadataTimeoutMs: 3000,
    });
    await assert.rejects(
      within(10_000, "the metadata fetch to give up", leecher.ready),
      /could not fetch the torrent's metadata/,
    );
    await leecher.close();
    assert.ok(refused.length >= 1);
    assert.ok(
      refused.every((r) => /encrypted handshakes are disabled/.test(r.reason)),
      JSON.stringify(refused),
    );
    assert.deepEqual(seeder.peers, [], "no plain connection was ever made");
  } finally {
    await cleanup();
  }
});
