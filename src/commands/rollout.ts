import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { parseFlag, parsers, resolveOption } from '../config.js';
import type { Context } from '../context.js';
import { CLOUDWATCH_DEFAULTS, collectEvidence, defaultCloudWatchDimensions, type CloudWatchSource } from '../adapters/evidence.js';
import { envDriver } from '../adapters/traffic/env.js';
import { k8sDriver } from '../adapters/traffic/k8s.js';
import { nginxDriver } from '../adapters/traffic/nginx.js';
import type { ApplyResult, TrafficDriver } from '../adapters/traffic/types.js';
import { DEFAULT_GATES, describeProblems, evaluateGates, fmtValue, PRODUCERS, type GateConfig } from '../core/rollout/gates.js';
import { applyChange, planMove, rollbackTriggers, targetOfNext, verdict, type Change } from '../core/rollout/machine.js';
import { DEFAULT_DWELL_MS, DEFAULT_STEPS, dwellEndsAt, fmtDuration, initialState, parseDuration, parseSteps, stepIndexOf, timeline } from '../core/rollout/plan.js';
import type { TrafficSnapshot } from '../core/rollout/prometheus.js';
import { DRIVERS, STATE_VERSION, type DriverName, type GateResult, type HistoryAction, type RolloutState } from '../core/rollout/types.js';
import { ExitCode, ExternalError, GateFailed, UsageError } from '../errors.js';
import { printJson, table, type Logger } from '../ui/output.js';
import { appendJsonl, currentUser, readVersionedJson, withLock, writeJsonAtomic } from '../util/fs.js';
import { action, examples, type ExitHolder } from './shared.js';

interface Opts {
  percent?: string;
  next?: boolean;
  rollback?: boolean;
  pause?: boolean;
  resume?: boolean;
  status?: boolean;
  plan?: boolean;
  check?: boolean;
  watch?: boolean;
  reason?: string;
  force?: boolean;
  dryRun?: boolean;
  json?: boolean;
  driver?: string;
  steps?: string;
  dwell?: string;
  interval?: string;
  maxDuration?: string;
  stateFile?: string;
  evidenceDir?: string;
  maxEvidenceAge?: string;
  metricsUrl?: string;
  metricsApiKey?: string;
  nginxAccessLog?: string;
  window?: string;
  cloudwatch?: boolean;
  cloudwatchRegion?: string;
  cloudwatchNamespace?: string;
  cloudwatchDimension?: string[];
  maxErrorRate?: string;
  maxP95Ms?: string;
  minCosine?: string;
  minOverlap?: string;
  maxMonthlyUsd?: string;
  trafficEnv?: string;
  k8sManifest?: string;
  k8sConfigmap?: string;
  k8sNamespace?: string;
  kubectl?: string;
  deployFile?: string;
  nginxConf?: string;
  nginxPrefix?: string;
  nginxUrl?: string;
  selfHosted?: string;
  hostedUrl?: string;
  samples?: string;
  tolerance?: string;
}

