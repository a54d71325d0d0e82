import type { LoadTestReport } from '../core/loadtest.js';
import { fmtNum, table, type Logger } from '../ui/output.js';

/** The load-test report as a terminal table (--json prints the document itself). */
export function renderReport(r: LoadTestReport, log: Logger): string {
  const c = log.c;
  const pass = (ok: boolean) => (ok ? c.green('pass') : c.red('FAIL'));
  const pct = (x: number) => `${fmtNum(x * 100, 2)}%`;
  const byStatus = Object.entries(r.errors.byStatus)
    .map(([k, v]) => `${k} x${v}`)
    .join(', ');
  const lines = [
    `load-test (${r.engine}) ${r.target}`,
    ...(r.via ? [`target via ${r.via}; answered by ${r.answeredBy} (${Object.entries(r.backends ?? {}).map(([k, v]) => `${k} ${v}`).join(', ') || 'no answers'})`] : []),
    `stages ${r.stages.map((s) => `${s.duration}:${s.target}`).join(',')}; ran ${fmtNum(r.durationMs / 1000, 1)} s${r.stoppedEarly ? ` (stopped early: ${r.stoppedEarly})` : ''}`,
    '',
    table(
      ['metric', 'value'],
      [
        ['requests', `${fmtNum(r.requests, 0)} (${fmtNum(r.requestsPerSecond, 1)}/s)`],
        ['embeddings/min', fmtNum(r.embeddingsPerMinute, 0)],
        ['capacity at the SLO (cost-report --capacity-from)', r.capacity.embeddingsPerMinute === null ? `none: ${r.capacity.basis}` : `${fmtNum(r.capacity.embeddingsPerMinute, 0)} embeddings/min${r.capacity.tokensPerMinute === null ? '' : ` = ${fmtNum(r.capacity.tokensPerMinute, 0)} tokens/min`} (${r.capacity.basis})`],
        ...(r.texts ? [['texts sent', `${fmtNum(r.texts.count, 0)} from ${r.texts.source}, ~${fmtNum(r.texts.tokensPerText, 1)} tokens each (estimate)`]] : []),
        ['latency p50 / p90 / p95 / p99 / max', `${r.latencyMs.p50} / ${r.latencyMs.p90} / ${r.latencyMs.p95} / ${r.latencyMs.p99} / ${r.latencyMs.max} ms`],
        ['error rate', `${pct(r.errorRate)}${byStatus ? ` (${byStatus})` : ''}`],
        ['checks', `${fmtNum(r.checks.passed, 0)} passed, ${fmtNum(r.checks.failed, 0)} failed`],
      ],
      ['left', 'left'],
    ).trimEnd(),
    '',
    table(
      ['gate', 'expression', 'actual', 'result'],
      r.thresholds.map((t) => [t.name, t.expression, t.name === 'http_req_duration' ? `${fmtNum(t.actual, 2)} ms` : fmtNum(t.actual, 4), pass(t.pass)]),
      ['left', 'left', 'right', 'left'],
    ).trimEnd(),
    '',
    table(
      ['migration criterion', 'target', 'actual', 'result'],
      r.verdict.criteria.map((k) => [
        k.name,
        k.expression,
        k.name === 'errorRate' ? pct(k.actual) : k.name === 'p95LatencyMs' ? `${k.actual} ms` : fmtNum(k.actual, 0),
        pass(k.pass),
      ]),
      ['left', 'left', 'right', 'left'],
    ).trimEnd(),
    '',
    `verdict: ${r.verdict.summary}`,
  ];
  return lines.join('\n') + '\n';
}
