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

/** The fields of an `embedctl.load-test/v1` report cost-report reads (src/contracts/reports.ts checks them). */
export interface LoadReportFields {
  target?: string;
  errorRate: number;
  latencyMs: { p95: number };
  verdict?: { gatesPass: boolean; failedThresholds?: string[] };
  texts?: { tokensPerText: number } | null;
  capacity?: { slo: { p95Ms: number | null; maxErrorRate: number | null }; embeddingsPerMinute: number | null; tokensPerMinute?: number | null; basis: string };
}

export interface LoadReportCapacity {
  /** Per instance, for the priced workload's texts: the measured tokens/min / its tokens per text. */
  embeddingsPerMinute: number;
  /** What the load test measured, on its own texts. */
  measured: { embeddingsPerMinute: number; tokensPerText: number; tokensPerMinute: number };
  /** How the capacity was measured (the report's capacity.basis). */
  basis: string;
  /** The arithmetic from the measured figure to the one used, for the report. */
  conversion: string;
  /** The load test's latency: the self-hosted p95 (never the hosted one), against its --p95 SLO. */
  selfHostedP95: { p95Ms: number; sloP95Ms: number | null; meetsSlo: boolean | null };
  /** Worth saying beside the figure; not reasons to refuse it. */
  warnings: string[];
  target?: string;
}

/** A report cost-report must not size a fleet from; `hint` is the fix. */
export class CapacityRefused extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });
/** Outside this ratio of text lengths, scaling by tokens is a rough guess: say so. */
const FAR_LENGTH_RATIO = 2;

/**
 * Capacity per instance from a load-test report: only its capacity at the SLO (the best step
 * that met --p95 and --max-error-rate), never its raw throughput, which past the knee is bought
 * with queueing and counts nothing useful when requests fail. The capacity is carried over to
 * the priced workload's texts by tokens: a load test on short sample texts does not rate a
 * machine for long document chunks.
 */
export function capacityFromLoadReport(r: LoadReportFields, tokensPerText: number): LoadReportCapacity {
  const rerun = 're-run `embedctl load-test --out <file>` with this embedctl';
  const cap = r.capacity;
  if (!cap) throw new CapacityRefused('the report has no capacity at the SLO (it predates it)', `${rerun}; it records the capacity at the SLO`);
  const epm = cap.embeddingsPerMinute;
  if (epm === null || !(epm > 0)) {
    const gates = r.verdict && !r.verdict.gatesPass ? `, gates FAILED (${(r.verdict.failedThresholds ?? []).join(', ') || 'see the report'})` : '';
    throw new CapacityRefused(
      `the load test measured no capacity at the SLO (${cap.basis}; error rate ${fmt(r.errorRate * 100, 2)} %${gates}); its raw throughput counts queued and failed requests, so it is not used`,
      'fix the errors the load test reports, then re-run `embedctl load-test --out <file>` at a load the endpoint sustains (fewer VUs in --stages, longer stages) or with a --p95 you accept',
    );
  }
  const measuredTpt = r.texts?.tokensPerText;
  if (measuredTpt === undefined) {
    throw new CapacityRefused(
      `the report does not record the tokens per text it sent, so its ${fmt(epm)} embeddings/min cannot be converted to ${fmt(tokensPerText)}-token texts (--tokens-per-text)`,
      `${rerun} (it records the texts' tokens), ideally with --texts holding texts like yours`,
    );
  }
  const tpm = cap.tokensPerMinute ?? Math.round(epm * measuredTpt);
  const converted = Math.round((tpm / tokensPerText) * 10) / 10;
  const p95 = r.latencyMs.p95;
  const slo = cap.slo.p95Ms;
  const warnings: string[] = [];
  if (r.verdict && !r.verdict.gatesPass) {
    warnings.push(`the load test failed its gates over the whole run (${(r.verdict.failedThresholds ?? []).join(', ') || 'see the report'}); the capacity is its best step that met the SLO, not the whole run`);
  }
  const ratio = tokensPerText / measuredTpt;
  if (ratio > FAR_LENGTH_RATIO || ratio < 1 / FAR_LENGTH_RATIO) {
    warnings.push(
      `capacity measured on ~${fmt(measuredTpt, 1)}-token texts is scaled by tokens to ${fmt(tokensPerText)}-token texts (x${fmt(1 / ratio, 3)}); throughput per token changes with length, so for a direct figure run load-test --texts with texts like yours`,
    );
  }
  return {
    embeddingsPerMinute: converted,
    measured: { embeddingsPerMinute: epm, tokensPerText: measuredTpt, tokensPerMinute: tpm },
    basis: cap.basis,
    conversion: `${fmt(epm)} embeddings/min of ~${fmt(measuredTpt, 1)}-token texts = ${fmt(tpm)} tokens/min; / ${fmt(tokensPerText)} tokens per text = ${fmt(converted, 1)} embeddings/min`,
    selfHostedP95: { p95Ms: p95, sloP95Ms: slo, meetsSlo: slo === null ? null : p95 < slo },
    warnings,
    target: r.target,
  };
}
