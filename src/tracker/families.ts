/**
 * Which address families a tracker's host name has (BEP 7: a client that listens on IPv4 and IPv6 announces
 * once over each family the tracker can be reached on), resolved with the system's resolver (`getaddrinfo`
 * through `node:dns`, so `/etc/hosts` counts, which `Deno.resolveDns` does not read), bounded in time and
 * cached.
 *
 * @module
 */

import { lookup } from "node:dns/promises";

/** An address family. */
export type Family = 4 | 6;

/** How long a host's families are remembered. */
const CACHE_MS = 10 * 60_000;
/** Most hosts remembered. */
const CACHE_HOSTS = 256;
/** Most time a resolution may take. */
const RESOLVE_MS = 5000;

const cache = new Map<string, { families: Family[]; until: number }>();

/**
 * The address families of a host: an IP literal's own, or those its name resolves to (none when it does not
 * resolve in time).
 *
 * @example An IP literal needs no resolver
 * ```ts
 * import { hostFamilies } from "./families.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(await hostFamilies("127.0.0.1"), [4]);
 * assert.deepEqual(await hostFamilies("::1"), [6]);
 * ```
 *
 * @param host A host name or an IP address (IPv6 without brackets).
 * @returns The families, IPv4 first.
 */
export async function hostFamilies(host: string): Promise<Family[]> {
  const literal = literalFamily(host);
  if (literal) return [literal];
  const hit = cache.get(host);
  if (hit && hit.until > Date.now()) return hit.families;
  const found = await resolveAll(host);
  const families = ([4, 6] as const).filter((f) => found.some((a) => a.family === f));
  if (cache.size >= CACHE_HOSTS) cache.delete(cache.keys().next().value!);
  cache.set(host, { families, until: Date.now() + CACHE_MS });
  return families;
}

/**
 * One address of `host` in `family`.
 *
 * @param host A host name or an IP address.
 * @param family 4 or 6.
 * @returns The address (the host itself when it is an IP literal of that family), or undefined.
 */
export async function addressOf(host: string, family: Family): Promise<string | undefined> {
  const literal = literalFamily(host);
  if (literal) return literal === family ? host : undefined;
  return (await resolveAll(host)).find((a) => a.family === family)?.address;
}

/** 4 or 6 for an IP literal, undefined for a name. */
export function literalFamily(host: string): Family | undefined {
  if (host.includes(":")) return 6;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) ? 4 : undefined;
}

async function resolveAll(host: string): Promise<{ address: string; family: number }[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<[]>((resolve) => timer = setTimeout(() => resolve([]), RESOLVE_MS));
  try {
    return await Promise.race([lookup(host, { all: true }).catch(() => []), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
