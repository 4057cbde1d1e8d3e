import assert from "node:assert/strict";
import { join } from "node:path";
import { createTorrent } from "../src/create.ts";
import { encode } from "../src/bencode.ts";
import { type Metainfo, parseMetainfo } from "../src/metainfo.ts";
import {
  parseRetryAfter,
  WebSeed,
  webSeedFileUrl,
  type WebSeedLimits,
  webSeedsOf,
} from "../src/swarm/webseed.ts";
import { needs } from "./_lab.ts";
import { payload, sameFiles, within } from "./_swarm.ts";
import {
  completes,
  drive,
  type FileMap,
  honest,
  httpClient,
  parseRange,
  rawRange,
  selfSignedCert,
  serveRaw,
  serveScripted,
  startNginx,
} from "./_webseed.ts";

const PIECE = 32768;
/** File boundaries fall inside pieces; an empty file, a sub-directory and names that need percent-encoding. */
const FILES = [
  { path: "a.bin", length: 100_000 },
  { path: "sub/b.bin", length: 7 },
  { path: "empty.bin", length: 0 },
  { path: "sub/\u00fc ber.bin", length: 40_000 },
  { path: "d e&f #1%.bin", length: 230_000 },
];

/** Fast limits for tests: nothing waits for real minutes. */
const FAST: WebSeedLimits = {
  responseTimeoutMs: 5_000,
  minRate: 1,
  rateWindowMs: 5_000,
  retryBaseMs: 20,
  maxFailures: 3,
};

interface Fixture extends AsyncDisposable {
  tmp: string;
  /** nginx's root; the torrent's folder is www/t. */
  www: string;
  /** Where downloads go (the folder t is created below it). */
  out: string;
  /** The files by URL path, e.g. "/t/a.bin". */
  files: FileMap;
  /** Makes the torrent of www/t with these web seeds. */
  torrent(webSeeds?: string[]): Promise<Metainfo>;
  /** True when out/t holds exactly the files of www/t. */
  same(): Promise<boolean>;
}

async function fixture(): Promise<Fixture> {
  const tmp = await Deno.makeTempDir({ prefix: "seedbed-webseed-" });
  await Deno.chmod(tmp, 0o755);
  const www = join(tmp, "www"), out = join(tmp, "out");
  const files: FileMap = new Map();
  let seed = 1;
  for (const f of FILES) {
    const path = join(www, "t", f.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    const data = payload(f.length, seed++);
    await Deno.writeFile(path, data);
    files.set(`/t/${f.path}`, data);
  }
  return {
    tmp,
    www,
    out,
    files,
    async torrent(webSeeds = []) {
      const bytes = await createTorrent(join(www, "t"), {
        pieceLength: PIECE,
        webSeeds,
        creationDate: null,
      });
      return await parseMetainfo(bytes);
    },
    same: () => sameFiles(join(www, "t"), join(out, "t"), FILES),
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }),
  };
}

// ------------------------------------------------------------------ URLs

Deno.test("webSeedFileUrl() builds BEP 19 URLs from the torrent's own names, percent-encoded", () => {
  const single = {
    multiFile: false,
    files: [{ path: ["a_b.iso"], torrentPath: ["a:b.iso"], length: 1, offset: 0 }],
  };
  assert.equal(webSeedFileUrl("http://m/pub/", single, 0), "http://m/pub/a%3Ab.iso");
  assert.equal(webSeedFileUrl("http://m/pub/x.iso", single, 0), "http://m/pub/x.iso");
  assert.equal(webSeedFileUrl("http://m", single, 0), "http://m/a%3Ab.iso", "the root is a folder");
  const multi = {
    multiFile: true,
    files: [{ path: ["t", "_"], torrentPath: ["t", "s\u00fc", "x?y#z"], length: 1, offset: 0 }],
  };
  assert.equal(webSeedFileUrl("http://m/pub", multi, 0), "http://m/pub/t/s%C3%BC/x%3Fy%23z");
  assert.equal(webSeedFileUrl("http://m/pub/", multi, 0), "http://m/pub/t/s%C3%BC/x%3Fy%23z");
  assert.equal(
    webSeedFileUrl("https://m:8443/pub/?token=1#frag", multi, 0),
    "https://m:8443/pub/t/s%C3%BC/x%3Fy%23z?token=1",
    "the query is kept, the fragment dropped",
  );
});

