import { describe, expect, it } from 'vitest';
import { HOSTED_MODELS } from '../src/core/cost/prices.js';
import { estimateCost } from '../src/adapters/embeddings-shapes.js';
import {
  breakEvenTokens,
  DEFAULT_UNIT_PRICES,
  embeddingsAt,
  evaluateOption,
  hostedInitialIndexing,
  hostedMonthly,
  instancesNeeded,
  peakEmbeddingsPerMinute,
  selfHostedMonthly,
  selfHostedOneTime,
  volumeTable,
  type SelfHostedSpec,
  type Workload,
} from '../src/core/cost/model.js';
import { hostedModel, INSTANCES } from '../src/core/cost/prices.js';
import { capacityFromLoadReport, parseQuantity } from '../src/core/cost/inputs.js';

/** A self-hosted spec with every optional cost switched off, so each test turns on one path. */
function bare(over: Partial<SelfHostedSpec> = {}): SelfHostedSpec {
  return {
    hourly: { onDemand: 0.526, reserved: 0.331, spot: 0.21 },
    capacityPerInstance: 60_000,
    dimensions: 384,
    bytesPerValue: 20.8,
    egressShare: 1,
    requestBytesPerToken: 4,
    ebsGbPerInstance: 0,
    ebsIops: 3000,
    ebsThroughputMBps: 125,
    snapshotGb: 0,
    loadBalancer: false,
    alarms: 0,
    customMetrics: 0,
    maintenanceHoursPerMonth: 0,
    hourlyRate: 100,
    units: DEFAULT_UNIT_PRICES,
    ...over,
  };
}

function tokensWorkload(tokensPerMonth: number, over: Partial<Workload> = {}): Workload {
  return {
    tokensPerMonth,
    embeddingsPerMonth: tokensPerMonth / 256,
    initialIndexTokens: 0,
    tokensPerText: 256,
    peakFactor: 3,
    ...over,
  };
}

/** The migration guide's example: 1M queries x 10 tokens + 10 % of a 100M-token corpus re-embedded monthly. */
const guide: Workload = {
  // 1e6 * 10 + 1e8 * 0.1 = 1e7 + 1e7 = 2e7 tokens/month
  tokensPerMonth: 2e7,
  // 1e6 queries + 1e7 / 256 chunks = 1,039,062.5 texts
  embeddingsPerMonth: 1e6 + 1e7 / 256,
  queriesPerMonth: 1e6,
  corpusTokens: 1e8,
  initialIndexTokens: 1e8,
  tokensPerText: 256,
  peakFactor: 3,
};

describe('hosted cost', () => {
  it('prices the guide workload at Jina and OpenAI list prices', () => {
    const jina = hostedModel('jina', 'jina-embeddings-v3')!;
    const small = hostedModel('openai', 'text-embedding-3-small')!;
    const large = hostedModel('openai', 'text-embedding-3-large')!;
    const ada = hostedModel('openai', 'text-embedding-ada-002')!;
    // 2e7 / 1e6 = 20 million tokens
    expect(hostedMonthly(jina, guide.tokensPerMonth)).toBeCloseTo(20 * 0.02, 10); // $0.40
    expect(hostedMonthly(small, guide.tokensPerMonth)).toBeCloseTo(20 * 0.02, 10); // $0.40
    expect(hostedMonthly(large, guide.tokensPerMonth)).toBeCloseTo(20 * 0.13, 10); // $2.60
    expect(hostedMonthly(ada, guide.tokensPerMonth)).toBeCloseTo(20 * 0.1, 10); // $2.00
    // the one-time index of 100M tokens: 100 x $0.13 = $13 on text-embedding-3-large
    expect(hostedInitialIndexing(guide, large)).toBeCloseTo(13, 10);
  });

  it('finds jina v2 by its short name', () => {
    expect(hostedModel('jina', 'jina-embeddings-v2')?.model).toBe('jina-embeddings-v2-base-en');
    expect(hostedModel('openai', 'nope')).toBeUndefined();
  });
});

