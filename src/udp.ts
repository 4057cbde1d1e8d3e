/**
 * A small UDP socket interface, so that UDP trackers (and later the DHT) do not depend on one runtime API. The
 * default implementation uses `node:dgram`, which works in Deno without any flag.
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

/**
 * Opens a UDP socket on `node:dgram`.
 *
 * @param options Address family (4 or 6), local address and port (0 = any free port).
 * @returns The bound socket.
 */
export async function openUdpSocket(
  options: { family?: 4 | 6; host?: string; port?: number } = {},
): Promise<UdpSocket> {
  const family = options.family ?? 4;
  const sock: Socket = createSocket({ type: family === 6 ? "udp6" : "udp4" });
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(options.port ?? 0, options.host ?? (family === 6 ? "::" : "0.0.0.0"), () => {
      sock.off("error", reject);
      resolve();
    });
  });
  sock.on("error", () => {}); // ICMP errors etc. surface as timeouts to the caller
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
