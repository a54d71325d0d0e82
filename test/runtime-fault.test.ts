// Fault injection is what the rehearsal's rollback drill stands on: off by default, loopback-only,
// and when on, the chosen share of embedding requests fails with the chosen status (and counts
// as such in /metrics, which is where `rollout --watch` sees it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

async function embed(url: string) {
  const res = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":"a fault drill"}' });
  return { status: res.status, body: (await res.json()) as { error?: { code: string } } };
}

async function fault(url: string, body: unknown) {
  const res = await fetch(`${url}/admin/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('runtime fault injection', () => {
  let on: RuntimeHandle;
  let off: RuntimeHandle;
  beforeAll(async () => {
    [on, off] = await Promise.all([startRuntime({ env: { EMBEDCTL_FAULT_INJECTION: '1' } }), startRuntime({})]);
  });
  afterAll(async () => {
    await Promise.all([on?.stop(), off?.stop()]);
  });

  it('is not there unless enabled', async () => {
    expect((await fault(off.url, { status: 500 })).status).toBe(404);
    expect((await embed(off.url)).status).toBe(200);
  });

  it('fails every request with the injected status, counts it in /metrics, and clears', async () => {
    expect((await embed(on.url)).status).toBe(200);
    expect((await fault(on.url, { status: 500, rate: 1 })).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      const r = await embed(on.url);
      expect(r.status).toBe(500);
      expect(r.body.error?.code).toBe('injected_fault');
    }
    const metrics = await (await fetch(`${on.url}/metrics`)).text();
    expect(metrics).toMatch(/embedctl_requests_total\{route="\/v1\/embeddings",status="500"\} 5/);
    expect((await fault(on.url, { status: 0 })).status).toBe(200);
    expect((await embed(on.url)).status).toBe(200);
  });

  it('refuses bad settings', async () => {
    expect((await fault(on.url, { status: 200 })).status).toBe(400);
    expect((await fault(on.url, { status: 503, rate: 2 })).status).toBe(400);
    expect((await embed(on.url)).status).toBe(200);
  });
});
