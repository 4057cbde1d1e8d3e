// The Seedbed side of bench/scale.ts, in its own process: `prepare STATE DIR TORRENTS_DIR` adds every .torrent
// to a Session with a state directory (checking the data once, writing resume data) and exits; `run STATE` restores
// that session, prints `ready <ms>` once every torrent is loaded and running, `port <n>`, then keeps seeding until
// stdin closes.
import { join } from "node:path";
import { Session } from "../src/session/session.ts";

const [mode, state, dir, torrents] = Deno.args;
if (mode === "prepare") {
  await using session = await Session.open({
    host: "127.0.0.1",
    stateDir: state,
    basedir: dir,
    limits: { activeSeeds: 0 },
  });
  const added = [];
  for await (const e of Deno.readDir(torrents)) {
    if (e.name.endsWith(".torrent")) added.push(await session.add(join(torrents, e.name)));
  }
  await Promise.all(added.map((t) => t.ready));
  console.log(`prepared ${added.length}`);
} else {
  const started = performance.now();
  const session = await Session.open({ host: "127.0.0.1", stateDir: state });
  await Promise.all(session.torrents.map((t) => t.ready));
  const ms = performance.now() - started;
  const checked = session.torrents.reduce((n, t) => n + t.checkedAtLoad, 0);
  console.log(`ready ${ms.toFixed(0)} ${session.torrents.length} ${checked}`);
  console.log(`port ${session.port}`);
  // until the parent closes stdin
  for await (const _ of Deno.stdin.readable) { /* wait */ }
  await session.close();
}