Deno.test("webSeedsOf() keeps http(s) seeds of both kinds, adds the user's, and can be switched off", () => {
  const meta = {
    urlList: ["http://a/", "ftp://a/", "https://b/f.iso", "http://a/", "not a url"],
    httpSeeds: ["http://h/seed.php", "udp://h/"],
  };
  assert.deepEqual(webSeedsOf(meta, { extra: ["http://c/", "http://a/"] }), [
    { url: "http://a/", kind: "url-list" },
    { url: "https://b/f.iso", kind: "url-list" },
    { url: "http://c/", kind: "url-list" },
    { url: "http://h/seed.php", kind: "httpseeds" },
  ]);
  assert.deepEqual(webSeedsOf(meta, { enabled: false, extra: ["http://c/"] }), [
    { url: "http://c/", kind: "url-list" },
  ]);
  assert.throws(
    () =>
      new WebSeed({
        url: "ftp://a/",
        torrent: { ...emptyTorrent(), files: [] },
      }),
    TypeError,
  );
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates, and nothing else", () => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 0);
  assert.equal(parseRetryAfter("0", now), 0);
  assert.equal(parseRetryAfter(" 45 ", now), 45_000);
  assert.equal(parseRetryAfter(new Date(now + 90_000).toUTCString(), now), 90_000);
  assert.equal(parseRetryAfter(new Date(now - 90_000).toUTCString(), now), 0, "past date");
  assert.equal(parseRetryAfter("-5", now), undefined);
  assert.equal(parseRetryAfter("1.5", now), undefined);
  assert.equal(parseRetryAfter("tomorrow", now), undefined);
});

function emptyTorrent() {
  return {
    infoHash: new Uint8Array(20),
    pieceLength: PIECE,
    length: 1,
    pieces: new Uint8Array(20),
    multiFile: false,
    files: [{ path: ["x"], length: 1, offset: 0 }],
  };
}

// ------------------------------------------------------------------ nginx

Deno.test({
  name: "a multi-file torrent downloads byte-exact from nginx alone, several pieces per ranged GET",
  ignore: needs("nginx"),
  async fn() {
    await using fx = await fixture();
    await using nginx = await startNginx(fx.www);
    const meta = await fx.torrent([`${nginx.origin}/`]);
    assert.ok(meta.pieceCount >= 10);
    using client = httpClient();
    const seeds = webSeedsOf(meta).map((s) =>
      new WebSeed({ ...s, torrent: meta, fetch: client.fetch, limits: FAST })
    );
    assert.equal(seeds.length, 1);
    // runs of 4 pieces: a run inside one file is one request, a run across files one request per file span
    await using d = drive(meta, seeds, fx.out, { runBytes: 4 * PIECE });
    await completes(d);
    await d.close();
    assert.ok(await fx.same(), "every byte as on the server");
    assert.deepEqual(d.errors, []);
    assert.deepEqual(d.failed, []);
    assert.equal(seeds[0].downloaded, meta.length);
    assert.notEqual(seeds[0].state, "dropped");

    // nginx writes bytes above 0x7f in the URI as \\xHH: read them back as UTF-8
    const log = (await nginx.accessLog()).map((line) =>
      new TextDecoder().decode(
        Uint8Array.from(
          line.replace(/\\x([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))),
          (c) => c.charCodeAt(0),
        ),
      )
    );
    const requests = log.map((line) => {
      const m = /^GET "([^"]*)" "([^"]*)" (\d+) (\d+) [\d.]+ [\d.]+$/.exec(line);
      assert.ok(m, `unexpected log line ${line}`);
      return { path: m[1], range: parseRange(m[2]), status: Number(m[3]), bytes: Number(m[4]) };
    });
    for (const r of requests) {
      assert.ok(r.range, `every request has a Range: ${JSON.stringify(r)}`);
      assert.equal(r.status, 206);
      assert.equal(r.bytes, r.range[1] - r.range[0] + 1);
    }
    // each file's ranges cover it exactly once, in order, and the empty file is never asked for
    for (const f of FILES) {
      const mine = requests.filter((r) => r.path === `/t/${f.path}`);
      if (f.length === 0) {
        assert.equal(mine.length, 0);
        continue;
      }
      let next = 0;
      for (const r of mine) {
        assert.equal(r.range![0], next, `${f.path} asked for contiguously`);
        next = r.range![1] + 1;
      }
      assert.equal(next, f.length, `${f.path} asked for whole`);
    }
    // several pieces per request: 4-piece runs, so fewer requests than pieces, and some span > 2 pieces
    assert.ok(requests.length < meta.pieceCount, `${requests.length} requests`);
    assert.ok(
      requests.some((r) => r.range![1] - r.range![0] + 1 > 2 * PIECE),
      "a request spans more than two pieces",
    );
    // a piece straddling files takes one request per file span: piece 3 holds the end of a.bin, all of
    // sub/b.bin and the start of the next file
    assert.ok(requests.some((r) => r.path === "/t/sub/b.bin" && r.range![0] === 0));
    assert.ok(requests.some((r) => r.path === "/t/sub/\u00fc ber.bin" && r.range![0] === 0));
  },
});

