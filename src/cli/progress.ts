/**
 * The progress line: what a person watching a download sees, in the style of aria2c and webtorrent-cli. Each
 * line fits the terminal (fields are dropped from the right, never wrapped); several torrents get one line each
 * under a line of totals, redrawn in place.
 *
 * @module
 */

/** A snapshot of a transfer, as the progress line shows it. */
export interface ProgressSnapshot {
  /** Bytes of wanted data we have. */
  have: number;
  /** Bytes of wanted data in total. */
  total: number;
  /** Download rate, bytes/s (on a final line: the average). */
  down: number;
  /** Upload rate, bytes/s. */
  up: number;
  /** Peers that unchoked us. */
  unchoked: number;
  /** Connected peers. */
  peers: number;
  /** Hash-check progress 0-1 while verifying; undefined otherwise. */
  verifying?: number | undefined;
  /** True when seeding (everything wanted is done). */
  seeding?: boolean;
  /** Total bytes uploaded (shown while seeding). */
  uploaded?: number;
  /** Why the transfer is paused (a full or read-only disk): shown instead of speeds and ETA. */
  paused?: string | undefined;
  /** Shown instead of speeds and ETA while no peer is connected, e.g. "waiting for peers". */
  waiting?: string | undefined;
  /** Seeders and leechers in the swarm, as a tracker last said. */
  swarm?: { seeders: number; leechers: number } | undefined;
  /** Only some files are wanted (`-s`): the total is the selected part. */
  selected?: boolean;
  /** Torrents done and in all, when the line adds up several. */
  torrents?: { done: number; count: number } | undefined;
  /** The last line of a run: the average download speed, no peers, no ETA. */
  final?: boolean;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/**
 * Bytes in binary units with three significant digits: "0 B", "512 B", "1.50 KiB", "12.3 MiB", "256 GiB".
 *
 * @param n Bytes.
 * @returns The human-readable size.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "?";
  let u = 0;
  while (n >= 1024 && u < UNITS.length - 1) {
    n /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(n)} B`;
  const digits = n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits)} ${UNITS[u]}`;
}

/**
 * Seconds as "45s", "3m05s", "2h03m", "4d02h"; "--" when unknown or absurd.
 *
 * @param seconds Duration.
 * @returns The human-readable duration.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 99 * 86400) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, "0")}h`;
}

/** One field of a line; `shrink` fields are cut short with "…" before they would be dropped. */
interface Field {
  text: string;
  shrink?: boolean;
}

/**
 * One progress line, e.g.
 * `[ 42.0%] 430 MiB/1.00 GiB ↓ 112 MiB/s ↑ 0 B/s ETA 5s peers 1/3 seeders 12 leechers 3`.
 *
 * @param s The snapshot.
 * @param width The most columns it may take; fields are dropped from the right to fit. No limit by default.
 * @returns The line, without a newline.
 */
export function formatProgress(s: ProgressSnapshot, width: number = Infinity): string {
  return fitFields(progressFields(s), width);
}

function progressFields(s: ProgressSnapshot): Field[] {
  if (s.verifying !== undefined) {
    return [
      { text: `[verifying ${(s.verifying * 100).toFixed(0).padStart(3)}%]` },
      { text: `${formatBytes(s.have)}/${formatBytes(s.total)}` },
      { text: "verified so far" },
    ];
  }
  const pct = s.total === 0 ? 100 : (s.have / s.total) * 100;
  const fields: Field[] = [
    // 99.96% is not "100.0%" until it is done
    {
      text: `[${
        (pct >= 100 || s.have >= s.total ? 100 : Math.min(pct, 99.9)).toFixed(1).padStart(5)
      }%]`,
    },
    { text: `${formatBytes(s.have)}/${formatBytes(s.total)}${s.selected ? " selected" : ""}` },
  ];
  if (s.torrents) fields.push({ text: `${s.torrents.done} of ${s.torrents.count} done` });
  if (s.paused !== undefined) {
    fields.push({ text: `paused: ${s.paused}`, shrink: true });
    return fields;
  }
  if (s.final) {
    if (s.seeding) fields.push({ text: `uploaded ${formatBytes(s.uploaded ?? 0)}` });
    else fields.push({ text: `↓ ${formatBytes(s.down)}/s average` });
    return fields;
  }
  if (s.waiting !== undefined && s.peers === 0 && !s.seeding) {
    fields.push({ text: s.waiting, shrink: true });
    return fields;
  }
  fields.push({ text: `↓ ${formatBytes(s.down)}/s` }, { text: `↑ ${formatBytes(s.up)}/s` });
  if (s.seeding) fields.push({ text: `seeding, uploaded ${formatBytes(s.uploaded ?? 0)}` });
  else {
    const eta = s.down > 0 ? (s.total - s.have) / s.down : Infinity;
    fields.push({ text: `ETA ${s.have >= s.total ? "0s" : formatDuration(eta)}` });
  }
  // downloading: peers unchoking us / connected; seeding, who unchokes us does not matter
  fields.push({ text: s.seeding ? `peers ${s.peers}` : `peers ${s.unchoked}/${s.peers}` });
  if (s.swarm) fields.push({ text: `seeders ${s.swarm.seeders} leechers ${s.swarm.leechers}` });
  return fields;
}

/** Joins fields with spaces, dropping them from the right (or cutting a `shrink` one) until the line fits. */
function fitFields(fields: Field[], width: number): string {
  const parts = fields.map((f) => f.text);
  const total = () => displayWidth(parts.join(" "));
  while (parts.length > 0 && total() > width) {
    const last = parts.length - 1;
    const room = width - (last === 0 ? 0 : displayWidth(parts.slice(0, last).join(" ")) + 1);
    if (fields[last].shrink && room >= 12) {
      parts[last] = truncate(parts[last], room);
      break;
    }
    if (last === 0) return truncate(parts[0], width);
    parts.pop();
  }
  return parts.join(" ");
}

/**
 * Columns a string takes in a terminal: East Asian wide characters take two, combining marks none.
 *
 * @param text The string.
 * @returns Its width.
 */
export function displayWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += charWidth(ch.codePointAt(0)!);
  return w;
}

