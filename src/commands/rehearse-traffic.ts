import { createHybridClient, type HybridClient } from '../client/index.js';
import type { LocalRuntime } from '../adapters/local-stack.js';

/**
 * The rehearsal's user traffic: requests with distinct split keys sent through the nginx gateway
 * (or, without nginx, the hybrid client reading the env driver's file), counting who answered.
 */
export interface TrafficRoute {
  /** The nginx gateway's URL; undefined: route with the hybrid client. */
  gatewayUrl?: string;
  hostedUrl: string;
  hostedKey: string;
  selfHostedUrl: string;
  /** The env driver's traffic file the hybrid client reads its share from. */
  trafficEnv: string;
}

export interface SplitCount {
  selfhosted: number;
  hosted: number;
  errors: number;
}

function hybrid(route: TrafficRoute): HybridClient {
  return createHybridClient({
    selfHosted: { url: route.selfHostedUrl, model: 'default' },
    hosted: { url: route.hostedUrl, model: 'default-q', apiKey: route.hostedKey },
    percentFrom: { envFile: route.trafficEnv },
    // default-q is default quantised: one vector space (verify-consistency checks it), so a
    // self-hosted failure may be answered by hosted.
    sameModel: true,
    retries: 0,
    refreshMs: 0,
  });
}

/** One request under `key`: who answered, or an error. */
async function send(route: TrafficRoute, client: HybridClient | undefined, key: string, text: string, timeoutMs: number, onRetry?: () => void): Promise<'selfhosted' | 'hosted' | 'error'> {
  try {
    if (client) return (await client.embed([text], { key })).backend;
    const post = () =>
      fetch(`${route.gatewayUrl}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tenant-id': key },
        body: JSON.stringify({ input: text }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    // Like the OpenAI SDK, retry once when a reload closed the keep-alive connection under the
    // request (nginx never saw it); HTTP errors are never retried here.
    const res = await post().catch(() => {
      onRetry?.();
      return post();
    });
    await res.arrayBuffer();
    if (!res.ok) return 'error';
    return res.headers.get('x-embedctl-backend') === 'selfhosted' ? 'selfhosted' : 'hosted';
  } catch {
    return 'error';
  }
}

/**
 * `n` requests with distinct keys: the observed split. The keys are the same every time, so the
 * share they get is fixed for a given percent (within 2 points of it for 200 keys at every step
 * of the default plan): random keys made the observed share a sample, 3 standard deviations from
 * the plan about once in a few hundred stages, and a rehearsal stage failed on that alone.
 */
export const sampleKeys = (n: number): string[] => Array.from({ length: n }, (_, i) => `rehearsal-tenant-${i}`);

export async function sampleSplit(route: TrafficRoute, n: number): Promise<SplitCount> {
  const counts: SplitCount = { selfhosted: 0, hosted: 0, errors: 0 };
  const client = route.gatewayUrl ? undefined : hybrid(route);
  for (const key of sampleKeys(n)) {
    const who = await send(route, client, key, 'rehearsal sample', 10_000);
    counts[who === 'error' ? 'errors' : who]++;
  }
  return counts;
}

/** Steady traffic (97 keys, one request per 20 ms) until `stop` aborts: what users saw. */
export async function steadyTraffic(route: TrafficRoute, stop: AbortSignal): Promise<{ sent: number; failed: number; connectionRetries: number }> {
  const c = { sent: 0, failed: 0, connectionRetries: 0 };
  const client = route.gatewayUrl ? undefined : hybrid(route);
  while (!stop.aborted && c.sent < 5000) {
    c.sent++;
    if ((await send(route, client, `t${c.sent % 97}`, 'fault traffic', 5000, () => c.connectionRetries++)) === 'error') c.failed++;
    await new Promise((r) => setTimeout(r, 20));
  }
  return c;
}

/** Makes a runtime answer `status` to every request (0: heal it), through its /admin/fault. */
export async function setFault(rt: LocalRuntime, status: number): Promise<void> {
  const res = await fetch(`${rt.url}/admin/fault`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(status ? { status, rate: 1 } : { status: 0 }),
    signal: AbortSignal.timeout(5000),
  });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`fault injection refused by ${rt.url}: HTTP ${res.status}`);
}
