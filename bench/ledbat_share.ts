// LEDBAT in practice: a uTP transfer and a TCP transfer sharing one bottleneck. The script re-runs itself in a
// fresh network namespace (`unshare -n`, needs root) where the packets going *to the two receivers* are
// redirected at loopback ingress to an ifb device whose token bucket (`tc tbf`, default 20 Mbit/s, room for
// 400 ms of queue, MTU 1500) is the bottleneck: an uplink with a deep modem buffer. Acks come back unshaped. The
// kernel's own TCP fills that buffer as it does a modem's; uTP should see the delay and yield.
// Phases: 1. uTP alone, 2. TCP alone, 3. both (uTP first), 4. the same uTP connection once TCP stopped,
// 5. uTP alone through a relay dropping 1% of datagrams each way (this kernel has no netem).
// Prints a markdown table: throughput, uTP's share, its queuing delay estimate and congestion window.
//
//   deno run -A bench/ledbat_share.ts [--rate 20] [--queue-ms 400] [--seconds 10] [--libtorrent]
//
// --libtorrent adds the same phases with libtorrent's uTP (python3-libtorrent, seed → leech) for comparison.
//
// (The queue is at ingress on purpose: a tbf on loopback's egress holds packets before loopback releases them
// from their socket, and Linux's TCP Small Queues then throttles TCP to a few packets in that queue — TCP
// starved against anything there, which real uplinks do not do.)
import { parseArgs } from "node:util";
import { type UtpConnection, UtpEndpoint } from "../src/transport/utp.ts";
import { openUdpSocket } from "../src/udp.ts";
import { createTorrent } from "../src/create.ts";
import { freePort, startLibtorrent } from "../tests/_lab.ts";
import { join } from "node:path";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rate: { type: "string", default: "20" },
    "queue-ms": { type: "string", default: "400" },
    seconds: { type: "string", default: "10" },
    libtorrent: { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);