function charWidth(cp: number): number {
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || cp === 0xfe0f) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)
  ) return 2;
  return 1;
}

/**
 * Cuts a string to at most `width` columns, ending it with "…" when it was cut.
 *
 * @param text The string.
 * @param width The most columns.
 * @returns The string, whole or cut.
 */
export function truncate(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 0) return "";
  let out = "", w = 0;
  for (const ch of text) {
    const cw = charWidth(ch.codePointAt(0)!);
    if (w + cw > width - 1) break;
    out += ch;
    w += cw;
  }
  return out + "…";
}

/** A torrent's line under the totals: its name, then its progress or what it is doing. */
export interface TorrentRow {
  /** The torrent's name (or the magnet link / file it came from, until its name is known). */
  name: string;
  /** Its progress, once it has metadata. */
  snapshot?: ProgressSnapshot;
  /** What it is doing instead ("fetching metadata", "done", "failed: …"), shown when there is no snapshot. */
  status?: string;
}

/**
 * The lines of a download of several torrents: one of totals, then one per torrent (name, then its progress),
 * each fitted to `width`.
 *
 * @param totals The totals' snapshot.
 * @param rows One row per torrent.
 * @param width The terminal's columns available.
 * @returns The lines.
 */
export function formatBoard(
  totals: ProgressSnapshot,
  rows: readonly TorrentRow[],
  width: number = Infinity,
): string[] {
  const lines = [formatProgress(totals, width)];
  const longest = Math.max(0, ...rows.map((r) => displayWidth(r.name)));
  const nameWidth = Math.max(8, Math.min(longest, 32, Math.floor(width * 0.4)));
  for (const r of rows) {
    const name = truncate(r.name, nameWidth);
    const head = `  ${name}${" ".repeat(Math.max(0, nameWidth - displayWidth(name)))} `;
    const room = width - displayWidth(head);
    const body = r.snapshot
      ? formatProgress(r.snapshot, room)
      : fitFields([{ text: r.status ?? "", shrink: true }], room);
    lines.push((head + body).trimEnd());
  }
  return lines;
}

/**
 * Lines shown on stderr: on a terminal a block of lines redrawn in place (never wider than the terminal); in a
 * log one plain line whenever it changed. Messages printed meanwhile go above the block.
 */
export class StatusDisplay {
  readonly #write: (text: string) => void;
  readonly #terminal: boolean;
  readonly #columns: () => number | undefined;
  #shown = 0;
  #last = "";

