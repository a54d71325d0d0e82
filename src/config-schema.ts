import { existsSync } from 'node:fs';
import { OPTION_SPECS } from '../common/runtime-options.js';
import { parseDuration } from '../common/values.js';
import { loadProjectConfig, parsers, projectConfigPath } from './config.js';
import { parseSteps } from './core/rollout/plan.js';
import { DRIVERS } from './core/rollout/types.js';
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
 * Keys read by commands that resolve their options by hand (rollout, load-test, provision): their
 * spelling is checked here and, where the parser is the command's own shared one, their value too.
 * They move to option tables with their commands.
 */
const num = (min: number, max?: number, integer = false) => parsers.number({ min, max, integer });
const share = (raw: unknown) => {
  const t = String(raw).trim();
  const n = t.endsWith('%') ? Number(t.slice(0, -1)) / 100 : Number(t);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`expected a rate like 0.05 or 5%, got ${JSON.stringify(raw)}`);
  return n;
};
type ByHand = [path: string, flag?: string, env?: string, parse?: (raw: unknown) => unknown];
const BY_HAND: ByHand[] = [
  ['rollout.steps', '--steps', 'EMBEDCTL_ROLLOUT_STEPS', parseSteps],
  ['rollout.dwell', '--dwell', 'EMBEDCTL_ROLLOUT_DWELL', parseDuration],
  ['rollout.driver', '--driver', 'EMBEDCTL_ROLLOUT_DRIVER', parsers.oneOf(DRIVERS)],
  ['rollout.maxEvidenceAge', '--max-evidence-age', 'EMBEDCTL_ROLLOUT_MAX_EVIDENCE_AGE', parseDuration],
  ['rollout.evidenceDir', '--evidence-dir', 'EMBEDCTL_EVIDENCE_DIR', parsers.string()],
  ['rollout.metricsUrl', '--metrics-url', 'EMBEDCTL_METRICS_URL'],
  ['rollout.nginxAccessLog', '--nginx-access-log', 'EMBEDCTL_NGINX_ACCESS_LOG', parsers.string()],
  ['rollout.failureLimit', '--failure-limit', 'EMBEDCTL_ROLLOUT_FAILURE_LIMIT', num(1, 1000, true)],
  ['rollout.gates.maxErrorRate', '--max-error-rate', 'EMBEDCTL_ROLLOUT_MAX_ERROR_RATE', share],
  ['rollout.gates.maxP95Ms', '--max-p95-ms', 'EMBEDCTL_ROLLOUT_MAX_P95_MS', num(0)],
  ['rollout.gates.minCosine', '--min-cosine', 'EMBEDCTL_ROLLOUT_MIN_COSINE', num(-1, 1)],
  ['rollout.gates.minOverlap', '--min-overlap', 'EMBEDCTL_ROLLOUT_MIN_OVERLAP', num(0, 1)],
  ['rollout.gates.maxMonthlyUsd', '--max-monthly-usd', 'EMBEDCTL_ROLLOUT_MAX_MONTHLY_USD', num(0)],
  ['rollout.gates.targetErrorRate', undefined, undefined, share],
  ['rollout.gates.targetP95Ms', undefined, undefined, num(0)],
  ['rollout.gates.targetCosine', undefined, undefined, num(-1, 1)],
  ['rollout.gates.targetOverlap', undefined, undefined, num(0, 1)],
  ...['namespace', 'requestsMetric', 'errorsMetric', 'latencyMetric', 'latencyStat'].map((k): ByHand => [`rollout.cloudwatch.${k}`, undefined, undefined, parsers.string()]),
  ['loadTest.target', '--target', 'EMBEDCTL_LOAD_TEST_TARGET', parsers.string()],
  ['loadTest.p95Ms', '--p95', 'EMBEDCTL_LOAD_TEST_P95', num(1)],
  ['loadTest.maxErrorRate', '--max-error-rate', 'EMBEDCTL_LOAD_TEST_MAX_ERROR_RATE', num(0, 1)],
  ['loadTest.engine', '--engine', 'EMBEDCTL_LOAD_TEST_ENGINE', parsers.oneOf(['auto', 'k6', 'autocannon'] as const)],
  ['provision.allowCidr', '--allow-cidr', 'EMBEDCTL_ALLOW_CIDR'],
  ['provision.instanceType', '--instance-type', 'EMBEDCTL_INSTANCE_TYPE', parsers.string()],
  ['provision.market', '--market', 'EMBEDCTL_MARKET', parsers.oneOf(['on-demand', 'spot'] as const)],
  ['provision.name', '--name', 'EMBEDCTL_DEPLOYMENT', parsers.string()],
  ['provision.volumeSize', '--volume-size', undefined, num(100, 16384, true)],
  ['provision.monthlyBudget', '--monthly-budget', undefined, num(1, 10_000_000)],
  ['aws.region', '--region', 'EMBEDCTL_REGION', parsers.string()],
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
  for (const [path, flag, env, parse] of BY_HAND) keys.push({ path, flag, env, parse });
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
