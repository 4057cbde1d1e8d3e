/**
 * Peer addresses as trackers send them: compact IPv4 (BEP 23, 6 bytes each) and IPv6 (BEP 7, 18 bytes each).
 *
 * @module
 */

/** A peer's address; IPv6 hosts without brackets. */
export interface PeerAddress {
  /** IPv4 dotted quad, IPv6 text, or a host name. */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
}

/**
 * Parses compact peers; entries with port 0 and duplicates are dropped, and a trailing partial entry is ignored.
 *
 * @example Parse one IPv4 peer
 * ```ts
 * import { parseCompactPeers } from "./compact.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseCompactPeers(new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]), 4), [{ host: "127.0.0.1", port: 6881 }]);
 * ```
 *
 * @param bytes 6 bytes per IPv4 peer or 18 per IPv6 peer.
 * @param family 4 or 6.
 * @returns The valid, distinct peers.
 */
export function parseCompactPeers(bytes: Uint8Array, family: 4 | 6): PeerAddress[] {
  const size = family === 4 ? 6 : 18;
  const out: PeerAddress[] = [];
  const seen = new Set<string>();
  for (let off = 0; off + size <= bytes.length; off += size) {
    const port = (bytes[off + size - 2] << 8) | bytes[off + size - 1];
    if (port === 0) continue;
    let host: string;
    if (family === 4) {
      host = `${bytes[off]}.${bytes[off + 1]}.${bytes[off + 2]}.${bytes[off + 3]}`;
    } else {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) {
        groups.push(((bytes[off + i] << 8) | bytes[off + i + 1]).toString(16));
      }
      host = compressV6(groups);
    }
    const key = `${host}|${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ host, port });
  }
  return out;
}

function compressV6(groups: string[]): string {
  // longest run of zero groups becomes "::"
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/**
 * Encodes peers compactly; peers of the other family or with invalid addresses are skipped.
 *
 * @param peers The peers.
 * @param family 4 or 6.
 * @returns The compact bytes.
 */
export function encodeCompactPeers(peers: readonly PeerAddress[], family: 4 | 6): Uint8Array {
  const out: number[] = [];
  for (const p of peers) {
    if (!(p.port > 0 && p.port < 65536)) continue;
    const bytes = family === 4 ? ipv4Bytes(p.host) : ipv6Bytes(p.host);
    if (!bytes) continue;
    out.push(...bytes, p.port >> 8, p.port & 0xff);
  }
  return new Uint8Array(out);
}

/** The 4 bytes of an IPv4 address, or undefined. */
export function ipv4Bytes(host: string): number[] | undefined {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((x) => /^\d{1,3}$/.test(x) && Number(x) < 256)) {
    return undefined;
  }
  return parts.map(Number);
}

/** The 16 bytes of an IPv6 address, or undefined. */
export function ipv6Bytes(host: string): number[] | undefined {
  if (!host.includes(":") || host.includes(".")) return undefined;
  const halves = host.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  if (halves.length === 1 && head.length !== 8) return undefined;
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 2 && fill < 1)) return undefined;
  const groups = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/**
 * "1.2.3.4:5" or "[::1]:5".
 *
 * @param p The peer.
 * @returns The address as text.
 */
export function formatAddress(p: PeerAddress): string {
  return p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}
