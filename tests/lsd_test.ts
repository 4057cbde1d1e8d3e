import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { formatLsdAnnounce, LocalDiscovery, LSD_GROUP, parseLsdAnnounce } from "../src/lsd.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { freePort } from "./_lab.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

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
    const lsd = { multicastPort: freePort(), interfaceAddress: "127.0.0.1" };
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
  try {
    const files = [{ path: "a.bin", length: 20_000 }];
    const pub = await makeTorrent(join(root, "pub"), "t", files, { pieceLength: 16384 });
    await Deno.mkdir(join(root, "priv"), { recursive: true });
    await Deno.writeFile(join(root, "priv", "x.bin"), new Uint8Array(20_000).fill(7));
    const priv = await parseMetainfo(
      await createTorrent(join(root, "priv", "x.bin"), { pieceLength: 16384, private: true }),
    );
    const lsd = { multicastPort: freePort(), interfaceAddress: "127.0.0.1" };
    const heard: string[] = [];
    const publicHeard = Promise.withResolvers<void>();
    const listener = new LocalDiscovery({
      infoHashes: [pub.meta.infoHash, priv.infoHash],
      port: 1,
      onPeer: (_host, _port, ih) => {
        heard.push(ih === priv.infoHash ? "private" : "public");
        if (ih === pub.meta.infoHash) publicHeard.resolve();
      },
      group: LSD_GROUP,
      ...lsd,
    });
    await listener.start();
    try {
      // the private one starts first: had it announced, it would be heard before the public one
      await using _private = await Client.open({
        metainfo: priv,
        basedir: join(root, "priv"),
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
        lsd,
      });
      await using _public = await Client.open({
        metainfo: pub.meta,
        basedir: join(root, "pub"),
        host: "127.0.0.1",
        resumeFile: false,
        lsd,
      });
      await within(10_000, "the public torrent's announce", publicHeard.promise);
      assert.deepEqual(heard, ["public"]);
    } finally {
      listener.stop();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
