// BEP 17 (Hoffman-style HTTP seeds) against a scripted seed script: nothing in Debian speaks it.

import assert from "node:assert/strict";
import { join } from "node:path";
import { bytesEqual } from "../src/_bytes.ts";
import { type BencodeDict, decode, encode } from "../src/bencode.ts";
import { createTorrent } from "../src/create.ts";
import { type Metainfo, parseMetainfo } from "../src/metainfo.ts";
import { encodeBinary } from "../src/tracker/http.ts";
import { httpSeedUrl, parseRetryBody } from "../src/swarm/httpseed.ts";
import { WebSeed, type WebSeedLimits, webSeedsOf } from "../src/swarm/webseed.ts";
import { payload, sameFiles, within } from "./_swarm.ts";
import { completes, drive, httpClient, serveScripted } from "./_webseed.ts";

const PIECE = 16384;
const FILES = [
  { path: "a.bin", length: 40_000 },
  { path: "b/c.bin", length: 30_000 },
];
const FAST: WebSeedLimits = { retryBaseMs: 20, maxFailures: 3 };

interface Fixture extends AsyncDisposable {
  tmp: string;
  out: string;
  /** The torrent, without HTTP seeds. */
  meta: Metainfo;
  /** The same torrent (same info hash) with these `httpseeds`. */
  withHttpSeeds(urls: string[]): Promise<Metainfo>;
  /** The torrent's bytes, concatenated. */
  data: Uint8Array;
  same(): Promise<boolean>;
}

async function fixture(): Promise<Fixture> {
  const tmp = await Deno.makeTempDir({ prefix: "seedbed-httpseed-" });
  const src = join(tmp, "src"), out = join(tmp, "out");
  const parts: Uint8Array[] = [];
  let seed = 11;
  for (const f of FILES) {
    const path = join(src, "h", f.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    const bytes = payload(f.length, seed++);
    parts.push(bytes);
    await Deno.writeFile(path, bytes);
  }
  const data = new Uint8Array(FILES.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  const torrent = await createTorrent(join(src, "h"), { pieceLength: PIECE, creationDate: null });
  return {
    tmp,
    out,
    meta: await parseMetainfo(torrent),
    withHttpSeeds(urls) {
      // the torrent is canonical bencode: decoding and encoding it again keeps the info hash
      const top = decode(torrent) as BencodeDict;
      top["httpseeds"] = urls.map((u) => new TextEncoder().encode(u));
      return parseMetainfo(encode(top));
    },
    data,
    same: () => sameFiles(join(src, "h"), join(out, "h"), FILES),
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }),
  };
}

/** The query as the script receives it: info_hash as bytes (percent-decoded byte by byte), piece, ranges. */
function parseQuery(req: Request): { infoHash: Uint8Array; piece: number; ranges?: string } {
  const search = new URL(req.url).search.slice(1);
  const out: Record<string, string> = {};
  for (const kv of search.split("&")) {
    const i = kv.indexOf("=");
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const raw = out["info_hash"] ?? "";
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === "%") {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(raw.charCodeAt(i));
  }
  return { infoHash: new Uint8Array(bytes), piece: Number(out["piece"]), ranges: out["ranges"] };
}

/** An honest seed script: 200 with the whole piece (or the ranges, appended), 404 for another torrent. */
function script(fx: Fixture, req: Request): Response {
  const q = parseQuery(req);
  if (!bytesEqual(q.infoHash, fx.meta.infoHash)) {
    return new Response("unknown torrent", { status: 404 });
  }
  if (!Number.isInteger(q.piece) || q.piece < 0 || q.piece >= fx.meta.pieceCount) {
    return new Response("bad piece", { status: 400 });
  }
  const start = q.piece * PIECE;
  const piece = fx.data.slice(start, Math.min(fx.data.length, start + PIECE));
  if (!q.ranges) return new Response(piece);
  const parts = q.ranges.split(",").map((r) => r.split("-").map(Number));
  return new Response(new Blob(parts.map(([a, b]) => piece.slice(a, b + 1))));
}

Deno.test("httpSeedUrl() and parseRetryBody() follow BEP 17", () => {
  const hash = new Uint8Array(20).fill(0xab);
  hash[0] = 0x20;
  assert.equal(
    httpSeedUrl("http://h/seed.php", hash, 7),
    `http://h/seed.php?info_hash=%20${"%AB".repeat(19)}&piece=7`,
  );
  assert.equal(
    httpSeedUrl("http://h/seed.php?key=1#x", hash, 0),
    `http://h/seed.php?key=1&info_hash=${encodeBinary(hash)}&piece=0`,
  );
  assert.equal(parseRetryBody(new TextEncoder().encode(" 120 \r\n")), 120);
  assert.equal(parseRetryBody(new TextEncoder().encode("-1")), undefined);
  assert.equal(parseRetryBody(new TextEncoder().encode("1".repeat(100))), undefined);
});

