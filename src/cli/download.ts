/**
 * `seedbed <torrent|magnet>...` (download), `seedbed seed <torrent>...` and `seedbed stream <torrent|magnet>...`:
 * every torrent given runs in one {@linkcode Session} (one port, one DHT node, limits over all of them), with a
 * progress display, signals and exit codes. Exit 0 once every torrent completed, 1 when one failed (naming it),
 * 130 on Ctrl-C. `stream` (and `--stream`) also serves the torrents' files over HTTP while they download.
 *
 * Resume data of each torrent is kept in the state directory by info hash and download folder
 * (`<state>/downloads/<hash>-<folder>.resume`), so two torrents of the same name never share it and a run in
 * another folder never trusts it; an older `<dir>/.<name>.seedbed-resume` is read once and replaced. The session
 * itself keeps no list of torrents: that is the daemon's job.
 *
 * @module
 */

import { join } from "node:path";
import { printable } from "../_paths.ts";
import type { Dht } from "../dht/dht.ts";
import { serveStreams, type StreamServer } from "../http/serve.ts";
import { Session, type SessionOptions } from "../session/session.ts";
import type { SessionTorrent, TorrentAddOptions } from "../session/session_torrent.ts";
import {
  cleanMessage,
  ensureWritableDir,
  errorCode,
  EXIT,
  fsReason,
  plural,
  resumeFileFor,
} from "./_common.ts";
import { loadDhtState, saveDhtState } from "./dht.ts";
import {
  downloadHelp,
  type DownloadSettings,
  parseDownloadArgs,
  streamHelp,
} from "./download_flags.ts";
import {
  checkDistinct,
  checkSeedDir,
  checkTarget,
  dataSize,
  type Job,
  listFiles,
  loadJob,
  prioritiesFor,
} from "./download_jobs.ts";
import {
  formatBoard,
  formatBytes,
  formatDuration,
  formatProgress,
  type ProgressSnapshot,
  StatusDisplay,
  type TorrentRow,
  truncate,
} from "./progress.ts";

export { EXIT, UsageError } from "./_common.ts";
export { downloadHelp, parsePeerAddress, parseRate, parseSelection } from "./download_flags.ts";
export { formatFileList } from "./download_jobs.ts";

/** Where the CLI writes; tests capture it. */
export interface DownloadIO {
  /** Writes to standard output (JSON events). */
  stdout(text: string): void;
  /** Writes to standard error (human output). */
  stderr(text: string): void;
  /** True when stderr is a terminal (progress redrawn in place). */
  isTerminal: boolean;
  /** Resolves when the user asks to stop (SIGINT / SIGTERM). */
  interrupted: Promise<void>;
  /** The terminal's width in columns, when known. @default {Deno.consoleSize} */
  columns?: () => number | undefined;
}

/** Seconds between write retries of a paused torrent (the engine's default diskRetryMs, 5000). */
const DISK_RETRY_S = 5;

/** Failed connections told per torrent in a person's words (--json gives every one). */
const PEER_FAILURES_TOLD = 3;

/**
 * Runs `download`, `seed` or `stream` (a download that serves its files over HTTP and keeps seeding).
 *
 * @param command "download", "seed" or "stream".
 * @param args Arguments after the subcommand.
 * @param io Output and the interrupt signal.
 * @returns The exit status.
 * @throws {UsageError} For a wrong command line.
 */
