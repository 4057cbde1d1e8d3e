// Helpers for the web seed tests: Debian's nginx on 127.0.0.1, small scripted HTTP servers, and a download driver
// (picker + SHA-1 verification + storage) standing in for the engine until web seeds are wired into it.

import { join } from "node:path";
import { Bitfield } from "../src/bitfield.ts";
import { bytesEqual } from "../src/_bytes.ts";
import { type Metainfo, pieceHash } from "../src/metainfo.ts";
import { Storage } from "../src/storage/storage.ts";
import { PiecePicker } from "../src/swarm/piece_picker.ts";
import type { WebSeed } from "../src/swarm/webseed.ts";
import { WebSeedScheduler } from "../src/swarm/webseed_scheduler.ts";
import { spawn } from "./_lab.ts";
import { within } from "./_swarm.ts";

/** A `fetch` on its own HTTP client, closed with the test (no pooled connection outlives it). */
export function httpClient(
  options: Deno.CreateHttpClientOptions = {},
): { fetch: typeof fetch } & Disposable {
  const client = Deno.createHttpClient(options);
  const f =
    ((input: string | URL | Request, init?: RequestInit) =>
      fetch(input, { ...init, client })) as typeof fetch;
  return { fetch: f, [Symbol.dispose]: () => client.close() };
}

/** A running nginx serving a directory. */
export interface Nginx extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  port: number;
  /** The access log: one line per request, `METHOD "URI" "RANGE" STATUS BYTES` (URI decoded). */
  accessLog(): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Starts Debian's nginx in the foreground (no master, no daemon) on 127.0.0.1, serving `root`, with its pid,
 * logs and temp paths in a scratch directory. nginx cannot bind port 0: a random port is tried, and another one
 * when nginx reports "Address already in use". Ready once it answers a probe with this instance's token.
 * `limitRate` caps each response (nginx's `limit_rate`, e.g. "2m" bytes/s).
 */
export async function startNginx(
  root: string,
  options: { limitRate?: string } = {},
): Promise<Nginx> {
  const work = await Deno.makeTempDir({ prefix: "seedbed-nginx-" });
  const token = crypto.randomUUID();
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const conf = join(work, "nginx.conf");
    await Deno.writeTextFile(
      conf,
      `daemon off;
master_process off;
worker_processes 1;
pid ${work}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  log_format seedbed '$request_method "$uri" "$http_range" $status $body_bytes_sent $msec $request_time';
  access_log ${work}/access.log seedbed;
  client_body_temp_path ${work}/body;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};${options.limitRate ? `\n    limit_rate ${options.limitRate};` : ""}
    location = /.seedbed-probe { access_log off; return 200 "${token}"; }
  }
}
`,
    );
    const proc = spawn("/usr/sbin/nginx", ["-p", work, "-c", conf, "-e", "stderr"], port);
    const origin = `http://127.0.0.1:${port}`;
    let exited = false;
    proc.exited.then(() => exited = true);
    using probe = httpClient();
    const deadline = Date.now() + 20_000;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      const text = await probe.fetch(`${origin}/.seedbed-probe`).then((r) => r.text(), () => "");
      if (text === token) {
        ready = true;
        break;
      }
      // no event tells when nginx has bound its port: poll it, bounded
      await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 25))]);
    }
    if (ready) {
      const stop = async () => {
        await proc.stop();
        await Deno.remove(work, { recursive: true }).catch(() => {});
      };
      return {
        origin,
        port,
        async accessLog() {
          const text = await Deno.readTextFile(join(work, "access.log")).catch(() => "");
          return text.split("\n").filter((l) => l !== "");
        },
        stop,
        [Symbol.asyncDispose]: stop,
      };
    }
    await proc.stop();
    if (!proc.stderr().includes("Address already in use")) {
      await Deno.remove(work, { recursive: true }).catch(() => {});
      throw new Error(`nginx did not start on port ${port}: ${proc.stderr().slice(-2000)}`);
    }
  }
  await Deno.remove(work, { recursive: true }).catch(() => {});
  throw new Error("nginx found no free port in 10 attempts");
}

/** A scripted HTTP server on 127.0.0.1 (port 0) for misbehaving web seeds. */
export interface Scripted extends AsyncDisposable {
  /** `http(s)://127.0.0.1:PORT` */
  origin: string;
  port: number;
  /** Every request: `METHOD PATH+QUERY RANGE` (RANGE "-" when absent). */
  requests: string[];
  /** Aborted when the server closes: handlers that hang wait for it. */
  closing: AbortSignal;
  close(): Promise<void>;
}

