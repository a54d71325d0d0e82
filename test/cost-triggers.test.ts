import { describe, expect, it } from 'vitest';
import { DEFAULT_UNIT_PRICES, evaluateOption, type SelfHostedSpec, type Workload } from '../src/core/cost/model.js';
import { evaluateTriggers, recommend, type TriggerInputs } from '../src/core/cost/triggers.js';

const base: TriggerInputs = { hostedMonthly: 10, peakEmbeddingsPerMinute: 100 };
const fired = (t: TriggerInputs) => Object.fromEntries(evaluateTriggers(t).map((x) => [x.id, x.fired]));

describe('migration triggers, at and just past each threshold', () => {
  it('indexed data > 20 GB', () => {
    expect(fired({ ...base, indexedDataBytes: 20e9 }).indexedDataGb).toBe(false);
    expect(fired({ ...base, indexedDataBytes: 20e9 + 1e3 }).indexedDataGb).toBe(true);
    expect(fired(base).indexedDataGb).toBeNull(); // corpus unknown: not evaluated, not "no"
  });
  it('> 100K queries/month', () => {
    expect(fired({ ...base, queriesPerMonth: 100_000 }).queriesPerMonth).toBe(false);
    expect(fired({ ...base, queriesPerMonth: 100_001 }).queriesPerMonth).toBe(true);
    expect(fired(base).queriesPerMonth).toBeNull();
  });
  it('> $150/month hosted spend', () => {
    expect(fired({ ...base, hostedMonthly: 150 }).hostedSpendPerMonth).toBe(false);
    expect(fired({ ...base, hostedMonthly: 150.01 }).hostedSpendPerMonth).toBe(true);
  });
  it('p95 > 500 ms', () => {
    expect(fired({ ...base, p95Ms: 500 }).p95Ms).toBe(false);
    expect(fired({ ...base, p95Ms: 501 }).p95Ms).toBe(true);
    expect(fired(base).p95Ms).toBeNull();
  });
  it('> 1,500 embeddings/min needed', () => {
    expect(fired({ ...base, peakEmbeddingsPerMinute: 1500 }).embeddingsPerMinute).toBe(false);
    expect(fired({ ...base, peakEmbeddingsPerMinute: 1500.5 }).embeddingsPerMinute).toBe(true);
  });
  it('reports value, threshold and unit', () => {
    const t = evaluateTriggers({ ...base, indexedDataBytes: 25e9 }).find((x) => x.id === 'indexedDataGb')!;
    expect(t).toMatchObject({ value: 25, threshold: 20, unit: 'GB', fired: true });
  });
});

describe('recommendation', () => {
  const spec: SelfHostedSpec = {
    hourly: { onDemand: 0.526, reserved: 0.331, spot: 0.21 },
    capacityPerInstance: 60_000,
    dimensions: 384,
    bytesPerValue: 20.8,
    egressShare: 0,
    requestBytesPerToken: 4,
    ebsGbPerInstance: 100,
    ebsIops: 3000,
    ebsThroughputMBps: 125,
    snapshotGb: 100,
    loadBalancer: false,
    alarms: 4,
    customMetrics: 3,
    maintenanceHoursPerMonth: 0,
    hourlyRate: 100,
    units: DEFAULT_UNIT_PRICES,
  };
  const w = (tokens: number): Workload => ({ tokensPerMonth: tokens, embeddingsPerMonth: tokens / 256, initialIndexTokens: 0, tokensPerText: 256, peakFactor: 3 });
  const run = (tokens: number, price: number, triggers: TriggerInputs, engineeringHours = 0) => {
    const h = { pricePerMillion: price, dimensions: 1024 };
    const opts = (['onDemand', 'reserved', 'spot'] as const).map((o) => evaluateOption(w(tokens), spec, h, { engineeringHours, hourlyRate: 100 }, o, 12));
    return recommend({ monthly: (tokens / 1e6) * price, pricePerMillion: price, tokensPerMonth: tokens }, opts, evaluateTriggers(triggers), 12);
  };

  it('stay hosted: small volume, nothing fires', () => {
    // 100M tokens at $0.02 = $2/month; spot self-hosted = 153.30 + 8 + 5 + 1.30 = $167.60
    const r = run(1e8, 0.02, base);
    expect(r.decision).toBe('stay-hosted');
    expect(r.reason).toMatch(/no migration trigger fires/);
    expect(r.reason).toMatch(/\$167\.60/);
  });

  it('stay hosted, noting a volume trigger far from break-even', () => {
    // queries fire, but break-even (spot, 167.60 / 2e-8 = 8.38B) is 83.8x the 100M volume
    const r = run(1e8, 0.02, { ...base, queriesPerMonth: 1e6 });
    expect(r.decision).toBe('stay-hosted');
    expect(r.reason).toMatch(/only volume triggers fire \(> 100K queries\/month\)/);
    expect(r.reason).toMatch(/8\.38B tokens\/month \(84x your volume\)/);
  });

  it('hybrid: a latency need fires although self-hosting costs more', () => {
    const r = run(1e8, 0.02, { ...base, p95Ms: 800 });
    expect(r.decision).toBe('hybrid');
    expect(r.reason).toMatch(/p95 latency > 500 ms/);
  });

  it('hybrid: a volume trigger fires within 10x of break-even', () => {
    // 1B tokens at $0.02 = $20; break-even 8.38B is 8.4x away
    const r = run(1e9, 0.02, { ...base, queriesPerMonth: 1e6 });
    expect(r.decision).toBe('hybrid');
  });

  it('migrate: saves money and the set-up pays back within the horizon', () => {
    // 20B tokens at $0.13 = $2,600/month; reserved 241.63 + 14.30 = $255.93 (1 instance: peak 5,351/min)
    const r = run(2e10, 0.13, { ...base, hostedMonthly: 2600 }, 40);
    expect(r.decision).toBe('migrate');
    expect(r.option).toBe('spot');
    // spot: 153.30 + 14.30 = 167.60; savings 2,432.40; set-up $4,000 -> 1.6 months
    expect(r.reason).toMatch(/saving \$2,432\.40\/month/);
    expect(r.reason).toMatch(/pays back in 1\.6 months/);
  });

  it('not migrate when the set-up does not pay back within the horizon', () => {
    // 10B at $0.02 = $200/month vs spot $167.60: saves $32.40; 200 h x $100 = $20,000 -> 617 months
    const r = run(1e10, 0.02, { ...base, hostedMonthly: 200 }, 200);
    expect(r.decision).toBe('hybrid'); // the $150 spend trigger fires and it already saves money
    expect(r.reason).toMatch(/does not pay back within 12 months/);
    const quiet = run(1e10, 0.02, { hostedMonthly: 100, peakEmbeddingsPerMinute: 1 }, 200);
    expect(quiet.decision).toBe('stay-hosted');
  });
});
