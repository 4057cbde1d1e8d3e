/**
 * Transmission's RPC over HTTP, in front of a {@linkcode Session}: `POST /transmission/rpc` in the old protocol
 * (`{method, arguments, tag}` → `{result, arguments, tag}`, as Transmission 3.00 and 4.0 and their clients speak
 * it) or in JSON-RPC 2.0 (Transmission 4.1), Seedbed's own web page at `/`, and Transmission's web client at
 * `/transmission/web/` when given its directory.
 *
 * Security, as Transmission promises it:
 * - **DNS rebinding**: the `Host` header must be an IP literal, `localhost`, or a name on the allow-list;
 *   anything else gets `421` (see {@linkcode checkHost}).
 * - **CSRF**: every RPC request must carry the `X-Transmission-Session-Id` header of this server; a request
 *   without it (or with another) gets `409` with the id in that header. A web page elsewhere cannot read the id,
 *   and cannot send a custom header cross-origin without CORS, which this server never grants.
 * - **Authentication** (optional): HTTP Basic, compared in constant time, for everything including the pages.
 * - **Bounded input**: request bodies beyond `maxBodyBytes` get `413`; malformed JSON, unknown methods and bad
 *   arguments get the protocol's error result, never a server error.
 * - The daemon binds 127.0.0.1 unless told otherwise.
 *
 * @module
 */

import { join } from "node:path";
import { checkHost, type HostCheckOptions } from "../http/host_check.ts";
import type { Session } from "../session/session.ts";
import type { SessionTorrent } from "../session/session_torrent.ts";
import { ActivityLog } from "./activity.ts";
import { RPC_ERROR, RpcError } from "./errors.ts";
import { callMethod, type MethodContext } from "./methods.ts";
import { snakeArgs, snakeKeys } from "./names.ts";
import { defaultSettings, type RpcSettings } from "./session_fields.ts";
import { PAGE_ASSETS } from "./web/page.ts";

/** Where the RPC answers. */
export const RPC_PATH = "/transmission/rpc";
/** Where Transmission's web client is served from `webRoot`. */
export const WEB_PATH = "/transmission/web/";
/** The CSRF header. */
export const SESSION_ID_HEADER = "X-Transmission-Session-Id";

/** Options for {@linkcode TransmissionRpc}. */
export interface TransmissionRpcOptions extends HostCheckOptions {
  /** User name for HTTP Basic authentication; with `password`, every request must authenticate. */
  username?: string;
  /** Password for HTTP Basic authentication. */
  password?: string;
  /**
   * The settings to start from (the daemon keeps them in its state directory); changed in place by
   * `session-set`.
   * @default {defaultSettings(session.basedir)}
   */
  settings?: RpcSettings;
  /** The session's state directory, reported as `config-dir` and used for `torrentFile`. */
  stateDir?: string;
  /** A directory holding Transmission's web client (`index.html`), served at `/transmission/web/`. */
  webRoot?: string;
  /** Serve Seedbed's own web page at `/`. @default {true} */
  page?: boolean;
  /** Largest request body, bytes. @default {67108864} */
  maxBodyBytes?: number;
  /**
   * Applies settings that take a new session (peer port, encryption, DHT, local peer discovery): the caller
   * replaces the session (and sets {@linkcode TransmissionRpc.session}). Without it they cannot be changed.
   */
  restart?: (settings: RpcSettings) => Promise<void>;
  /** Called after `session-set` changed the settings (to save them). */
  saveSettings?: (settings: RpcSettings) => void;
  /** `session-close`: shut the daemon down. Without it the method is refused. */
  close?: () => void;
  /** Something failed after its answer was sent (a verify, a start, a removal). */
  onError?: (error: Error, torrent?: SessionTorrent) => void;
}

/** The answer of a call in the old protocol. */
export interface RpcResponse {
  /** `"success"`, or what went wrong. */
  result: string;
  /** The method's answer. */
  arguments: Record<string, unknown>;
  /** The request's tag, if it had one. */
  tag?: number;
}

const DEFAULT_MAX_BODY = 64 * 1024 * 1024;
const encoder = new TextEncoder();

