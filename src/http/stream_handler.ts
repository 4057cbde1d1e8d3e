/**
 * An HTTP handler that serves torrents' files while they download: an HTML index, an M3U playlist, and every
 * file with byte ranges, so a browser, mpv, VLC or ffmpeg can play and seek a video before it is complete.
 *
 * URLs (stable across runs; `basePath` defaults to `/`):
 * - `/` — an HTML index of every torrent's files (for one torrent: its files), with sizes and progress;
 * - `/playlist.m3u` — an M3U playlist of every audio and video file (of every file when there is none), with
 *   absolute URLs built from the request's `Host`;
 * - `/<infohash>/` — the index of one torrent;
 * - `/<infohash>/<path>/<in>/<torrent>` — a file: the info hash in lowercase hex, then the file's path
 *   components inside the torrent, each percent-encoded (`encodeURIComponent`), so the URL ends in the file's
 *   name. A request is looked up in the torrent's file list, never joined onto a filesystem path.
 *
 * Each file is served with `Content-Type` from its extension, `Content-Length`, `Accept-Ranges: bytes` and a
 * strong `ETag` (`"<infohash>-<file index>-<length>"`: a torrent's bytes never change). A single `Range`
 * (`bytes=a-b`, `a-`, `-n`) gets `206` with `Content-Range`; several ranges are coalesced into the one range
 * that covers them all (a single `206` part, never `multipart/byteranges`); a range past the end gets `416` with
 * a `Content-Range` that gives the length; a malformed `Range` is ignored (`200`). `If-Range` with another tag (or a
 * date) gets the whole file; `If-None-Match` hits get `304`, `If-Match` misses `412`. `HEAD` answers with the
 * headers of `GET` and no body (and, as RFC 9110 says, ignores `Range`). Other methods get `405`.
 *
 * Untrusted content: HTML, SVG, XML and scripts from a torrent are served as `text/plain`, every file carries
 * `X-Content-Type-Options: nosniff`, and every file that is not audio, video, an image or a PDF (which browsers
 * show in documents of their own, running no script from the file) carries `Content-Security-Policy: sandbox`,
 * so a torrent can never run script on this origin. The `Host` header is checked first (see {@linkcode hostAllowed}): other names get `421`.
 *
 * Bodies stream: a response body pulls from {@linkcode StreamFile.stream} one chunk at a time as the connection
 * drains (no read-ahead beyond what the source does), so a file plays while its pieces arrive. A client that goes
 * away cancels the source stream, which lets the engine drop its piece deadlines.
 *
 * @module
 */

import { contentTypeFor, isMedia } from "./content_type.ts";
import { checkHost, type HostCheckOptions } from "./host_check.ts";
import { ifRangeHits, matchHits, noneMatchHits, parseRange } from "./range.ts";

/** What the handler serves: one torrent's files. */
export interface StreamSource {
  /** The torrent's name, shown in the index. */
  readonly name: string;
  /** The info hash in hex (40 digits for v1 and hybrid torrents, 64 for v2): the first URL segment. */
  readonly infoHash: string;
  /** The torrent's files in torrent order, padding files already excluded. A file's index is its ETag's. */
  readonly files: readonly StreamFile[];
}

/** One file of a {@linkcode StreamSource}. */
export interface StreamFile {
  /** Path components inside the torrent (for a single-file torrent: its name). */
  readonly path: readonly string[];
  /** Length in bytes. */
  readonly length: number;
  /** Whether every byte is verified. */
  readonly complete: boolean;
  /** Verified bytes, for the index's progress column; when absent only "complete" or "downloading" is shown. */
  readonly bytesCompleted?: number;
  /**
   * The bytes `[start, end)` in order, each chunk a fresh buffer the reader may keep, as soon as their pieces
   * are verified (waiting as long as it takes). Cancelling the stream gives up on the rest. The handler checks
   * `0 <= start < end <= length` before calling; a stream that ends early, or errors, aborts the response.
   *
   * @param options The byte range; `start` defaults to 0, `end` (exclusive) to `length`.
   */
  stream(options: { start?: number; end?: number }): ReadableStream<Uint8Array>;
}

/**
 * The torrents to serve: one source, a list, or a function called on every request (for a Session whose
 * torrents come and go).
 */
export type StreamSources = StreamSource | readonly StreamSource[] | (() => Iterable<StreamSource>);

