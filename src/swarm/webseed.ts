/**
 * Web seeds: HTTP(S) servers as sources of pieces — GetRight style (BEP 19 `url-list`: the torrent's files on a
 * plain web server, fetched with `Range` requests) and Hoffman style (BEP 17 `httpseeds`: a script serving
 * pieces by number, see `httpseed.ts`).
 *
 * A web seed is a source that has every piece and never chokes. It serves whole pieces, not 16 KiB blocks: the
 * engine hands it runs of contiguous pieces ({@linkcode PiecePicker.pickRun}); a run inside one file is one
 * ranged GET, a run across files one GET per file span; each piece goes to the caller as soon as its last byte
 * arrives, to be verified like any peer's data. At most one piece per run is buffered.
 *
 * A server is untrusted and fallible, never fatal: wrong bytes (the caller's hash check fails) or a `Range`
 * ignored, a wrong `Content-Range`, a body longer than asked for, 404/410, a redirect to another host or from
 * https to http → the seed is dropped; a connection failure, a timeout or a server too slow → retried with
 * exponential backoff, dropped after `maxFailures` in a row; 503/429 with `Retry-After` (or BEP 17's number of
 * seconds in the body) → the seed waits, at most an hour. Each outcome is one line naming the URL and what was
 * wrong ({@linkcode WebSeedError}). The scheduler (`webseed_scheduler.ts`) gives the pieces of a run that did not
 * arrive back to the picker.
 *
 * @module
 */

import { Layout } from "../storage/layout.ts";
import { VERSION } from "../version.ts";
import { httpSeedUrl, MAX_RETRY_BODY, parseRetryBody } from "./httpseed.ts";
import { Fault, type PlannedGet, REDIRECTS, RunWriter, STOPPED } from "./_webseed_run.ts";
import {
  isHttpUrl,
  parseRetryAfter,
  type WebSeedFile,
  webSeedFileUrl,
  type WebSeedKind,
  webSeedsOf,
  type WebSeedsOfOptions,
  type WebSeedTorrent,
} from "./webseed_urls.ts";

export {
  parseRetryAfter,
  type WebSeedFile,
  webSeedFileUrl,
  type WebSeedKind,
  webSeedsOf,
  type WebSeedsOfOptions,
  type WebSeedTorrent,
};

/**
 * What a web seed is doing: `idle` (ready for a run), `busy` (a run in flight), `waiting` (until
 * {@linkcode WebSeed.readyAt}: busy server or backoff after a failure), `dropped` (for good; see
 * {@linkcode WebSeed.reason}).
 */
export type WebSeedState = "idle" | "busy" | "waiting" | "dropped";

/** Bounds on one web seed's requests. Tests shorten them; the defaults suit real servers. */
export interface WebSeedLimits {
  /**
   * Milliseconds for the response's status and headers to arrive.
   * @default {30000}
   */
  responseTimeoutMs?: number;
  /**
   * Least bytes per second a response body must deliver, measured over each `rateWindowMs`; a server slower
   * than this (or silent for a whole window) counts as a failure, and its run goes back to the picker. With
   * the run's size this is the request's deadline.
   * @default {4096}
   */
  minRate?: number;
  /**
   * Milliseconds over which `minRate` is measured.
   * @default {20000}
   */
  rateWindowMs?: number;
  /**
   * Redirects followed per request (only to the same host, never from https to http).
   * @default {5}
   */
  maxRedirects?: number;
  /**
   * Failures in a row (connection errors, timeouts, 5xx, truncated bodies) before the seed is dropped.
   * @default {5}
   */
  maxFailures?: number;
  /**
   * Wait after the first failure; doubled after each further one in a row.
   * @default {5000}
   */
  retryBaseMs?: number;
  /**
   * Longest wait between retries.
   * @default {600000}
   */
  retryMaxMs?: number;
  /**
   * Longest wait a busy server (503/429 with `Retry-After`, or BEP 17's body) can ask for.
   * @default {3600000}
   */
  maxWaitMs?: number;
}