const ACTIONS = ['percent', 'next', 'rollback', 'pause', 'resume', 'status', 'plan', 'check', 'watch'] as const;
type Action = (typeof ACTIONS)[number];

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('rollout')
    .description('Move traffic to self-hosted step by step (10 -> 25 -> 50 -> 75 -> 100 %), behind gates, with rollback')
    .option('--percent <n>', 'move to this step of the plan (0 = roll back)')
    .option('--next', 'move one step forward')
    .option('--rollback', 'put 0 % on self-hosted now and record why (--reason)')
    .option('--pause', 'block moving forward until --resume')
    .option('--resume', 'lift a pause')
    .option('--status', 'timeline, current step, dwell left, latest gates, next step, history (the default)')
    .option('--plan', 'the week-by-week plan with dates')
    .option('--check', 'evaluate the gates; exit 0 when all pass, 3 otherwise; nothing moves')
    .option('--watch', 'poll the gates every --interval and roll back by itself when a trigger fires (exit 4)')
    .option('--reason <text>', 'why: required with --force, recorded with --rollback and --pause')
    .option('--force', 'lift the one-step and dwell rules (needs --reason); never lifts a failed or inconclusive gate')
    .option('--dry-run', 'print what would change; touch nothing')
    .option('--driver <name>', `how traffic moves: ${DRIVERS.join('|')} (default nginx; rollout.driver)`)
    .option('--steps <list>', 'plan steps in percent (default 10,25,50,75,100; rollout.steps)')
    .option('--dwell <duration>', 'minimum time on a step before the next (default 7d; rollout.dwell)')
    .option('--interval <duration>', '--watch polling interval (default 30s)')
    .option('--max-duration <duration>', '--watch stops after this long (default: the dwell)')
    .option('--state-file <path>', 'rollout state (default .embedctl/rollout.json)')
    .option('--evidence-dir <dir>', 'where the latest reports are (default .embedctl/reports)')
    .option('--max-evidence-age <duration>', 'older reports are stale -> inconclusive (default 24h)')
    .option('--metrics-url <url>', "self-hosted runtime's Prometheus /metrics for live error rate and p95")
    .option('--metrics-api-key <key>', 'Bearer key for --metrics-url (or EMBEDCTL_METRICS_API_KEY)')
    .option('--nginx-access-log <path>', "nginx's JSON access log: live error rate and p95 of the self-hosted side")
    .option('--window <duration>', 'how far back --nginx-access-log looks for one-off checks (default 5m; --watch uses --interval)')
    .option('--cloudwatch', 'read error rate and p95 from CloudWatch (rollout.cloudwatch.*)')
    .option('--cloudwatch-region <region>', 'CloudWatch region (default AWS_REGION)')
    .option('--cloudwatch-namespace <ns>', 'CloudWatch namespace (default Embedctl)')
    .option('--cloudwatch-dimension <name=value>', 'CloudWatch dimension, repeatable (default Deployment=$EMBEDCTL_DEPLOYMENT or main)', collect)
    .option('--max-error-rate <rate>', 'error-rate gate and rollback trigger, 0.05 or 5% (rollout.gates.maxErrorRate)')
    .option('--max-p95-ms <ms>', 'p95 latency gate and rollback trigger (default 500; rollout.gates.maxP95Ms)')
    .option('--min-cosine <x>', 'min cosine of the consistency report (default 0.99; rollout.gates.minCosine)')
    .option('--min-overlap <x>', 'mean overlap@10 of the rag-overlap report (default 0.70; rollout.gates.minOverlap)')
    .option('--max-monthly-usd <usd>', 'projected monthly cost (default 500; rollout.gates.maxMonthlyUsd)')
    .option('--traffic-env <path>', 'env driver: file to write (default .embedctl/traffic.env; env EMBEDCTL_TRAFFIC_ENV_FILE)')
    .option('--k8s-manifest <path>', 'k8s driver: rewrite this rendered manifest instead of kubectl patch')
    .option('--k8s-configmap <name>', 'k8s driver: ConfigMap holding SELF_HOSTED_TRAFFIC_PERCENT (default embedctl-traffic)')
    .option('--k8s-namespace <ns>', 'k8s driver: namespace (default default)')
    .option('--kubectl <path>', 'k8s driver: kubectl binary (default kubectl on PATH)')
    .option('--deploy-file <path>', 'nginx driver: deploy parameters (default .embedctl/deploy.json)')
    .option('--nginx-conf <path>', 'nginx driver: the live nginx.conf')
    .option('--nginx-prefix <dir>', 'nginx driver: the -p prefix nginx runs with')
    .option('--nginx-url <url>', 'nginx driver: where to send sample requests (default: the listen address)')
    .option('--self-hosted <host:port,...>', 'nginx driver: self-hosted upstreams (when not in the deploy file)')
    .option('--hosted-url <url>', 'nginx driver: hosted endpoint (when not in the deploy file)')
    .option('--samples <n>', 'requests sampled to confirm the share (default 200; 0 = do not sample)')
    .option('--tolerance <points>', 'allowed gap between observed and expected share (default 5)');
  examples(cmd, [
    'embedctl rollout --plan',
    'embedctl rollout --check                       # gates only; exit 3 when one fails or evidence is missing',
    'embedctl rollout --next                        # one step, after the week is over and gates pass',
    'embedctl rollout --percent 50 --force --reason "capacity test approved by SRE" --dry-run',
    'embedctl rollout --watch --interval 30s --metrics-url http://10.0.0.5:8080/metrics',
    'embedctl rollout --rollback --reason "p95 regression"',
    'embedctl rollout --percent 25 --driver env --traffic-env /etc/myapp/traffic.env',
    'embedctl rollout --status --json',
  ]);
  cmd.addHelpText(
    'after',
    '\n--force lifts only the one-step-at-a-time and dwell rules. A failed or inconclusive gate always stops\na forward move (exit 3): fix the cause or refresh the evidence; there is no override.\n',
  );
  cmd.action(action<Opts>(ctx, holder, async ({ opts, ctx, log }) => run(ctx, opts, log)));
}

function chosenAction(opts: Opts): Action {
  const given = ACTIONS.filter((a) => opts[a] !== undefined && opts[a] !== false);
  if (given.length > 1) {
    throw new UsageError(`choose one of ${given.map((g) => `--${g}`).join(', ')}`, { field: `--${given[1]}` });
  }
  return given[0] ?? 'status';
}

async function run(ctx: Context, opts: Opts, log: Logger): Promise<number> {
  const act = chosenAction(opts);
  if (opts.force && !opts.reason?.trim()) {
    throw new UsageError('needs --reason "<why>" (it is recorded in the rollout history)', { field: '--force' });
  }
  if (opts.force && act !== 'percent' && act !== 'next') {
    throw new UsageError('only applies to --percent and --next', { field: '--force' });
  }
  const statePath = resolve(ctx.cwd, opts.stateFile ?? '.embedctl/rollout.json');
  const historyPath = statePath.replace(/\.json$/, '') + '.history.jsonl';
  const settings = resolveSettings(ctx, opts);
  const existing = await readState(statePath);
  const state = reconcile(existing ?? initialState(settings.steps.value, settings.dwellMs.value, settings.driver.value), settings, Boolean(existing));
  // Traffic is moved back the way it was moved forward unless a driver is named explicitly.
  settings.driver.value = state.driver;
  const r: Runner = { ctx, opts, log, statePath, historyPath, settings, exists: Boolean(existing) };

  switch (act) {
    case 'plan':
      return showPlan(r, state);
    case 'status':
      return showStatus(r, state);
    case 'check':
      return check(r, state);
    case 'pause':
    case 'resume':
      return pauseResume(r, act);
    case 'rollback':
      return rollback(r, opts.reason?.trim() || 'manual', 'rollback');
    case 'watch':
      return watch(r);
    case 'next':
    case 'percent': {
      let target: number;
      if (act === 'next') {
        const t = targetOfNext(state);
        if (typeof t !== 'number') throw new UsageError(t.message);
        target = t;
      } else {
        target = parseFlag('--percent', opts.percent, parsers.number({ min: 0, max: 100 }));
      }
      if (target === 0) return rollback(r, opts.reason?.trim() || 'manual (--percent 0)', 'rollback');
      return move(r, target);
    }
  }
}

