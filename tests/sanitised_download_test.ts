// Every "sanitised" crafted torrent (path traversal, reserved names, look-alikes, duplicates after sanitising, …)
// downloaded for real: its info dictionary is kept as crafted (the unsafe paths stay) and given real piece
// hashes; a seeder and a leecher exchange it on 127.0.0.1, and afterwards the whole scratch tree is walked —
// nothing may exist outside the two download directories, and every file is byte-exact at its sanitised path.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import { type BencodeDict, decode, encode } from "../src/bencode.ts";
import { Client } from "../src/client.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { payload, within } from "./_swarm.ts";

const FIXTURES = new URL("../fixtures/sanitised/", import.meta.url).pathname;
const PIECE = 16384;

/** The crafted torrent with real data: same name and files (unsafe paths kept), real piece hashes. */
function withRealPieces(bytes: Uint8Array): { torrent: Uint8Array; data: Uint8Array } {
  const root = decode(bytes) as BencodeDict;
  const info = { ...(root["info"] as BencodeDict) };
  const files = info["files"] as BencodeDict[] | undefined;
  const total = files
    ? files.reduce((n, f) => n + (f["length"] as number), 0)
    : info["length"] as number;
  const data = payload(total, 3);
  const hashes = new Uint8Array(Math.max(1, Math.ceil(total / PIECE)) * 20);
  for (let i = 0; i * PIECE < Math.max(total, 1); i++) {
    const h = createHash("sha1").update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest();
    hashes.set(h, i * 20);
  }
  info["piece length"] = PIECE;
  info["pieces"] = hashes;
  return { torrent: encode({ info } as never), data };
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) await walk(p, out);
    else out.push(p);
  }
  return out;
}

const entries = [...Deno.readDirSync(FIXTURES)].map((e) => e.name).sort();

Deno.test("every sanitised crafted torrent downloads into its directory and nowhere else", async (t) => {
  for (const name of entries) {
    await t.step(name, async () => {
      const scratch = await Deno.makeTempDir({ prefix: "seedbed-sanitised-" });
      try {
        const { torrent, data } = withRealPieces(await Deno.readFile(join(FIXTURES, name)));
        const meta = await parseMetainfo(torrent);
        const seedDir = join(scratch, "seed", "inner");
        const leechDir = join(scratch, "leech", "inner");
        // the seeder's data at the sanitised paths (what Seedbed itself would have written)
        for (const f of meta.files) {
          const path = join(seedDir, ...f.path);
          await Deno.mkdir(join(path, ".."), { recursive: true });
          await Deno.writeFile(path, data.subarray(f.offset, f.offset + f.length));
        }
        await using seeder = await Client.open({
          metainfo: meta,
          basedir: seedDir,
          host: "127.0.0.1",
          resumeFile: false,
        });
        assert.ok(seeder.seed, `${name}: the seeder does not have its own data`);
        await using leecher = await Client.open({
          torrent,
          basedir: leechDir,
          host: "127.0.0.1",
          resumeFile: false,
          peers: [{ host: "127.0.0.1", port: seeder.port }],
        });
        await within(30_000, `${name}: the download`, leecher.done);
        await leecher.close();
        await seeder.close();
        for (const f of meta.files) {
          const got = await Deno.readFile(join(leechDir, ...f.path));
          assert.deepEqual(
            got,
            data.subarray(f.offset, f.offset + f.length),
            `${name}: ${f.path.join("/")}`,
          );
        }
        // nothing anywhere else in the scratch tree
        const expected = new Set([
          ...meta.files.map((f) => join(seedDir, ...f.path)),
          ...meta.files.map((f) => join(leechDir, ...f.path)),
        ]);
        for (const file of await walk(scratch)) {
          assert.ok(expected.has(file), `${name}: unexpected file ${relative(scratch, file)}`);
        }
      } finally {
        await Deno.remove(scratch, { recursive: true });
      }
    });
  }
});
