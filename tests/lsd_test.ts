import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { toHex } from "../src/_bytes.ts";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { formatLsdAnnounce, LSD_GROUP, parseLsdAnnounce } from "../src/lsd.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { Session } from "../src/session/session.ts";
import { inNetns, needs, type PeerLogLine } from "./_lab.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

// Multicast kept on 127.0.0.1, on a port of its own: outside the system's ephemeral range (no port-0 bind ever
// takes it) and shared by every LSD socket (SO_REUSEADDR). Tests running at once hear each other's announces,
// which name other torrents and are ignored.
const TEST_LSD = { multicastPort: 16771, interfaceAddress: "127.0.0.1" };

Deno.test("LSD announces parse back, and junk is refused", () => {
  const ih = new Uint8Array(20).fill(0xab);
  const packet = formatLsdAnnounce([ih], 6881, "c00k1e", "239.192.152.143:6771");
  assert.deepEqual(parseLsdAnnounce(packet), {
    port: 6881,
    infoHashes: ["ab".repeat(20)],
    cookie: "c00k1e",
  });
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.equal(parseLsdAnnounce(enc("GET / HTTP/1.1\r\n\r\n")), undefined);
  assert.equal(
    parseLsdAnnounce(
      enc("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: " + "ab".repeat(20) + "\r\n\r\n"),
    ),
    undefined,
  );
  assert.equal(
    parseLsdAnnounce(enc("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: xyz\r\n\r\n")),
    undefined,
  );
});

Deno.test("a leecher finds a seeder on the local network by LSD multicast (kept on 127.0.0.1)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-lsd-" });
  try {
    const files = [{ path: "a.bin", length: 200_000 }];
    const { meta } = await makeTorrent(join(root, "seed"), "t", files, { pieceLength: 16384 });
    const lsd = TEST_LSD;
    await using _seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
      lsd,
    });
    await using leecher = await Client.open({
      metainfo: meta,
      basedir: join(root, "leech"),
      host: "127.0.0.1",
      resumeFile: false,
      lsd,
    });
    await within(20_000, "the download from the peer found by LSD", leecher.done);
    assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "leech", "t"), files));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a private torrent (BEP 27) is never announced by LSD, even with lsd on", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-lsd-private-" });
  // every announce on the test's multicast port, as sent
  const packets: string[][] = [];
  const publicHeard = Promise.withResolvers<void>();
  let publicHex = "";
  const sock = createSocket({ type: "udp4", reuseAddr: true });
  await new Promise<void>((resolve) => sock.bind(TEST_LSD.multicastPort, "0.0.0.0", resolve));
  sock.addMembership(LSD_GROUP, TEST_LSD.interfaceAddress);
  sock.on("message", (msg: Uint8Array) => {
    const a = parseLsdAnnounce(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
    if (!a) return;
    packets.push(a.infoHashes);
    if (a.infoHashes.includes(publicHex)) publicHeard.resolve();
  });
  try {
    const files = [{ path: "a.bin", length: 20_000 }];
    const pub = await makeTorrent(join(root, "pub"), "t", files, { pieceLength: 16384 });
    publicHex = pub.meta.infoHashHex;
    await Deno.mkdir(join(root, "priv"), { recursive: true });
    await Deno.writeFile(join(root, "priv", "x.bin"), new Uint8Array(20_000).fill(7));
    const priv = await parseMetainfo(
      await createTorrent(join(root, "priv", "x.bin"), { pieceLength: 16384, private: true }),
    );
    // one session, one LSD socket: the private torrent runs first, so every announce that names the public one
    // is an announce the private one would have been in, had the filter let it through
    await using session = await Session.open({
      host: "127.0.0.1",
      lsd: TEST_LSD,
      limits: { activeDownloads: 0, activeSeeds: 0 },
      restore: false,
    });
    const p = await session.add({ metainfo: priv }, {
      basedir: join(root, "priv"),
      resumeFile: false,
      trackers: false,
    });
    await p.ready;
    assert.equal(p.run, "running");
    const q = await session.add({ metainfo: pub.meta }, {
      basedir: join(root, "pub"),
      resumeFile: false,
    });
    await q.ready;
    await within(10_000, "the public torrent's announce", publicHeard.promise);
    const privHex = toHex(priv.infoHash);
    const ours = packets.filter((hs) => hs.includes(publicHex) || hs.includes(privHex));
    assert.ok(ours.length >= 1);
    assert.ok(ours.every((hs) => !hs.includes(privHex)), JSON.stringify(ours));
  } finally {
    sock.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name:
    "LSD with libtorrent, both ways, in a network namespace: each finds the other by its announce",
  ignore: needs("libtorrent", "netns"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-lsd-lt-" });
    try {
      const files = [{ path: "a.bin", length: 300_000 }, { path: "b.bin", length: 5000 }];
      const { bytes } = await makeTorrent(join(root, "seed"), "t", files, { pieceLength: 16384 });
      await Deno.writeFile(join(root, "t.torrent"), bytes);
      await using child = inNetns(Deno.execPath(), [
        "run",
        "-A",
        new URL("./_lsd_child.ts", import.meta.url).pathname,
        root,
        join(root, "t.torrent"),
      ]);
      const code = await within(180_000, "the LSD exchanges", child.exited);
      assert.equal(code, 0, child.stderr());
      const seen = JSON.parse((await child.match(/^\{/, 1000)).input) as {
        ltSawUs?: PeerLogLine;
        sources: string[];
        weCompleted: boolean;
      };
      // libtorrent, told of no peer, connected to our seed and learnt its address from LSD
      assert.ok(seen.ltSawUs, "libtorrent never connected to the Seedbed seed");
      assert.ok(seen.ltSawUs.source.includes("lsd"), JSON.stringify(seen.ltSawUs));
      assert.equal(seen.ltSawUs.incoming, false);
      assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "lt", "t"), files));
      // we dialled the libtorrent seed we heard of by LSD, and completed from it
      assert.ok(seen.sources.includes("lsd"), JSON.stringify(seen.sources));
      assert.ok(seen.weCompleted);
      assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "sb", "t"), files));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
