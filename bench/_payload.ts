// What the benchmarks share besides processes (see _procs.ts): the payload they download, and their medians.

/**
 * Writes `mib` MiB of deterministic pseudo-random bytes (xorshift32, so incompressible and the same for the same
 * seed) to `path`.
 */
export async function writePayload(path: string, mib: number, seed = 0x9e3779b9): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  const words = new Uint32Array(chunk.buffer);
  let x = seed;
  for (let i = 0; i < mib; i++) {
    for (let k = 0; k < words.length; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[k] = x >>> 0;
    }
    await f.write(chunk);
  }
}

/** The median of the numbers that are not NaN (NaN when there are none). */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
