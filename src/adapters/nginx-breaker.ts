import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { parseGatewayLogLine } from '../../common/gateway-log.js';
import { parseDuration } from '../../common/values.js';
import { deployFile } from '../contracts/deploy.js';
import { join } from 'node:path';
import { NGINX_DEFAULTS } from '../core/nginx-conf.js';

/**
 * Each self-hosted replica's circuit breaker, derived from what nginx writes: its error log says
 * "upstream server temporarily disabled" when a replica reaches max_fails (the breaker opens for
 * fail_timeout), and the JSON access log records every attempt (upstream_addr/upstream_status,
 * one entry per replica tried). open: disabled less than fail_timeout ago; half-open: the window
 * has passed and the next live request re-probes it; closed: never disabled, or it answered
 * successfully after it was last disabled.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface ReplicaBreaker {
  /** host:port as nginx's upstream block names it. */
  replica: string;
  state: BreakerState;
  /** When nginx last took it out of rotation (second resolution, from the error log). */
  openedAt?: string;
  /** When it re-enters rotation for a probe (openedAt + fail_timeout). */
  probeAt?: string;
  lastSuccessAt?: string;
  /** Failed attempts (error, timeout, 5xx, 429) in the access log's last fail_timeout. */
  recentFailures: number;
}

/** The last `bytes` of a file (logs grow; the breaker only needs the recent past). */
export function tail(path: string, bytes = 4 * 1024 * 1024): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const text = buf.toString('utf8');
    return start > 0 ? text.slice(text.indexOf('\n') + 1) : text;
  } finally {
    closeSync(fd);
  }
}

/** nginx's error-log time ("2026/11/29 10:14:20", local time) in epoch ms. */
function errorLogTime(line: string): number | undefined {
  const m = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) /.exec(line);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s).getTime();
}

/** nginx's fail_timeout in the one duration grammar; an unreadable one is nginx's default, 10s. */
export function parseDurationMs(v: string): number {
  try {
    return parseDuration(v);
  } catch {
    return 10_000;
  }
}

const failed = (status: string) => status === '' || status === '-' || status === '502' || status === '504' || status === '429' || /^5\d\d$/.test(status);

export interface BreakerInput {
  replicas: string[];
  accessLog: string;
  errorLog: string;
  failTimeoutMs: number;
  now: number;
}

export function breakerStates(o: BreakerInput): ReplicaBreaker[] {
  const opened = new Map<string, number>();
  for (const line of o.errorLog.split('\n')) {
    if (!line.includes('upstream server temporarily disabled')) continue;
    const t = errorLogTime(line);
    const addr = /upstream: "https?:\/\/([^/"]+)/.exec(line)?.[1];
    if (t !== undefined && addr) opened.set(addr, Math.max(opened.get(addr) ?? 0, t));
  }
  const lastOk = new Map<string, number>();
  const recent = new Map<string, number>();
  for (const line of o.accessLog.split('\n')) {
    const e = parseGatewayLogLine(line);
    if (!e || typeof e.msec !== 'number' || !e.upstream_addr) continue;
    const at = e.msec * 1000;
    // "a, b : c" lists each attempt in order; " : " separates internal redirects.
    const addrs = e.upstream_addr.split(/, | : /);
    const statuses = (e.upstream_status ?? '').split(/, | : /);
    addrs.forEach((addr, i) => {
      const status = (statuses[i] ?? '').trim();
      if (!failed(status)) lastOk.set(addr, Math.max(lastOk.get(addr) ?? 0, at));
      else if (o.now - at <= o.failTimeoutMs) recent.set(addr, (recent.get(addr) ?? 0) + 1);
    });
  }
  const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
  return o.replicas.map((replica) => {
    const openedAt = opened.get(replica);
    const okAt = lastOk.get(replica);
    // The error log has second resolution: a success within that second may predate the opening.
    const recovered = openedAt === undefined || (okAt !== undefined && okAt >= openedAt + 1000);
    // It opened somewhere within that second: the latest possible moment bounds the re-probe.
    const probeAt = openedAt === undefined ? undefined : openedAt + 999 + o.failTimeoutMs;
    const state: BreakerState = recovered ? 'closed' : o.now < probeAt! ? 'open' : 'half-open';
    return {
      replica,
      state,
      ...(openedAt !== undefined ? { openedAt: iso(openedAt), probeAt: iso(probeAt) } : {}),
      ...(okAt !== undefined ? { lastSuccessAt: iso(okAt) } : {}),
      recentFailures: recent.get(replica) ?? 0,
    };
  });
}

/**
 * The breakers of the local stack `up --local` started in `cwd` (its nginx prefix holds both
 * logs); undefined when there is none. For `status`.
 */
export function localBreakers(cwd: string, now = Date.now()): ReplicaBreaker[] | undefined {
  const dir = join(cwd, '.embedctl');
  let local: { nginx?: { prefix?: string }; runtimes?: Array<{ port?: number }> };
  try {
    local = JSON.parse(readFileSync(join(dir, 'local.json'), 'utf8')) as typeof local;
  } catch {
    return undefined;
  }
  const prefix = local.nginx?.prefix;
  const replicas = (local.runtimes ?? []).flatMap((r) => (typeof r.port === 'number' ? [`127.0.0.1:${r.port}`] : []));
  if (!prefix || replicas.length === 0) return undefined;
  let failTimeout = NGINX_DEFAULTS.failTimeout;
  try {
    const t = deployFile.readSync(join(dir, 'deploy.json'))?.nginx?.options.failTimeout;
    if (typeof t === 'string') failTimeout = t;
  } catch {
    /* defaults */
  }
  return breakerStates({
    replicas,
    accessLog: tail(join(prefix, 'access.log')),
    errorLog: tail(join(prefix, 'error.log'), 1024 * 1024),
    failTimeoutMs: parseDurationMs(failTimeout),
    now,
  });
}

/** One line per replica for `status` (nothing when no breaker could be derived). */
export function breakerLines(breakers: ReplicaBreaker[] | undefined): string[] {
  if (!breakers?.length) return [];
  return breakers.map((b) => {
    const detail =
      b.state === 'open'
        ? `open since ${b.openedAt}, re-probe at ${b.probeAt}`
        : b.state === 'half-open'
          ? `half-open: the next request re-probes it (opened ${b.openedAt})`
          : 'closed';
    return `breaker ${b.replica}: ${detail}${b.recentFailures ? ` (${b.recentFailures} failed attempts recently)` : ''}`;
  });
}
