// The command line as a user runs it: a subprocess per case, exit codes and output checked.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { formatMagnet } from "../src/magnet.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { needs } from "./_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], cwd?: string, permissions = ["-A"]): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    ...(cwd ? { cwd } : {}),
    env: { NO_COLOR: "1" },
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

function oneLine(text: string): string {
  const lines = text.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got: ${text}`);
  assert.doesNotMatch(text, /^\s+at /m, "no stack trace");
  return lines[0];
}

Deno.test("--help and --version exit 0", async () => {
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage:/);
  assert.match(help.stdout, /seedbed seed/);
  const version = await cli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^seedbed \d+\.\d+\.\d+/);
  const dl = await cli(["download", "--help"]);
  assert.equal(dl.code, 0);
  assert.match(dl.stderr, /--select/);
});

Deno.test("usage errors exit 2 with a hint", async () => {
  for (
    const args of [[], ["x.torrent", "--bogus"], ["info"], ["create", "x"], [
      "x.torrent",
      "-p",
      "99999",
    ]]
  ) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /seedbed/);
  }
  for (const bad of ["0", "-1", "abc", "5000"]) {
    const r = await cli(["x.torrent", "--piece-memory", bad]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--piece-memory/);
  }
  const unknown = await cli(["some.torrent", "--frobnicate"]);
  assert.match(unknown.stderr, /frobnicate/);
  assert.match(unknown.stderr, /--help/);
});

Deno.test("a missing torrent exits 1 with one clear line", async () => {
  const r = await cli(["/no/such/file.torrent", "-o", "/tmp"]);
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), /^seedbed: cannot read \/no\/such\/file\.torrent: no such file$/);
});

Deno.test("info prints the same info hash as transmission-show for real torrents", async () => {
  const hashes = JSON.parse(await Deno.readTextFile(join(FIXTURES, "real/hashes.json"))) as Record<
    string,
    string
  >;
  for (const [file, hash] of Object.entries(hashes)) {
    const r = await cli(["info", join(FIXTURES, "real", file)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Info hash:\\s+${hash}`));
    assert.match(r.stdout, /Files \(\d+\):/);
  }
});

Deno.test("info rejects each crafted bad torrent with one line and exit status 1", async () => {
  const expected = JSON.parse(
    await Deno.readTextFile(join(FIXTURES, "bad/expected.json")),
  ) as Record<string, string>;
  for (const file of Object.keys(expected).slice(0, 12)) {
    const r = await cli(["info", join(FIXTURES, "bad", file)]);
    assert.equal(r.code, 1, file);
    assert.match(
      oneLine(r.stderr),
      /^seedbed: (cannot read .*: (invalid torrent|cannot decode bencode)|.* is not a \.torrent file \(.*\))/,
      file,
    );
  }
});

Deno.test("a missing Deno permission is reported with the flag to add", async () => {
  const r = await cli(["info", join(FIXTURES, "real/mktorrent_single.torrent")], undefined, []);
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), /^seedbed: missing permission: .*--allow-read/);
});

Deno.test("info reads a magnet link", async () => {
  const r = await cli([
    "info",
    "magnet:?xt=urn:btih:" + "ab".repeat(20) + "&dn=hello&tr=http%3A%2F%2Ft%2Fa",
  ]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Info hash:\s+(ab){20}/);
  assert.match(r.stdout, /hello/);
});