Deno.test({
  name: "a single-file torrent downloads from a folder URL (name appended) and a file URL at once",
  ignore: needs("nginx"),
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "seedbed-webseed-" });
    await Deno.chmod(tmp, 0o755);
    try {
      const data = payload(300_000, 7);
      await Deno.mkdir(join(tmp, "www", "pub"), { recursive: true });
      await Deno.mkdir(join(tmp, "www", "mirror"), { recursive: true });
      await Deno.writeFile(join(tmp, "www", "pub", "one file.bin"), data);
      await Deno.writeFile(join(tmp, "www", "mirror", "copy.bin"), data);
      await using nginx = await startNginx(join(tmp, "www"));
      const meta = await parseMetainfo(
        await createTorrent(join(tmp, "www", "pub", "one file.bin"), {
          pieceLength: 16384,
          webSeeds: [`${nginx.origin}/pub/`, `${nginx.origin}/mirror/copy.bin`],
        }),
      );
      using client = httpClient();
      const seeds = webSeedsOf(meta).map((s) =>
        new WebSeed({ ...s, torrent: meta, fetch: client.fetch, limits: FAST })
      );
      await using d = drive(meta, seeds, join(tmp, "out"), { runBytes: 4 * 16384 });
      await completes(d);
      await d.close();
      assert.deepEqual(await Deno.readFile(join(tmp, "out", "one file.bin")), data);
      const log = await nginx.accessLog();
      assert.ok(log.some((l) => l.startsWith('GET "/pub/one file.bin" "bytes=')), log.join("\n"));
      assert.ok(log.some((l) => l.startsWith('GET "/mirror/copy.bin" "bytes=')), log.join("\n"));
      assert.ok(seeds.every((s) => s.downloaded > 0), "both seeds served part of it");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

// ------------------------------------------------------------------ misbehaving servers

interface FaultCase {
  name: string;
  /** The bad server (files at /t/…, its seed URL is origin + "/"). */
  handler: (req: Request, files: FileMap, closing: AbortSignal) => Response | Promise<Response>;
  /** The bad seed's reason once the download is complete. */
  reason: RegExp;
  limits?: WebSeedLimits;
}

/** A body that never ends: the range's bytes, then more. */
function endless(first: Uint8Array, closing: AbortSignal): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(c) {
      if (closing.aborted) return c.close();
      if (!sent) {
        sent = true;
        c.enqueue(first);
      } else c.enqueue(new Uint8Array(65536));
    },
  });
}

/** A body that trickles 100 bytes every 50 ms. */
function trickle(data: Uint8Array, closing: AbortSignal): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    async pull(c) {
      if (closing.aborted || at >= data.length) return c.close();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        closing.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      c.enqueue(data.slice(at, at + 100));
      at += 100;
    },
  });
}

