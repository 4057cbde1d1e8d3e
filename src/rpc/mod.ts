/**
 * Transmission's RPC for a {@linkcode Session}, so that Transmission's clients drive Seedbed: `transmission-remote`,
 * Transmission's web client, and the many apps that speak the protocol. {@linkcode TransmissionRpc} is an HTTP
 * handler for `Deno.serve` (the RPC at `/transmission/rpc`, Seedbed's own web page at `/`, Transmission's web client
 * at `/transmission/web/` when given its directory) with Transmission's security: the `X-Transmission-Session-Id`
 * handshake against CSRF, a `Host` allow-list against DNS rebinding, optional HTTP Basic authentication, and bounded
 * request bodies. The `seedbed daemon` command runs one.
 *
 * @example Serve a session to transmission-remote and a browser
 * ```ts ignore
 * import { Session } from "@seedbed/seedbed";
 * import { TransmissionRpc } from "@seedbed/seedbed/rpc";
 *
 * await using session = await Session.open({ basedir: "/srv/downloads", stateDir: "/srv/state" });
 * using rpc = new TransmissionRpc(session, { stateDir: "/srv/state" });
 * await using _server = Deno.serve({ hostname: "127.0.0.1", port: 9091 }, rpc.handler);
 * // transmission-remote 127.0.0.1:9091 -l, or open http://127.0.0.1:9091/
 * ```
 *
 * @example Call a method directly
 * ```ts
 * import { Session } from "../session/session.ts";
 * import { TransmissionRpc } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using session = await Session.open({ host: "127.0.0.1" });
 * using rpc = new TransmissionRpc(session);
 * const answer = await rpc.call("torrent-get", { fields: ["id", "name"] });
 * assert.equal(answer.result, "success");
 * assert.deepEqual(answer.arguments.torrents, []);
 * ```
 *
 * @module
 */

export {
  createRpcHandler,
  RPC_PATH,
  type RpcResponse,
  SESSION_ID_HEADER,
  TransmissionRpc,
  type TransmissionRpcOptions,
  WEB_PATH,
} from "./server.ts";
export { defaultSettings, RPC_VERSION, type RpcSettings } from "./session_fields.ts";
export { RPC_ERROR, RpcError } from "./errors.ts";
export { snakeCase } from "./names.ts";