/** Options for {@linkcode WebSeed}. */
export interface WebSeedOptions {
  /** The seed's URL, from the torrent or the user (http: or https:). */
  url: string;
  /** The torrent. */
  torrent: WebSeedTorrent;
  /**
   * BEP 19 (`url-list`) or BEP 17 (`httpseeds`).
   * @default {"url-list"}
   */
  kind?: WebSeedKind;
  /** The `fetch` to use (tests pass one with its own HTTP client). @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Milliseconds since the epoch, for waits and rates (tests pass a clock they move). @default {Date.now} */
  clock?: () => number;
  /** Bounds on requests, retries and waits. */
  limits?: WebSeedLimits;
}

/** Options of {@linkcode WebSeed.fetchPieces}. */
export interface FetchPiecesOptions {
  /** Stops the run: the result's outcome is then `aborted`. */
  signal?: AbortSignal;
  /**
   * Receives each piece of the run, in order, as soon as its last byte arrived. `data` is only valid during the
   * call (its buffer is reused): copy it (e.g. {@linkcode PiecePicker.receivePiece}), verify it, and blame the
   * seed ({@linkcode WebSeed.pieceFailed}) if it is wrong.
   */
  onPiece: (index: number, data: Uint8Array) => void;
}

/** What a run came to. */
export interface FetchPiecesResult {
  /** Pieces delivered, from the run's first: `first … first + delivered - 1`. The rest did not arrive. */
  delivered: number;
  /**
   * `done` (every piece delivered), `aborted` (by the caller's signal), or what a problem led to: `retry`
   * (waiting for a backoff), `wait` (the server asked us to), `dropped`.
   */
  outcome: "done" | "aborted" | "retry" | "wait" | "dropped";
  /** The problem, for every outcome but `done` and `aborted`. */
  error?: WebSeedError;
}

/**
 * A problem with a web seed, as one line naming the URL and what was wrong, and what follows from it.
 *
 * @example The message of a dropped seed
 * ```ts
 * import { WebSeedError } from "./webseed.ts";
 * import assert from "node:assert/strict";
 *
 * const err = new WebSeedError("web seed http://mirror/pub/a.bin: 404 Not Found; dropped", {
 *   url: "http://mirror/pub/",
 *   outcome: "dropped",
 *   status: 404,
 * });
 * assert.equal(err.outcome, "dropped");
 * ```
 */
export class WebSeedError extends Error {
  /** The seed's URL (as in the torrent). */
  readonly url: string;
  /** What follows: the seed is dropped, retried after a backoff, or waits as the server asked. */
  readonly outcome: "dropped" | "retry" | "wait";
  /** The HTTP status, when a response was the problem. */
  readonly status: number | undefined;
  /** When the seed is asked again (ms since the epoch, by the seed's clock), for `retry` and `wait`. */
  readonly retryAt: number | undefined;
  /**
   * Creates a {@linkcode WebSeedError}.
   *
   * @param message The line.
   * @param options The seed's URL, the outcome, the status and when it is retried.
   */
  constructor(
    message: string,
    options: {
      url: string;
      outcome: "dropped" | "retry" | "wait";
      status?: number;
      retryAt?: number;
    },
  ) {
    super(message);
    this.name = "WebSeedError";
    this.url = options.url;
    this.outcome = options.outcome;
    this.status = options.status;
    this.retryAt = options.retryAt;
  }
}

/**
 * One web seed (BEP 19 or BEP 17): fetches runs of whole pieces over HTTP(S), keeps its own state (idle, busy,
 * waiting, dropped), its failures and backoff, and what it downloaded. The {@linkcode WebSeedScheduler} drives
 * it; {@linkcode WebSeed.fetchPieces} can also be called directly.
 *
 * @example Fetch two pieces from a server (here a function standing in for `fetch`)
 * ```ts
 * import { WebSeed } from "./webseed.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(32768).map((_, i) => i % 251);
 * const fakeFetch = (_url: string | URL | Request, init?: RequestInit) => {
 *   const [, a, b] = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get("range")!)!.map(Number);
 *   return Promise.resolve(new Response(data.slice(a, b + 1), {
 *     status: 206,
 *     headers: { "content-range": `bytes ${a}-${b}/${data.length}` },
 *   }));
 * };
 * const seed = new WebSeed({
 *   url: "http://mirror.example/file.bin",
 *   torrent: {
 *     infoHash: new Uint8Array(20),
 *     pieceLength: 16384,
 *     length: data.length,
 *     pieces: new Uint8Array(40),
 *     multiFile: false,
 *     files: [{ path: ["file.bin"], length: data.length, offset: 0 }],
 *   },
 *   fetch: fakeFetch as typeof fetch,
 * });
 * const got: number[] = [];
 * const result = await seed.fetchPieces(0, 2, { onPiece: (index) => got.push(index) });
 * assert.equal(result.outcome, "done");
 * assert.deepEqual(got, [0, 1]);
 * assert.equal(seed.downloaded, 32768);
 * ```
 */
