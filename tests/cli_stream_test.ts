// `seedbed stream` and `--stream` as a user runs them: a subprocess downloading from a rate-limited libtorrent
// seeder, its HTTP server read with curl while the download runs and after it completed, Ctrl-C at the end.

import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../src/create.ts";
import { cli, spawnCli } from "./_cli.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { makeTorrent, payload, within } from "./_swarm.ts";
import { run } from "./_streaming.ts";

const MiB = 1024 * 1024;

Deno.test({
  name:
    "seedbed stream serves the files over HTTP while they download, and keeps serving and seeding once complete",
  ignore: needs("libtorrent", "curl"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-cli-stream-" });
    try {
      const seedDir = join(root, "seed");
      const { bytes } = await makeTorrent(seedDir, "show", [
        { path: "ep1.mkv", length: 8 * MiB + 3 },
        { path: "notes.txt", length: 1000 },
      ], { pieceLength: 256 * 1024 });
      const torrent = join(root, "show.torrent");
      await Deno.writeFile(torrent, bytes);
      const ep1 = await Deno.readFile(join(seedDir, "show", "ep1.mkv"));
      await using lt = await startLibtorrent("seed", torrent, seedDir, [], {
        env: { LT_UPLOAD_LIMIT: String(2 * MiB) },
      });
      using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const busyPort = (busy.addr as Deno.NetAddr).port;
      await using child = spawnCli([
        "stream",
        torrent,
        ...["-o", join(root, "down"), "--no-dht", "-p", "0", "--peer", `127.0.0.1:${lt.port}`],
        ...["--http-port", String(busyPort), "--json", "--state", join(root, "state")],
      ]);
      const ev = await child.event("stream", (e) => e.event === "stream");
      const url = ev.url as string;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.notEqual(url, `http://127.0.0.1:${busyPort}/`);
      assert.equal(ev.playlist, url + "playlist.m3u");
      await child.stderrMatches(
        new RegExp(`HTTP port ${busyPort} is in use; serving on port \\d+ instead`),
      );
      await child.stderrMatches(
        /Streaming at http:\/\/127\.0\.0\.1:\d+\/ \(playlist: http:\/\/127\.0\.0\.1:\d+\/playlist\.m3u\)/,
      );
      const ready = await child.event("ready", (e) => e.event === "ready");
      // the playlist lists the video (not the text file), with a URL that plays
      const playlist = await (await fetch(ev.playlist as string)).text();
      const lines = playlist.trim().split("\n");
      assert.equal(lines.length, 3, playlist);
      assert.match(lines[2], /\/ep1\.mkv$/);
      // the last 100 000 bytes while the download runs
      const { stdout } = await within(
        60_000,
        "curl's range",
        run("curl", ["-sS", "--fail", "-r", "-100000", "-o", join(root, "tail"), lines[2]]),
      );
      assert.equal(stdout, "");
      assert.deepEqual(await Deno.readFile(join(root, "tail")), ep1.subarray(ep1.length - 100_000));
      assert.ok(
        !child.events.some((e) => e.event === "complete"),
        "the range came before the download completed",
      );
      // the Host check holds (DNS rebinding)
      const evil = await run("curl", [
        ...["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: evil.example"],
        url,
      ]);
      assert.equal(evil.stdout, "421");
      await child.event("complete", (e) => e.event === "complete", 60_000);
      // still serving once complete: the whole file
      await run("curl", ["-sS", "--fail", "-o", join(root, "whole"), lines[2]]);
      assert.deepEqual(await Deno.readFile(join(root, "whole")), ep1);
      assert.match(await (await fetch(url)).text(), /ep1\.mkv<\/a>.*100%/);
      // and seeding: a libtorrent leecher gets the torrent from it (the seeder is gone)
      await lt.stop();
      await using leech = await startLibtorrent("leech", torrent, join(root, "lt"), [
        `127.0.0.1:${ready.port}`,
      ]);
      await leech.line("done", 60_000);
      assert.deepEqual(await Deno.readFile(join(root, "lt", "show", "ep1.mkv")), ep1);
      child.kill("SIGINT");
      assert.equal(await within(30_000, "the exit", child.exited), 130);
      await assert.rejects(fetch(url).then((r) => r.body?.cancel()), "the server is gone");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "download --stream serves while downloading, and after it completed until Ctrl-C",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-cli-stream-" });
    try {
      const seedDir = join(root, "seed");
      const data = payload(2 * MiB + 5, 21);
      await Deno.mkdir(seedDir);
      await Deno.writeFile(join(seedDir, "song.mp3"), data);
      const torrent = join(root, "song.torrent");
      await Deno.writeFile(
        torrent,
        await createTorrent(join(seedDir, "song.mp3"), { pieceLength: 64 * 1024 }),
      );
      await using lt = await startLibtorrent("seed", torrent, seedDir, [], {
        env: { LT_UPLOAD_LIMIT: String(1 * MiB) },
      });
      await using child = spawnCli([
        "download",
        torrent,
        ...["-o", join(root, "down"), "--no-dht", "-p", "0", "--peer", `127.0.0.1:${lt.port}`],
        ...["--stream", "--http-port", "0", "--sequential", "--json", "--state", join(root, "s")],
      ]);
      const ev = await child.event("stream", (e) => e.event === "stream");
      const playlist = await (await fetch(ev.playlist as string)).text();
      const song = playlist.trim().split("\n")[2];
      assert.match(song, /\/song\.mp3$/);
      const res = await fetch(song);
      assert.equal(res.headers.get("content-type"), "audio/mpeg");
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), data);
      // a player must not be cut off when the download completes: it keeps serving until Ctrl-C
      await child.event("complete", (e) => e.event === "complete", 60_000);
      const again = await fetch(song, { headers: { range: "bytes=-5" } });
      assert.deepEqual(new Uint8Array(await again.arrayBuffer()), data.subarray(data.length - 5));
      child.kill("SIGINT");
      assert.equal(await within(30_000, "the exit", child.exited), 130);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("stream's help and the flags that go with --stream", async () => {
  const help = await cli(["stream", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stderr, /Usage: seedbed stream/);
  assert.match(help.stderr, /mpv http:\/\/127\.0\.0\.1:8888\/playlist\.m3u/);
  assert.match(help.stderr, /--http-port PORT/);
  assert.match(help.stderr, /--sequential/);
  const main = await cli(["--help"]);
  assert.match(main.stdout, /seedbed stream <file\.torrent\|magnet>/);
  const lone = await cli(["download", "x.torrent", "--http-port", "9000"]);
  assert.equal(lone.code, 2);
  assert.match(lone.stderr, /--http-port goes with --stream/);
  const bad = await cli(["stream", "x.torrent", "--http-port", "70000"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--http-port: "70000" is not a port number/);
});
