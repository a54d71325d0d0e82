import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { probeTcp, runAutocannon } from '../adapters/autocannon.js';
import { findK6, K6_EXIT, runK6 } from '../adapters/k6.js';
import { parseFlag, parsers, resolveOption } from '../config.js';
import type { Context } from '../context.js';
import {
  autocannonPhases,
  bodyMaker,
  buildReport,
  buildThresholds,
  checkResponse,
  embeddingsUrl,
  formatDuration,
  formatStages,
  isLoopback,
  MAX_TOTAL_MS,
  maxTarget,
  measurementFromK6,
  parseStages,
  parseTexts,
  PROFILES,
  renderK6Script,
  scaleStages,
  totalDurationMs,
  type Engine,
  type LoadTestReport,
  type Measurement,
  type Profile,
  type Shape,
  type Stage,
  type ThresholdSpec,
} from '../core/loadtest.js';
import { ExternalError, GateFailed, Interrupted, UsageError } from '../errors.js';
import { fmtNum, type Logger, printJson, table, withSchema } from '../ui/output.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { dataDir, templatesDir } from '../util/paths.js';
import { action, examples, type ExitHolder } from './shared.js';
import { loadTestReport } from '../contracts/reports.js';

interface Opts {
  target?: string;
  profile?: string;
  stages?: string;
  engine?: string;
  texts?: string;
  shape?: string;
  model?: string;
  batch?: string;
  dimensions?: string;
  p95?: string;
  maxErrorRate?: string;
  durationScale?: string;
  maxRequests?: string;
  timeout?: string;
  header: string[];
  allowRemote?: boolean;
  out?: string;
  saveScript?: string;
  dryRun?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('load-test')
    .description('Load-test an embeddings endpoint (k6 when on PATH, else autocannon) and judge it against the gates and the migration criteria')
    .option('--target <url>', 'endpoint to load (a bare origin means <origin>/v1/embeddings); loopback only unless --allow-remote [env EMBEDCTL_LOAD_TEST_TARGET]')
    .option('--profile <name>', 'smoke (30s, 2 VUs), seed (2m->10, 5m->50, 5m at 50, 2m->0), soak (30m at 20)', 'smoke')
    .option('--stages <list>', 'custom stages "duration:VUs,...", e.g. "2m:10,5m:50,5m:50,2m:0" (overrides --profile)')
    .option('--engine <name>', 'auto | k6 | autocannon (auto: k6 when on PATH) [env EMBEDCTL_LOAD_TEST_ENGINE]')
    .option('--texts <file>', 'texts to embed: one per line, JSONL ({"text": ...}) or a JSON array (default: bundled samples)')
    .option('--shape <shape>', 'request shape: openai | jina', 'openai')
    .option('--model <name>', 'model name sent in each request (omitted when not given)')
    .option('--batch <n>', 'texts per request', '8')
    .option('--dimensions <n>', 'request this many dimensions and check every embedding has them')
    .option('--p95 <ms>', 'gate: p95 latency must stay below this [env EMBEDCTL_LOAD_TEST_P95, embedctl.yaml loadTest.p95Ms] (default 500)')
    .option('--max-error-rate <r>', 'gate: failed requests must stay below this fraction [env EMBEDCTL_LOAD_TEST_MAX_ERROR_RATE, embedctl.yaml loadTest.maxErrorRate] (default 0.05)')
    .option('--duration-scale <f>', 'multiply every stage duration by this (min 1 s per stage), e.g. 0.01 for a quick run', '1')
    .option('--max-requests <n>', 'stop after this many requests whatever the stages say', '1000000')
    .option('--timeout <s>', 'per-request timeout in seconds', '30')
    .option('--header <header>', 'extra request header "Name: value" (repeatable); EMBEDCTL_API_KEY adds a Bearer token', collect, [])
    .option('--allow-remote', 'allow a non-loopback target (your own deployment only)')
    .option('--out <file>', 'also write the JSON report here (atomically); cost-report and rollout read it')
    .option('--save-script <file>', 'write the rendered k6 script here (for `k6 run` by hand)')
    .option('--dry-run', 'print the plan (stages, phases, thresholds) and send nothing');
  examples(cmd, [
    'embedctl load-test --target http://127.0.0.1:8080 --profile smoke',
    'embedctl load-test --target http://127.0.0.1:8080 --profile seed --duration-scale 0.05 --out .embedctl/reports/load-test.json',
    'embedctl load-test --target http://127.0.0.1:8080 --stages "10s:4,20s:16,10s:0" --engine autocannon --json',
    'embedctl load-test --target https://embed.internal.example.com --allow-remote --profile seed --shape jina --header "Authorization: Bearer $KEY"',
    'embedctl load-test --target http://127.0.0.1:8080 --profile seed --save-script load-test.js --dry-run',
  ]);
  cmd.action(action<Opts>(ctx, holder, async ({ opts, globals, log }) => run(ctx, opts, globals.json, log)));
}

