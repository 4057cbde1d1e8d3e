// LEDBAT in practice: a uTP transfer and a TCP transfer sharing one bottleneck. The bottleneck is a relay process
// on loopback that models an uplink: one FIFO queue (default room for 400 ms) drained by a token bucket (default
// 20 Mbit/s), shared by the uTP datagrams and the TCP bytes going up; what comes back (acks) passes at once. TCP
// is always backlogged, so it keeps the queue full, as it does a modem's; uTP should see the delay and yield.
// Phases: 1. uTP alone, 2. TCP alone, 3. both (uTP first), 4. the same uTP connection once TCP stopped,
// 5. uTP alone with 1% of datagrams dropped each way.
// Prints a markdown table: throughput, uTP's share, its queuing delay estimate and congestion window.
//
//   deno run -A bench/ledbat_share.ts [--rate 20] [--queue-ms 400] [--seconds 10]
//
// (A `tc tbf` bottleneck on loopback in a network namespace is not used: Linux's TCP Small Queues throttles a
// TCP socket whose packets wait in a local qdisc, so TCP starves there against anything, which real uplinks
// do not do.)
import { parseArgs } from "node:util";
import { type UtpConnection, UtpEndpoint } from "../src/transport/utp.ts";
import { openUdpSocket } from "../src/udp.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rate: { type: "string", default: "20" },
    "queue-ms": { type: "string", default: "400" },
    seconds: { type: "string", default: "10" },
    relay: { type: "string" }, // internal: run as the relay, "udpTarget,tcpTarget,loss"
  },
});
const RATE = Number(values.rate) * 1e6 / 8; // bytes per second
const QUEUE = RATE * Number(values["queue-ms"]) / 1000; // bytes
const SECONDS = Number(values.seconds);

if (values.relay) await relay(values.relay);

/** The bottleneck: prints "udpPort tcpPort" and relays until stdin closes. */
async function relay(spec: string): Promise<never> {
  const [udpTarget, tcpTarget, lossText] = spec.split(",");
  const loss = Number(lossText);
  let x = 0x2545f491;
  const drop = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32 < loss;
  };
  // the FIFO: uTP datagrams and TCP segments (≤ 1448 bytes) in arrival order
  const queue: { data: Uint8Array; tcp?: WritableStreamDefaultWriter<Uint8Array> }[] = [];
  let head = 0, queued = 0;
  let room = Promise.withResolvers<void>();
  const up = await openUdpSocket({ host: "127.0.0.1" });
  const down = await openUdpSocket({ host: "127.0.0.1" });
  let client: { host: string; port: number } | undefined;
  up.onMessage((d) => {
    client = { host: d.host, port: d.port };
    if (drop() || queued + d.data.length > QUEUE) return; // lost, or the queue is full (drop-tail)
    queue.push({ data: d.data });
    queued += d.data.length;
  });
  down.onMessage((d) => {
    if (client && !drop()) void up.send(d.data, client.host, client.port).catch(() => {});
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of listener) {
      const s = await Deno.connect({ hostname: "127.0.0.1", port: Number(tcpTarget) });
      void s.readable.pipeTo(c.writable).catch(() => {}); // down: at once
      const w = s.writable.getWriter();
      void (async () => {
        const r = c.readable.getReader({ mode: "byob" });
        let buf = new ArrayBuffer(1448);
        for (;;) {
          while (queued + 1448 > QUEUE) await room.promise; // TCP waits for room: it keeps the queue full
          const { done, value } = await r.read(new Uint8Array(buf));
          if (done || !value) break;
          queue.push({ data: value.slice(), tcp: w });
          queued += value.length;
          buf = value.buffer as ArrayBuffer;
        }
      })().catch(() => {});
    }
  })().catch(() => {});
  // the token bucket, refilled every millisecond, at most 16 kB of burst
  let tokens = 0, last = performance.now();
  setInterval(() => {
    const now = performance.now();
    tokens = Math.min(16_000, tokens + (now - last) / 1000 * RATE);
    last = now;
    while (head < queue.length && queue[head].data.length <= tokens) {
      const item = queue[head++];
      tokens -= item.data.length;
      queued -= item.data.length;
      if (item.tcp) void item.tcp.write(item.data).catch(() => {});
      else void down.send(item.data, "127.0.0.1", Number(udpTarget)).catch(() => {});
    }
    if (head > 4096) {
      queue.splice(0, head);
      head = 0;
    }
    const r = room;
    room = Promise.withResolvers<void>();
    r.resolve();
  }, 1);
  console.log(`${up.port} ${(listener.addr as Deno.NetAddr).port}`);
  for await (const _ of Deno.stdin.readable) { /* until the parent closes stdin */ }
  Deno.exit(0);
}

