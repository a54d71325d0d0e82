import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseFlag, parsers, resolveOption } from '../../config.js';
import type { Context } from '../../context.js';
import { CLOUDWATCH_DEFAULTS, defaultCloudWatchDimensions, type CloudWatchSource } from '../../adapters/evidence.js';
import { DEFAULT_GATES, type GateConfig } from '../../core/rollout/gates.js';
import { DEFAULT_DWELL_MS, DEFAULT_STEPS, parseDuration, parseSteps } from '../../core/rollout/plan.js';
import { DRIVERS, type DriverName } from '../../core/rollout/types.js';
import { UsageError } from '../../errors.js';

/** Every rollout option, as commander hands them over (strings until resolved below). */
export interface RolloutOpts {
  reason?: string;
  force?: boolean;
  /** false with --no-confirm. */
  confirm?: boolean;
  dryRun?: boolean;
  json?: boolean;
  driver?: string;
  steps?: string;
  dwell?: string;
  interval?: string;
  maxDuration?: string;
  failureLimit?: string;
  staleAfter?: string;
  stateFile?: string;
  evidenceDir?: string;
  maxEvidenceAge?: string;
  metricsUrl?: string;
  metricsApiKey?: string;
  nginxAccessLog?: string;
  window?: string;
  metricsSettle?: string;
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
  k8sManifests?: string;
  k8sIngress?: string;
  k8sNamespace?: string;
  kubectl?: string;
  deployFile?: string;
  deployment?: string;
  nginxConf?: string;
  nginxPrefix?: string;
  nginxUrl?: string;
  selfHosted?: string;
  hostedUrl?: string;
  samples?: string;
  tolerance?: string;
  ssmInstance?: string;
  ssmRegion?: string;
  gatewayUrl?: string;
  lockWait?: string;
}