describe('self-hosted monthly cost, one path at a time', () => {
  const w = tokensWorkload(2.56e9); // 1e7 embeddings/month
  it('compute: hourly x 730 x instances', () => {
    const c = selfHostedMonthly(w, bare(), 'onDemand', w.tokensPerMonth);
    // avg 1e7 / 43,800 = 228.3/min, peak x3 = 684.9/min -> 1 instance; 0.526 x 730 = 383.98
    expect(c.instances).toBe(1);
    expect(c.compute).toBeCloseTo(383.98, 6);
    // 1e7 x 384 x 20.8 bytes = 79.87 GB, inside the 100 GB free tier
    expect(c.egress).toBe(0);
    expect(c.total).toBeCloseTo(383.98, 6);
    expect(selfHostedMonthly(w, bare(), 'reserved', w.tokensPerMonth).compute).toBeCloseTo(0.331 * 730, 6); // 241.63
    expect(selfHostedMonthly(w, bare(), 'spot', w.tokensPerMonth).compute).toBeCloseTo(0.21 * 730, 6); // 153.30
  });

  it('EBS gp3 with IOPS and throughput above the baseline, per instance; snapshots once', () => {
    const s = bare({ ebsGbPerInstance: 100, ebsIops: 4000, ebsThroughputMBps: 250, snapshotGb: 100, fixedInstances: 2 });
    const c = selfHostedMonthly(w, s, 'onDemand', w.tokensPerMonth);
    // per volume: 100 x 0.08 = 8, + (4000-3000) x 0.005 = 5, + (250-125) x 0.04 = 5 -> 18; x 2 instances = 36
    expect(c.ebs).toBeCloseTo(36, 10);
    // snapshots: 100 GB x 0.05 = 5 (one golden volume, not per instance)
    expect(c.snapshots).toBeCloseTo(5, 10);
    expect(c.compute).toBeCloseTo(2 * 383.98, 6);
  });

  it('egress: response bytes from dimensions and encoding, after the free 100 GB', () => {
    const w8 = tokensWorkload(2.56e10); // 1e8 embeddings
    // float JSON: 1e8 x 384 x 20.8 = 798.72 GB; (798.72 - 100) x 0.09 = 62.8848
    expect(selfHostedMonthly(w8, bare(), 'onDemand', w8.tokensPerMonth).egress).toBeCloseTo(62.8848, 6);
    // base64: 1e8 x 384 x 16/3 = 204.8 GB; (204.8 - 100) x 0.09 = 9.432
    expect(selfHostedMonthly(w8, bare({ bytesPerValue: 16 / 3 }), 'onDemand', w8.tokensPerMonth).egress).toBeCloseTo(9.432, 6);
    // callers in the same region: nothing leaves AWS
    expect(selfHostedMonthly(w8, bare({ egressShare: 0 }), 'onDemand', w8.tokensPerMonth).egress).toBe(0);
    // half leaves: 399.36 - 100 = 299.36 x 0.09 = 26.9424
    expect(selfHostedMonthly(w8, bare({ egressShare: 0.5 }), 'onDemand', w8.tokensPerMonth).egress).toBeCloseTo(26.9424, 6);
  });

  it('load balancer: hours plus LCUs from the larger of processed bytes and new connections', () => {
    const w8 = tokensWorkload(2.56e10); // 1e8 embeddings
    const c = selfHostedMonthly(w8, bare({ loadBalancer: true }), 'onDemand', w8.tokensPerMonth);
    // hours: 730 x 0.0225 = 16.425
    // bytes: (798.72 GB out + 2.56e10 x 4 B = 102.4 GB in) / 730 h = 1.23441 GB/h -> 1.23441 LCU
    // connections: 1e8 / (730 x 3600 s) = 38.05/s / 25 = 1.52207 LCU  <- larger
    // 730 x 1.52207 x 0.008 = 8.88889
    const lcu = 1e8 / (730 * 3600) / 25;
    expect(c.loadBalancer).toBeCloseTo(16.425 + 730 * lcu * 0.008, 6);
    expect(c.loadBalancer).toBeCloseTo(25.3139, 3);
    expect(selfHostedMonthly(w8, bare(), 'onDemand', w8.tokensPerMonth).loadBalancer).toBe(0);
  });

  it('monitoring and engineering upkeep', () => {
    const c = selfHostedMonthly(w, bare({ alarms: 4, customMetrics: 3, maintenanceHoursPerMonth: 4, hourlyRate: 120 }), 'onDemand', w.tokensPerMonth);
    expect(c.monitoring).toBeCloseTo(4 * 0.1 + 3 * 0.3, 10); // 1.30
    expect(c.maintenance).toBe(480); // 4 h x $120
    expect(c.total).toBeCloseTo(383.98 + 1.3 + 480, 6);
  });

  it('instances: enough for the peak minute, from the capacity per instance', () => {
    const s = bare();
    // 1e9 embeddings: avg 1e9 / 43,800 = 22,831/min; peak x3 = 68,493 > 60,000 -> 2
    expect(peakEmbeddingsPerMinute(1e9, 3)).toBeCloseTo((1e9 / 43_800) * 3, 6);
    expect(instancesNeeded(s, peakEmbeddingsPerMinute(1e9, 3))).toBe(2);
    // 2e9: peak 136,986 -> 3
    expect(instancesNeeded(s, peakEmbeddingsPerMinute(2e9, 3))).toBe(3);
    // exactly one instance's worth -> still 1; tiny -> at least 1
    expect(instancesNeeded(s, 60_000)).toBe(1);
    expect(instancesNeeded(s, 60_001)).toBe(2);
    expect(instancesNeeded(s, 0)).toBe(1);
    expect(instancesNeeded(bare({ fixedInstances: 5 }), 1e9)).toBe(5);
  });

  it('scales embeddings with the workload mix (short queries give more texts per token)', () => {
    // guide mix: 1,039,062.5 texts per 2e7 tokens
    expect(embeddingsAt(guide, 2e9)).toBeCloseTo(1_039_062.5 * 100, 3);
    expect(embeddingsAt(tokensWorkload(1e6), 256e6)).toBeCloseTo(1e6, 6);
  });
});

