// A delaying TCP relay for the lab (this kernel has no `tc netem`): each accepted connection is dialled on to its
// target and every chunk read in either direction is written out RTT/2 later, in order. What is held per
// direction is bounded (`--buffer-mib`): when it is full the relay stops reading, so the sender's TCP window
// closes (back-pressure) instead of the relay buffering without end.
//
// "Loss" over TCP is emulated, not real: TCP never loses bytes, it stalls. With probability 1-(1-p)^segments a
// chunk (a read of up to 64 KiB, counted as ceil(bytes/1448) segments) is held for an extra `--stall` ms (the
// default is a retransmission timeout, max(200 ms, RTT): Linux's minimum RTO), and everything behind it waits
// too (head-of-line blocking). The sender's congestion window is not cut as a real loss would cut it: the two
// ends see the relay on loopback, so their own TCP never sees the delay or the loss. What the relay does model
// is what BitTorrent's own logic sees: every request waits a round trip for its block, and sometimes longer.
// The random draws are seeded (`--seed`): runs are repeatable.
//
//   deno run -A bench/relay.ts --rtt MS [--loss P] [--stall MS] [--seed N] [--buffer-mib 64]
//                              --map [LISTEN_PORT=]HOST:PORT [--map ...]
//
// Prints "relay LISTEN_PORT HOST:PORT" per mapping (LISTEN_PORT 0 or omitted = any free port), then "ready";
// runs until stdin closes or SIGTERM, then prints its counters on stderr. `startRelay()` runs one in-process.
import { parseArgs } from "node:util";

/** Options of {@linkcode startRelay}. */
export interface RelayOptions {
  /** Where to dial each accepted connection. */
  target: { hostname: string; port: number };
  /** Port to listen on, on 127.0.0.1. @default {0} */
  port?: number;
  /** Round-trip time added (half each way), ms. */
  rttMs: number;
  /** Probability that a 1448-byte segment is "lost" (its chunk stalls). @default {0} */
  loss?: number;
  /** Extra delay of a stalled chunk, ms. @default {max(200, rttMs)} */
  stallMs?: number;
  /** Seed of the loss draws. @default {1} */
  seed?: number;
  /** Most bytes held per direction of a connection. @default {64 MiB} */
  bufferBytes?: number;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** The port it listens on. */
  readonly port: number;
  /** Counters: connections, bytes each way, stalls. */
  stats(): { connections: number; bytesUp: number; bytesDown: number; stalls: number };
  /** Stops listening and closes every relayed connection. */
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;
const SEGMENT = 1448;

/** xorshift32: a small seeded random source for the loss draws. */
function seeded(seed: number): () => number {
  let x = (seed | 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/**
 * Starts a relay on 127.0.0.1.
 *
 * @param options Target, delay, loss.
 * @returns The running relay.
 */
export function startRelay(options: RelayOptions): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: options.port ?? 0 });
  const oneWay = options.rttMs / 2;
  const loss = options.loss ?? 0;
  const stallMs = options.stallMs ?? Math.max(200, options.rttMs);
  const cap = Math.max(2 * CHUNK, options.bufferBytes ?? 64 * 1024 * 1024);
  const seed = options.seed ?? 1;
  const conns = new Set<Deno.TcpConn>();
  const pumps = new Set<Promise<void>>();
  const pool: Uint8Array<ArrayBuffer>[] = [];
  let connections = 0, bytesUp = 0, bytesDown = 0, stalls = 0;

