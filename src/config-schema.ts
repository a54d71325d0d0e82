import { existsSync } from 'node:fs';
import { OPTION_SPECS } from '../common/runtime-options.js';
import { loadProjectConfig, projectConfigPath } from './config.js';
import type { Context } from './context.js';
import { UsageError } from './errors.js';
import { FIELDS } from './core/deploy-config.js';
import { parserOf, type OptionTable } from './commands/define.js';
import { COST_OPTIONS, RAG_OPTIONS, STATUS_OPTIONS, TEARDOWN_OPTIONS, VERIFY_OPTIONS } from './commands/define-options.js';

/**
 * embedctl.yaml as a whole: every key the commands read, with its parser, so a typo anywhere is
 * refused (exit 2, naming the key and the nearest known one) before any command runs, instead of
 * being silently ignored, and a bad value names the key and what to write instead.
 */

export interface ConfigKey {
  /** Dotted path, e.g. verify.minCosine. */
  path: string;
  flag?: string;
  env?: string;
  default?: string;
  /** Checks a value; undefined where the reading command checks it (not yet on an option table). */
  parse?: (raw: unknown) => unknown;
}

/**
 * Keys read by commands that resolve their options by hand (rollout, load-test, provision):
 * checked for spelling here, for their values by the command. They move to option tables with
 * their commands.
 */
const BY_HAND: Array<[path: string, flag?: string, env?: string]> = [
  ['rollout.steps', '--steps', 'EMBEDCTL_ROLLOUT_STEPS'],
  ['rollout.dwell', '--dwell', 'EMBEDCTL_ROLLOUT_DWELL'],
  ['rollout.driver', '--driver', 'EMBEDCTL_ROLLOUT_DRIVER'],
  ['rollout.maxEvidenceAge', '--max-evidence-age', 'EMBEDCTL_ROLLOUT_MAX_EVIDENCE_AGE'],
  ['rollout.evidenceDir', '--evidence-dir', 'EMBEDCTL_EVIDENCE_DIR'],
  ['rollout.metricsUrl', '--metrics-url', 'EMBEDCTL_METRICS_URL'],
  ['rollout.nginxAccessLog', '--nginx-access-log', 'EMBEDCTL_NGINX_ACCESS_LOG'],
  ['rollout.failureLimit', '--failure-limit', 'EMBEDCTL_ROLLOUT_FAILURE_LIMIT'],
  ['rollout.gates.maxErrorRate', '--max-error-rate', 'EMBEDCTL_ROLLOUT_MAX_ERROR_RATE'],
  ['rollout.gates.maxP95Ms', '--max-p95-ms', 'EMBEDCTL_ROLLOUT_MAX_P95_MS'],
  ['rollout.gates.minCosine', '--min-cosine', 'EMBEDCTL_ROLLOUT_MIN_COSINE'],
  ['rollout.gates.minOverlap', '--min-overlap', 'EMBEDCTL_ROLLOUT_MIN_OVERLAP'],
  ['rollout.gates.maxMonthlyUsd', '--max-monthly-usd', 'EMBEDCTL_ROLLOUT_MAX_MONTHLY_USD'],
  ...['targetErrorRate', 'targetP95Ms', 'targetCosine', 'targetOverlap'].map((k): [string] => [`rollout.gates.${k}`]),
  ...['namespace', 'requestsMetric', 'errorsMetric', 'latencyMetric', 'latencyStat'].map((k): [string] => [`rollout.cloudwatch.${k}`]),
  ['loadTest.target', '--target', 'EMBEDCTL_LOAD_TEST_TARGET'],
  ['loadTest.p95Ms', '--p95', 'EMBEDCTL_LOAD_TEST_P95'],
  ['loadTest.maxErrorRate', '--max-error-rate', 'EMBEDCTL_LOAD_TEST_MAX_ERROR_RATE'],
  ['loadTest.engine', '--engine', 'EMBEDCTL_LOAD_TEST_ENGINE'],
  ['provision.allowCidr', '--allow-cidr', 'EMBEDCTL_ALLOW_CIDR'],
  ['provision.instanceType', '--instance-type', 'EMBEDCTL_INSTANCE_TYPE'],
  ['provision.market', '--market', 'EMBEDCTL_MARKET'],
  ['provision.name', '--name', 'EMBEDCTL_DEPLOYMENT'],
  ['provision.volumeSize', '--volume-size'],
  ['provision.monthlyBudget', '--monthly-budget'],
  ['aws.region', '--region', 'EMBEDCTL_REGION'],
];

const TABLES: OptionTable[] = [COST_OPTIONS, VERIFY_OPTIONS, RAG_OPTIONS, STATUS_OPTIONS, TEARDOWN_OPTIONS];

