// Peer addresses as map keys and display strings, one format everywhere: `1.2.3.4:6881`, `[::1]:6881`.
// Private: mod.ts never exports this file.

/** A peer's address. */
export interface HostPort {
  /** IPv4 or IPv6 address (without brackets) or a host name. */
  host: string;
  /** TCP/UDP port. */
  port: number;
}

/** `host:port`, with IPv6 addresses in brackets: the one key format for peer addresses. */
export function addressKey(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The inverse of {@linkcode addressKey}. */
export function splitAddressKey(key: string): HostPort {
  const i = key.lastIndexOf(":");
  return { host: key.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(key.slice(i + 1)) };
}

/** An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, as dual-stack sockets report IPv4 peers) as plain IPv4. */
export function unmapIpv4(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

/** True for 127.0.0.0/8, ::1 and `localhost` (and their IPv4-mapped forms). */
export function isLoopback(host: string): boolean {
  const h = unmapIpv4(host);
  return h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "localhost";
}

/**
 * True for an address on this machine or a local network: loopback, RFC 1918 (10/8, 172.16/12, 192.168/16),
 * link-local (169.254/16, fe80::/10), shared CGNAT space excluded, IPv6 unique-local (fc00::/7).
 */
export function isLocalNetwork(host: string): boolean {
  const h = unmapIpv4(host).toLowerCase();
  if (isLoopback(h)) return true;
  const v4 = /^(\d+)\.(\d+)\.\d+\.\d+$/.exec(h);
  if (v4) {
    const a = Number(v4[1]), b = Number(v4[2]);
    return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
      (a === 169 && b === 254);
  }
  return /^f[cd][0-9a-f]{2}:/.test(h) || /^fe[89ab][0-9a-f]:/.test(h);
}
