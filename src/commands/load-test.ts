import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { probeTcp } from '../adapters/autocannon.js';
import { estimateTokens } from '../adapters/embeddings-shapes.js';
import { findK6 } from '../adapters/k6.js';
import { answeredBy, checkCandidateBackends, deploymentTarget } from '../adapters/evidence-targets.js';
import { parseFlag, parsers, resolveOption } from '../config.js';
import type { Context } from '../context.js';
import {
  autocannonPhases,
  bodyMaker,
  buildReport,
  buildThresholds,
  embeddingsUrl,
  formatDuration,
  formatStages,
  isLoopback,
  MAX_TOTAL_MS,
  maxTarget,
  parseStages,
  parseTexts,
  PROFILES,
  renderK6Script,
  round,
  scaleStages,
  totalDurationMs,
  type Engine,
  type Profile,
  type Stage,
  type TextsSent,
} from '../core/loadtest.js';
import { ExternalError, GateFailed, Interrupted, UsageError } from '../errors.js';
import { fmtNum, type Logger, printJson, table, withSchema } from '../ui/output.js';
import { countBackend, k6Config, runWithAutocannon, runWithK6, SECRET_HEADERS, type Plan } from './load-test-engines.js';
import { renderReport } from './load-test-report.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { dataDir, templatesDir } from '../util/paths.js';
import { action, examples, type ExitHolder } from './shared.js';
import { addOptions } from './define.js';
import { LOAD_TEST_DEFAULTS, LOAD_TEST_OPTIONS } from './load-test-options.js';
import { loadTestReport } from '../contracts/reports.js';

export interface Opts {
  target?: string;
  deployment?: string | true;
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

/** The flags' defaults: commander's and run()'s. */
const DEFAULTS = LOAD_TEST_DEFAULTS;

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = addOptions(
    program
      .command('load-test')
      .description('Load-test an embeddings endpoint (k6 when on PATH, else autocannon) and judge it against the gates and the migration criteria'),
    LOAD_TEST_OPTIONS,
  );
  examples(cmd, [
    'embedctl load-test --target http://127.0.0.1:8080 --profile smoke',
    'embedctl load-test --target http://127.0.0.1:8080 --profile seed --duration-scale 0.05 --out .embedctl/reports/load-test.json',
    'embedctl load-test --target http://127.0.0.1:8080 --stages "10s:4,20s:16,10s:0" --engine autocannon --json',
    'embedctl load-test --target https://embed.internal.example.com --allow-remote --profile seed --shape jina --header "Authorization: Bearer $KEY"',
    'embedctl load-test --target http://127.0.0.1:8080 --profile seed --save-script load-test.js --dry-run',
    'embedctl load-test --deployment local --stages "10s:4" --out .embedctl/reports/load-test.json',
  ]);
  cmd.action(action<Opts>(ctx, holder, async ({ opts, globals, log }) => loadTest(ctx, { ...DEFAULTS, ...opts, header: opts.header ?? [] }, globals.json, log)));
}

/** `embedctl load-test` as a function (what rehearse calls): flags by name, defaults as the CLI's; --json output. */
export async function run(o: Partial<Opts>, ctx: Context, log: Logger): Promise<number> {
  return loadTest(ctx, { ...DEFAULTS, header: [], ...o }, true, log);
}

async function buildPlan(ctx: Context, opts: Opts, log: Logger): Promise<Plan> {
  if (opts.deployment !== undefined && opts.target !== undefined) {
    throw new UsageError('choose one: --target (an endpoint) or --deployment (its self-hosted side through the gateway)', { field: '--deployment' });
  }
  // A deployment's gateway pinned to self-hosted with the operator key: the load never reaches
  // the hosted API (nor its bill), whatever the split.
  const dep = opts.deployment === undefined ? undefined : await deploymentTarget(ctx.cwd, ctx.env, opts.deployment);
  const target = dep?.selfHosted.url ?? resolveOption(ctx, { flag: '--target', flagValue: opts.target, env: 'EMBEDCTL_LOAD_TEST_TARGET', file: 'loadTest.target', default: '', parse: parsers.string() }).value;
  if (!target) throw new UsageError('required: the endpoint to load, e.g. --target http://127.0.0.1:8080, or --deployment', { field: '--target' });
  const url = parseFlag('--target', target, (raw) => embeddingsUrl(String(raw)));
  if (!isLoopback(url)) {
    if (dep) log.info(`load-testing ${url.origin}: the self-hosted side of deployment ${dep.name}`);
    else if (!opts.allowRemote) {
      throw new UsageError(`${url.host} is not a loopback address; load tests only go to your own machine by default`, {
        field: '--target',
        hint: 'if this is your own deployment, add --allow-remote',
      });
    }
    else log.warn(`load-testing ${url.origin} (not loopback; --allow-remote): only load systems you own or may test`);
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
  for (const [k, v] of Object.entries(dep?.selfHosted.headers ?? {})) headers[k] = v;
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
    via: dep?.selfHosted.via ?? 'as given',
    deployment: dep?.name,
  };
}

