// `seedbed info` and `seedbed create` in-process, output captured: what they print, exit codes 0/1/2, and the
// one clear line on stderr for bad input. (tests/cli_test.ts runs the same commands as subprocesses.)
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../src/cli/main.ts";
import { parseMetainfo } from "../src/metainfo.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const DATA = join(FIXTURES, "real/data");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(...args: string[]): Promise<Result> {
  let stdout = "", stderr = "";
  const code = await runCli(args, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    isTerminal: false,
    interrupted: new Promise<void>(() => {}), // never: these commands are not interruptible
  });
  return { code, stdout, stderr };
}

/** Control characters other than "\t" and "\n", and bidirectional overrides. */
// deno-lint-ignore no-control-regex
const UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

/** The one line of stderr, checked to be exactly one and free of stack traces. */
function oneLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got: ${text}`);
  assert.doesNotMatch(text, /^\s+at /m, "no stack trace");
  return lines[0];
}

Deno.test("info prints name, hash, size, pieces, privacy, dates, trackers by tier and numbered files", async () => {
  const r = await cli("info", join(FIXTURES, "real/mktorrent_multi.torrent"));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const out = r.stdout;
  assert.match(out, /^Name:\s+multi$/m);
  assert.match(out, /^Info hash:\s+846221f4d6bf97c76973d3352c50d7a1505372f3$/m);
  const meta = await parseMetainfo(
    await Deno.readFile(join(FIXTURES, "real/mktorrent_multi.torrent")),
  );
  assert.match(out, new RegExp(`^Size:\\s+\\S+ \\S+ \\(${meta.length} bytes\\)$`, "m"));
  assert.match(out, new RegExp(`^Pieces:\\s+${meta.pieceCount} of .* \\(32768 bytes\\)$`, "m"));
  assert.match(out, /^Private:\s+no$/m);
  assert.match(out, /^Created by:\s+mktorrent/m);
  assert.match(out, /^Created on:\s+\d{4}-\d\d-\d\dT/m);
  assert.match(out, /^ {2}tier 1: http:\/\/127\.0\.0\.1:6969\/announce$/m);
  assert.match(out, /^ {2}tier 2: http:\/\/127\.0\.0\.1:6970\/announce$/m);
  assert.match(out, /^Files \(5\):$/m);
  assert.match(out, /^ {2}1 .* multi\/a\.txt$/m);
  assert.match(out, /^ {2}2 .* multi\/empty\.txt$/m);
  assert.match(out, /^ {2}5 .* multi\/nul\.bin$/m);
  const priv = await cli("info", join(FIXTURES, "real/transmission_multi.torrent"));
  assert.match(priv.stdout, /^Private:\s+yes$/m);
  const single = await cli("info", join(FIXTURES, "real/mktorrent_single.torrent"));
  assert.match(single.stdout, /^Comment:\s+made by mktorrent$/m);
});

Deno.test("info prints each real torrent's transmission-show hash", async () => {
  const hashes = JSON.parse(
    await Deno.readTextFile(join(FIXTURES, "real/hashes.json")),
  ) as Record<string, string>;
  for (const [file, hash] of Object.entries(hashes)) {
    const r = await cli("info", join(FIXTURES, "real", file));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Info hash:\\s+${hash}$`, "m"), file);
  }
});

Deno.test("info rejects every crafted bad torrent: exit 1, one line naming the file and the field", async () => {
  const expected = JSON.parse(
    await Deno.readTextFile(join(FIXTURES, "bad/expected.json")),
  ) as Record<string, string>;
  for (const [file, field] of Object.entries(expected)) {
    const path = join(FIXTURES, "bad", file);
    const r = await cli("info", path);
    assert.equal(r.code, 1, file);
    assert.equal(r.stdout, "", file);
    const line = oneLine(r.stderr);
    const bytes = await Deno.readFile(path);
    // bytes that do not even start as a bencoded dictionary are not a torrent at all
    if (bytes.length === 0) {
      assert.equal(line, `seedbed: ${path} is not a .torrent file (it is empty)`);
    } else if (bytes[0] !== 0x64) {
      assert.equal(
        line,
        `seedbed: ${path} is not a .torrent file (it does not start with a bencoded dictionary)`,
      );
    } else {
      assert.ok(line.startsWith(`seedbed: cannot read ${path}: `), line);
      if (field === "bencode") assert.match(line, /cannot decode bencode|empty input/, file);
      else assert.ok(line.includes(`invalid torrent: ${field}: `), `${file}: ${line}`);
    }
  }
  const parent = await cli("info", join(FIXTURES, "bad/parent_path.torrent"));
  assert.match(
    parent.stderr,
    /info\.files\[0\]\.path\[0\]: path component "\.\." would leave the download directory\n$/,
  );
});