  /**
   * Creates a {@linkcode StatusDisplay}.
   *
   * @param write Writes to stderr.
   * @param terminal Redraw in place.
   * @param columns The terminal's width, when known.
   */
  constructor(
    write: (text: string) => void,
    terminal: boolean,
    columns: () => number | undefined = terminalColumns,
  ) {
    this.#write = write;
    this.#terminal = terminal;
    this.#columns = columns;
  }

  /** Columns a line may take: the terminal's width less one (the cursor's cell), unlimited in a log. */
  get width(): number {
    if (!this.#terminal) return Infinity;
    const c = this.#columns();
    return c && c > 10 ? c - 1 : 79;
  }

  /**
   * Shows lines: redrawn in place on a terminal; in a log only the first, when it changed (or `final`).
   *
   * @param lines The lines (already fitted to {@linkcode StatusDisplay.width}).
   * @param final The last time: the block stays, followed by a newline.
   */
  show(lines: readonly string[], final = false): void {
    if (this.#terminal) {
      this.#write(`${this.#home()}${lines.join("\n")}${final ? "\n" : ""}`);
      this.#shown = final ? 0 : lines.length;
      return;
    }
    const line = lines[0] ?? "";
    if (line !== this.#last || final) this.#write(line + "\n");
    this.#last = line;
  }

  /**
   * Prints a message (ending in a newline) above the progress; the progress is drawn again at the next
   * {@linkcode StatusDisplay.show}.
   *
   * @param text The message.
   */
  message(text: string): void {
    if (this.#terminal && this.#shown > 0) {
      this.#write(this.#home());
      this.#shown = 0;
    }
    this.#write(text);
  }

  /** Back to the first line of the block, cleared to the end of the screen. */
  #home(): string {
    return `${this.#shown > 1 ? `\x1b[${this.#shown - 1}A` : ""}\r\x1b[J`;
  }
}

/** The terminal's width from `Deno.consoleSize()`, or undefined when there is no terminal. */
export function terminalColumns(): number | undefined {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return undefined;
  }
}

/** What {@linkcode ProgressLine} reads from a client (a `Client` satisfies it). */
export interface ProgressSource {
  /** Wanted bytes in total and verified, and hash-check progress. */
  readonly progress: { have: number; total: number; checking: number | undefined };
  /** Connected peers and whether they choke us. */
  readonly peers: readonly { peerChoking: boolean }[];
  /** Payload bytes received this session. */
  readonly downloaded: number;
  /** Payload bytes sent this session. */
  readonly uploaded: number;
  /** Current download rate, bytes/s. */
  readonly downloadRate: number;
  /** Current upload rate, bytes/s. */
  readonly uploadRate: number;
  /** Everything wanted is verified. */
  readonly complete: boolean;
}

/**
 * Draws one client's progress on stderr: redrawn in place on a terminal, otherwise one plain line whenever it
 * changed. The final line shows the average download speed, not the last instant's.
 */
export class ProgressLine {
  readonly #source: () => ProgressSource | undefined;
  readonly #display: StatusDisplay;
  readonly #started = performance.now();

  /**
   * Creates a {@linkcode ProgressLine}.
   *
   * @param source The client to read (undefined while it is not ready).
   * @param write Writes to stderr.
   * @param terminal Redraw in place.
   */
  constructor(
    source: () => ProgressSource | undefined,
    write: (text: string) => void,
    terminal: boolean,
  ) {
    this.#source = source;
    this.#display = new StatusDisplay(write, terminal);
  }

  /** Draws the line now; `final` ends it with a newline. */
  draw(final = false): void {
    const c = this.#source();
    if (!c) return;
    let complete: boolean;
    try {
      complete = c.complete;
    } catch {
      return; // not ready yet
    }
    const { have, total, checking } = c.progress;
    const secs = (performance.now() - this.#started) / 1000;
    const line = formatProgress({
      have,
      total,
      down: final ? c.downloaded / Math.max(secs, 0.001) : c.downloadRate,
      up: c.uploadRate,
      unchoked: c.peers.filter((p) => !p.peerChoking).length,
      peers: c.peers.length,
      verifying: checking,
      seeding: complete && !final,
      uploaded: c.uploaded,
      final,
    }, this.#display.width);
    this.#display.show([line], final);
  }
}
