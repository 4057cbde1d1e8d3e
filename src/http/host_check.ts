/**
 * The DNS-rebinding defence for Seedbed's local HTTP servers (the stream server, later the daemon's RPC).
 *
 * A web page on `evil.example` can make its own name resolve to 127.0.0.1 and then read our loopback server with
 * the browser's blessing, as "same origin". The browser still sends `Host: evil.example`, so a server that only
 * answers to the names it knows defeats the attack. IP literals (`127.0.0.1`, `[::1]`, a LAN address) and
 * `localhost` involve no DNS an attacker controls and are always allowed; any other name must be on the
 * allow-list. Everything else gets `421 Misdirected Request`, as Transmission answers.
 *
 * @module
 */

/** Options for {@linkcode hostAllowed} and {@linkcode checkHost}. */
export interface HostCheckOptions {
  /**
   * Host names allowed besides IP literals and `localhost`, without port: `"media.lan"`, or `"*.lan"` for any
   * name under `lan`. Compared case-insensitively, after IDNA (so `"bücher.example"` works). `"*"` alone turns
   * the check off (only for a server behind a proxy that checks `Host` itself).
   * @default {[]}
   */
  allowedHosts?: readonly string[];
}

/** A host[:port] as it may appear in a `Host` header: a bracketed IPv6 literal or a name, then a port. */
const HOST_HEADER = /^(\[[0-9a-fA-F:.]+\]|[^\s\[\]\/\\@?#:]+)(:[0-9]{0,5})?$/;
const DOTTED_QUAD = /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/;

/**
 * Whether a `Host` header value names this server acceptably: an IP literal (v4, or v6 in brackets),
 * `localhost` (or a name under `.localhost`, which browsers resolve to loopback themselves), or a name on the
 * allow-list. A port is ignored. A missing or malformed header is refused.
 *
 * @example Names must be listed, addresses need not be
 * ```ts
 * import { hostAllowed } from "./host_check.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(hostAllowed("127.0.0.1:8888"));
 * assert.ok(hostAllowed("[::1]:8888"));
 * assert.ok(hostAllowed("localhost:8888"));
 * assert.ok(!hostAllowed("evil.example:8888"));
 * assert.ok(hostAllowed("tv.lan:8888", { allowedHosts: ["*.lan"] }));
 * ```
 *
 * @param host The `Host` header value (`null` when absent).
 * @param options The allow-list.
 * @returns `true` when the request may be served.
 */
export function hostAllowed(host: string | null, options: HostCheckOptions = {}): boolean {
  const allowed = options.allowedHosts ?? [];
  if (allowed.includes("*")) return true;
  if (host === null) return false;
  const name = canonicalHost(host);
  if (name === undefined) return false;
  if (name.startsWith("[") || DOTTED_QUAD.test(name)) return true; // an IP literal: no DNS involved
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  for (const entry of allowed) {
    if (entry.startsWith("*.")) {
      const suffix = canonicalHost(entry.slice(2));
      if (suffix !== undefined && name.endsWith("." + suffix)) return true;
    } else if (canonicalHost(entry) === name) return true;
  }
  return false;
}

/**
 * The `421 Misdirected Request` response for a request whose `Host` is not allowed, or `undefined` when it is.
 * Put it first in a handler:
 *
 * @example Guard a handler
 * ```ts
 * import { checkHost } from "./host_check.ts";
 * import assert from "node:assert/strict";
 *
 * const handler = (req: Request): Response => checkHost(req) ?? new Response("hello");
 * const res = handler(new Request("http://evil.example/", { headers: { host: "evil.example" } }));
 * assert.equal(res.status, 421);
 * await res.body?.cancel();
 * ```
 *
 * @param req The request; its `Host` header is checked.
 * @param options The allow-list.
 * @returns A 421 response, or `undefined` to go on serving.
 */
export function checkHost(req: Request, options: HostCheckOptions = {}): Response | undefined {
  const host = req.headers.get("host");
  if (hostAllowed(host, options)) return undefined;
  const shown = host === null ? "(none)" : JSON.stringify(host.slice(0, 300));
  return new Response(
    `421 Misdirected Request: this server does not answer to Host ${shown}.\n` +
      `Use http://127.0.0.1:PORT/ or add the name to allowedHosts.\n`,
    {
      status: 421,
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    },
  );
}

/**
 * A host name the way a browser sends it: lowercase, IDNA (punycode), IPv4 in dotted decimal, IPv6 compressed
 * in brackets, without port or trailing dot. `undefined` when it is not a host.
 */
function canonicalHost(host: string): string | undefined {
  const m = HOST_HEADER.exec(host.trim());
  if (!m) return undefined;
  let name = m[1];
  if (name.endsWith(".") && name.length > 1) name = name.slice(0, -1); // "localhost." is "localhost"
  try {
    // the WHATWG URL parser is what the browser used: it canonicalises IPv4 forms ("127.1", "0x7f.0.0.1"),
    // IPv6 and IDNA, and throws on what no browser would send
    const url = new URL(`http://${name}/`);
    return url.hostname === "" ? undefined : url.hostname;
  } catch {
    return undefined;
  }
}
