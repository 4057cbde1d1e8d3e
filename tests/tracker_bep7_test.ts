// BEP 7 on the announcing side: an announce over one address family (the connection bound to it), and one
// announce per family when we listen on both and the tracker's host has both. The tracker is our TrackerServer
// on the dual-stack "::" (it sees each announcer's source address), or an injected announce function.
import assert from "node:assert/strict";
import { join } from "node:path";
import { announce, type AnnounceRequest, type AnnounceResponse } from "../src/tracker/http.ts";
import { hostFamilies } from "../src/tracker/families.ts";
import { TrackerServer } from "../src/tracker/server.ts";
import { TrackerManager } from "../src/tracker/tiers.ts";
import { announceUdp } from "../src/tracker/udp.ts";
import { REQUIRE_PEERS } from "./_lab.ts";
import { within } from "./_swarm.ts";

const IH = new Uint8Array(20).fill(9);

function req(port: number, extra: Partial<AnnounceRequest> = {}): AnnounceRequest {
  return {
    infoHash: IH,
    peerId: new Uint8Array(20).fill(port % 256),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 100,
    event: "started",
    timeoutMs: 5000,
    ...extra,
  };
}

Deno.test("announce over one family: the connection goes out over that family only", async () => {
  await using tracker = new TrackerServer({ hostname: "::" });
  const port = new URL(tracker.url).port;
  const v4 = `http://127.0.0.1:${port}/announce`, v6 = `http://[::1]:${port}/announce`;
  await announce(v4, req(7001, { family: 4 }));
  await announce(v6, req(7002, { family: 6 }));
  // the tracker saw one announcer from each family: a third announcer is given both
  const res = await announce(v4, req(7003));
  assert.deepEqual(res.peers, [{ host: "127.0.0.1", port: 7001 }]);
  assert.deepEqual(res.peers6, [{ host: "::1", port: 7002 }]);
  // a family the URL's host does not have is refused, not quietly taken over the other one
  await assert.rejects(announce(v4, req(7004, { family: 6 })), /request failed/);
  await assert.rejects(announce(v6, req(7005, { family: 4 })), /request failed/);
  assert.equal(tracker.peerCount(IH), 3);
});

Deno.test("hostFamilies: IP literals need no resolver; names resolve through the system", async () => {
  assert.deepEqual(await hostFamilies("10.1.2.3"), [4]);
  assert.deepEqual(await hostFamilies("fe80::1"), [6]);
  assert.ok((await hostFamilies("localhost")).includes(4)); // /etc/hosts (Deno.resolveDns does not read it)
  assert.deepEqual(await hostFamilies("no-such-host.invalid"), []);
});

/** A TrackerManager over an injected announce function that records each call's family and event. */
function dualManager(
  answer: (family: 4 | 6 | undefined) => Partial<AnnounceResponse> | Error,
  options: { dualStack: boolean; families: (4 | 6)[] },
) {
  const calls: { family: 4 | 6 | undefined; event: string | undefined }[] = [];
  const peers: string[] = [];
  const events: string[] = [];
  let wake: (() => void) | undefined;
  const m = new TrackerManager({
    announceList: [["http://tracker.test/announce"]],
    infoHash: IH,
    peerId: new Uint8Array(20),
    port: 6881,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 1 }),
    onPeers: (ps) => peers.push(...ps.map((p) => `${p.host}|${p.port}`)),
    onEvent: (e) => events.push(`${e.type}${e.message ? `: ${e.message}` : ""}`),
    dualStack: () => options.dualStack,
    families: () => Promise.resolve(options.families),
    announce: (_url, r) => {
      calls.push({ family: r.family, event: r.event });
      wake?.();
      const a = answer(r.family);
      if (a instanceof Error) return Promise.reject(a);
      return Promise.resolve({
        interval: 1800,
        minInterval: undefined,
        complete: 1,
        incomplete: 0,
        trackerId: undefined,
        warning: undefined,
        peers: [],
        peers6: [],
        ...a,
      });
    },
  });
  const waitCalls = (n: number) =>
    within(
      5000,
      `${n} announces`,
      (async () => {
        while (calls.length < n) await new Promise<void>((r) => wake = r);
      })(),
    );
  // the round's outcome lands after the announces resolve: one more turn of the event loop
  const settled = () => new Promise((r) => setTimeout(r, 0));
  return { m, calls, peers, events, waitCalls, settled };
}

