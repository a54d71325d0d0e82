import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import { isFallback, parseGatewayLogLine, type GatewayLogEntry } from '../../common/gateway-log.js';

/**
 * Gateway facts in the runtime's /metrics (runtime --gateway-log PATH): the nginx gateway answers
 * hosted and fallback traffic the runtimes never see, and has no /metrics of its own, so the
 * dashboard's split share and fallback count come from its JSON access log. Why a runtime reads
 * it: the metric source must be something every instance already runs and Prometheus already
 * scrapes; exactly one runtime per instance gets the flag (compose: the first), so sums over
 * instances count each request once.
 *
 * It follows the file as a log shipper does: from its end on the first open (a restarted runtime
 * does not recount history, which rate() would show as a burst), from the start of any file that
 * appears later (created after a missing start, or rotated in); new bytes are read every interval
 * and on fs.watch events, in bounded chunks with a turn of the event loop between them; a partial
 * last line waits for its newline; a file that shrank was truncated (copytruncate: read from 0);
 * (a truncated file refilled past the old offset before the next read goes unnoticed, as with
 * any shipper; reads every second and on each write keep that window small);
 * a new inode at the path was rotated (the old file is drained first, and the switch waits until
 * the new one has data, i.e. until nginx has reopened its logs); a missing file is waited for.
 */

export interface GatewayLogOptions {
  path: string;
  registry: Registry;
  /** Where the first open starts reading: 'end' (default) or 'start'. */
  from?: 'end' | 'start';
  intervalMs?: number;
  /** Largest single read. */
  chunkBytes?: number;
  /** Most bytes one poll reads before it lets the next poll continue. */
  maxBytesPerPoll?: number;
  /** Lines longer than this are dropped (counted as unparseable). */
  maxLineBytes?: number;
  /** opened, missing, unreadable, rotated, truncated: for the runtime's JSON event log. */
  onEvent?: (event: Record<string, unknown>) => void;
}

export interface GatewayLogFollower {
  /** Reads what is new now (tests; the interval and fs.watch call it too). */
  poll(): Promise<void>;
  stop(): Promise<void>;
}

/** The label values: anything else is "other", so the series stay bounded whatever the log holds. */
export const GATEWAY_BACKENDS = ['selfhosted', 'hosted', 'nginx'] as const;

export function gatewayLabels(e: GatewayLogEntry): { backend: string; fallback: string; code: string } {
  const backend = (GATEWAY_BACKENDS as readonly string[]).includes(e.backend ?? '') ? e.backend! : 'other';
  const s = typeof e.status === 'number' ? e.status : Number(e.status);
  const code = Number.isInteger(s) && s >= 100 && s <= 599 ? `${Math.floor(s / 100)}xx` : 'other';
  return { backend, fallback: String(isFallback(e)), code };
}

class GatewayMetrics {
  readonly requests: Counter<'backend' | 'fallback' | 'code'>;
  readonly lines: Counter;
  readonly errors: Counter<'reason'>;
  readonly reopens: Counter<'reason'>;
  readonly last: Gauge;
  readonly up: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'embedctl_gateway_requests_total',
      help: "Requests the gateway answered (its access log), by X-Embedctl-Backend, whether hosted answered as a fallback, and status class",
      labelNames: ['backend', 'fallback', 'code'],
      registers,
    });
    this.lines = new Counter({ name: 'embedctl_gateway_log_lines_total', help: 'Lines read from the gateway access log', registers });
    this.errors = new Counter({
      name: 'embedctl_gateway_log_errors_total',
      help: 'Gateway access log problems: unparseable lines, the file missing or unreadable (once per episode)',
      labelNames: ['reason'],
      registers,
    });
    this.reopens = new Counter({
      name: 'embedctl_gateway_log_reopens_total',
      help: 'Times the gateway access log was read again from its start: rotated (new file) or truncated',
      labelNames: ['reason'],
      registers,
    });
    this.last = new Gauge({
      name: 'embedctl_gateway_log_last_seconds',
      help: 'Unix time of the newest gateway log line read (its msec), or of the file when first opened at its end; 0 before either',
      registers,
    });
    this.up = new Gauge({ name: 'embedctl_gateway_log_up', help: '1 while the gateway access log exists and is being followed', registers });
    for (const reason of ['unparseable', 'missing', 'unreadable']) this.errors.inc({ reason }, 0);
    for (const reason of ['rotated', 'truncated']) this.reopens.inc({ reason }, 0);
  }
}

const errorCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? '';