/**
 * Transmission's RPC for one session: an HTTP handler ({@linkcode TransmissionRpc.handler}) for `Deno.serve`, or
 * direct calls ({@linkcode TransmissionRpc.call}).
 *
 * @example Serve a session's RPC and page on 127.0.0.1:9091
 * ```ts ignore
 * import { Session } from "@seedbed/seedbed";
 * import { TransmissionRpc } from "@seedbed/seedbed/rpc";
 *
 * await using session = await Session.open({ basedir: "/srv/downloads", stateDir: "/srv/state" });
 * using rpc = new TransmissionRpc(session, { stateDir: "/srv/state" });
 * await using _server = Deno.serve({ hostname: "127.0.0.1", port: 9091 }, rpc.handler);
 * // transmission-remote 127.0.0.1:9091 -l
 * ```
 */
export class TransmissionRpc implements Disposable {
  /** This server's `X-Transmission-Session-Id` value. */
  readonly sessionId: string;
  /** The settings (`session-get` / `session-set`). */
  readonly settings: RpcSettings;
  readonly #opts: TransmissionRpcOptions;
  readonly #activity = new ActivityLog();
  readonly #speedLimits = new WeakMap<SessionTorrent, { down: number; up: number }>();
  readonly #startedAt = Date.now();
  readonly #auth: Promise<{ user: Uint8Array; password: Uint8Array }> | undefined;
  #session: Session;

  /**
   * Creates the RPC of a session.
   *
   * @param session The session to drive.
   * @param options Security, settings, the pages served, and the daemon's hooks.
   * @throws {TypeError} When only one of `username` and `password` is given.
   */
  constructor(session: Session, options: TransmissionRpcOptions = {}) {
    if ((options.username === undefined) !== (options.password === undefined)) {
      throw new TypeError("username and password go together");
    }
    this.#opts = options;
    this.#session = session;
    this.settings = options.settings ?? defaultSettings(session.basedir);
    this.sessionId = randomToken();
    this.#activity.follow(session);
    this.#auth = options.username !== undefined
      ? Promise.all([sha256(options.username), sha256(options.password!)]).then((
        [user, password],
      ) => ({
        user,
        password,
      }))
      : undefined;
  }

  /** The session the RPC drives. */
  get session(): Session {
    return this.#session;
  }

  /** Drives another session from now on (the daemon's restart with new settings). */
  set session(session: Session) {
    this.#session = session;
    this.#activity.follow(session);
  }

  /** Stops following the session's events. */
  [Symbol.dispose](): void {
    this.#activity[Symbol.dispose]();
  }

  /**
   * Runs one method, as if it came over HTTP in the old protocol.
   *
   * @param method The method, e.g. `"torrent-get"`.
   * @param args Its arguments, in any spelling.
   * @returns The answer; `result` is `"success"` or the error.
   */
  async call(method: string, args: Record<string, unknown> = {}): Promise<RpcResponse> {
    try {
      return {
        result: "success",
        arguments: await callMethod(this.#context(false), method, snakeArgs(args)),
      };
    } catch (err) {
      return { result: errorText(err), arguments: {} };
    }
  }

  #context(jsonrpc: boolean): MethodContext {
    const o = this.#opts;
    return {
      session: this.#session,
      settings: this.settings,
      sessionId: this.sessionId,
      stateDir: o.stateDir,
      activity: this.#activity,
      jsonrpc,
      speedLimits: this.#speedLimits,
      startedAt: this.#startedAt,
      ...(o.restart ? { restart: o.restart } : {}),
      ...(o.close ? { close: o.close } : {}),
      saved: () => o.saveSettings?.(this.settings),
      onError: (torrent, error) =>
        o.onError?.(error instanceof Error ? error : new Error(String(error)), torrent),
    };
  }