describe('one-time cost, payback and horizon', () => {
  it('engineering set-up plus indexing the corpus once; payback from the monthly savings', () => {
    const s = bare({ capacityPerInstance: 60_000 });
    const w = tokensWorkload(2e10, { corpusTokens: 1e8, initialIndexTokens: 1e8 });
    const one = selfHostedOneTime(w, s, { engineeringHours: 40, hourlyRate: 100 }, 'onDemand');
    // 1e8 / 256 = 390,625 texts / 60,000 per min = 6.5104 min = 0.108507 instance-hours x 0.526 = $0.057075
    expect(one.indexingInstanceHours).toBeCloseTo(390_625 / 60_000 / 60, 9);
    expect(one.indexing).toBeCloseTo((390_625 / 60_000 / 60) * 0.526, 9);
    expect(one.engineering).toBe(4000);
    const h = { pricePerMillion: 0.13, dimensions: 3072 };
    const r = evaluateOption(w, s, h, { engineeringHours: 40, hourlyRate: 100 }, 'onDemand', 12);
    // hosted: 2e4 M tokens x 0.13 = $2,600. self: 2e10/256 = 7.8125e7 texts -> avg 1,783.7/min, peak 5,351 -> 1 instance
    // egress: 7.8125e7 x 384 x 20.8 = 624 GB -> 524 x 0.09 = 47.16; compute 383.98 -> 431.14
    expect(r.monthly.total).toBeCloseTo(383.98 + 47.16, 6);
    expect(r.savingsPerMonth).toBeCloseTo(2600 - 431.14, 6);
    expect(r.paybackMonths).toBeCloseTo((4000 + one.indexing) / (2600 - 431.14), 9);
    // 12 months: hosted 31,200; self 4000.057 + 12 x 431.14 = 9,173.74
    expect(r.horizon.hosted).toBeCloseTo(31_200, 6);
    expect(r.horizon.selfHosted).toBeCloseTo(4000 + one.indexing + 12 * 431.14, 6);
    expect(r.horizon.savings).toBeCloseTo(r.horizon.hosted - r.horizon.selfHosted, 9);
  });

  it('no payback when self-hosting saves nothing', () => {
    const r = evaluateOption(guide, bare(), { pricePerMillion: 0.02, dimensions: 1024 }, { engineeringHours: 10, hourlyRate: 100 }, 'spot', 12);
    expect(r.savingsPerMonth).toBeLessThan(0);
    expect(r.paybackMonths).toBeNull();
  });
});

