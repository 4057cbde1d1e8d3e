// Running `main.ts` as a user does: a subprocess per run, its output collected, JSON events parsed, signals sent.

import { within } from "./_swarm.ts";

export const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What a finished run printed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end. */
export async function cli(
  args: string[],
  options: { cwd?: string; permissions?: string[]; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...(options.permissions ?? ["-A"]), MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { NO_COLOR: "1", ...options.env },
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** The JSON events of a run's stdout. */
export function events(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** A running CLI: its JSON events and stderr as they come, and a way to stop it. */
export interface RunningCli extends AsyncDisposable {
  /** Events so far. */
  readonly events: Record<string, unknown>[];
  /** Stderr so far. */
  stderr(): string;
  /** Resolves with the first event (so far or to come) that satisfies `test`. */
  event(
    what: string,
    test: (e: Record<string, unknown>) => boolean,
    ms?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves once stderr matches. */
  stderrMatches(re: RegExp, ms?: number): Promise<void>;
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
  /** Resolves with the exit code once stdout and stderr are read to their end. */
  readonly exited: Promise<number>;
}

/** Starts the CLI with `--json` events expected on stdout. */
export function spawnCli(
  args: string[],
  options: { env?: Record<string, string> } = {},
): RunningCli {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  const list: Record<string, unknown>[] = [];
  let err = "";
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const readOut = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) list.push(JSON.parse(line));
      }
      wake();
    }
  })();
  const readErr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      err += chunk;
      wake();
    }
  })();
  let ended = false;
  const exited = child.status.then(async (s) => {
    await Promise.all([readOut, readErr]);
    ended = true;
    wake();
    return s.code;
  });
  const until = <T>(what: string, check: () => T | undefined, ms: number): Promise<T> => {
    let test = () => {};
    const found = new Promise<T>((resolve, reject) => {
      test = () => {
        const v = check();
        if (v !== undefined) resolve(v);
        else if (ended) {
          reject(new Error(`the CLI exited before ${what}; stderr: ${err.slice(-2000)}`));
        }
      };
      waiters.add(test);
      test();
    });
    return within(ms, what, found).finally(() => waiters.delete(test));
  };
  return {
    events: list,
    stderr: () => err,
    event: (what, test, ms = 30_000) => until(what, () => list.find(test), ms),
    stderrMatches: (re, ms = 30_000) =>
      until(`stderr ${re}`, () => re.test(err) || undefined, ms).then(() => {}),
    kill: (signal) => {
      try {
        child.kill(signal);
      } catch { /* exited */ }
    },
    exited,
    async [Symbol.asyncDispose]() {
      if (!ended) {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }
      await exited;
    },
  };
}

/** Mounting file systems needs root on Linux; tests that need it are skipped elsewhere (unless CI requires them). */
export const canMount: boolean = (() => {
  if (Deno.build.os !== "linux") return false;
  const dir = Deno.makeTempDirSync({ prefix: "seedbed-mount-probe-" });
  try {
    if (!run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])) return false;
    run("umount", [dir]);
    return true;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();

/** Runs a command; true when it succeeded. */
export function run(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}
