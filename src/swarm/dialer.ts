/**
 * The one dialler: opens an outgoing peer connection over the transports it is given (uTP first, then TCP, as
 * libtorrent, qBittorrent and Transmission do) under the session's encryption policy (MSE/PE), for the torrent
 * engine and the metadata fetcher alike.
 *
 * Transports are tried in order ({@linkcode DialOptions.transports}; TCP alone by default): the next one only when
 * the previous one failed — its connect failed (a uTP SYN nobody answered, a refused TCP connect), or every
 * encryption mode over it failed in its handshakes (a connection closed before the peer's BitTorrent handshake
 * counts as a failure of that transport). The caller remembers the transport that got through
 * ({@linkcode DialResult.transport}) and passes it back as `workedTransport`, which is then tried first.
 *
 * Over each transport, one or two attempts ({@linkcode dialAttempts}): under `"prefer"` MSE first, then once more with a
 * plain BitTorrent handshake; under `"require"` MSE with our handshake in the initial payload, then MSE without
 * it (never a plain handshake); under `"allow"` and `"disable"` a plain handshake only. The next attempt is made
 * only when the previous one failed in its handshakes — the encryption handshake failed, or the connection
 * closed (or timed out) before the peer's BitTorrent handshake arrived. A refused or timed-out connect is not
 * retried over the same transport. The caller remembers the mode that got through ({@linkcode DialResult.mode}) and passes it back as
 * `worked` next time, so a peer that needed the plain retry is dialled plain at once.
 *
 * One deadline covers both handshakes of an attempt: what the encryption handshake took is taken from the time
 * the BitTorrent handshake gets.
 *
 * @module
 */

import { isLocalNetwork } from "../_address.ts";
import { type Encryption, initiateConnection } from "../wire/mse.ts";
import {
  DEFAULT_ENCRYPTION_POLICY,
  dialAttempts,
  type DialMode,
  type EncryptionPolicy,
} from "../wire/encryption_policy.ts";
import type { PeerStream } from "../wire/stream.ts";
import { connectTcp } from "../transport/tcp.ts";

export type { DialMode, Encryption, EncryptionPolicy };

/** Opens a connection (TCP by default). */
export type Connect = (
  host: string,
  port: number,
  options: { timeoutMs: number; signal?: AbortSignal },
) => Promise<PeerStream>;

/** A transport a peer can be dialled over. */
export type TransportName = "tcp" | "utp";

/** Where uTP is dialled before TCP: {@linkcode DialOptions.utpFirst}. */
export type UtpFirst = "remote" | "always";

/** One way of dialling, in {@linkcode DialOptions.transports}. */
export interface DialTransport {
  /** What it is (reported in {@linkcode DialResult.transport} and each failure's text). */
  name: TransportName;
  /** Opens a connection over it. */
  connect: Connect;
  /** Milliseconds to connect over this transport. @default {DialOptions.connectTimeoutMs} */
  connectTimeoutMs?: number;
}

/** One attempt whose connection is open and whose encryption handshake (if any) is done. */
export interface DialAttempt {
  /** The connection, carrying plain BitTorrent bytes from here on. */
  stream: PeerStream;
  /** The transport it runs over. */
  transport: TransportName;
  /** How this attempt started. */
  mode: DialMode;
  /** What the connection carries: RC4, plaintext after an MSE handshake, or no MSE at all. */
  encryption: Encryption;
  /** Our BitTorrent handshake went out inside the encryption handshake: do not send it again. */
  handshakeSent: boolean;
  /** Milliseconds left for the BitTorrent handshake (one deadline across both handshakes). */
  handshakeTimeoutMs: number;
}

/** What {@linkcode DialOptions.start} reports about the BitTorrent handshake of an attempt. */
export type HandshakeOutcome =
  | { ok: true }
  | { ok: false; reason: string };

