import assert from "node:assert/strict";
import { concat, latin1 } from "../src/_bytes.ts";
import { encode } from "../src/bencode.ts";
import { encodeCompactPeers, parseCompactPeers } from "../src/tracker/compact.ts";
import {
  announce,
  type AnnounceRequest,
  scrape,
  scrapeUrlFor,
  TrackerError,
} from "../src/tracker/http.ts";
import { TrackerManager } from "../src/tracker/tiers.ts";
import { within } from "./_swarm.ts";
import { needs, startOpentracker } from "./_lab.ts";

type Handler = (url: URL, raw: string) => Response | Promise<Response>;

/** A tracker scripted by the test, on 127.0.0.1. */
function scripted(handler: Handler) {
  const seen: { url: URL; raw: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const raw = req.url.slice(req.url.indexOf("?") + 1);
    seen.push({ url, raw });
    return await handler(url, raw);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/announce`,
    seen,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

const body = (v: Parameters<typeof encode>[0]) => new Response(encode(v));
const IH = Uint8Array.from({ length: 20 }, (_, i) => i * 13);
const PID = new TextEncoder().encode("-SE0010-abcdefghijkl");
const req = (extra: Partial<AnnounceRequest> = {}): AnnounceRequest => ({
  infoHash: IH,
  peerId: PID,
  port: 6881,
  uploaded: 1,
  downloaded: 2,
  left: 3,
  ...extra,
});

function rawParam(raw: string, key: string): string | undefined {
  for (const part of raw.split("&")) {
    const [k, v] = part.split("=");
    if (k === key) return v;
  }
  return undefined;
}

Deno.test("announce() sends the binary info hash and peer id percent-encoded, and the counters", async () => {
  await using t = scripted(() => body({ interval: 900, peers: new Uint8Array() }));
  await announce(t.url + "?passkey=abc", req({ event: "started", key: "k1", trackerId: "tid" }));
  const { url, raw } = t.seen[0];
  // the server saw exactly our 20 bytes
  const bytes = Uint8Array.from(unescape(rawParam(raw, "info_hash")!), (c) => c.charCodeAt(0));
  assert.deepEqual(bytes, IH);
  assert.equal(
    latin1(Uint8Array.from(unescape(rawParam(raw, "peer_id")!), (c) => c.charCodeAt(0))),
    latin1(PID),
  );
  assert.equal(url.searchParams.get("passkey"), "abc");
  assert.equal(url.searchParams.get("port"), "6881");
  assert.equal(url.searchParams.get("uploaded"), "1");
  assert.equal(url.searchParams.get("downloaded"), "2");
  assert.equal(url.searchParams.get("left"), "3");
  assert.equal(url.searchParams.get("compact"), "1");
  assert.equal(url.searchParams.get("event"), "started");
  assert.equal(url.searchParams.get("key"), "k1");
  assert.equal(url.searchParams.get("trackerid"), "tid");
  // BEP 7 (2020 revision): no ipv4= / ipv6= / ip= parameters, which let anyone announce a victim's address;
  // the tracker takes the address the announce comes from
  assert.equal(url.searchParams.has("ipv6"), false);
  assert.equal(url.searchParams.has("ipv4"), false);
  assert.equal(url.searchParams.has("ip"), false);
});

Deno.test("announce() reads compact, dictionary and IPv6 peers, dropping invalid and duplicate ones", async () => {
  const v4 = encodeCompactPeers([{ host: "10.0.0.1", port: 1 }, { host: "10.0.0.2", port: 2 }], 4);
  const bad = new Uint8Array([...v4, 1, 2, 3, 4, 0, 0, 10, 0, 0, 1, 0, 1, 9]); // port 0, duplicate, 1 stray byte
  await using t = scripted((url) =>
    url.searchParams.get("event") === "started"
      ? body({
        interval: 100,
        "min interval": 50,
        complete: 3,
        incomplete: 4,
        "tracker id": "T",
        peers: bad,
        peers6: encodeCompactPeers([{ host: "::1", port: 7 }], 6),
      })
      : body({
        interval: 100,
        peers: [{ ip: "192.168.1.1", port: 80 }, { ip: "host.example", port: 81 }, {
          ip: "x y",
          port: 1,
        }, { ip: "1.1.1.1", port: 0 }],
      })
  );
  const r = await announce(t.url, req({ event: "started" }));
  assert.deepEqual(r.peers, [{ host: "10.0.0.1", port: 1 }, { host: "10.0.0.2", port: 2 }]);
  assert.deepEqual(r.peers6, [{ host: "::1", port: 7 }]);
  assert.deepEqual([r.interval, r.minInterval, r.complete, r.incomplete, r.trackerId], [
    100,
    50,
    3,
    4,
    "T",
  ]);
  const d = await announce(t.url, req());
  assert.deepEqual(d.peers, [{ host: "192.168.1.1", port: 80 }, {
    host: "host.example",
    port: 81,
  }]);
});

Deno.test("announce() clamps intervals and reports warnings", async () => {
  await using t = scripted(() =>
    body({ interval: 1, "warning message": "be nice", peers: new Uint8Array() })
  );
  const r = await announce(t.url, req());
  assert.equal(r.interval, 60);
  assert.equal(r.warning, "be nice");
  await using t2 = scripted(() => body({ interval: 10 ** 12, peers: new Uint8Array() }));
  assert.equal((await announce(t2.url, req())).interval, 7200);
});

Deno.test("bytes after a complete dictionary are ignored (as libtorrent does); a cut dictionary is not", async () => {
  const dict = encode({ interval: 900, peers: new Uint8Array([10, 0, 0, 1, 0x1a, 0xe1]) });
  for (const tail of ["\n", "\r\n", "<html><body>tracker footer</body></html>", "d2:xxi1ee"]) {
    await using t = scripted(() =>
      new Response(concat([dict, new TextEncoder().encode(tail)]) as Uint8Array<ArrayBuffer>)
    );
    const r = await announce(t.url, req());
    assert.equal(r.interval, 900, JSON.stringify(tail));
    assert.deepEqual(r.peers, [{ host: "10.0.0.1", port: 6881 }]);
  }
  await using cut = scripted(() => new Response(dict.subarray(0, dict.length - 1)));
  await assert.rejects(announce(cut.url, req()), /not valid bencode/);
  // still bounded: a body over the cap is refused before it is decoded, tail or not
  await using big = scripted(() =>
    new Response(concat([dict, new Uint8Array(3 * 1024 * 1024)]) as Uint8Array<ArrayBuffer>)
  );
  await assert.rejects(announce(big.url, req()), /larger than/);
});

Deno.test("every bad tracker answer is a TrackerError", async () => {
  const cases: [string, Handler, RegExp][] = [
    [
      "failure reason",
      () => body({ "failure reason": "unregistered torrent" }),
      /failure reason: unregistered torrent/,
    ],
    ["HTTP 500", () => new Response("oops", { status: 500 }), /HTTP 500/],
    ["not bencode", () => new Response("<html>hello</html>"), /not valid bencode/],
    ["JSON", () => new Response('{"peers": []}'), /not valid bencode/],
    ["empty body", () => new Response(""), /not valid bencode/],
    [
      "terminal escapes in the failure reason",
      () =>
        body({ "failure reason": "x\x1b[2J\x1b]0;pwned\x07\nfake line\u202e" + "y".repeat(2000) }),
      /failure reason: x\\u\{1b\}\[2J\\u\{1b\}\]0;pwned\\u\{7\}\\u\{a\}fake line\\u\{202e\}y+…$/,
    ],
    ["not a dictionary", () => body([1, 2]), /not a dictionary/],
    ["oversize body", () => new Response(new Uint8Array(3 * 1024 * 1024)), /larger than/],
    ["gzip bomb", () => gzipBomb(), /larger than/],
  ];
  for (const [what, handler, pattern] of cases) {
    await using t = scripted(handler);
    const err = await announce(t.url, req()).then(() => undefined, (e) => e);
    assert.ok(err instanceof TrackerError, what);
    assert.match(err.message, pattern, what);
    assert.equal(err.url, t.url);
  }
  const fr = await (async () => {
    await using t = scripted(() => body({ "failure reason": "nope" }));
    return await announce(t.url, req()).catch((e) => e);
  })();
  assert.equal(fr.failureReason, "nope");
  await assert.rejects(announce("udp://127.0.0.1:1/announce", req()), /unsupported scheme/);
  await assert.rejects(announce("not a url", req()), /not a valid URL/);
});

function gzipBomb(): Response {
  // 64 MiB of zeros compress to ~64 KiB; the cap must apply to the decompressed bytes
  const zeros = new ReadableStream<BufferSource>({
    start(c) {
      const chunk = new Uint8Array(1024 * 1024);
      for (let i = 0; i < 64; i++) c.enqueue(chunk);
      c.close();
    },
  });
  return new Response(zeros.pipeThrough(new CompressionStream("gzip")), {
    headers: { "content-encoding": "gzip" },
  });
}

Deno.test("announce() gives up after its timeout", async () => {
  const never = Promise.withResolvers<Response>();
  await using t = scripted(() => never.promise);
  await assert.rejects(announce(t.url, req({ timeoutMs: 100 })), /request failed/);
  never.resolve(new Response("late"));
});

Deno.test("scrapeUrlFor() follows BEP 48 and scrape() reads the counts", async () => {
  assert.equal(scrapeUrlFor("http://t/announce"), "http://t/scrape");
  assert.equal(scrapeUrlFor("http://t/x/announce.php?k=1"), "http://t/x/scrape.php?k=1");
  assert.equal(scrapeUrlFor("http://t/a/announce"), "http://t/a/scrape");
  assert.equal(scrapeUrlFor("http://t/announce/x"), undefined);
  assert.equal(scrapeUrlFor("http://t/"), undefined);
  await using t = scripted((url) => {
    assert.equal(url.pathname, "/scrape");
    return body({ files: { [latin1(IH)]: { complete: 5, incomplete: 6, downloaded: 7 } } });
  });
  const counts = await scrape(t.url, [IH]);
  assert.deepEqual([...counts.values()], [{ complete: 5, incomplete: 6, downloaded: 7 }]);
});

Deno.test("parseCompactPeers() handles IPv6 text forms", () => {
  const bytes = encodeCompactPeers([{ host: "2001:db8::1", port: 1 }, {
    host: "fe80:0:0:1::",
    port: 2,
  }], 6);
  assert.deepEqual(parseCompactPeers(bytes, 6), [{ host: "2001:db8::1", port: 1 }, {
    host: "fe80:0:0:1::",
    port: 2,
  }]);
});

// ---------------------------------------------------------------- tiers

function makeManager(
  tiers: string[][],
  fn: (
    url: string,
    r: AnnounceRequest,
  ) => Promise<{ peers: { host: string; port: number }[] } | Error>,
) {
  const calls: { url: string; event: string | undefined }[] = [];
  const peers: string[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const waitCalls = (n: number) => {
    const { promise, resolve } = Promise.withResolvers<void>();
    if (calls.length >= n) resolve();
    else waiters.push({ n, resolve });
    return within(5000, `${n} announces`, promise);
  };
  const m = new TrackerManager({
    announceList: tiers,
    infoHash: IH,
    peerId: PID,
    port: 6881,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 10 }),
    onPeers: (p) => peers.push(...p.map((x) => `${x.host}:${x.port}`)),
    random: () => 0.999, // keeps the listed order
    retryBaseSec: 3600,
    announce: async (url, r) => {
      calls.push({ url, event: r.event });
      const res = await fn(url, r);
      queueMicrotask(() => {
        for (const w of waiters) if (calls.length >= w.n) w.resolve();
      });
      if (res instanceof Error) throw new TrackerError(url, res.message);
      return {
        interval: 1800,
        minInterval: undefined,
        complete: 2,
        incomplete: 1,
        trackerId: undefined,
        warning: undefined,
        peers: res.peers,
        peers6: [],
      };
    },
  });
  return { m, calls, peers, waitCalls };
}

Deno.test("tiers: a failing tracker falls through to the next, which moves to the front of its tier", async () => {
  const { m, calls, peers, waitCalls } = makeManager(
    [["http://a/announce", "http://b/announce"], ["http://c/announce"]],
    (url) =>
      Promise.resolve(
        url.startsWith("http://a") ? new Error("down") : { peers: [{ host: "1.2.3.4", port: 5 }] },
      ),
  );
  m.start();
  await waitCalls(2);
  assert.deepEqual(calls.map((c) => c.url), ["http://a/announce", "http://b/announce"]);
  assert.deepEqual(calls.map((c) => c.event), ["started", "started"]);
  const view = m.trackers();
  assert.deepEqual(view[0].urls, ["http://b/announce", "http://a/announce"]);
  assert.equal(view[0].failures, 0, "reset by b's success");
  assert.equal(view[0].complete, 2);
  assert.deepEqual(view[0].peers, encodeCompactPeers([{ host: "1.2.3.4", port: 5 }], 4));
  assert.deepEqual(peers, ["1.2.3.4:5"]);
  assert.equal(view[1].failures, 0);
  m.completed();
  m.completed();
  await waitCalls(3);
  assert.deepEqual(calls[2], { url: "http://b/announce", event: "completed" });
  await m.stop();
  assert.deepEqual(calls.slice(3), [{ url: "http://b/announce", event: "stopped" }]);
});

Deno.test("tiers: when a whole tier fails the next tier is used, and failures count up", async () => {
  const { m, calls, waitCalls } = makeManager(
    [["http://a/announce"], ["http://c/announce"]],
    (url) => Promise.resolve(url.startsWith("http://a") ? new Error("down") : { peers: [] }),
  );
  m.start();
  await waitCalls(2);
  const view = m.trackers();
  assert.equal(view[0].failures, 1);
  assert.equal(view[1].failures, 0);
  await m.stop();
  assert.deepEqual(calls.at(-1), { url: "http://c/announce", event: "stopped" });
});

Deno.test("tiers: regular announces carry no event and stop() ends all timers", async () => {
  const { m, calls, waitCalls } = makeManager(
    [["http://a/announce"]],
    () => Promise.resolve({ peers: [] }),
  );
  m.start();
  await waitCalls(1);
  m.announceNow();
  await waitCalls(2);
  assert.equal(calls[1].event, undefined);
  await m.stop();
  await m.stop();
  assert.equal(calls.at(-1)?.event, "stopped");
});

Deno.test({
  name: "opentracker returns a real peer announced by another client, and scrape counts it",
  ignore: needs("opentracker"),
  async fn() {
    await using tracker = await startOpentracker([IH]);
    const a = await announce(
      tracker.url,
      req({ event: "started", port: 7001, left: 0, peerId: new Uint8Array(20).fill(65) }),
    );
    // opentracker may list the announcing peer itself
    assert.ok(a.peers.every((p) => p.port === 7001));
    const b = await announce(
      tracker.url,
      req({ event: "started", port: 7002, peerId: new Uint8Array(20).fill(66) }),
    );
    assert.ok(
      b.peers.some((p) => p.host === "127.0.0.1" && p.port === 7001),
      JSON.stringify(b.peers),
    );
    assert.equal(b.complete, 1);
    const counts = await scrape(tracker.url, [IH]);
    const entry = [...counts.values()][0];
    assert.equal(entry.complete, 1);
    assert.equal(entry.incomplete, 1);
    const refused = await announce(tracker.url, req({ infoHash: new Uint8Array(20) })).catch((e) =>
      e
    );
    assert.ok(refused instanceof TrackerError);
  },
});