const FAULTS: FaultCase[] = [
  {
    name: "wrong bytes (the piece fails its hash check)",
    handler(req, files) {
      const res = honest(req, files);
      if (res.status !== 206) return res;
      return res.arrayBuffer().then((buf) => {
        const bytes = new Uint8Array(buf);
        bytes[bytes.length >> 1] ^= 0xff;
        return new Response(bytes, { status: 206, headers: res.headers });
      });
    },
    reason: /^web seed http:\/\/127\.0\.0\.1:\d+\/: piece \d+ failed its hash check; dropped$/,
  },
  {
    name: "404 Not Found",
    handler: () => new Response("no", { status: 404 }),
    reason: /^web seed http:\/\/127\.0\.0\.1:\d+\/t\/a\.bin: 404 Not Found; dropped$/,
  },
  {
    name: "410 Gone",
    handler: () => new Response("gone", { status: 410 }),
    reason: /: 410 Gone; dropped$/,
  },
  {
    name: "200 OK with the whole file, ignoring Range",
    handler(req, files) {
      const data = files.get(new URL(req.url).pathname);
      return data ? new Response(data.slice()) : new Response(null, { status: 404 });
    },
    reason:
      /t\/a\.bin: ignored the Range header \(200 OK instead of 206 Partial Content for bytes 0-65535\); dropped$/,
  },
  {
    name: "a Content-Range other than the one asked for",
    handler(req, files) {
      const [a, b] = parseRange(req.headers.get("range"))!;
      const data = files.get(new URL(req.url).pathname)!;
      return new Response(data.slice(a + 1, b + 2), {
        status: 206,
        headers: { "content-range": `bytes ${a + 1}-${b + 1}/${data.length}` },
      });
    },
    reason: /t\/a\.bin: answered Content-Range "bytes 1-65536\/100000" for bytes 0-65535; dropped$/,
  },
  {
    name: "a file of another size on the server",
    handler(req, files) {
      const [a, b] = parseRange(req.headers.get("range"))!;
      const data = files.get(new URL(req.url).pathname)!;
      return new Response(data.slice(a, b + 1), {
        status: 206,
        headers: { "content-range": `bytes ${a}-${b}/${data.length + 1}` },
      });
    },
    reason: /t\/a\.bin: the file is 100001 bytes on the server, the torrent says 100000; dropped$/,
  },
  {
    name: "an endless body (read up to the range, the rest cancelled)",
    handler(req, files, closing) {
      const [a, b] = parseRange(req.headers.get("range"))!;
      const data = files.get(new URL(req.url).pathname)!;
      return new Response(endless(data.slice(a, b + 1), closing), {
        status: 206,
        headers: { "content-range": `bytes ${a}-${b}/${data.length}` },
      });
    },
    reason: /t\/a\.bin: sent more than the 65536 bytes asked for; dropped$/,
  },
  {
    name: "no response at all (deadline)",
    async handler(_req, _files, closing) {
      await new Promise((resolve) => closing.addEventListener("abort", resolve, { once: true }));
      return new Response(null, { status: 503 });
    },
    limits: { ...FAST, responseTimeoutMs: 200, maxFailures: 1 },
    reason: /t\/a\.bin: no response within 0\.2 s; dropped after 1 failure in a row$/,
  },
  {
    name: "a body slower than the minimum rate",
    handler(req, files, closing) {
      const [a, b] = parseRange(req.headers.get("range"))!;
      const data = files.get(new URL(req.url).pathname)!;
      return new Response(trickle(data.slice(a, b + 1), closing), {
        status: 206,
        headers: { "content-range": `bytes ${a}-${b}/${data.length}` },
      });
    },
    limits: { ...FAST, minRate: 20_000, rateWindowMs: 300, maxFailures: 1 },
    reason:
      /t\/a\.bin: too slow: \d+ B\/s over 0\.3 s, below the minimum of 20000 B\/s \(\d+ of 65536 bytes\); dropped after 1 failure in a row$/,
  },
];

for (const c of FAULTS) {
  Deno.test({
    name: `a web seed sending ${c.name} is dropped, and nginx completes the download`,
    ignore: needs("nginx"),
    async fn() {
      await using fx = await fixture();
      await using nginx = await startNginx(fx.www);
      await using bad = serveScripted((req, closing) => c.handler(req, fx.files, closing));
      const meta = await fx.torrent();
      using client = httpClient();
      const badSeed = new WebSeed({
        url: `${bad.origin}/`,
        torrent: meta,
        fetch: client.fetch,
        limits: c.limits ?? FAST,
      });
      const good = new WebSeed({
        url: `${nginx.origin}/`,
        torrent: meta,
        fetch: client.fetch,
        limits: FAST,
      });
      // the bad seed is asked first (it gets the first run: pieces 0-1, the start of a.bin)
      await using d = drive(meta, [badSeed, good], fx.out, { runBytes: 2 * PIECE });
      await completes(d);
      await within(10_000, "the bad seed to be dropped", d.error(c.reason));
      await d.close();
      await bad.close();
      assert.ok(await fx.same(), "every byte as on the server");
      assert.equal(badSeed.state, "dropped");
      assert.match(badSeed.reason!, c.reason);
      // one line about the bad server: the drop, naming its URL and what was wrong
      const mine = d.errors.filter((l) => l.includes(bad.origin));
      assert.equal(mine.length, 1, d.errors.join("\n"));
      assert.match(mine[0], c.reason);
      assert.notEqual(good.state, "dropped");
      assert.ok(bad.requests.length > 0);
    },
  });
}

