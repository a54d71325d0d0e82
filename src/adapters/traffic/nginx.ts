import { promises as fsp } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, basename } from 'node:path';
import { configIdOf, listenOf, renderNginxConf, type NginxConfOptions } from '../../core/render.js';
import { ExternalError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { routesToSelfHosted } from '../../client/route.js';
import { reloadNginx, testNginxConfig } from '../nginx.js';
import type { ApplyResult, TrafficDriver } from './types.js';

export interface NginxDriverOptions {
  confPath: string;
  prefix: string;
  /** The render options of the running gateway; the driver changes only selfHostedPercent. */
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

/**
 * Re-renders the gateway's split, proves it with `nginx -t` before it replaces the live file,
 * reloads (graceful: in-flight requests finish on the old workers), then samples requests and
 * reads X-Embedctl-Backend to confirm the share nginx actually applies.
 */
export function nginxDriver(o: NginxDriverOptions): TrafficDriver {
  return {
    name: 'nginx',
    target: `nginx ${o.confPath} (prefix ${o.prefix})`,
    describe: (percent) => `render ${o.confPath} with ${percent}% self-hosted, nginx -t, nginx -s reload (prefix ${o.prefix}), sample ${o.samples ?? 200} requests`,
    async apply(percent, signal): Promise<ApplyResult> {
      let text: string;
      try {
        text = renderNginxConf({ ...o.conf, selfHostedPercent: percent });
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
      const previous = await fsp.readFile(o.confPath, 'utf8').catch(() => undefined);
      await writeFileAtomic(o.confPath, text);
      try {
        await reloadNginx({ confPath: o.confPath, prefix: o.prefix, env: o.env });
      } catch (err) {
        // The file on disk must keep describing what nginx serves, or its next restart would
        // silently apply a share the rollout state never recorded.
        if (previous !== undefined) await writeFileAtomic(o.confPath, previous);
        throw err;
      }
      if ((o.samples ?? 200) <= 0) return { confirmed: null, observedPercent: null, detail: `${o.confPath} reloaded; not sampled (--samples 0)` };
      const listen = listenOf(text);
      const url = o.url ?? (listen ? `http://${listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}` : undefined);
      if (!url) return { confirmed: null, observedPercent: null, detail: `${o.confPath} reloaded; no URL to sample (--nginx-url)` };
      return confirmShare(url, percent, { samples: o.samples, tolerance: o.tolerance, model: o.model, splitKey: o.conf.splitKey, signal, configId: configIdOf(text) });
    },
  };
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
