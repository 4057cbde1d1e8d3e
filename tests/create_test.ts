import assert from "node:assert/strict";
import { join } from "node:path";
import { autoPieceLength, createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { needs } from "./_lab.ts";

const data = new URL("../fixtures/real/data/", import.meta.url).pathname;

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("createTorrent() of a single file and of a nested directory parses back", async () => {
  const single = await parseMetainfo(
    await createTorrent(join(data, "single.txt"), { pieceLength: 32768 }),
  );
  assert.equal(single.name, "single.txt");
  assert.equal(single.multiFile, false);
  const multi = await parseMetainfo(
    await createTorrent(join(data, "multi"), {
      pieceLength: 16384,
      announce: [["http://a/announce", "http://b/announce"], ["http://c/announce"]],
      private: true,
      comment: "hi",
      webSeeds: ["http://seed/"],
    }),
  );
  assert.equal(multi.name, "multi");
  assert.deepEqual(multi.files.map((f) => f.path.slice(1).join("/")), [
    "a.txt",
    "empty.txt",
    "nested/deeper/leaf.txt",
    "nested/numbers.txt",
    "_nul.bin",
  ]);
  assert.deepEqual(multi.announceList, [["http://a/announce", "http://b/announce"], [
    "http://c/announce",
  ]]);
  assert.equal(multi.private, true);
  assert.equal(multi.comment, "hi");
  assert.deepEqual(multi.urlList, ["http://seed/"]);
});

Deno.test("createTorrent() reports progress and hashes pieces that span files", async () => {
  const seen: number[] = [];
  const bytes = await createTorrent(join(data, "multi"), {
    pieceLength: 16384,
    onProgress: (d) => seen.push(d),
  });
  const meta = await parseMetainfo(bytes);
  assert.equal(seen.length, meta.pieceCount);
  assert.equal(seen.at(-1), meta.length);
});

Deno.test("autoPieceLength() keeps torrents near 1500 pieces within 16 KiB - 16 MiB", () => {
  assert.equal(autoPieceLength(1000), 16384);
  assert.equal(autoPieceLength(1024 ** 3), 1024 * 1024);
  assert.equal(autoPieceLength(1024 ** 5), 16 * 1024 * 1024);
});

Deno.test({
  name:
    "createTorrent() gives the same info hash as mktorrent for the same input, piece length and name",
  ignore: needs("mktorrent", "transmissionShow"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      for (
        const [src, log2] of [[join(data, "multi"), 15], [join(data, "single.txt"), 16]] as const
      ) {
        const out = join(dir, "mk.torrent");
        await Deno.remove(out).catch(() => {});
        await run("mktorrent", [
          "-l",
          String(log2),
          "-a",
          "http://127.0.0.1/announce",
          "-o",
          out,
          src,
        ]);
        const theirs = await parseMetainfo(await Deno.readFile(out));
        const ours = await createTorrent(src, {
          pieceLength: 2 ** log2,
          announce: ["http://127.0.0.1/announce"],
        });
        assert.equal((await parseMetainfo(ours)).infoHashHex, theirs.infoHashHex, src);
        // and transmission-show accepts ours with the same hash
        await Deno.writeFile(join(dir, "ours.torrent"), ours);
        const shown = await run("transmission-show", [join(dir, "ours.torrent")]);
        assert.match(shown, new RegExp(`Hash: ${theirs.infoHashHex}`));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("createTorrent() fails clearly on a missing path and a list without a name", async () => {
  await assert.rejects(createTorrent("/no/such/path"), Deno.errors.NotFound);
  await assert.rejects(createTorrent([]), /needs options.name/);
});