interface Settings {
  steps: { value: number[]; source: string };
  dwellMs: { value: number; source: string };
  driver: { value: DriverName; source: string };
  gates: GateConfig;
  evidenceDir: string;
  cloudwatch?: CloudWatchSource;
  metricsUrl?: string;
  metricsApiKey?: string;
  nginxAccessLog?: string;
  windowMs: number;
}

interface Runner {
  ctx: Context;
  opts: Opts;
  log: Logger;
  statePath: string;
  historyPath: string;
  settings: Settings;
  exists: boolean;
}

/** A share as 0.05 or "5%". */
const rateParser = (raw: unknown): number => {
  const s = String(raw).trim();
  const n = s.endsWith('%') ? Number(s.slice(0, -1)) / 100 : Number(s);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`expected a rate like 0.05 or 5%, got ${JSON.stringify(raw)}`);
  return n;
};
const durationParser = (raw: unknown) => parseDuration(raw);

function resolveSettings(ctx: Context, o: Opts): Settings {
  const num = (flag: string, v: unknown, file: string, env: string | undefined, def: number, p = parsers.number({ min: 0 })) =>
    resolveOption(ctx, { flag, flagValue: v, file, env, default: def, parse: p }).value;
  const steps = resolveOption(ctx, { flag: '--steps', flagValue: o.steps, env: 'EMBEDCTL_ROLLOUT_STEPS', file: 'rollout.steps', default: DEFAULT_STEPS, parse: parseSteps });
  const dwell = resolveOption(ctx, { flag: '--dwell', flagValue: o.dwell, env: 'EMBEDCTL_ROLLOUT_DWELL', file: 'rollout.dwell', default: DEFAULT_DWELL_MS, parse: durationParser });
  const driver = resolveOption(ctx, { flag: '--driver', flagValue: o.driver, env: 'EMBEDCTL_ROLLOUT_DRIVER', file: 'rollout.driver', default: 'nginx' as DriverName, parse: parsers.oneOf(DRIVERS) });
  const gates: GateConfig = {
    ...DEFAULT_GATES,
    maxErrorRate: num('--max-error-rate', o.maxErrorRate, 'rollout.gates.maxErrorRate', 'EMBEDCTL_ROLLOUT_MAX_ERROR_RATE', DEFAULT_GATES.maxErrorRate, rateParser),
    targetErrorRate: num('rollout.gates.targetErrorRate', undefined, 'rollout.gates.targetErrorRate', undefined, DEFAULT_GATES.targetErrorRate, rateParser),
    maxP95Ms: num('--max-p95-ms', o.maxP95Ms, 'rollout.gates.maxP95Ms', 'EMBEDCTL_ROLLOUT_MAX_P95_MS', DEFAULT_GATES.maxP95Ms),
    targetP95Ms: num('rollout.gates.targetP95Ms', undefined, 'rollout.gates.targetP95Ms', undefined, DEFAULT_GATES.targetP95Ms),
    minConsistency: num('--min-cosine', o.minCosine, 'rollout.gates.minCosine', 'EMBEDCTL_ROLLOUT_MIN_COSINE', DEFAULT_GATES.minConsistency, parsers.number({ min: -1, max: 1 })),
    targetConsistency: num('rollout.gates.targetCosine', undefined, 'rollout.gates.targetCosine', undefined, DEFAULT_GATES.targetConsistency, parsers.number({ min: -1, max: 1 })),
    minOverlap: num('--min-overlap', o.minOverlap, 'rollout.gates.minOverlap', 'EMBEDCTL_ROLLOUT_MIN_OVERLAP', DEFAULT_GATES.minOverlap, parsers.number({ min: 0, max: 1 })),
    targetOverlap: num('rollout.gates.targetOverlap', undefined, 'rollout.gates.targetOverlap', undefined, DEFAULT_GATES.targetOverlap, parsers.number({ min: 0, max: 1 })),
    maxMonthlyUsd: num('--max-monthly-usd', o.maxMonthlyUsd, 'rollout.gates.maxMonthlyUsd', 'EMBEDCTL_ROLLOUT_MAX_MONTHLY_USD', DEFAULT_GATES.maxMonthlyUsd),
    maxEvidenceAgeMs: resolveOption(ctx, { flag: '--max-evidence-age', flagValue: o.maxEvidenceAge, env: 'EMBEDCTL_ROLLOUT_MAX_EVIDENCE_AGE', file: 'rollout.maxEvidenceAge', default: DEFAULT_GATES.maxEvidenceAgeMs, parse: durationParser }).value,
  };
  const evidenceDir = resolve(ctx.cwd, resolveOption(ctx, { flag: '--evidence-dir', flagValue: o.evidenceDir, env: 'EMBEDCTL_EVIDENCE_DIR', file: 'rollout.evidenceDir', default: '.embedctl/reports', parse: parsers.string() }).value);
  const metricsUrl = resolveOption(ctx, { flag: '--metrics-url', flagValue: o.metricsUrl, env: 'EMBEDCTL_METRICS_URL', file: 'rollout.metricsUrl', default: '', parse: urlParser }).value || undefined;
  const s: Settings = {
    steps: { value: steps.value, source: steps.source },
    dwellMs: { value: dwell.value, source: dwell.source },
    driver: { value: driver.value, source: driver.source },
    gates,
    evidenceDir,
    metricsUrl,
    metricsApiKey: o.metricsApiKey ?? ctx.env.EMBEDCTL_METRICS_API_KEY,
    nginxAccessLog: (() => {
      const p = resolveOption(ctx, { flag: '--nginx-access-log', flagValue: o.nginxAccessLog, file: 'rollout.nginxAccessLog', default: '', parse: parsers.string() }).value;
      return p ? resolve(ctx.cwd, p) : undefined;
    })(),
    windowMs: o.window ? parseFlag('--window', o.window, durationParser) : 300_000,
  };
  if (o.cloudwatch) {
    const region = o.cloudwatchRegion ?? ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION;
    if (!region) throw new UsageError('needs a region: --cloudwatch-region or AWS_REGION', { field: '--cloudwatch' });
    const given = (o.cloudwatchDimension ?? []).map((d) => {
      const m = /^([^=]+)=(.+)$/.exec(d);
      if (!m) throw new UsageError(`expected name=value, got ${JSON.stringify(d)}`, { field: '--cloudwatch-dimension' });
      return { Name: m[1]!, Value: m[2]! };
    });
    const str = (file: string, def: string) => resolveOption(ctx, { flag: file, flagValue: undefined, file, default: def, parse: parsers.string() }).value;
    s.cloudwatch = {
      region,
      namespace: o.cloudwatchNamespace ?? str('rollout.cloudwatch.namespace', CLOUDWATCH_DEFAULTS.namespace),
      // The runtime's metrics carry exactly one dimension, Deployment (runtime/emf.ts).
      dimensions: given.length ? given : defaultCloudWatchDimensions(ctx.env),
      requestsMetric: str('rollout.cloudwatch.requestsMetric', CLOUDWATCH_DEFAULTS.requestsMetric),
      errorsMetric: str('rollout.cloudwatch.errorsMetric', CLOUDWATCH_DEFAULTS.errorsMetric),
      latencyMetric: str('rollout.cloudwatch.latencyMetric', CLOUDWATCH_DEFAULTS.latencyMetric),
      latencyStat: str('rollout.cloudwatch.latencyStat', CLOUDWATCH_DEFAULTS.latencyStat),
      windowSeconds: 300,
    };
  }
  return s;
}