export function startGatewayLogFollower(o: GatewayLogOptions): GatewayLogFollower {
  const m = new GatewayMetrics(o.registry);
  const emit = o.onEvent ?? (() => undefined);
  const chunkBytes = o.chunkBytes ?? 256 * 1024;
  const maxBytesPerPoll = o.maxBytesPerPoll ?? 4 * 1024 * 1024;
  const maxLineBytes = o.maxLineBytes ?? 64 * 1024;

  let fh: FileHandle | undefined;
  let ino = -1;
  let dev = -1;
  let offset = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let dropping = false;
  let firstOpen = true;
  /** The last open failure reported, so one outage counts once. */
  let failing = '';
  let behind = false;
  /** Unix seconds of the newest line read (embedctl_gateway_log_last_seconds). */
  let newest = 0;
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;

  const line = (text: string) => {
    m.lines.inc();
    const e = parseGatewayLogLine(text);
    if (!e) {
      m.errors.inc({ reason: 'unparseable' });
      return;
    }
    m.requests.inc(gatewayLabels(e));
    if (typeof e.msec === 'number' && e.msec > newest) {
      newest = e.msec;
      m.last.set(newest);
    }
  };

  const consume = (buf: Buffer) => {
    let start = 0;
    for (let nl = buf.indexOf(0x0a); nl !== -1; nl = buf.indexOf(0x0a, start)) {
      const piece = buf.subarray(start, nl);
      start = nl + 1;
      if (dropping) {
        // The end of a line too long to keep: one line, unparseable.
        dropping = false;
        m.lines.inc();
        m.errors.inc({ reason: 'unparseable' });
        continue;
      }
      const whole = pendingBytes ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      pendingBytes = 0;
      if (whole.length > 0) line(whole.toString('utf8'));
    }
    if (start >= buf.length || dropping) return;
    // A line still being written: kept until its newline arrives.
    const rest = buf.subarray(start);
    if (pendingBytes + rest.length > maxLineBytes) {
      pending = [];
      pendingBytes = 0;
      dropping = true;
      return;
    }
    pending.push(rest);
    pendingBytes += rest.length;
  };

  /** A leftover partial line when a file is left for good (rotation): counted, not parsed. */
  const abandonPartial = () => {
    if (pendingBytes > 0 || dropping) {
      m.lines.inc();
      m.errors.inc({ reason: 'unparseable' });
    }
    pending = [];
    pendingBytes = 0;
    dropping = false;
  };

  const fail = (reason: 'missing' | 'unreadable', err: unknown) => {
    m.up.set(0);
    const key = `${reason}:${errorCode(err)}`;
    if (failing === key) return;
    failing = key;
    m.errors.inc({ reason });
    emit({ event: 'gateway_log_' + reason, path: o.path, error: (err as Error).message });
  };

  const close = async () => {
    const h = fh;
    fh = undefined;
    await h?.close().catch(() => undefined);
  };

  const openFile = async (): Promise<boolean> => {
    let h: FileHandle;
    try {
      h = await open(o.path, 'r');
    } catch (err) {
      // A file that appears later is new: read it from its start.
      firstOpen = false;
      fail(errorCode(err) === 'ENOENT' ? 'missing' : 'unreadable', err);
      return false;
    }
    const st = await h.stat();
    fh = h;
    const atEnd = firstOpen && (o.from ?? 'end') === 'end';
    // The same file again (after a read error): go on where we were, not recount it.
    const same = !firstOpen && st.ino === ino && st.dev === dev && st.size >= offset;
    if (!same) {
      offset = atEnd ? st.size : 0;
      pending = [];
      pendingBytes = 0;
      dropping = false;
    }
    ino = st.ino;
    dev = st.dev;
    if (atEnd && st.size > 0) newest = Math.max(newest, st.mtimeMs / 1000);
    m.last.set(newest);
    firstOpen = false;
    failing = '';
    m.up.set(1);
    emit({ event: 'gateway_log_opened', path: o.path, offset });
    return true;
  };

  /** Reads from `offset` towards the file's end, at most maxBytesPerPoll. */
  const readAvailable = async (h: FileHandle, size: number) => {
    let budget = maxBytesPerPoll;
    while (offset < size && budget > 0 && !stopped) {
      const n = Math.min(chunkBytes, size - offset, budget);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await h.read(buf, 0, n, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      budget -= bytesRead;
      consume(buf.subarray(0, bytesRead));
      // Parsing is synchronous: give requests a turn between chunks.
      await nextTurn();
    }
    behind = offset < size;
  };

  const step = async () => {
    if (!fh && !(await openFile())) return;
    const h = fh!;
    const st = await h.stat();
    if (st.size < offset) {
      offset = 0;
      pending = [];
      pendingBytes = 0;
      dropping = false;
      m.reopens.inc({ reason: 'truncated' });
      emit({ event: 'gateway_log_truncated', path: o.path });
    }
    await readAvailable(h, st.size);
    if (behind) return;
    let now;
    try {
      now = await stat(o.path);
    } catch (err) {
      // Renamed away or deleted: nginx may still be writing to the file we hold, so keep it.
      fail(errorCode(err) === 'ENOENT' ? 'missing' : 'unreadable', err);
      return;
    }
    if (failing) {
      failing = '';
      m.up.set(1);
    }
    if (now.ino === ino && now.dev === dev) return;
    // Rotated. Until the new file has data nginx may still append to the old one.
    if (now.size === 0) return;
    await readAvailable(h, (await h.stat()).size);
    if (behind) return;
    abandonPartial();
    await close();
    m.reopens.inc({ reason: 'rotated' });
    emit({ event: 'gateway_log_rotated', path: o.path });
    if (await openFile()) await readAvailable(fh!, (await fh!.stat()).size);
  };

  const poll = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await step();
        } catch (err) {
          // A read that failed (the file went away under us, an I/O error): reopen next time.
          fail('unreadable', err);
          await close();
        }
      } while ((again || behind) && !stopped);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(() => void poll(), o.intervalMs ?? 1000);
  timer.unref();
  let watcher: FSWatcher | undefined;
  // A busy gateway writes thousands of lines a second: one poll per 50 ms of events, not per line.
  let soon: NodeJS.Timeout | undefined;
  const pollSoon = () => {
    soon ??= setTimeout(() => {
      soon = undefined;
      void poll();
    }, 50);
  };
  try {
    // The directory, not the file: a watch on the file misses its replacement.
    watcher = watch(dirname(o.path), { persistent: false }, (_ev, name) => {
      if (name === null || name === basename(o.path)) pollSoon();
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    /* no directory yet, or no inotify: the interval alone will do */
  }
  void poll();

  return {
    poll,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      clearTimeout(soon);
      watcher?.close();
      await running;
      await close();
    },
  };
}