interface Plan {
  url: URL;
  engine: Engine;
  k6Binary?: string;
  profile?: Profile;
  stages: Stage[];
  thresholds: ThresholdSpec[];
  shape: Shape;
  model?: string;
  batch: number;
  dimensions?: number;
  maxRequests: number;
  timeoutS: number;
  headers: Record<string, string>;
  texts: string[];
  textsSource: string;
}

function buildPlan(ctx: Context, opts: Opts, log: Logger): Plan {
  const target = resolveOption(ctx, { flag: '--target', flagValue: opts.target, env: 'EMBEDCTL_LOAD_TEST_TARGET', file: 'loadTest.target', default: '', parse: parsers.string() }).value;
  if (!target) throw new UsageError('required: the endpoint to load, e.g. --target http://127.0.0.1:8080', { field: '--target' });
  const url = parseFlag('--target', target, (raw) => embeddingsUrl(String(raw)));
  if (!isLoopback(url)) {
    if (!opts.allowRemote) {
      throw new UsageError(`${url.host} is not a loopback address; load tests only go to your own machine by default`, {
        field: '--target',
        hint: 'if this is your own deployment, add --allow-remote',
      });
    }
    log.warn(`load-testing ${url.origin} (not loopback; --allow-remote): only load systems you own or may test`);
  }

  let profile: Profile | undefined;
  let stages: Stage[];
  if (opts.stages !== undefined) {
    stages = parseFlag('--stages', opts.stages, (raw) => parseStages(String(raw)));
  } else {
    profile = parseFlag('--profile', opts.profile, parsers.oneOf(Object.keys(PROFILES) as Profile[]));
    stages = parseStages(PROFILES[profile]);
  }
  const scale = parseFlag('--duration-scale', opts.durationScale, parsers.number({ min: 0.0001, max: 100 }));
  stages = scaleStages(stages, scale);
  if (maxTarget(stages) === 0) throw new UsageError('every stage targets 0 VUs, so nothing would be sent', { field: '--stages' });
  if (totalDurationMs(stages) > MAX_TOTAL_MS) {
    throw new UsageError(`the stages last ${formatDuration(totalDurationMs(stages))}, over the ${formatDuration(MAX_TOTAL_MS)} limit`, {
      field: opts.stages !== undefined ? '--stages' : '--duration-scale',
      hint: 'shorten the stages or lower --duration-scale',
    });
  }

  const p95 = resolveOption(ctx, { flag: '--p95', flagValue: opts.p95, env: 'EMBEDCTL_LOAD_TEST_P95', file: 'loadTest.p95Ms', default: 500, parse: parsers.number({ min: 1 }) }).value;
  const maxErrorRate = resolveOption(ctx, {
    flag: '--max-error-rate',
    flagValue: opts.maxErrorRate,
    env: 'EMBEDCTL_LOAD_TEST_MAX_ERROR_RATE',
    file: 'loadTest.maxErrorRate',
    default: 0.05,
    parse: parsers.number({ min: 0, max: 1 }),
  }).value;
  const shape = parseFlag('--shape', opts.shape, parsers.oneOf(['openai', 'jina'] as const));
  const batch = parseFlag('--batch', opts.batch, parsers.number({ min: 1, max: 2048, integer: true }));
  const dimensions = opts.dimensions === undefined ? undefined : parseFlag('--dimensions', opts.dimensions, parsers.number({ min: 1, max: 65536, integer: true }));
  const maxRequests = parseFlag('--max-requests', opts.maxRequests, parsers.number({ min: 1, integer: true }));
  const timeoutS = parseFlag('--timeout', opts.timeout, parsers.number({ min: 0.1, max: 600 }));

  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  const apiKey = ctx.env.EMBEDCTL_API_KEY;
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  for (const h of opts.header) {
    const m = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+):\s*(.*)$/.exec(h);
    if (!m) throw new UsageError(`${JSON.stringify(h)} is not "Name: value"`, { field: '--header' });
    headers[m[1]!] = m[2]!;
  }

  const engineChoice = resolveOption(ctx, {
    flag: '--engine',
    flagValue: opts.engine,
    env: 'EMBEDCTL_LOAD_TEST_ENGINE',
    file: 'loadTest.engine',
    default: 'auto',
    parse: parsers.oneOf(['auto', 'k6', 'autocannon'] as const),
  }).value;
  const k6Binary = engineChoice === 'autocannon' ? undefined : findK6(ctx.env);
  if (engineChoice === 'k6' && !k6Binary) {
    throw new UsageError('k6 is not on PATH', { field: '--engine', hint: 'install k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/) or use --engine autocannon' });
  }
  const engine: Engine = k6Binary ? 'k6' : 'autocannon';
  if (engineChoice === 'auto' && engine === 'autocannon') log.info('k6 not on PATH: using autocannon (k6 stages approximated with connection steps)');

  const { texts, source } = loadTexts(ctx, opts.texts);
  return {
    url,
    engine,
    k6Binary,
    profile,
    stages,
    thresholds: buildThresholds(p95, maxErrorRate),
    shape,
    model: opts.model,
    batch,
    dimensions,
    maxRequests,
    timeoutS,
    headers,
    texts,
    textsSource: source,
  };
}

