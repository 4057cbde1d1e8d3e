// Protocol encryption and IPv6 against libtorrent (python3-libtorrent) through the real Client, both directions,
// and libtorrent itself saying what the connection used: its peer list (LT_PEERLOG: rc4, plaintext_encrypted,
// every 0.25 s) and its own peer log (lt_peer_log.py, LT_WIRELOG: every line libtorrent logs about a peer, e.g.
// "*** ENCRYPTION [ crypto select: rc4 ]", "<== EXTENSIONS [ … ext: FAST extension ]", "<== HAVE_NONE").
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client, type ClientOptions } from "../src/client.ts";
import type { PeerInfo } from "../src/swarm/types.ts";
import { needs, type Proc, spawn } from "./_lab.ts";
import { makeTorrent, nextEvent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const FILES: SpecFile[] = [
  { path: "blob.bin", length: 1024 * 1024 + 4321 },
  { path: "notes/readme.txt", length: 999 },
];
const PIECE = 64 * 1024;

/** libtorrent settings: encryption forced in and out, RC4 only; encryption off; IPv6 loopback only. */
const FORCED_RC4 = { out_enc_policy: 0, in_enc_policy: 0, allowed_enc_level: 2 };
const DISABLED = { out_enc_policy: 2, in_enc_policy: 2 };
const IPV6_ONLY = { listen_interfaces: "[::1]:{port}" };

const LT_PEER_LOG = new URL("./peers/lt_peer_log.py", import.meta.url).pathname;

interface Lab extends AsyncDisposable {
  root: string;
  seedDir: string;
  torrent: string;
  length: number;
  /** libtorrent's peer list lines (LT_PEERLOG). */
  peerList(): Promise<PeerListLine[]>;
  /** libtorrent's own peer log messages (LT_WIRELOG). */
  wireLog(): Promise<string[]>;
  /** Starts libtorrent (lt_peer_log.py) with these settings; resolves once it printed "ready". */
  libtorrent(
    role: "seed" | "leech",
    settings: Record<string, unknown>,
    options?: { peers?: string[]; uploadLimit?: number },
  ): Promise<Proc>;
}

interface PeerListLine {
  ip: string;
  port: number;
  client: string;
  rc4: boolean;
  plaintext_encrypted: boolean;
  incoming: boolean;
  extensions: boolean;
}

async function lab(): Promise<Lab> {
  const root = await Deno.makeTempDir({ prefix: "seedbed-enc-interop-" });
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "pack", FILES, { pieceLength: PIECE });
  const torrent = join(root, "pack.torrent");
  await Deno.writeFile(torrent, bytes);
  const peerLog = join(root, "peers.jsonl"), wireLog = join(root, "wire.jsonl");
  const procs: Proc[] = [];
  return {
    root,
    seedDir,
    torrent,
    length: meta.length,
    async peerList() {
      const text = await Deno.readTextFile(peerLog).catch(() => "");
      return text.split("\n").filter((l) => l).map((l) => JSON.parse(l));
    },
    async wireLog() {
      const text = await Deno.readTextFile(wireLog).catch(() => "");
      return text.split("\n").filter((l) => l).map((l) => JSON.parse(l).msg as string);
    },
    async libtorrent(role, settings, options = {}) {
      // port 0: libtorrent binds a port the system chooses and prints it
      const p = spawn(
        "/usr/bin/python3",
        [
          LT_PEER_LOG,
          role,
          torrent,
          role === "seed" ? seedDir : join(root, "lt"),
          "0",
          ...(options.peers ?? []),
        ],
        0,
        {
          env: {
            LT_SETTINGS: JSON.stringify(settings),
            LT_PEERLOG: peerLog,
            LT_WIRELOG: wireLog,
            ...(options.uploadLimit ? { LT_UPLOAD_LIMIT: String(options.uploadLimit) } : {}),
          },
        },
      );
      procs.push(p);
      p.port = Number((await p.match(/^port (\d+)$/, 60_000))[1]);
      await p.line("ready", 60_000);
      return p;
    },
    async [Symbol.asyncDispose]() {
      for (const p of procs) await p.stop();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** Our client's view of its first connection whose handshakes are done. */
async function firstPeer(client: Client, what: string): Promise<PeerInfo> {
  const ready = () => client.peers.find((p) => p.peerId !== undefined);
  if (!ready()) await within(15_000, what, nextEvent(client, "peer", () => ready() !== undefined));
  return ready()!;
}

/**
 * libtorrent's peer-list line about our connection once its handshakes are through (it names our client "SE 0.0.1" from our peer id, then "Seedbed 0.1.0" from our extension handshake).
 * The list is written every 0.25 s and tells nobody: polled every 100 ms, bounded.
 */
async function ltSawUs(l: Lab, ms = 15_000): Promise<PeerListLine> {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = (await l.peerList()).find((x) => /^(SE\b|Seedbed )/.test(x.client));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`libtorrent never listed us within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits for the download, bounded. This 1 MiB at 1 MiB/s takes 1–3 s; under a loaded suite it once stalled for
 * the whole bound, so a timeout says what each side saw: our peers' states and libtorrent's last log lines.
 */
async function downloaded(l: Lab, client: Client): Promise<void> {
  try {
    await within(60_000, "the download", client.done);
  } catch (err) {
    const peers = client.peers.map((p) => ({
      address: p.address,
      have: p.have,
      downloaded: p.downloaded,
      amInterested: p.amInterested,
      peerChoking: p.peerChoking,
      outstanding: p.outstanding,
    }));
    const log = (await l.wireLog()).slice(-40).join("\n");
    const ours = JSON.stringify(peers);
    throw new Error(
      `${(err as Error).message}; ${client.left} bytes left; our peers: ${ours}; ` +
        `libtorrent's last log lines:\n${log}`,
    );
  }
}

const base: Partial<ClientOptions> = { host: "127.0.0.1", resumeFile: false };

Deno.test({
  name:
    "require: Seedbed downloads from a libtorrent seed that forces RC4; both ends report RC4, libtorrent logs the fast extension",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    // slowed down so that libtorrent's peer list (every 0.25 s) sees the connection while it runs
    const lt = await l.libtorrent("seed", FORCED_RC4, { uploadLimit: 1024 * 1024 });
    await using client = await Client.open({
      ...base,
      path: l.torrent,
      basedir: join(l.root, "ours"),
      encryption: "require",
      peers: [{ host: "127.0.0.1", port: lt.port }],
    });
    const ours = await firstPeer(client, "the connection to libtorrent");
    assert.equal(ours.encrypted, "rc4");
    assert.match(
      ours.client,
      /^libtorrent[ /]2\.0\.\d+/,
      "named from its peer id or its extension handshake",
    );
    assert.equal(ours.fast, true);
    assert.equal(ours.transport, "tcp");
    const theirs = await ltSawUs(l);
    assert.equal(theirs.rc4, true, JSON.stringify(theirs));
    assert.equal(theirs.incoming, true);
    assert.equal(theirs.extensions, true);
    await downloaded(l, client);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
    const log = await l.wireLog();
    assert.ok(log.some((m) => m.includes("crypto select: rc4")), "libtorrent selected RC4");
    assert.ok(log.some((m) => /<== EXTENSIONS .*FAST extension/.test(m)), "our handshake: fast");
    // a fast-extension message of ours that libtorrent took (a leecher with nothing says HAVE_NONE)
    assert.ok(log.some((m) => m.includes("<== HAVE_NONE")), "libtorrent read our HAVE_NONE");
    assert.ok(
      log.some((m) => m.includes("attempting encrypted connection")),
      "it started with MSE",
    );
  },
});

