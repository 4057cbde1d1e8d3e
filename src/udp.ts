/**
 * A small UDP socket interface, so that UDP trackers and the DHT do not depend on one runtime API. Two
 * implementations: `node:dgram`, which works in Deno without any flag, and `Deno.listenDatagram`, which exists
 * only when Deno runs with `--unstable-net`. {@linkcode openUdpSocket} picks by feature detection: Deno's own
 * API when it is there, `node:dgram` otherwise, so no flag is ever needed.
 *
 * @module
 */

import { createSocket, type Socket } from "node:dgram";

/** A received datagram. */
export interface Datagram {
  /** The payload. */
  data: Uint8Array;
  /** Sender address. */
  host: string;
  /** Sender port. */
  port: number;
}

/** What a UDP user needs from a socket. */
export interface UdpSocket {
  /** Sends one datagram. */
  send(data: Uint8Array, host: string, port: number): Promise<void>;
  /** Receives every datagram until closed; returns a function that removes the listener. */
  onMessage(listener: (d: Datagram) => void): () => void;
  /** The local port. */
  readonly port: number;
  /** Releases the socket. */
  close(): void;
}

/** Which UDP API to use: `"auto"` (Deno's when present, else `node:dgram`), `"node"` or `"deno"`. */
export type UdpImplementation = "auto" | "node" | "deno";

/** Options for {@linkcode openUdpSocket}. */
export interface UdpSocketOptions {
  /** Address family, 4 or 6. @default {4} */
  family?: 4 | 6;
  /** Local address. @default {"0.0.0.0" or "::"} */
  host?: string;
  /** Local port; 0 = any free port. @default {0} */
  port?: number;
  /** The implementation. @default {"auto"} */
  implementation?: UdpImplementation;
  /**
   * An IPv6 socket on `::` takes IPv6 only (IPV6_V6ONLY), so an IPv4 socket can have the same port number
   * (`node:dgram` only; `Deno.listenDatagram` binds `::` as the system's default, dual-stack on Linux).
   * @default {false}
   */
  ipv6Only?: boolean;
}

// Deno.listenDatagram is declared only in the unstable type library: the little of it used here.
interface DenoDatagramConn extends AsyncIterable<[Uint8Array, { hostname: string; port: number }]> {
  readonly addr: { port: number };
  receive(p?: Uint8Array): Promise<[Uint8Array, { hostname: string; port: number }]>;
  send(
    data: Uint8Array,
    addr: { transport: "udp"; hostname: string; port: number },
  ): Promise<number>;
  close(): void;
}
type ListenDatagram = (
  options: { transport: "udp"; hostname: string; port: number },
) => DenoDatagramConn;

function denoListenDatagram(): ListenDatagram | undefined {
  const fn = (Deno as unknown as { listenDatagram?: ListenDatagram }).listenDatagram;
  return typeof fn === "function" ? fn : undefined;
}

/** True when `Deno.listenDatagram` is available (Deno runs with `--unstable-net`). */
export function hasDenoDatagram(): boolean {
  return denoListenDatagram() !== undefined;
}

/**
 * Opens a UDP socket: `Deno.listenDatagram` when it exists (or when asked), `node:dgram` otherwise.
 *
 * @param options Address family (4 or 6), local address, port (0 = any free port) and implementation.
 * @returns The bound socket.
 * @throws {Error} When `implementation: "deno"` is asked for without `--unstable-net`.
 */
export function openUdpSocket(options: UdpSocketOptions = {}): Promise<UdpSocket> {
  const which = options.implementation ?? "auto";
  const listen = denoListenDatagram();
  if (which === "deno" && !listen) {
    return Promise.reject(new Error("Deno.listenDatagram needs --unstable-net"));
  }
  if (listen && which !== "node") return Promise.resolve(openDeno(listen, options));
  return openNode(options);
}

function openDeno(listen: ListenDatagram, options: UdpSocketOptions): UdpSocket {
  const family = options.family ?? 4;
  const conn = listen({
    transport: "udp",
    hostname: options.host ?? (family === 6 ? "::" : "0.0.0.0"),
    port: options.port ?? 0,
  });
  const listeners: ((d: Datagram) => void)[] = [];
  let closed = false;
  void (async () => {
    // one reused 64 KiB receive buffer and an exact-size copy per datagram: the iterator would allocate
    // (and zero) 64 KiB for every datagram, which costs more than the rest of a uTP packet's handling
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const [view, addr] = await conn.receive(buf);
        const data = view.slice();
        for (const l of listeners) l({ data, host: addr.hostname, port: addr.port });
      }
    } catch {
      // closed
    }
  })();
  return {
    port: conn.addr.port,
    send: async (data, host, port) => {
      await conn.send(data, { transport: "udp", hostname: host, port });
    },
    onMessage: (l) => {
      listeners.push(l);
      return () => {
        const i = listeners.indexOf(l);
        if (i >= 0) listeners.splice(i, 1);
      };
    },
    close: () => {
      if (closed) return;
      closed = true;
      conn.close();
    },
  };
}

/** Bytes each datagram is read into by `node:dgram` (see openNode). */
const RECEIVE_BUFFER = 16 * 1024;

async function openNode(options: UdpSocketOptions): Promise<UdpSocket> {
  const family = options.family ?? 4;
  const sock: Socket = createSocket({
    type: family === 6 ? "udp6" : "udp4",
    ...(family === 6 && options.ipv6Only ? { ipv6Only: true } : {}),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(options.port ?? 0, options.host ?? (family === 6 ? "::" : "0.0.0.0"), () => {
        sock.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    try {
      sock.close();
    } catch { /* never bound */ }
    throw err;
  }
  sock.on("error", () => {}); // ICMP errors etc. surface as timeouts to the caller
  // Deno's node:dgram reads every datagram into a fresh buffer of the "receive buffer size" (64 KiB unless set;
  // Deno sets no socket option with it, and doubles it on Linux as Node reports SO_RCVBUF): 8-16 KiB holds any
  // datagram we take (uTP packets ≤ 1.4 KB, KRPC messages and tracker replies a few KB) and saves about a
  // third of uTP's CPU, which went into zeroing and collecting 64 KiB per packet
  try {
    sock.setRecvBufferSize(RECEIVE_BUFFER / 2);
  } catch { /* not settable here: the default */ }
  const listeners: ((d: Datagram) => void)[] = [];
  sock.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
    const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    for (const l of listeners) l({ data, host: rinfo.address, port: rinfo.port });
  });
  let closed = false;
  return {
    port: sock.address().port,
    send: (data, host, port) =>
      new Promise<void>((resolve, reject) => {
        sock.send(data, port, host, (err) => (err ? reject(err) : resolve()));
      }),
    onMessage: (l) => {
      listeners.push(l);
      return () => {
        const i = listeners.indexOf(l);
        if (i >= 0) listeners.splice(i, 1);
      };
    },
    close: () => {
      if (closed) return;
      closed = true;
      sock.close();
    },
  };
}
