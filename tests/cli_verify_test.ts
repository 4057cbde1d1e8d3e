// `seedbed verify` after a partial download (-s): files never selected are "not downloaded", not failures; the
// pieces they share with downloaded files are read from the part file (found through the resume data); only what
// is really wrong is reported.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { cli } from "./_cli.ts";
import { makeTorrent, type SpecFile } from "./_swarm.ts";

// in torrent order: dir/three.bin (pieces 0-7), one.bin (7-25), two.bin (25-37), 16 KiB pieces
const FILES: SpecFile[] = [
  { path: "one.bin", length: 300_000 },
  { path: "two.bin", length: 200_000 },
  { path: "dir/three.bin", length: 123_456 },
];

Deno.test("verify after -s: the files not selected are not downloaded, shared pieces come from the part file, exit 0", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-verify-" });
  try {
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "pack", FILES, {
      pieceLength: 16384,
    });
    const torrent = join(root, "pack.torrent");
    await Deno.writeFile(torrent, bytes);
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const leech = join(root, "leech");
    const state = join(root, "state");
    const dl = await cli([
      torrent,
      "-o",
      leech,
      "--no-dht",
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "-s",
      "2", // one.bin only: pieces 7 and 25 are shared with the files left out
      "--state",
      state,
    ]);
    assert.equal(dl.code, 0, dl.stderr);
    const notDownloaded = [
      "  not downloaded: pack/two.bin (195 KiB)\n",
      "  not downloaded: pack/dir/three.bin (121 KiB)\n",
    ].sort().join("");
    const report = (stdout: string) => {
      const [first, ...rest] = stdout.split(/(?<=\n)/);
      return {
        first: first.replace(/checked in [\d.]+ s/, "checked in T s"),
        rest: rest.sort().join(""),
      };
    };

    // all 19 pieces of one.bin, the two shared ones read from the part file
    const ok = await cli(["verify", torrent, "-o", leech, "--state", state]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.deepEqual(report(ok.stdout), {
      first: "pack: 19/19 pieces OK (of the files downloaded), 293 KiB checked in T s\n",
      rest: notDownloaded,
    });
    assert.doesNotMatch(ok.stdout, /fail/);

    // without the resume data the part file's index is unknown: the shared pieces cannot be checked (nor blamed)
    const blind = await cli(["verify", torrent, "-o", leech, "--state", join(root, "elsewhere")]);
    assert.equal(blind.code, 0, blind.stdout);
    assert.equal(
      report(blind.stdout).first,
      "pack: 17/17 pieces OK (of the files downloaded), 293 KiB checked in T s\n",
    );

    // a flipped byte in one.bin is what is really wrong
    const path = join(leech, "pack", "one.bin");
    const data = await Deno.readFile(path);
    data[100_000] ^= 1;
    await Deno.writeFile(path, data);
    const bad = await cli(["verify", torrent, "-o", leech, "--state", state]);
    assert.equal(bad.code, 1);
    assert.deepEqual(report(bad.stdout), {
      first: "pack: 18/19 pieces OK (of the files downloaded), 293 KiB checked in T s\n",
      rest: ["  incomplete: pack/one.bin (1 of 19 pieces fail)\n", notDownloaded].sort().join(""),
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