export async function runDownload(
  command: "download" | "seed" | "stream",
  args: string[],
  io: DownloadIO,
): Promise<number> {
  const s = parseDownloadArgs(command, args);
  if (s.help) {
    io.stderr((command === "stream" ? streamHelp() : downloadHelp()) + "\n");
    return EXIT.ok;
  }
  const mode = command === "stream" ? "download" : command;
  const jobs: Job[] = [];
  for (const source of s.sources) jobs.push(await loadJob(source, mode));
  checkDistinct(jobs, s.dir);
  // -s is checked against every torrent whose files are known now (a magnet link's once its metadata is)
  for (const j of jobs) if (j.meta) prioritiesFor(j, s, jobs.length);
  if (s.list && jobs.every((j) => j.meta)) {
    for (const j of jobs) listFiles(j.meta!, io);
    return EXIT.ok;
  }
  if (mode === "download") {
    await ensureWritableDir(s.dir);
    for (const j of jobs) if (j.meta) await checkTarget(j.meta, s.dir);
  } else await checkSeedDir(s.dir);
  return await new DownloadRun(mode, s, jobs, io).run();
}

/** The words for why a torrent is paused by its disk, short enough for the progress line. */
function pauseReason(err: Error): string {
  switch (errorCode(err)) {
    case "ENOSPC":
      return "disk full";
    case "EROFS":
      return "read-only file system";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EDQUOT":
      return "disk quota exceeded";
    case "EIO":
      return "disk input/output error";
  }
  return cleanMessage(err).replace(/; download paused.*$/, "");
}

/** One run of the command: the session, its torrents, the display, and the end. */
class DownloadRun {
  readonly #mode: "download" | "seed";
  readonly #s: DownloadSettings;
  readonly #jobs: Job[];
  readonly #io: DownloadIO;
  readonly #display: StatusDisplay;
  readonly #started = performance.now();
  #session: Session | undefined;
  #server: StreamServer | undefined;
  #dht: Dht | undefined;
  #closing = false;
  readonly #closeErrors: { job: Job; error: Error }[] = [];
  /** The state directory, when resume data can be kept there. */
  #stateDir: string | undefined;
  #lastJson = 0;

  constructor(mode: "download" | "seed", s: DownloadSettings, jobs: Job[], io: DownloadIO) {
    this.#mode = mode;
    this.#s = s;
    this.#jobs = jobs;
    this.#io = io;
    this.#display = new StatusDisplay(io.stderr, io.isTerminal, io.columns);
  }

  async run(): Promise<number> {
    const s = this.#s;
    const interrupted = this.#io.interrupted.then(() => "interrupted" as const);
    let timer: ReturnType<typeof setInterval> | undefined;
    try {
      this.#stateDir = await this.#prepareStateDir();
      for (const w of s.warnings) this.#say(w);
      const session = this.#session = await this.#openSession();
      // one DHT node for the process, on the session's UDP socket; private torrents (BEP 27) never use it
      this.#dht = session.dht;
      const udp = session.udpPort;
      const over = [s.noTcp ? "" : "TCP", !s.noUtp && udp === session.port ? "uTP" : ""]
        .filter((x) => x).join(" and ");
      this.#info(
        `Listening on port ${session.port} (${over})${
          !s.noUtp && udp > 0 && udp !== session.port ? `, uTP on udp port ${udp}` : ""
        }${this.#dht ? `, DHT on udp port ${this.#dht.port}` : ""}`,
      );
      for (const job of this.#jobs) await this.#add(job);
      if (s.stream) {
        // served once the torrents' files can be read (a magnet link's join once its metadata came)
        const loaded = this.#jobs.map((j) => j.meta ? j.torrent?.ready.catch(() => {}) : undefined);
        await Promise.race([Promise.all(loaded), interrupted]);
        this.#serve(session);
      }
      timer = setInterval(() => this.#tick(), this.#io.isTerminal ? 500 : 1000);
      const settled = Promise.all(this.#jobs.map((j) => j.settled)).then(() => "settled" as const);
      let outcome = await Promise.race([settled, interrupted]);
      const listed = this.#jobs.every((j) => j.phase === "listed");
      if (
        outcome === "settled" && !listed && this.#s.keepSeeding &&
        this.#jobs.some((j) => j.phase === "done")
      ) {
        this.#flushDoneLines();
        outcome = await interrupted;
      }
      clearInterval(timer);
      timer = undefined;
      if (listed) {
        await this.#close();
        return EXIT.ok;
      }
      this.#draw(true);
      this.#flushDoneLines();
      await this.#close();
      if (outcome === "interrupted") return this.#interrupted();
      return this.#summary();
    } finally {
      if (timer !== undefined) clearInterval(timer);
      await this.#close();
    }
  }

  /** The state directory, if its folder for resume data can be written (else resume data stays beside the data). */
  async #prepareStateDir(): Promise<string | undefined> {
    const state = this.#s.stateDir;
    if (!state) return undefined;
    const dir = join(state, "downloads");
    try {
      await Deno.mkdir(dir, { recursive: true });
      const probe = join(dir, `.probe-${crypto.randomUUID().slice(0, 8)}`);
      await Deno.writeFile(probe, new Uint8Array(0));
      await Deno.remove(probe);
      return state;
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable) throw err;
      this.#say(
        `seedbed: warning: cannot keep resume data in ${state}: ${
          fsReason(err)
        }; keeping it beside the data instead`,
      );
      return undefined;
    }
  }