const log = (m: string) => console.error(`[ledbat-share] ${m}`);
const CHUNK = new Uint8Array(64 * 1024).fill(0x5a);

/** Starts a relay for these targets; resolves with its ports and a stop function. */
async function startRelay(udpTarget: number, tcpTarget: number, loss = 0) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      `--rate=${values.rate}`,
      `--queue-ms=${values["queue-ms"]}`,
      `--relay=${udpTarget},${tcpTarget},${loss}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  const [udp, tcp] = value!.trim().split(" ").map(Number);
  return {
    udp,
    tcp,
    stop: async () => {
      await child.stdin.close();
      await reader.cancel();
      await child.status;
    },
  };
}

interface Flow {
  received: number;
  conn?: UtpConnection;
  stop(): Promise<void>;
}

async function pump(writable: WritableStream<Uint8Array>, stopped: { v: boolean }): Promise<void> {
  const w = writable.getWriter();
  try {
    while (!stopped.v) await w.write(CHUNK);
  } catch { /* closed under us */ }
}

async function drain(readable: ReadableStream<Uint8Array>, flow: Flow): Promise<void> {
  const r = readable.getReader({ mode: "byob" });
  let buf = new ArrayBuffer(256 * 1024);
  try {
    for (;;) {
      const { done, value } = await r.read(new Uint8Array(buf));
      if (done || !value) break;
      flow.received += value.length;
      buf = value.buffer as ArrayBuffer;
    }
  } catch { /* reset */ }
}

/** A TCP receiver; the flow starts when `connect(port)` is called with the relay's port. */
function tcpServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async flow(viaPort: number): Promise<Flow> {
      const accepting = listener.accept();
      const a = await Deno.connect({ hostname: "127.0.0.1", port: viaPort });
      const b = await accepting;
      const stopped = { v: false };
      const flow: Flow = {
        received: 0,
        stop: async () => {
          stopped.v = true;
          for (const c of [a, b]) {
            try {
              c.close();
            } catch { /* closed by its stream */ }
          }
          await Promise.allSettled([sending, receiving]);
        },
      };
      const sending = pump(a.writable, stopped);
      const receiving = drain(b.readable, flow);
      return flow;
    },
    close: () => listener.close(),
  };
}

async function utpServer() {
  let accepted = Promise.withResolvers<UtpConnection>();
  const server = await UtpEndpoint.open({
    host: "127.0.0.1",
    onConnection: (c) => accepted.resolve(c),
  });
  const client = await UtpEndpoint.open({ host: "127.0.0.1" });
  return {
    port: server.port,
    async flow(viaPort: number): Promise<Flow> {
      accepted = Promise.withResolvers<UtpConnection>();
      const a = await client.connect("127.0.0.1", viaPort);
      const b = await accepted.promise;
      const stopped = { v: false };
      const flow: Flow = {
        conn: a,
        received: 0,
        stop: async () => {
          stopped.v = true;
          a.reset();
          await Promise.allSettled([sending, receiving]);
        },
      };
      const sending = pump(a.writable, stopped);
      const receiving = drain(b.readable, flow);
      return flow;
    },
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

interface Sample {
  utp: number;
  tcp: number;
  delayMs: number;
  window: number;
}

/** Runs for `seconds`, sampling once a second; the first 2 s are a warm-up and not counted. */
async function measure(seconds: number, utp?: Flow, tcp?: Flow): Promise<Sample> {
  const samples: Sample[] = [];
  let lastU = utp?.received ?? 0, lastT = tcp?.received ?? 0;
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000)); // a one-second sampling interval, not an event
    const u = utp?.received ?? 0, t = tcp?.received ?? 0;
    const st = utp?.conn?.stats();
    const sample = {
      utp: (u - lastU) * 8 / 1e6,
      tcp: (t - lastT) * 8 / 1e6,
      delayMs: (st?.queuingDelayUs ?? 0) / 1000,
      window: st?.window ?? 0,
    };
    samples.push(sample);
    lastU = u;
    lastT = t;
    log(
      `  t=${s + 1}s uTP ${sample.utp.toFixed(2)} Mbit/s, TCP ${sample.tcp.toFixed(2)} Mbit/s` +
        (st
          ? `, uTP delay ${sample.delayMs.toFixed(0)} ms, window ${
            (sample.window / 1024).toFixed(1)
          } KiB` +
            `, resent ${st.packetsResent}/${st.packetsSent}, timeouts ${st.timeouts}`
          : ""),
    );
  }
  const counted = samples.slice(2);
  const avg = (f: (s: Sample) => number) => counted.reduce((a, s) => a + f(s), 0) / counted.length;
  return {
    utp: avg((s) => s.utp),
    tcp: avg((s) => s.tcp),
    delayMs: avg((s) => s.delayMs),
    window: avg((s) => s.window),
  };
}

const utp = await utpServer();
const tcp = tcpServer();
const rows: [string, Sample][] = [];
try {
  {
    log("uTP alone");
    const r = await startRelay(utp.port, tcp.port);
    const u = await utp.flow(r.udp);
    rows.push(["uTP alone", await measure(SECONDS, u)]);
    await u.stop();
    await r.stop();
  }
  {
    log("TCP alone");
    const r = await startRelay(utp.port, tcp.port);
    const t = await tcp.flow(r.tcp);
    rows.push(["TCP alone", await measure(SECONDS, undefined, t)]);
    await t.stop();
    await r.stop();
  }
  {
    log("uTP and TCP together (uTP started 3 s earlier)");
    const r = await startRelay(utp.port, tcp.port);
    const u = await utp.flow(r.udp);
    await new Promise((res) => setTimeout(res, 3000)); // uTP has the link to itself first
    const t = await tcp.flow(r.tcp);
    rows.push(["uTP + TCP", await measure(2 * SECONDS, u, t)]);
    await t.stop();
    log("TCP stopped: uTP takes the link back");
    rows.push(["uTP, after TCP stopped", await measure(SECONDS, u)]);
    await u.stop();
    await r.stop();
  }
  {
    log("uTP alone, 1% of datagrams dropped each way");
    const r = await startRelay(utp.port, tcp.port, 0.01);
    const u = await utp.flow(r.udp);
    rows.push(["uTP alone, 1% loss", await measure(SECONDS, u)]);
    await u.stop();
    await r.stop();
  }
} finally {
  await utp.close();
  tcp.close();
}

console.log(
  `\nrelay: ${values.rate} Mbit/s token bucket, FIFO of ${
    values["queue-ms"]
  } ms, shared by both flows` +
    `; averages after a 2 s warm-up\n`,
);
console.log(
  "| phase | uTP Mbit/s | TCP Mbit/s | uTP share | uTP queuing delay ms | uTP window KiB |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const [name, s] of rows) {
  const share = s.utp + s.tcp > 0 ? `${(100 * s.utp / (s.utp + s.tcp)).toFixed(0)}%` : "-";
  console.log(
    `| ${name} | ${s.utp.toFixed(2)} | ${s.tcp.toFixed(2)} | ${share} | ${s.delayMs.toFixed(0)} | ${
      (s.window / 1024).toFixed(1)
    } |`,
  );
}
Deno.exit(0);
