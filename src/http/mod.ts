/**
 * HTTP for the torrent's files: a Range-serving handler to embed in an application's own `Deno.serve`
 * ({@linkcode createStreamHandler}), a server that runs it ({@linkcode serveStreams}), and the Host-header check
 * against DNS rebinding shared with the daemon's RPC.
 *
 * @example Serve a torrent's files while they download
 * ```ts ignore
 * import { serveStreams } from "@seedbed/seedbed/http";
 *
 * await using server = serveStreams(source, { port: 8888 });
 * console.log(`open ${server.url}`);
 * ```
 *
 * @module
 */

export {
  createStreamHandler,
  type StreamFile,
  type StreamHandler,
  type StreamHandlerOptions,
  type StreamSource,
  type StreamSources,
  streamUrlPath,
} from "./stream_handler.ts";
export { serveStreams, type ServeStreamsOptions, type StreamServer } from "./serve.ts";
export { checkHost, hostAllowed, type HostCheckOptions } from "./host_check.ts";