type Opt = [flags: string, help: string, collect?: true];
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Options grouped by what they configure; each verb declares the groups it uses. */
export const OPTION_GROUPS = {
  plan: [
    ['--steps <list>', 'plan steps in percent (default 10,25,50,75,100; rollout.steps)'],
    ['--dwell <duration>', 'minimum time on a step before the next (default 7d; rollout.dwell)'],
    ['--state-file <path>', 'rollout state (default .embedctl/rollout.json, or rollout.json in $EMBEDCTL_STATE_DIR)'],
  ],
  move: [
    ['--reason <text>', 'why: required with --force, recorded in the history'],
    ['--force', 'lift the one-step and dwell rules (needs --reason); never lifts a failed or inconclusive gate'],
    ['--dry-run', 'print what would change; touch nothing'],
    ['--lock-wait <duration>', 'wait this long for another rollout command to finish (default 0: fail at once)'],
  ],
  gates: [
    ['--evidence-dir <dir>', 'where the latest reports are (default .embedctl/reports)'],
    ['--max-evidence-age <duration>', 'older reports are stale -> inconclusive (default 24h)'],
    ['--max-error-rate <rate>', 'error-rate gate and rollback trigger, 0.05 or 5% (rollout.gates.maxErrorRate)'],
    ['--max-p95-ms <ms>', 'p95 latency gate and rollback trigger (default 500; rollout.gates.maxP95Ms)'],
    ['--min-cosine <x>', 'min cosine of the consistency report (default 0.99; rollout.gates.minCosine)'],
    ['--min-overlap <x>', 'mean overlap@10 of the rag-overlap report (default 0.70; rollout.gates.minOverlap)'],
    ['--max-monthly-usd <usd>', 'projected monthly cost (default 500; rollout.gates.maxMonthlyUsd)'],
  ],
  signals: [
    ['--metrics-url <url>', "self-hosted runtime's Prometheus /metrics: live error rate and p95"],
    ['--metrics-api-key <key>', 'Bearer key for --metrics-url (or EMBEDCTL_METRICS_API_KEY)'],
    ['--nginx-access-log <path>', "the gateway's JSON access log: live error rate and p95 of the self-hosted side"],
    ['--window <duration>', 'how far back --nginx-access-log and --metrics-url look for one-off checks (default 5m; watch uses --interval)'],
    ['--metrics-settle <duration>', 'with --metrics-url and no scrape kept inside --window: pause before the second scrape that gives the rate (default 10s, at most 1m; 0 = inconclusive instead)'],
    ['--cloudwatch', "read error rate and p95 from the runtime's CloudWatch EMF metrics (rollout.cloudwatch.*)"],
    ['--cloudwatch-region <region>', 'CloudWatch region (default AWS_REGION)'],
    ['--cloudwatch-namespace <ns>', 'CloudWatch namespace (default Embedctl)'],
    ['--cloudwatch-dimension <name=value>', 'CloudWatch dimension, repeatable (default Deployment=$EMBEDCTL_DEPLOYMENT or main)', true],
  ],
  driver: [
    ['--driver <name>', `how traffic moves: ${DRIVERS.join('|')} (default: the deployment's, else nginx; rollout.driver)`],
    ['--deployment <name>', 'the deployment in .embedctl/state.json whose gateway is moved (default: the only one)'],
    ['--traffic-env <path>', 'env driver: file to write (default .embedctl/traffic.env; env EMBEDCTL_TRAFFIC_ENV_FILE)'],
    ['--k8s-manifests <dir>', "k8s driver: rewrite the canary weight in render's k8s/ (or one file) instead of kubectl"],
    ['--k8s-ingress <name>', 'k8s driver: the ingress-nginx canary Ingress (default embedctl-self-hosted)'],
    ['--k8s-namespace <ns>', 'k8s driver: namespace (default default)'],
    ['--kubectl <path>', 'k8s driver: kubectl binary (default kubectl on PATH)'],
    ['--deploy-file <path>', 'nginx driver: deploy parameters (default .embedctl/deploy.json)'],
    ['--nginx-conf <path>', 'nginx driver: the live nginx.conf'],
    ['--nginx-prefix <dir>', 'nginx driver: the -p prefix nginx runs with'],
    ['--nginx-url <url>', 'nginx driver: where to send sample requests (default: the listen address)'],
    ['--self-hosted <host:port,...>', 'nginx driver: self-hosted upstreams (when not in the deploy file)'],
    ['--hosted-url <url>', 'nginx driver: hosted endpoint (when not in the deploy file)'],
    ['--ssm-instance <id>', "ssm driver: the gateway's EC2 instance (default: the deployment's)"],
    ['--ssm-region <region>', "ssm driver: its region (default: the deployment's, else AWS_REGION)"],
    ['--gateway-url <url>', "ssm driver: the public gateway sampled to confirm the share (default: the deployment's)"],
    ['--samples <n>', 'requests sampled to confirm the share (default 200; 0 = do not sample)'],
    ['--tolerance <points>', 'allowed gap between observed and expected share (default 5)'],
  ],
  confirm: [['--no-confirm', 'rollback: do not sample the gateway, and accept 0 % unconfirmed (exit 0; recorded as unconfirmed)']],
  watch: [
    ['--interval <duration>', 'polling interval (default 30s)'],
    ['--max-duration <duration>', 'stop after this long (default: the dwell)'],
    ['--failure-limit <n>', 'consecutive breaching intervals before rolling back (default 2; rollout.failureLimit)'],
    ['--stale-after <n>', 'intervals without new traffic data before the signal is reported frozen (default 3)'],
  ],
} satisfies Record<string, Opt[]>;

export type OptionGroup = keyof typeof OPTION_GROUPS;

export function addOptions(cmd: Command, groups: OptionGroup[]): Command {
  for (const g of groups) {
    for (const [flags, help, isList] of OPTION_GROUPS[g] as Opt[]) {
      if (isList) cmd.option(flags, help, collect);
      else cmd.option(flags, help);
    }
  }
  return cmd;
}

export interface Settings {
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
  /** Pause before a second /metrics scrape when none is kept inside the window (adapters/prometheus.ts). */
  metricsSettleMs?: number;
  lockWaitMs: number;
}