Deno.test({
  name:
    "require: a libtorrent leecher that forces RC4 downloads from Seedbed; both ends report RC4",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    await using seeder = await Client.open({
      ...base,
      path: l.torrent,
      basedir: l.seedDir,
      encryption: "require",
      uploadLimit: 1024 * 1024, // the connection lives long enough for libtorrent's peer list
    });
    assert.ok(seeder.seed);
    const met = nextEvent(seeder, "peer");
    const lt = await l.libtorrent("leech", FORCED_RC4, { peers: [`127.0.0.1:${seeder.port}`] });
    await within(15_000, "libtorrent to dial us", met);
    const ours = seeder.peers.find((p) => p.peerId)!;
    assert.equal(ours.encrypted, "rc4");
    assert.equal(ours.incoming, true);
    assert.match(ours.client, /^libtorrent[ /]2\.0\.\d+/);
    assert.equal(ours.fast, true);
    const theirs = await ltSawUs(l);
    assert.equal(theirs.rc4, true, JSON.stringify(theirs));
    assert.equal(theirs.incoming, false);
    await lt.line("done", 60_000);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "lt", "pack"), FILES));
    assert.ok(seeder.uploaded >= l.length);
    const log = await l.wireLog();
    // libtorrent dialled, offered RC4 only, and we (the seed, with the fast extension) sent HAVE_ALL
    assert.ok(
      log.some((m) => /ENCRYPTION.*rc4/.test(m)),
      log.filter((m) => m.includes("ENCRYPTION")).join("\n"),
    );
    assert.ok(log.some((m) => m.includes("<== HAVE_ALL")), "libtorrent read our HAVE_ALL");
  },
});

