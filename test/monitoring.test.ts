import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/**
 * The monitoring kit (templates/monitoring): alert rules checked and unit-tested by promtool, and
 * every metric the rules and the Grafana dashboard query exported by the real runtime.
 */
const DIR = join(import.meta.dirname, '..', 'templates', 'monitoring');
const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
/** Metrics other exporters provide: Prometheus itself (up) and NVIDIA's dcgm-exporter (GPU). */
const EXTERNAL = new Set(['up', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_GPU_UTIL']);

const rules = parseYaml(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };

/** Metric names in a PromQL expression: identifiers followed by { [ or ( that are not functions or keywords. */
function metricNames(expr: string): string[] {
  const cleaned = expr.replace(/"[^"]*"/g, '""').replace(/\{[^}]*\}/g, '{}');
  const words = [...cleaned.matchAll(/\b([A-Za-z_:][A-Za-z0-9_:]*)\b/g)].map((m) => m[1]!);
  const notMetrics = new Set(['sum', 'rate', 'by', 'le', 'histogram_quantile', 'max', 'avg', 'and', 'offset', 'h', 'm', 'gpu', 'status', 'reason', '__rate_interval']);
  return [...new Set(words.filter((w) => !notMetrics.has(w) && !/^\d/.test(w) && /[a-z]_|^up$|^DCGM/.test(w)))];
}

describe('monitoring kit', () => {
  it.skipIf(!existsSync(PROMTOOL))('promtool check rules and promtool test rules pass; every rule has a unit test', () => {
    expect(execFileSync(PROMTOOL, ['check', 'rules', join(DIR, 'alerts.yml')], { encoding: 'utf8' })).toMatch(/SUCCESS: 8 rules found/);
    expect(execFileSync(PROMTOOL, ['test', 'rules', join(DIR, 'alerts.test.yml')], { encoding: 'utf8', cwd: DIR })).toMatch(/SUCCESS/);
    const tested = new Set([...readFileSync(join(DIR, 'alerts.test.yml'), 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts.sort()).toEqual(['EmbedctlCacheHitRatioDrop', 'EmbedctlGatewayLogStale', 'EmbedctlGpuMemoryHigh', 'EmbedctlHighErrorRate', 'EmbedctlHighLatencyP95', 'EmbedctlQueueBacklog', 'EmbedctlRuntimeDown', 'EmbedctlThrottling']);
    for (const a of alerts) expect(tested.has(a), `${a} has no unit test`).toBe(true);
  });

  let rt: RuntimeHandle | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await rt?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every metric the rules and the dashboard query is one the runtime really exports', async () => {
    // A small gateway access log (the embedctl_json format) so the embedctl_gateway_* series exist.
    dir = mkdtempSync(join(tmpdir(), 'embedctl-monitoring-'));
    const line = (backend: string, fallback: string) => JSON.stringify({ msec: Date.now() / 1000, status: 200, split: 'selfhosted', backend, fallback });
    writeFileSync(join(dir, 'gateway.access.log'), `${line('selfhosted', '')}\n${line('hosted', 'yes')}\n`);
    rt = await startRuntime({ args: ['--cache-size', '1000', '--gateway-log', join(dir, 'gateway.access.log'), '--gateway-log-from', 'start'] });
    // One request so that labelled series exist too.
    const res = await fetch(`${rt.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: ['hello'], model: 'default' }) });
    expect(res.status).toBe(200);
    let text = '';
    for (let i = 0; i < 100 && !/^embedctl_gateway_log_lines_total 2$/m.test(text); i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      text = await (await fetch(`${rt.url}/metrics`)).text();
    }
    expect(text).toMatch(/^embedctl_gateway_requests_total\{backend="hosted",fallback="true",code="2xx"\} 1$/m);
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap((m) => (m[2] === 'histogram' ? [m[1]!, `${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])));
    expect(text).toMatch(/embedctl_requests_total\{route="\/v1\/embeddings",status="200"\} 1/);
    const used = [...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))].flatMap(metricNames);
    expect(used.length).toBeGreaterThan(10);
    const missing = [...new Set(used)].filter((m) => !EXTERNAL.has(m) && !exported.has(m));
    expect(missing).toEqual([]);
    // The gateway's split share and fallbacks (issue 18), read from its access log.
    const titles = dashboard.panels.map((p) => p.title);
    expect(titles).toContain('Split share (self-hosted %)');
    expect(titles).toContain('Fallbacks to hosted');
    const gatewayExprs = dashboard.panels.filter((p) => /Split share|Fallbacks/.test(p.title)).flatMap((p) => p.targets.map((t) => t.expr));
    expect(gatewayExprs.flatMap(metricNames)).toContain('embedctl_gateway_requests_total');
    // The HPA's Pods metric (templates/k8s/hpa.yaml) too.
    expect(exported.has('embedctl_requests_in_flight')).toBe(true);
  });
});