describe('break-even tokens/month', () => {
  it('fixed cost over hosted price when one instance carries it', () => {
    // egress off so self-hosted is flat: on-demand 383.98 / ($0.02 per 1M) = 19.199B tokens
    const s = bare({ egressShare: 0, capacityPerInstance: 1e12 });
    const h = { pricePerMillion: 0.02, dimensions: 1024 };
    const w = tokensWorkload(1e9);
    expect(breakEvenTokens(w, s, h, 'onDemand')!).toBeCloseTo((383.98 / 0.02) * 1e6, -1);
    expect(breakEvenTokens(w, s, h, 'reserved')!).toBeCloseTo((241.63 / 0.02) * 1e6, -1);
    expect(breakEvenTokens(w, s, h, 'spot')!).toBeCloseTo((153.3 / 0.02) * 1e6, -1);
  });

  it('with egress past the free tier: solves the second linear piece', () => {
    // spot, 256 tokens/text: egress per token = 384 x 20.8 / 256 = 31.2 bytes = 3.12e-8 GB x 0.09 = $2.808e-9
    // free tier ends at 100 GB / 3.12e-8 = 3.205e9 tokens. Beyond: 153.3 + (3.12e-8 V - 100) x 0.09 = 2e-8 V
    // -> 153.3 - 9 = (2e-8 - 2.808e-9) V -> V = 144.3 / 1.7192e-8 = 8.3934e9
    const s = bare({ capacityPerInstance: 1e12 });
    const v = breakEvenTokens(tokensWorkload(1e9), s, { pricePerMillion: 0.02, dimensions: 1024 }, 'spot')!;
    expect(v).toBeCloseTo(144.3 / (2e-8 - 2.808e-9), -2);
    // and it is where the two costs meet
    expect(selfHostedMonthly(tokensWorkload(1e9), s, 'spot', v).total).toBeCloseTo(hostedMonthly({ pricePerMillion: 0.02, dimensions: 1024 }, v), 6);
  });

  it('honours instance-count steps: the first volume where hosted covers that volume\'s fleet', () => {
    // $1/h instances (730/month), fixed $200 snapshots, 1,000 texts/min each, 1 token per text, no peak:
    // n(V) = ceil(V / 43.8M). Hosted $20 per 1M tokens.
    // one instance: (200 + 730) / 2e-5 = 46.5M > 43.8M, so not reachable with 1 instance;
    // two instances on (43.8M, 87.6M]: (200 + 1460) / 2e-5 = 83.0M  -> break-even 83.0M
    const s = bare({ hourly: { onDemand: 1, reserved: 1, spot: 1 }, capacityPerInstance: 1000, egressShare: 0, snapshotGb: 4000 });
    const w: Workload = { tokensPerMonth: 1e6, embeddingsPerMonth: 1e6, initialIndexTokens: 0, tokensPerText: 1, peakFactor: 1 };
    const h = { pricePerMillion: 20, dimensions: 1024 };
    const v = breakEvenTokens(w, s, h, 'onDemand')!;
    expect(v).toBeCloseTo(83e6, -1);
    // a naive fixed-cost break-even would say 46.5M, where hosted ($930) is below the 2-instance cost ($1,660)
    expect(hostedMonthly(h, 46.5e6)).toBeLessThan(selfHostedMonthly(w, s, 'onDemand', 46.5e6).total);
    expect(selfHostedMonthly(w, s, 'onDemand', 46.5e6).instances).toBe(2);
    // just below the answer hosted is still cheaper
    expect(hostedMonthly(h, v * 0.999)).toBeLessThan(selfHostedMonthly(w, s, 'onDemand', v * 0.999).total);
  });

  it('never, when each step of instances costs more than the hosted tokens it serves', () => {
    // per instance: 43.8M tokens x $10/1M = $438 of hosted spend < $730 of instance
    const s = bare({ hourly: { onDemand: 1, reserved: 1, spot: null }, capacityPerInstance: 1000, egressShare: 0 });
    const w: Workload = { tokensPerMonth: 1e6, embeddingsPerMonth: 1e6, initialIndexTokens: 0, tokensPerText: 1, peakFactor: 1 };
    expect(breakEvenTokens(w, s, { pricePerMillion: 10, dimensions: 1 }, 'onDemand', 1e12)).toBeNull();
    // an option with no price never breaks even
    expect(breakEvenTokens(w, s, { pricePerMillion: 10, dimensions: 1 }, 'spot')).toBeNull();
    // marginal cost per 1M tokens far out: $730 per 43.8M = $16.67 per 1M
    const r = evaluateOption(w, s, { pricePerMillion: 10, dimensions: 1 }, { engineeringHours: 0, hourlyRate: 0 }, 'onDemand', 12);
    expect(r.marginalPerMillion).toBeCloseTo(730 / 43.8, 3);
  });

  it('a fixed fleet (--instances) has no steps', () => {
    const s = bare({ egressShare: 0, fixedInstances: 3 });
    // 3 x 383.98 = 1151.94 / 2e-8 = 57.597B
    expect(breakEvenTokens(tokensWorkload(1e9), s, { pricePerMillion: 0.02, dimensions: 1 }, 'onDemand')!).toBeCloseTo(1151.94 / 2e-8, -2);
  });
});

