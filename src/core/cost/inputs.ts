/**
 * Parsing of the numbers people type for workloads ("2e9", "1_000_000", "10M", "2B", "10%") and of
 * a saved load-test report. Pure: callers hand in raw values and get numbers or an Error whose
 * message says what was expected (config.ts turns it into a UsageError naming the field).
 */

const SUFFIX: Record<string, number> = { k: 1e3, m: 1e6, b: 1e9, g: 1e9, t: 1e12 };

export function parseQuantity(opts: { min?: number; integer?: boolean; percent?: boolean } = {}) {
  return (raw: unknown): number => {
    let n: number;
    if (typeof raw === 'number') n = raw;
    else if (typeof raw === 'string' && raw.trim() !== '') {
      const s = raw.trim().replace(/[_,]/g, '');
      const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([kmbgt%]?)$/i.exec(s);
      if (!m) n = NaN;
      else {
        const suffix = m[2]!.toLowerCase();
        if (suffix === '%' && !opts.percent) throw new Error(`a percentage is not allowed here, got ${JSON.stringify(raw)}`);
        n = Number(m[1]) * (suffix === '%' ? 0.01 : suffix ? SUFFIX[suffix]! : 1);
      }
    } else n = NaN;
    if (!Number.isFinite(n)) {
      throw new Error(`expected a number (e.g. 2e9, 1_000_000, 10M, 2B${opts.percent ? ', 10%' : ''}), got ${JSON.stringify(raw)}`);
    }
    if (opts.min !== undefined && n < opts.min) throw new Error(`must be >= ${opts.min}, got ${n}`);
    if (opts.integer && !Number.isInteger(n)) throw new Error(`expected a whole number, got ${n}`);
    return n;
  };
}

export interface LoadReportCapacity {
  embeddingsPerMinute: number;
  /** How it was read, for the assumption list. */
  basis: string;
  p95Ms?: number;
  target?: string;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function dig(doc: Record<string, unknown>, paths: string[]): { value: number; path: string } | undefined {
  for (const p of paths) {
    let cur: unknown = doc;
    for (const k of p.split('.')) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
    const v = num(cur);
    if (v !== undefined) return { value: v, path: p };
  }
  return undefined;
}

/**
 * Capacity from a `embedctl.load-test/v1` report: its measured embeddings/min, or requests/s x
 * batch size when only those were recorded, and its p95.
 */
export function capacityFromLoadReport(doc: unknown): LoadReportCapacity {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a JSON object');
  const d = doc as Record<string, unknown>;
  if (d.schema !== 'embedctl.load-test/v1') {
    throw new Error(`expected a load-test report with "schema": "embedctl.load-test/v1", got ${JSON.stringify(d.schema ?? null)}`);
  }
  const p95 = dig(d, ['latency.p95', 'latencyMs.p95', 'latency.p95Ms', 'p95Ms', 'p95']);
  const target = typeof d.target === 'string' ? d.target : undefined;
  // Sustained at the SLO (load-test's capacity) first: raw throughput past the knee is bought with queueing.
  const atSlo = dig(d, ['capacity.embeddingsPerMinute']);
  const capBasis = typeof (d.capacity as { basis?: unknown } | undefined)?.basis === 'string' ? (d.capacity as { basis: string }).basis : undefined;
  if (atSlo && atSlo.value > 0) return { embeddingsPerMinute: atSlo.value, basis: `measured capacity at the SLO, ${capBasis ?? 'capacity.embeddingsPerMinute'}`, p95Ms: p95?.value, target };
  const epm = dig(d, ['embeddingsPerMinute', 'throughput.embeddingsPerMinute', 'summary.embeddingsPerMinute']);
  if (epm && epm.value > 0) {
    return { embeddingsPerMinute: epm.value, basis: `measured ${epm.path}${capBasis ? ` (raw throughput: ${capBasis})` : ''}`, p95Ms: p95?.value, target };
  }
  const rps = dig(d, ['requestsPerSecond', 'throughput.requestsPerSecond', 'rps']);
  const batch = dig(d, ['batch', 'config.batch', 'options.batch']);
  if (rps && rps.value > 0) {
    const b = batch?.value ?? 1;
    return {
      embeddingsPerMinute: rps.value * b * 60,
      basis: `${rps.path} x ${batch ? batch.path : 'batch 1 (not recorded)'} x 60`,
      p95Ms: p95?.value,
      target,
    };
  }
  throw new Error('the report has no embeddingsPerMinute (nor requestsPerSecond) above zero');
}
