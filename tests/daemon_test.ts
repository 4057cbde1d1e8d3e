// `seedbed daemon` as a service: Debian's transmission-remote drives it exactly as it drives Transmission 3.00's own
// daemon (the same commands print the same lines), a SIGTERM stops it cleanly (exit 0) and a restart restores every
// torrent as it was, a SIGKILL in the middle of a download loses nothing (the restarted daemon completes it
// byte-exact from a libtorrent seeder), and a .torrent file put in the watch folder is added and renamed *.added.
import assert from "node:assert/strict";
import { join } from "node:path";
import { needs, startLibtorrent, startOpentracker } from "./_lab.ts";
import { runCli } from "../src/cli/main.ts";
import { createTorrent } from "../src/create.ts";
import { makeTorrent, sameFiles } from "./_swarm.ts";
import { startDaemon, startTransmissionDaemon, transmissionRemote, until } from "./_daemon.ts";

const FILES = [
  { path: "a.bin", length: 300_000 },
  { path: "sub/b.bin", length: 70_000 },
];

/** Daemon flags for a test: everything on loopback, ports chosen by the system, no DHT. */
function daemonArgs(dir: string, state: string, ...more: string[]): string[] {
  return [
    ...["--dir", dir, "--state", state, "--rpc-port", "0"],
    ...["-p", "0", "--peer-bind", "127.0.0.1", "--no-dht"],
    ...more,
  ];
}