/** Options for {@linkcode createStreamHandler}. */
export interface StreamHandlerOptions extends HostCheckOptions {
  /**
   * The path the handler is mounted at, e.g. `"/stream/"` inside an application that serves other things too.
   * Requests outside it get 404.
   * @default {"/"}
   */
  basePath?: string;
  /**
   * Aborting it ends every response still streaming (the client sees a cut connection, the sources are
   * cancelled) and makes new requests get 503 — what a server's shutdown needs, as streams can wait for
   * pieces indefinitely.
   */
  signal?: AbortSignal;
}

/** A `Deno.serve` handler. */
export type StreamHandler = (req: Request, info?: unknown) => Promise<Response>;

const HEX_HASH = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const PLAYLIST = "playlist.m3u";
const TEXT = "text/plain; charset=utf-8";
/**
 * Types a browser shows in a document of its own making (a media or image document, its PDF viewer), with no
 * script from the file: no sandbox for them. A sandbox would even break them: Chromium's media document then
 * has an opaque origin, and its `<video crossorigin>` request for the file fails the CORS check.
 */
const RENDERED_BY_BROWSER = /^(?:video\/|audio\/|image\/|application\/pdf$)/;

/**
 * Creates the handler that serves `sources` (see the module documentation for URLs and headers).
 *
 * @example Serve one torrent from an application's own server
 * ```ts
 * import { createStreamHandler, type StreamSource } from "./stream_handler.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = new TextEncoder().encode("Hello, world!");
 * const source: StreamSource = {
 *   name: "hello",
 *   infoHash: "0123456789abcdef0123456789abcdef01234567",
 *   files: [{
 *     path: ["hello.txt"],
 *     length: bytes.length,
 *     complete: true,
 *     stream: ({ start = 0, end = bytes.length }) => ReadableStream.from([bytes.slice(start, end)]),
 *   }],
 * };
 * const handler = createStreamHandler(source);
 * const res = await handler(
 *   new Request("http://127.0.0.1:8888/0123456789abcdef0123456789abcdef01234567/hello.txt", {
 *     headers: { host: "127.0.0.1:8888", range: "bytes=7-" },
 *   }),
 * );
 * assert.equal(res.status, 206);
 * assert.equal(res.headers.get("content-range"), "bytes 7-12/13");
 * assert.equal(await res.text(), "world!");
 * ```
 *
 * @param sources The torrents to serve.
 * @param options Mount point, allowed host names, shutdown signal.
 * @returns A handler for `Deno.serve` (or any server built on `Request`/`Response`).
 * @throws {TypeError} When `basePath` does not start with `/`.
 */
export function createStreamHandler(
  sources: StreamSources,
  options: StreamHandlerOptions = {},
): StreamHandler {
  let base = options.basePath ?? "/";
  if (!base.startsWith("/")) throw new TypeError(`basePath must start with "/": ${base}`);
  if (!base.endsWith("/")) base += "/";
  const list = typeof sources === "function"
    ? sources
    : Array.isArray(sources)
    ? () => sources as readonly StreamSource[]
    : () => [sources as StreamSource];
  const signal = options.signal;
  /** Ends each response body still streaming. */
  const open = new Set<(reason: Error) => void>();
  signal?.addEventListener("abort", () => {
    for (const end of [...open]) end(new Error("stream server shutting down"));
  }, { once: true });

  // deno-lint-ignore require-await
  return async (req) => {
    const refused = checkHost(req, options);
    if (refused) return refused;
    if (signal?.aborted) return text(503, "Service Unavailable: shutting down\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return text(405, "Method Not Allowed\n", { allow: "GET, HEAD" });
    }
    const url = new URL(req.url);
    if (!url.pathname.startsWith(base)) return text(404, "Not Found\n");
    const rest = url.pathname.slice(base.length);
    if (rest === "") return htmlIndex(req, base, [...list()]);
    if (rest === PLAYLIST) return playlist(req, url, base, [...list()]);
    const segments = rest.split("/");
    const hash = segments[0].toLowerCase();
    if (!HEX_HASH.test(hash)) return text(404, "Not Found\n");
    let source: StreamSource | undefined;
    for (const s of list()) {
      if (s.infoHash.toLowerCase() === hash) {
        source = s;
        break;
      }
    }
    if (!source) return text(404, "Not Found: no such torrent\n");
    if (segments.length === 1 || (segments.length === 2 && segments[1] === "")) {
      return htmlIndex(req, base, [source]);
    }
    let path: string[];
    try {
      path = segments.slice(1).map(decodeURIComponent);
    } catch {
      return text(404, "Not Found: bad percent-encoding\n");
    }
    const index = source.files.findIndex((f) =>
      f.path.length === path.length && f.path.every((p, i) => p === path[i])
    );
    if (index < 0) return text(404, "Not Found: no such file in this torrent\n");
    return serveFile(req, source, index, open);
  };
}