Deno.test({
  name:
    "prefer: libtorrent with encryption disabled — our MSE dial is refused, the plain retry downloads everything",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const lt = await l.libtorrent("seed", DISABLED, { uploadLimit: 1024 * 1024 });
    await using client = await Client.open({
      ...base,
      path: l.torrent,
      basedir: join(l.root, "ours"),
      peers: [{ host: "127.0.0.1", port: lt.port }],
    });
    const failures: string[] = [];
    client.addEventListener("peerfail", (e) => failures.push(e.detail.reason));
    const ours = await firstPeer(client, "the plain retry");
    assert.equal(ours.encrypted, false);
    const theirs = await ltSawUs(l);
    assert.equal(theirs.rc4 || theirs.plaintext_encrypted, false, JSON.stringify(theirs));
    await downloaded(l, client);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
    assert.deepEqual(failures, [], "the fallback is not a failure");
    // libtorrent refused the MSE attempt first
    assert.ok((await l.wireLog()).some((m) => m.includes("unrecognized protocol header")));
  },
});

Deno.test({
  name:
    "prefer: a libtorrent leecher with encryption disabled dials us plain and downloads everything",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    await using seeder = await Client.open({ ...base, path: l.torrent, basedir: l.seedDir });
    const met = nextEvent(seeder, "peer");
    const lt = await l.libtorrent("leech", DISABLED, { peers: [`127.0.0.1:${seeder.port}`] });
    await within(15_000, "libtorrent to dial us", met);
    assert.equal(seeder.peers.find((p) => p.peerId)?.encrypted, false);
    await lt.line("done", 60_000);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "lt", "pack"), FILES));
  },
});

Deno.test({
  name:
    "require: a libtorrent seed with encryption disabled is refused with one clear line, nothing sent plain, nothing hangs",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const lt = await l.libtorrent("seed", DISABLED);
    await using client = await Client.open({
      ...base,
      path: l.torrent,
      basedir: join(l.root, "ours"),
      encryption: "require",
    });
    const failed = nextEvent<{ address: string; reason: string }>(client, "peerfail");
    client.addPeer("127.0.0.1", lt.port);
    const f = await within(30_000, "the refusal", failed);
    assert.equal(f.address, `127.0.0.1:${lt.port}`);
    assert.match(f.reason, /encryption is required, so no plain BitTorrent handshake was tried$/);
    assert.deepEqual(client.peers, []);
    assert.equal(client.downloaded, 0);
    const log = await l.wireLog();
    assert.ok(log.some((m) => m.includes("unrecognized protocol header")), "libtorrent saw MSE");
    assert.ok(!log.some((m) => m.includes("<== HANDSHAKE")), "and never a BitTorrent handshake");
  },
});

Deno.test({
  name:
    "require: a libtorrent leecher with encryption disabled dials us and is refused with one clear line",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    await using seeder = await Client.open({
      ...base,
      path: l.torrent,
      basedir: l.seedDir,
      encryption: "require",
    });
    const refused = nextEvent<{ reason: string; incoming: boolean }>(seeder, "peerfail");
    await l.libtorrent("leech", DISABLED, { peers: [`127.0.0.1:${seeder.port}`] });
    const r = await within(30_000, "the refusal", refused);
    assert.equal(r.reason, "plain BitTorrent handshake refused: encryption is required");
    assert.equal(r.incoming, true);
    assert.deepEqual(seeder.peers, []);
    assert.equal(seeder.uploaded, 0);
  },
});

Deno.test({
  name: "IPv6 only: Seedbed downloads from libtorrent listening on [::1] and names it",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const lt = await l.libtorrent("seed", IPV6_ONLY, { uploadLimit: 1024 * 1024 });
    await using client = await Client.open({
      ...base,
      host: "::1",
      path: l.torrent,
      basedir: join(l.root, "ours"),
      peers: [{ host: "::1", port: lt.port }],
    });
    const ours = await firstPeer(client, "the connection over ::1");
    assert.equal(ours.address, `[::1]:${lt.port}`);
    assert.match(ours.client, /^libtorrent[ /]2\.0\.\d+/);
    assert.equal((await ltSawUs(l)).ip, "::1");
    await downloaded(l, client);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
  },
});