  /** Copies `from` to `to`, each chunk written `oneWay` ms (plus any stall) after it was read. */
  async function pump(from: Deno.TcpConn, to: Deno.TcpConn, random: () => number, up: boolean) {
    const queue: { data: Uint8Array<ArrayBuffer>; n: number; due: number }[] = [];
    let head = 0, held = 0, lastDue = 0, eof = false;
    let wakeWriter: (() => void) | undefined, wakeReader: (() => void) | undefined;
    const reader = (async () => {
      try {
        for (;;) {
          while (held >= cap) await new Promise<void>((r) => wakeReader = r);
          let data = pool.pop() ?? new Uint8Array(CHUNK);
          const n = await from.read(data);
          if (n === null) {
            pool.push(data);
            break;
          }
          if (n < 8192) { // a few messages: hold a copy, not a 64 KiB buffer
            pool.push(data);
            data = data.slice(0, n);
          }
          let due = performance.now() + oneWay;
          if (loss > 0 && random() < 1 - Math.pow(1 - loss, Math.ceil(n / SEGMENT))) {
            due += stallMs;
            stalls++;
          }
          // in order: a stalled chunk holds back everything read after it (TCP's head-of-line blocking)
          lastDue = due = Math.max(due, lastDue);
          queue.push({ data, n, due });
          held += n;
          wakeWriter?.();
        }
      } catch { /* reset: the writer stops too */ }
      eof = true;
      wakeWriter?.();
    })();
    try {
      for (;;) {
        if (head === queue.length) {
          if (eof) break;
          await new Promise<void>((r) => wakeWriter = r);
          wakeWriter = undefined;
          continue;
        }
        const item = queue[head];
        const wait = item.due - performance.now();
        if (wait > 0.5) await new Promise((r) => setTimeout(r, wait));
        let off = 0;
        while (off < item.n) off += await to.write(item.data.subarray(off, item.n));
        if (up) bytesUp += item.n;
        else bytesDown += item.n;
        queue[head++] = undefined as never;
        if (head > 1024 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        held -= item.n;
        if (pool.length < 256 && item.data.length === CHUNK) pool.push(item.data);
        wakeReader?.();
        wakeReader = undefined;
      }
      await to.closeWrite().catch(() => {});
    } catch {
      try {
        from.close();
      } catch { /* closed */ }
      try {
        to.close();
      } catch { /* closed */ }
    }
    await reader;
  }

  async function relay(client: Deno.TcpConn) {
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect(options.target);
    } catch {
      client.close();
      return;
    }
    const n = ++connections;
    for (const c of [client, server]) {
      c.setNoDelay(true);
      conns.add(c);
    }
    await Promise.all([
      pump(client, server, seeded(seed * 7919 + n * 2), true),
      pump(server, client, seeded(seed * 7919 + n * 2 + 1), false),
    ]);
    for (const c of [client, server]) {
      conns.delete(c);
      try {
        c.close();
      } catch { /* closed */ }
    }
  }

  const accepting = (async () => {
    try {
      for await (const c of listener) {
        const p = relay(c);
        pumps.add(p);
        p.finally(() => pumps.delete(p));
      }
    } catch { /* closed */ }
  })();

  const close = async () => {
    try {
      listener.close();
    } catch { /* closed */ }
    await accepting;
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Promise.all(pumps);
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    stats: () => ({ connections, bytesUp, bytesDown, stalls }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rtt: { type: "string", default: "0" },
      loss: { type: "string", default: "0" },
      stall: { type: "string" },
      seed: { type: "string", default: "1" },
      "buffer-mib": { type: "string", default: "64" },
      map: { type: "string", multiple: true, default: [] },
    },
  });
  const relays: Relay[] = [];
  for (const m of values.map!) {
    const match = /^(?:(\d+)=)?(.+):(\d+)$/.exec(m);
    if (!match) throw new Error(`--map ${m}: expected [LISTEN_PORT=]HOST:PORT`);
    const r = startRelay({
      port: Number(match[1] ?? 0),
      target: { hostname: match[2].replace(/^\[|\]$/g, ""), port: Number(match[3]) },
      rttMs: Number(values.rtt),
      loss: Number(values.loss),
      ...(values.stall ? { stallMs: Number(values.stall) } : {}),
      seed: Number(values.seed) + relays.length,
      bufferBytes: Number(values["buffer-mib"]) * 1024 * 1024,
    });
    relays.push(r);
    console.log(`relay ${r.port} ${match[2]}:${match[3]}`);
  }
  console.log("ready");
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  Deno.addSignalListener("SIGINT", () => stop.resolve());
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* until closed */ }
    stop.resolve();
  })();
  await stop.promise;
  for (const r of relays) {
    const s = r.stats();
    console.error(
      `relay ${r.port}: ${s.connections} connections, ${(s.bytesUp / 1048576).toFixed(1)} MiB up, ${
        (s.bytesDown / 1048576).toFixed(1)
      } MiB down, ${s.stalls} stalls`,
    );
  }
  // connections may hang on peers that never close: exit rather than wait for them
  Deno.exit(0);
}