const longFlag = (flag: string) => flag.split(/[ ,]+/).find((w) => w.startsWith('--'));

export function configKeys(): ConfigKey[] {
  const keys: ConfigKey[] = [];
  for (const table of TABLES) {
    for (const def of Object.values(table)) {
      if (!def.yaml || keys.some((k) => k.path === def.yaml)) continue;
      keys.push({ path: def.yaml, flag: longFlag(def.flag), env: def.env, default: def.defaultText ?? (def.default === undefined ? undefined : String(def.default)), parse: parserOf(def) });
    }
  }
  for (const [key, f] of Object.entries(FIELDS)) {
    const schema = f.schema as { safeParse(raw: unknown): { success: boolean; error?: { issues: Array<{ message: string }> } } };
    const parse = (raw: unknown) => {
      const out = schema.safeParse(raw);
      if (!out.success) throw new Error(out.error?.issues[0]?.message ?? 'invalid value');
    };
    keys.push({ path: `deploy.${key}`, flag: f.flag, env: f.env, default: String(f.default), parse });
  }
  for (const s of OPTION_SPECS) keys.push({ path: `serve.${s.key}`, flag: longFlag(s.flag), env: s.env, default: s.default === undefined ? undefined : String(s.default), parse: (raw) => s.parse(raw) });
  for (const [path, flag, env] of BY_HAND) keys.push({ path, flag, env });
  return keys;
}

/** Levenshtein distance, case-insensitive (minCosine ~ mincosine). */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/** The known key (or section) a mistyped path most likely meant. */
export function nearestKey(path: string, known: string[]): string | undefined {
  const parts = path.split('.');
  const last = parts[parts.length - 1]!;
  const parent = parts.slice(0, -1).join('.');
  // Siblings first (verify.minCosin -> verify.minCosine), then the same name elsewhere
  // (minCosine at the top -> verify.minCosine), then the closest path of all.
  const names = new Set<string>();
  for (const k of known) {
    const segs = k.split('.');
    for (let i = 1; i <= segs.length; i++) names.add(segs.slice(0, i).join('.'));
  }
  const siblings = [...names].filter((n) => n.split('.').length === parts.length && n.startsWith(parent ? `${parent}.` : ''));
  const score = (cands: string[], of: (c: string) => string, target: string) =>
    cands.map((c) => ({ c, d: distance(of(c), target) })).sort((a, b) => a.d - b.d || a.c.localeCompare(b.c))[0];
  const lastOf = (c: string) => c.split('.').pop()!;
  const sib = score(siblings, lastOf, last);
  if (sib && sib.d <= Math.max(2, Math.floor(last.length / 3))) return sib.c;
  const elsewhere = score([...names], lastOf, last);
  if (elsewhere && elsewhere.d <= Math.max(1, Math.floor(last.length / 4))) return elsewhere.c;
  return undefined;
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Refuses an embedctl.yaml with an unknown key or a bad value; nothing to do without one. */
export function checkProjectConfig(ctx: Pick<Context, 'env' | 'cwd'>): void {
  if (!existsSync(projectConfigPath(ctx))) return;
  const { data } = loadProjectConfig(ctx);
  const keys = configKeys();
  const byPath = new Map(keys.map((k) => [k.path, k]));
  const sections = new Set(keys.flatMap((k) => k.path.split('.').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('.'))));
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${name}` : name;
      const key = byPath.get(path);
      if (key) {
        if (value === null || value === undefined || !key.parse) continue;
        try {
          key.parse(value);
        } catch (err) {
          // One line: what is wrong, and what to write instead.
          const fix = [key.default !== undefined && `default ${key.default}`, key.flag && `or override it with ${key.flag}`].filter(Boolean).join(', ');
          throw new UsageError(`${(err as Error).message}${fix ? ` (${fix})` : ''}`, { field: `embedctl.yaml: ${path}` });
        }
      } else if (sections.has(path)) {
        if (value === null || value === undefined) continue;
        if (!isMapping(value)) throw new UsageError(`expected a mapping of settings, got ${JSON.stringify(value)}`, { field: `embedctl.yaml: ${path}` });
        walk(value, path);
      } else {
        const near = nearestKey(path, keys.map((k) => k.path));
        const siblings = [...sections, ...byPath.keys()].filter((x) => x.split('.').length === path.split('.').length && x.startsWith(prefix ? `${prefix}.` : '')).sort();
        throw new UsageError(near ? `unknown key (did you mean ${near}?)` : `unknown key (known here: ${siblings.map((x) => x.split('.').pop()).join(', ')})`, { field: `embedctl.yaml: ${path}` });
      }
    }
  };
  walk(data, '');
}