Deno.test({
  name: "IPv6 only: a libtorrent leecher on [::1] downloads from Seedbed on [::1]",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    await using seeder = await Client.open({
      ...base,
      host: "::1",
      path: l.torrent,
      basedir: l.seedDir,
    });
    const met = nextEvent<{ address: string }>(seeder, "peer");
    const lt = await l.libtorrent("leech", IPV6_ONLY, { peers: [`[::1]:${seeder.port}`] });
    const address = (await within(15_000, "libtorrent to dial us over ::1", met)).address;
    assert.match(address, /^\[::1\]:\d+$/);
    await lt.line("done", 60_000);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "lt", "pack"), FILES));
    assert.ok(seeder.uploaded >= l.length);
  },
});

// ---------------------------------------------------------------- the same through the command line

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** `seedbed …` as a subprocess, stdout read line by line (JSON events with --json). */
function seedbed(args: string[], cwd: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const events: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  const stdout = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      for (let nl; (nl = buf.indexOf("\n")) >= 0; buf = buf.slice(nl + 1)) {
        const line = buf.slice(0, nl).trim();
        if (line.startsWith("{")) events.push(JSON.parse(line));
      }
      wake?.();
    }
    wake?.();
  })();
  const stderr = new Response(child.stderr).text();
  let ended = false;
  const status = child.status.then(async (s) => {
    ended = true;
    await stdout;
    wake?.();
    return { code: s.code, stderr: await stderr };
  });
  return {
    events,
    status,
    /** The first JSON event of this type (bounded). */
    async event(type: string, ms: number): Promise<Record<string, unknown>> {
      const deadline = Date.now() + ms;
      for (;;) {
        const e = events.find((x) => x.event === type);
        if (e) return e;
        if (ended) throw new Error(`seedbed exited before "${type}": ${(await status).stderr}`);
        if (Date.now() > deadline) throw new Error(`no "${type}" event within ${ms} ms`);
        await within(ms, `a "${type}" event`, new Promise<void>((r) => wake = r));
      }
    },
    async [Symbol.asyncDispose]() {
      if (!ended) {
        try {
          child.kill("SIGINT");
        } catch { /* exited */ }
      }
      await status;
    },
  };
}

Deno.test({
  name:
    "CLI: seedbed --encryption require downloads from a libtorrent seed that forces RC4 (libtorrent says rc4)",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const lt = await l.libtorrent("seed", FORCED_RC4, { uploadLimit: 1024 * 1024 });
    await using run = seedbed([
      l.torrent,
      "-o",
      join(l.root, "ours"),
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${lt.port}`,
      "--encryption",
      "require",
      "--no-dht",
      "--no-trackers",
      "--state",
      join(l.root, "state"),
      "--json",
    ], l.root);
    const { code, stderr } = await within(60_000, "the download", run.status);
    assert.equal(code, 0, stderr);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
    const theirs = await ltSawUs(l);
    assert.equal(theirs.rc4, true, JSON.stringify(theirs));
    assert.ok((await l.wireLog()).some((m) => m.includes("crypto select: rc4")));
  },
});

Deno.test({
  name:
    "CLI: seedbed seed --encryption require serves a libtorrent leecher that forces RC4 (libtorrent says rc4)",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    await using run = seedbed([
      "seed",
      l.torrent,
      "-o",
      l.seedDir,
      "-p",
      "0",
      "--encryption",
      "require",
      "--limit-up",
      "1M", // the connection lives long enough for libtorrent's peer list
      "--no-dht",
      "--no-trackers",
      "--state",
      join(l.root, "state"),
      "--json",
    ], l.root);
    const ready = await run.event("ready", 60_000);
    const lt = await l.libtorrent("leech", FORCED_RC4, { peers: [`127.0.0.1:${ready.port}`] });
    await lt.line("done", 60_000);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "lt", "pack"), FILES));
    const theirs = await ltSawUs(l);
    assert.equal(theirs.rc4, true, JSON.stringify(theirs));
    assert.equal(theirs.incoming, false);
    assert.ok((await l.wireLog()).some((m) => /ENCRYPTION.*rc4/.test(m)));
  },
});
