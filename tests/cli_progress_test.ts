import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { Session } from "../src/session/session.ts";
import { TrackerServer } from "../src/tracker/server.ts";
import { cli, MAIN, spawnCli } from "./_cli.ts";
import { makeTorrent, type SpecFile, within } from "./_swarm.ts";
import {
  displayWidth,
  formatBoard,
  formatBytes,
  formatDuration,
  formatProgress,
  StatusDisplay,
  truncate,
} from "../src/cli/progress.ts";
import { parsePeerAddress, parseRate, parseSelection, UsageError } from "../src/cli/download.ts";

Deno.test("formatBytes() uses binary units with three significant digits", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(12.34 * 1024 * 1024), "12.3 MiB");
  assert.equal(formatBytes(256 * 1024 ** 3), "256 GiB");
  assert.equal(formatBytes(-1), "?");
});

Deno.test("formatDuration() is compact and gives up on absurd values", () => {
  assert.equal(formatDuration(45), "45s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(2 * 3600 + 3 * 60), "2h03m");
  assert.equal(formatDuration(Infinity), "--");
});

Deno.test("formatProgress() shows percent, sizes, speeds, peers and ETA", () => {
  const line = formatProgress({
    have: 512 * 1024 * 1024,
    total: 1024 * 1024 * 1024,
    down: 100 * 1024 * 1024,
    up: 0,
    unchoked: 1,
    peers: 3,
  });
  assert.equal(line, "[ 50.0%] 512 MiB/1.00 GiB ↓ 100 MiB/s ↑ 0 B/s ETA 5s peers 1/3");
});

Deno.test("formatProgress() shows verification progress while hash-checking", () => {
  const line = formatProgress({
    have: 0,
    total: 100,
    down: 0,
    up: 0,
    unchoked: 0,
    peers: 0,
    verifying: 0.42,
  });
  assert.match(line, /^\[verifying {2}42%\]/);
});

Deno.test("parseSelection() takes 1-based numbers and ranges", () => {
  assert.deepEqual([...parseSelection("1-3,7", 8)], [0, 1, 2, 6]);
  assert.throws(() => parseSelection("0", 3), UsageError);
  assert.throws(() => parseSelection("2-9", 3), /outside 1-3/);
  assert.throws(
    () => parseSelection("3-1", 3),
    /^UsageError: --select: 3-1 runs backwards; write 1-3$/,
  );
  assert.throws(() => parseSelection("a", 3), UsageError);
});

Deno.test("parsePeerAddress() accepts host:port and [v6]:port", () => {
  assert.deepEqual(parsePeerAddress("127.0.0.1:6881"), { host: "127.0.0.1", port: 6881 });
  assert.deepEqual(parsePeerAddress("[::1]:51413"), { host: "::1", port: 51413 });
  assert.throws(() => parsePeerAddress("127.0.0.1"), UsageError);
  assert.throws(() => parsePeerAddress("h:70000"), UsageError);
});

Deno.test("formatProgress() fits any width by dropping fields from the right, never wrapping", () => {
  const s = {
    have: 430 * 1024 * 1024,
    total: 1024 * 1024 * 1024,
    down: 112 * 1024 * 1024,
    up: 3 * 1024,
    unchoked: 1,
    peers: 3,
    swarm: { seeders: 12, leechers: 3 },
  };
  const full = formatProgress(s);
  assert.equal(
    full,
    "[ 42.0%] 430 MiB/1.00 GiB ↓ 112 MiB/s ↑ 3.00 KiB/s ETA 5s peers 1/3 seeders 12 leechers 3",
  );
  assert.equal(formatProgress(s, 60), "[ 42.0%] 430 MiB/1.00 GiB ↓ 112 MiB/s ↑ 3.00 KiB/s ETA 5s");
  assert.equal(formatProgress(s, 40), "[ 42.0%] 430 MiB/1.00 GiB ↓ 112 MiB/s");
  assert.equal(formatProgress(s, 12), "[ 42.0%]");
  for (let w = 1; w <= full.length + 2; w++) {
    assert.ok(displayWidth(formatProgress(s, w)) <= w, `width ${w}`);
  }
});

Deno.test("formatProgress() says why it is paused or waiting instead of a decaying speed and an absurd ETA", () => {
  const base = {
    have: 10 * 1024 * 1024,
    total: 40 * 1024 * 1024,
    down: 12,
    up: 0,
    unchoked: 0,
    peers: 2,
  };
  assert.equal(
    formatProgress({ ...base, paused: "disk full" }),
    "[ 25.0%] 10.0 MiB/40.0 MiB paused: disk full",
  );
  const waiting = "waiting for peers — no trackers, DHT off, no --peer given";
  assert.equal(
    formatProgress({ ...base, peers: 0, waiting }),
    `[ 25.0%] 10.0 MiB/40.0 MiB ${waiting}`,
  );
  // a long reason is cut short, not dropped
  assert.equal(
    formatProgress({ ...base, peers: 0, waiting }, 50),
    "[ 25.0%] 10.0 MiB/40.0 MiB waiting for peers — no…",
  );
  // connected peers: the usual fields
  assert.match(formatProgress({ ...base, waiting }), /↓ 12 B\/s/);
  // -s: the total is what was selected
  assert.equal(
    formatProgress({ ...base, selected: true }, 37),
    "[ 25.0%] 10.0 MiB/40.0 MiB selected",
  );
  // not 100.0% until it is
  assert.match(formatProgress({ ...base, have: base.total - 1 }), /^\[ 99\.9%\]/);
});

Deno.test("the final line shows the average speed, not peers or an ETA", () => {
  const line = formatProgress({
    have: 40,
    total: 40,
    down: 2 * 1024 * 1024,
    up: 0,
    unchoked: 0,
    peers: 0,
    final: true,
  });
  assert.equal(line, "[100.0%] 40 B/40 B ↓ 2.00 MiB/s average");
});

Deno.test("formatBoard() puts the totals over one line per torrent, each within the width, wide names cut by columns", () => {
  const snap = { have: 1024, total: 4096, down: 1024, up: 0, unchoked: 1, peers: 1 };
  const lines = formatBoard(
    { ...snap, torrents: { done: 1, count: 3 } },
    [
      { name: "ubuntu-24.04-desktop-amd64.iso", snapshot: snap },
      { name: "日本語のとても長い名前のトレント", status: "fetching the torrent's metadata" },
      { name: "x", status: "done: 1.00 KiB in 1s" },
    ],
    60,
  );
  assert.equal(lines.length, 4);
  for (const l of lines) assert.ok(displayWidth(l) <= 60, `${displayWidth(l)}: ${l}`);
  assert.equal(lines[0], "[ 25.0%] 1.00 KiB/4.00 KiB 1 of 3 done ↓ 1.00 KiB/s ↑ 0 B/s");
  assert.equal(lines[1], "  ubuntu-24.04-desktop-am… [ 25.0%] 1.00 KiB/4.00 KiB");
  assert.equal(lines[2], "  日本語のとても長い名前…  fetching the torrent's metadata");
  assert.equal(displayWidth("日本語"), 6);
  assert.equal(truncate("abcdef", 4), "abc…");
});

Deno.test("StatusDisplay redraws its block in place on a terminal and prints messages above it", () => {
  let out = "";
  const d = new StatusDisplay((t) => out += t, true, () => 40);
  assert.equal(d.width, 39);
  d.show(["a", "b", "c"]);
  d.show(["A", "B", "C"]);
  d.message("hello\n");
  d.show(["x", "y"], true);
  assert.equal(
    out,
    "\r\x1b[Ja\nb\nc" + "\x1b[2A\r\x1b[JA\nB\nC" + "\x1b[2A\r\x1b[J" + "hello\n" + "\r\x1b[Jx\ny\n",
  );
  // in a log: the first line, when it changed
  let log = "";
  const l = new StatusDisplay((t) => log += t, false);
  l.show(["one", "detail"]);
  l.show(["one", "other"]);
  l.show(["two"]);
  l.show(["two"], true);
  assert.equal(log, "one\ntwo\ntwo\n");
});

Deno.test("parseRate() reads bytes per second with binary suffixes", () => {
  assert.equal(parseRate("2M", "--limit-down"), 2 * 1024 * 1024);
  assert.equal(parseRate("500K", "--limit-down"), 500 * 1024);
  assert.equal(parseRate("1.5MiB/s", "--limit-down"), 1.5 * 1024 * 1024);
  assert.equal(parseRate("1g", "--limit-down"), 1024 ** 3);
  assert.equal(parseRate("1000", "--limit-down"), 1000);
  assert.equal(parseRate("0", "--limit-down"), 0);
  assert.throws(() => parseRate("-1M", "--limit-up"), /--limit-up: "-1M" is not a rate/);
  assert.throws(() => parseRate("2X", "--limit-up"), UsageError);
});

// ------------------------------------------------------------ the line as the command line draws it

const ALPHA: SpecFile[] = [
  { path: "one.bin", length: 300_000 },
  { path: "two.bin", length: 200_000 },
  { path: "dir/three.bin", length: 123_456 },
];

Deno.test("with no way to find peers the line says so, and Ctrl-C ends it", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-waiting-" });
  try {
    const { bytes } = await makeTorrent(join(root, "seed"), "alpha", ALPHA, { pieceLength: 16384 });
    await Deno.writeFile(join(root, "alpha.torrent"), bytes);
    await using child = spawnCli([
      join(root, "alpha.torrent"),
      "-o",
      join(root, "leech"),
      "--no-dht",
      "-p",
      "0",
      "--state",
      join(root, "state"),
    ]);
    const line = "[  0.0%] 0 B/609 KiB waiting for peers — no trackers, DHT off, no --peer given";
    await child.stderrMatches(new RegExp(`^${line.replace(/[[\]().+*?]/g, "\\$&")}$`, "m"));
    child.kill("SIGINT");
    assert.equal(await child.exited, 130);
    assert.match(
      child.stderr(),
      /\n\[ {2}0\.0%\] 0 B\/609 KiB ↓ 0 B\/s average\nseedbed: interrupted; resume data written, run the same command again to resume\n$/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("-s shows the selected size, and a tracker's seeders and leechers; the final line has no peers", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-swarm-" });
  try {
    await using tracker = new TrackerServer();
    const files = [
      { path: "a.bin", length: 1024 * 1024 },
      { path: "b.bin", length: 2 * 1024 * 1024 },
      { path: "c.bin", length: 1024 * 1024 },
    ];
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "alpha", files, {
      pieceLength: 65536,
      announce: [[tracker.url]],
    });
    await Deno.writeFile(join(root, "alpha.torrent"), bytes);
    await using _seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
      uploadLimit: 512 * 1024, // 3 MiB in about 6 s (the first MiB may go at once): progress lines get printed
    });
    await within(
      10_000,
      "the seeder's announce",
      (async () => {
        while (tracker.peerCount(meta.infoHash) === 0) await new Promise((r) => setTimeout(r, 50));
      })(),
    );
    const leech = join(root, "leech");
    const r = await cli([
      join(root, "alpha.torrent"),
      "-o",
      leech,
      "--no-dht",
      "-p",
      "0",
      "-s",
      "1,2",
      "--state",
      join(root, "state"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.ok(
      lines.includes(`Downloading 2 of 3 files of alpha (3.00 MiB of 4.00 MiB) into ${leech}`),
      r.stderr,
    );
    const progress = lines.filter((l) => l.startsWith("["));
    assert.ok(
      progress.some((l) =>
        /^\[ *\d+\.\d%\] \S+ \S+\/3\.00 MiB selected ↓ .* peers 1\/1 seeders 1 leechers [01]$/.test(
          l,
        )
      ),
      r.stderr,
    );
    assert.equal(
      progress.at(-1)!.replace(/↓ \S+ \S+\/s/, "↓ R"),
      "[100.0%] 3.00 MiB/3.00 MiB selected ↓ R average",
    );
    assert.match(lines.at(-1)!, /^Done: alpha, 3\.\d\d MiB downloaded in \d+s/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const hasScript = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "on a terminal of 60 columns every line fits: totals and one line per torrent, redrawn in place",
  ignore: !hasScript || Deno.build.os !== "linux",
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-cli-pty-" });
    try {
      const seedDir = join(root, "seed");
      const a = await makeTorrent(seedDir, "alpha-with-a-rather-long-name", ALPHA, {
        pieceLength: 16384,
      });
      const b = await makeTorrent(seedDir, "beta", [{ path: "b.bin", length: 400_000 }], {
        pieceLength: 16384,
      });
      await Deno.writeFile(join(root, "a.torrent"), a.bytes);
      await Deno.writeFile(join(root, "b.torrent"), b.bytes);
      // a seeder at 300 KiB/s: about 3 s, several redraws
      await using seeder = await Session.open({
        host: "127.0.0.1",
        basedir: seedDir,
        limits: { upload: 300 * 1024 },
      });
      for (const m of [a.meta, b.meta]) {
        await (await seeder.add({ metainfo: m }, { resumeFile: false })).ready;
      }
      const command = [
        "stty cols 60 rows 24;",
        "exec",
        Deno.execPath(),
        "run -A",
        MAIN,
        join(root, "a.torrent"),
        join(root, "b.torrent"),
        "-o",
        join(root, "leech"),
        "--no-dht -p 0 --peer",
        `127.0.0.1:${seeder.port}`,
        "--state",
        join(root, "state"),
      ].join(" ");
      const out = await new Deno.Command("script", {
        args: ["-q", "-e", "-c", command, "/dev/null"],
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
        env: { NO_COLOR: "1" },
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, text);
      // the screen's lines between cursor movements
      const ESC = String.fromCharCode(27);
      const pieces = text.replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, "g"), "\n").split(
        /[\r\n]+/,
      ).filter((l) => l);
      // the progress block's lines (messages such as "Downloading … into DIR" may wrap like any output)
      const block = pieces.filter((p) => p.startsWith("[") || p.startsWith("  "));
      assert.ok(block.length > 6, text);
      for (const p of block) assert.ok(displayWidth(p) <= 59, `${displayWidth(p)} columns: "${p}"`);
      assert.ok(
        pieces.some((p) => /^ {2}alpha-with-a-rather-lo… /.test(p)),
        "a line for the first torrent",
      );
      assert.ok(pieces.some((p) => /^ {2}beta +\[/.test(p)), "a line for the second torrent");
      assert.ok(pieces.some((p) => /^\[ *\d+\.\d%\] .* of 2 done/.test(p)), "a line of totals");
      assert.ok(text.includes(`${ESC}[2A\r${ESC}[J`), "redrawn in place");
      assert.match(text, /Done: 2 torrents, 999 KiB downloaded in \d+s/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("while seeding the line counts connected peers, not who unchokes us", () => {
  const line = formatProgress({
    have: 4096,
    total: 4096,
    down: 0,
    up: 2048,
    unchoked: 0,
    peers: 3,
    seeding: true,
    uploaded: 8192,
  });
  assert.equal(
    line,
    "[100.0%] 4.00 KiB/4.00 KiB ↓ 0 B/s ↑ 2.00 KiB/s seeding, uploaded 8.00 KiB peers 3",
  );
});
