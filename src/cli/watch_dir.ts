/**
 * The daemon's watch folder: every `.torrent` file that appears in it is added and then renamed `<name>.added`, as
 * Transmission does. The folder is looked at when the system reports a change (`Deno.watchFs`) and every few
 * seconds besides (a file still being written is tried again once it changes; one that never parses is reported
 * once).
 *
 * @module
 */

import { join } from "node:path";

/** Options for {@linkcode WatchDir}. */
export interface WatchDirOptions {
  /**
   * Adds a torrent from the file's bytes and resolves with what became of it (a duplicate should resolve too); a
   * rejection is reported with `onError`.
   */
  add: (bytes: Uint8Array, name: string) => Promise<string>;
  /** A file was taken (and renamed `*.added`), with what `add` said. */
  onTaken: (name: string, what: string) => void;
  /** A file could not be added. */
  onError: (name: string, error: Error) => void;
  /** Milliseconds between looks at the folder besides the system's reports. @default {5000} */
  intervalMs?: number;
}

/** Largest .torrent file read from the folder. */
const MAX_BYTES = 50 * 1024 * 1024;

/** Watches one folder for .torrent files; see the module documentation. */
export class WatchDir implements AsyncDisposable {
  readonly #dir: string;
  readonly #o: WatchDirOptions;
  readonly #failed = new Map<string, number>();
  #watcher: Deno.FsWatcher | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #scanning: Promise<void> | undefined;
  #again = false;
  #loop: Promise<void> | undefined;
  #closed = false;

  /**
   * Creates a {@linkcode WatchDir}; {@linkcode WatchDir.start} begins watching.
   *
   * @param dir The folder.
   * @param options What to do with the files.
   */
  constructor(dir: string, options: WatchDirOptions) {
    this.#dir = dir;
    this.#o = options;
  }

  /**
   * Creates the folder if needed, adds what is already there, and watches it.
   *
   * @throws {Deno.errors.PermissionDenied} When the folder cannot be made or read.
   */
  async start(): Promise<void> {
    await Deno.mkdir(this.#dir, { recursive: true });
    try {
      this.#watcher = Deno.watchFs(this.#dir, { recursive: false });
      const watcher = this.#watcher;
      this.#loop = (async () => {
        try {
          for await (const _ of watcher) this.scan();
        } catch { /* closed */ }
      })();
    } catch { /* no file system events here: the timer alone */ }
    this.#timer = setInterval(() => this.scan(), this.#o.intervalMs ?? 5000);
    await this.scan();
  }

  /** Looks at the folder now (calls while a look runs make one more look after it). */
  scan(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#scanning) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = (async () => {
      do {
        this.#again = false;
        await this.#scanOnce().catch((err) => this.#o.onError(this.#dir, err));
      } while (this.#again && !this.#closed);
    })().finally(() => this.#scanning = undefined);
    return this.#scanning;
  }

  async #scanOnce(): Promise<void> {
    for await (const e of Deno.readDir(this.#dir)) {
      if (this.#closed) return;
      if (!e.isFile || !/\.torrent$/i.test(e.name)) continue;
      const path = join(this.#dir, e.name);
      let st: Deno.FileInfo;
      try {
        st = await Deno.stat(path);
      } catch {
        continue; // gone already
      }
      const stamp = st.mtime?.getTime() ?? 0;
      if (this.#failed.get(path) === stamp) continue; // reported; waits for a change
      try {
        if (st.size > MAX_BYTES) throw new Error(`${st.size} bytes is too big for a torrent file`);
        const what = await this.#o.add(await Deno.readFile(path), e.name);
        await Deno.rename(path, path + ".added");
        this.#failed.delete(path);
        this.#o.onTaken(e.name, what);
      } catch (err) {
        // a file being written may not parse yet: tried again at the next look, reported only once it has
        // not changed for a while
        if (Date.now() - stamp < 3000) continue;
        this.#failed.set(path, stamp);
        this.#o.onError(e.name, err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      this.#watcher?.close();
    } catch { /* closed */ }
    await this.#loop;
    await this.#scanning;
  }

  /** Same as {@linkcode WatchDir.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
