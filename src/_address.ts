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