/**
 * The URL path of a file: `basePath`, the info hash, then each path component percent-encoded.
 *
 * @example
 * ```ts
 * import { streamUrlPath } from "./stream_handler.ts";
 * import assert from "node:assert/strict";
 *
 * const hash = "0123456789abcdef0123456789abcdef01234567";
 * assert.equal(streamUrlPath(hash, ["Season 1", "E01 #1?.mkv"]), `/${hash}/Season%201/E01%20%231%3F.mkv`);
 * ```
 *
 * @param infoHash The torrent's info hash in hex.
 * @param path The file's path components inside the torrent.
 * @param basePath Where the handler is mounted.
 * @returns An absolute path, to append to `http://host:port`.
 */
export function streamUrlPath(
  infoHash: string,
  path: readonly string[],
  basePath = "/",
): string {
  const base = basePath.endsWith("/") ? basePath : basePath + "/";
  return base + infoHash.toLowerCase() + "/" + path.map(encodeURIComponent).join("/");
}

function serveFile(
  req: Request,
  source: StreamSource,
  index: number,
  open: Set<(reason: Error) => void>,
): Response {
  const file = source.files[index];
  const length = file.length;
  const name = file.path[file.path.length - 1] ?? source.name;
  const type = contentTypeFor(name);
  const etag = `"${source.infoHash.toLowerCase()}-${index}-${length}"`;
  const headers = new Headers({
    "accept-ranges": "bytes",
    "content-type": type,
    etag,
    "content-disposition": contentDisposition(name),
    "x-content-type-options": "nosniff",
  });
  if (!RENDERED_BY_BROWSER.test(type)) headers.set("content-security-policy", "sandbox");

  // preconditions, in RFC 9110 §13.2.2's order (no Last-Modified: the date-based ones never apply)
  const ifMatch = req.headers.get("if-match");
  if (ifMatch !== null && !matchHits(ifMatch, etag)) {
    return text(412, "Precondition Failed\n", { etag });
  }
  const ifNoneMatch = req.headers.get("if-none-match");
  if (ifNoneMatch !== null && noneMatchHits(ifNoneMatch, etag)) {
    return new Response(null, { status: 304, headers: { etag } });
  }
  let start = 0, end = length, status = 200;
  const ifRange = req.headers.get("if-range");
  if (req.method === "GET" && (ifRange === null || ifRangeHits(ifRange, etag))) {
    const range = parseRange(req.headers.get("range"), length);
    if (range === "unsatisfiable") {
      return text(416, "Range Not Satisfiable\n", {
        "accept-ranges": "bytes",
        "content-range": `bytes */${length}`,
        etag,
      });
    }
    if (range) {
      ({ start, end } = range);
      status = 206;
      headers.set("content-range", `bytes ${start}-${end - 1}/${length}`);
    }
  }
  headers.set("content-length", String(end - start));
  if (req.method === "HEAD" || start === end) return new Response(null, { status, headers });
  let body: ReadableStream<Uint8Array>;
  try {
    body = exactly(file.stream({ start, end }), end - start, open);
  } catch (e) {
    return text(500, `Cannot read this file: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  return new Response(body, { status, headers });
}

/**
 * Pulls `source` one chunk per pull of the response body and checks it delivers exactly `length` bytes: extra
 * bytes are cut, an early end errors the body (the connection is cut rather than left hanging). Cancelling it
 * (the client went away) cancels `source`.
 */
function exactly(
  source: ReadableStream<Uint8Array>,
  length: number,
  open: Set<(reason: Error) => void>,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let left = length;
  let ended = false;
  /** Stops reading the source: cancels it (a no-op on one that closed already). */
  const release = (reason?: unknown) => {
    ended = true;
    open.delete(end);
    return reader.cancel(reason).catch(() => {});
  };
  let end: (reason: Error) => void;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      end = (reason) => {
        // closing short of Content-Length makes the server cut the connection, quietly (an error would be
        // logged by Deno.serve as if something had failed)
        try {
          controller.close();
        } catch { /* already closed or errored */ }
        release(reason);
      };
      open.add(end);
    },
    async pull(controller) {
      for (;;) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (e) {
          release();
          throw e;
        }
        if (ended) return; // cancelled or shut down while waiting
        if (result.done) {
          release();
          throw new RangeError(`file stream ended ${left} bytes early`);
        }
        const chunk = result.value;
        if (chunk.byteLength === 0) continue;
        const part = chunk.byteLength > left ? chunk.subarray(0, left) : chunk;
        left -= part.byteLength;
        controller.enqueue(part);
        if (left === 0) {
          controller.close();
          release();
        }
        return;
      }
    },
    cancel(reason) {
      return release(reason);
    },
  }, { highWaterMark: 0 });
}

function htmlIndex(req: Request, base: string, sources: StreamSource[]): Response {
  const parts: string[] = [
    `<!doctype html>\n<html><head><meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width">`,
    `<title>${escapeHtml(sources.length === 1 ? sources[0].name : "Seedbed")}</title>`,
    `<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}` +
    `td{padding:.2em .8em}td.n{text-align:right;font-variant-numeric:tabular-nums}` +
    `small{color:#666}</style></head><body>`,
    `<p><a href="${escapeHtml(base + PLAYLIST)}">Playlist (M3U)</a> — open it in mpv or VLC.</p>`,
  ];
  if (sources.length === 0) parts.push(`<p>No torrents.</p>`);
  for (const s of sources) {
    parts.push(
      `<h2>${escapeHtml(s.name)}</h2><p><small>${escapeHtml(s.infoHash.toLowerCase())}</small></p>`,
      `<table>`,
    );
    s.files.forEach((f, i) => {
      const href = streamUrlPath(s.infoHash, f.path, base);
      const progress = f.complete
        ? "100%"
        : f.bytesCompleted !== undefined && f.length > 0
        ? `${Math.floor((f.bytesCompleted / f.length) * 1000) / 10}%`
        : "downloading";
      parts.push(
        `<tr><td><a href="${escapeHtml(href)}" data-index="${i}">${
          escapeHtml(f.path.join("/"))
        }</a></td><td class="n" title="${f.length} bytes">${formatSize(f.length)}</td>` +
          `<td class="n">${progress}</td></tr>`,
      );
    });
    parts.push(`</table>`);
  }
  parts.push(`</body></html>\n`);
  const body = new TextEncoder().encode(parts.join("\n"));
  return new Response(req.method === "HEAD" ? null : body, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-length": String(body.length),
      "cache-control": "no-store",
      "content-security-policy":
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    },
  });
}