describe('volume table', () => {
  it('1M..10B plus your volume, sorted and flagged, with instance counts', () => {
    const rows = volumeTable(tokensWorkload(3e9), bare(), { pricePerMillion: 0.02, dimensions: 1024 }, ['onDemand', 'spot']);
    expect(rows.map((r) => r.tokensPerMonth)).toEqual([1e6, 1e7, 1e8, 1e9, 3e9, 1e10]);
    expect(rows.filter((r) => r.isYours).map((r) => r.tokensPerMonth)).toEqual([3e9]);
    expect(rows[0]!.hosted).toBeCloseTo(0.02, 10);
    expect(Object.keys(rows[0]!.selfHosted)).toEqual(['onDemand', 'spot']);
    // 1e10 / 256 = 3.906e7 texts -> peak 2,675/min -> 1 instance at 60,000/min
    expect(rows.at(-1)!.instances).toBe(1);
    // your volume on a standard one is not listed twice
    expect(volumeTable(tokensWorkload(1e9), bare(), { pricePerMillion: 0.02, dimensions: 1 }, ['onDemand'])).toHaveLength(5);
  });
});

describe('price table', () => {
  it('has every instance the issue names, with all three prices and a dated source', () => {
    for (const t of ['g4dn.xlarge', 'g4dn.2xlarge', 'g5.xlarge', 'g6.xlarge', 'inf2.xlarge', 'c6i.2xlarge']) {
      const p = INSTANCES[t]!;
      expect(p, t).toBeDefined();
      expect(p.reserved).toBeLessThan(p.onDemand);
      expect(p.spot).toBeLessThan(p.reserved);
      expect(p.ratedEmbeddingsPerMinute).toBeGreaterThan(0);
      expect(p.source).toMatch(/2026-11/);
    }
  });
});

