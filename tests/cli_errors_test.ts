// What a person sees when something is wrong: a wrong command line (exit 2, our own words), a file that is not a
// torrent, a folder that cannot be written (exit 1 at once, one line naming the path and the reason), and a disk
// that fills mid-download (paused, said once, the progress line says why, Ctrl-C tells the truth about resume data).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { canMount, cli, run, spawnCli } from "./_cli.ts";
import { REQUIRE_PEERS } from "./_lab.ts";
import { makeTorrent, payload, within } from "./_swarm.ts";

const HINT = 'Try "seedbed --help".\n';

Deno.test("a wrong command line exits 2 with one line in our own words", async () => {
  const cases: [string[], string][] = [
    [["x.torrent", "--bogus"], "unknown option --bogus"],
    [["x.torrent", "-Z"], "unknown option -Z"],
    [
      ["x.torrent", "--max-peers", "-3"],
      '--max-peers: "-3" is not a whole number from 1 to 100000',
    ],
    [["x.torrent", "--max-peers=0"], '--max-peers: "0" is not a whole number from 1 to 100000'],
    [["x.torrent", "-s", "3-1"], "--select: 3-1 runs backwards; write 1-3"],
    [["x.torrent", "-s", "two"], '--select: "two" is not a file number or a range like 1-3'],
    [["x.torrent", "-p"], "-p (--port) needs a value"],
    [["x.torrent", "-p", "99999"], '--port: "99999" is not a port number (0-65535)'],
    [["x.torrent", "--json=yes"], "--json takes no value"],
    [
      ["x.torrent", "--limit-down", "fast"],
      '--limit-down: "fast" is not a rate in bytes per second like 500K, 2M or 1G',
    ],
    [
      ["x.torrent", "--limit-up", "-1M"],
      '--limit-up: "-1M" is not a rate in bytes per second like 500K, 2M or 1G',
    ],
    [
      ["x.torrent", "--encryption", "maybe"],
      '--encryption: "maybe" is not one of prefer, require, allow, disable',
    ],
    [
      ["x.torrent", "--encryption", "disable", "--encryption-rc4"],
      "--encryption-rc4 needs encrypted handshakes: use it with --encryption prefer or require, not disable",
    ],
    [
      ["a.torrent", "b.torrent", "--save-torrent", "x"],
      "--save-torrent takes a single torrent or magnet link",
    ],
    [["--peer", "nowhere"], '--peer: "nowhere" is not HOST:PORT (IPv6 as [::1]:6881)'],
    [
      ["magnet:?xt=urn:btih:1234"],
      "invalid magnet link: btih info hash must be 40 hex or 32 base32 characters, got 4",
    ],
    [["magnet:?dn=x"], "invalid magnet link: no xt=urn:btih: or xt=urn:btmh: info hash"],
    [
      ["info", "magnet:?xt=urn:btih:zz"],
      "invalid magnet link: btih info hash must be 40 hex or 32 base32 characters, got 2",
    ],
    [["info", "--bogus"], "unknown option --bogus"],
    [["verify", "x.torrent", "--dir"], "--dir needs a value"],
    [["create", "x", "-o"], "-o (--output) needs a value"],
    [["dht", "--frob"], "unknown option --frob"],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr, `seedbed: ${message}\n${HINT}`, args.join(" "));
  }
});

