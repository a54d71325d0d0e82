import { promises as fsp } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, basename } from 'node:path';
import { configIdOf, listenOf, renderNginxConf, renderedPercentOf, splitDirOf, splitPercentProblem, workersRunAsRoot, type NginxConfOptions } from '../../core/render.js';
import { ExternalError, UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { routesToSelfHosted } from '../../client/route.js';
import { reloadNginx, testNginxConfig } from '../nginx.js';
import { readSplit, writeSplit } from './split-dir.js';
import type { ApplyResult, TrafficDriver } from './types.js';

export interface NginxDriverOptions {
  confPath: string;
  prefix: string;
  /**
   * The render options of the running gateway; the driver changes only the split. Their splitDir
   * (default: `split` beside the config) is where the live split is written.
   */
  conf: Omit<NginxConfOptions, 'selfHostedPercent'>;
  /** Where to send sample requests (default: the conf's listen address). */
  url?: string;
  /** Sample requests that confirm the new share; 0 skips confirmation. */
  samples?: number;
  /** Allowed gap, in percentage points, between the observed and the expected share. */
  tolerance?: number;
  model?: string;
  env?: Record<string, string | undefined>;
}

/** The split directory a local gateway uses unless its render options name one. */
export const localSplitDir = (o: Pick<NginxDriverOptions, 'confPath' | 'conf'>) => o.conf.splitDir ?? join(dirname(o.confPath), 'split');

/**
 * Moves the gateway's split without reloading nginx: writes a new generation of the split
 * directory the live config reads on every request (split-dir.ts), then samples requests and
 * reads X-Embedctl-Backend to confirm the share nginx actually applies. A reload would close
 * every idle keep-alive client connection (nginx does that on reload, no directive changes it).
 *
 * A config that does not read this split directory yet (rendered by an older embedctl, or
 * elsewhere) is re-rendered once the old way: proven with `nginx -t`, installed, reloaded
 * (graceful: in-flight requests finish on the old workers); every later move reloads nothing.
 */
export function nginxDriver(o: NginxDriverOptions): TrafficDriver {
  const splitDir = localSplitDir(o);
  return {
    name: 'nginx',
    target: `nginx ${o.confPath} (prefix ${o.prefix})`,
    describe: (percent) => `write the split (${percent}% self-hosted) to ${splitDir}, read by nginx on every request (no reload; a config that does not read it yet is re-rendered, tested and reloaded once), sample ${o.samples ?? 200} requests`,
    async apply(percent, signal): Promise<ApplyResult> {
      const problem = splitPercentProblem(percent);
      if (problem) throw new UsageError(`the self-hosted share ${problem}`, { field: 'percent', hint: 'use whole percents in rollout steps and targets' });
      let live = await fsp.readFile(o.confPath, 'utf8').catch(() => undefined);
      let applied: string;
      if (live !== undefined && splitDirOf(live) === splitDir) {
        const before = await readSplit(splitDir);
        const from = before.percent ?? renderedPercentOf(live);
        try {
          await writeSplit(splitDir, percent, before, { workersAsRoot: workersRunAsRoot(live) });
        } catch (err) {
          throw new ExternalError('nginx', `cannot write the split: ${(err as Error).message}`, { hint: `check that ${splitDir} is writable` });
        }
        applied = `${splitDir}: ${from ?? '?'}% -> ${percent}% self-hosted, no reload`;
      } else {
        live = await reRender(o, splitDir, percent, live);
        applied = `${o.confPath} re-rendered to read ${splitDir} (${percent}% self-hosted), tested and reloaded once; later moves reload nothing`;
      }
      if ((o.samples ?? 200) <= 0) return { confirmed: null, observedPercent: null, detail: `${applied}; not sampled (--samples 0)` };
      const listen = listenOf(live);
      const url = o.url ?? (listen ? `http://${listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}` : undefined);
      if (!url) return { confirmed: null, observedPercent: null, detail: `${applied}; no URL to sample (--nginx-url)` };
      const c = await confirmShare(url, percent, { samples: o.samples, tolerance: o.tolerance, model: o.model, splitKey: o.conf.splitKey, signal, configId: configIdOf(live) });
      return { ...c, detail: `${applied}; ${c.detail}` };
    },
  };
}

/** The one-time move to a config that reads `splitDir`: render, nginx -t, install, reload. */
async function reRender(o: NginxDriverOptions, splitDir: string, percent: number, previous: string | undefined): Promise<string> {
  let text: string;
  try {
    text = renderNginxConf({ ...o.conf, splitDir, selfHostedPercent: percent });
  } catch (err) {
    throw new ExternalError('nginx', `cannot render the split: ${(err as Error).message}`, { hint: 'check the nginx section of .embedctl/deploy.json or the --nginx-* flags' });
  }
  // The candidate sits beside the live file so relative includes resolve the same way; the
  // live file is replaced only after nginx accepted the candidate.
  const candidate = join(dirname(o.confPath), `.${basename(o.confPath)}.candidate`);
  await writeFileAtomic(candidate, text);
  try {
    await testNginxConfig(candidate, o.prefix, o.env);
  } finally {
    await fsp.rm(candidate, { force: true });
  }
  // The split directory first: the running config does not read it, the new one must find the
  // share it was rendered with there (not a leftover of an earlier stack).
  await writeSplit(splitDir, percent, undefined, { workersAsRoot: workersRunAsRoot(text) });
  await writeFileAtomic(o.confPath, text);
  try {
    await reloadNginx({ confPath: o.confPath, prefix: o.prefix, env: o.env });
  } catch (err) {
    // The file on disk must keep describing what nginx serves, or its next restart would
    // silently apply a share the rollout state never recorded.
    if (previous !== undefined) await writeFileAtomic(o.confPath, previous);
    throw err;
  }
  return text;
}

/**
 * Samples the gateway and compares the share of X-Embedctl-Backend: selfhosted with `percent`.
 * Keyed splits are deterministic, so the expected share of exactly the sampled keys is known.
 */
export async function confirmShare(
  url: string,
  percent: number,
  o: { samples?: number; tolerance?: number; model?: string; splitKey?: string; signal?: AbortSignal; configId?: string } = {},
): Promise<ApplyResult> {
  const samples = o.samples ?? 200;
  if (samples <= 0) return { confirmed: null, observedPercent: null, detail: 'not sampled (--samples 0)' };
  const keyed = (o.splitKey ?? 'auto') !== 'request';
  const s = await sampleSplit(url, samples, o.model, o.signal, 16, o.configId);
  const expected = keyed ? (100 * s.keys.filter((k) => routesToSelfHosted(k, percent)).length) / s.keys.length : percent;
  const tolerance = o.tolerance ?? 5;
  if (s.answered === 0) {
    const stale = s.stale ? `, ${s.stale} still answered by workers with the previous config` : '';
    return { confirmed: false, observedPercent: null, samples, detail: `no sample got an X-Embedctl-Backend header from ${url} (${s.failures} failed${stale})` };
  }
  const observed = (100 * s.selfhosted) / s.answered;
  const confirmed = Math.abs(observed - expected) <= tolerance;
  return {
    confirmed,
    observedPercent: round(observed),
    samples: s.answered,
    detail: `${s.answered} samples via ${url}: ${round(observed)}% self-hosted (expected ${round(expected)}% +-${tolerance})${s.fallbacks ? `, ${s.fallbacks} fell back to hosted` : ''}${s.failures ? `, ${s.failures} failed` : ''}${s.stale ? `, ${s.stale} still answered by workers with the previous config` : ''}`,
  };
}

const round = (n: number) => Math.round(n * 100) / 100;

interface SampleResult {
  keys: string[];
  answered: number;
  selfhosted: number;
  fallbacks: number;
  failures: number;
  /** Answers from workers still running the previous config (X-Embedctl-Config differs). */
  stale: number;
}

/** POSTs `n` tiny requests with distinct tenant keys and tallies which side the split chose. */
export async function sampleSplit(url: string, n: number, model = 'embedctl-probe', signal?: AbortSignal, concurrency = 16, configId?: string): Promise<SampleResult> {
  const keys = Array.from({ length: n }, (_, i) => `embedctl-probe-${i}`);
  const r: SampleResult = { keys, answered: 0, selfhosted: 0, fallbacks: 0, failures: 0, stale: 0 };
  let next = 0;
  const body = JSON.stringify({ input: ['embedctl rollout probe'], model });
  const worker = async () => {
    while (next < n) {
      if (signal?.aborted) return;
      const key = keys[next++]!;
      try {
        // One retry on a thrown network error: a keep-alive connection closed by the very reload
        // being confirmed is a client-side race of HTTP/1.1, not a failed answer (clients retry).
        const post = () => postOnce(`${url.replace(/\/+$/, '')}/v1/embeddings`, body, { 'x-tenant-id': key });
        let h = await post().catch(() => post());
        // Right after a reload, old workers may still take a new connection for a few ms: an
        // answer tagged with another config id says nothing about the split being confirmed.
        for (let tries = 0; configId && isStale(h, configId) && tries < 40 && !signal?.aborted; tries++) {
          await new Promise((res) => setTimeout(res, 25));
          h = await post().catch(() => post());
        }
        if (configId && isStale(h, configId)) {
          r.stale++;
          continue;
        }
        const backend = h['x-embedctl-backend'];
        if (backend !== 'selfhosted' && backend !== 'hosted') {
          r.failures++;
          continue;
        }
        r.answered++;
        // A fallback was a self-hosted pick by the split that failed over: the split is what we confirm.
        if (backend === 'selfhosted' || h['x-embedctl-fallback'] === 'yes') r.selfhosted++;
        if (h['x-embedctl-fallback'] === 'yes') r.fallbacks++;
      } catch {
        r.failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return r;
}

function isStale(h: Record<string, string | string[] | undefined>, configId: string): boolean {
  const seen = h['x-embedctl-config'];
  return typeof seen === 'string' && seen !== configId;
}

function postOnce(url: string, body: string, headers: Record<string, string>): Promise<Record<string, string | string[] | undefined>> {
  return new Promise((resolve, reject) => {
    // A fresh connection per sample (agent: false): an idle keep-alive socket from an earlier
    // sample may be closed by the very reload being confirmed, racing the next request on it.
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...headers }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}