function loadTexts(ctx: Context, file: string | undefined): { texts: string[]; source: string } {
  const candidates = file !== undefined ? [resolve(ctx.cwd, file)] : [join(dataDir(), 'sample-texts.jsonl'), join(dataDir(), 'load-texts.txt')];
  for (const path of candidates) {
    if (file === undefined && !existsSync(path)) continue;
    let content: string;
    try {
      content = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: '--texts' });
    }
    let texts: string[];
    try {
      texts = parseTexts(content, path);
    } catch (err) {
      throw new UsageError(`${path}: ${(err as Error).message}`, { field: '--texts' });
    }
    if (texts.length === 0) {
      if (file !== undefined) throw new UsageError(`${path} has no texts`, { field: '--texts', hint: 'one text per line, or JSONL with a "text" field' });
      continue;
    }
    return { texts, source: path };
  }
  throw new UsageError('no bundled sample texts found', { field: '--texts', hint: 'pass --texts <file> with one text per line' });
}

/** Headers that carry credentials: kept out of a script saved with --save-script. */
const SECRET_HEADERS = /^(authorization|proxy-authorization|x-api-key|api-key|cookie)$/i;

function k6Config(plan: Plan, summaryPath: string, forSaving = false) {
  const headers = forSaving ? Object.fromEntries(Object.entries(plan.headers).filter(([k]) => !SECRET_HEADERS.test(k))) : plan.headers;
  return {
    url: plan.url.href,
    shape: plan.shape,
    model: plan.model ?? null,
    dimensions: plan.dimensions ?? null,
    batch: plan.batch,
    headers,
    timeout: `${Math.round(plan.timeoutS * 1000)}ms`,
    texts: plan.texts,
    summaryPath,
    maxRequests: plan.maxRequests,
  };
}

