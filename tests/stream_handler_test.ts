// The stream server driven by real HTTP clients: curl for ranges and headers, ffprobe/ffmpeg for playing and
// seeking a real video, raw TCP clients for back-pressure and disconnects. Sources here are files on disk (a
// complete torrent) and in-memory files whose bytes arrive while they are read (a torrent downloading).

import assert from "node:assert/strict";
import { join } from "node:path";
import { needs } from "./_lab.ts";
import { within } from "./_swarm.ts";
import {
  createStreamHandler,
  type StreamFile,
  type StreamSource,
  streamUrlPath,
} from "../src/http/stream_handler.ts";
import { serveStreams } from "../src/http/serve.ts";

const HASH = "0123456789abcdef0123456789abcdef01234567";
const HASH2 = "89abcdef0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------------------
// Sources

/** What a test source saw: every stream() call, cancellations, files still open. */
class Probe {
  calls: { path: string; start: number; end: number }[] = [];
  cancels: { path: string; reason: unknown }[] = [];
  open = 0;
  #waiters: (() => void)[] = [];
  /** Resolves at the next cancellation. */
  cancelled(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  cancel(path: string, reason: unknown) {
    this.cancels.push({ path, reason });
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** A complete torrent backed by files on disk: stream() reads the range, 64 KiB a pull. */
async function diskSource(
  name: string,
  infoHash: string,
  files: { path: string[]; disk: string }[],
  probe = new Probe(),
): Promise<StreamSource> {
  const out: StreamFile[] = [];
  for (const f of files) {
    const length = (await Deno.stat(f.disk)).size;
    const key = f.path.join("/");
    out.push({
      path: f.path,
      length,
      complete: true,
      stream({ start = 0, end = length }) {
        probe.calls.push({ path: key, start, end });
        let file: Deno.FsFile | undefined;
        let pos = start;
        const close = () => {
          if (file) {
            file.close();
            file = undefined;
            probe.open--;
          }
        };
        return new ReadableStream<Uint8Array>({
          async start() {
            file = await Deno.open(f.disk);
            probe.open++;
            await file.seek(start, Deno.SeekMode.Start);
          },
          async pull(controller) {
            const buf = new Uint8Array(Math.min(65536, end - pos));
            const n = buf.length === 0 ? null : await file!.read(buf);
            if (n === null) {
              close();
              controller.close();
              return;
            }
            pos += n;
            controller.enqueue(buf.subarray(0, n));
            if (pos >= end) {
              close();
              controller.close();
            }
          },
          cancel(reason) {
            probe.cancel(key, reason);
            close();
          },
        }, { highWaterMark: 0 });
      },
    });
  }
  return { name, infoHash, files: out };
}

/**
 * A one-file torrent "downloading": its bytes are in memory but only the first `available` may be read; a
 * stream that needs more waits until {@linkcode release} makes them available, as the engine's stream waits
 * for pieces. Counts what its streams handed out.
 */
class DownloadingFile implements StreamFile {
  readonly path: string[];
  readonly length: number;
  available = 0;
  pulled = 0;
  readonly probe = new Probe();
  readonly #bytes: (offset: number, n: number) => Uint8Array;
  #wake: (() => void)[] = [];

  constructor(path: string[], length: number, bytes: (offset: number, n: number) => Uint8Array) {
    this.path = path;
    this.length = length;
    this.#bytes = bytes;
  }
  get complete(): boolean {
    return this.available >= this.length;
  }
  get bytesCompleted(): number {
    return this.available;
  }
  /** Makes bytes up to `to` readable. */
  release(to: number) {
    this.available = Math.min(this.length, Math.max(this.available, to));
    for (const w of this.#wake.splice(0)) w();
  }
  stream({ start = 0, end = this.length }): ReadableStream<Uint8Array> {
    this.probe.calls.push({ path: this.path.join("/"), start, end });
    let pos = start;
    let wake: (() => void) | undefined;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (this.available <= pos) {
          await new Promise<void>((resolve) => this.#wake.push(wake = resolve));
        }
        const n = Math.min(65536, end - pos, this.available - pos);
        controller.enqueue(this.#bytes(pos, n));
        pos += n;
        this.pulled += n;
        if (pos >= end) controller.close();
      },
      cancel: (reason) => {
        this.probe.cancel(this.path.join("/"), reason);
        if (wake) this.#wake.splice(this.#wake.indexOf(wake), 1);
      },
    }, { highWaterMark: 0 });
  }
}

/** The byte at offset i of the synthetic files: cheap to make and to check. */
const patternByte = (i: number) => (i * 7 + (i >>> 16)) & 0xff;
function pattern(offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = patternByte(offset + i);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Clients

interface CurlResult {
  code: number;
  status: number;
  /** Response headers, lowercased names, without Date. */
  headers: Record<string, string>;
  body: Uint8Array;
  stderr: string;
}

/** Runs curl; the last response's status, headers and body. */
async function curl(dir: string, args: string[]): Promise<CurlResult> {
  const headerFile = join(dir, "curl-headers"), bodyFile = join(dir, "curl-body");
  await Deno.remove(bodyFile).catch(() => {});
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "60", "-D", headerFile, "-o", bodyFile, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const raw = await Deno.readTextFile(headerFile).catch(() => "");
  const blocks = raw.split(/\r?\n\r?\n/).filter((b) => b.trim() !== "");
  const lines = (blocks.at(-1) ?? "").split(/\r?\n/);
  const status = Number(lines[0]?.split(" ")[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name !== "date") headers[name] = line.slice(colon + 1).trim();
  }
  const body = await Deno.readFile(bodyFile).catch(() => new Uint8Array());
  return { code: out.code, status, headers, body, stderr: new TextDecoder().decode(out.stderr) };
}

async function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout),
    stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${stderr}`);
  return { stdout, stderr };
}

/** A raw HTTP/1.1 client: sends a request and reads the response head; the body is read (or not) by the test. */
async function rawGet(
  port: number,
  path: string,
  extra = "",
  method = "GET",
): Promise<{ conn: Deno.TcpConn; head: string; rest: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}\r\n`,
    ),
  );
  let got = new Uint8Array(0);
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("connection closed before the response head");
    const next = new Uint8Array(got.length + n);
    next.set(got);
    next.set(buf.subarray(0, n), got.length);
    got = next;
    const text = new TextDecoder("latin1").decode(got);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) return { conn, head: text.slice(0, end), rest: got.subarray(end + 4) };
  }
}