Deno.test("files that are not torrents, and missing ones, are named in a person's words", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedbed-cli-words-" });
  try {
    const text = join(dir, "notes.txt");
    await Deno.writeTextFile(text, "hello\n");
    const empty = join(dir, "empty.torrent");
    await Deno.writeFile(empty, new Uint8Array(0));
    const cases: [string[], string][] = [
      [[text], `${text} is not a .torrent file (it does not start with a bencoded dictionary)`],
      [
        ["info", text],
        `${text} is not a .torrent file (it does not start with a bencoded dictionary)`,
      ],
      [
        ["verify", text],
        `${text} is not a .torrent file (it does not start with a bencoded dictionary)`,
      ],
      [[empty], `${empty} is not a .torrent file (it is empty)`],
      [[dir], `cannot read ${dir}: it is a folder`],
      [
        ["info", join(dir, "gone.torrent")],
        `cannot read ${join(dir, "gone.torrent")}: no such file`,
      ],
      [["stauts"], 'cannot read stauts: no such file (nor a command: see "seedbed --help")'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args, { cwd: dir });
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr, `seedbed: ${message}\n`);
      assert.doesNotMatch(r.stderr, /os error|readfile|\bstat\b/);
    }
    // "1 file", "3 files"
    const { bytes } = await makeTorrent(join(dir, "seed"), "pack", [
      { path: "a.bin", length: 1000 },
      { path: "b.bin", length: 2000 },
      { path: "c.bin", length: 3000 },
    ], { pieceLength: 16384 });
    await Deno.writeFile(join(dir, "pack.torrent"), bytes);
    const list = await cli([join(dir, "pack.torrent"), "--list"]);
    assert.equal(list.stderr, "pack (5.86 KiB, 3 files)\n");
    await Deno.writeFile(join(dir, "one.bin"), payload(5000));
    const made = await cli(["create", join(dir, "one.bin"), "-o", join(dir, "one.torrent")]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stderr, /: one\.bin, 4\.88 KiB in 1 file, 1 pieces/);
    const one = await cli([join(dir, "one.torrent"), "-l"]);
    assert.equal(one.stderr, "one.bin (4.88 KiB, 1 file)\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a folder that cannot be written exits 1 at once, naming the path and the reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedbed-cli-unwritable-" });
  try {
    const { bytes } = await makeTorrent(join(dir, "seed"), "pack", [{
      path: "a.bin",
      length: 50_000,
    }], {
      pieceLength: 16384,
    });
    const torrent = join(dir, "pack.torrent");
    await Deno.writeFile(torrent, bytes);
    const file = join(dir, "a-file");
    await Deno.writeTextFile(file, "x");
    await Deno.mkdir(join(dir, "has-file"));
    await Deno.writeTextFile(join(dir, "has-file", "pack"), "in the way");
    const cases: [string, string][] = [
      [file, `cannot download into ${file}: it is a file, not a folder`],
      [
        join(file, "sub"),
        `cannot download into ${join(file, "sub")}: ${file} is a file, not a folder`,
      ],
      [
        join(dir, "has-file"),
        `cannot download pack: ${join(dir, "has-file", "pack")} is a file, not a folder`,
      ],
    ];
    if (canMount) {
      const ro = join(dir, "ro");
      await Deno.mkdir(ro);
      assert.ok(
        run("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]),
        "cannot mount a read-only tmpfs",
      );
      cases.push([ro, `cannot download into ${ro}: read-only file system`]);
      cases.push([
        join(ro, "sub"),
        `cannot download into ${join(ro, "sub")}: read-only file system`,
      ]);
    }
    try {
      for (const [out, message] of cases) {
        const started = performance.now();
        const r = await cli([
          torrent,
          "-o",
          out,
          "--no-dht",
          "-p",
          "0",
          "--state",
          join(dir, "state"),
        ]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr, `seedbed: ${message}\n`);
        assert.ok(performance.now() - started < 15_000, "at once");
      }
      const seed = await cli([
        "seed",
        torrent,
        "-o",
        join(dir, "nothing-here"),
        "-p",
        "0",
        "--no-dht",
        "--state",
        join(dir, "state"),
      ]);
      assert.equal(seed.code, 1);
      assert.equal(
        seed.stderr,
        `seedbed: cannot seed from ${join(dir, "nothing-here")}: no such folder\n`,
      );
    } finally {
      if (canMount) run("umount", [join(dir, "ro")]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "a disk that fills mid-download: said once, the line shows 'paused: disk full', it carries on when there is room, and Ctrl-C does not claim resume data it could not write",
  ignore: !canMount && !REQUIRE_PEERS,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-cli-full-" });
    const mnt = join(root, "small");
    await Deno.mkdir(mnt);
    try {
      const size = 6 * 1024 * 1024;
      await Deno.mkdir(join(root, "seed"));
      await Deno.writeFile(join(root, "seed", "big.bin"), payload(size, 7));
      const bytes = await createTorrent(join(root, "seed", "big.bin"), { pieceLength: 65536 });
      const meta = await parseMetainfo(bytes);
      const torrent = join(root, "big.torrent");
      await Deno.writeFile(torrent, bytes);
      await using seeder = await Client.open({
        metainfo: meta,
        basedir: join(root, "seed"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      const args = (dir: string, state: string) => [
        torrent,
        "-o",
        dir,
        "--no-dht",
        "-p",
        "0",
        "--peer",
        `127.0.0.1:${seeder.port}`,
        "--json",
        "--state",
        state,
      ];
      const said = (text: string) =>
        text.split("\n").filter((l) => l.startsWith("seedbed: cannot write"));

      // 1: the disk fills, the download pauses, room is made, it carries on and completes
      assert.ok(
        run("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]),
        "cannot mount a tmpfs",
      );
      {
        await using child = spawnCli(args(join(mnt, "dl"), join(root, "state")));
        await child.event("the disk-full error", (e) => e.event === "error" && e.code === "ENOSPC");
        await child.stderrMatches(/^\[ *\d+\.\d%\] .* paused: disk full$/m, 15_000);
        assert.ok(run("mount", ["-o", "remount,size=16m", mnt]), "cannot grow the tmpfs");
        assert.equal(await within(60_000, "the end", child.exited), 0, child.stderr());
        const err = child.stderr();
        assert.deepEqual(said(err), [
          `seedbed: cannot write to ${
            join(mnt, "dl", "big.bin")
          }: the disk is full (no space left on device); paused until it can (tried again every 5 s)`,
        ]);
        assert.match(err, /^big\.bin: the data can be written again; carrying on$/m);
        assert.match(err, /^Done: big\.bin, /m);
        assert.deepEqual(await Deno.readFile(join(mnt, "dl", "big.bin")), payload(size, 7));
      }
      run("umount", [mnt]);

      // 2: the disk fills with the state directory on it too; Ctrl-C cannot write resume data and says so
      assert.ok(
        run("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]),
        "cannot mount a tmpfs",
      );
      {
        await using child = spawnCli(args(join(mnt, "dl"), join(mnt, "state")));
        await child.event("the disk-full error", (e) => e.event === "error" && e.code === "ENOSPC");
        await child.stderrMatches(/paused: disk full$/m, 15_000);
        child.kill("SIGINT");
        assert.equal(await within(30_000, "the exit", child.exited), 130);
        const err = child.stderr();
        assert.equal(said(err).length, 1, err);
        assert.doesNotMatch(err, /resume data written/);
        assert.match(
          err,
          /\nseedbed: interrupted; resume data could not be written \(disk full\): the next run checks the data on disk again\n$/,
        );
        assert.match(
          err,
          /^\[ *\d+\.\d%\] [^\n]* paused: disk full\nseedbed: interrupted/m,
          "the final line says why",
        );
      }
    } finally {
      run("umount", [mnt]);
      await Deno.remove(root, { recursive: true });
    }
  },
});
