// `seedbed daemon` as a child process (started as README says: deno run -A main.ts daemon …) and Transmission's
// own daemon beside it, both driven over the RPC; plus transmission-remote.
import { join } from "node:path";
import { spawn, waitBound, withFreshPorts } from "./_lab.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A daemon child process and its RPC. */
export interface DaemonProc extends AsyncDisposable {
  /** The RPC's port. */
  rpcPort: number;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The process id. */
  pid: number;
  /** Everything the daemon logged so far. */
  log(): string;
  /** Resolves with the first log line matching `re` (waiting for it up to `ms`). */
  line(re: RegExp, ms: number): Promise<RegExpMatchArray>;
  /** Calls an RPC method (the session-id handshake included); resolves with the whole answer. */
  // deno-lint-ignore no-explicit-any
  rpc(method: string, args?: Record<string, unknown>): Promise<any>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** The exit status. */
  status: Promise<Deno.CommandStatus>;
}

/** The RPC client both daemons are driven by. */
export function rpcClient(url: string, auth?: string) {
  let session = "";
  // deno-lint-ignore no-explicit-any
  return async (method: string, args: Record<string, unknown> = {}): Promise<any> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await fetch(`${url}/transmission/rpc`, {
        method: "POST",
        headers: {
          "X-Transmission-Session-Id": session,
          ...(auth ? { authorization: `Basic ${btoa(auth)}` } : {}),
        },
        body: JSON.stringify({ method, arguments: args }),
      });
      if (res.status === 409) {
        session = res.headers.get("X-Transmission-Session-Id") ?? "";
        await res.body?.cancel();
        continue;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      return await res.json();
    }
    throw new Error("no session id");
  };
}

/** Starts `deno run -A main.ts daemon ARGS` and waits until its RPC listens. */
export async function startDaemon(
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<DaemonProc> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "daemon", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
  }).spawn();
  let log = "";
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      for (const w of [...waiters]) {
        const m = log.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  })();
  const status = child.status.then(async (s) => {
    await reading;
    return s;
  });
  const line = (re: RegExp, ms: number) => {
    const m = log.match(re);
    if (m) return Promise.resolve(m);
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      new Promise<RegExpMatchArray>((resolve) => waiters.push({ re, resolve })),
      status.then((s) => {
        throw new Error(`the daemon exited (${s.code}) before logging ${re}:\n${log}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ${re} in ${ms} ms:\n${log}`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  let rpcPort: number;
  try {
    const m = await line(/RPC and web page on http:\/\/[^:]+:(\d+)\//, 60_000);
    rpcPort = Number(m[1]);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await status;
    throw err;
  }
  const url = `http://127.0.0.1:${rpcPort}`;
  let stopped: Promise<number> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      return (await status).code;
    })();
  return {
    rpcPort,
    url,
    pid: child.pid,
    log: () => log,
    line,
    rpc: rpcClient(url),
    stop,
    kill: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await status;
    },
    status,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

/** Calls `probe` until it returns true (bounded): for state in another process, which sends no event. */
export async function until(
  what: string,
  ms: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs Debian's transmission-remote against `host:port`; stdout and the exit code. */
export async function transmissionRemote(
  hostPort: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command("transmission-remote", {
    args: [hostPort, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: o.code,
    out: new TextDecoder().decode(o.stdout),
    err: new TextDecoder().decode(o.stderr),
  };
}

/** Transmission's own daemon (transmission-daemon 3.00) on 127.0.0.1 with its RPC; nothing but loopback. */
export function startTransmissionDaemon(work: string, downloadDir: string) {
  // it cannot bind port 0 and say which it got: ports of its own, again with others when one is taken
  return withFreshPorts(
    2,
    ([peerPort, rpcPort]) => transmissionDaemonOn(work, downloadDir, peerPort, rpcPort),
  );
}

async function transmissionDaemonOn(
  work: string,
  downloadDir: string,
  peerPort: number,
  rpcPort: number,
) {
  await Deno.remove(work, { recursive: true }).catch(() => {});
  await Deno.mkdir(work, { recursive: true });
  await Deno.writeTextFile(
    join(work, "settings.json"),
    JSON.stringify({
      "bind-address-ipv4": "127.0.0.1",
      "bind-address-ipv6": "::1",
      "dht-enabled": false,
      "lpd-enabled": false,
      "pex-enabled": false,
      "utp-enabled": false,
      "port-forwarding-enabled": false,
      "peer-port": peerPort,
      "peer-port-random-on-start": false,
      "download-dir": downloadDir,
      "rpc-enabled": true,
      "rpc-bind-address": "127.0.0.1",
      "rpc-port": rpcPort,
      "rpc-authentication-required": false,
      "rpc-whitelist": "127.0.0.1",
      "message-level": 1,
    }),
  );
  const p = spawn("transmission-daemon", ["-f", "-g", work, "--log-error"], peerPort, {
    env: { TMPDIR: work },
  });
  const url = `http://127.0.0.1:${rpcPort}`;
  const rpc = rpcClient(url);
  try {
    await waitBound(p.pid, [peerPort, rpcPort]); // before any RPC: whoever holds the port would answer
    await until(
      "Transmission's RPC",
      30_000,
      async () => (await rpc("session-get")).result === "success",
    );
  } catch (err) {
    await p.stop();
    throw err;
  }
  return { rpcPort, url, rpc, stop: () => p.stop(), [Symbol.asyncDispose]: () => p.stop() };
}