Deno.test("create makes a torrent that info and verify accept; verify finds a corrupted file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "data", "sub"), { recursive: true });
    await Deno.writeFile(join(dir, "data", "a.bin"), crypto.getRandomValues(new Uint8Array(60000)));
    await Deno.writeFile(
      join(dir, "data", "sub", "b.bin"),
      crypto.getRandomValues(new Uint8Array(30000)),
    );
    const out = join(dir, "data.torrent");
    const c = await cli([
      "create",
      join(dir, "data"),
      "-o",
      out,
      "--announce",
      "http://127.0.0.1:1/announce",
      "--piece-length",
      "16384",
      "--comment",
      "hi",
    ]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^[0-9a-f]{40}\n$/);
    const info = await cli(["info", out]);
    assert.match(info.stdout, new RegExp(`Info hash:\\s+${c.stdout.trim()}`));
    assert.match(info.stdout, /tier 1: http:\/\/127\.0\.0\.1:1\/announce/);
    const ok = await cli(["verify", out, "-o", dir]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /6\/6 pieces OK/);
    const bytes = await Deno.readFile(join(dir, "data", "sub", "b.bin"));
    bytes[20000] ^= 1; // torrent offset 80000: piece 4, inside b.bin only
    await Deno.writeFile(join(dir, "data", "sub", "b.bin"), bytes);
    const bad = await cli(["verify", out, "-o", dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /incomplete: data\/sub\/b\.bin \(1 of 3 pieces fail\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const FILES: SpecFile[] = [
  { path: "one.bin", length: 300_000 },
  { path: "two.bin", length: 200_000 },
  { path: "dir/three.bin", length: 123_456 },
];

Deno.test("--list shows numbered files; download with --select and --json gets only those, exit 0", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "pack", FILES, {
      pieceLength: 16384,
    });
    const torrent = join(root, "pack.torrent");
    await Deno.writeFile(torrent, bytes);
    const list = await cli([torrent, "--list"]);
    assert.equal(list.code, 0);
    // files are in torrent order (sorted by path, as mktorrent does)
    assert.match(list.stdout, /1\s+121 KiB\s+pack\/dir\/three\.bin/);
    assert.match(list.stdout, /2\s+293 KiB\s+pack\/one\.bin/);
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const leech = join(root, "leech");
    const r = await cli([
      torrent,
      "-o",
      leech,
      "--no-dht",
      "--state",
      join(root, "state"),
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "-s",
      "1-2",
      "--json",
      "--piece-memory",
      "0.5", // the least: 4 pieces in memory at once
    ]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    for (const e of events) {
      assert.equal(typeof e.event, "string");
      assert.ok(!Number.isNaN(Date.parse(e.time)));
    }
    const kinds = new Set(events.map((e) => e.event));
    for (const k of ["ready", "peer", "piece", "complete"]) {
      assert.ok(kinds.has(k), `missing ${k} event`);
    }
    const ready = events.find((e) => e.event === "ready");
    assert.equal(ready.infoHash, meta.infoHashHex);
    assert.ok(
      await sameFiles(join(root, "seed", "pack"), join(leech, "pack"), [FILES[0], FILES[2]]),
    );
    await assert.rejects(Deno.stat(join(leech, "pack", "two.bin")), Deno.errors.NotFound);
    assert.equal(FILES[1].path, "two.bin");
    assert.match(r.stderr, /Done: pack/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("SIGINT stops with exit 130 and keeps what was downloaded; the same command resumes", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "pack", FILES, {
      pieceLength: 16384,
    });
    const torrent = join(root, "pack.torrent");
    await Deno.writeFile(torrent, bytes);
    // the first seeder has only one.bin: the download stalls after those pieces
    const partial = join(root, "partial");
    await Deno.mkdir(join(partial, "pack"), { recursive: true });
    await Deno.copyFile(join(root, "seed", "pack", "one.bin"), join(partial, "pack", "one.bin"));
    // one.bin follows dir/three.bin in the torrent: count the pieces lying wholly inside it
    const start = FILES[2].length, end = start + FILES[0].length;
    const firstPieces = Math.floor(end / 16384) - Math.ceil(start / 16384);
    const leech = join(root, "leech");
    {
      await using half = await Client.open({
        metainfo: meta,
        basedir: partial,
        host: "127.0.0.1",
        resumeFile: false,
      });
      assert.ok(!half.seed);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          MAIN,
          torrent,
          "-o",
          leech,
          "--no-dht",
          "--state",
          join(root, "state"),
          "-p",
          "0",
          "--peer",
          `127.0.0.1:${half.port}`,
          "--json",
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let pieces = 0, buf = "";
      await within(
        30_000,
        "the pieces of one.bin",
        (async () => {
          while (pieces < firstPieces) {
            const { value, done } = await reader.read();
            if (done) throw new Error("the CLI exited early");
            buf += value;
            pieces = (buf.match(/"event":"piece"/g) ?? []).length;
          }
        })(),
      );
      child.kill("SIGINT");
      const status = await within(15_000, "exit after SIGINT", child.status);
      await reader.cancel();
      const err = await new Response(child.stderr).text();
      assert.equal(status.code, 130, err);
      assert.match(err, /interrupted/);
    }
    await using full = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const again = await cli([
      torrent,
      "-o",
      leech,
      "--no-dht",
      "--state",
      join(root, "state"),
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${full.port}`,
      "--json",
    ]);
    assert.equal(again.code, 0, again.stderr);
    const ready = again.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((e) =>
      e.event === "ready"
    );
    assert.ok(ready.have >= firstPieces, `resumed with ${ready.have} pieces`);
    assert.ok(await sameFiles(join(root, "seed", "pack"), join(leech, "pack"), FILES));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a magnet link downloads from the command line, and --save-torrent keeps the fetched metadata", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { meta } = await makeTorrent(join(root, "seed"), "pack", FILES, { pieceLength: 16384 });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const magnet = formatMagnet({
      infoHash: meta.infoHash,
      name: "pack",
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    const saved = join(root, "saved.torrent");
    const r = await cli([
      magnet,
      "-o",
      join(root, "leech"),
      "--no-dht",
      "--state",
      join(root, "state"),
      "-p",
      "0",
      "--save-torrent",
      saved,
      "-s",
      "2",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Fetching the torrent's metadata/);
    assert.equal((await parseMetainfo(await Deno.readFile(saved))).infoHashHex, meta.infoHashHex);
    // -s 2 selected one.bin only (files in torrent order: dir/three.bin, one.bin, two.bin)
    assert.ok(await sameFiles(join(root, "seed", "pack"), join(root, "leech", "pack"), [FILES[0]]));
    await assert.rejects(Deno.stat(join(root, "leech", "pack", "two.bin")), Deno.errors.NotFound);
    const bad = await cli(["magnet:?xt=urn:btih:1234"]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      'seedbed: invalid magnet link: btih info hash must be 40 hex or 32 base32 characters, got 4\nTry "seedbed --help".\n',
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name:
    "main.ts info prints the v1 and v2 hashes libtorrent reports for v2 and hybrid torrents it makes now",
  ignore: needs("libtorrent"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-cli-v2-" });
    try {
      const data = join(FIXTURES, "real/data");
      const specs = [
        `${join(data, "multi")}:v2:16384`,
        `${join(data, "multi")}:hybrid:65536`,
        `${join(data, "single.txt")}:v2:16384`,
        `${join(data, "single.txt")}:hybrid:32768`,
      ];
      const script = new URL("./peers/lt_create.py", import.meta.url).pathname;
      const out = await new Deno.Command("/usr/bin/python3", {
        args: [script, dir, ...specs],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const made = JSON.parse(new TextDecoder().decode(out.stdout)) as Record<
        string,
        { v1: string | null; v2: string; torrent: string }
      >;
      for (const spec of specs) {
        const lt = made[spec];
        const r = await cli(["info", lt.torrent]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^Info hash v2: ${lt.v2}$`, "m"), spec);
        if (lt.v1) assert.match(r.stdout, new RegExp(`^Info hash:    ${lt.v1}$`, "m"), spec);
        else assert.doesNotMatch(r.stdout, /^Info hash:/m, spec);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
