// Web seeds wired into the engine (src/swarm/webseeds.ts): a Client and the command line download from nginx
// alone, from nginx beside a libtorrent peer, and drop a lying server while an honest one completes the download.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { type Metainfo, parseMetainfo } from "../src/metainfo.ts";
import type { PeerInfo } from "../src/swarm/types.ts";
import { UsageError } from "../src/cli/_common.ts";
import { parseDownloadArgs } from "../src/cli/download_flags.ts";
import { cli, spawnCli } from "./_cli.ts";
import { needs, startLibtorrent } from "./_lab.ts";
import { payload, sameFiles, type SpecFile, within } from "./_swarm.ts";
import { fileOf, parseRange, serveScripted, startNginx } from "./_webseed.ts";

const PIECE = 32768;
/** File boundaries inside pieces, an empty file, a sub-folder and a name that needs percent-encoding. */
const FILES: SpecFile[] = [
  { path: "a.bin", length: 300_000 },
  { path: "sub/b.bin", length: 7 },
  { path: "empty.bin", length: 0 },
  { path: "sub/c d&e.bin", length: 450_000 },
];

/** Writes the files under `<root>/www/t` (nginx's root is `<root>/www`). */
async function writeFiles(root: string, files: SpecFile[]): Promise<Map<string, Uint8Array>> {
  const byUrl = new Map<string, Uint8Array>();
  let seed = 1;
  for (const f of files) {
    const path = join(root, "www", "t", f.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    const data = payload(f.length, seed++);
    await Deno.writeFile(path, data);
    byUrl.set(`/t/${f.path}`, data);
  }
  await Deno.chmod(root, 0o755); // nginx's worker reads the files as another user
  return byUrl;
}

/** `seedbed create` as a user runs it; returns the parsed torrent. */
async function create(root: string, out: string, webSeeds: string[]): Promise<Metainfo> {
  const r = await cli([
    "create",
    join(root, "www", "t"),
    "-o",
    out,
    "--piece-length",
    String(PIECE),
    ...webSeeds.flatMap((w) => ["-w", w]),
  ]);
  assert.equal(r.code, 0, r.stderr);
  return await parseMetainfo(await Deno.readFile(out));
}

/** A download through the CLI (`--json`), to its end or for at most `ms` (then it is killed and this throws). */
async function download(
  args: string[],
  ms = 60_000,
): Promise<{ code: number; events: Record<string, unknown>[]; stderr: string }> {
  await using child = spawnCli(args);
  const code = await within(ms, `the CLI to exit: ${args.join(" ")}`, child.exited);
  return { code, events: child.events, stderr: child.stderr() };
}

/** nginx's access log as { path, range, status, bytes } (every request of ours carries a Range). */
function requests(
  lines: string[],
): {
  path: string;
  range: [number, number] | undefined;
  status: number;
  bytes: number;
  /** When nginx read the request (s since the epoch): logged at its end, less its duration. */
  start: number;
}[] {
  return lines.map((line) => {
    const m = /^GET "([^"]*)" "([^"]*)" (\d+) (\d+) ([\d.]+) ([\d.]+)$/.exec(line);
    assert.ok(m, `unexpected log line ${line}`);
    return {
      path: m[1],
      range: parseRange(m[2]),
      status: Number(m[3]),
      bytes: Number(m[4]),
      start: Number(m[5]) - Number(m[6]),
    };
  });
}

Deno.test({
  name:
    "CLI: a multi-file torrent made with create -w downloads byte-exact from nginx alone; with --no-web-seeds nothing is fetched",
  ignore: needs("nginx"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-webseeds-" });
    try {
      await writeFiles(root, FILES);
      await using nginx = await startNginx(join(root, "www"));
      const torrent = join(root, "t.torrent");
      const meta = await create(root, torrent, [`${nginx.origin}/`]);
      assert.deepEqual(meta.urlList, [`${nginx.origin}/`]);
      assert.deepEqual(meta.announceList, [], "no tracker");

      // --no-web-seeds: no peer, no tracker, the web seed switched off: nothing happens
      const off = join(root, "off");
      await using child = spawnCli([
        torrent,
        "-o",
        off,
        "--no-dht",
        "-p",
        "0",
        "--no-web-seeds",
        "--json",
        "--state",
        join(root, "state-off"),
      ]);
      await child.event("ready", (e) => e.event === "ready");
      // three progress reports (a second apart) with nothing downloaded
      await child.event(
        "a third progress event",
        (e) => child.events.filter((x) => x.event === "progress").indexOf(e) >= 2,
      );
      for (const e of child.events.filter((e) => e.event === "progress")) {
        assert.equal(e.downloaded, 0);
        assert.equal(e.left, meta.length);
        assert.equal(e.peers, 0);
      }
      child.kill("SIGINT");
      assert.equal(await child.exited, 130);
      assert.match(child.stderr(), /waiting for peers — .*web seeds off/);
      assert.deepEqual(await nginx.accessLog(), [], "nothing asked of nginx");

      // the same torrent, web seeds on (the default)
      const out = join(root, "out");
      const r = await download([
        torrent,
        "-o",
        out,
        "--no-dht",
        "-p",
        "0",
        "--json",
        "--state",
        join(root, "state"),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(await sameFiles(join(root, "www", "t"), join(out, "t"), FILES), "byte-exact");
      assert.deepEqual(
        r.stderr.split("\n").filter((l) => l.startsWith("seedbed:")),
        [],
        "no error",
      );
      const evs = r.events;
      assert.ok(
        evs.some((e) => e.event === "peer" && e.address === `${nginx.origin}/`),
        "the web seed shows as a peer",
      );
      const done = evs.find((e) => e.event === "complete")!;
      assert.equal(done.downloaded, meta.length, "every byte from the web seed, once");
      const log = requests(await nginx.accessLog());
      assert.ok(log.length > 0 && log.length < meta.pieceCount, `${log.length} ranged GETs`);
      for (const q of log) {
        assert.equal(q.status, 206);
        assert.ok(q.range && q.bytes === q.range[1] - q.range[0] + 1);
      }
      assert.equal(log.reduce((n, q) => n + q.bytes, 0), meta.length, "each byte asked for once");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "CLI: one libtorrent peer with half the pieces plus nginx for the rest, byte-exact, both sources contributing",
  ignore: needs("nginx", "libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-webseeds-lt-" });
    try {
      const files: SpecFile[] = [
        { path: "a.bin", length: 3_000_000 },
        { path: "sub/b.bin", length: 12_345 },
        { path: "c.bin", length: 5_000_000 },
      ];
      await writeFiles(root, files);
      // 2 MiB/s a response: the web seed's first run takes a while, time enough for libtorrent to serve its part
      await using nginx = await startNginx(join(root, "www"), { limitRate: "2m" });
      const torrent = join(root, "t.torrent");
      const meta = await create(root, torrent, [`${nginx.origin}/`]);
      // libtorrent gets the same torrent (same info hash) without the url-list: it must not use nginx itself
      const ltTorrent = join(root, "lt.torrent");
      const ltMeta = await create(root, ltTorrent, []);
      assert.equal(ltMeta.infoHashHex, meta.infoHashHex);

      // libtorrent's copy: the first half of the pieces zeroed, so it has (and serves) only the second half
      const ltDir = join(root, "lt");
      const half = Math.floor(meta.pieceCount / 2);
      const cut = half * meta.pieceLength;
      let offset = 0;
      for (const f of files) {
        const data = await Deno.readFile(join(root, "www", "t", f.path));
        const zero = Math.max(0, Math.min(data.length, cut - offset));
        data.fill(0, 0, zero);
        await Deno.mkdir(join(ltDir, "t", f.path, ".."), { recursive: true });
        await Deno.writeFile(join(ltDir, "t", f.path), data);
        offset += f.length;
      }
      const peerLog = join(root, "peers.jsonl");
      // libtorrent with uTP on, as it ships: our dial reaches it at once (uTP first)
      await using lt = await startLibtorrent("leech", ltTorrent, ltDir, [], {
        env: {
          LT_PEERLOG: peerLog,
          LT_SETTINGS: JSON.stringify({ enable_incoming_utp: true, enable_outgoing_utp: true }),
        },
      });

      const out = join(root, "out");
      const r = await download([
        torrent,
        "-o",
        out,
        "--no-dht",
        "-p",
        "0",
        "--peer",
        `127.0.0.1:${lt.port}`,
        "--json",
        "--state",
        join(root, "state"),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(await sameFiles(join(root, "www", "t"), join(out, "t"), files), "byte-exact");
      const evs = r.events;
      assert.ok(evs.some((e) => e.event === "peer" && e.address === `127.0.0.1:${lt.port}`));
      assert.ok(evs.some((e) => e.event === "peer" && e.address === `${nginx.origin}/`));

      const fromNginx = requests(await nginx.accessLog()).reduce((n, q) => n + q.bytes, 0);
      // what libtorrent uploaded to us (its peer log: total_upload to each peer it was connected to)
      const lines = (await Deno.readTextFile(peerLog)).split("\n").filter((l) => l).map((l) =>
        JSON.parse(l) as { up: number; down: number }
      );
      const fromLt = Math.max(0, ...lines.map((l) => l.up));
      assert.ok(fromNginx > 0, "nginx contributed");
      assert.ok(fromLt > 0, "libtorrent contributed");
      // nginx served none of the pieces libtorrent has... at least not all of them: it had the first half
      assert.ok(fromNginx >= cut, `nginx served ${fromNginx} bytes, the first half is ${cut}`);
      assert.ok(fromNginx < meta.length, `nginx served ${fromNginx} of ${meta.length} bytes`);
      console.log(`nginx ${fromNginx} bytes, libtorrent ${fromLt} bytes, of ${meta.length}`);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Client: a web seed sending wrong bytes is dropped with one line while nginx completes the download; peers shows source webseed",
  ignore: needs("nginx"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-webseeds-liar-" });
    try {
      const files = await writeFiles(root, FILES);
      await using nginx = await startNginx(join(root, "www"));
      // a server with the right headers and the wrong bytes
      await using liar = serveScripted((req) => {
        const data = fileOf(req, files);
        const range = parseRange(req.headers.get("range"));
        if (!data || !range) return new Response("not found", { status: 404 });
        const [a, b] = range;
        return new Response(new Uint8Array(b - a + 1).fill(0x55), {
          status: 206,
          headers: { "content-range": `bytes ${a}-${b}/${data.length}` },
        });
      });
      // the liar first: it is handed the first run
      const meta = await create(root, join(root, "t.torrent"), [
        `${liar.origin}/`,
        `${nginx.origin}/`,
      ]);
      const errors: string[] = [];
      const closed: { address: string; reason: string }[] = [];
      const hashfails: number[] = [];
      let seen: PeerInfo[] | undefined;
      await using client = await Client.open({
        metainfo: meta,
        basedir: join(root, "out"),
        host: "127.0.0.1",
        resumeFile: false,
        onHashFail: (i) => hashfails.push(i),
      });
      client.addEventListener("error", (e) => errors.push(e.detail.error.message));
      client.addEventListener("peerclose", (e) => closed.push(e.detail));
      client.addEventListener("peer", (e) => {
        if (e.detail.address === `${nginx.origin}/`) seen ??= client.peers;
      });
      await within(30_000, "the download to complete", client.done);
      assert.ok(
        await sameFiles(join(root, "www", "t"), join(root, "out", "t"), FILES),
        "byte-exact",
      );

      // the liar: one line, one peerclose, gone from the peers
      assert.ok(hashfails.length > 0, "the liar's pieces failed their hash check");
      assert.equal(errors.length, 1, errors.join("\n"));
      assert.match(
        errors[0],
        new RegExp(`^web seed ${liar.origin}/: piece \\d+ failed its hash check; dropped$`),
      );
      assert.deepEqual(closed, [{ address: `${liar.origin}/`, reason: errors[0] }]);
      assert.ok(liar.requests.length > 0, "the liar was asked");
      // while nginx was serving, the peer list showed it as a web seed
      const shown = seen?.find((p) => p.address === `${nginx.origin}/`);
      assert.ok(shown, JSON.stringify(seen));
      assert.equal(shown.source, "webseed");
      assert.equal(shown.have, meta.pieceCount);
      assert.deepEqual(client.peers.map((p) => p.address), [`${nginx.origin}/`]);
      assert.ok(client.downloaded >= meta.length);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Client: stopped mid-download and started again, the web seed carries on without asking again for what was had",
  ignore: needs("nginx"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-webseeds-stop-" });
    try {
      await writeFiles(root, FILES);
      // 256 KiB/s: the download takes about three seconds, time enough to stop it part way
      await using nginx = await startNginx(join(root, "www"), { limitRate: "256k" });
      const meta = await create(root, join(root, "t.torrent"), [`${nginx.origin}/`]);
      await using client = await Client.open({
        metainfo: meta,
        basedir: join(root, "out"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      const first = Promise.withResolvers<void>();
      client.addEventListener("piece", () => first.resolve(), { once: true });
      await within(30_000, "a first piece", first.promise);
      await client.stop();
      const stopped = Date.now() / 1000; // every request cut by the stop was read by nginx before this
      const have = client.progress.have;
      assert.ok(have > 0 && have < meta.length, `${have} of ${meta.length} bytes`);
      assert.equal(client.state, "stopped");
      await client.start();
      await within(30_000, "the download to complete", client.done);
      assert.ok(
        await sameFiles(join(root, "www", "t"), join(root, "out", "t"), FILES),
        "byte-exact",
      );
      const log = requests(await nginx.accessLog());
      // nginx logs a request when it ends (one cut by the stop may be logged later, after the restart): the
      // requests made after the restart are the ones nginx read after the stop completed
      const after = log.filter((q) => q.start > stopped);
      assert.ok(after.length > 0, "asked again after the restart");
      // what was had before the stop is not asked for again
      const again = after.reduce((n, q) => n + q.range![1] - q.range![0] + 1, 0);
      assert.ok(again <= meta.length - have, `${again} bytes asked for after ${have} were had`);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("--web-seed takes http(s) URLs (repeatable, -w), --no-web-seeds switches the torrent's off", () => {
  const s = parseDownloadArgs("download", [
    "t.torrent",
    "--web-seed",
    "http://mirror.example/pub/",
    "-w",
    "https://other.example/t.iso",
    "--no-web-seeds",
  ]);
  assert.deepEqual(s.webSeeds, ["http://mirror.example/pub/", "https://other.example/t.iso"]);
  assert.equal(s.noWebSeeds, true);
  assert.equal(parseDownloadArgs("seed", ["t.torrent"]).noWebSeeds, false);
  for (const bad of ["ftp://mirror.example/t.iso", "mirror.example/t.iso"]) {
    assert.throws(
      () => parseDownloadArgs("download", ["t.torrent", "--web-seed", bad]),
      (e: Error) =>
        e instanceof UsageError && e.message.startsWith(`--web-seed: "${bad}" is not an http`),
    );
  }
});

Deno.test({
  name:
    "Client: a magnet link's ws= web seed serves the pieces once a peer with no pieces sent the metadata",
  ignore: needs("nginx"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-webseeds-magnet-" });
    try {
      await writeFiles(root, FILES);
      await using nginx = await startNginx(join(root, "www"));
      const meta = await create(root, join(root, "t.torrent"), []);
      // a peer that knows the torrent and has none of its data: it can only send the metadata
      await using empty = await Client.open({
        metainfo: meta,
        basedir: join(root, "empty"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      assert.equal(empty.bitfield.every((b) => b === 0), true);
      const magnet = `magnet:?xt=urn:btih:${meta.infoHashHex}&x.pe=127.0.0.1:${empty.port}&ws=${
        encodeURIComponent(`${nginx.origin}/`)
      }`;
      await using client = new Client({
        magnet,
        basedir: join(root, "out"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      await within(30_000, "the download to complete", client.done);
      assert.ok(
        await sameFiles(join(root, "www", "t"), join(root, "out", "t"), FILES),
        "byte-exact",
      );
      assert.equal(empty.uploaded, 0, "no piece came from the peer");
      assert.ok(requests(await nginx.accessLog()).length > 0);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
