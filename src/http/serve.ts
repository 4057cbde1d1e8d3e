/**
 * {@linkcode serveStreams}: the stream handler on its own `Deno.serve`, bound to 127.0.0.1 by default.
 *
 * @module
 */

import {
  createStreamHandler,
  type StreamHandlerOptions,
  type StreamSources,
} from "./stream_handler.ts";

/** Options for {@linkcode serveStreams}. */
export interface ServeStreamsOptions extends Omit<StreamHandlerOptions, "signal"> {
  /**
   * Port to listen on; 0 picks a free one (read it back from {@linkcode StreamServer.url}).
   * @default {8888}
   */
  port?: number;
  /**
   * Address to listen on. Anything but loopback exposes the torrents' files to the network.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** Aborting it shuts the server down, as {@linkcode StreamServer.shutdown} does. */
  signal?: AbortSignal;
}

/** A running stream server. */
export interface StreamServer extends AsyncDisposable {
  /** The index page, e.g. `http://127.0.0.1:8888/` (a wildcard address is shown as loopback). */
  readonly url: string;
  /** The M3U playlist, e.g. `http://127.0.0.1:8888/playlist.m3u`: `mpv URL` or `vlc URL` plays it. */
  readonly playlistUrl: string;
  /** The address actually bound. */
  readonly addr: Deno.NetAddr;
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /**
   * Stops the server: ends the responses still streaming (their sources are cancelled), closes idle
   * connections, and resolves once everything is closed.
   */
  shutdown(): Promise<void>;
}

/**
 * Serves `sources` over HTTP (see {@linkcode createStreamHandler} for URLs and headers).
 *
 * @example Serve a file and read a range of it
 * ```ts
 * import { serveStreams } from "./serve.ts";
 * import type { StreamSource } from "./stream_handler.ts";
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
 * await using server = serveStreams(source, { port: 0 });
 * const res = await fetch(new URL("0123456789abcdef0123456789abcdef01234567/hello.txt", server.url), {
 *   headers: { range: "bytes=0-4" },
 * });
 * assert.equal(await res.text(), "Hello");
 * ```
 *
 * @param sources The torrents to serve: one, a list, or a function returning the current ones.
 * @param options Where to listen, mount point, allowed host names, shutdown signal.
 * @returns The running server.
 * @throws {Deno.errors.AddrInUse} When the port is taken.
 */
export function serveStreams(
  sources: StreamSources,
  options: ServeStreamsOptions = {},
): StreamServer {
  const stop = new AbortController();
  const handler = createStreamHandler(sources, { ...options, signal: stop.signal });
  const server = Deno.serve({
    port: options.port ?? 8888,
    hostname: options.hostname ?? "127.0.0.1",
    onListen() {},
  }, handler);
  let stopped: Promise<void> | undefined;
  const shutdown = () =>
    stopped ??= (() => {
      stop.abort(); // errors the bodies still streaming, so the graceful shutdown does not wait on them
      return server.shutdown();
    })();
  const signal = options.signal;
  if (signal?.aborted) void shutdown();
  else {
    const onAbort = () => shutdown();
    signal?.addEventListener("abort", onAbort, { once: true });
    server.finished.then(() => signal?.removeEventListener("abort", onAbort));
  }
  const addr = server.addr;
  const wildcard = addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "::1" : "";
  const host = wildcard || addr.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}${
    options.basePath === undefined
      ? "/"
      : options.basePath.endsWith("/")
      ? options.basePath
      : options.basePath + "/"
  }`;
  return {
    url,
    playlistUrl: url + "playlist.m3u",
    addr,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
