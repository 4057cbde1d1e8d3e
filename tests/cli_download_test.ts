// The download and seed commands with several torrents in one session, their limits, encryption and port, -q,
// and resume data that was torn: each through the CLI as a subprocess.
import assert from "node:assert/strict";
import { join } from "node:path";
import { resumeFileFor } from "../src/cli/_common.ts";
import { formatMagnet } from "../src/magnet.ts";
import { Session } from "../src/session/session.ts";
import { Client } from "../src/client.ts";
import { cli, events, spawnCli } from "./_cli.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const ALPHA: SpecFile[] = [
  { path: "one.bin", length: 300_000 },
  { path: "two.bin", length: 200_000 },
  { path: "dir/three.bin", length: 123_456 },
];
const BETA: SpecFile[] = [{ path: "b.bin", length: 400_000 }];

/** Two torrents in a temp dir, seeded by one session on 127.0.0.1. */
async function twoTorrents(root: string) {
  const seedDir = join(root, "seed");
  const a = await makeTorrent(seedDir, "alpha", ALPHA, { pieceLength: 16384 });
  const b = await makeTorrent(seedDir, "beta", BETA, { pieceLength: 16384 });
  await Deno.writeFile(join(root, "alpha.torrent"), a.bytes);
  await Deno.writeFile(join(root, "beta.torrent"), b.bytes);
  const seeder = await Session.open({ host: "127.0.0.1", basedir: seedDir });
  for (const m of [a.meta, b.meta]) {
    const t = await seeder.add({ metainfo: m }, { resumeFile: false });
    await t.ready;
  }
  return { seeder, seedDir, alpha: a.meta, beta: b.meta };
}