function urlParser(raw: unknown): string {
  const s = String(raw ?? '');
  if (s === '') return '';
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw new Error(`expected an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  return s;
}

async function readState(path: string): Promise<RolloutState | undefined> {
  const s = await readVersionedJson<RolloutState>(path, STATE_VERSION, 'rollout state');
  if (s && (typeof s.percent !== 'number' || !Array.isArray(s.steps) || !Array.isArray(s.history))) {
    throw new UsageError(`${path} is missing percent, steps or history; it was left untouched`, { hint: 'restore it from version control or move it aside to start fresh' });
  }
  return s;
}

/** Applies an explicitly configured plan (flag, env or embedctl.yaml) to an existing rollout. */
function reconcile(state: RolloutState, s: Settings, existed: boolean): RolloutState {
  if (!existed) return state;
  const next = { ...state };
  if (s.steps.source !== 'default') next.steps = s.steps.value;
  if (s.dwellMs.source !== 'default') next.dwellMs = s.dwellMs.value;
  if (s.driver.source !== 'default') next.driver = s.driver.value;
  next.stepIndex = stepIndexOf(next.steps, next.percent);
  return next;
}

/* ---------------------------------------------------------------- drivers */

function buildDriver(r: Runner, name: DriverName): TrafficDriver {
  const { ctx, opts } = r;
  switch (name) {
    case 'env':
      return envDriver(resolve(ctx.cwd, opts.trafficEnv ?? ctx.env.EMBEDCTL_TRAFFIC_ENV_FILE ?? '.embedctl/traffic.env'));
    case 'k8s':
      return k8sDriver({
        configMap: opts.k8sConfigmap ?? 'embedctl-traffic',
        namespace: opts.k8sNamespace ?? 'default',
        manifest: opts.k8sManifest ? resolve(ctx.cwd, opts.k8sManifest) : undefined,
        kubectl: opts.kubectl,
        env: ctx.env,
      });
    case 'nginx':
      return nginxFromDeploy(r);
  }
}

interface DeployNginx {
  confPath?: string;
  prefix?: string;
  url?: string;
  model?: string;
  options?: Record<string, unknown>;
}

/**
 * The nginx gateway's parameters: `.embedctl/deploy.json` ({ nginx: { confPath, prefix, url,
 * options: <render options> } }) written when the gateway is brought up, overridden by flags.
 */
function nginxFromDeploy(r: Runner): TrafficDriver {
  const { ctx, opts } = r;
  const deployPath = resolve(ctx.cwd, opts.deployFile ?? '.embedctl/deploy.json');
  let deploy: DeployNginx = {};
  try {
    const doc = JSON.parse(readFileSync(deployPath, 'utf8')) as { nginx?: DeployNginx };
    deploy = doc.nginx ?? {};
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UsageError(`cannot read ${deployPath}: ${(err as Error).message}`, { field: '--deploy-file' });
    }
  }
  const confPath = opts.nginxConf ?? deploy.confPath;
  const prefix = opts.nginxPrefix ?? deploy.prefix;
  const fromDeploy = (deploy.options ?? {}) as Record<string, unknown>;
  const selfHosted = opts.selfHosted ? opts.selfHosted.split(',').map((s) => s.trim()).filter(Boolean) : (fromDeploy.selfHosted as string[] | undefined);
  const hostedUrl = opts.hostedUrl ?? (fromDeploy.hostedUrl as string | undefined);
  const missing = [
    !confPath && '--nginx-conf',
    !prefix && '--nginx-prefix',
    !selfHosted?.length && '--self-hosted',
    !hostedUrl && '--hosted-url',
  ].filter(Boolean) as string[];
  if (missing.length > 0) {
    throw new UsageError(`the nginx driver needs ${missing.join(', ')} (or an nginx section in ${deployPath})`, {
      field: missing[0],
      hint: 'bring the gateway up with `embedctl up --local`, or use --driver env|k8s',
    });
  }
  const abs = (p: string) => resolve(ctx.cwd, p);
  let listen = fromDeploy.listen as { host?: string; port: number } | undefined;
  if (!listen) {
    try {
      const m = /^# listen: (\S+):(\d+)$/m.exec(readFileSync(abs(confPath!), 'utf8'));
      if (m) listen = { host: m[1], port: Number(m[2]) };
    } catch {
      /* reported below */
    }
  }
  if (!listen) throw new UsageError(`cannot tell where nginx listens: ${abs(confPath!)} has no "# listen:" header and the deploy file no options.listen`, { field: '--nginx-conf' });
  return nginxDriver({
    confPath: abs(confPath!),
    prefix: abs(prefix!),
    conf: { ...(fromDeploy as object), selfHosted: selfHosted!, hostedUrl: hostedUrl!, listen } as never,
    url: opts.nginxUrl ?? deploy.url,
    model: deploy.model,
    samples: opts.samples === undefined ? undefined : parseFlag('--samples', opts.samples, parsers.number({ min: 0, max: 100_000, integer: true })),
    tolerance: opts.tolerance === undefined ? undefined : parseFlag('--tolerance', opts.tolerance, parsers.number({ min: 0, max: 100 })),
    env: ctx.env,
  });
}

/* ---------------------------------------------------------------- state writes */

/**
 * Re-reads the state under the lock (another command may have moved it since we looked), lets
 * `fn` decide and act, then writes the new state and the history line. The lock makes a second
 * concurrent rollout command fail at once with the holder's name.
 */
async function mutate<T>(r: Runner, what: string, fn: (state: RolloutState) => Promise<{ state?: RolloutState; result: T }>): Promise<T> {
  return withLock(
    r.statePath,
    async () => {
      const existing = await readState(r.statePath);
      const state = reconcile(existing ?? initialState(r.settings.steps.value, r.settings.dwellMs.value, r.settings.driver.value), r.settings, Boolean(existing));
      const out = await fn(state);
      if (out.state) {
        await writeJsonAtomic(r.statePath, out.state);
        const last = out.state.history[out.state.history.length - 1];
        if (last && last !== state.history[state.history.length - 1]) await appendJsonl(r.historyPath, last);
      }
      return out.result;
    },
    'rollout',
    `embedctl rollout ${what}`,
  );
}

function change(r: Runner, action: HistoryAction, to: number, extra: Partial<Change> & { driver: DriverName }): Change {
  return {
    action,
    to,
    now: r.ctx.now(),
    user: currentUser(r.ctx.env),
    reason: extra.reason ?? null,
    forced: extra.forced ?? false,
    gates: extra.gates ?? [],
    ...extra,
  };
}

/* ---------------------------------------------------------------- gates */

async function gatesNow(r: Runner, previous?: TrafficSnapshot, windowMs = r.settings.windowMs): Promise<{ gates: GateResult[]; snapshot?: TrafficSnapshot }> {
  const { evidence, snapshot } = await collectEvidence({
    nginxAccessLog: r.settings.nginxAccessLog,
    windowMs,
    evidenceDir: r.settings.evidenceDir,
    metricsUrl: r.settings.metricsUrl,
    metricsApiKey: r.settings.metricsApiKey,
    cloudwatch: r.settings.cloudwatch,
    cloudwatchClient: r.ctx.adapters.cloudwatchClient,
    previous,
    now: r.ctx.now(),
  });
  return { gates: evaluateGates(evidence, r.settings.gates, r.ctx.now()), snapshot };
}

function gateTable(gates: GateResult[]): string {
  return table(
    ['gate', 'value', 'limit', 'target', 'status', 'age', 'source'],
    gates.map((g) => [
      g.name,
      fmtValue(g.name, g.value),
      `${g.direction === 'max' ? '<=' : '>='} ${fmtValue(g.name, g.threshold)}`,
      fmtValue(g.name, g.target),
      g.status === 'pass' && g.onTarget === false ? 'pass (off target)' : g.status,
      g.ageSeconds === null ? '-' : fmtDuration(g.ageSeconds * 1000),
      g.source,
    ]),
  );
}

function gateNotes(gates: GateResult[]): string {
  return gates
    .filter((g) => g.status !== 'pass' && g.note)
    .map((g) => `  ${g.name}: ${g.note}\n`)
    .join('');
}

/** A failed or inconclusive verdict as an exit-3 error, naming what is wrong and what fixes it. */
function gateError(gates: GateResult[], what: string): GateFailed {
  const v = verdict(gates);
  const bad = gates.filter((g) => g.status !== 'pass');
  return new GateFailed(`${what}: gates ${v === 'fail' ? 'failed' : 'inconclusive'}: ${describeProblems(gates)}`, {
    report: gates,
    hint:
      v === 'fail'
        ? 'a failed gate is never skipped (not even with --force): fix the cause, refresh the evidence and run --check'
        : `refresh the evidence: ${[...new Set(bad.map((g) => PRODUCERS[g.name]))].join('; ')}`,
  });
}

/* ---------------------------------------------------------------- actions */

function stateSummary(s: RolloutState, now: Date) {
  const dwellEnd = dwellEndsAt(s);
  return {
    percent: s.percent,
    step: s.stepIndex + 1,
    steps: s.steps,
    paused: s.paused,
    pausedReason: s.pausedReason,
    startedAt: s.startedAt,
    stepStartedAt: s.stepStartedAt,
    dwellEndsAt: dwellEnd?.toISOString() ?? null,
    dwellRemainingMs: dwellEnd ? Math.max(0, dwellEnd.getTime() - now.getTime()) : 0,
    nextPercent: s.steps[s.stepIndex + 1] ?? null,
    driver: s.driver,
    lastRollback: s.lastRollback,
  };
}

async function move(r: Runner, target: number): Promise<number> {
  const { ctx, opts, log } = r;
  const reason = opts.reason?.trim() || null;
  const driverName = r.settings.driver.value;
  if (opts.dryRun) {
    const state = reconcile((await readState(r.statePath)) ?? initialState(r.settings.steps.value, r.settings.dwellMs.value, driverName), r.settings, r.exists);
    const p = planMove(state, { target, force: Boolean(opts.force), reason, now: ctx.now() });
    if (!p.ok) throw new UsageError(p.message, { hint: p.hint });
    const gates = p.needsGates ? (await gatesNow(r)).gates : [];
    const v = p.needsGates ? verdict(gates) : 'pass';
    const driver = p.kind === 'noop' ? undefined : buildDriver(r, driverName);
    const doc = { action: 'move', dryRun: true, from: p.from, to: p.to, kind: p.kind, wouldMove: p.kind !== 'noop' && v === 'pass', forced: p.forced, overridden: p.overridden, reason, driver: driverName, wouldDo: driver?.describe(p.to) ?? null, verdict: v, gates };
    if (opts.json) printJson(ctx, 'rollout', doc);
    else {
      if (gates.length) ctx.stdout.write(gateTable(gates) + gateNotes(gates));
      ctx.stdout.write(`dry run: ${p.kind === 'noop' ? `already at ${p.to}%` : `${p.from}% -> ${p.to}%`}${p.forced ? ` (forced: ${p.overridden.join('; ')})` : ''}; gates ${v}${driver ? `; would ${driver.describe(p.to)}` : ''}\n`);
    }
    return v === 'pass' ? ExitCode.ok : ExitCode.gateFailed;
  }

  const outcome = await mutate<MoveOutcome>(r, `--percent ${target}`, async (state) => {
    const p = planMove(state, { target, force: Boolean(opts.force), reason, now: ctx.now() });
    if (!p.ok) throw new UsageError(p.message, { hint: p.hint });
    if (p.kind === 'noop') return { result: { kind: 'noop', state, gates: [] } };
    let gates: GateResult[] = [];
    if (p.needsGates) {
      gates = (await gatesNow(r)).gates;
      if (verdict(gates) !== 'pass') {
        // Recorded so --status shows why the rollout is holding.
        const held = { ...state, lastGates: gates, lastGatesAt: ctx.now().toISOString() };
        return { state: held, result: { kind: 'blocked', state: held, gates } };
      }
    }
    if (p.forced) log.warn(`forced (${reason}): ${p.overridden.join('; ')}`);
    const driver = buildDriver(r, driverName);
    log.info(`moving ${p.from}% -> ${p.to}% self-hosted: ${driver.describe(p.to)}`);
    const applied = await driver.apply(p.to, ctx.signal);
    const next = applyChange(state, change(r, p.kind === 'back' ? 'back' : state.percent === 0 ? 'set' : 'advance', p.to, { reason, forced: p.forced, gates, driver: driverName, confirmed: applied.confirmed, observedPercent: applied.observedPercent }));
    return { state: next, result: { kind: p.kind, state: next, gates, applied, forced: p.forced, overridden: p.overridden, from: p.from } };
  });

  if (outcome.kind === 'blocked') {
    const err = gateError(outcome.gates, `not moving to ${target}%`);
    if (opts.json) printJson(ctx, 'rollout', { action: 'move', moved: false, from: outcome.state.percent, to: target, verdict: verdict(outcome.gates), gates: outcome.gates, state: stateSummary(outcome.state, ctx.now()) });
    else ctx.stdout.write(gateTable(outcome.gates) + gateNotes(outcome.gates));
    throw err;
  }
  if (outcome.kind === 'noop') {
    if (opts.json) printJson(ctx, 'rollout', { action: 'move', moved: false, from: target, to: target, state: stateSummary(outcome.state, ctx.now()) });
    else ctx.stdout.write(`already at ${target}% self-hosted; nothing to do\n`);
    return ExitCode.ok;
  }
  const a = outcome.applied!;
  if (opts.json) {
    printJson(ctx, 'rollout', {
      action: 'move',
      moved: true,
      from: outcome.from,
      to: target,
      forced: outcome.forced,
      overridden: outcome.overridden,
      reason,
      driver: driverName,
      confirmed: a.confirmed,
      observedPercent: a.observedPercent,
      detail: a.detail,
      verdict: outcome.gates.length ? verdict(outcome.gates) : null,
      gates: outcome.gates,
      state: stateSummary(outcome.state, ctx.now()),
    });
  } else {
    if (outcome.gates.length) ctx.stdout.write(gateTable(outcome.gates));
    ctx.stdout.write(`${outcome.from}% -> ${target}% self-hosted (${driverName}: ${a.detail})\n`);
    const end = dwellEndsAt(outcome.state);
    if (end && outcome.state.steps[outcome.state.stepIndex + 1] !== undefined) ctx.stdout.write(`next step ${outcome.state.steps[outcome.state.stepIndex + 1]}% not before ${end.toISOString()}\n`);
  }
  return unconfirmed(a, target);
}

interface MoveOutcome {
  kind: 'noop' | 'blocked' | 'advance' | 'back';
  state: RolloutState;
  gates: GateResult[];
  applied?: ApplyResult;
  forced?: boolean;
  overridden?: string[];
  from?: number;
}

function unconfirmed(a: ApplyResult, target: number): number {
  if (a.confirmed === false) {
    throw new ExternalError('traffic', `the driver applied ${target}% but could not confirm it: ${a.detail}`, {
      hint: 'the new share is recorded; check the gateway, then re-run the same command (it re-applies) or --rollback',
    });
  }
  return ExitCode.ok;
}

async function rollback(r: Runner, reason: string, kind: 'rollback' | 'auto-rollback', gates: GateResult[] = []): Promise<number> {
  const { ctx, opts, log } = r;
  const driverName = r.settings.driver.value;
  if (opts.dryRun) {
    const state = (await readState(r.statePath)) ?? initialState(r.settings.steps.value, r.settings.dwellMs.value, driverName);
    const driver = buildDriver(r, driverName);
    if (opts.json) printJson(ctx, 'rollout', { action: 'rollback', dryRun: true, from: state.percent, to: 0, reason, driver: driverName, wouldDo: driver.describe(0) });
    else ctx.stdout.write(`dry run: ${state.percent}% -> 0% self-hosted (${reason}); would ${driver.describe(0)}\n`);
    return ExitCode.ok;
  }
  // The clock starts at the decision and stops when the driver confirms 0 %: the number the
  // runbook's five-minute budget is about.
  const t0 = performance.now();
  const out = await mutate(r, '--rollback', async (state) => {
    const driver = buildDriver(r, driverName);
    log.info(`rolling back ${state.percent}% -> 0% self-hosted (${reason}): ${driver.describe(0)}`);
    const applied = await driver.apply(0, undefined);
    const durationMs = Math.round(performance.now() - t0);
    const next = applyChange(state, change(r, kind, 0, { reason, gates, driver: driverName, confirmed: applied.confirmed, observedPercent: applied.observedPercent, durationMs }));
    return { state: next, result: { from: state.percent, applied, durationMs, state: next } };
  });
  const doc = {
    action: kind,
    from: out.from,
    to: 0,
    reason,
    driver: driverName,
    confirmed: out.applied.confirmed,
    observedPercent: out.applied.observedPercent,
    detail: out.applied.detail,
    durationMs: out.durationMs,
    triggers: gates.filter((g) => g.status === 'fail' && g.rollbackTrigger).map((g) => g.name),
    gates,
    state: stateSummary(out.state, ctx.now()),
  };
  if (opts.json) printJson(ctx, 'rollout', doc);
  else ctx.stdout.write(`rolled back ${out.from}% -> 0% self-hosted in ${fmtDuration(out.durationMs)} (${reason}; ${out.applied.detail})\n`);
  return unconfirmed(out.applied, 0);
}

async function pauseResume(r: Runner, act: 'pause' | 'resume'): Promise<number> {
  const { ctx, opts } = r;
  const reason = opts.reason?.trim() || null;
  if (opts.dryRun) {
    ctx.stdout.write(opts.json ? '' : `dry run: would ${act} the rollout\n`);
    if (opts.json) printJson(ctx, 'rollout', { action: act, dryRun: true, reason });
    return ExitCode.ok;
  }
  const next = await mutate(r, `--${act}`, async (state) => {
    if (act === 'pause' && state.paused) return { result: state };
    if (act === 'resume' && !state.paused) return { result: state };
    const s = applyChange(state, change(r, act, state.percent, { reason, driver: state.driver }));
    return { state: s, result: s };
  });
  if (opts.json) printJson(ctx, 'rollout', { action: act, reason, state: stateSummary(next, ctx.now()) });
  else ctx.stdout.write(act === 'pause' ? `paused at ${next.percent}% (${next.pausedReason}); --resume lifts it\n` : `resumed at ${next.percent}%\n`);
  return ExitCode.ok;
}

async function check(r: Runner, state: RolloutState): Promise<number> {
  const { ctx, opts } = r;
  const { gates } = await gatesNow(r);
  const v = verdict(gates);
  if (r.exists && !opts.dryRun) {
    await mutate(r, '--check', async (s) => ({ state: { ...s, lastGates: gates, lastGatesAt: ctx.now().toISOString() }, result: undefined }));
  }
  if (opts.json) printJson(ctx, 'rollout', { action: 'check', verdict: v, gates, state: stateSummary(state, ctx.now()) });
  else ctx.stdout.write(gateTable(gates) + gateNotes(gates) + `verdict: ${v}\n`);
  if (v !== 'pass') throw gateError(gates, `at ${state.percent}%`);
  return ExitCode.ok;
}

function showPlan(r: Runner, state: RolloutState): number {
  const { ctx, opts } = r;
  const rows = timeline(state, ctx.now());
  if (opts.json) {
    printJson(ctx, 'rollout', { action: 'plan', steps: state.steps, dwellMs: state.dwellMs, timeline: rows, state: stateSummary(state, ctx.now()) });
    return ExitCode.ok;
  }
  ctx.stdout.write(
    table(
      ['step', 'self-hosted', 'planned', 'reached', 'state'],
      rows.map((t) => [t.step, `${t.percent}%`, t.plannedAt.slice(0, 10), t.actualAt?.slice(0, 16).replace('T', ' ') ?? '-', t.state]),
    ),
  );
  ctx.stdout.write(`one step per ${fmtDuration(state.dwellMs)}; each move needs passing gates (error rate, p95, consistency, overlap, cost)\n`);
  return ExitCode.ok;
}

function showStatus(r: Runner, state: RolloutState): number {
  const { ctx, opts } = r;
  const now = ctx.now();
  const summary = stateSummary(state, now);
  const rows = timeline(state, now);
  const history = state.history.slice(-10);
  const nextStep = (() => {
    if (summary.nextPercent === null) return `complete: ${state.percent}% self-hosted`;
    if (state.paused) return `paused (${state.pausedReason}): embedctl rollout --resume`;
    if (summary.dwellRemainingMs > 0) return `${summary.nextPercent}% after ${summary.dwellEndsAt} (in ${fmtDuration(summary.dwellRemainingMs)}), when gates pass: embedctl rollout --next`;
    return `${summary.nextPercent}% now, when gates pass: embedctl rollout --check && embedctl rollout --next`;
  })();
  if (opts.json) {
    printJson(ctx, 'rollout', { action: 'status', started: r.exists, state: summary, timeline: rows, lastGates: state.lastGates, lastGatesAt: state.lastGatesAt, next: nextStep, history });
    return ExitCode.ok;
  }
  ctx.stdout.write(`self-hosted: ${state.percent}% (step ${state.stepIndex + 1} of ${state.steps.length})${state.paused ? ` PAUSED: ${state.pausedReason}` : ''}\n`);
  ctx.stdout.write(table(['step', 'self-hosted', 'planned', 'reached', 'state'], rows.map((t) => [t.step, `${t.percent}%`, t.plannedAt.slice(0, 10), t.actualAt?.slice(0, 16).replace('T', ' ') ?? '-', t.state])));
  if (summary.dwellEndsAt) ctx.stdout.write(`dwell: ends ${summary.dwellEndsAt}${summary.dwellRemainingMs > 0 ? ` (in ${fmtDuration(summary.dwellRemainingMs)})` : ' (over)'}\n`);
  if (state.lastGates.length) ctx.stdout.write(`gates at ${state.lastGatesAt}: ${verdict(state.lastGates)}\n${gateTable(state.lastGates)}`);
  else ctx.stdout.write('gates: not evaluated yet (embedctl rollout --check)\n');
  if (state.lastRollback) ctx.stdout.write(`last rollback: ${state.lastRollback.at} from ${state.lastRollback.from}% in ${fmtDuration(state.lastRollback.durationMs)} (${state.lastRollback.reason})\n`);
  ctx.stdout.write(`next: ${nextStep}\n`);
  if (history.length) {
    ctx.stdout.write(
      '\n' +
        table(
          ['time', 'user', 'action', 'from', 'to', 'reason'],
          history.map((h) => [h.time.slice(0, 19).replace('T', ' '), h.user, h.forced ? `${h.action} (forced)` : h.action, `${h.from}%`, `${h.to}%`, h.reason ?? '']),
        ),
    );
  }
  return ExitCode.ok;
}

async function watch(r: Runner): Promise<number> {
  const { ctx, opts, log } = r;
  const interval = opts.interval ? parseFlag('--interval', opts.interval, durationParser) : 30_000;
  if (interval <= 0) throw new UsageError('must be more than 0', { field: '--interval' });
  const maxDuration = opts.maxDuration ? parseFlag('--max-duration', opts.maxDuration, durationParser) : r.settings.dwellMs.value;
  const started = performance.now();
  let ticks = 0;
  let baseline = (await gatesNow(r)).snapshot;
  let last: GateResult[] = [];
  log.info(`watching every ${fmtDuration(interval)} for up to ${fmtDuration(maxDuration)}: rollback when ${rollbackTriggerText(r.settings.gates)}`);
  for (;;) {
    const left = maxDuration - (performance.now() - started);
    if (left <= 0) break;
    try {
      await ctx.sleep(Math.min(interval, left), ctx.signal);
    } catch {
      break;
    }
    if (ctx.signal?.aborted) break;
    ticks++;
    const got = await gatesNow(r, baseline, interval);
    baseline = got.snapshot ?? baseline;
    last = got.gates;
    // Re-read each tick without holding the lock between ticks: an operator's own --rollback or
    // --percent must never wait for a watcher.
    const state = (await readState(r.statePath)) ?? initialState(r.settings.steps.value, r.settings.dwellMs.value, r.settings.driver.value);
    const triggers = rollbackTriggers(last);
    log.info(`[${ctx.now().toISOString()}] ${state.percent}% ${last.map((g) => `${g.name}=${g.value === null ? g.status : fmtValue(g.name, g.value)}`).join(' ')} -> ${triggers.length ? 'ROLLBACK' : verdict(last) === 'inconclusive' ? 'hold (inconclusive)' : 'ok'}`);
    if (triggers.length && state.percent > 0) {
      const reason = `automatic: ${triggers.map((g) => `${g.name} ${fmtValue(g.name, g.value)} ${g.direction === 'max' ? '>' : '<'} ${fmtValue(g.name, g.threshold)}`).join(', ')}`;
      const code = await rollback(r, reason, 'auto-rollback', last);
      log.warn(`rolled back by --watch: ${reason}`);
      return code === ExitCode.ok ? ExitCode.rolledBack : code;
    }
    if (r.exists || state.history.length) {
      await mutate(r, '--watch', async (s) => ({ state: { ...s, lastGates: last, lastGatesAt: ctx.now().toISOString() }, result: undefined })).catch((err: unknown) =>
        log.verbose(`gates not recorded this tick: ${(err as Error).message}`),
      );
    }
  }
  const interrupted = Boolean(ctx.signal?.aborted);
  const state = (await readState(r.statePath)) ?? initialState(r.settings.steps.value, r.settings.dwellMs.value, r.settings.driver.value);
  if (opts.json) printJson(ctx, 'rollout', { action: 'watch', rolledBack: false, interrupted, ticks, verdict: last.length ? verdict(last) : null, gates: last, state: stateSummary(state, ctx.now()) });
  else ctx.stdout.write(`${interrupted ? 'interrupted' : 'watch ended'} after ${ticks} checks at ${state.percent}% self-hosted; no rollback trigger fired\n`);
  return interrupted ? ExitCode.interrupted : ExitCode.ok;
}

function rollbackTriggerText(g: GateConfig): string {
  return `error rate > ${fmtValue('errorRate', g.maxErrorRate)}, p95 > ${g.maxP95Ms} ms, min cosine < ${g.minConsistency}, overlap < ${fmtValue('overlap', g.minOverlap)}`;
}