Deno.test("TrackerManager (BEP 7): listening on both families, a tracker with both gets one announce each", async () => {
  const { m, calls, peers, waitCalls, settled } = dualManager(
    (family) =>
      family === 4
        ? { peers: [{ host: "10.0.0.1", port: 1 }] }
        : { peers6: [{ host: "2001:db8::1", port: 2 }] },
    { dualStack: true, families: [4, 6] },
  );
  m.start();
  await waitCalls(2);
  await settled();
  assert.deepEqual(calls, [{ family: 4, event: "started" }, { family: 6, event: "started" }]);
  assert.deepEqual(peers, ["10.0.0.1|1", "2001:db8::1|2"]);
  const view = m.trackers()[0];
  assert.equal(view.peers.length, 6);
  assert.equal(view.peers6.length, 18);
  m.announceNow();
  await waitCalls(4);
  assert.deepEqual(calls.slice(2), [{ family: 4, event: undefined }, {
    family: 6,
    event: undefined,
  }]);
  await m.stop();
  assert.deepEqual(calls.slice(4), [{ family: 4, event: "stopped" }, {
    family: 6,
    event: "stopped",
  }]);
});

Deno.test("TrackerManager (BEP 7): one family failing is a warning, and only it is retried as started", async () => {
  let v6Up = false;
  const { m, calls, events, waitCalls, settled } = dualManager(
    (family) => family === 6 && !v6Up ? new Error("no route to host") : {},
    { dualStack: true, families: [4, 6] },
  );
  m.start();
  await waitCalls(2);
  await settled();
  assert.deepEqual(events, ["warning: IPv6 announce failed: no route to host", "announce"]);
  v6Up = true;
  m.announceNow();
  await waitCalls(4);
  // IPv4 got its `started` already; IPv6 never did
  assert.deepEqual(calls.slice(2), [{ family: 4, event: undefined }, {
    family: 6,
    event: "started",
  }]);
  await m.stop();
});

Deno.test("TrackerManager (BEP 7): one announce, no family forced, when we listen on one family or the tracker has one", async () => {
  for (
    const o of [
      { dualStack: false, families: [4, 6] as (4 | 6)[] },
      { dualStack: true, families: [4] as (4 | 6)[] },
    ]
  ) {
    const { m, calls, waitCalls, settled } = dualManager(() => ({}), o);
    m.start();
    await waitCalls(1);
    await settled();
    await m.stop();
    assert.deepEqual(calls, [{ family: undefined, event: "started" }, {
      family: undefined,
      event: "stopped",
    }]);
  }
});

Deno.test("UDP announce over a family: a host without an address in it is refused at once", async () => {
  await assert.rejects(
    announceUdp("udp://127.0.0.1:1/announce", req(7010, { family: 6 })),
    /has no IPv6 address/,
  );
});

/** A private mount namespace can be made here (root, util-linux `unshare`): /etc/hosts can be replaced in it. */
function canUnshare(): boolean {
  try {
    return new Deno.Command("unshare", { args: ["-m", "true"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "a Client listening dual-stack announces once over each family to a tracker whose name has both (end to end)",
  // CI (root) runs it; elsewhere it needs root for the private /etc/hosts
  ignore: !canUnshare() && !REQUIRE_PEERS,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-hosts-" });
    try {
      const hosts = join(dir, "hosts");
      await Deno.writeTextFile(hosts, "127.0.0.1 localhost dual.test\n::1 localhost dual.test\n");
      const child = new URL("./_bep7_child.ts", import.meta.url).pathname;
      const out = await new Deno.Command("unshare", {
        args: [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mount --bind "$1" /etc/hosts && exec "$2" run -A "$3"`,
          "sh",
          hosts,
          Deno.execPath(),
          child,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      assert.deepEqual(JSON.parse(text.trim().split("\n").at(-1)!), {
        announcers: ["127.0.0.1 our port", "::1 our port"],
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