/** A share as 0.05 or "5%". */
const rateParser = (raw: unknown): number => {
  const s = String(raw).trim();
  const n = s.endsWith('%') ? Number(s.slice(0, -1)) / 100 : Number(s);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`expected a rate like 0.05 or 5%, got ${JSON.stringify(raw)}`);
  return n;
};
export const durationParser = (raw: unknown) => parseDuration(raw);

export function resolveSettings(ctx: Context, o: RolloutOpts): Settings {
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
  const str = (flag: string, v: unknown, file: string, env?: string) => resolveOption(ctx, { flag, flagValue: v, env, file, default: '', parse: parsers.string() }).value || undefined;
  const accessLog = str('--nginx-access-log', o.nginxAccessLog, 'rollout.nginxAccessLog', 'EMBEDCTL_NGINX_ACCESS_LOG');
  const s: Settings = {
    steps: { value: steps.value, source: steps.source },
    dwellMs: { value: dwell.value, source: dwell.source },
    driver: { value: driver.value, source: driver.source },
    gates,
    evidenceDir: resolve(ctx.cwd, str('--evidence-dir', o.evidenceDir, 'rollout.evidenceDir', 'EMBEDCTL_EVIDENCE_DIR') ?? '.embedctl/reports'),
    metricsUrl: resolveOption(ctx, { flag: '--metrics-url', flagValue: o.metricsUrl, env: 'EMBEDCTL_METRICS_URL', file: 'rollout.metricsUrl', default: '', parse: urlParser }).value || undefined,
    metricsApiKey: o.metricsApiKey ?? ctx.env.EMBEDCTL_METRICS_API_KEY,
    nginxAccessLog: accessLog ? resolve(ctx.cwd, accessLog) : undefined,
    windowMs: o.window ? parseFlag('--window', o.window, durationParser) : 300_000,
    ...(o.metricsSettle !== undefined ? { metricsSettleMs: parseFlag('--metrics-settle', o.metricsSettle, durationParser) } : {}),
    lockWaitMs: o.lockWait ? parseFlag('--lock-wait', o.lockWait, durationParser) : 0,
  };
  if (o.cloudwatch) s.cloudwatch = cloudwatchSource(ctx, o);
  return s;
}

function cloudwatchSource(ctx: Context, o: RolloutOpts): CloudWatchSource {
  const region = o.cloudwatchRegion ?? ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION;
  if (!region) throw new UsageError('needs a region: --cloudwatch-region or AWS_REGION', { field: '--cloudwatch' });
  const given = (o.cloudwatchDimension ?? []).map((d) => {
    const m = /^([^=]+)=(.+)$/.exec(d);
    if (!m) throw new UsageError(`expected name=value, got ${JSON.stringify(d)}`, { field: '--cloudwatch-dimension' });
    return { Name: m[1]!, Value: m[2]! };
  });
  const str = (file: string, def: string) => resolveOption(ctx, { flag: file, flagValue: undefined, file, default: def, parse: parsers.string() }).value;
  return {
    region,
    namespace: o.cloudwatchNamespace ?? str('rollout.cloudwatch.namespace', CLOUDWATCH_DEFAULTS.namespace),
    // The runtime's metrics carry exactly one dimension, Deployment (runtime/emf.ts).
    dimensions: given.length ? given : defaultCloudWatchDimensions(o.deployment ? { EMBEDCTL_DEPLOYMENT: o.deployment } : ctx.env),
    requestsMetric: str('rollout.cloudwatch.requestsMetric', CLOUDWATCH_DEFAULTS.requestsMetric),
    errorsMetric: str('rollout.cloudwatch.errorsMetric', CLOUDWATCH_DEFAULTS.errorsMetric),
    latencyMetric: str('rollout.cloudwatch.latencyMetric', CLOUDWATCH_DEFAULTS.latencyMetric),
    latencyStat: str('rollout.cloudwatch.latencyStat', CLOUDWATCH_DEFAULTS.latencyStat),
    windowSeconds: 300,
  };
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