export class WebSeed {
  /** The seed's URL, as the torrent or the user gave it. */
  readonly url: string;
  /** BEP 19 (`url-list`) or BEP 17 (`httpseeds`). */
  readonly kind: WebSeedKind;
  /** The torrent. */
  readonly torrent: WebSeedTorrent;
  readonly #layout: Layout;
  readonly #fetch: typeof fetch;
  readonly #clock: () => number;
  readonly #limits: Required<WebSeedLimits>;
  readonly #base: URL;
  readonly #label: string;
  /** URLs built from the torrent → where a permanent redirect (301/308) sent them. */
  readonly #redirects = new Map<string, string>();
  readonly #runs = new Set<AbortController>();
  #spare: Uint8Array | undefined;
  #dropped: WebSeedError | undefined;
  #reason: string | undefined;
  #readyAt = 0;
  #failures = 0;
  #downloaded = 0;
  /** Bytes per second-long bucket over the last five seconds (by the clock). */
  readonly #buckets = new Float64Array(5);
  #bucketSecond = 0;

  /**
   * Creates a {@linkcode WebSeed}.
   *
   * @param options The URL, the torrent, and how to fetch.
   * @throws {TypeError} When the URL is not an http: or https: URL.
   */
  constructor(options: WebSeedOptions) {
    if (!isHttpUrl(options.url)) {
      throw new TypeError(`Web seed URL must be http: or https:, got ${options.url}`);
    }
    this.url = options.url;
    this.kind = options.kind ?? "url-list";
    this.torrent = options.torrent;
    this.#base = new URL(options.url);
    this.#label = this.kind === "url-list" ? "web seed" : "HTTP seed";
    this.#layout = new Layout(options.torrent);
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#clock = options.clock ?? Date.now;
    const l = options.limits ?? {};
    this.#limits = {
      responseTimeoutMs: l.responseTimeoutMs ?? 30_000,
      minRate: l.minRate ?? 4096,
      rateWindowMs: l.rateWindowMs ?? 20_000,
      maxRedirects: l.maxRedirects ?? 5,
      maxFailures: Math.max(1, l.maxFailures ?? 5),
      retryBaseMs: l.retryBaseMs ?? 5_000,
      retryMaxMs: l.retryMaxMs ?? 600_000,
      maxWaitMs: l.maxWaitMs ?? 3_600_000,
    };
  }

  /** What the seed is doing now. */
  get state(): WebSeedState {
    if (this.#dropped) return "dropped";
    if (this.#runs.size > 0) return "busy";
    return this.#clock() < this.#readyAt ? "waiting" : "idle";
  }

  /** The last problem, as one line (why it was dropped, or why it is waiting). */
  get reason(): string | undefined {
    return this.#reason;
  }

  /** When the seed may be asked again (ms since the epoch, by its clock); 0 when it may be asked now. */
  get readyAt(): number {
    return this.#readyAt;
  }

  /** True when a new run may be started now: not dropped and not waiting. */
  get ready(): boolean {
    return !this.#dropped && this.#clock() >= this.#readyAt;
  }

  /** Failed requests in a row. */
  get failures(): number {
    return this.#failures;
  }

  /** Runs in flight. */
  get runs(): number {
    return this.#runs.size;
  }

  /** Payload bytes received (including pieces that later failed their hash check). */
  get downloaded(): number {
    return this.#downloaded;
  }

  /** Bytes per second over the last five seconds. */
  get rate(): number {
    this.#advanceBuckets();
    let sum = 0;
    for (const b of this.#buckets) sum += b;
    return sum / this.#buckets.length;
  }

  /**
   * Drops the seed for good: runs in flight stop (their undelivered pieces are reported as not delivered) and no
   * new one starts.
   *
   * @param reason What was wrong, as one line.
   * @returns The error describing it (the first one when the seed was already dropped).
   */
  drop(reason: string): WebSeedError {
    if (this.#dropped) return this.#dropped;
    this.#dropped = new WebSeedError(reason, { url: this.url, outcome: "dropped" });
    this.#reason = reason;
    for (const run of this.#runs) run.abort();
    return this.#dropped;
  }

  /**
   * The caller's hash check of a piece from this seed failed: the seed is dropped (BEP 19: "the connection must
   * be closed and that URL should be discarded"). A web seed's pieces come from it alone, so it is the one to
   * blame.
   *
   * @param index The piece that failed.
   * @returns The error describing it.
   */
  pieceFailed(index: number): WebSeedError {
    return this.drop(`${this.#label} ${this.url}: piece ${index} failed its hash check; dropped`);
  }

  /**
   * Fetches pieces `first … first + count - 1` and hands each to `onPiece` as it completes. Never throws for
   * what a server does: every problem ends the run with a result naming it, and updates the seed's state
   * (dropped, or waiting until {@linkcode WebSeed.readyAt}). A run started while the seed waits is made anyway.
   *
   * @param first First piece.
   * @param count Number of pieces (at least 1).
   * @param options Where pieces go, and a signal to stop.
   * @returns How many pieces were delivered, and why the run ended.
   * @throws {RangeError} When the pieces are not in the torrent.
   * @throws When `onPiece` throws (the run stops).
   */
  async fetchPieces(
    first: number,
    count: number,
    options: FetchPiecesOptions,
  ): Promise<FetchPiecesResult> {
    if (
      !Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 ||
      first + count > this.#layout.pieceCount
    ) {
      throw new RangeError(`Pieces ${first}+${count} are not in the torrent`);
    }
    if (this.#dropped) return { delivered: 0, outcome: "dropped", error: this.#dropped };
    const run = new AbortController();
    const signal = options.signal;
    const stop = () => run.abort();
    if (signal?.aborted) return { delivered: 0, outcome: "aborted" };
    signal?.addEventListener("abort", stop, { once: true });
    this.#runs.add(run);
    const buffer = this.#spare ??
      new Uint8Array(Math.min(this.#layout.pieceLength, this.#layout.length));
    this.#spare = undefined;
    const writer = new RunWriter(this.#layout, first, count, buffer, options.onPiece);
    try {
      for (const req of this.#plan(first, count)) {
        if (req.padding) writer.zeros(req.length);
        else await this.#get(req, writer, run.signal);
      }
      return { delivered: writer.delivered, outcome: "done" };
    } catch (err) {
      if (this.#dropped) {
        return { delivered: writer.delivered, outcome: "dropped", error: this.#dropped };
      }
      if (err === STOPPED || (run.signal.aborted && !(err instanceof Fault))) {
        return { delivered: writer.delivered, outcome: "aborted" };
      }
      if (err instanceof Fault) return this.#failed(err, writer.delivered);
      throw err;
    } finally {
      signal?.removeEventListener("abort", stop);
      this.#runs.delete(run);
      this.#spare ??= buffer;
    }
  }

  /** The requests of a run, in byte order. */
  #plan(first: number, count: number): PlannedGet[] {
    const out: PlannedGet[] = [];
    if (this.kind === "httpseeds") {
      for (let i = first; i < first + count; i++) {
        out.push({
          url: httpSeedUrl(this.url, this.torrent.infoHash, i),
          length: this.#layout.pieceSize(i),
        });
      }
      return out;
    }
    // BEP 19: one request per file span; spans of consecutive pieces in the same file are merged
    let last: { file: number; start: number; end: number } | undefined;
    const flush = () => {
      if (!last) return;
      const f = this.torrent.files[last.file];
      if (f.padding) out.push({ url: "", length: last.end - last.start, padding: true });
      else {
        out.push({
          url: webSeedFileUrl(this.url, this.torrent, last.file),
          range: [last.start, last.end - 1],
          fileLength: f.length,
          length: last.end - last.start,
        });
      }
    };
    for (let i = first; i < first + count; i++) {
      for (const s of this.#layout.spans(i, 0, this.#layout.pieceSize(i))) {
        if (last && last.file === s.file && last.end === s.fileOffset) {
          last.end += s.length;
          continue;
        }
        flush();
        last = { file: s.file, start: s.fileOffset, end: s.fileOffset + s.length };
      }
    }
    flush();
    return out;
  }

  /** One request, following redirects; its bytes go to `writer`. Throws a Fault or STOPPED. */
  async #get(req: PlannedGet, writer: RunWriter, signal: AbortSignal): Promise<void> {
    let url = this.#redirects.get(req.url) ?? req.url;
    for (let hop = 0;; hop++) {
      const next = await this.#exchange(url, req, writer, signal);
      if (next === undefined) {
        this.#failures = 0;
        return;
      }
      if (hop >= this.#limits.maxRedirects) {
        throw this.#fault("dropped", url, `more than ${this.#limits.maxRedirects} redirects`);
      }
      if (next.permanent) this.#redirects.set(req.url, next.url);
      url = next.url;
    }
  }

  /**
   * One HTTP exchange: a redirect's target, or undefined once the body was delivered. Throws a Fault or STOPPED
   * (or what `onPiece` threw).
   */
  async #exchange(
    url: string,
    req: PlannedGet,
    writer: RunWriter,
    signal: AbortSignal,
  ): Promise<{ url: string; permanent: boolean } | undefined> {
    if (signal.aborted) throw STOPPED;
    // one controller per exchange: the run's signal, the response deadline and the rate check abort it
    const ac = new AbortController();
    const stop = () => ac.abort();
    signal.addEventListener("abort", stop, { once: true });
    let res: Response | undefined;
    try {
      res = await this.#send(url, req, ac, signal);
      const redirect = await this.#accept(url, req, res);
      if (redirect) return redirect;
      await this.#readBody(url, req, res, writer, ac, signal);
      return undefined;
    } catch (err) {
      if (err !== STOPPED && !(err instanceof Fault) && signal.aborted) throw STOPPED;
      throw err;
    } finally {
      signal.removeEventListener("abort", stop);
      if (res?.body && !res.bodyUsed) res.body.cancel().catch(() => {});
    }
  }

  /** Sends the GET; the status and headers must arrive within `responseTimeoutMs`. */
  async #send(
    url: string,
    req: PlannedGet,
    ac: AbortController,
    signal: AbortSignal,
  ): Promise<Response> {
    const headers: Record<string, string> = {
      "user-agent": `Seedbed/${VERSION}`,
      // a compressed body would not be the bytes of the range
      "accept-encoding": "identity",
    };
    if (req.range) headers["range"] = `bytes=${req.range[0]}-${req.range[1]}`;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.#limits.responseTimeoutMs);
    try {
      return await this.#fetch(url, { headers, redirect: "manual", signal: ac.signal });
    } catch (err) {
      if (signal.aborted) throw STOPPED;
      const why = timedOut
        ? `no response within ${seconds(this.#limits.responseTimeoutMs)}`
        : describe(err);
      throw this.#fault("retry", url, why);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Judges the status and headers: a redirect's target, undefined when the body is the bytes asked for, or a
   * Fault (drop, retry, or wait as the server asks).
   */
  async #accept(
    url: string,
    req: PlannedGet,
    res: Response,
  ): Promise<{ url: string; permanent: boolean } | undefined> {
    const status = res.status;
    const what = `${status}${res.statusText ? " " + res.statusText : ""}`;
    const fault = (outcome: "dropped" | "retry", message: string) =>
      this.#fault(outcome, url, message, status);
    if (REDIRECTS.has(status)) {
      const location = res.headers.get("location");
      if (!location) throw fault("dropped", `${what} without a Location`);
      return {
        url: this.#checkRedirect(url, location, what, status),
        permanent: status === 301 || status === 308,
      };
    }
    if (status === 503 || status === 429) {
      const header = res.headers.get("retry-after");
      let waitMs = header === null ? undefined : parseRetryAfter(header, this.#clock());
      if (waitMs === undefined && this.kind === "httpseeds" && status === 503) {
        // BEP 17: the body is the number of seconds to wait
        const secs = parseRetryBody(await readSmall(res, MAX_RETRY_BODY));
        if (secs !== undefined) waitMs = secs * 1000;
      }
      if (waitMs === undefined) throw fault("retry", what);
      throw new Fault("wait", `${this.#label} ${url}: ${what}`, status, waitMs);
    }
    if (this.kind === "httpseeds") {
      // BEP 17: any other code is an error, retried less and less often
      if (status !== 200) throw fault("retry", what);
    } else if (status === 206) {
      const cr = res.headers.get("content-range");
      const m = cr === null ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
      const [a, b] = req.range!;
      if (!m || Number(m[1]) !== a || Number(m[2]) !== b) {
        const got = cr === null ? "no Content-Range" : `Content-Range ${JSON.stringify(cr)}`;
        throw fault("dropped", `answered ${got} for bytes ${a}-${b}`);
      }
      if (m[3] !== "*" && Number(m[3]) !== req.fileLength) {
        throw fault(
          "dropped",
          `the file is ${m[3]} bytes on the server, the torrent says ${req.fileLength}`,
        );
      }
    } else if (status === 200) {
      // only right when the range asked for is the whole file
      const [a, b] = req.range!;
      if (a !== 0 || b !== req.fileLength! - 1) {
        throw fault(
          "dropped",
          `ignored the Range header (200 OK instead of 206 Partial Content for bytes ${a}-${b})`,
        );
      }
    } else if (status === 404 || status === 410) {
      throw fault("dropped", what);
    } else if (status === 416) {
      throw fault("dropped", `${what}: the file is shorter than the torrent says`);
    } else if (status >= 500) {
      throw fault("retry", what);
    } else {
      throw fault("dropped", `unexpected ${what}`);
    }
    const encoding = res.headers.get("content-encoding");
    if (encoding !== null && encoding.trim().toLowerCase() !== "identity") {
      throw fault("dropped", `sent a ${encoding}-encoded body`);
    }
    const declared = res.headers.get("content-length");
    if (declared !== null && Number(declared) !== req.length) {
      throw fault("dropped", `answered with ${declared} bytes (Content-Length) for ${req.length}`);
    }
    if (!res.body) throw fault("retry", `${what} without a body`);
    return undefined;
  }

  /** Reads exactly `req.length` bytes into the run, at least `minRate` per window, and no more. */
  async #readBody(
    url: string,
    req: PlannedGet,
    res: Response,
    writer: RunWriter,
    ac: AbortController,
    signal: AbortSignal,
  ): Promise<void> {
    const { minRate, rateWindowMs } = this.#limits;
    const expected = req.length;
    const fault = (outcome: "dropped" | "retry", message: string) =>
      this.#fault(outcome, url, message, res.status);
    const reader = res.body!.getReader();
    let got = 0, windowBytes = 0, overrun = false, callerFailed = false;
    let slow: string | undefined;
    const rateTimer = setInterval(() => {
      if (windowBytes < minRate * rateWindowMs / 1000) {
        const rate = Math.round(windowBytes / (rateWindowMs / 1000));
        slow = `too slow: ${rate} B/s over ${seconds(rateWindowMs)}, below the minimum of ` +
          `${minRate} B/s (${got} of ${expected} bytes)`;
        ac.abort();
      }
      windowBytes = 0;
    }, rateWindowMs);
    try {
      while (got < expected) {
        const { value, done } = await reader.read();
        if (done) throw fault("retry", `the body ended after ${got} of ${expected} bytes`);
        const take = Math.min(value.length, expected - got);
        got += take;
        windowBytes += take;
        this.#count(take);
        try {
          writer.write(take === value.length ? value : value.subarray(0, take));
        } catch (err) {
          callerFailed = true;
          throw err;
        }
        if (take < value.length) overrun = true;
      }
      if (!overrun) {
        // the body must end here (with a Content-Length, this read returns at once)
        const { value, done } = await reader.read();
        if (!done && value.length > 0) overrun = true;
      }
    } catch (err) {
      if (err instanceof Fault || callerFailed) throw err;
      if (signal.aborted) throw STOPPED;
      throw fault("retry", slow ?? `${describe(err)} after ${got} of ${expected} bytes`);
    } finally {
      clearInterval(rateTimer);
      reader.cancel().catch(() => {});
    }
    if (overrun) throw fault("dropped", `sent more than the ${expected} bytes asked for`);
  }

  /** Checks a redirect: only to the same host, never from https to http. Returns the absolute target. */
  #checkRedirect(from: string, location: string, what: string, status: number): string {
    let target: URL;
    try {
      target = new URL(location, from);
    } catch {
      throw this.#fault(
        "dropped",
        from,
        `${what} to an invalid URL ${JSON.stringify(location)}`,
        status,
      );
    }
    target.hash = "";
    const source = new URL(from);
    const to = `${what} to ${target.href}`;
    if (target.protocol !== "http:" && target.protocol !== "https:") {
      throw this.#fault("dropped", from, `${to}: not an http(s) URL, refused`, status);
    }
    if (source.protocol === "https:" && target.protocol === "http:") {
      throw this.#fault("dropped", from, `${to}: from https to http, refused`, status);
    }
    // the host the torrent (or the user) named, on its port — or the same host name upgraded to https
    const base = this.#base;
    const sameHost = target.host === base.host ||
      (target.hostname === base.hostname && target.protocol === "https:" && target.port === "");
    if (!sameHost) throw this.#fault("dropped", from, `${to}: another host, refused`, status);
    return target.href;
  }

  #fault(
    outcome: "dropped" | "retry",
    url: string,
    message: string,
    status?: number,
  ): Fault {
    return new Fault(outcome, `${this.#label} ${url}: ${message}`, status);
  }

  /** Turns a run's fault into its result, updating the seed's state. */
  #failed(fault: Fault, delivered: number): FetchPiecesResult {
    const now = this.#clock();
    if (fault.outcome === "dropped") {
      const error = this.drop(`${fault.message}; dropped`);
      return { delivered, outcome: "dropped", error };
    }
    if (fault.outcome === "wait") {
      const asked = fault.waitMs ?? 0;
      const waitMs = Math.min(asked, this.#limits.maxWaitMs);
      this.#readyAt = Math.max(this.#readyAt, now + waitMs);
      const capped = asked > waitMs ? ` (asked for ${seconds(asked)}, capped)` : "";
      this.#reason = `${fault.message}; waiting ${seconds(waitMs)}${capped} as the server asked`;
      const error = new WebSeedError(this.#reason, {
        url: this.url,
        outcome: "wait",
        status: fault.status,
        retryAt: this.#readyAt,
      });
      return { delivered, outcome: "wait", error };
    }
    this.#failures++;
    const max = this.#limits.maxFailures;
    if (this.#failures >= max) {
      const error = this.drop(
        `${fault.message}; dropped after ${this.#failures} failure${
          this.#failures === 1 ? "" : "s"
        } in a row`,
      );
      return { delivered, outcome: "dropped", error };
    }
    const backoff = Math.min(
      this.#limits.retryMaxMs,
      this.#limits.retryBaseMs * 2 ** (this.#failures - 1),
    );
    this.#readyAt = Math.max(this.#readyAt, now + backoff);
    this.#reason = `${fault.message}; retrying in ${
      seconds(backoff)
    } (failure ${this.#failures} of ${max})`;
    const error = new WebSeedError(this.#reason, {
      url: this.url,
      outcome: "retry",
      status: fault.status,
      retryAt: this.#readyAt,
    });
    return { delivered, outcome: "retry", error };
  }

  #count(n: number): void {
    this.#downloaded += n;
    this.#advanceBuckets();
    this.#buckets[this.#bucketSecond % this.#buckets.length] += n;
  }

  #advanceBuckets(): void {
    const second = Math.floor(this.#clock() / 1000);
    if (second <= this.#bucketSecond) return;
    if (second - this.#bucketSecond >= this.#buckets.length) this.#buckets.fill(0);
    else {
      for (let s = this.#bucketSecond + 1; s <= second; s++) {
        this.#buckets[s % this.#buckets.length] = 0;
      }
    }
    this.#bucketSecond = second;
  }
}

/** Reads at most `max` bytes of a body and cancels the rest. */
async function readSmall(res: Response, max: number): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const out = new Uint8Array(max);
  let n = 0;
  try {
    while (n < max) {
      const { value, done } = await reader.read();
      if (done) break;
      const k = Math.min(value.length, max - n);
      out.set(value.subarray(0, k), n);
      n += k;
    }
  } catch {
    // a broken body reads as what arrived
  } finally {
    reader.cancel().catch(() => {});
  }
  return out.subarray(0, n);
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch's TypeError says "fetch failed"; its cause says why, after the runtime's context
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  let message = err.message;
  if (cause) {
    const i = cause.lastIndexOf("): ");
    message = i >= 0 ? cause.slice(i + 3) : cause;
  }
  return message.split("\n")[0] || "connection failed";
}

function seconds(ms: number): string {
  return `${Math.round(ms) / 1000} s`;
}
