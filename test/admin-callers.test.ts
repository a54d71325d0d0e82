import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CallerUsage, MAX_CALLER_LABELS } from '../runtime/hooks/admin.js';

/**
 * Per-caller usage (runtime/hooks/admin.ts) under a flood of distinct callers (e.g. JWT subjects):
 * the Prometheus series and the /admin/stats map stay bounded, later callers fold into "other".
 */

async function callerLabels(reg: Registry, metric: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const m of (await reg.metrics()).matchAll(new RegExp(`^${metric}\\{caller="([^"]+)"[^}]*\\} (\\d+)`, 'gm'))) {
    found.set(m[1]!, (found.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return found;
}

describe('CallerUsage label cap', () => {
  it(`labels at most ${MAX_CALLER_LABELS} callers and folds the rest into "other", in /metrics and /admin/stats`, async () => {
    const reg = new Registry();
    const usage = new CallerUsage(reg);
    const extra = 500;
    for (let i = 0; i < MAX_CALLER_LABELS + extra; i++) usage.record(`jwt-sub-${i}`, 200, 10);

    const requests = await callerLabels(reg, 'embedctl_caller_requests_total');
    expect(requests.size).toBe(MAX_CALLER_LABELS + 1);
    expect(requests.get('jwt-sub-0')).toBe(1);
    expect(requests.get(`jwt-sub-${MAX_CALLER_LABELS - 1}`)).toBe(1);
    expect(requests.has(`jwt-sub-${MAX_CALLER_LABELS}`)).toBe(false);
    expect(requests.get('other')).toBe(extra);
    const tokens = await callerLabels(reg, 'embedctl_caller_tokens_total');
    expect(tokens.size).toBe(MAX_CALLER_LABELS + 1);
    expect(tokens.get('other')).toBe(extra * 10);

    const snap = usage.snapshot();
    expect(Object.keys(snap)).toHaveLength(MAX_CALLER_LABELS + 1);
    expect(snap.other).toMatchObject({ requests: extra, tokens: extra * 10, errors: 0 });

    // A caller that has its label keeps it; a new one (even rate limited) still folds into "other".
    usage.record('jwt-sub-7', 500, 3);
    usage.rateLimited('jwt-sub-9999', 'requests');
    usage.rateLimited('jwt-sub-3', 'tokens');
    const after = usage.snapshot();
    expect(Object.keys(after)).toHaveLength(MAX_CALLER_LABELS + 1);
    expect(after['jwt-sub-7']).toMatchObject({ requests: 2, errors: 1, tokens: 13 });
    expect(after['jwt-sub-3']).toMatchObject({ requests: 2, errors: 1, rateLimited: 1 });
    expect(after.other).toMatchObject({ requests: extra + 1, errors: 1, rateLimited: 1 });
    const limited = await callerLabels(reg, 'embedctl_caller_rate_limited_total');
    expect([...limited.keys()].sort()).toEqual(['jwt-sub-3', 'other']);
    expect((await callerLabels(reg, 'embedctl_caller_requests_total')).size).toBe(MAX_CALLER_LABELS + 1);
  });

  it('below the cap every caller keeps its own label', async () => {
    const reg = new Registry();
    const usage = new CallerUsage(reg);
    for (const c of ['alice', 'bob', 'alice']) usage.record(c, 200, 5);
    usage.rateLimited('bob', 'requests');
    expect(Object.fromEntries(await callerLabels(reg, 'embedctl_caller_requests_total'))).toEqual({ alice: 2, bob: 2 });
    expect(usage.snapshot().bob).toMatchObject({ requests: 2, errors: 1, rateLimited: 1, tokens: 5 });
  });
});