for (
  const c of [
    {
      name: "before any response",
      cut: undefined,
      line: /: connection closed before message completed;/,
    },
    { name: "in the middle of a body", cut: 1000, line: /: .* after 1000 of 32768 bytes;/ },
  ]
) {
  Deno.test({
    name: `a connection reset ${c.name} is retried with exponential backoff, then dropped`,
    ignore: needs("nginx"),
    async fn() {
      await using fx = await fixture();
      await using nginx = await startNginx(fx.www);
      await using raw = serveRaw(async (conn, head) => {
        if (c.cut !== undefined) await rawRange(conn, head, fx.files, { cut: c.cut });
      });
      const meta = await fx.torrent();
      using client = httpClient();
      const badSeed = new WebSeed({
        url: `${raw.origin}/`,
        torrent: meta,
        fetch: client.fetch,
        limits: { ...FAST, retryBaseMs: 40, maxFailures: 3 },
      });
      const good = new WebSeed({ url: `${nginx.origin}/`, torrent: meta, fetch: client.fetch });
      // the bad seed alone first (so that it keeps getting work), nginx once it is dropped
      await using d = drive(meta, [badSeed], fx.out, {
        runBytes: PIECE,
        failWhenAllDropped: false,
      });
      await within(10_000, "the reset seed to be dropped", d.error(/dropped after 3 failures/));
      assert.equal(d.have.count, 0);
      d.add(good);
      await completes(d);
      await d.close();
      assert.ok(await fx.same());
      const mine = d.errors.filter((l) => l.includes(raw.origin));
      assert.equal(mine.length, 3, mine.join("\n"));
      for (const l of mine) assert.match(l, c.line);
      assert.match(mine[0], /^web seed http:\/\/127\.0\.0\.1:\d+\/t\/a\.bin: /);
      assert.match(mine[0], /; retrying in 0\.04 s \(failure 1 of 3\)$/);
      assert.match(mine[1], /; retrying in 0\.08 s \(failure 2 of 3\)$/);
      assert.match(mine[2], /; dropped after 3 failures in a row$/);
      assert.equal(raw.requests.length, 3);
      assert.equal(badSeed.state, "dropped");
    },
  });
}

Deno.test("a server that resets twice and then serves is retried and completes the download alone", async () => {
  await using fx = await fixture();
  // the first two connections break after 1000 bytes of the body; then it serves
  await using server = serveRaw((conn, head, n) =>
    rawRange(conn, head, fx.files, n < 2 ? { cut: 1000 } : {})
  );
  const meta = await fx.torrent();
  using client = httpClient();
  const seed = new WebSeed({
    url: `${server.origin}/`,
    torrent: meta,
    fetch: client.fetch,
    limits: { ...FAST, retryBaseMs: 30 },
  });
  await using d = drive(meta, [seed], fx.out, { runBytes: 2 * PIECE });
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.equal(d.errors.length, 2, d.errors.join("\n"));
  assert.match(d.errors[0], /after 1000 of 65536 bytes; retrying in 0\.03 s \(failure 1 of 3\)$/);
  assert.match(d.errors[1], /retrying in 0\.06 s \(failure 2 of 3\)$/);
  assert.equal(seed.failures, 0, "a good response resets the count");
  assert.notEqual(seed.state, "dropped");
});

Deno.test("a Content-Length larger than the range is refused before the body is read", async () => {
  await using fx = await fixture();
  await using raw = serveRaw(async (conn, head) => {
    const [a, b] = parseRange(/\r\nrange: *([^\r]*)/i.exec(head)![1])!;
    await conn.write(new TextEncoder().encode(
      `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${a}-${b}/100000\r\n` +
        "Content-Length: 99999999999\r\n\r\n",
    ));
    await conn.write(new Uint8Array(65536));
  });
  await using good = serveScripted((req) => honest(req, fx.files));
  const meta = await fx.torrent();
  using client = httpClient();
  const badSeed = new WebSeed({ url: `${raw.origin}/`, torrent: meta, fetch: client.fetch });
  const goodSeed = new WebSeed({ url: `${good.origin}/`, torrent: meta, fetch: client.fetch });
  await using d = drive(meta, [badSeed, goodSeed], fx.out, { runBytes: 2 * PIECE });
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.match(
    badSeed.reason!,
    /t\/a\.bin: answered with 99999999999 bytes \(Content-Length\) for 65536; dropped$/,
  );
  assert.equal(badSeed.downloaded, 0, "not a byte of the body was taken");
});

// ------------------------------------------------------------------ redirects

