// Process helpers shared by the swarm benchmarks: a child whose stdout is read line by line (to wait for a
// JSON event or a "ready" line), and CPU / memory of a process tree from /proc.
import { stopper } from "../tests/_lab.ts";

/** A running child process. */
export interface Child extends AsyncDisposable {
  readonly pid: number;
  /** Resolves with the exit code. */
  readonly exited: Promise<number>;
  /** Resolves with the first stdout line (seen so far or later) for which `match` is true. */
  waitLine(match: (line: string) => boolean, ms: number): Promise<string>;
  /** Stops the process: SIGTERM, SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** The last 4 KiB of stderr. */
  stderr(): string;
}

/**
 * Starts `cmd` with stdout read line by line.
 *
 * @param onLine Called with each stdout line and the time it was read (performance.now()).
 */
export function startChild(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; onLine?: (line: string, at: number) => void } = {},
): Child {
  const child = new Deno.Command(cmd, {
    args,
    ...(options.env ? { env: options.env } : {}),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<{ match: (l: string) => boolean; resolve: (l: string) => void }>();
  let err = "";
  const decoder = new TextDecoder();
  const readOut = (async () => {
    let buf = "";
    for await (const chunk of child.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        options.onLine?.(line, performance.now());
        if (lines.length < 100_000) lines.push(line);
        for (const w of waiters) {
          if (w.match(line)) {
            waiters.delete(w);
            w.resolve(line);
          }
        }
      }
    }
  })();
  const readErr = (async () => {
    for await (const chunk of child.stderr) {
      err = (err + decoder.decode(chunk, { stream: true })).slice(-4096);
    }
  })();
  const exited = child.status.then(async (s) => {
    await Promise.all([readOut, readErr]);
    return s.code;
  });
  const stop = stopper(child, exited);
  return {
    pid: child.pid,
    exited,
    stop,
    stderr: () => err,
    waitLine(match, ms) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      const { promise, resolve, reject } = Promise.withResolvers<string>();
      const w = { match, resolve };
      waiters.add(w);
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`${cmd}: no such line within ${ms} ms: ${err.slice(-1000)}`));
      }, ms);
      exited.then((code) => {
        waiters.delete(w);
        reject(new Error(`${cmd} exited (${code}): ${err.slice(-1000)}`));
      });
      return promise.finally(() => clearTimeout(timer));
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** A process and all its descendants. */
export function tree(pid: number): number[] {
  const out = [pid];
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      const kids = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/children`).trim();
      for (const k of kids ? kids.split(" ") : []) out.push(...tree(Number(k)));
    }
  } catch { /* gone */ }
  return out;
}

/** CPU seconds (user + system) and resident memory (MiB: VmRSS, RssAnon) of a process tree, now. */
export function usage(pid: number): { cpu: number; rss: number; anon: number } {
  let cpu = 0, rss = 0, anon = 0;
  for (const p of tree(pid)) {
    try {
      const status = Deno.readTextFileSync(`/proc/${p}/status`);
      rss += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      anon += Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      const stat = Deno.readTextFileSync(`/proc/${p}/stat`).split(") ")[1].split(" ");
      cpu += (Number(stat[11]) + Number(stat[12])) / 100; // utime + stime, clock ticks
    } catch { /* exited */ }
  }
  return { cpu, rss, anon };
}

/** The load average now (1, 5, 15 min). */
export function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}