/** Resolves once `value()` has not changed for `quietMs` (checked every 100 ms): "nothing more happens". */
async function settled(value: () => number, quietMs: number): Promise<number> {
  let last = value(), since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = value();
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return now;
  }
}

// ---------------------------------------------------------------------------------------------------------
// A small torrent on disk: one data file, an HTML file, a file that is all special characters

async function fixture(dir: string) {
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(200_000);
  for (let i = 0; i < big.length; i += 65536) big.set(data.subarray(0, big.length - i), i);
  await Deno.mkdir(join(dir, "files"));
  const disk = (n: string) => join(dir, "files", n);
  await Deno.writeFile(disk("data.bin"), big);
  await Deno.writeTextFile(disk("page.html"), "<script>alert(document.cookie)</script>\n");
  await Deno.writeFile(disk("empty"), new Uint8Array());
  const probe = new Probe();
  const source = await diskSource("Fixture", HASH, [
    { path: ["data", "sample video.mp4"], disk: disk("data.bin") },
    { path: ["page.html"], disk: disk("page.html") },
    { path: ["empty.txt"], disk: disk("empty") },
  ], probe);
  return { big, source, probe, url: (port: number, i: number) => fileUrl(port, source, i) };
}

function fileUrl(port: number, source: StreamSource, i: number): string {
  return `http://127.0.0.1:${port}${streamUrlPath(source.infoHash, source.files[i].path)}`;
}

const ETAG0 = `"${HASH}-0-200000"`;
const FILE_HEADERS = {
  "accept-ranges": "bytes",
  "content-type": "video/mp4",
  etag: ETAG0,
  "content-disposition": `inline; filename="sample video.mp4"; filename*=UTF-8''sample%20video.mp4`,
  "x-content-type-options": "nosniff",
};