Deno.test("info shows sanitised torrents without a single control character", async () => {
  let count = 0;
  for (const dir of ["sanitised", "sanitised_v2"]) {
    for await (const entry of Deno.readDir(join(FIXTURES, dir))) {
      const r = await cli("info", join(FIXTURES, dir, entry.name));
      assert.equal(r.code, 0, `${entry.name}: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, UNPRINTABLE, entry.name);
      assert.doesNotMatch(r.stderr, UNPRINTABLE, entry.name);
      count++;
    }
  }
  assert.ok(count >= 27);
});

Deno.test("info reads a magnet link with peers and a selection", async () => {
  const r = await cli(
    "info",
    `magnet:?xt=urn:btih:${
      "ab".repeat(20)
    }&dn=a%1Bb&tr=http%3A%2F%2Ft%2Fa&x.pe=%5B::1%5D:6881&so=0,2-3`,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Name:\s+a\ufffdb$/m);
  assert.match(r.stdout, /^Info hash:\s+(ab){20}$/m);
  assert.match(r.stdout, /^ {2}http:\/\/t\/a$/m);
  assert.match(r.stdout, /^Peer:\s+\[::1\]:6881$/m);
  assert.match(r.stdout, /^Select:\s+0,2,3$/m);
  const bad = await cli("info", "magnet:?dn=nothing");
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    'seedbed: invalid magnet link: no xt=urn:btih: or xt=urn:btmh: info hash\nTry "seedbed --help".\n',
  );
});

Deno.test("info: missing files exit 1, usage errors exit 2, --help exits 0", async () => {
  const missing = await cli("info", "/no/such/file.torrent");
  assert.equal(missing.code, 1);
  assert.equal(oneLine(missing.stderr), "seedbed: cannot read /no/such/file.torrent: no such file");
  const dir = await cli("info", DATA);
  assert.equal(dir.code, 1);
  assert.match(oneLine(dir.stderr), /^seedbed: cannot read /);
  for (const args of [["info"], ["info", "a", "b"], ["info", "--bogus", "x"]]) {
    const r = await cli(...args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, /^seedbed: /);
  }
  const help = await cli("info", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: seedbed info/);
});

Deno.test("create writes a torrent with every option, prints its hash, and info reads it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "out.torrent");
    const r = await cli(
      "create",
      join(DATA, "multi"),
      "-o",
      out,
      "--announce",
      "http://127.0.0.1:6969/announce",
      "-a",
      "udp://127.0.0.1:6969",
      "--piece-length",
      "16384",
      "--private",
      "--comment",
      "a comment",
      "--name",
      "renamed",
      "--web-seed",
      "http://127.0.0.1:8080/",
    );
    assert.equal(r.code, 0, r.stderr);
    const meta = await parseMetainfo(await Deno.readFile(out));
    assert.equal(r.stdout, `${meta.infoHashHex}\n`);
    assert.match(
      oneLine(r.stderr),
      /^Created .*out\.torrent \(v1\): renamed, .* in 5 files, \d+ pieces/,
    );
    assert.equal(meta.name, "renamed");
    assert.equal(meta.pieceLength, 16384);
    assert.equal(meta.private, true);
    assert.equal(meta.comment, "a comment");
    assert.deepEqual(meta.announceList, [["http://127.0.0.1:6969/announce"], [
      "udp://127.0.0.1:6969",
    ]]);
    assert.deepEqual(meta.urlList, ["http://127.0.0.1:8080/"]);
    assert.match(meta.createdBy ?? "", /^Seedbed /);
    const info = await cli("info", out);
    assert.match(info.stdout, new RegExp(`^Info hash:\\s+${meta.infoHashHex}$`, "m"));
    assert.match(info.stdout, /^Web seed:\s+http:\/\/127\.0\.0\.1:8080\/$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("create: usage errors exit 2, unusable input exits 1 with one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "x.torrent");
    const src = join(DATA, "single.txt");
    for (
      const args of [
        ["create"],
        ["create", src],
        ["create", src, "a", "-o", out],
        ["create", src, "-o", out, "--piece-length", "1000"],
        ["create", src, "-o", out, "--piece-length", "lots"],
        ["create", src, "-o", out, "--announce", "not a url"],
        ["create", src, "-o", out, "--frobnicate"],
      ]
    ) {
      const r = await cli(...args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^seedbed: /);
    }
    const missing = await cli("create", join(dir, "nope"), "-o", out);
    assert.equal(missing.code, 1);
    assert.match(
      oneLine(missing.stderr),
      /^seedbed: cannot read .*nope: no such file or directory$/,
    );
    await Deno.mkdir(join(dir, "empty-dir"));
    const empty = await cli("create", join(dir, "empty-dir"), "-o", out);
    assert.equal(empty.code, 1);
    assert.match(oneLine(empty.stderr), /no files in it/);
    const noData = await cli("create", join(DATA, "multi/empty.txt"), "-o", out);
    assert.equal(noData.code, 1);
    assert.match(oneLine(noData.stderr), /holds no data/);
    const unwritable = await cli("create", src, "-o", join(dir, "no/such/dir/x.torrent"));
    assert.equal(unwritable.code, 1);
    assert.match(oneLine(unwritable.stderr), /^seedbed: cannot write .*x\.torrent: /);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("info prints the version, libtorrent's v1 and v2 hashes for its v2 and hybrid torrents, and no padding files", async () => {
  const hashes = JSON.parse(
    await Deno.readTextFile(join(FIXTURES, "real/libtorrent_hashes.json")),
  ) as Record<string, { v1: string | null; v2: string }>;
  for (const [file, h] of Object.entries(hashes)) {
    const r = await cli("info", join(FIXTURES, "real", file));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, new RegExp(`^Info hash v2:\\s+${h.v2}$`, "m"), file);
    if (h.v1) {
      assert.match(r.stdout, /^Version:\s+hybrid \(v1 \+ v2\)$/m);
      assert.match(r.stdout, new RegExp(`^Info hash:\\s+${h.v1}$`, "m"), file);
    } else {
      assert.match(r.stdout, /^Version:\s+v2$/m);
      assert.doesNotMatch(r.stdout, /^Info hash:/m, "a v2-only torrent has no v1 hash");
    }
    assert.doesNotMatch(r.stdout, /\.pad/, `${file}: padding files are not listed`);
  }
  const multi = await cli("info", join(FIXTURES, "real/libtorrent_hybrid_multi.torrent"));
  // the size is what the files hold (208 924 bytes), not the padded piece space; files keep their torrent index
  assert.match(multi.stdout, /^Size:\s+.* \(208924 bytes\)$/m);
  assert.match(multi.stdout, /^Files \(5\):$/m);
  assert.match(multi.stdout, /^ {2}1 .* multi\/a\.txt$/m);
  assert.match(multi.stdout, /^ {2}3 .* multi\/empty\.txt$/m);
  assert.match(multi.stdout, /^ {2}8 .* multi\/nul\.bin$/m);
  const v1 = await cli("info", join(FIXTURES, "real/mktorrent_single.torrent"));
  assert.match(v1.stdout, /^Version:\s+v1$/m);
  assert.doesNotMatch(v1.stdout, /Info hash v2/);
});

Deno.test("info warns on stderr about a symbolic link it will not make, and shows links and executables", async () => {
  const r = await cli("info", join(FIXTURES, "sanitised/symlink_outside.torrent"));
  assert.equal(r.code, 0);
  assert.match(oneLine(r.stderr), /^warning: info\.files\[1\]: symbolic link ignored/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "run.sh"), "#!/bin/sh\n");
    await Deno.chmod(join(dir, "run.sh"), 0o755);
    await Deno.writeTextFile(join(dir, "b.txt"), "b");
    const out = join(dir, "x.torrent");
    const made = await cli("create", dir, "-o", out, "--hybrid");
    assert.equal(made.code, 0, made.stderr);
    const info = await cli("info", out);
    assert.match(info.stdout, /run\.sh \(executable\)$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("create --v2 and --hybrid print their hashes; info reads them back; bad combinations are usage errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const v2 = await cli("create", join(DATA, "multi"), "-o", join(dir, "v2.torrent"), "--v2");
    assert.equal(v2.code, 0, v2.stderr);
    const v2meta = await parseMetainfo(await Deno.readFile(join(dir, "v2.torrent")));
    assert.equal(v2.stdout, `${v2meta.infoHashV2Hex}\n`);
    assert.match(oneLine(v2.stderr), /\(v2\): multi, .* in 5 files/);
    const hy = await cli(
      "create",
      join(DATA, "multi"),
      "-o",
      join(dir, "hy.torrent"),
      "--hybrid",
      "--piece-length",
      "32768",
    );
    assert.equal(hy.code, 0, hy.stderr);
    const hymeta = await parseMetainfo(await Deno.readFile(join(dir, "hy.torrent")));
    assert.equal(hy.stdout, `${hymeta.infoHashHex}\n${hymeta.infoHashV2Hex}\n`);
    const info = await cli("info", join(dir, "hy.torrent"));
    assert.match(info.stdout, new RegExp(`^Info hash v2:\\s+${hymeta.infoHashV2Hex}$`, "m"));
    const both = await cli("create", join(DATA, "multi"), "-o", join(dir, "x"), "--v2", "--hybrid");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exclude each other/);
    const odd = await cli(
      "create",
      join(DATA, "multi"),
      "-o",
      join(dir, "x"),
      "--v2",
      "--piece-length",
      "24576",
    );
    assert.equal(odd.code, 2);
    assert.match(odd.stderr, /must be a power of two for a v2 torrent/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("info of btmh magnet links: the v2 hash, and the v1 hash only when the link has one", async () => {
  const v2 = "ab".repeat(32);
  const only = await cli("info", `magnet:?xt=urn:btmh:1220${v2}&dn=x`);
  assert.equal(only.code, 0, only.stderr);
  assert.match(only.stdout, new RegExp(`^Info hash v2:\\s+${v2}$`, "m"));
  assert.doesNotMatch(only.stdout, /^Info hash:/m);
  const hybrid = await cli(
    "info",
    `magnet:?xt=urn:btih:${"cd".repeat(20)}&xt=urn:btmh:1220${v2}`,
  );
  assert.match(hybrid.stdout, new RegExp(`^Info hash:\\s+${"cd".repeat(20)}$`, "m"));
  assert.match(hybrid.stdout, new RegExp(`^Info hash v2:\\s+${v2}$`, "m"));
});