function playlist(req: Request, url: URL, base: string, sources: StreamSource[]): Response {
  const entries: { title: string; href: string }[] = [];
  const all: { title: string; href: string }[] = [];
  for (const s of sources) {
    for (const f of s.files) {
      const name = f.path[f.path.length - 1] ?? s.name;
      const entry = {
        // a name is untrusted: a line break in it must not add a playlist line
        // deno-lint-ignore no-control-regex
        title: f.path.join("/").replace(/[\x00-\x1f\x7f\u2028\u2029]/g, " "),
        href: url.origin + streamUrlPath(s.infoHash, f.path, base),
      };
      all.push(entry);
      if (isMedia(contentTypeFor(name))) entries.push(entry);
    }
  }
  const lines = ["#EXTM3U"];
  for (const e of entries.length > 0 ? entries : all) lines.push(`#EXTINF:-1,${e.title}`, e.href);
  const body = new TextEncoder().encode(lines.join("\n") + "\n");
  return new Response(req.method === "HEAD" ? null : body, {
    headers: {
      "content-type": "audio/x-mpegurl; charset=utf-8",
      "content-length": String(body.length),
      "content-disposition": `inline; filename="${PLAYLIST}"`,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": TEXT, "cache-control": "no-store", ...headers },
  });
}

/** `inline` with the name as RFC 6266 `filename*` (UTF-8) and an ASCII `filename` fallback. */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
  return `inline; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatSize(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}