Deno.test({
  name:
    "curl: ranges, HEAD, If-Range, If-None-Match, 416 and 405, bodies byte for byte, headers exactly",
  ignore: needs("curl"),
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-http-" });
    try {
      const { big, source, probe, url } = await fixture(dir);
      await using server = serveStreams(source, { port: 0 });
      assert.equal(server.url, `http://127.0.0.1:${server.addr.port}/`);
      assert.equal(server.playlistUrl, `http://127.0.0.1:${server.addr.port}/playlist.m3u`);
      const port = server.addr.port;
      const u = url(port, 0);
      assert.equal(u, `http://127.0.0.1:${port}/${HASH}/data/sample%20video.mp4`);

      await t.step("whole file: 200 with Content-Length", async () => {
        const r = await curl(dir, [u]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.status, 200);
        assert.deepEqual(r.headers, { ...FILE_HEADERS, "content-length": "200000" });
        assert.deepEqual(r.body, big);
      });
      const ranges: [string, number, number][] = [
        ["0-99", 0, 100],
        ["1000-", 1000, 200000],
        ["-500", 199500, 200000],
        ["199999-", 199999, 200000],
        ["65530-65545", 65530, 65546],
        ["100-999999", 100, 200000], // last byte past the end: up to the end
        ["0-9,20-29", 0, 30], // several ranges: coalesced into one part
        ["-999999", 0, 200000], // suffix longer than the file: all of it
      ];
      for (const [range, start, end] of ranges) {
        await t.step(`-r ${range}: 206 bytes ${start}-${end - 1}/200000`, async () => {
          const r = await curl(dir, ["-r", range, u]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.status, 206);
          assert.deepEqual(r.headers, {
            ...FILE_HEADERS,
            "content-range": `bytes ${start}-${end - 1}/200000`,
            "content-length": String(end - start),
          });
          assert.deepEqual(r.body, big.subarray(start, end));
        });
      }
      await t.step("a range past the end: 416 with Content-Range bytes */len", async () => {
        for (const range of ["200000-", "300000-300010"]) {
          const r = await curl(dir, ["-r", range, u]);
          assert.equal(r.status, 416);
          assert.deepEqual(r.headers, {
            "content-type": "text/plain; charset=utf-8",
            "cache-control": "no-store",
            "accept-ranges": "bytes",
            "content-range": "bytes */200000",
            etag: ETAG0,
            "content-length": "22",
          });
        }
      });
      await t.step("a malformed Range is ignored: 200", async () => {
        for (const range of ["bytes=5-2", "bytes=abc", "items=0-1", "bytes=1-2-3"]) {
          const r = await curl(dir, ["-H", `Range: ${range}`, u]);
          assert.equal(r.status, 200, range);
          assert.equal(r.body.length, 200000);
        }
      });
      await t.step("-I (HEAD): the headers of GET, no body", async () => {
        const r = await curl(dir, ["-I", u]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.status, 200);
        assert.deepEqual(r.headers, { ...FILE_HEADERS, "content-length": "200000" });
        // and on the wire: nothing after the head
        const { conn, head, rest } = await rawGet(
          port,
          new URL(u).pathname,
          "Connection: close\r\n",
          "HEAD",
        );
        try {
          assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
          assert.match(head, /\r\ncontent-length: 200000\r\n/);
          assert.equal(rest.length, 0);
          assert.equal(await conn.read(new Uint8Array(1)), null, "the server closed with no body");
        } finally {
          conn.close();
        }
      });
      await t.step(
        "If-Range with our ETag: the range; another tag or a date: the whole file",
        async () => {
          const hit = await curl(dir, ["-r", "10-19", "-H", `If-Range: ${ETAG0}`, u]);
          assert.equal(hit.status, 206);
          assert.equal(hit.headers["content-range"], "bytes 10-19/200000");
          assert.deepEqual(hit.body, big.subarray(10, 20));
          for (
            const other of [`"${HASH}-0-199999"`, `W/${ETAG0}`, "Tue, 01 Dec 2026 00:00:00 GMT"]
          ) {
            const miss = await curl(dir, ["-r", "10-19", "-H", `If-Range: ${other}`, u]);
            assert.equal(miss.status, 200, other);
            assert.deepEqual(miss.headers, { ...FILE_HEADERS, "content-length": "200000" });
            assert.deepEqual(miss.body, big);
          }
        },
      );
      await t.step("If-None-Match: 304 when it matches (weakly), 200 otherwise", async () => {
        for (const tag of [ETAG0, `W/${ETAG0}`, `"x", ${ETAG0}`, "*"]) {
          const r = await curl(dir, ["-H", `If-None-Match: ${tag}`, u]);
          assert.equal(r.status, 304, tag);
          assert.deepEqual(r.headers, { etag: ETAG0 });
          assert.equal(r.body.length, 0);
        }
        const r = await curl(dir, ["-H", `If-None-Match: "other"`, u]);
        assert.equal(r.status, 200);
      });
      await t.step("If-Match: 412 when it misses", async () => {
        assert.equal((await curl(dir, ["-H", `If-Match: "other"`, u])).status, 412);
        assert.equal((await curl(dir, ["-r", "0-0", "-H", `If-Match: ${ETAG0}`, u])).status, 206);
      });
      await t.step("other methods: 405 with Allow", async () => {
        for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
          const r = await curl(dir, ["-X", method, u]);
          assert.equal(r.status, 405, method);
          assert.equal(r.headers.allow, "GET, HEAD");
        }
      });
      await t.step("an HTML file is served as text/plain in a sandbox", async () => {
        const r = await curl(dir, [url(port, 1)]);
        assert.equal(r.status, 200);
        assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
        assert.equal(r.headers["content-security-policy"], "sandbox");
        assert.equal(r.headers["x-content-type-options"], "nosniff");
        assert.equal(new TextDecoder().decode(r.body), "<script>alert(document.cookie)</script>\n");
      });
      await t.step("an empty file: 200 with no body, and every range unsatisfiable", async () => {
        const r = await curl(dir, [url(port, 2)]);
        assert.equal(r.status, 200);
        assert.equal(r.headers["content-length"], "0");
        assert.equal(
          (await curl(dir, ["-r", "0-", url(port, 2)])).headers["content-range"],
          "bytes */0",
        );
      });
      await t.step(
        "unknown torrents, files and paths: 404; nothing outside the file list",
        async () => {
          for (
            const path of [
              `/${HASH2}/data/sample%20video.mp4`,
              `/${HASH}/data/other.mp4`,
              `/${HASH}/sample%20video.mp4`,
              `/${HASH}/data%2Fsample%20video.mp4`,
              `/${HASH}/data/sample%20video.mp4/`,
              `/${HASH}/../../../../etc/passwd`,
              `/${HASH}/%2e%2e/%2e%2e/%2e%2e/etc/passwd`,
              `/${HASH}/..%2f..%2f..%2fetc%2fpasswd`,
              `/../../../../etc/passwd`,
              `/etc/passwd`,
              `/${HASH}/100%`,
              `/favicon.ico`,
            ]
          ) {
            const r = await curl(dir, ["--path-as-is", `http://127.0.0.1:${port}${path}`]);
            assert.equal(r.status, 404, path);
            assert.ok(!new TextDecoder().decode(r.body).includes("root:"), path);
          }
        },
      );
      assert.equal(probe.open, 0, "every file the source opened is closed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "curl: the index links every file by a URL that ends in its name, and the playlist uses the Host",
  ignore: needs("curl"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-http-" });
    try {
      // names that need percent-encoding, each file holding its own name
      const names = [
        ["a b.mkv"],
        ["x#y.mp3"],
        ["what?.mp4"],
        ["100%.webm"],
        ["ünïcødé 日本語.flac"],
        ["dir with space", "sub&dir", "e01 [1080p] 'quoted' \"double\".mkv"],
        ["notes.txt"],
        ["plus+and=equals;semicolon,comma.avi"],
      ];
      await Deno.mkdir(join(dir, "files"));
      const files = await Promise.all(names.map(async (path, i) => {
        const disk = join(dir, "files", String(i));
        await Deno.writeTextFile(disk, path.join("/"));
        return { path, disk };
      }));
      const probe = new Probe();
      const one = await diskSource("Weird <names> & co", HASH, files, probe);
      const other = await diskSource(
        "Other",
        HASH2,
        [{ path: ["b.mp4"], disk: files[0].disk }],
        probe,
      );
      await using server = serveStreams(() => [one, other], { port: 0 });
      const port = server.addr.port;

      const index = await curl(dir, [server.url]);
      assert.equal(index.status, 200);
      assert.equal(index.headers["content-type"], "text/html; charset=utf-8");
      const html = new TextDecoder().decode(index.body);
      assert.ok(html.includes("Weird &#60;names&#62; &#38; co"), "names are escaped");
      const hrefs = [...html.matchAll(/<a href="([^"]+)" data-index/g)].map((m) =>
        m[1].replaceAll("&#38;", "&").replaceAll("&#39;", "'").replaceAll("&#34;", '"')
      );
      assert.equal(hrefs.length, names.length + 1);
      for (const [i, path] of names.entries()) {
        const href = hrefs[i];
        assert.ok(href.startsWith(`/${HASH}/`), href);
        assert.ok(href.endsWith("/" + encodeURIComponent(path.at(-1)!)), href);
        const r = await curl(dir, [`http://127.0.0.1:${port}${href}`]);
        assert.equal(r.status, 200, href);
        assert.equal(new TextDecoder().decode(r.body), path.join("/"), href);
      }
      // one torrent's own index
      const own = new TextDecoder().decode((await curl(dir, [`${server.url}${HASH2}/`])).body);
      assert.ok(own.includes(`href="/${HASH2}/b.mp4"`) && !own.includes(HASH + "/"));

      // the playlist: media files only, absolute URLs on the Host the client used
      const list = await curl(dir, ["-H", `Host: localhost:${port}`, server.playlistUrl]);
      assert.equal(list.status, 200);
      assert.equal(list.headers["content-type"], "audio/x-mpegurl; charset=utf-8");
      const lines = new TextDecoder().decode(list.body).trimEnd().split("\n");
      assert.equal(lines[0], "#EXTM3U");
      const urls = lines.filter((l) => !l.startsWith("#"));
      const media = names.filter((p) => !p.at(-1)!.endsWith(".txt"));
      assert.deepEqual(urls, [
        ...media.map((p) => `http://localhost:${port}${streamUrlPath(HASH, p)}`),
        `http://localhost:${port}/${HASH2}/b.mp4`,
      ]);
      for (const [i, p] of media.entries()) {
        const r = await curl(dir, [urls[i]]);
        assert.equal(new TextDecoder().decode(r.body), p.join("/"));
      }
      assert.equal(probe.open, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Host check: a foreign Host gets 421; IP literals, localhost and listed names are served",
  ignore: needs("curl"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-http-" });
    try {
      const { source, url } = await fixture(dir);
      await using server = serveStreams(source, { port: 0, allowedHosts: ["media.lan"] });
      const port = server.addr.port;
      const u = url(port, 1);
      const status = async (host: string) => (await curl(dir, ["-H", `Host: ${host}`, u])).status;
      assert.equal(await status(`evil.example:${port}`), 421);
      assert.equal(await status(`other.lan:${port}`), 421);
      assert.equal(await status(`127.0.0.1.evil.example:${port}`), 421);
      assert.equal(await status(`127.0.0.1:${port}`), 200);
      assert.equal(await status(`[::1]:${port}`), 200);
      assert.equal(await status(`localhost:${port}`), 200);
      assert.equal(await status(`media.lan:${port}`), 200);
      assert.equal(await status(`MEDIA.LAN`), 200);
      // the index and the playlist are guarded too
      assert.equal((await curl(dir, ["-H", "Host: evil.example", server.url])).status, 421);
      assert.equal((await curl(dir, ["-H", "Host: evil.example", server.playlistUrl])).status, 421);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------------------
// Streaming while downloading

Deno.test({
  name:
    "chromium shows a torrent's HTML and SVG as text, running none of their script, and plays its video",
  ignore: needs("chromium", "ffmpeg"),
  async fn() {
    const files = [
      ["evil.html", `<img src="/pwned-img"><script>fetch("/pwned-script")</script>`],
      [
        "evil.svg",
        `<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/pwned-svg")</script></svg>`,
      ],
      ["evil.txt", `<script>fetch("/pwned-sniffed")</script>`],
    ].map(([name, text]): StreamFile => {
      const bytes = new TextEncoder().encode(text);
      return {
        path: [name],
        length: bytes.length,
        complete: true,
        stream: ({ start = 0, end = bytes.length }) =>
          ReadableStream.from([bytes.slice(start, end)]),
      };
    });
    const dir = await Deno.makeTempDir({ prefix: "seedbed-http-" });
    try {
      await run("ffmpeg", [
        ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=2:size=160x120:rate=25"],
        ...[
          "-c:v",
          "libx264",
          "-pix_fmt",
          "yuv420p",
          "-movflags",
          "+faststart",
          join(dir, "v.mp4"),
        ],
      ]);
      const mp4 = await Deno.readFile(join(dir, "v.mp4"));
      const playable = new DownloadingFile(
        ["video.mp4"],
        mp4.length,
        (o, n) => mp4.slice(o, o + n),
      );
      playable.release(mp4.length);
      files.push(playable);
      const source = { name: "evil", infoHash: HASH, files };
      const handler = createStreamHandler(source);
      const paths: string[] = [];
      await using server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
        paths.push(new URL(req.url).pathname);
        return handler(req);
      });
      for (const name of ["evil.html", "evil.svg", "evil.txt", "video.mp4"]) {
        const url = `http://127.0.0.1:${server.addr.port}/${HASH}/${name}`;
        const out = await new Deno.Command("chromium", {
          args: [
            ...[
              "--headless",
              "--no-sandbox",
              "--disable-gpu",
              `--user-data-dir=${join(dir, "profile")}`,
            ],
            ...[
              "--enable-logging=stderr",
              "--v=0",
              "--virtual-time-budget=3000",
              "--dump-dom",
              url,
            ],
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const dom = new TextDecoder().decode(out.stdout);
        const log = new TextDecoder().decode(out.stderr);
        if (name === "video.mp4") {
          assert.match(dom, /<video /, "a media document");
          assert.ok(!/blocked by CORS/.test(log), `the video loads: ${log.slice(-1000)}`);
          assert.ok(playable.pulled > 0, "the browser read the video");
        } else {
          assert.match(dom, /<pre[^>]*>&lt;/, `${name} shown as text: ${dom}`);
        }
      }
      assert.deepEqual(paths.filter((p) => p.includes("pwned")), [], "no script or image ran");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a file is served while it downloads: bytes flow as they become available", async () => {
  const file = new DownloadingFile(["movie.mkv"], 1_000_000, pattern);
  await using server = serveStreams({ name: "movie", infoHash: HASH, files: [file] }, { port: 0 });
  const res = await fetch(
    fileUrl(server.addr.port, { name: "", infoHash: HASH, files: [file] }, 0),
  );
  assert.equal(res.status, 200, "the headers come before any byte is available");
  assert.equal(res.headers.get("content-length"), "1000000");
  const reader = res.body!.getReader();
  const got: Uint8Array[] = [];
  let total = 0;
  for (const step of [100_000, 350_000, 350_001, 1_000_000]) {
    file.release(step);
    while (total < step) {
      const { value, done } = await within(10_000, `bytes up to ${step}`, reader.read());
      assert.ok(!done);
      got.push(value);
      total += value.length;
    }
    assert.equal(total, step, "no byte arrives before it is available");
  }
  assert.ok((await reader.read()).done);
  const all = new Uint8Array(total);
  let o = 0;
  for (const g of got) all.set(g, (o += g.length) - g.length);
  assert.deepEqual(all, pattern(0, 1_000_000));
  assert.deepEqual(file.probe.calls, [{ path: "movie.mkv", start: 0, end: 1_000_000 }]);
});

Deno.test("back-pressure: a client that does not read stops the source, with no unbounded buffering", async () => {
  const length = 64 * 1024 * 1024;
  const file = new DownloadingFile(["big.bin"], length, pattern);
  file.release(length); // everything available: only the client's reading can hold the source back
  await using server = serveStreams({ name: "big", infoHash: HASH, files: [file] }, { port: 0 });
  const { conn, head, rest } = await rawGet(server.addr.port, `/${HASH}/big.bin`);
  try {
    assert.match(head, /^HTTP\/1\.1 200 OK/);
    // nothing reads the socket: the server may fill the socket buffers, then the source must stop
    const stalled = await within(30_000, "the source to stop", settled(() => file.pulled, 1000));
    assert.ok(stalled < 16 * 1024 * 1024, `the source was pulled for ${stalled} bytes`);
    // then the whole file arrives intact
    let received = rest.length, bad = -1;
    for (let i = 0; i < rest.length; i++) if (rest[i] !== patternByte(i) && bad < 0) bad = i;
    const buf = new Uint8Array(1 << 20);
    await within(
      60_000,
      "the whole body",
      (async () => {
        while (received < length) {
          const n = await conn.read(buf);
          if (n === null) break;
          for (let i = 0; i < n; i++) {
            if (buf[i] !== patternByte(received + i) && bad < 0) bad = received + i;
          }
          received += n;
        }
      })(),
    );
    assert.equal(received, length);
    assert.equal(bad, -1, "every byte as the source gave it");
    console.log(
      `back-pressure: source stopped after ${(stalled / 2 ** 20).toFixed(1)} MiB of 64 MiB`,
    );
  } finally {
    conn.close();
  }
});

Deno.test("a client that disconnects mid-body cancels the source stream", async (t) => {
  const file = new DownloadingFile(["movie.mkv"], 10_000_000, pattern);
  file.release(300_000); // the rest never comes: the source waits for "pieces"
  await using server = serveStreams({ name: "movie", infoHash: HASH, files: [file] }, { port: 0 });
  const port = server.addr.port;

  await t.step("a raw TCP client closes its socket while the source waits", async () => {
    const cancelled = file.probe.cancelled();
    const { conn, rest } = await rawGet(port, `/${HASH}/movie.mkv`);
    let got = rest.length;
    const buf = new Uint8Array(65536);
    while (got < 300_000) got += (await conn.read(buf)) ?? 0;
    conn.close();
    await within(15_000, "the source stream to be cancelled", cancelled);
    assert.equal(file.probe.cancels.length, 1);
  });

  await t.step("fetch aborted after the first bytes of a range", async () => {
    const cancelled = file.probe.cancelled();
    const abort = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/${HASH}/movie.mkv`, {
      headers: { range: "bytes=200000-" },
      signal: abort.signal,
    });
    assert.equal(res.status, 206);
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.read().catch(() => {});
    await within(15_000, "the source stream to be cancelled", cancelled);
    assert.equal(file.probe.cancels.length, 2);
    assert.deepEqual(file.probe.calls.at(-1), {
      path: "movie.mkv",
      start: 200_000,
      end: 10_000_000,
    });
  });

  await t.step(
    "shutdown() ends a response that waits for pieces, and cancels its source",
    async () => {
      const cancelled = file.probe.cancelled();
      const { conn } = await rawGet(port, `/${HASH}/movie.mkv`);
      try {
        await within(15_000, "shutdown", server.shutdown());
        await within(15_000, "the source stream to be cancelled", cancelled);
        await within(15_000, "the server to finish", server.finished);
      } finally {
        conn.close();
      }
    },
  );
});

Deno.test("a source that ends early or errors cuts the connection; one that gives too much is cut", async () => {
  const bytes = pattern(0, 1000);
  const mk = (stream: () => ReadableStream<Uint8Array>): StreamSource => ({
    name: "x",
    infoHash: HASH,
    files: [{ path: ["f.bin"], length: 1000, complete: true, stream }],
  });
  const url = `http://127.0.0.1/${HASH}/f.bin`;
  const get = (source: StreamSource) =>
    createStreamHandler(source)(new Request(url, { headers: { host: "127.0.0.1" } }));

  const short = await get(mk(() => ReadableStream.from([bytes.slice(0, 500)])));
  await assert.rejects(short.arrayBuffer(), /ended 500 bytes early/);
  const failing = await get(mk(() =>
    new ReadableStream({
      pull(c) {
        c.error(new Error("piece storage failed"));
      },
    })
  ));
  await assert.rejects(failing.arrayBuffer(), /piece storage failed/);
  const long = await get(mk(() => ReadableStream.from([pattern(0, 1500)])));
  assert.deepEqual(new Uint8Array(await long.arrayBuffer()), bytes);
  const throwing = await get(mk(() => {
    throw new Error("torrent removed");
  }));
  assert.equal(throwing.status, 500);
  assert.match(await throwing.text(), /torrent removed/);
});

Deno.test("createStreamHandler() mounted at a basePath inside an application's own server", async () => {
  const file = new DownloadingFile(["song.mp3"], 5000, pattern);
  file.release(5000);
  const streams = createStreamHandler({ name: "album", infoHash: HASH, files: [file] }, {
    basePath: "/stream",
  });
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req) => new URL(req.url).pathname.startsWith("/stream/") ? streams(req) : new Response("app"),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(await (await fetch(`${base}/`)).text(), "app");
  const html = await (await fetch(`${base}/stream/`)).text();
  assert.ok(html.includes(`href="/stream/${HASH}/song.mp3"`), html);
  assert.ok(html.includes(`href="/stream/playlist.m3u"`));
  const list = await (await fetch(`${base}/stream/playlist.m3u`)).text();
  assert.equal(list, `#EXTM3U\n#EXTINF:-1,song.mp3\n${base}/stream/${HASH}/song.mp3\n`);
  const res = await fetch(`${base}/stream/${HASH}/song.mp3`, { headers: { range: "bytes=-10" } });
  assert.equal(res.headers.get("content-type"), "audio/mpeg");
  assert.deepEqual(new Uint8Array(await res.arrayBuffer()), pattern(4990, 10));
  const outside = await streams(new Request(`${base}/other/`, { headers: { host: "127.0.0.1" } }));
  assert.equal(outside.status, 404);
  await outside.body?.cancel();
});

// ---------------------------------------------------------------------------------------------------------
// A real video, played and seeked by ffprobe/ffmpeg over our URLs

async function framemd5(input: string, args: string[] = [], out: string[] = []): Promise<string> {
  const { stdout } = await run("ffmpeg", [
    ...["-v", "error", ...args, "-i", input, ...out, "-f", "framemd5", "-"],
  ]);
  return stdout.split("\n").filter((l) => l !== "" && !l.startsWith("#")).join("\n");
}

Deno.test({
  name: "ffprobe/ffmpeg play, seek and decode a video over HTTP exactly as from the file",
  ignore: needs("ffmpeg"),
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-http-" });
    try {
      const fast = join(dir, "fast.mp4"), tail = join(dir, "moov at end.mp4");
      await run("ffmpeg", [
        ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=20:size=320x240:rate=25"],
        // noise, so the 20 s take some 4 MB: big enough that ffmpeg seeks with Range instead of reading on
        ...["-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "veryfast"],
        ...["-pix_fmt", "yuv420p", "-g", "50", "-movflags", "+faststart", fast],
      ]);
      // the same stream with the index (moov) after the data: a player must seek to the end first
      await run("ffmpeg", ["-v", "error", "-i", fast, "-c", "copy", tail]);
      const probe = new Probe();
      const source = await diskSource("Test videos", HASH, [
        { path: ["fast.mp4"], disk: fast },
        { path: ["tail", "moov at end.mp4"], disk: tail },
      ], probe);
      await using server = serveStreams(source, { port: 0 });
      const port = server.addr.port;

      for (const [i, local] of [[0, fast], [1, tail]] as const) {
        const u = fileUrl(port, source, i);
        await t.step(`${source.files[i].path.join("/")}: ffprobe reads 20 s`, async () => {
          const { stdout } = await run("ffprobe", [
            ...["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", u],
          ]);
          assert.equal(Number(stdout.trim()), 20);
        });
        await t.step(
          `${source.files[i].path.join("/")}: seeking near the end decodes a frame`,
          async () => {
            probe.calls.length = 0;
            const frame = await framemd5(u, ["-ss", "18.5"], ["-frames:v", "1"]);
            assert.equal(frame.split("\n").length, 1, frame);
            assert.equal(frame, await framemd5(local, ["-ss", "18.5"], ["-frames:v", "1"]));
            assert.ok(
              probe.calls.some((c) => c.start > 0),
              `ffmpeg made Range requests: ${JSON.stringify(probe.calls)}`,
            );
          },
        );
        await t.step(
          `${source.files[i].path.join("/")}: a full decode matches the file's`,
          async () => {
            const overHttp = await framemd5(u);
            assert.equal(overHttp.split("\n").length, 500);
            assert.equal(overHttp, await framemd5(local));
          },
        );
      }
      assert.equal(probe.open, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "ffmpeg decodes the first frames of a video that is still downloading",
  ignore: needs("ffmpeg"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-http-" });
    try {
      const local = join(dir, "v.mp4");
      await run("ffmpeg", [
        ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=20:size=320x240:rate=25"],
        ...["-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "veryfast"],
        ...["-pix_fmt", "yuv420p", "-movflags", "+faststart", local],
      ]);
      const bytes = await Deno.readFile(local);
      const file = new DownloadingFile(["v.mp4"], bytes.length, (o, n) => bytes.slice(o, o + n));
      const quarter = Math.floor(bytes.length / 4);
      file.release(quarter);
      await using server = serveStreams({ name: "v", infoHash: HASH, files: [file] }, { port: 0 });
      const child = new Deno.Command("ffmpeg", {
        args: ["-v", "error", "-i", `${server.url}${HASH}/v.mp4`, "-f", "framemd5", "-"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const lines: string[] = [];
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      // frames come out while three quarters of the file are still missing
      await within(
        30_000,
        "ffmpeg's first decoded frames",
        (async () => {
          while (lines.filter((l) => !l.startsWith("#")).length < 25) {
            const { value, done } = await reader.read();
            if (done) throw new Error("ffmpeg ended: " + await stderr);
            buf += value;
            const parts = buf.split("\n");
            buf = parts.pop()!;
            lines.push(...parts.filter((l) => l !== ""));
          }
        })(),
      );
      assert.equal(file.available, quarter, "decoding started before the download went on");
      file.release(bytes.length);
      for (;;) {
        const { value, done } = await within(60_000, "ffmpeg's output", reader.read());
        if (done) break;
        buf += value;
      }
      lines.push(...buf.split("\n").filter((l) => l !== ""));
      assert.equal((await child.status).code, 0, await stderr);
      const decoded = lines.filter((l) => !l.startsWith("#")).join("\n");
      assert.equal(decoded, await framemd5(local));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("serveStreams() stops when its signal aborts: the port is closed afterwards", async () => {
  const stop = new AbortController();
  const file = new DownloadingFile(["a.mp3"], 100, pattern);
  file.release(100);
  const server = serveStreams({ name: "a", infoHash: HASH, files: [file] }, {
    port: 0,
    signal: stop.signal,
  });
  const res = await fetch(`${server.url}${HASH}/a.mp3`);
  assert.deepEqual(new Uint8Array(await res.arrayBuffer()), pattern(0, 100));
  stop.abort();
  await within(15_000, "the server to finish", server.finished);
  await assert.rejects(fetch(server.url).then((r) => r.body?.cancel()));
  await server.shutdown(); // idempotent
});
