/**
 * The byte streams peer connections run over, and what shares their sockets and bandwidth.
 *
 * - uTP (BEP 29): {@linkcode UtpEndpoint} on one UDP socket accepts and dials {@linkcode UtpConnection}s, reliable
 *   byte streams with LEDBAT congestion control ({@linkcode Ledbat}), which yield to other traffic on a full
 *   uplink; the packet format is {@linkcode decodeUtpPacket} / {@linkcode encodeUtpPacket}.
 * - {@linkcode UdpMux}: one UDP socket shared by uTP, the DHT and UDP trackers, routed by each datagram's shape.
 * - TCP: {@linkcode connectTcp} and {@linkcode tcpStream} (pooled, pace-sized reads).
 * - Bandwidth: {@linkcode TokenBucket}, {@linkcode Bandwidth} and {@linkcode rateGate} limit what connections move.
 *
 * Each connection is a {@linkcode PeerStream}, so protocol encryption, the handshake and the wire run over uTP
 * exactly as over TCP. A `Session` runs all of this for its torrents (uTP first, TCP when uTP fails).
 *
 * @example A uTP connection on loopback
 * ```ts
 * import { UtpEndpoint } from "@seedbed/seedbed/transport";
 * import assert from "node:assert/strict";
 *
 * const accepted = Promise.withResolvers<ReadableStream<Uint8Array>>();
 * await using server = await UtpEndpoint.open({
 *   host: "127.0.0.1",
 *   onConnection: (conn) => accepted.resolve(conn.readable),
 * });
 * await using client = await UtpEndpoint.open({ host: "127.0.0.1" });
 * const conn = await client.connect("127.0.0.1", server.port);
 * assert.equal(conn.transport, "utp");
 * const writer = conn.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hello over uTP"));
 * await writer.close(); // resolves once the FIN is acknowledged
 * assert.equal(await new Response(await accepted.promise).text(), "hello over uTP");
 * ```
 *
 * @example uTP and a DHT node on one UDP socket
 * ```ts
 * import { openUdpSocket, UdpMux, UtpEndpoint } from "@seedbed/seedbed/transport";
 * import { Dht } from "@seedbed/seedbed/dht";
 * import assert from "node:assert/strict";
 *
 * const mux = new UdpMux(await openUdpSocket({ host: "127.0.0.1" }));
 * const utp = new UtpEndpoint({ socket: mux.utp, onConnection: (conn) => conn.close() });
 * const dht = await Dht.open({ socket: mux.dht, bootstrap: [] });
 * assert.equal(dht.port, utp.port);
 * await dht.close(); // each closes only its view of the socket
 * await utp.close();
 * mux.close();
 * ```
 *
 * @module
 */

export {
  type UtpConnectOptions,
  UtpEndpoint,
  type UtpEndpointOptions,
  type UtpEndpointStats,
  type UtpOpenOptions,
} from "./utp.ts";
export {
  type UtpConnection,
  UtpError,
  type UtpErrorCode,
  type UtpStats,
} from "./utp_connection.ts";
export {
  decodeUtpPacket,
  encodeUtpPacket,
  EXTENSION_SACK,
  isUtpShaped,
  PacketType,
  seqBefore,
  UTP_HEADER_SIZE,
  UTP_VERSION,
  type UtpPacket,
  UtpPacketError,
  type UtpPacketInit,
} from "./utp_packet.ts";
export { Ledbat, type LedbatOptions } from "./ledbat.ts";
export { classifyDatagram, UdpMux, type UdpMuxRoute, type UdpMuxStats } from "./udp_mux.ts";
export {
  type Datagram,
  openUdpSocket,
  type UdpImplementation,
  type UdpSocket,
  type UdpSocketOptions,
} from "../udp.ts";
export { type ConnectOptions, connectTcp, type TcpStream, tcpStream } from "./tcp.ts";
export { Bandwidth, type RateGate, rateGate, TokenBucket } from "./bandwidth.ts";
export type { PeerStream } from "../wire/stream.ts";