/** The texts' mean length in tokens, by the estimate the hosted-cost guard uses (cost-report's scale). */
function textsSent(plan: Plan): TextsSent {
  return {
    source: plan.textsSource,
    count: plan.texts.length,
    tokensPerText: round(estimateTokens(plan.texts) / plan.texts.length, 2),
    tokenEstimate: 'estimateTokens: ~4 characters a token (CJK 1 a character) + 1 per text; requests draw the texts uniformly at random',
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

async function loadTest(ctx: Context, opts: Opts, json: boolean, log: Logger): Promise<number> {
  const plan = await buildPlan(ctx, opts, log);
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
      texts: textsSent(plan),
      via: plan.via,
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

  if (plan.deployment) await preflight(plan, log);
  else await refuseSplitGateway(plan);
  log.info(`load-test: ${describe}`);
  const measurement = plan.engine === 'k6' ? await runWithK6(ctx, plan, template, log) : await runWithAutocannon(ctx, plan, phases, log);
  const backends = measurement.m.backends ?? {};
  // Through a gateway, a load that hosted answered (even in part) measured the wrong side: an
  // error, and no report for rollout to take as evidence.
  checkCandidateBackends(backends, plan.url.origin, plan.deployment ? '--deployment' : '--target');
  const built = buildReport(
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
      texts: textsSent(plan),
    },
    measurement.m,
  );
  const report = { ...built, via: plan.via, answeredBy: answeredBy(backends), backends };
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


/**
 * A plain --target that is an embedctl gateway below 100 % would put part of the load (and its
 * bill) on the hosted API before the run's own check could say so: its /health, one GET and no
 * embedding request, says what it is and its share. Anything else (a runtime, another server, no
 * /health) goes on to the load, whose answers are still checked.
 */
async function refuseSplitGateway(plan: Plan): Promise<void> {
  let health: { component?: unknown; selfHostedPercent?: unknown };
  try {
    const res = await fetch(new URL('/health', plan.url.origin), { signal: AbortSignal.timeout(1000) });
    health = (await res.json()) as typeof health;
  } catch {
    return;
  }
  const percent = health?.selfHostedPercent;
  if (health?.component !== 'nginx' || typeof percent !== 'number' || percent >= 100) return;
  throw new UsageError(`${plan.url.origin} is an embedctl gateway sending ${percent} % of requests to self-hosted: a load through it would land ${100 - percent} % on the hosted API (and its bill); nothing was sent`, {
    field: '--target',
    hint: 'load the self-hosted side with --deployment <name> (the operator route), or point --target at a runtime',
  });
}

/**
 * Before any load: a few requests through the deployment's operator route, so a gateway that
 * answers from hosted (wrong key, a gateway without the route) costs five requests, not a run.
 */
async function preflight(plan: Plan, log: Logger): Promise<void> {
  const backends: Record<string, number> = {};
  const body = bodyMaker(plan, plan.texts);
  for (let i = 0; i < 5; i++) {
    let res: Response;
    try {
      res = await fetch(plan.url, { method: 'POST', headers: plan.headers, body: body(), signal: AbortSignal.timeout(plan.timeoutS * 1000) });
      await res.arrayBuffer();
    } catch (err) {
      throw new ExternalError('gateway', `cannot reach ${plan.url.origin}: ${(err as Error).message}`, { hint: 'is the deployment up? (embedctl status)' });
    }
    if (res.status === 401 || res.status === 403) {
      throw new UsageError(`the gateway refused the operator key (HTTP ${res.status})`, { field: '--deployment', hint: 'set EMBEDCTL_OPERATOR_KEY to the operator line of the gateway keys' });
    }
    countBackend(backends, Object.fromEntries(res.headers), res.status);
  }
  checkCandidateBackends(backends, plan.url.origin, '--deployment');
  log.info(`preflight: 5 of 5 answers from ${answeredBy(backends)} via ${plan.via}`);
}