Deno.test("an HTTP seed (BEP 17) serves a multi-file torrent piece by piece; a 503 with a number makes it wait", async () => {
  await using fx = await fixture();
  let first = true;
  await using server = serveScripted((req) => {
    if (first) {
      first = false;
      return new Response("30\n", { status: 503 });
    }
    return script(fx, req);
  });
  const meta = await fx.withHttpSeeds([`${server.origin}/seed.php?key=abc`]);
  assert.deepEqual(meta.infoHash, fx.meta.infoHash);
  let now = Date.UTC(2030, 0, 1);
  using client = httpClient();
  const seeds = webSeedsOf(meta).map((s) =>
    new WebSeed({ ...s, torrent: fx.meta, fetch: client.fetch, clock: () => now, limits: FAST })
  );
  assert.deepEqual(seeds.map((s) => s.kind), ["httpseeds"]);
  await using d = drive(fx.meta, seeds, fx.out, { runBytes: 3 * PIECE });
  const line = await within(10_000, "the 503", d.error(/waiting 30 s as the server asked$/));
  assert.match(
    line,
    /^HTTP seed http:\/\/127\.0\.0\.1:\d+\/seed\.php\?key=abc&info_hash=.*&piece=0: 503 /,
  );
  now += 29_999;
  d.scheduler.tick();
  assert.equal(seeds[0].state, "waiting");
  now += 1;
  d.scheduler.tick();
  assert.equal(seeds[0].state, "busy");
  await completes(d);
  await d.close();
  assert.ok(await fx.same());
  const hash = encodeBinary(fx.meta.infoHash);
  const expected = ["GET /seed.php?key=abc&info_hash=" + hash + "&piece=0 -"];
  for (let i = 0; i < fx.meta.pieceCount; i++) {
    expected.push(`GET /seed.php?key=abc&info_hash=${hash}&piece=${i} -`);
  }
  assert.deepEqual(server.requests, expected, "one request per piece, no Range header");
  assert.equal(d.errors.length, 1);
});

interface BadScript {
  name: string;
  handler: (fx: Fixture, req: Request) => Response | Promise<Response>;
  /** The lines reported about it, in order. */
  lines: RegExp[];
}

const BAD_SCRIPTS: BadScript[] = [
  {
    name: "an error status (retried less and less often, then dropped)",
    handler: () => new Response("oops", { status: 500 }),
    lines: [
      /: 500 Internal Server Error; retrying in 0\.02 s \(failure 1 of 3\)$/,
      /: 500 Internal Server Error; retrying in 0\.04 s \(failure 2 of 3\)$/,
      /: 500 Internal Server Error; dropped after 3 failures in a row$/,
    ],
  },
  {
    name: "a 503 without a number (an error, not a wait)",
    handler: () => new Response("busy, come back later", { status: 503 }),
    lines: [
      /: 503 Service Unavailable; retrying in 0\.02 s \(failure 1 of 3\)$/,
      /: 503 Service Unavailable; retrying in 0\.04 s \(failure 2 of 3\)$/,
      /: 503 Service Unavailable; dropped after 3 failures in a row$/,
    ],
  },
  {
    name: "wrong bytes",
    handler: (fx, req) =>
      script(fx, req).arrayBuffer().then((b) => new Response(new Uint8Array(b).reverse())),
    lines: [/^HTTP seed http:\/\/127\.0\.0\.1:\d+\/s: piece \d+ failed its hash check; dropped$/],
  },
  {
    name: "more than the piece",
    handler: (fx, req) =>
      script(fx, req).arrayBuffer().then((b) =>
        new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new Uint8Array(b));
              c.enqueue(new Uint8Array(100));
              c.close();
            },
          }),
        )
      ),
    lines: [/&piece=\d+: sent more than the \d+ bytes asked for; dropped$/],
  },
];

for (const c of BAD_SCRIPTS) {
  Deno.test(`an HTTP seed sending ${c.name} is dropped; another completes the download`, async () => {
    await using fx = await fixture();
    await using bad = serveScripted((req) => c.handler(fx, req));
    await using good = serveScripted((req) => script(fx, req));
    using client = httpClient();
    const badSeed = new WebSeed({
      url: `${bad.origin}/s`,
      kind: "httpseeds",
      torrent: fx.meta,
      fetch: client.fetch,
      limits: FAST,
    });
    const goodSeed = new WebSeed({
      url: `${good.origin}/s`,
      kind: "httpseeds",
      torrent: fx.meta,
      fetch: client.fetch,
    });
    // the bad seed alone while it fails, the good one once it is dropped
    await using d = drive(fx.meta, [badSeed], fx.out, {
      runBytes: PIECE,
      failWhenAllDropped: false,
    });
    await within(10_000, "the bad seed to be dropped", d.error(/dropped/));
    d.add(goodSeed);
    await completes(d);
    await d.close();
    assert.ok(await fx.same());
    assert.equal(badSeed.state, "dropped");
    assert.equal(d.errors.length, c.lines.length, d.errors.join("\n"));
    c.lines.forEach((re, i) => assert.match(d.errors[i], re));
  });
}