  /** Opens the session; a download whose port is taken listens on a free one and says which. */
  async #openSession(): Promise<Session> {
    const s = this.#s;
    const needDht = !s.noDht && !this.#jobs.every((j) => j.meta?.private);
    const state = needDht ? await loadDhtState(s.dhtStatePath) : undefined;
    const options: SessionOptions = {
      port: s.port,
      basedir: s.dir,
      ...(needDht ? { dht: { bootstrap: s.dhtBootstrap, ...(state ? { state } : {}) } } : {}),
      ...(s.noUtp ? { utp: false } : {}),
      ...(s.noTcp ? { tcp: false } : {}),
      ...(s.lsd ? { lsd: true } : {}),
      encryption: s.encryption,
      ...(s.rc4Only ? { rc4Only: true } : {}),
      limits: {
        download: s.limitDown,
        upload: s.limitUp,
        activeDownloads: 0,
        activeSeeds: 0,
        ...(s.maxPeers ? { connections: s.maxPeers, connectionsPerTorrent: s.maxPeers } : {}),
      },
      ...(s.pieceMemory ? { engine: { pieceMemory: s.pieceMemory } } : {}),
      restore: false,
    };
    try {
      return await Session.open(options);
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse) || s.port === 0) throw err;
      if (this.#mode === "seed") {
        throw new Error(
          `port ${s.port} is in use by another program; choose another with -p PORT, or -p 0 for any free port`,
        );
      }
    }
    const session = await Session.open({ ...options, port: 0 });
    this.#say(`seedbed: port ${s.port} is in use; listening on port ${session.port} instead`);
    return session;
  }

  /**
   * Serves the session's torrents over HTTP (those whose files are known) and says where; a port in use gives
   * way to a free one, as the listening port does.
   */
  #serve(session: Session): void {
    const { port, hostname } = this.#s.stream!;
    const sources = () =>
      session.torrents.filter((t) => t.hasMetadata && t.engine).map((t) => t.streamSource());
    try {
      this.#server = serveStreams(sources, { port, hostname });
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse) || port === 0) {
        throw new Error(
          `cannot serve the files over HTTP on ${hostname} port ${port}: ${cleanMessage(err)}`,
        );
      }
      this.#server = serveStreams(sources, { port: 0, hostname });
      this.#say(
        `seedbed: HTTP port ${port} is in use; serving on port ${this.#server.addr.port} instead`,
      );
    }
    const server = this.#server;
    this.#say(`Streaming at ${server.url} (playlist: ${server.playlistUrl})`);
    if (!/^(?:127\.|::1$|localhost$)/.test(hostname)) {
      this.#say(
        `seedbed: warning: the HTTP server listens on ${hostname}: the torrents' files can be read from the network`,
      );
    }
    this.#json("stream", { url: server.url, playlist: server.playlistUrl });
  }

  /** Adds a torrent to the session and follows it to its end. */
  async #add(job: Job): Promise<void> {
    const s = this.#s;
    const priorities = job.meta ? prioritiesFor(job, s, this.#jobs.length) : undefined;
    const options: TorrentAddOptions = {
      basedir: s.dir,
      peers: s.peers,
      ...(priorities ? { priorities } : {}),
      // a magnet link waits (paused) until its files can be listed or selected
      ...(job.magnet && (s.select !== undefined || s.list) ? { state: "paused" as const } : {}),
      ...(s.noTrackers ? { trackers: false } : {}),
      ...(s.noWebSeeds ? { webSeeds: false } : {}),
      ...(s.webSeeds.length > 0 ? { extraWebSeeds: s.webSeeds } : {}),
      ...(s.sequential ? { sequential: true } : {}),
      ...(s.metadataTimeoutMs ? { metadataTimeoutMs: s.metadataTimeoutMs } : {}),
      ...(this.#stateDir ? { resumeFile: resumeFileFor(this.#stateDir, job.hex, s.dir) } : {}),
    };
    if (job.magnet) {
      const from = [
        job.magnet.peers.length + s.peers.length > 0 ? "its peers" : "",
        job.magnet.trackers.length > 0 && !s.noTrackers ? "its trackers" : "",
        this.#dht ? "the DHT" : "",
      ].filter((x) => x);
      this.#info(
        `Fetching the torrent's metadata of ${job.label}${
          from.length ? ` from ${from.join(", ").replace(/, ([^,]*)$/, " and $1")}` : ""
        }`,
      );
    }
    try {
      job.torrent = await this.#session!.add(
        job.meta ? { torrent: job.bytes! } : { magnet: job.source },
        options,
      );
    } catch (err) {
      this.#fail(job, err as Error);
      job.settled = Promise.resolve();
      return;
    }
    this.#listen(job, job.torrent);
    job.settled = this.#follow(job, job.torrent);
  }

  #listen(job: Job, t: SessionTorrent): void {
    const ih = { infoHash: job.hex };
    t.addEventListener("peer", (e) => this.#json("peer", { ...ih, address: e.detail.address }));
    t.addEventListener("peerclose", (e) => this.#json("peerclose", { ...ih, ...e.detail }));
    t.addEventListener("piece", (e) => this.#json("piece", { ...ih, index: e.detail.index }));
    t.addEventListener("hashfail", (e) => this.#json("hashfail", { ...ih, index: e.detail.index }));
    t.addEventListener("tracker", (e) => {
      if (e.detail.type === "announce") job.announced = true;
      this.#json("tracker", { ...ih, ...e.detail });
    });
    t.addEventListener("state", (e) => {
      if (e.detail.state === "active" && job.diskPaused) {
        job.diskPaused = false;
        this.#info(`${this.#name(job)}: the data can be written again; carrying on`);
      }
    });
    t.addEventListener("error", (e) => this.#onError(job, t, e.detail.error));
    t.addEventListener("peerfail", (e) => {
      this.#json("peerfail", { ...ih, ...e.detail });
      // the first few are told (a refused encryption policy shows here); a swarm has many more
      const n = job.peerFailures = (job.peerFailures ?? 0) + 1;
      if (n <= PEER_FAILURES_TOLD) {
        this.#info(
          `${this.#name(job)}: could not connect to ${e.detail.address}: ${
            printable(e.detail.reason)
          }`,
        );
      } else if (n === PEER_FAILURES_TOLD + 1) {
        this.#info(`${this.#name(job)}: more peers could not be connected (--json lists each)`);
      }
    });
    t.addEventListener("warning", (e) => {
      this.#json("warning", { ...ih, message: e.detail.message });
      this.#say(`seedbed: ${this.#name(job)}: warning: ${printable(e.detail.message)}`);
    });
    // a magnet link's v2 piece layers came from peers: the saved .torrent is whole now
    t.addEventListener("piecelayers", () => {
      if (job.magnet && this.#s.saveTorrent) void this.#saveTorrent(t.torrentFile);
    });
  }

  async #follow(job: Job, t: SessionTorrent): Promise<void> {
    try {
      await t.ready;
    } catch (err) {
      if (!this.#closing) this.#fail(job, err as Error);
      return;
    }
    try {
      await this.#ready(job, t);
    } catch (err) {
      this.#fail(job, err as Error);
      await this.#session?.remove(t).catch(() => {});
      return;
    }
    if (job.phase === "listed") return;
    try {
      await t.done;
    } catch {
      return; // closed before it completed (Ctrl-C)
    }
    this.#done(job, t);
  }

  /** The torrent is loaded (a magnet link's metadata fetched): list, select, announce what it is. */
  async #ready(job: Job, t: SessionTorrent): Promise<void> {
    const s = this.#s;
    const meta = t.metainfo;
    const engine = t.engine!;
    if (job.magnet) {
      if (s.saveTorrent) await this.#saveTorrent(t.torrentFile);
      if (s.list) {
        job.phase = "listed";
        this.#display.message("");
        listFiles(meta, this.#io);
        await this.#session!.remove(t);
        return;
      }
      const wanted = prioritiesFor(job, s, this.#jobs.length);
      if (wanted) {
        // -s decides alone, over the link's own selection (so=) as well
        for (let i = 0; i < wanted.length; i++) await t.setPriority(i, wanted[i]);
        await t.start();
      }
    } else if (s.saveTorrent) await this.#saveTorrent(job.bytes!);
    job.phase = "running";
    this.#json("ready", {
      infoHash: job.hex,
      name: meta.name,
      size: meta.length,
      port: t.port,
      ...(this.#dht && !meta.private ? { dhtPort: this.#dht.port } : {}),
      have: engine.have.count,
      pieces: meta.pieceCount,
    });
    for (const w of meta.warnings) {
      this.#say(`seedbed: ${meta.displayName}: warning: ${printable(w)}`);
    }
    const files = meta.files.filter((f) => !f.padding).length;
    const priorities = engine.priorities;
    const selected = priorities.filter((p, i) => p > 0 && !meta.files[i].padding).length;
    // the selected part as the progress line counts it: whole pieces
    const what = s.select !== undefined
      ? `${selected} of ${plural(files, "file")} of ${meta.displayName} (${
        formatBytes(engine.progress.total)
      } of ${formatBytes(dataSize(meta))})`
      : `${meta.displayName} (${formatBytes(dataSize(meta))}${
        meta.multiFile ? `, ${plural(files, "file")}` : ""
      })`;
    this.#info(
      this.#mode === "seed" ? `Seeding ${what} from ${s.dir}` : `Downloading ${what} into ${s.dir}`,
    );
    if (this.#mode === "seed" && !engine.seed) {
      const missing = meta.pieceCount - engine.have.count;
      this.#say(
        `seedbed: warning: ${missing} of ${meta.pieceCount} pieces of ${meta.displayName} are missing under ${s.dir}; seeding the rest and downloading the missing ones`,
      );
    }
  }

  async #saveTorrent(bytes: Uint8Array): Promise<void> {
    const path = this.#s.saveTorrent!;
    try {
      await Deno.writeFile(path, bytes);
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable) throw err;
      this.#say(`seedbed: cannot write ${path}: ${fsReason(err)}`);
    }
  }

  #done(job: Job, t: SessionTorrent): void {
    const secs = (performance.now() - this.#started) / 1000;
    job.phase = "done";
    job.doneSecs = secs;
    job.doneBytes = t.downloaded;
    this.#json("complete", {
      infoHash: job.hex,
      name: t.metainfo.name,
      seconds: Math.round(secs * 10) / 10,
      downloaded: t.downloaded,
    });
    if (this.#mode === "seed") return;
    job.doneLine = `Done: ${t.metainfo.displayName}, ${formatBytes(t.downloaded)} downloaded in ${
      formatDuration(secs)
    } (${formatBytes(t.downloaded / Math.max(secs, 0.001))}/s)`;
    // the last one's line follows the final progress line
    if (this.#jobs.some((j) => j.phase === "starting" || j.phase === "running")) {
      this.#flushDoneLines();
    }
  }

  #flushDoneLines(): void {
    for (const j of this.#jobs) {
      if (j.doneLine) this.#say(j.doneLine);
      j.doneLine = undefined;
    }
  }

  #fail(job: Job, err: Error): void {
    if (job.phase === "failed") return;
    job.phase = "failed";
    job.failure = err instanceof Deno.errors.AddrInUse ? err.message : cleanMessage(err);
    this.#json("failed", { infoHash: job.hex, message: job.failure });
    if (this.#jobs.length > 1) this.#say(`seedbed: ${job.label}: ${job.failure}`);
  }

  /** An error of a running torrent: a disk that refuses pauses it (said once); others once each. */
  #onError(job: Job, t: SessionTorrent, error: Error): void {
    if (this.#closing) {
      this.#closeErrors.push({ job, error });
      return;
    }
    const code = errorCode(error);
    this.#json("error", { infoHash: job.hex, message: error.message, ...(code ? { code } : {}) });
    const disk = t.engine?.error === error;
    if (disk || (job.diskPaused && code !== undefined)) {
      if (job.diskPaused || t.state !== "paused") return;
      job.diskPaused = true;
      this.#say(
        `seedbed: cannot write to ${join(this.#s.dir, t.metainfo.name)}: ${
          fsReason(error.cause ?? error)
        }; paused until it can (tried again every ${DISK_RETRY_S} s)`,
      );
      return;
    }
    const line = `seedbed: ${this.#name(job)}: ${cleanMessage(error)}`;
    if (job.said.has(line)) return;
    job.said.add(line);
    this.#say(line);
  }

  #name(job: Job): string {
    return job.torrent?.hasMetadata ? job.torrent.metainfo.displayName : job.label;
  }

  // ------------------------------------------------------------ the display

  #tick(): void {
    this.#draw(false);
    const now = performance.now();
    if (!this.#s.json || now - this.#lastJson < 950) return;
    this.#lastJson = now;
    for (const j of this.#jobs) {
      const e = j.torrent?.engine;
      if (!e || j.phase !== "running" && j.phase !== "done") continue;
      const swarm = this.#swarm(j);
      this.#json("progress", {
        infoHash: j.hex,
        downloaded: e.downloaded,
        uploaded: e.uploaded,
        left: e.left,
        peers: e.peers().length,
        downloadRate: Math.round(e.downloadRate),
        uploadRate: Math.round(e.uploadRate),
        ...(e.state === "paused" && e.error ? { paused: pauseReason(e.error) } : {}),
        ...(swarm ? swarm : {}),
      });
    }
  }

  #draw(final: boolean): void {
    if (this.#s.quiet) return;
    const width = this.#display.width;
    const jobs = this.#jobs.filter((j) => j.phase !== "listed");
    if (jobs.length === 0) return;
    if (jobs.length === 1) {
      const snap = this.#snapshot(jobs[0], final);
      if (!snap && final) return;
      const line = snap
        ? formatProgress(snap, width)
        : truncate(this.#row(jobs[0], final).status ?? "", width);
      this.#display.show([line], final);
      return;
    }
    const rows = jobs.map((j) => this.#row(j, final));
    const totals = this.#totals(jobs, final);
    const lines = formatBoard(totals, rows, width);
    // in a log, the line of totals alone
    this.#display.show(this.#io.isTerminal ? lines : lines.slice(0, 1), final);
  }

  #row(job: Job, final: boolean): TorrentRow {
    const name = this.#name(job);
    if (job.phase === "failed") return { name, status: `failed: ${job.failure}` };
    if (job.phase === "done" && !this.#s.keepSeeding) {
      return {
        name,
        status: `done: ${formatBytes(job.doneBytes ?? 0)} in ${formatDuration(job.doneSecs ?? 0)}`,
      };
    }
    const snap = this.#snapshot(job, final);
    if (snap) return { name, snapshot: snap };
    if (job.magnet && !job.torrent?.hasMetadata) {
      return { name, status: "fetching the torrent's metadata" };
    }
    return { name, status: final ? "stopped" : "checking the data on disk" };
  }

  #snapshot(job: Job, final: boolean): ProgressSnapshot | undefined {
    const t = job.torrent;
    const e = t?.engine;
    if (!t || !e || job.phase === "starting" || job.phase === "listed") return undefined;
    const { have, total, checking } = e.progress;
    const peers = e.peers();
    const secs = (job.doneSecs ?? (performance.now() - this.#started) / 1000) || 0.001;
    const seeding = e.complete && (this.#s.keepSeeding || !final && job.phase !== "done");
    return {
      have,
      total,
      down: final ? e.downloaded / secs : e.downloadRate,
      up: e.uploadRate,
      unchoked: peers.filter((p) => !p.peerChoking).length,
      peers: peers.length,
      verifying: final ? undefined : checking,
      seeding,
      uploaded: e.uploaded,
      paused: e.state === "paused" && e.error ? pauseReason(e.error) : undefined,
      waiting: this.#waiting(job),
      swarm: this.#swarm(job),
      selected: this.#s.select !== undefined,
      final,
    };
  }

  /** What the line says while no peer is connected: where peers could come from, or that nothing can find any. */
  #waiting(job: Job): string {
    const s = this.#s;
    const meta = job.torrent?.hasMetadata ? job.torrent.metainfo : job.meta;
    const priv = meta?.private ?? false;
    const trackers = s.noTrackers
      ? 0
      : (meta?.announceList.flat().length ?? 0) + (job.magnet?.trackers.length ?? 0);
    const peers = s.peers.length + (job.magnet?.peers.length ?? 0);
    const dht = !!this.#dht && !priv;
    const lsd = s.lsd && !priv;
    if (trackers + peers > 0 || dht || lsd) return "waiting for peers";
    const listed = (meta?.urlList.length ?? 0) + (meta?.httpSeeds.length ?? 0) +
      (job.magnet?.webSeeds.length ?? 0);
    const webSeeds = s.webSeeds.length + (s.noWebSeeds ? 0 : listed);
    const why = [
      s.noTrackers ? "trackers off" : "no trackers",
      priv && !s.noDht ? "no DHT (private torrent)" : "DHT off",
      "no --peer given",
      // web seeds show as peers: none shown means none was given, or every one was dropped
      ...(webSeeds > 0 ? ["web seeds dropped"] : listed > 0 ? ["web seeds off"] : []),
    ];
    return `waiting for peers — ${why.join(", ")}`;
  }

  /** Seeders and leechers, once a tracker told them. */
  #swarm(job: Job): { seeders: number; leechers: number } | undefined {
    if (!job.announced) return undefined;
    try {
      let seeders = 0, leechers = 0;
      for (const tier of job.torrent!.trackers) {
        seeders = Math.max(seeders, tier.complete);
        leechers = Math.max(leechers, tier.incomplete);
      }
      return { seeders, leechers };
    } catch {
      return undefined;
    }
  }

  #totals(jobs: Job[], final: boolean): ProgressSnapshot {
    const t: ProgressSnapshot = { have: 0, total: 0, down: 0, up: 0, unchoked: 0, peers: 0 };
    let paused: string | undefined, waiting = true, running = 0, downloaded = 0, uploaded = 0;
    for (const j of jobs) {
      const snap = this.#snapshot(j, false);
      if (!snap) continue;
      t.have += snap.have;
      t.total += snap.total;
      t.down += snap.down;
      t.up += snap.up;
      t.unchoked += snap.unchoked;
      t.peers += snap.peers;
      downloaded += j.torrent!.downloaded;
      uploaded += j.torrent!.uploaded;
      if (snap.have >= snap.total) continue;
      running++;
      if (snap.paused === undefined) paused = "";
      else paused ??= snap.paused;
      if (snap.peers > 0 || snap.verifying !== undefined) waiting = false;
    }
    const secs = (performance.now() - this.#started) / 1000;
    if (final) t.down = downloaded / Math.max(secs, 0.001);
    t.uploaded = uploaded;
    t.final = final;
    t.selected = this.#s.select !== undefined;
    t.seeding = this.#s.keepSeeding && running === 0 && !final;
    t.torrents = { done: jobs.filter((j) => j.phase === "done").length, count: jobs.length };
    if (running > 0 && paused) t.paused = paused;
    if (running > 0 && waiting) t.waiting = "waiting for peers";
    return t;
  }

  // ------------------------------------------------------------ the end

  async #close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await this.#server?.shutdown();
    // the routing table, then the session (which closes its DHT node)
    if (this.#dht) await saveDhtState(this.#s.dhtStatePath, this.#dht);
    await this.#session?.close();
  }

  /** After Ctrl-C: says whether resume data was written (it may not have been: a full or read-only disk). */
  #interrupted(): number {
    this.#json("interrupted");
    const failed = this.#closeErrors.filter(({ error }) => errorCode(error) !== undefined);
    if (!this.#jobs.some((j) => j.torrent?.engine)) {
      this.#say("seedbed: interrupted"); // nothing was loaded yet (a magnet link's metadata, say): no resume data
    } else if (failed.length === 0) {
      this.#say("seedbed: interrupted; resume data written, run the same command again to resume");
    } else {
      const reason = pauseReason(failed[0].error);
      this.#say(
        `seedbed: interrupted; resume data could not be written (${reason}): the next run checks the data on disk again`,
      );
    }
    return EXIT.interrupted;
  }

  #summary(): number {
    for (const { job, error } of this.#closeErrors) {
      this.#say(`seedbed: ${this.#name(job)}: ${cleanMessage(error)}`);
    }
    const failed = this.#jobs.filter((j) => j.phase === "failed");
    const done = this.#jobs.filter((j) => j.phase === "done");
    if (failed.length === 0) {
      if (done.length > 1 && this.#mode === "download") {
        const bytes = done.reduce((n, j) => n + (j.doneBytes ?? 0), 0);
        const secs = (performance.now() - this.#started) / 1000;
        this.#say(
          `Done: ${plural(done.length, "torrent")}, ${formatBytes(bytes)} downloaded in ${
            formatDuration(secs)
          }`,
        );
      }
      return EXIT.ok;
    }
    if (this.#jobs.length === 1) {
      this.#say(`seedbed: ${failed[0].label}: ${failed[0].failure}`);
    } else {
      this.#say(
        `seedbed: ${failed.length} of ${plural(this.#jobs.length, "torrent")} failed: ${
          failed.map((j) => j.label).join(", ")
        }`,
      );
    }
    return EXIT.failure;
  }

  // ------------------------------------------------------------ output

  /** A line for a person (errors, warnings, the summary): printed even with -q. */
  #say(text: string): void {
    this.#display.message(text + "\n");
  }

  /** Information for a person (what is starting): not printed with -q. */
  #info(text: string): void {
    if (!this.#s.quiet) this.#say(text);
  }

  #json(event: string, data: Record<string, unknown> = {}): void {
    if (!this.#s.json) return;
    this.#io.stdout(JSON.stringify({ event, time: new Date().toISOString(), ...data }) + "\n");
  }
}