/** Options for {@linkcode dialPeer}. */
export interface DialOptions {
  /** The torrent (MSE's `SKEY`). */
  infoHash: Uint8Array;
  /** Our 68-byte BitTorrent handshake, sent in MSE's initial payload on `"mse"` attempts. */
  handshake: Uint8Array;
  /**
   * Runs the BitTorrent handshake over an attempt's connection (a `PeerConnection` with `handshakeSent` and
   * `handshakeTimeoutMs` from the attempt) and reports whether the peer's handshake arrived. The connection now
   * belongs to the caller (it closes it on failure).
   */
  start: (attempt: DialAttempt) => Promise<HandshakeOutcome>;
  /** The encryption policy. @default {"prefer"} */
  policy?: EncryptionPolicy;
  /** Offer only RC4 for the payload after an MSE handshake. @default {false} */
  rc4Only?: boolean;
  /** The mode that got through to this peer last time; tried alone when the policy allows it. */
  worked?: DialMode;
  /** Opens the connection when no `transports` are given. @default {connectTcp} */
  connect?: Connect;
  /**
   * The transports to try, in order (each with every encryption mode of the policy before the next).
   * @default {[{ name: "tcp", connect }]}
   */
  transports?: DialTransport[];
  /** The transport that got through to this peer last time: tried first. */
  workedTransport?: TransportName;
  /**
   * Where uTP is tried before TCP (with both given and nothing known of the peer): `"remote"`, peers beyond this
   * machine and its local networks only — on loopback and a LAN, TCP first (LEDBAT has no shared home uplink to
   * protect there, and TCP costs us far less CPU: see README); `"always"`, every peer, as libtorrent does.
   * @default {"remote"}
   */
  utpFirst?: UtpFirst;
  /** Milliseconds to connect. @default {5000} */
  connectTimeoutMs?: number;
  /** Milliseconds for the encryption and BitTorrent handshakes of one attempt together. @default {10000} */
  handshakeTimeoutMs?: number;
  /** Gives the dial up (the connection in progress is closed). */
  signal?: AbortSignal;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
}

/** What came of {@linkcode dialPeer}. */
export interface DialResult {
  /** The peer's BitTorrent handshake arrived on one of the attempts. */
  ok: boolean;
  /** The mode of the attempt that got through (remember it for the next dial of this peer). */
  mode?: DialMode;
  /** What that connection carries. */
  encryption?: Encryption;
  /** The transport of the attempt that got through (remember it for the next dial of this peer). */
  transport?: TransportName;
  /** No connection was made at all (refused, unreachable, timed out, aborted): no handshake was tried. */
  unreachable: boolean;
  /**
   * Why each attempt failed, in order (`"mse: connection closed during the encryption handshake"`; with several
   * transports each prefixed by its name: `"utp mse: …"`).
   */
  failures: string[];
}

/**
 * Dials a peer under an encryption policy: connect, the MSE handshake when the mode has one, then the
 * BitTorrent handshake through `start`, with the policy's fallback when a handshake fails.
 *
 * @example Dial a peer that refuses MSE: the plain retry gets through
 * ```ts
 * import { dialPeer } from "./dialer.ts";
 * import assert from "node:assert/strict";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * // a peer that hangs up on anything but a plain BitTorrent handshake ("\x13BitTorrent protocol…")
 * const peer = (async () => {
 *   for (let i = 0; i < 2; i++) {
 *     const conn = await listener.accept();
 *     const first = new Uint8Array(1);
 *     await conn.read(first);
 *     if (first[0] === 19) await conn.write(new Uint8Array(68).fill(19, 0, 1));
 *     conn.close();
 *   }
 * })();
 * const result = await dialPeer("127.0.0.1", listener.addr.port, {
 *   infoHash: new Uint8Array(20),
 *   handshake: new Uint8Array(68),
 *   start: async ({ stream, handshakeSent }) => {
 *     // a PeerConnection would do this: send our handshake (unless it rode in MSE's IA), read the peer's
 *     if (!handshakeSent) await stream.writable.getWriter().write(new Uint8Array(68).fill(19, 0, 1));
 *     const { value } = await stream.readable.getReader().read();
 *     stream.close?.();
 *     return value?.[0] === 19 ? { ok: true } : { ok: false, reason: "no handshake" };
 *   },
 * });
 * await peer;
 * assert.equal(result.ok, true);
 * assert.equal(result.mode, "plain");
 * assert.match(result.failures[0], /^mse: /);
 * ```
 *
 * @param host The peer's IPv4 or IPv6 address (or host name; uTP needs an address).
 * @param port Its port (TCP and uTP listen on the same number).
 * @param options The torrent, our handshake, the policy and what to do with a connection.
 * @returns Whether and how it got through, and why each failed attempt failed. Never rejects.
 */
