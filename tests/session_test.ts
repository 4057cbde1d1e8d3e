// The Session: many torrents on one port, routing, duplicates, removal, queueing, stop rules, and state that
// survives a restart (ids, states, resume data — nothing hashed again), all in-process on 127.0.0.1.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DuplicateTorrentError, Session } from "../src/session/session.ts";
import { TrackerServer } from "../src/tracker/server.ts";
import { torrentStatus } from "../src/rpc/torrent_fields.ts";
import { makeTorrent, nextEvent, sameFiles, within } from "./_swarm.ts";

const PIECE = 32 * 1024;
const A = [{ path: "a.bin", length: 40 * PIECE + 100 }];
const B = [{ path: "b1.bin", length: 20 * PIECE }, { path: "sub/b2.bin", length: 7 * PIECE + 9 }];

async function twoTorrents(root: string, announce?: string) {
  const opts = { pieceLength: PIECE, ...(announce ? { announce: [[announce]] } : {}) };
  const a = await makeTorrent(join(root, "seed"), "ta", A, opts);
  const b = await makeTorrent(join(root, "seed"), "tb", B, opts);
  return { a, b };
}

Deno.test("two torrents download at once through one port; the tracker sees that port for both; incoming connections are routed by info hash", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-" });
  try {
    await using tracker = new TrackerServer({ interval: 60 });
    const { a, b } = await twoTorrents(root, tracker.url);
    // the seeding session: both torrents, one listener; the leechers dial it (incoming for both torrents)
    await using seeds = await Session.open({ host: "127.0.0.1", basedir: join(root, "seed") });
    const sa = await seeds.add({ metainfo: a.meta });
    const sb = await seeds.add({ metainfo: b.meta });
    await Promise.all([sa.ready, sb.ready]);
    assert.ok(sa.complete && sb.complete);
    await using leech = await Session.open({ host: "127.0.0.1", basedir: join(root, "leech") });
    const la = await leech.add({ torrent: a.bytes });
    const lb = await leech.add({ torrent: b.bytes });
    await within(30_000, "both downloads", Promise.all([la.done, lb.done]));
    assert.ok(await sameFiles(join(root, "seed", "ta"), join(root, "leech", "ta"), A));
    assert.ok(await sameFiles(join(root, "seed", "tb"), join(root, "leech", "tb"), B));
    // one port per session, announced for both torrents
    for (const meta of [a.meta, b.meta]) {
      const ports = tracker.peers(meta.infoHash).map((p) => p.port).sort();
      assert.deepEqual(ports, [leech.port, seeds.port].sort(), `tracker peers of ${meta.name}`);
    }
    // the seeding session took connections for each torrent on its one port
    assert.ok(sa.peers.some((p) => p.incoming) || sa.uploaded > 0);
    assert.equal(sa.uploaded, a.meta.length);
    assert.equal(sb.uploaded, b.meta.length);
    assert.equal(seeds.stats.torrents, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("adding the same info hash twice is an error naming the torrent already there; get() finds by id and hash", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-dup-" });
  try {
    const { a, b } = await twoTorrents(root);
    await using session = await Session.open({ host: "127.0.0.1", basedir: join(root, "seed") });
    const ta = await session.add({ metainfo: a.meta });
    const tb = await session.add({ torrent: b.bytes }, { state: "paused" });
    assert.equal(ta.id, 1);
    assert.equal(tb.id, 2);
    const err = await session.add({ torrent: a.bytes }).then(() => undefined, (e) => e);
    assert.ok(err instanceof DuplicateTorrentError);
    assert.equal(err.existing, ta);
    assert.match(err.message, /already in the session \(id 1,/);
    assert.equal(session.get(1), ta);
    assert.equal(session.get(a.meta.infoHashHex.toUpperCase()), ta);
    assert.equal(session.get(99), undefined);
    assert.deepEqual(session.torrents, [ta, tb]);
    await tb.ready;
    assert.equal(tb.state, "paused");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("remove() forgets a torrent; deleteData deletes its files and nothing else", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-rm-" });
  try {
    const { a, b } = await twoTorrents(root);
    await Deno.writeTextFile(join(root, "seed", "other.txt"), "not ours");
    await using session = await Session.open({ host: "127.0.0.1", basedir: join(root, "seed") });
    const ta = await session.add({ metainfo: a.meta });
    const tb = await session.add({ metainfo: b.meta });
    await Promise.all([ta.ready, tb.ready]);
    const removed = nextEvent<{ infoHash: string }>(session, "removed");
    assert.equal(await session.remove(tb.id, { deleteData: true }), true);
    assert.equal((await removed).infoHash, b.meta.infoHashHex);
    assert.equal(session.get(tb.id), undefined);
    assert.equal(await session.remove(tb.id), false);
    await assert.rejects(Deno.stat(join(root, "seed", "tb")), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(join(root, "seed", "other.txt")), "not ours");
    assert.ok((await Deno.stat(join(root, "seed", "ta", "a.bin"))).isFile);
    assert.equal(await session.remove(ta), true);
    assert.ok(
      (await Deno.stat(join(root, "seed", "ta", "a.bin"))).isFile,
      "kept without deleteData",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a restarted session restores every torrent with its id and state, trusting resume data (nothing hashed again)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-state-" });
  const stateDir = join(root, "state");
  try {
    const { a, b } = await twoTorrents(root);
    {
      await using session = await Session.open({
        host: "127.0.0.1",
        basedir: join(root, "seed"),
        stateDir,
      });
      const ta = await session.add({ torrent: a.bytes });
      const tb = await session.add({ torrent: b.bytes }, { state: "paused", uploadLimit: 12345 });
      await Promise.all([ta.ready, tb.ready]);
      assert.equal(ta.checkedAtLoad, a.meta.pieceCount, "first time: the data is checked");
      await session.remove(ta);
      const again = await session.add({ torrent: a.bytes }); // a new id, never reused
      await again.ready;
      assert.equal(again.id, 3);
    }
    await using restored = await Session.open({ host: "127.0.0.1", stateDir });
    const [tb, ta] = restored.torrents;
    await Promise.all([ta.ready, tb.ready]);
    assert.equal(tb.id, 2);
    assert.equal(ta.id, 3);
    assert.equal(tb.infohashHex, b.meta.infoHashHex);
    assert.equal(tb.state, "paused");
    assert.equal(tb.limits.upload, 12345);
    assert.equal(ta.state, "active");
    assert.ok(ta.complete && tb.complete);
    assert.equal(ta.checkedAtLoad, 0, "resume data vouched for every piece");
    assert.equal(tb.checkedAtLoad, 0);
    assert.equal(ta.basedir, join(root, "seed"));
    const tc = await restored.add({ metainfo: b.meta }).catch((e) => e);
    assert.ok(tc instanceof DuplicateTorrentError);
    const next = await restored.add(
      (await makeTorrent(join(root, "seed"), "tc", [{ path: "c", length: 100 }], {
        pieceLength: PIECE,
      })).bytes,
    );
    assert.equal(next.id, 4);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("resume data of an older version beside the data is read once, trusted, and replaced", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-legacy-" });
  try {
    const { a } = await twoTorrents(root);
    const dir = join(root, "seed");
    // what a Client of the previous version wrote: "<dir>/.<name>.seedbed-resume", version 1, no info hash
    const files: [number, number][] = [];
    for (const f of a.meta.files) {
      const st = await Deno.stat(join(dir, ...f.path));
      files.push([st.size, st.mtime!.getTime()]);
    }
    const bits = new Uint8Array(Math.ceil(a.meta.pieceCount / 8)).fill(0xff);
    bits[bits.length - 1] = (0xff << (8 - (a.meta.pieceCount % 8 || 8))) & 0xff;
    const legacy = join(dir, `.${a.meta.name}.seedbed-resume`);
    await Deno.writeTextFile(
      legacy,
      JSON.stringify({ version: 1, pieces: bits.toBase64(), files, pieceCache: { pieces: [] } }),
    );
    const stateDir = join(root, "state");
    {
      await using session = await Session.open({ host: "127.0.0.1", basedir: dir, stateDir });
      const t = await session.add({ metainfo: a.meta });
      await t.ready;
      assert.ok(t.complete);
      assert.equal(t.checkedAtLoad, 0, "the old resume data was trusted");
    }
    await assert.rejects(Deno.stat(legacy), Deno.errors.NotFound, "replaced");
    assert.ok((await Deno.stat(join(stateDir, "resume", `${a.meta.infoHashHex}.resume`))).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("queueing: with one active download the second waits, then runs when the first completes", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-queue-" });
  try {
    const { a, b } = await twoTorrents(root);
    await using seeds = await Session.open({ host: "127.0.0.1", basedir: join(root, "seed") });
    await (await seeds.add({ metainfo: a.meta })).ready;
    await (await seeds.add({ metainfo: b.meta })).ready;
    const peer = [{ host: "127.0.0.1", port: seeds.port }];
    await using leech = await Session.open({
      host: "127.0.0.1",
      basedir: join(root, "leech"),
      limits: { activeDownloads: 1 },
    });
    const la = await leech.add({ metainfo: a.meta }, {
      peers: peer,
      downloadLimit: 2 * 1024 * 1024,
    });
    const lb = await leech.add({ metainfo: b.meta }, { peers: peer });
    await Promise.all([la.ready, lb.ready]);
    assert.equal(la.run, "running");
    assert.equal(lb.run, "queued");
    assert.equal(lb.state, "stopped");
    assert.equal(leech.queuePosition(lb), 1);
    await within(30_000, "the first download", la.done);
    await within(30_000, "the queued one to complete after it", lb.done);
    assert.equal(lb.run, "running");
    // moving a torrent in the queue
    leech.setQueuePosition(lb, 0);
    assert.deepEqual(leech.torrents, [lb, la]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a torrent starts once it is loaded: another torrent's load does not start it while its data is checked", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-load-" });
  try {
    // the first torrent's data is on disk without resume data: loading it is a hash check of 48 MiB
    const big = await makeTorrent(
      join(root, "dl"),
      "big",
      [{ path: "big.bin", length: 48 << 20 }],
      {
        pieceLength: 256 * 1024,
      },
    );
    const small = await makeTorrent(join(root, "other"), "small", B, { pieceLength: PIECE });
    await using session = await Session.open({ host: "127.0.0.1", basedir: join(root, "dl") });
    const tb = await session.add({ metainfo: big.meta });
    const states: string[] = [];
    tb.addEventListener("state", (e) => {
      states.push(`${e.detail.state}${tb.loaded ? "" : " before it was loaded"}`);
    });
    // the second loads at once (nothing on disk), and the session decides again which torrents run
    const ts = await session.add({ metainfo: small.meta });
    await ts.ready;
    const then = { loaded: tb.loaded, run: tb.run, status: torrentStatus(tb) };
    await tb.ready;
    assert.ok(!then.loaded, "the big torrent was still loading when the small one was loaded");
    assert.equal(then.run, "off", "not run by the session while it loads");
    assert.ok(
      [1, 2].includes(then.status),
      `Transmission's status: check wait or checking (${then.status})`,
    );
    assert.equal(torrentStatus(tb), 6, "then seeding");
    assert.ok(tb.complete, "every piece checked and had");
    assert.equal(tb.state, "active");
    assert.deepEqual(states, ["active"], "started once, after its check");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a ratio limit stops a seeding torrent once reached (finished, as Transmission says)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-ratio-" });
  try {
    const { a } = await twoTorrents(root);
    await using seeds = await Session.open({
      host: "127.0.0.1",
      basedir: join(root, "seed"),
      limits: { ratioLimit: 1 },
    });
    const sa = await seeds.add({ metainfo: a.meta });
    await sa.ready;
    await using leech = await Session.open({ host: "127.0.0.1", basedir: join(root, "leech") });
    const la = await leech.add({ metainfo: a.meta }, {
      peers: [{ host: "127.0.0.1", port: seeds.port }],
    });
    await within(30_000, "the download", la.done);
    await within(
      10_000,
      "the seed to stop at ratio 1",
      (async () => {
        while (!sa.finished) await nextEvent(sa, "state");
      })(),
    );
    assert.equal(sa.state, "stopped");
    assert.equal(sa.desired, "stopped");
    assert.ok(sa.totals.uploaded >= a.meta.length);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("limits change at runtime and are kept in the state directory", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-session-limits-" });
  const stateDir = join(root, "state");
  try {
    {
      await using session = await Session.open({ host: "127.0.0.1", stateDir });
      session.setLimits({ upload: 1000, altUpload: 10, altEnabled: true, activeDownloads: 3 });
      assert.equal(session.limits.upload, 1000);
      assert.equal(session.limits.altEnabled, true);
    }
    await using again = await Session.open({ host: "127.0.0.1", stateDir });
    assert.equal(again.limits.upload, 1000);
    assert.equal(again.limits.altUpload, 10);
    assert.equal(again.limits.activeDownloads, 3);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