if (!Deno.env.get("SEEDBED_IN_NETNS")) {
  const out = await new Deno.Command("unshare", {
    args: ["-n", Deno.execPath(), "run", "-A", import.meta.filename!, ...Deno.args],
    env: { SEEDBED_IN_NETNS: "1" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(out.code);
}

const log = (m: string) => console.error(`[ledbat-share] ${m}`);

async function sh(...args: string[]): Promise<void> {
  const out = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!out.success) throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

// the namespace: loopback with Ethernet-sized packets, and an ifb device holding the bottleneck queue
await sh("ip", "link", "set", "lo", "mtu", "1500", "up");
await sh("ip", "link", "add", "ifb0", "type", "ifb");
await sh("ip", "link", "set", "ifb0", "up");
await sh(
  ..."tc qdisc add dev ifb0 root tbf rate".split(" "),
  `${values.rate}mbit`,
  "burst",
  "16kb",
  "latency",
  `${values["queue-ms"]}ms`,
);
await sh(..."tc qdisc add dev lo ingress".split(" "));

/** Sends every packet to `port` (UDP or TCP) through the bottleneck. */
async function shape(port: number, proto: "udp" | "tcp"): Promise<void> {
  await sh(
    ..."tc filter add dev lo parent ffff: protocol ip prio 1 u32 match ip protocol".split(" "),
    proto === "udp" ? "17" : "6",
    "0xff",
    ..."match ip dport".split(" "),
    String(port),
    "0xffff",
    ..."action mirred egress redirect dev ifb0".split(" "),
  );
}

const CHUNK = new Uint8Array(64 * 1024).fill(0x5a);

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

function tcpServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async flow(): Promise<Flow> {
      const accepting = listener.accept();
      const a = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
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
    async flow(viaPort = server.port): Promise<Flow> {
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

/** A UDP relay between one client and `serverPort` that drops `loss` of the datagrams each way. */
async function lossyRelay(serverPort: number, loss: number) {
  const sock = await openUdpSocket({ host: "127.0.0.1" });
  const toServer = await openUdpSocket({ host: "127.0.0.1" });
  let client: { host: string; port: number } | undefined;
  let x = 0x2545f491;
  const drop = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32 < loss;
  };
  sock.onMessage((d) => {
    client = { host: d.host, port: d.port };
    if (!drop()) void toServer.send(d.data, "127.0.0.1", serverPort).catch(() => {});
  });
  toServer.onMessage((d) => {
    if (client && !drop()) void sock.send(d.data, client.host, client.port).catch(() => {});
  });
  return {
    port: sock.port,
    close: () => {
      sock.close();
      toServer.close();
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
async function measure(seconds: number, utp?: Flow, tcp?: Flow, other?: Flow): Promise<Sample> {
  const samples: Sample[] = [];
  utp ??= other;
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
await shape(utp.port, "udp");
await shape(tcp.port, "tcp");
log(`namespace up: data to ${utp.port}/udp and ${tcp.port}/tcp through tbf ${values.rate} Mbit/s`);
const rows: [string, Sample][] = [];
try {
  {
    log("uTP alone");
    const u = await utp.flow();
    rows.push(["uTP alone", await measure(SECONDS, u)]);
    await u.stop();
  }
  {
    log("TCP alone");
    const t = await tcp.flow();
    rows.push(["TCP alone", await measure(SECONDS, undefined, t)]);
    await t.stop();
  }
  {
    log("uTP and TCP together (uTP started 3 s earlier)");
    const u = await utp.flow();
    await new Promise((res) => setTimeout(res, 3000)); // uTP has the link to itself first
    const t = await tcp.flow();
    rows.push(["uTP + TCP", await measure(2 * SECONDS, u, t)]);
    await t.stop();
    log("TCP stopped: uTP takes the link back");
    rows.push(["uTP, after TCP stopped", await measure(SECONDS, u)]);
    await u.stop();
  }
  {
    log("uTP alone, 1% of datagrams dropped each way");
    const relay = await lossyRelay(utp.port, 0.01);
    const u = await utp.flow(relay.port);
    rows.push(["uTP alone, 1% loss", await measure(SECONDS, u)]);
    await u.stop();
    relay.close();
  }
  if (values.libtorrent) {
    // the same two phases with libtorrent's uTP (seed → leech, TCP off) instead of ours
    const dir = await Deno.makeTempDir({ prefix: "seedbed-ledbat-" });
    try {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      const file = join(src, "payload.bin");
      {
        using f = await Deno.open(file, { write: true, create: true });
        const chunk = new Uint8Array(1 << 20);
        for (let i = 0; i < 384; i++) {
          for (let o = 0; o < chunk.length; o += 65536) {
            crypto.getRandomValues(chunk.subarray(o, o + 65536));
          }
          await f.write(chunk);
        }
      }
      const torrent = join(dir, "p.torrent");
      await Deno.writeFile(torrent, await createTorrent(file, { pieceLength: 1 << 20 }));
      const env = (log: string) => ({
        LT_SETTINGS: JSON.stringify({
          enable_outgoing_tcp: false,
          enable_incoming_tcp: false,
          enable_outgoing_utp: true,
          enable_incoming_utp: true,
        }),
        LT_PEERLOG: log,
      });
      const leechLog = join(dir, "leech.jsonl");
      const leechPort = freePort();
      await shape(leechPort, "udp"); // the seed's data goes to the leech's port
      await using seed = await startLibtorrent("seed", torrent, src, [], {
        env: env(join(dir, "s.jsonl")),
      });
      await using _leech = await startLibtorrent("leech", torrent, join(dir, "leech"), [
        `127.0.0.1:${seed.port}`,
      ], { port: leechPort, env: env(leechLog) });
      const flow: Flow = { received: 0, stop: () => Promise.resolve() };
      const poll = setInterval(() => {
        // the driver appends a line per peer every 0.25 s: the last complete one
        try {
          const lines = Deno.readTextFileSync(leechLog).split("\n").slice(0, -1);
          const last = lines.length ? JSON.parse(lines.at(-1)!) : undefined;
          if (last?.down) flow.received = last.down;
        } catch { /* not written yet */ }
      }, 250);
      try {
        log("libtorrent uTP alone");
        rows.push(["libtorrent uTP alone", await measure(SECONDS, undefined, undefined, flow)]);
        log("libtorrent uTP and TCP together");
        const t = await tcp.flow();
        rows.push(["libtorrent uTP + TCP", await measure(2 * SECONDS, undefined, t, flow)]);
        await t.stop();
      } finally {
        clearInterval(poll);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
} finally {
  await utp.close();
  tcp.close();
}

console.log(
  `\nbottleneck: tbf ${values.rate} Mbit/s with room for ${
    values["queue-ms"]
  } ms, on the way to the ` +
    `receivers; averages after a 2 s warm-up\n`,
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