async function run(ctx: Context, opts: Opts, json: boolean, log: Logger): Promise<number> {
  const plan = buildPlan(ctx, opts, log);
  const template = plan.engine === 'k6' || opts.saveScript ? readFileSync(join(templatesDir(), 'k6', 'load-test.js'), 'utf8') : '';
  if (opts.saveScript) {
    const path = resolve(ctx.cwd, opts.saveScript);
    // A script saved for later writes its summary next to where it is run.
    await writeFileAtomic(path, renderK6Script(template, plan.stages, plan.thresholds, k6Config(plan, 'load-test-summary.json', true)));
    const dropped = Object.keys(plan.headers).filter((k) => SECRET_HEADERS.test(k));
    log.info(`k6 script written to ${path}${dropped.length ? ` (without ${dropped.join(', ')}: run it with k6 run -e EMBEDCTL_API_KEY=... ${opts.saveScript})` : ''}`);
  }
  const phases = autocannonPhases(plan.stages);
  const describe = `${plan.engine} -> ${plan.url.href}, stages ${formatStages(plan.stages)} (${formatDuration(totalDurationMs(plan.stages))}), batch ${plan.batch}, ${plan.shape} shape, at most ${fmtNum(plan.maxRequests)} requests`;

  if (opts.dryRun) {
    const doc = {
      dryRun: true,
      engine: plan.engine,
      target: plan.url.href,
      profile: plan.profile ?? null,
      stages: plan.stages.map((s) => ({ duration: formatDuration(s.durationMs), durationMs: s.durationMs, target: s.target })),
      phases: plan.engine === 'autocannon' ? phases : null,
      thresholds: plan.thresholds,
      batch: plan.batch,
      shape: plan.shape,
      maxRequests: plan.maxRequests,
      texts: { source: plan.textsSource, count: plan.texts.length },
    };
    if (json) printJson(ctx, 'load-test', doc);
    else {
      ctx.stdout.write(`dry run: would load ${describe}\n`);
      ctx.stdout.write(`texts: ${plan.texts.length} from ${plan.textsSource}\n`);
      ctx.stdout.write(`thresholds: ${plan.thresholds.map((t) => `${t.name} ${t.expression}`).join(', ')}\n`);
      if (plan.engine === 'autocannon') {
        ctx.stdout.write(table(['stage', 'connections', 'duration'], phases.map((p) => [p.stage + 1, p.connections, formatDuration(p.durationMs)])));
      }
    }
    return 0;
  }

  try {
    await probeTcp(plan.url);
  } catch (err) {
    throw new ExternalError('target', `cannot connect to ${plan.url.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      cause: err,
      hint: 'is the endpoint running? (embedctl serve starts a local one)',
    });
  }

  log.info(`load-test: ${describe}`);
  const measurement = plan.engine === 'k6' ? await runWithK6(ctx, plan, template, log) : await runWithAutocannon(ctx, plan, phases, log);
  const report = buildReport(
    {
      generatedAt: ctx.now(),
      engine: plan.engine,
      target: plan.url.href,
      shape: plan.shape,
      batch: plan.batch,
      dimensions: plan.dimensions,
      profile: plan.profile,
      stages: plan.stages,
      thresholds: plan.thresholds,
      maxRequests: plan.maxRequests,
    },
    measurement.m,
  );
  if (opts.out) {
    const path = resolve(ctx.cwd, opts.out);
    await loadTestReport.write(path, withSchema('load-test', report));
    log.info(`report written to ${path}`);
  }
  if (json) printJson(ctx, 'load-test', report as unknown as Record<string, unknown>);
  else ctx.stdout.write(renderReport(report, log));

  if (report.checks.failed > 0 && report.verdict.gatesPass) log.warn(`${report.checks.failed} response checks failed (see checks)`);
  if (report.stoppedEarly === 'interrupted') {
    throw new Interrupted(`load-test interrupted; the report covers the ${report.requests} requests made before the stop`);
  }
  if (report.stoppedEarly === 'max-requests') log.info(`stopped at --max-requests ${plan.maxRequests}`);
  if (!report.verdict.gatesPass || measurement.engineSaysFailed) {
    const failed = report.thresholds.filter((t) => !t.pass).map((t) => `${t.name} ${t.expression} (actual ${fmtNum(t.actual, 4)})`);
    throw new GateFailed(`thresholds crossed: ${failed.length ? failed.join(', ') : 'k6 reported crossed thresholds'}`, {
      report,
      hint: 'the table above shows what was measured; raise capacity or fix the errors, then run again',
    });
  }
  return 0;
}

async function runWithAutocannon(ctx: Context, plan: Plan, phases: ReturnType<typeof autocannonPhases>, log: Logger) {
  const expectedDims: { value?: number } = { value: plan.dimensions };
  let lastPhase = 0;
  let lastLog = 0;
  const m = await runAutocannon({
    url: plan.url.href,
    headers: plan.headers,
    phases,
    makeBody: bodyMaker(plan, plan.texts),
    check: (status, body) => checkResponse(status, body, plan.batch, expectedDims),
    maxRequests: plan.maxRequests,
    timeoutS: plan.timeoutS,
    signal: ctx.signal,
    autocannonImpl: ctx.adapters.autocannon,
    onProgress: (p) => {
      // A line per step and every 10 s: readable in CI logs, alive on a long soak.
      if (p.phase !== lastPhase || p.elapsedMs - lastLog >= 10_000) {
        lastPhase = p.phase;
        lastLog = p.elapsedMs;
        log.info(`  ${(p.elapsedMs / 1000).toFixed(1)}s  stage ${p.stage}/${plan.stages.length}  step ${p.phase}/${p.phases}  ${p.connections} connections  ${p.requests} requests  ${p.errors} errors`);
      }
    },
  });
  return { m, engineSaysFailed: false };
}

async function runWithK6(ctx: Context, plan: Plan, template: string, log: Logger): Promise<{ m: Measurement; engineSaysFailed: boolean }> {
  const r = await runK6({
    binary: plan.k6Binary!,
    renderScript: (summaryPath) => renderK6Script(template, plan.stages, plan.thresholds, k6Config(plan, summaryPath)),
    env: ctx.env,
    cwd: ctx.cwd,
    signal: ctx.signal,
    onOutput: (chunk) => void ctx.stderr.write(chunk),
  });
  if (!r.summary) {
    if (r.interrupted) throw new Interrupted('load-test interrupted before k6 wrote its summary');
    throw new ExternalError('k6', `exited with code ${r.exitCode} without writing a summary${r.tail ? `: ${r.tail.split('\n').pop()}` : ''}`, {
      hint: r.exitCode === K6_EXIT.invalidConfig || r.exitCode === K6_EXIT.scriptException ? 'run with --save-script and `k6 run` it to see the error' : 'check the k6 output above',
    });
  }
  const known: number[] = [0, K6_EXIT.thresholdsFailed, K6_EXIT.scriptAborted, K6_EXIT.externalAbort];
  if (!r.interrupted && !known.includes(r.exitCode)) {
    throw new ExternalError('k6', `exited with code ${r.exitCode}${r.tail ? `: ${r.tail.split('\n').pop()}` : ''}`, { hint: 'check the k6 output above' });
  }
  const m = measurementFromK6(r.summary, plan.thresholds);
  if (r.interrupted || r.exitCode === K6_EXIT.externalAbort) m.stoppedEarly = 'interrupted';
  else if (r.exitCode === K6_EXIT.scriptAborted) m.stoppedEarly = 'max-requests';
  else if (r.exitCode !== 0 && r.exitCode !== K6_EXIT.thresholdsFailed) log.verbose(`k6 exited with ${r.exitCode}`);
  return { m, engineSaysFailed: r.exitCode === K6_EXIT.thresholdsFailed };
}

function renderReport(r: LoadTestReport, log: Logger): string {
  const c = log.c;
  const pass = (ok: boolean) => (ok ? c.green('pass') : c.red('FAIL'));
  const pct = (x: number) => `${fmtNum(x * 100, 2)}%`;
  const byStatus = Object.entries(r.errors.byStatus)
    .map(([k, v]) => `${k} x${v}`)
    .join(', ');
  const lines = [
    `load-test (${r.engine}) ${r.target}`,
    `stages ${r.stages.map((s) => `${s.duration}:${s.target}`).join(',')}; ran ${fmtNum(r.durationMs / 1000, 1)} s${r.stoppedEarly ? ` (stopped early: ${r.stoppedEarly})` : ''}`,
    '',
    table(
      ['metric', 'value'],
      [
        ['requests', `${fmtNum(r.requests, 0)} (${fmtNum(r.requestsPerSecond, 1)}/s)`],
        ['embeddings/min', fmtNum(r.embeddingsPerMinute, 0)],
        ['capacity at the SLO (cost-report --capacity-from)', r.capacity.embeddingsPerMinute === null ? `none: ${r.capacity.basis}` : `${fmtNum(r.capacity.embeddingsPerMinute, 0)} embeddings/min (${r.capacity.basis})`],
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