  /** The HTTP handler: the RPC, the pages, and the security checks in front of them. */
  readonly handler = async (req: Request): Promise<Response> => {
    const misdirected = checkHost(req, this.#opts);
    if (misdirected) return misdirected;
    if (this.#auth && !(await this.#authorized(req))) {
      return text(401, "401: Unauthorized\n", {
        "www-authenticate": 'Basic realm="Seedbed", charset="UTF-8"',
      });
    }
    const path = new URL(req.url).pathname;
    if (path === RPC_PATH || path === RPC_PATH + "/") return await this.#rpc(req);
    if (path === "/transmission" || path === "/transmission/" || path === "/transmission/web") {
      return redirect(this.#opts.webRoot ? WEB_PATH : "/");
    }
    if (path.startsWith(WEB_PATH)) {
      if (!this.#opts.webRoot) return text(404, "404: Not Found (no --web-root given)\n");
      return await serveStatic(req, this.#opts.webRoot, path.slice(WEB_PATH.length));
    }
    if (this.#opts.page !== false) {
      const asset = PAGE_ASSETS[path === "/index.html" ? "/" : path];
      if (asset) return servePageAsset(req, asset);
    }
    return text(404, "404: Not Found\n");
  };

  async #authorized(req: Request): Promise<boolean> {
    const header = req.headers.get("authorization") ?? "";
    const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header);
    let user = "", password = "";
    if (m) {
      try {
        const decoded = new TextDecoder().decode(Uint8Array.fromBase64(m[1]));
        const colon = decoded.indexOf(":");
        if (colon >= 0) {
          user = decoded.slice(0, colon);
          password = decoded.slice(colon + 1);
        }
      } catch { /* not base64: refused below */ }
    }
    const expected = await this.#auth!;
    // both compared every time, in constant time, over digests of equal length
    const [u, p] = await Promise.all([sha256(user), sha256(password)]);
    const same = constantTimeEqual(u, expected.user) & constantTimeEqual(p, expected.password);
    return m !== null && same === 1;
  }

  async #rpc(req: Request): Promise<Response> {
    if (req.headers.get(SESSION_ID_HEADER) !== this.sessionId) {
      return text(
        409,
        `409: Conflict\n\nYour request had an invalid session id header.\nRead the ${SESSION_ID_HEADER} ` +
          `header of this answer and send it with your requests.\n\n${SESSION_ID_HEADER}: ${this.sessionId}\n`,
        { [SESSION_ID_HEADER]: this.sessionId },
      );
    }
    if (req.method !== "POST") {
      return text(405, "405: Method Not Allowed: POST a JSON request\n", { allow: "POST" });
    }
    const max = this.#opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
    const body = await readBody(req, max);
    if (body === undefined) return text(413, `413: Request body larger than ${max} bytes\n`);
    let request: unknown;
    try {
      request = JSON.parse(new TextDecoder().decode(body));
    } catch (err) {
      if (/"jsonrpc"/.test(new TextDecoder().decode(body.subarray(0, 4096)))) {
        return json(jsonRpcError(null, RPC_ERROR.parseError, `Parse error: ${errorText(err)}`));
      }
      return json({ arguments: {}, result: `invalid JSON: ${errorText(err)}` });
    }
    if (Array.isArray(request)) {
      if (request.length === 0 || request.length > 1000) {
        return json(jsonRpcError(null, RPC_ERROR.invalidRequest, "Invalid Request"));
      }
      const answers = (await Promise.all(request.map((r) => this.#jsonRpc(r))))
        .filter((a) => a !== undefined);
      return answers.length > 0 ? json(answers) : new Response(null, { status: 204 });
    }
    if (isObject(request) && request.jsonrpc === "2.0") {
      const answer = await this.#jsonRpc(request);
      return answer === undefined ? new Response(null, { status: 204 }) : json(answer);
    }
    return json(await this.#legacy(request));
  }

  /** One request in the old protocol. */
  async #legacy(request: unknown): Promise<Record<string, unknown>> {
    if (!isObject(request) || typeof request.method !== "string") {
      return { arguments: {}, result: "no method name" };
    }
    const tag = typeof request.tag === "number" ? { tag: request.tag } : {};
    try {
      const args = await callMethod(
        this.#context(false),
        request.method,
        snakeArgs(request.arguments),
      );
      return { arguments: args, result: "success", ...tag };
    } catch (err) {
      return { arguments: {}, result: errorText(err), ...tag };
    }
  }

  /** One request in JSON-RPC 2.0; undefined for a notification (no `id`). */
  async #jsonRpc(request: unknown): Promise<Record<string, unknown> | undefined> {
    if (!isObject(request) || request.jsonrpc !== "2.0" || typeof request.method !== "string") {
      const id = isObject(request) && isId(request.id) ? request.id : null;
      return jsonRpcError(id, RPC_ERROR.invalidRequest, "Invalid Request");
    }
    const notification = !("id" in request);
    const id = isId(request.id) ? request.id : null;
    if (!notification && !isId(request.id)) {
      return jsonRpcError(null, RPC_ERROR.invalidRequest, "Invalid Request: bad id");
    }
    if (request.params !== undefined && !isObject(request.params)) {
      return notification
        ? undefined
        : jsonRpcError(id, RPC_ERROR.invalidParams, "Invalid params: by name only");
    }
    try {
      const result = await callMethod(
        this.#context(true),
        request.method,
        snakeArgs(request.params),
      );
      return notification ? undefined : { jsonrpc: "2.0", result: snakeKeys(result), id };
    } catch (err) {
      if (notification) return undefined;
      const code = err instanceof RpcError ? err.code : RPC_ERROR.internalError;
      return jsonRpcError(id, code, errorText(err));
    }
  }
}

/**
 * A handler for `Deno.serve` driving `session` over Transmission's RPC (see {@linkcode TransmissionRpc}).
 *
 * @param session The session.
 * @param options Security, settings and pages.
 * @returns The handler.
 */
export function createRpcHandler(
  session: Session,
  options: TransmissionRpcOptions = {},
): (req: Request) => Promise<Response> {
  return new TransmissionRpc(session, options).handler;
}

// ------------------------------------------------------------------ HTTP helpers

function jsonRpcError(id: unknown, code: number, message: string): Record<string, unknown> {
  return { jsonrpc: "2.0", error: { code, message, data: { error_string: message } }, id };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === "object" && !Array.isArray(x);
}

function isId(x: unknown): boolean {
  return x === null || typeof x === "string" || (typeof x === "number" && Number.isFinite(x));
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: {
      "content-type": "application/json; charset=UTF-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=UTF-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });
}

function redirect(location: string): Response {
  return new Response(null, { status: 301, headers: { location, "cache-control": "no-store" } });
}

/** The body, or undefined when it is larger than `max` (read no further). */
async function readBody(req: Request, max: number): Promise<Uint8Array | undefined> {
  const declared = Number(req.headers.get("content-length") ?? 0);
  if (declared > max) {
    await req.body?.cancel();
    return undefined;
  }
  if (!req.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of req.body) {
    total += chunk.byteLength;
    if (total > max) return undefined; // leaving the loop cancels the stream
    parts.push(chunk);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(36));
  return bytes.toBase64({ alphabet: "base64url" });
}

async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
}

/** 1 when equal, 0 when not; the time depends only on the length. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0 ? 1 : 0;
}

const STATIC_TYPES: Record<string, string> = {
  html: "text/html; charset=UTF-8",
  js: "text/javascript; charset=UTF-8",
  css: "text/css; charset=UTF-8",
  json: "application/json",
  png: "image/png",
  gif: "image/gif",
  ico: "image/x-icon",
  svg: "image/svg+xml",
  jpg: "image/jpeg",
  woff: "font/woff",
  woff2: "font/woff2",
  txt: "text/plain; charset=UTF-8",
};
const MAX_STATIC_BYTES = 16 * 1024 * 1024;

/** A file of Transmission's web client; the path is checked component by component, never joined raw. */
async function serveStatic(req: Request, root: string, rest: string): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, "405: Method Not Allowed\n", { allow: "GET, HEAD" });
  }
  let parts: string[];
  try {
    parts = rest.split("/").map(decodeURIComponent);
  } catch {
    return text(400, "400: Bad Request\n");
  }
  if (parts[parts.length - 1] === "") parts[parts.length - 1] = "index.html";
  if (parts.some((p) => p === "" || p === "." || p === ".." || /[\\/\0]/.test(p))) {
    return text(404, "404: Not Found\n");
  }
  let path = join(root, ...parts);
  try {
    let st = await Deno.stat(path);
    if (st.isDirectory) {
      path = join(path, "index.html");
      st = await Deno.stat(path);
    }
    if (!st.isFile || st.size > MAX_STATIC_BYTES) return text(404, "404: Not Found\n");
    const body = req.method === "HEAD" ? null : await Deno.readFile(path);
    const ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
    return new Response(body, {
      headers: {
        "content-type": STATIC_TYPES[ext] ?? "application/octet-stream",
        "content-length": String(st.size),
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "content-security-policy": "frame-ancestors 'none'",
      },
    });
  } catch {
    return text(404, "404: Not Found\n");
  }
}

function servePageAsset(req: Request, asset: { type: string; body: string }): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, "405: Method Not Allowed\n", { allow: "GET, HEAD" });
  }
  const body = encoder.encode(asset.body);
  return new Response(req.method === "HEAD" ? null : body, {
    headers: {
      "content-type": asset.type,
      "content-length": String(body.length),
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
        "img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; " +
        "frame-ancestors 'none'",
    },
  });
}
