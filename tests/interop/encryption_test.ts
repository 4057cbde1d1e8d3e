// Protocol encryption required on the other side, against the clients whose encryption can be configured:
// qBittorrent (Session\Encryption=1, "Require encryption") and Transmission (encryption 2, "required"), both
// directions, through the real Client with `encryption: "require"`. Each transfer is compared byte for byte and
// each end says the connection was encrypted (ours: PeerInfo.encrypted; theirs: qBittorrent's peer flags,
// Transmission's RPC isEncrypted). libtorrent's part (forced RC4 both ways, disabled, IPv6) is in
// tests/encryption_interop_test.ts, which `deno task test` runs too. Run: deno task test:interop
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../../src/client.ts";
import { REQUIRE_PEERS } from "../_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "../_swarm.ts";
import { available, type ClientName, ourView, startClient, theirView } from "./_clients.ts";

const FILES: SpecFile[] = [
  { path: "video.bin", length: 2 * 1024 * 1024 + 4321 },
  { path: "docs/readme.txt", length: 999 },
];
const PIECE = 64 * 1024;

function skip(name: ClientName): boolean {
  if (available[name] || REQUIRE_PEERS) return false;
  console.warn(
    `skipping: ${name} not installed (CI sets SEEDBED_REQUIRE_PEERS=1 and fails instead)`,
  );
  return true;
}

async function scratch() {
  const root = await Deno.makeTempDir({ prefix: "seedbed-enc-matrix-" });
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "pack", FILES, { pieceLength: PIECE });
  const torrent = join(root, "pack.torrent");
  await Deno.writeFile(torrent, bytes);
  return {
    root,
    seedDir,
    meta,
    torrent,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

const CLIENTS: { name: ClientName; label: RegExp }[] = [
  { name: "qbittorrent", label: /^qBittorrent[ /]\d/ },
  { name: "transmission", label: /^Transmission[ /]\d/ },
];

for (const { name, label } of CLIENTS) {
  Deno.test({
    name: `require: Seedbed downloads from ${name} requiring encryption; both ends say encrypted`,
    ignore: skip(name),
    async fn() {
      await using s = await scratch();
      await using peer = await startClient(name, "seed", s.torrent, s.seedDir, [], {
        requireEncryption: true,
      });
      await using client = await Client.open({
        path: s.torrent,
        basedir: join(s.root, "ours"),
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
        encryption: "require",
        downloadLimit: 1024 * 1024, // the connection lives long enough for the other side's API to show it
        peers: [{ host: "127.0.0.1", port: peer.port }],
      });
      const ours = await ourView(client);
      // both select RC4 when they require encryption
      assert.equal(ours.encrypted, "rc4");
      assert.match(ours.client, label);
      const theirs = await theirView(peer);
      // qBittorrent's flag "E" is RC4 ("e" would be an encrypted handshake only)
      assert.ok(
        theirs.every((p) => p.encrypted && (p.flags === undefined || /\bE\b/.test(p.flags))),
        JSON.stringify(theirs),
      );
      await within(90_000, `the download from ${name}`, client.done);
      assert.ok(await sameFiles(join(s.seedDir, "pack"), join(s.root, "ours", "pack"), FILES));
    },
  });

  Deno.test({
    name: `require: ${name} requiring encryption downloads from Seedbed; both ends say encrypted`,
    ignore: skip(name),
    async fn() {
      await using s = await scratch();
      await using seeder = await Client.open({
        path: s.torrent,
        basedir: s.seedDir,
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
        encryption: "require",
        uploadLimit: 1024 * 1024,
      });
      const dir = join(s.root, name);
      // Transmission never dials loopback peers, and qBittorrent is handed ours only once it runs: we dial
      await using peer = await startClient(name, "leech", s.torrent, dir, [], {
        requireEncryption: true,
      });
      seeder.addPeer("127.0.0.1", peer.port);
      const ours = await ourView(seeder);
      // both select RC4 when they require encryption
      assert.equal(ours.encrypted, "rc4");
      assert.match(ours.client, label);
      const theirs = await theirView(peer);
      // qBittorrent's flag "E" is RC4 ("e" would be an encrypted handshake only)
      assert.ok(
        theirs.every((p) => p.encrypted && (p.flags === undefined || /\bE\b/.test(p.flags))),
        JSON.stringify(theirs),
      );
      await peer.done(90_000);
      assert.ok(await sameFiles(join(s.seedDir, "pack"), join(dir, "pack"), FILES));
    },
  });
}
