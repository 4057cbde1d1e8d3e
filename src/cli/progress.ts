/**
 * The progress line: what a person watching a download sees, in the style of aria2c and webtorrent-cli.
 *
 * @module
 */

/** A snapshot of a transfer, as the progress line shows it. */
export interface ProgressSnapshot {
  /** Bytes of wanted data we have. */
  have: number;
  /** Bytes of wanted data in total. */
  total: number;
  /** Download rate, bytes/s. */
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

/**
 * One progress line, e.g.
 * `[ 42.0%] 430 MiB/1.00 GiB ↓ 112 MiB/s ↑ 0 B/s peers 1/3 ETA 5s`.
 *
 * @param s The snapshot.
 * @returns The line, without a newline.
 */
export function formatProgress(s: ProgressSnapshot): string {
  if (s.verifying !== undefined) {
    return `[verifying ${(s.verifying * 100).toFixed(0).padStart(3)}%] ${formatBytes(s.have)}/${
      formatBytes(s.total)
    } verified so far`;
  }
  const pct = s.total === 0 ? 100 : (s.have / s.total) * 100;
  const eta = s.down > 0 ? (s.total - s.have) / s.down : Infinity;
  const parts = [
    `[${pct.toFixed(1).padStart(5)}%]`,
    `${formatBytes(s.have)}/${formatBytes(s.total)}`,
    `↓ ${formatBytes(s.down)}/s`,
    `↑ ${formatBytes(s.up)}/s`,
    `peers ${s.unchoked}/${s.peers}`,
  ];
  if (s.seeding) parts.push(`seeding, uploaded ${formatBytes(s.uploaded ?? 0)}`);
  else parts.push(`ETA ${s.have >= s.total ? "0s" : formatDuration(eta)}`);
  return parts.join(" ");
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
 * Draws a client's progress on stderr: redrawn in place on a terminal, otherwise one plain line whenever it
 * changed. The final line shows the average download speed, not the last instant's.
 */
export class ProgressLine {
  readonly #source: () => ProgressSource | undefined;
  readonly #write: (text: string) => void;
  readonly #terminal: boolean;
  readonly #started = performance.now();
  #last = "";

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
    this.#write = write;
    this.#terminal = terminal;
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
    });
    if (this.#terminal) this.#write(`\r\x1b[K${line}${final ? "\n" : ""}`);
    else if (line !== this.#last || final) this.#write(line + "\n");
    this.#last = line;
  }
}
