/**
 * A torrent's downloaded files on disk, as a session moves them to another place (renamed, or copied and deleted
 * across file systems, undone on failure) or deletes them with the torrent — never anything outside them.
 *
 * @module
 */

import { join } from "node:path";

/**
 * Deletes a torrent's files (and the folders it made, when empty, and its part file); never anything else.
 *
 * @param t The torrent: its files' absolute paths, its download directory and its name.
 */
export async function deleteTorrentFiles(
  t: {
    readonly files: readonly { readonly path: string }[];
    readonly basedir: string;
    readonly metainfo: { readonly name: string };
  },
): Promise<void> {
  const dirs = new Set<string>();
  for (const f of t.files) {
    await Deno.remove(f.path).catch(() => {});
    let d = f.path;
    for (;;) {
      const parent = join(d, "..");
      if (parent === d || !parent.startsWith(t.basedir + "/") || parent === t.basedir) break;
      dirs.add(parent);
      d = parent;
    }
  }
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    await Deno.remove(d).catch(() => {});
  }
  const name = t.metainfo.name;
  await Deno.remove(join(t.basedir, `.${name}.parts`)).catch(() => {});
}

/**
 * Moves a torrent's files (and its part file) from one place to another: renamed, or copied and deleted where a
 * rename cannot cross file systems; folders left empty are removed. On failure the files moved so far go back.
 *
 * @param meta The torrent's files (padding files are not on disk).
 * @param from The download directory and file paths now.
 * @param to The new download directory and file paths.
 * @throws {Error} When a file cannot be moved or its target exists (the files moved so far are moved back).
 */
export async function moveTorrentFiles(
  meta: { files: { path: string[]; padding: boolean }[] },
  from: { basedir: string; paths: string[][] },
  to: { basedir: string; paths: string[][] },
): Promise<void> {
  const moves: [string, string][] = [];
  meta.files.forEach((f, i) => {
    if (!f.padding) {
      moves.push([join(from.basedir, ...from.paths[i]), join(to.basedir, ...to.paths[i])]);
    }
  });
  const fromTop = from.paths[0]?.[0], toTop = to.paths[0]?.[0];
  if (fromTop && toTop) {
    moves.push([join(from.basedir, `.${fromTop}.parts`), join(to.basedir, `.${toTop}.parts`)]);
  }
  const done: [string, string][] = [];
  try {
    for (const [a, b] of moves) {
      if (a === b || !(await Deno.lstat(a).then(() => true, () => false))) continue;
      if (await Deno.lstat(b).then(() => true, () => false)) {
        throw new Error(`Cannot move ${a}: ${b} already exists`);
      }
      await moveFile(a, b);
      done.push([a, b]);
    }
  } catch (err) {
    for (const [a, b] of done.reverse()) await moveFile(b, a).catch(() => {});
    throw err;
  }
  // folders the torrent's files leave empty, deepest first (never the download directory itself)
  const dirs = new Set<string>();
  for (const [a] of done) {
    for (
      let d = join(a, "..");
      d.startsWith(from.basedir + "/") && d !== from.basedir;
      d = join(d, "..")
    ) {
      dirs.add(d);
    }
  }
  for (const d of [...dirs].sort((x, y) => y.length - x.length)) {
    await Deno.remove(d).catch(() => {});
  }
}

/**
 * Whether a path component is a plain name: not empty, not `.` or `..`, no separator or NUL (nothing may be
 * moved out of the download directory).
 *
 * @param name The component.
 */
export function plainName(name: unknown): boolean {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." &&
    !/[\/\\\0]/.test(name);
}

async function moveFile(from: string, to: string): Promise<void> {
  await Deno.mkdir(join(to, ".."), { recursive: true });
  try {
    await Deno.rename(from, to);
  } catch (err) {
    if (!(err instanceof Error && /cross-device|EXDEV/i.test(err.message))) throw err;
    await Deno.copyFile(from, to);
    await Deno.remove(from);
  }
}