export async function dialPeer(
  host: string,
  port: number,
  options: DialOptions,
): Promise<DialResult> {
  const now = options.now ?? Date.now;
  const deadline = options.handshakeTimeoutMs ?? 10_000;
  const modes = dialAttempts(options.policy ?? DEFAULT_ENCRYPTION_POLICY, {
    ...(options.worked ? { worked: options.worked } : {}),
  });
  const transports = transportOrder(host, options);
  const named = transports.length > 1;
  const failures: string[] = [];
  let connected = false;
  for (const transport of transports) {
    for (const mode of modes) {
      if (options.signal?.aborted) return { ok: false, unreachable: false, failures };
      const label = named ? `${transport.name} ${mode}` : mode;
      let conn: PeerStream;
      try {
        conn = await transport.connect(host, port, {
          timeoutMs: transport.connectTimeoutMs ?? options.connectTimeoutMs ?? 5000,
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        failures.push(`${label}: ${errorText(err)}`);
        break; // this transport does not reach the peer: the next one
      }
      connected = true;
      const started = now();
      let attempt: DialAttempt;
      if (mode === "plain") {
        attempt = {
          stream: conn,
          transport: transport.name,
          mode,
          encryption: false,
          handshakeSent: false,
          handshakeTimeoutMs: deadline,
        };
      } else {
        try {
          const mse = await initiateConnection(conn, options.infoHash, {
            ...(mode === "mse" ? { initialPayload: options.handshake } : {}),
            ...(options.rc4Only ? { rc4Only: true } : {}),
            timeoutMs: deadline,
            ...(options.signal ? { signal: options.signal } : {}),
          });
          attempt = {
            stream: mse.stream,
            transport: transport.name,
            mode,
            encryption: mse.encryption,
            handshakeSent: mode === "mse",
            handshakeTimeoutMs: Math.max(1, deadline - (now() - started)),
          };
        } catch (err) {
          // initiateConnection closed the connection
          failures.push(`${label}: ${errorText(err)}`);
          continue;
        }
      }
      let outcome: HandshakeOutcome;
      try {
        outcome = await options.start(attempt);
      } catch (err) {
        outcome = { ok: false, reason: errorText(err) };
      }
      if (outcome.ok) {
        return {
          ok: true,
          mode,
          encryption: attempt.encryption,
          transport: transport.name,
          unreachable: false,
          failures,
        };
      }
      failures.push(`${label}: ${outcome.reason}`);
    }
  }
  return { ok: false, unreachable: !connected, failures };
}

/** Default of `utpConnectTimeoutMs`: how long a uTP SYN waits for an answer before TCP is tried (libtorrent's). */
export const UTP_CONNECT_MS = 3000;

/**
 * The transports an engine dials over: uTP first when it has a uTP dialler, then TCP unless that is off.
 *
 * @param settings The engine's dialler settings.
 * @returns The transports, in order (empty when both are off).
 */
export function dialTransports(settings: {
  connect?: Connect;
  connectUtp?: Connect;
  utpConnectTimeoutMs?: number;
  tcp?: boolean;
}): DialTransport[] {
  const list: DialTransport[] = [];
  if (settings.connectUtp) {
    list.push({
      name: "utp",
      connect: settings.connectUtp,
      connectTimeoutMs: settings.utpConnectTimeoutMs ?? UTP_CONNECT_MS,
    });
  }
  if (settings.tcp !== false) list.push({ name: "tcp", connect: settings.connect ?? connectTcp });
  return list;
}

/** The transports of a dial, the one that worked last time first (else TCP first to a local peer, see utpFirst). */
function transportOrder(host: string, options: DialOptions): DialTransport[] {
  const list = options.transports ?? [{ name: "tcp", connect: options.connect ?? connectTcp }];
  const worked = options.workedTransport ??
    ((options.utpFirst ?? "remote") === "remote" && isLocalNetwork(host) ? "tcp" : undefined);
  if (!worked) return list;
  return [...list.filter((t) => t.name === worked), ...list.filter((t) => t.name !== worked)];
}

/**
 * One line for people about a dial that got no BitTorrent handshake through: each attempt's reason, and under
 * `"require"` that no plain handshake was tried.
 *
 * @param failures {@linkcode DialResult.failures}.
 * @param policy The policy the dial ran under.
 * @returns E.g. `"mse: connection closed during the encryption handshake; mse-no-ia: …; encryption is required,
 *   so no plain BitTorrent handshake was tried"`.
 */
export function describeDialFailure(failures: readonly string[], policy: EncryptionPolicy): string {
  const text = failures.join("; ");
  return policy === "require"
    ? `${text}; encryption is required, so no plain BitTorrent handshake was tried`
    : text;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