Deno.test({
  name:
    "transmission-remote -a, -l, -i, -if, -ip, -v, -S, -s, --remove-and-delete print the same against Seedbed as against Transmission",
  ignore: needs("transmission"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-daemon-tr-" });
    try {
      // the same data in two download folders, one per daemon
      const { meta, bytes } = await makeTorrent(join(root, "seedbed-dl"), "pack", FILES, {
        pieceLength: 32 * 1024,
      });
      await makeTorrent(join(root, "transmission-dl"), "pack", FILES, { pieceLength: 32 * 1024 });
      const torrent = join(root, "pack.torrent");
      await Deno.writeFile(torrent, bytes);

      await using ours = await startDaemon(
        daemonArgs(join(root, "seedbed-dl"), join(root, "state")),
      );
      await using theirs = await startTransmissionDaemon(
        join(root, "tr"),
        join(root, "transmission-dl"),
      );
      const daemons = [
        { name: "Seedbed", port: ours.rpcPort, rpc: ours.rpc, dir: join(root, "seedbed-dl") },
        {
          name: "Transmission",
          port: theirs.rpcPort,
          rpc: theirs.rpc,
          dir: join(root, "transmission-dl"),
        },
      ];
      // the output of each step against each daemon, with what must differ (ports, folders, clocks) masked
      const transcript: Record<string, string[]> = { Seedbed: [], Transmission: [] };
      const status = async (d: typeof daemons[0]) =>
        (await d.rpc("torrent-get", { ids: [1], fields: ["status", "percentDone"] })).arguments
          .torrents[0];
      for (const d of daemons) {
        const run = async (...args: string[]) => {
          const r = await transmissionRemote(`127.0.0.1:${d.port}`, args);
          assert.equal(r.code, 0, `${d.name}: transmission-remote ${args.join(" ")}: ${r.err}`);
          transcript[d.name].push(
            `$ transmission-remote ${args.join(" ")}\n` +
              r.out.replaceAll(`127.0.0.1:${d.port}`, "HOST").replaceAll(d.dir, "DIR")
                .split("\n")
                .filter((l) =>
                  !/^\s+(Date added|Date started|Latest activity|Seeding Time|Downloading Time):/
                    .test(l)
                )
                .join("\n"),
          );
        };
        await run("-a", torrent);
        // both check the data they find before they seed it
        await until(`${d.name} to seed`, 30_000, async () => {
          const t = await status(d);
          return t?.status === 6 && t.percentDone === 1;
        });
        await run("-l");
        await run("-t", "1", "-i");
        await run("-t", "1", "-if");
        await run("-t", "1", "-ip");
        await run("-t", "1", "-v");
        await until(`${d.name} to verify`, 30_000, async () => {
          const t = await status(d);
          return t.status === 6 && t.percentDone === 1;
        });
        await run("-l");
        await run("-t", "1", "-S");
        await until(`${d.name} to stop`, 10_000, async () => (await status(d)).status === 0);
        await run("-l");
        await run("-t", "1", "-s");
        await until(`${d.name} to seed again`, 10_000, async () => (await status(d)).status === 6);
        await run("-l");
        await run("-t", "1", "--remove-and-delete");
        await until(`${d.name} to delete the data`, 10_000, async () => {
          for (const f of FILES) {
            if (await Deno.stat(join(d.dir, "pack", f.path)).then(() => true, () => false)) {
              return false;
            }
          }
          return true;
        });
        await run("-l");
      }
      const ourText = transcript.Seedbed.join("\n");
      const theirText = transcript.Transmission.join("\n");
      if (Deno.env.get("SHOW")) console.log(ourText);
      assert.equal(ourText, theirText);
      // and what was compared says what it should
      assert.match(ourText, /responded: "success"/);
      assert.match(ourText, /^\s+1\s+100%\s+370\.0 kB\s+Done\s+0\.0\s+0\.0\s+0\.0\s+Idle\s+pack$/m);
      assert.match(
        ourText,
        /^\s+1\s+100%\s+370\.0 kB\s+Done\s+0\.0\s+0\.0\s+0\.0\s+Stopped\s+pack$/m,
      );
      assert.match(ourText, new RegExp(`Hash: ${meta.infoHashHex}`));
      assert.match(ourText, /Location: DIR\n/);
      assert.match(ourText, /Percent Done: 100%/);
      assert.ok(!(await Deno.stat(join(root, "seedbed-dl", "pack")).then(() => true, () => false)));
      assert.match(ours.log(), /added #1 pack/);
      assert.match(ours.log(), /removed #1 pack/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

/** A torrent of `files` under `root/seed/name`, announced to an opentracker that knows it. */
async function trackedTorrent(
  root: string,
  name: string,
  files: { path: string; length: number }[],
) {
  const pieceLength = 256 * 1024;
  const { meta } = await makeTorrent(join(root, "seed"), name, files, { pieceLength });
  // the info hash does not depend on the announce URL: whitelisted first, then the real torrent made
  const tracker = await startOpentracker([meta.infoHash]);
  const bytes = await createTorrent(join(root, "seed", name), {
    pieceLength,
    announce: [tracker.url],
  });
  const path = join(root, `${name}.torrent`);
  await Deno.writeFile(path, bytes);
  return { tracker, bytes, meta, path };
}

Deno.test({
  name:
    "SIGKILL mid-download: the restarted daemon has every torrent back as it was and completes byte-exact",
  ignore: needs("libtorrent", "opentracker", "transmission"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-daemon-kill-" });
    try {
      const big = [{ path: "data.bin", length: 24 * 1024 * 1024 + 333 }, {
        path: "x/y.bin",
        length: 5000,
      }];
      const { tracker, bytes, meta, path } = await trackedTorrent(root, "big", big);
      await using _tracker = tracker;
      const small = await makeTorrent(join(root, "other"), "small", FILES, {
        pieceLength: 32 * 1024,
      });
      // a seeder slow enough (2 MiB/s) that the kill lands mid-download
      await using _lt = await startLibtorrent("seed", path, join(root, "seed"), [], {
        env: { LT_UPLOAD_LIMIT: String(2 * 1024 * 1024) },
      });
      const dir = join(root, "dl"), state = join(root, "state");
      const first = await startDaemon(daemonArgs(dir, state));
      const added = await first.rpc("torrent-add", { metainfo: bytes.toBase64() });
      assert.equal(added.result, "success");
      assert.deepEqual(added.arguments["torrent-added"], {
        hashString: meta.infoHashHex,
        id: 1,
        name: "big",
      });
      // a second torrent, added stopped, with one file unwanted: it must come back like that
      const second = await first.rpc("torrent-add", {
        metainfo: small.bytes.toBase64(),
        paused: true,
        "files-unwanted": [1],
      });
      assert.equal(second.arguments["torrent-added"].id, 2);
      const fields = ["id", "hashString", "status", "percentDone", "wanted", "downloadDir"];
      const get = async (d: { rpc: typeof first.rpc }) =>
        (await d.rpc("torrent-get", { fields })).arguments.torrents;
      let before: Record<string, unknown>[] = [];
      await until("a quarter of the download", 60_000, async () => {
        before = await get(first);
        return (before[0].percentDone as number) >= 0.25;
      });
      await first.kill();
      assert.equal((await first.status).signal, "SIGKILL");
      const doneAtKill = before[0].percentDone as number;
      assert.ok(doneAtKill < 1, `killed mid-download (${doneAtKill})`);

      await using again = await startDaemon(daemonArgs(dir, state));
      assert.match(again.log(), /daemon: 2 torrents/);
      // restored torrents go back into the queue on the session's next pass: the first one downloads again soon
      let after: Record<string, unknown>[] = [];
      await until("the first torrent downloading again", 30_000, async () => {
        after = await get(again);
        return after[0]?.status === 4;
      }).catch(() => {});
      assert.deepEqual(after.map((t) => t.id), [1, 2], "the same ids");
      assert.equal(after[0].hashString, meta.infoHashHex);
      assert.equal(after[1].hashString, small.meta.infoHashHex);
      assert.equal(after[0].status, 4, "the first one downloads again");
      assert.equal(after[1].status, 0, "the second one is still stopped");
      assert.deepEqual(after[1].wanted, [1, 0], "with the same file unwanted");
      assert.equal(after[0].downloadDir, dir);
      // what was verified before the kill is still there (only pieces in flight may be fetched again)
      assert.ok(
        (after[0].percentDone as number) >= doneAtKill - 0.05,
        `${after[0].percentDone} kept of ${doneAtKill}`,
      );
      // transmission-remote sees the tracker's answer and the libtorrent peer it downloads from
      await until("a peer sending", 30_000, async () => {
        const [t] = (await again.rpc("torrent-get", { ids: [1], fields: ["peersSendingToUs"] }))
          .arguments.torrents;
        return t.peersSendingToUs > 0;
      });
      // the connection as the engine made it: encrypted (our default policy prefers MSE), libtorrent named
      const [withPeers] = (await again.rpc("torrent-get", { ids: [1], fields: ["peers"] }))
        .arguments.torrents;
      const lt = withPeers.peers.find((p: { isDownloadingFrom: boolean }) => p.isDownloadingFrom);
      assert.ok(lt, JSON.stringify(withPeers.peers));
      assert.equal(lt.isEncrypted, true, JSON.stringify(lt));
      assert.match(lt.clientName, /libtorrent/i);
      assert.match(lt.flagStr, /E/);
      const peers = await transmissionRemote(`127.0.0.1:${again.rpcPort}`, ["-t", "1", "-ip"]);
      assert.match(
        peers.out,
        /^127\.0\.0\.1\s+D\S*E\S*\s+100\.0\s+\d+\.\d\s+\d+\.\d\s+\S/m,
        peers.out,
      );
      const trackers = await transmissionRemote(`127.0.0.1:${again.rpcPort}`, ["-t", "1", "-it"]);
      assert.match(trackers.out, /Tracker 0: http:\/\/127\.0\.0\.1:\d+/);
      assert.match(trackers.out, /Got a list of [1-9]\d* peers .* ago/);
      assert.match(trackers.out, /Asking for more peers in /);
      await until("the download to complete", 90_000, async () => {
        const [t] = await get(again);
        return t.percentDone === 1 && t.status === 6;
      });
      assert.ok(await sameFiles(join(root, "seed", "big"), join(dir, "big"), big));
      assert.equal(await again.stop(), 0, "SIGTERM: a clean stop, exit 0");
      assert.match(again.log(), /stopping \(interrupted\)/);
      assert.match(again.log(), /#1 big is complete/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("a .torrent put in the watch folder is added and renamed *.added", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-daemon-watch-" });
  try {
    const { meta, bytes } = await makeTorrent(join(root, "dl"), "pack", FILES, {
      pieceLength: 32 * 1024,
    });
    const watch = join(root, "watch");
    await using d = await startDaemon(
      daemonArgs(join(root, "dl"), join(root, "state"), "--watch", watch),
    );
    await d.line(/watching .* for \.torrent files/, 10_000);
    await Deno.writeFile(join(watch, "dropped.torrent.tmp"), bytes);
    await Deno.rename(join(watch, "dropped.torrent.tmp"), join(watch, "dropped.torrent"));
    await d.line(/watch folder: took dropped\.torrent as #1/, 30_000);
    assert.ok(await Deno.stat(join(watch, "dropped.torrent.added")).then(() => true, () => false));
    const t = (await d.rpc("torrent-get", { fields: ["hashString", "percentDone"] })).arguments
      .torrents;
    assert.equal(t[0].hashString, meta.infoHashHex);
    // a file that is not a torrent is reported once and left where it is
    await Deno.writeTextFile(join(watch, "junk.torrent"), "not a torrent");
    await d.line(/watch folder: cannot add junk\.torrent: /, 30_000);
    assert.ok(await Deno.stat(join(watch, "junk.torrent")).then(() => true, () => false));
    assert.equal(await d.stop(), 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("session-set of the encryption or uTP restarts the session with the torrents; session-close stops the daemon", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-daemon-restart-" });
  try {
    const { bytes } = await makeTorrent(join(root, "dl"), "pack", FILES, {
      pieceLength: 32 * 1024,
    });
    const d = await startDaemon(daemonArgs(join(root, "dl"), join(root, "state")));
    try {
      await d.rpc("torrent-add", { metainfo: bytes.toBase64() });
      await d.rpc("torrent-add", { metainfo: bytes.toBase64() }); // a duplicate: still one torrent
      await d.rpc("torrent-stop", { ids: [1] });
      const r = await d.rpc("session-set", { encryption: "required" });
      assert.equal(r.result, "success");
      assert.match(
        d.log(),
        /restarting the session for its new settings \(encryption preferred → required\)/,
      );
      const s = (await d.rpc("session-get", { fields: ["encryption", "peer-port", "utp-enabled"] }))
        .arguments;
      assert.equal(s.encryption, "required");
      assert.ok(s["peer-port"] > 0);
      assert.equal(s["utp-enabled"], true);
      // uTP off takes a new session too
      assert.equal((await d.rpc("session-set", { "utp-enabled": false })).result, "success");
      assert.match(d.log(), /restarting the session for its new settings \(uTP off\)/);
      const u = (await d.rpc("session-get", { fields: ["utp-enabled"] })).arguments;
      assert.equal(u["utp-enabled"], false);
      const t = (await d.rpc("torrent-get", { fields: ["id", "status"] })).arguments.torrents;
      assert.deepEqual(t, [{ id: 1, status: 0 }], "the torrent came back, still stopped");
      // saved for the next start
      const saved = JSON.parse(await Deno.readTextFile(join(root, "state", "daemon.json")));
      assert.equal(saved.encryption, "required");
      assert.equal(saved.utp, false);
      assert.equal((await d.rpc("session-close")).result, "success");
      assert.equal((await d.status).code, 0);
      assert.match(d.log(), /stopping \(asked to stop over the RPC\)/);
    } finally {
      await d.kill();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("seedbed daemon: --help, and wrong command lines are usage errors (exit 2)", async () => {
  const run = async (...args: string[]) => {
    let out = "", err = "";
    const code = await runCli(["daemon", ...args], {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
      isTerminal: false,
      interrupted: new Promise(() => {}),
    });
    return { code, out, err };
  };
  const help = await run("--help");
  assert.equal(help.code, 0);
  assert.match(help.out, /--rpc-port PORT/);
  assert.match(help.out, /X-Transmission-Session-Id/);
  for (
    const [args, message] of [
      [["--rpc-user", "me"], /--rpc-user and --rpc-password go together/],
      [["--rpc-port", "99999"], /--rpc-port: "99999" is not a port number/],
      [["--encryption", "maybe"], /--encryption/],
      [["--dht", "--no-dht"], /--dht and --no-dht/],
      [["stray"], /unexpected argument "stray"/],
      [["--bogus"], /bogus/],
    ] as const
  ) {
    const r = await run(...args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.err, message);
  }
});