Deno.test("several torrents in one session: one --peer for all, every JSON event names its torrent, exit 0", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-multi-" });
  try {
    const { seeder, seedDir, alpha, beta } = await twoTorrents(root);
    await using _ = seeder;
    const leech = join(root, "leech");
    const r = await cli([
      join(root, "alpha.torrent"),
      join(root, "beta.torrent"),
      "-o",
      leech,
      "--no-dht",
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "--json",
      "--state",
      join(root, "state"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const list = events(r.stdout);
    const hashes = new Set([alpha.infoHashHex, beta.infoHashHex]);
    for (const e of list) assert.ok(hashes.has(e.infoHash as string), JSON.stringify(e));
    const complete = list.filter((e) => e.event === "complete");
    assert.deepEqual(new Set(complete.map((e) => e.infoHash)), hashes);
    for (const e of complete) {
      const secs = e.seconds as number;
      assert.equal(Math.round(secs * 10), secs * 10, `seconds rounded: ${secs}`);
    }
    const ready = list.filter((e) => e.event === "ready");
    assert.equal(new Set(ready.map((e) => e.port)).size, 1, "one listening port for both");
    assert.ok(await sameFiles(join(seedDir, "alpha"), join(leech, "alpha"), ALPHA));
    assert.ok(await sameFiles(join(seedDir, "beta"), join(leech, "beta"), BETA));
    assert.match(r.stderr, /^Done: alpha, 609 KiB downloaded in \d+s \(.*\/s\)$/m);
    assert.match(r.stderr, /^Done: beta, 391 KiB downloaded in \d+s \(.*\/s\)$/m);
    assert.match(r.stderr, /\nDone: 2 torrents, 999 KiB downloaded in \d+s\n$/);
    // resume data is kept in the state directory by info hash and folder, nothing beside the data
    for (const m of [alpha, beta]) {
      const path = resumeFileFor(join(root, "state"), m.infoHashHex, leech);
      assert.match(path, new RegExp(`/downloads/${m.infoHashHex}-[0-9a-f]{8}\\.resume$`));
      await Deno.stat(path);
    }
    assert.notEqual(
      resumeFileFor(join(root, "state"), alpha.infoHashHex, leech),
      resumeFileFor(join(root, "state"), alpha.infoHashHex, join(root, "elsewhere")),
    );
    for await (const e of Deno.readDir(leech)) assert.doesNotMatch(e.name, /seedbed-resume/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("-q prints the summary on success, and errors and the summary when a torrent fails (exit 1 naming it)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-quiet-" });
  try {
    const { seeder } = await twoTorrents(root);
    await using _ = seeder;
    const base = ["--no-dht", "-p", "0", "--peer", `127.0.0.1:${seeder.port}`, "-q"];
    const ok = await cli([
      join(root, "alpha.torrent"),
      "-o",
      join(root, "a"),
      ...base,
      "--state",
      join(root, "s1"),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /^Done: alpha, 609 KiB downloaded in \d+s \([^)]*\/s\)\n$/);
    // a magnet link nobody has: its metadata never comes
    const hash = "ab".repeat(20);
    const magnet = formatMagnet({ infoHash: Uint8Array.fromHex(hash) });
    const bad = await cli([
      join(root, "alpha.torrent"),
      magnet,
      "-o",
      join(root, "b"),
      ...base,
      "--metadata-timeout",
      "2",
      "--state",
      join(root, "s2"),
    ]);
    assert.equal(bad.code, 1, bad.stderr);
    const lines = bad.stderr.trimEnd().split("\n").sort();
    assert.equal(lines.length, 3, bad.stderr);
    assert.match(lines[0], /^Done: alpha, 609 KiB downloaded in \d+s/);
    assert.equal(lines[1], `seedbed: 1 of 2 torrents failed: magnet link ${hash}`);
    assert.match(
      lines[2],
      new RegExp(
        `^seedbed: magnet link ${hash}: could not fetch the torrent's metadata within 2 s \\(\\d+ peers tried\\)$`,
      ),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a port held by another program: a download listens on a free one and says which; seed exits 1", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-port-" });
  try {
    const { seeder } = await twoTorrents(root);
    await using _ = seeder;
    using held = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const port = (held.addr as Deno.NetAddr).port;
    const r = await cli([
      join(root, "beta.torrent"),
      "-o",
      join(root, "leech"),
      "--no-dht",
      "-p",
      String(port),
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "--json",
      "--state",
      join(root, "state"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const used = events(r.stdout).find((e) => e.event === "ready")!.port as number;
    assert.notEqual(used, port);
    assert.match(
      r.stderr,
      new RegExp(`^seedbed: port ${port} is in use; listening on port ${used} instead$`, "m"),
    );
    const seed = await cli([
      "seed",
      join(root, "beta.torrent"),
      "-o",
      join(root, "seed"),
      "-p",
      String(port),
      "--no-dht",
      "--state",
      join(root, "state"),
    ]);
    assert.equal(seed.code, 1);
    assert.equal(
      seed.stderr,
      `seedbed: port ${port} is in use by another program; choose another with -p PORT, or -p 0 for any free port\n`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--limit-down and seed's --limit-up hold the transfer to the rate given (2M, 512K)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-limits-" });
  try {
    const files = [{ path: "x.bin", length: 3 * 1024 * 1024 }];
    const { meta, bytes } = await makeTorrent(join(root, "seed"), "x", files, {
      pieceLength: 65536,
    });
    const torrent = join(root, "x.torrent");
    await Deno.writeFile(torrent, bytes);
    {
      await using seeder = await Client.open({
        metainfo: meta,
        basedir: join(root, "seed"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      const r = await cli([
        torrent,
        "-o",
        join(root, "down"),
        "--no-dht",
        "-p",
        "0",
        "--peer",
        `127.0.0.1:${seeder.port}`,
        "--limit-down",
        "1M",
        "--json",
        "--state",
        join(root, "state"),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const secs = events(r.stdout).find((e) => e.event === "complete")!.seconds as number;
      // 3 MiB at 1 MiB/s: at least 2.5 s, whatever the machine
      assert.ok(secs >= 2.5, `3 MiB in ${secs} s at --limit-down 1M`);
    }
    // seeding with --limit-up 512K: 6 s for 3 MiB; at least 3 s whatever the bursts (a grant may go into debt)
    await using child = spawnCli([
      "seed",
      torrent,
      "-o",
      join(root, "seed"),
      "--no-dht",
      "-p",
      "0",
      "--limit-up",
      "512K",
      "--json",
      "--state",
      join(root, "state2"),
    ]);
    const ready = await child.event("ready", (e) => e.event === "ready");
    await using leecher = await Client.open({
      metainfo: meta,
      basedir: join(root, "up"),
      host: "127.0.0.1",
      resumeFile: false,
      peers: [{ host: "127.0.0.1", port: ready.port as number }],
    });
    const started = performance.now();
    await within(60_000, "the limited download", leecher.done);
    const secs = (performance.now() - started) / 1000;
    assert.ok(secs >= 3, `3 MiB in ${secs.toFixed(1)} s from a seed at --limit-up 512K`);
    child.kill("SIGINT");
    assert.equal(await child.exited, 130);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("torn resume data (a cut snapshot, a journal ending mid-record) is checked against the data, not trusted, and the download completes", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-cli-torn-" });
  try {
    const { seeder, seedDir, alpha } = await twoTorrents(root);
    await using _ = seeder;
    const state = join(root, "state");
    const leech = join(root, "leech");
    // a whole first download, then its data partly removed and its resume data torn
    const args = [
      join(root, "alpha.torrent"),
      "-o",
      leech,
      "--no-dht",
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${seeder.port}`,
      "--json",
      "--state",
      state,
    ];
    assert.equal((await cli(args)).code, 0);
    await Deno.remove(join(leech, "alpha", "two.bin"));
    const resume = resumeFileFor(state, alpha.infoHashHex, leech);
    const snapshot = await Deno.readFile(resume);
    await Deno.writeFile(resume, snapshot.subarray(0, snapshot.length >> 1));
    await Deno.writeFile(
      `${resume}.journal`,
      new Uint8Array([0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 1]),
    );
    const r = await cli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stderr.split("\n").filter((l) => l.startsWith("seedbed:")), [], "no error");
    const ready = events(r.stdout).find((e) => e.event === "ready")!;
    assert.ok((ready.have as number) > 0, "what is on disk was found again");
    assert.ok(await sameFiles(join(seedDir, "alpha"), join(leech, "alpha"), ALPHA));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** The peers libtorrent logged, from LT_PEERLOG. */
async function peerLog(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((l) => l).map((l) => JSON.parse(l));
}

Deno.test({
  name:
    "--encryption require --encryption-rc4: libtorrent downloads from our seed over RC4; without --encryption-rc4 over plaintext after the handshake",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-cli-enc-" });
    try {
      const files = [{ path: "e.bin", length: 1024 * 1024 }];
      const { bytes } = await makeTorrent(join(root, "seed"), "e", files, { pieceLength: 65536 });
      const torrent = join(root, "e.torrent");
      await Deno.writeFile(torrent, bytes);
      for (const rc4 of [true, false]) {
        await using child = spawnCli([
          "seed",
          torrent,
          "-o",
          join(root, "seed"),
          "--no-dht",
          "-p",
          "0",
          "--encryption",
          "require",
          ...(rc4 ? ["--encryption-rc4"] : []),
          "--limit-up", // a second or so: long enough for libtorrent's peer log to see the connection
          "1M",
          "--json",
          "--state",
          join(root, `state-${rc4}`),
        ]);
        const ready = await child.event("ready", (e) => e.event === "ready");
        const log = join(root, `peers-${rc4}.jsonl`);
        const dir = join(root, `lt-${rc4}`);
        await using lt = await startLibtorrent("leech", torrent, dir, [`127.0.0.1:${ready.port}`], {
          // libtorrent dials with an encrypted handshake and offers both plaintext and RC4 after it
          env: {
            LT_SETTINGS: JSON.stringify({
              out_enc_policy: 0,
              in_enc_policy: 0,
              allowed_enc_level: 3,
            }),
            LT_PEERLOG: log,
          },
        });
        await lt.line("done", 60_000);
        assert.ok(await sameFiles(join(root, "seed", "e"), join(dir, "e"), files));
        // the lines of connections past their handshakes (libtorrent knows who we are)
        const peers = (await peerLog(log)).filter((p) => p.client !== "");
        assert.ok(peers.length > 0, "libtorrent logged the connection");
        for (const p of peers) {
          assert.equal(p.rc4, rc4, JSON.stringify(p));
          assert.equal(p.plaintext_encrypted, !rc4, JSON.stringify(p));
        }
        child.kill("SIGINT");
        assert.equal(await child.exited, 130);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "--encryption require against a libtorrent seed that speaks only plain BitTorrent: one line says why, Ctrl-C stops",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-cli-require-" });
    try {
      const files = [{ path: "p.bin", length: 256 * 1024 }];
      const { bytes } = await makeTorrent(join(root, "seed"), "p", files, { pieceLength: 65536 });
      const torrent = join(root, "p.torrent");
      await Deno.writeFile(torrent, bytes);
      await using lt = await startLibtorrent("seed", torrent, join(root, "seed"), [], {
        // encryption disabled both ways (pe_disabled)
        env: { LT_SETTINGS: JSON.stringify({ out_enc_policy: 2, in_enc_policy: 2 }) },
      });
      await using child = spawnCli([
        torrent,
        "-o",
        join(root, "leech"),
        "--no-dht",
        "-p",
        "0",
        "--peer",
        `127.0.0.1:${lt.port}`,
        "--encryption",
        "require",
        "--json",
        "--state",
        join(root, "state"),
      ]);
      const failed = await child.event("the refusal", (e) => e.event === "peerfail");
      assert.equal(failed.address, `127.0.0.1:${lt.port}`);
      await child.stderrMatches(
        new RegExp(
          `could not connect to 127\\.0\\.0\\.1:${lt.port}: .*encryption is required, so no plain BitTorrent handshake was tried`,
        ),
      );
      child.kill("SIGINT");
      assert.equal(await child.exited, 130);
      assert.ok(!child.events.some((e) => e.event === "piece"), "nothing downloaded");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