Deno.test("redirects to the same host are followed; permanent ones are remembered", async () => {
  await using fx = await fixture();
  await using server = serveScripted((req) => {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/t/")) {
      return new Response(null, { status: 301, headers: { location: `/mirror${path}` } });
    }
    if (path.startsWith("/hop/")) {
      return new Response(null, { status: 302, headers: { location: path.slice(4) } });
    }
    return honest(req, fx.files, "/mirror");
  });
  const meta = await fx.torrent();
  using client = httpClient();
  const seed = new WebSeed({ url: `${server.origin}/hop/`, torrent: meta, fetch: client.fetch });
  await using d = drive(meta, [seed], fx.out, { runBytes: PIECE });
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.deepEqual(d.errors, []);
  // a.bin spans four runs of one piece: its 302 is asked every time, its 301 once
  const hops = server.requests.filter((r) => r.startsWith("GET /hop/t/a.bin "));
  const moved = server.requests.filter((r) => r.startsWith("GET /t/a.bin "));
  const served = server.requests.filter((r) => r.startsWith("GET /mirror/t/a.bin "));
  assert.equal(served.length, 4, server.requests.join("\n"));
  assert.equal(
    hops.length,
    1,
    "the 302 led to a 301, remembered for the URL built from the torrent",
  );
  assert.equal(moved.length, 1);
});

Deno.test("more than five redirects drop the seed", async () => {
  await using fx = await fixture();
  await using server = serveScripted((req) => {
    const n = Number(new URL(req.url).searchParams.get("n") ?? 0);
    return new Response(null, { status: 307, headers: { location: `/loop?n=${n + 1}` } });
  });
  await using good = serveScripted((req) => honest(req, fx.files));
  const meta = await fx.torrent();
  using client = httpClient();
  const bad = new WebSeed({ url: `${server.origin}/`, torrent: meta, fetch: client.fetch });
  const ok = new WebSeed({ url: `${good.origin}/`, torrent: meta, fetch: client.fetch });
  await using d = drive(meta, [bad, ok], fx.out, { runBytes: 2 * PIECE });
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.match(bad.reason!, /\/loop\?n=5: more than 5 redirects; dropped$/);
  assert.equal(server.requests.length, 6);
});

Deno.test("a redirect to another host or port is refused: nothing is asked of it", async () => {
  await using fx = await fixture();
  await using trap = serveScripted((req) => honest(req, fx.files));
  await using toPort = serveScripted((req) =>
    new Response(null, {
      status: 302,
      headers: { location: `http://127.0.0.1:${trap.port}${new URL(req.url).pathname}` },
    })
  );
  await using toHost = serveScripted((req) =>
    new Response(null, {
      status: 302,
      headers: { location: `http://localhost:${toPort.port}${new URL(req.url).pathname}` },
    })
  );
  await using good = serveScripted((req) => honest(req, fx.files));
  const meta = await fx.torrent();
  using client = httpClient();
  const a = new WebSeed({ url: `${toPort.origin}/`, torrent: meta, fetch: client.fetch });
  const b = new WebSeed({ url: `${toHost.origin}/`, torrent: meta, fetch: client.fetch });
  const ok = new WebSeed({ url: `${good.origin}/`, torrent: meta, fetch: client.fetch });
  await using d = drive(meta, [a, b, ok], fx.out, { runBytes: 2 * PIECE });
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.match(
    a.reason!,
    new RegExp(
      `^web seed ${toPort.origin}/t/a\\.bin: 302 Found to http://127\\.0\\.0\\.1:${trap.port}/t/a\\.bin: another host, refused; dropped$`,
    ),
  );
  assert.match(
    b.reason!,
    /302 Found to http:\/\/localhost:\d+\/t\/.*: another host, refused; dropped$/,
  );
  assert.deepEqual(trap.requests, [], "the other host got no request");
  assert.equal(toPort.requests.length, 1, "nor did the same port under another name");
});

Deno.test({
  name: "a redirect from https to http is refused, even to the same host",
  ignore: needs("openssl"),
  async fn() {
    await using fx = await fixture();
    const tls = await selfSignedCert(fx.tmp);
    await using trap = serveScripted((req) => honest(req, fx.files));
    await using secure = serveScripted((req) => {
      const path = new URL(req.url).pathname;
      if (path.startsWith("/ok/")) return honest(req, fx.files, "/ok");
      const to = path.startsWith("/up/")
        ? `/ok${path.slice(3)}` // https → https on the same host: followed
        : `http://127.0.0.1:${trap.port}${path}`;
      return new Response(null, { status: 302, headers: { location: to } });
    }, tls);
    const meta = await fx.torrent();
    using client = httpClient({ caCerts: [tls.cert] });
    const down = new WebSeed({ url: `${secure.origin}/`, torrent: meta, fetch: client.fetch });
    const up = new WebSeed({ url: `${secure.origin}/up/`, torrent: meta, fetch: client.fetch });
    await using d = drive(meta, [down, up], fx.out, { runBytes: 2 * PIECE });
    await completes(d).catch((err) => {
      throw new Error(`${err.message}\n${d.errors.join("\n")}\n${secure.requests.join("\n")}`);
    });
    await d.close();
    assert.ok(await fx.same());
    assert.match(
      down.reason!,
      /^web seed https:\/\/127\.0\.0\.1:\d+\/t\/a\.bin: 302 Found to http:\/\/127\.0\.0\.1:\d+\/t\/a\.bin: from https to http, refused; dropped$/,
    );
    assert.notEqual(up.state, "dropped");
    assert.deepEqual(trap.requests, []);
  },
});

