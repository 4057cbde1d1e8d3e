// uTP (BEP 29) against Transmission 3 (libutp; "utp-enabled" on), both directions, through the real Client: we
// dial it (Transmission never dials loopback peers), over uTP first. Each transfer is compared byte for byte and
// each end says the connection is uTP (ours: PeerInfo.transport; Transmission's RPC: isUTP). libtorrent's part
// (uTP only on its side, both directions, Client, Session and CLI) is in tests/utp_engine_test.ts, which
// `deno task test` runs too. Run: deno task test:interop
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client, type ClientOptions } from "../../src/client.ts";
import { REQUIRE_PEERS } from "../_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "../_swarm.ts";
import { available, ourView, startClient, theirView } from "./_clients.ts";

const FILES: SpecFile[] = [
  { path: "video.bin", length: 2 * 1024 * 1024 + 4321 },
  { path: "docs/readme.txt", length: 999 },
];
const PIECE = 64 * 1024;

function skip(): boolean {
  if (available.transmission || REQUIRE_PEERS) return false;
  console.warn(
    "skipping: transmission not installed (CI sets SEEDBED_REQUIRE_PEERS=1 and fails instead)",
  );
  return true;
}

async function scratch() {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-tr-" });
  const seedDir = join(root, "seed");
  const { bytes } = await makeTorrent(seedDir, "pack", FILES, { pieceLength: PIECE });
  const torrent = join(root, "pack.torrent");
  await Deno.writeFile(torrent, bytes);
  return {
    root,
    seedDir,
    torrent,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

// utpFirst "always": Transmission takes TCP too, and loopback peers are otherwise dialled over TCP first
const base: Partial<ClientOptions> = {
  host: "127.0.0.1",
  resumeFile: false,
  trackers: false,
  utpFirst: "always",
};

Deno.test({
  name: "uTP: Seedbed downloads from Transmission over uTP; both ends say uTP",
  ignore: skip(),
  async fn() {
    await using s = await scratch();
    await using peer = await startClient("transmission", "seed", s.torrent, s.seedDir, [], {
      utp: true,
    });
    await using client = await Client.open({
      ...base,
      path: s.torrent,
      basedir: join(s.root, "ours"),
      downloadLimit: 512 * 1024, // the connection lives long enough for Transmission's RPC to show it
      peers: [{ host: "127.0.0.1", port: peer.port }],
    });
    const ours = await ourView(client);
    assert.equal(ours.transport, "utp");
    assert.match(ours.client, /^Transmission[ /]\d/);
    const theirs = await theirView(peer);
    assert.ok(theirs.every((p) => p.utp === true), JSON.stringify(theirs));
    await within(90_000, "the download from Transmission", client.done);
    assert.ok(await sameFiles(join(s.seedDir, "pack"), join(s.root, "ours", "pack"), FILES));
  },
});

Deno.test({
  name: "uTP: Transmission downloads from Seedbed over uTP; both ends say uTP",
  ignore: skip(),
  async fn() {
    await using s = await scratch();
    await using seeder = await Client.open({
      ...base,
      path: s.torrent,
      basedir: s.seedDir,
      uploadLimit: 512 * 1024,
    });
    const dir = join(s.root, "transmission");
    await using peer = await startClient("transmission", "leech", s.torrent, dir, [], {
      utp: true,
    });
    seeder.addPeer("127.0.0.1", peer.port);
    const ours = await ourView(seeder);
    assert.equal(ours.transport, "utp");
    assert.equal(ours.incoming, false);
    const theirs = await theirView(peer);
    assert.ok(theirs.every((p) => p.utp === true), JSON.stringify(theirs));
    await peer.done(90_000);
    assert.ok(await sameFiles(join(s.seedDir, "pack"), join(dir, "pack"), FILES));
  },
});