describe('input parsing', () => {
  const q = parseQuantity({ min: 0, percent: true });
  it('reads the ways people write big numbers', () => {
    expect(q('2e9')).toBe(2e9);
    expect(q('1_000_000')).toBe(1e6);
    expect(q('1,000,000')).toBe(1e6);
    expect(q('10M')).toBe(1e7);
    expect(q('2B')).toBe(2e9);
    expect(q('1.5k')).toBe(1500);
    expect(q('10%')).toBeCloseTo(0.1, 12);
    expect(q(42)).toBe(42);
  });
  it('rejects what is not a number, negatives and misplaced percentages', () => {
    expect(() => q('abc')).toThrow(/expected a number/);
    expect(() => q('10X')).toThrow(/expected a number/);
    expect(() => q('')).toThrow(/expected a number/);
    expect(() => q('-5')).toThrow(/must be >= 0/);
    expect(() => parseQuantity()('10%')).toThrow(/percentage is not allowed/);
    expect(() => parseQuantity({ integer: true })('1.5')).toThrow(/whole number/);
  });
  it('reads only the capacity at the SLO from a load-test report, converted by tokens to the priced texts', () => {
    const slo = { p95Ms: 500, maxErrorRate: 0.05 };
    const ok = { errorRate: 0, latencyMs: { p95: 80 }, verdict: { gatesPass: true }, texts: { tokensPerText: 64 }, capacity: { slo, embeddingsPerMinute: 12_000, tokensPerMinute: 768_000, basis: 'best step' } };
    // 768,000 tokens/min / 256 tokens per text = 3,000 embeddings/min
    expect(capacityFromLoadReport(ok, 256)).toMatchObject({
      embeddingsPerMinute: 3000,
      measured: { embeddingsPerMinute: 12_000, tokensPerText: 64, tokensPerMinute: 768_000 },
      selfHostedP95: { p95Ms: 80, sloP95Ms: 500, meetsSlo: true },
    });
    expect(capacityFromLoadReport(ok, 64).embeddingsPerMinute).toBe(12_000);
    expect(capacityFromLoadReport(ok, 256).warnings).toEqual([expect.stringMatching(/scaled by tokens/)]);
    // No capacity at the SLO: refused, whatever the raw throughput.
    expect(() => capacityFromLoadReport({ ...ok, errorRate: 1, verdict: { gatesPass: false, failedThresholds: ['http_req_failed rate<0.05'] }, capacity: { ...ok.capacity, embeddingsPerMinute: null } }, 256)).toThrow(
      /no capacity at the SLO \(best step; error rate 100 %, gates FAILED \(http_req_failed rate<0\.05\)\)/,
    );
    expect(() => capacityFromLoadReport({ ...ok, capacity: undefined }, 256)).toThrow(/no capacity at the SLO/);
    expect(() => capacityFromLoadReport({ ...ok, texts: null }, 256)).toThrow(/does not record the tokens per text/);
  });
});

describe('one price table', () => {
  it("the cost guard of verify-consistency/rag-overlap prices a hosted model as cost-report does", () => {
    for (const m of HOSTED_MODELS) {
      const est = estimateCost({ endpoint: 'https://api.example/v1/embeddings', model: m.model, paid: true }, ['x'.repeat(4000)]);
      expect(est!.pricePerMillion, m.model).toBe(m.pricePerMillion);
    }
    expect(hostedModel('jina', 'jina-embeddings-v3')!.pricePerMillion).toBe(0.02);
  });
});