// ------------------------------------------------------------------ busy servers

function frozenClock(start = Date.UTC(2030, 0, 1)) {
  let now = start;
  return { now: () => now, advance: (ms: number) => now += ms, start };
}

for (
  const c of [
    { name: "503 with Retry-After in seconds", status: 503, header: "120", waitMs: 120_000 },
    {
      name: "429 with Retry-After as an HTTP date",
      status: 429,
      header: new Date(Date.UTC(2030, 0, 1) + 90_000).toUTCString(),
      waitMs: 90_000,
    },
    {
      name: "503 asking for a day (capped at an hour)",
      status: 503,
      header: "86400",
      waitMs: 3_600_000,
    },
  ]
) {
  Deno.test(`a web seed answering ${c.name} waits while another completes the download`, async () => {
    await using fx = await fixture();
    const clock = frozenClock();
    await using busy = serveScripted(() =>
      new Response("busy", { status: c.status, headers: { "retry-after": c.header } })
    );
    await using good = serveScripted((req) => honest(req, fx.files));
    const meta = await fx.torrent();
    using client = httpClient();
    const seed = new WebSeed({
      url: `${busy.origin}/`,
      torrent: meta,
      fetch: client.fetch,
      clock: clock.now,
    });
    const ok = new WebSeed({ url: `${good.origin}/`, torrent: meta, fetch: client.fetch });
    await using d = drive(meta, [seed, ok], fx.out, { runBytes: 2 * PIECE });
    await completes(d);
    await d.close();
    assert.ok(await fx.same());
    assert.equal(seed.state, "waiting");
    assert.equal(seed.readyAt, clock.start + c.waitMs);
    assert.match(
      seed.reason!,
      /t\/a\.bin: (503 Service Unavailable|429 Too Many Requests); waiting \d+ s/,
    );
    assert.equal(busy.requests.length, 1, "not asked again before the time it gave");
    assert.equal(d.errors.length, 1);
  });
}

Deno.test("a busy web seed is asked again once its Retry-After has passed, and then serves", async () => {
  await using fx = await fixture();
  const clock = frozenClock();
  let busy = true;
  await using server = serveScripted((req) => {
    if (busy) {
      busy = false;
      return new Response(null, { status: 503, headers: { "retry-after": "30" } });
    }
    return honest(req, fx.files);
  });
  const meta = await fx.torrent();
  using client = httpClient();
  const seed = new WebSeed({
    url: `${server.origin}/`,
    torrent: meta,
    fetch: client.fetch,
    clock: clock.now,
  });
  await using d = drive(meta, [seed], fx.out, { runBytes: 4 * PIECE });
  const line = await within(10_000, "the 503", d.error(/waiting 30 s as the server asked$/));
  assert.match(line, new RegExp(`^web seed ${server.origin}/t/a\\.bin: 503 Service Unavailable;`));
  assert.deepEqual(d.scheduler.peers().map((p) => [p.state, p.peerChoking]), [["waiting", true]]);
  clock.advance(29_999);
  d.scheduler.tick();
  assert.equal(seed.state, "waiting", "29.999 s later: still waiting");
  assert.equal(d.picker.reservedCount, 0, "its pieces went back to the picker");
  clock.advance(1);
  d.scheduler.tick();
  assert.equal(seed.state, "busy");
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.equal(d.errors.length, 1);
});

// ------------------------------------------------------------------ padding, peers view, scheduler

