import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { formatMagnet } from "../src/magnet.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

// the info dictionary of this torrent is larger than one 16 KiB metadata piece (many files)
const MAIN = new URL("../main.ts", import.meta.url).pathname;

const FILES = Array.from(
  { length: 400 },
  (_, i) => ({ path: `dir${i % 7}/file-${i}.bin`, length: 1000 + i }),
);

Deno.test("a magnet link downloads from a Seedbed seeder that serves the metadata (BEP 9)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-magnet-" });
  try {
    const { meta } = await makeTorrent(join(root, "seed"), "many", FILES, { pieceLength: 16384 });
    assert.ok(meta.info.length > 16384, "metadata spans several pieces");
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const magnet = formatMagnet({
      infoHash: meta.infoHash,
      name: "many",
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    await using leecher = await Client.open({
      magnet,
      basedir: join(root, "leech"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    assert.equal(leecher.infohashHex, meta.infoHashHex);
    assert.equal(leecher.metainfo.files.length, FILES.length);
    await within(30_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(root, "seed", "many"), join(root, "leech", "many"), FILES));
    // the fetched metadata can be saved as a .torrent with the same info hash
    assert.equal((await parseMetainfo(leecher.torrentFile)).infoHashHex, meta.infoHashHex);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a magnet link with no reachable peer fails with a clear error in bounded time", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (l.addr as Deno.NetAddr).port;
  l.close();
  const magnet = formatMagnet({
    infoHash: new Uint8Array(20).fill(1),
    peers: [{ host: "127.0.0.1", port: deadPort }],
  });
  const client = new Client({
    magnet,
    basedir: "/tmp",
    host: "127.0.0.1",
    resumeFile: false,
    metadataTimeoutMs: 300,
  });
  await assert.rejects(
    client.ready,
    /could not fetch the torrent's metadata within 0 s \(1 peers tried\)/,
  );
  await client.close();
});

Deno.test({
  name: "a magnet link downloads from a libtorrent seeder (metadata from libtorrent)",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-magnet-lt-" });
    try {
      const { meta, bytes } = await makeTorrent(join(root, "seed"), "many", FILES, {
        pieceLength: 16384,
      });
      const torrent = join(root, "many.torrent");
      await Deno.writeFile(torrent, bytes);
      await using lt = await startLibtorrent("seed", torrent, join(root, "seed"));
      const magnet = formatMagnet({
        infoHash: meta.infoHash,
        peers: [{ host: "127.0.0.1", port: lt.port }],
      });
      await using leecher = await Client.open({
        magnet,
        basedir: join(root, "leech"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      await within(30_000, "the download", leecher.done);
      assert.ok(await sameFiles(join(root, "seed", "many"), join(root, "leech", "many"), FILES));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "libtorrent given only a magnet link fetches the metadata from a Seedbed seed (BEP 9) and downloads",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-magnet-to-lt-" });
    try {
      const { meta } = await makeTorrent(join(root, "seed"), "many", FILES, { pieceLength: 16384 });
      assert.ok(meta.info.length > 16384, "the metadata spans several ut_metadata pieces");
      await using seeder = await Client.open({
        metainfo: meta,
        basedir: join(root, "seed"),
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
      });
      // no .torrent file for libtorrent, no tracker, no DHT: the metadata can only come from us
      await using lt = await startLibtorrent(
        "leech",
        formatMagnet({ infoHash: meta.infoHash }),
        join(root, "lt"),
        [`127.0.0.1:${seeder.port}`],
      );
      await lt.line("metadata", 30_000);
      await lt.line("done", 60_000);
      assert.ok(await sameFiles(join(root, "seed", "many"), join(root, "lt", "many"), FILES));
      assert.ok(seeder.uploaded >= meta.length);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("a magnet link's file selection (BEP 53 so=) is the initial selection; explicit priorities win", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-magnet-so-" });
  try {
    // piece-aligned files: each file's pieces are its own
    const files = [
      { path: "a.bin", length: 4 * 16384 },
      { path: "b.bin", length: 3 * 16384 },
      { path: "c.bin", length: 5 * 16384 },
    ];
    const { meta } = await makeTorrent(join(root, "seed"), "sel", files, { pieceLength: 16384 });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const peers = [{ host: "127.0.0.1", port: seeder.port }];
    const magnet = formatMagnet({ infoHash: meta.infoHash, peers, selectOnly: [1] });
    assert.match(magnet, /so=1/);
    {
      await using leecher = await Client.open({
        magnet,
        basedir: join(root, "so"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      await within(30_000, "the selected file", leecher.done);
      assert.deepEqual(leecher.files.map((f) => f.priority), [0, 1, 0]);
      assert.deepEqual(
        await Deno.readFile(join(root, "so", "sel", "b.bin")),
        await Deno.readFile(join(root, "seed", "sel", "b.bin")),
      );
      assert.equal(leecher.downloaded, files[1].length, "only the selected file was downloaded");
      for (const other of ["a.bin", "c.bin"]) {
        assert.equal(
          await Deno.stat(join(root, "so", "sel", other)).catch(() => undefined),
          undefined,
        );
      }
    }
    {
      // explicit priorities: everything, whatever the link says
      await using leecher = await Client.open({
        magnet,
        basedir: join(root, "all"),
        host: "127.0.0.1",
        resumeFile: false,
        priorities: [1, 1, 1],
      });
      await within(30_000, "every file", leecher.done);
      assert.ok(await sameFiles(join(root, "seed", "sel"), join(root, "all", "sel"), files));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("CLI: -s overrides a magnet link's so= selection", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-magnet-so-cli-" });
  try {
    const files = [
      { path: "a.bin", length: 2 * 16384 },
      { path: "b.bin", length: 2 * 16384 },
    ];
    const { meta } = await makeTorrent(join(root, "seed"), "sel", files, { pieceLength: 16384 });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    // the link selects a.bin (index 0); -s 2 asks for b.bin alone
    const magnet = formatMagnet({
      infoHash: meta.infoHash,
      peers: [{ host: "127.0.0.1", port: seeder.port }],
      selectOnly: [0],
    });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        magnet,
        "-o",
        join(root, "leech"),
        "--no-dht",
        "-p",
        "0",
        "-q",
        "-s",
        "2",
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    // bounded: a selection that leaves nothing wanted must not hang the test
    const output = child.output();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), 60_000));
    const first = await Promise.race([output, timedOut]);
    clearTimeout(timer);
    if (first === "timeout") child.kill("SIGKILL");
    const out = await output;
    assert.notEqual(first, "timeout", "the CLI did not finish within 60 s");
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(
      await Deno.readFile(join(root, "leech", "sel", "b.bin")),
      await Deno.readFile(join(root, "seed", "sel", "b.bin")),
    );
    await assert.rejects(Deno.stat(join(root, "leech", "sel", "a.bin")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