/** Starts a scripted server; `handler` also gets a signal that aborts when the server closes. */
export function serveScripted(
  handler: (req: Request, closing: AbortSignal) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
): Scripted {
  const closing = new AbortController();
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {}, ...(tls ?? {}) },
    (req) => {
      const u = new URL(req.url);
      requests.push(`${req.method} ${u.pathname}${u.search} ${req.headers.get("range") ?? "-"}`);
      return handler(req, closing.signal);
    },
  );
  const port = server.addr.port;
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing.abort();
      await server.shutdown();
    })();
  return {
    origin: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    requests,
    closing: closing.signal,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The torrent's files by URL path (decoded), as an honest server serves them. */
export type FileMap = Map<string, Uint8Array>;

/** Parses `Range: bytes=a-b` (one range, both ends given, as web seeds send it). */
export function parseRange(header: string | null): [number, number] | undefined {
  const m = header === null ? null : /^bytes=(\d+)-(\d+)$/.exec(header);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** The file a request names, or undefined. */
export function fileOf(req: Request, files: FileMap, prefix = ""): Uint8Array | undefined {
  const path = new URL(req.url).pathname.split("/").map(decodeURIComponent).join("/");
  return path.startsWith(prefix) ? files.get(path.slice(prefix.length)) : undefined;
}

/** What an honest server answers: 206 with the range, 200 without one, 404 for an unknown file. */
export function honest(req: Request, files: FileMap, prefix = ""): Response {
  const data = fileOf(req, files, prefix);
  if (!data) return new Response("not found", { status: 404 });
  const range = parseRange(req.headers.get("range"));
  if (!range) return new Response(data.slice());
  const [a, b] = range;
  if (a > b || b >= data.length) return new Response(null, { status: 416 });
  return new Response(data.slice(a, b + 1), {
    status: 206,
    headers: { "content-range": `bytes ${a}-${b}/${data.length}` },
  });
}

/** Options of {@linkcode drive}. */
export interface DriveOptions {
  /** Bytes per run. */
  runBytes?: number;
  /** Runs in flight per seed. */
  runsPerSeed?: number;
  /** The picker's memory bound, in pieces. */
  maxInMemory?: number;
  /** Milliseconds between scheduler ticks. */
  tickMs?: number;
  /** Fail `complete` as soon as every seed is dropped (off when the test adds seeds later). @default {true} */
  failWhenAllDropped?: boolean;
}

/** A download in progress from web seeds only. */
export interface Drive extends AsyncDisposable {
  scheduler: WebSeedScheduler;
  picker: PiecePicker;
  have: Bitfield;
  /** Every line reported through onError. */
  errors: string[];
  /** Pieces that failed their hash check. */
  failed: number[];
  /** Resolves once every piece is verified and written; rejects when every seed was dropped first. */
  complete: Promise<void>;
  /** Resolves with the first reported line (from now on or already) matching `pattern`. */
  error(pattern: RegExp): Promise<string>;
  /** Resolves once piece `index` is verified and written. */
  verified(index: number): Promise<void>;
  /** Adds a seed to the download. */
  add(seed: WebSeed): void;
  close(): Promise<void>;
}

/**
 * Downloads `meta` into `dir` from web seeds alone: PiecePicker.pickRun for runs, receivePiece for arriving
 * pieces, SHA-1 against the torrent, Storage.writePiece, and WebSeedScheduler.blame on a failed piece — what
 * the engine will do once web seeds are wired in.
 */
export function drive(
  meta: Metainfo,
  seeds: WebSeed[],
  dir: string,
  options: DriveOptions = {},
): Drive {
  const have = new Bitfield(meta.pieceCount);
  const picker = new PiecePicker({
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    totalLength: meta.length,
    have,
    maxInMemory: options.maxInMemory ?? 32,
  });
  const storage = new Storage({ dir, layout: meta, writerThread: false });
  const errors: string[] = [];
  const failed: number[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const done = Promise.withResolvers<void>();
  done.promise.catch(() => {}); // observed through `complete`
  const ids = new Map<WebSeed, number>(seeds.map((s, i) => [s, i + 1]));
  const pieceWaiters = new Map<number, (() => void)[]>();
  let chain = Promise.resolve();
  const scheduler = new WebSeedScheduler({
    picker: {
      // a run waits until at least half of it fits in memory: few long requests, as BEP 19 asks
      nextRun: (max) => picker.pickRun(max, { atLeast: Math.ceil(max / 2) }),
      giveBack: (i) => picker.unreserve(i),
    },
    runBytes: options.runBytes,
    runsPerSeed: options.runsPerSeed,
    onPiece(index, data, seed) {
      const piece = picker.receivePiece(index, data, ids.get(seed)!);
      if (!piece) return;
      chain = chain.then(async () => {
        const size = picker.pieceSize(index);
        const bytes = piece.buffer.subarray(0, size);
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", bytes));
        if (!bytesEqual(digest, pieceHash(meta, index))) {
          failed.push(index);
          picker.pieceFailed(piece);
          scheduler.blame(seed, index);
        } else {
          await storage.writePiece(index, bytes);
          picker.pieceVerified(piece);
          picker.release(piece.buffer);
          have.set(index);
          for (const w of pieceWaiters.get(index) ?? []) w();
          pieceWaiters.delete(index);
          if (have.count === meta.pieceCount) done.resolve();
        }
        scheduler.tick();
      }).catch(done.reject);
    },
    onError(err) {
      errors.push(err.message);
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(err.message)) w.resolve(err.message);
        else waiters.push(w);
      }
    },
  });
  for (const s of seeds) scheduler.add(s);
  const timer = setInterval(() => {
    scheduler.tick();
    if (
      (options.failWhenAllDropped ?? true) && have.count < meta.pieceCount &&
      scheduler.seeds.every((s) => s.state === "dropped")
    ) {
      done.reject(new Error(`every web seed was dropped:\n${errors.join("\n")}`));
    }
  }, options.tickMs ?? 20);
  scheduler.tick();
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      clearInterval(timer);
      await scheduler.close();
      await chain;
      await storage.close();
    })();
  return {
    scheduler,
    picker,
    have,
    errors,
    failed,
    complete: done.promise,
    error(pattern) {
      const seen = errors.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
    verified(index) {
      if (have.has(index)) return Promise.resolve();
      return new Promise((resolve) => {
        const list = pieceWaiters.get(index) ?? [];
        list.push(resolve);
        pieceWaiters.set(index, list);
      });
    },
    add(seed) {
      ids.set(seed, ids.size + 1);
      scheduler.add(seed);
      scheduler.tick();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Waits for the download, naming what it waited for on timeout. */
export function completes(d: Drive, ms = 30_000): Promise<void> {
  return within(ms, "the web seed download to complete", d.complete);
}

/** A raw TCP server speaking just enough HTTP/1.1 to misbehave in ways `Deno.serve` will not. */
export interface Raw extends AsyncDisposable {
  origin: string;
  port: number;
  /** Every request line plus its Range header. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Starts a raw server on 127.0.0.1 (port 0): reads each request's head (one request per connection) and lets
 * `respond` write whatever it likes; the connection is closed afterwards.
 */
export function serveRaw(
  respond: (conn: Deno.TcpConn, head: string, index: number) => Promise<void>,
): Raw {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const requests: string[] = [];
  const conns = new Set<Deno.TcpConn>();
  const handlers = new Set<Promise<void>>();
  const handle = async (conn: Deno.TcpConn) => {
    try {
      const buf = new Uint8Array(16384);
      let n = 0;
      let head = "";
      while (n < buf.length) {
        const k = await conn.read(buf.subarray(n));
        if (k === null) return;
        n += k;
        head = new TextDecoder().decode(buf.subarray(0, n));
        if (head.includes("\r\n\r\n")) break;
      }
      const range = /\r\nrange: *([^\r]*)/i.exec(head)?.[1] ?? "-";
      requests.push(`${head.split("\r\n")[0]} ${range}`);
      await respond(conn, head, requests.length - 1);
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const h = handle(conn);
        handlers.add(h);
        h.finally(() => handlers.delete(h));
      }
    } catch { /* closed */ }
  })();
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      listener.close();
      await accepting;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await Promise.all(handlers);
    })();
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A self-signed certificate for 127.0.0.1, made with openssl in `dir`. */
export async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const key = join(dir, "key.pem"), cert = join(dir, "cert.pem");
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE", // a leaf, trusted as itself
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
  return { cert: await Deno.readTextFile(cert), key: await Deno.readTextFile(key) };
}

/**
 * Answers a raw request as an honest server would (206 with the range, `Connection: close`), or, with `cut`,
 * sends the headers and only the first `cut` bytes of the body and closes: a connection reset mid-body.
 */
export async function rawRange(
  conn: Deno.TcpConn,
  head: string,
  files: FileMap,
  options: { cut?: number } = {},
): Promise<void> {
  const path = decodeURIComponent(head.split(" ")[1]);
  const data = files.get(path);
  const range = parseRange(/\r\nrange: *([^\r]*)/i.exec(head)?.[1] ?? null);
  if (!data || !range) {
    await conn.write(
      new TextEncoder().encode("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    );
    return;
  }
  const [a, b] = range;
  await conn.write(new TextEncoder().encode(
    `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${a}-${b}/${data.length}\r\n` +
      `Content-Length: ${b - a + 1}\r\nConnection: close\r\n\r\n`,
  ));
  await conn.write(data.subarray(a, options.cut === undefined ? b + 1 : a + options.cut));
}