Deno.test("BEP 47 padding files are never requested: their bytes are zeros", async () => {
  const a = payload(10_000, 3), b = payload(20_000, 4);
  const files: FileMap = new Map([["/p/a", a], ["/p/b", b]]);
  const pad = 16384 - a.length;
  const whole = new Uint8Array(16384 + b.length);
  whole.set(a);
  whole.set(b, 16384);
  const hashes = new Uint8Array(60);
  for (let i = 0; i < 3; i++) {
    const piece = whole.subarray(i * 16384, Math.min(whole.length, (i + 1) * 16384));
    hashes.set(new Uint8Array(await crypto.subtle.digest("SHA-1", piece)), i * 20);
  }
  const meta = await parseMetainfo(encode({
    info: {
      name: "p",
      "piece length": 16384,
      pieces: hashes,
      files: [
        { length: a.length, path: ["a"] },
        { length: pad, path: [".pad", String(pad)], attr: "p" },
        { length: b.length, path: ["b"] },
      ],
    },
  }));
  assert.equal(meta.files[1].padding, true);
  await using server = serveScripted((req) => honest(req, files));
  using client = httpClient();
  const seed = new WebSeed({ url: `${server.origin}/`, torrent: meta, fetch: client.fetch });
  const got: Uint8Array[] = [];
  const result = await seed.fetchPieces(0, 3, { onPiece: (_, data) => got.push(data.slice()) });
  assert.equal(result.outcome, "done");
  assert.equal(got.length, 3);
  assert.deepEqual(got[0], whole.subarray(0, 16384));
  assert.deepEqual(got[1], whole.subarray(16384, 32768));
  assert.deepEqual(got[2], whole.subarray(32768));
  assert.deepEqual(server.requests, ["GET /p/a bytes=0-9999", "GET /p/b bytes=0-19999"]);
});

Deno.test("peers() shows a web seed like a peer that has every piece", async () => {
  await using fx = await fixture();
  const meta = await fx.torrent();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using server = serveScripted(async (req) => {
    await gate;
    return honest(req, fx.files);
  });
  using client = httpClient();
  const seed = new WebSeed({ url: `${server.origin}/`, torrent: meta, fetch: client.fetch });
  await using d = drive(meta, [seed], fx.out, { runBytes: 3 * PIECE });
  const [info] = d.scheduler.peers();
  assert.equal(info.address, `${server.origin}/`);
  assert.equal(info.source, "webseed");
  assert.equal(info.kind, "url-list");
  assert.equal(info.state, "busy");
  assert.equal(info.have, meta.pieceCount);
  assert.equal(info.outstanding, 3);
  assert.equal(info.peerChoking, false);
  release();
  await completes(d);
  assert.equal(d.scheduler.peers()[0].downloaded, meta.length);
  await d.close();
});

Deno.test("closing the scheduler stops runs in flight and gives their pieces back", async () => {
  await using fx = await fixture();
  const meta = await fx.torrent();
  await using server = serveScripted((req, closing) => {
    const [a, b] = parseRange(req.headers.get("range"))!;
    const data = fx.files.get(new URL(req.url).pathname)!;
    return new Response(
      // the first piece, then silence until the server closes
      new ReadableStream({
        start(c) {
          c.enqueue(data.slice(a, a + PIECE));
        },
        async pull(c) {
          await new Promise((resolve) =>
            closing.addEventListener("abort", resolve, { once: true })
          );
          c.close();
        },
      }),
      { status: 206, headers: { "content-range": `bytes ${a}-${b}/${data.length}` } },
    );
  });
  using client = httpClient();
  const seed = new WebSeed({ url: `${server.origin}/`, torrent: meta, fetch: client.fetch });
  const d = drive(meta, [seed], fx.out, { runBytes: 2 * PIECE });
  await within(10_000, "the first piece", d.verified(0));
  assert.equal(d.picker.reservedCount, 1);
  await d.close();
  assert.equal(d.picker.reservedCount, 0, "piece 1 given back");
  assert.equal(d.scheduler.activeRuns, 0);
  assert.notEqual(seed.state, "dropped");
  assert.deepEqual(d.errors, [], "stopping is not a problem of the seed");
});

Deno.test("pause() stops runs and gives their pieces back; resume() carries on", async () => {
  await using fx = await fixture();
  const meta = await fx.torrent();
  let hold = true;
  const released: (() => void)[] = [];
  await using server = serveScripted(async (req, closing) => {
    if (hold) {
      await new Promise<void>((resolve) => {
        released.push(resolve);
        closing.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    return honest(req, fx.files);
  });
  using client = httpClient();
  const seed = new WebSeed({ url: `${server.origin}/`, torrent: meta, fetch: client.fetch });
  await using d = drive(meta, [seed], fx.out, { runBytes: 2 * PIECE });
  assert.equal(d.picker.reservedCount, 2);
  await d.scheduler.pause();
  assert.equal(d.picker.reservedCount, 0);
  assert.equal(d.scheduler.activeRuns, 0);
  d.scheduler.tick();
  assert.equal(d.scheduler.activeRuns, 0, "no run while paused");
  hold = false;
  for (const r of released) r();
  d.scheduler.resume();
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  assert.deepEqual(d.errors, []);
});
