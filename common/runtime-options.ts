/**
 * The runtime's settings, shared by `embedctl serve` (flags > EMBEDCTL_* env > embedctl.yaml
 * `serve:` > defaults) and the container entry point runtime/main.ts (flags > env > defaults).
 * Each parser throws an Error whose message says what is expected; callers prefix the source.
 */
import { parseBoolean } from './values.js';
import { DEPLOYMENT_RE } from './service-metrics.js';
import { SERVING_OPTION_SPECS, type ServingOptions } from './serving-options.js';

/** Server defaults (runtime/app.ts applies them to anything left unset). */
export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  maxBatchTokens: 16384,
  maxBatchSize: 64,
  maxQueue: 8192,
  maxWaitMs: 0,
  maxQueueMs: 2000,
  maxRequestTokens: 300_000,
} as const;

/**
 * The body limit that fits the token cap: a request within --max-request-tokens needs about 4
 * bytes a token of English text (16 leaves room for JSON escaping, other scripts and truncated
 * inputs); at least 1 MiB. Bigger bodies get a 413 before anything is parsed.
 */
export const bodyLimitFor = (maxRequestTokens: number) => Math.max(2 ** 20, Math.min(64 * 2 ** 20, maxRequestTokens * 16));

export const PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;

export interface RuntimeOptions extends ServingOptions {
  /** One model, or several comma-separated (a repeated --model is joined so): routed by `model`. */
  model: string;
  /** "alias" (for the first model) or "alias=model", comma-separated. */
  modelAlias: string | undefined;
  host: string;
  port: number;
  providers: string[];
  maxBatchTokens: number;
  maxBatchSize: number;
  maxQueue: number;
  maxWaitMs: number;
  maxQueueMs: number;
  maxRequestTokens: number;
  maxPadding: number | undefined;
  /** undefined = bodyLimitFor(maxRequestTokens). */
  maxBodyBytes: number | undefined;
  apiKey: string | undefined;
  modelName: string | undefined;
  drainTimeoutMs: number;
  deviceId: number;
  faultInjection: boolean;
  modelWorker: 'on' | 'off' | 'auto';
}

export interface OptionSpec<K extends keyof RuntimeOptions = keyof RuntimeOptions> {
  key: K;
  /** Flag as typed, with its value placeholder for help: "--port <n>". */
  flag: string;
  env: string;
  description: string;
  default: RuntimeOptions[K];
  parse(raw: unknown): RuntimeOptions[K];
  /** Never echoed in logs or errors. */
  secret?: boolean;
}

function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: unknown): number => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw.replace(/_/g, '')) : NaN;
    if (!Number.isInteger(n)) throw new Error(`expected a whole number, got ${JSON.stringify(raw)}`);
    if (n < min || n > max) throw new Error(`must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

function fraction(raw: unknown): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!(n >= 0 && n <= 1)) throw new Error(`expected a fraction between 0 and 1, got ${JSON.stringify(raw)}`);
  return n;
}

/** The one boolean vocabulary of flags, env and embedctl.yaml (./values.ts). */
const onOff = parseBoolean;

function onOffAuto(raw: unknown): 'on' | 'off' | 'auto' {
  const v = String(raw).trim().toLowerCase();
  if (v === 'auto') return 'auto';
  try {
    return onOff(v) ? 'on' : 'off';
  } catch {
    throw new Error(`expected on, off or auto, got ${JSON.stringify(raw)}`);
  }
}

function str(raw: unknown): string {
  if (typeof raw !== 'string' || raw.trim() === '') throw new Error('expected a non-empty value');
  return raw.trim();
}

function providers(raw: unknown): string[] {
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (list.length === 0) throw new Error(`expected a comma-separated list of ${PROVIDERS.join(', ')}`);
  for (const p of list) {
    if (!(PROVIDERS as readonly string[]).includes(p)) throw new Error(`unknown execution provider "${p}"; use ${PROVIDERS.join(', ')}`);
  }
  return [...new Set(list)];
}

const spec = <K extends keyof RuntimeOptions>(s: OptionSpec<K>) => s as unknown as OptionSpec;

export const OPTION_SPECS: OptionSpec[] = [
  spec({ key: 'model', flag: '--model <name|dir>', env: 'EMBEDCTL_MODEL', description: 'model bundle: default, default-q, tiny-bert, a directory or a hub id; repeat (or comma-separate) to serve several', default: 'default', parse: str }),
  spec({ key: 'modelAlias', flag: '--model-alias <list>', env: 'EMBEDCTL_MODEL_ALIAS', description: 'other names clients may send as "model": alias (first model) or alias=model, comma-separated', default: undefined, parse: str }),
  spec({ key: 'host', flag: '--host <addr>', env: 'EMBEDCTL_HOST', description: 'address to listen on (0.0.0.0 in a container)', default: DEFAULTS.host, parse: str }),
  spec({ key: 'port', flag: '--port <n>', env: 'EMBEDCTL_PORT', description: 'port to listen on (0 = any free port)', default: DEFAULTS.port, parse: int(0, 65535) }),
  spec({ key: 'providers', flag: '--ep <list>', env: 'EMBEDCTL_EP', description: 'execution providers to try, in order (cuda,webgpu,cpu)', default: ['cpu'], parse: providers }),
  spec({ key: 'maxBatchTokens', flag: '--max-batch-tokens <n>', env: 'EMBEDCTL_MAX_BATCH_TOKENS', description: 'padded tokens per model batch', default: DEFAULTS.maxBatchTokens, parse: int(1) }),
  spec({ key: 'maxBatchSize', flag: '--max-batch-size <n>', env: 'EMBEDCTL_MAX_BATCH_SIZE', description: 'inputs per model batch', default: DEFAULTS.maxBatchSize, parse: int(1, 100_000) }),
  spec({ key: 'maxQueue', flag: '--max-queue <n>', env: 'EMBEDCTL_MAX_QUEUE', description: 'inputs admitted and not yet answered before 429', default: DEFAULTS.maxQueue, parse: int(1) }),
  spec({ key: 'maxQueueMs', flag: '--max-queue-ms <ms>', env: 'EMBEDCTL_MAX_QUEUE_MS', description: 'latency budget: refuse (429, honest Retry-After) a request whose expected wait, queued tokens / measured throughput, is over it, or that is still queued after it (0 = off)', default: DEFAULTS.maxQueueMs, parse: int(0, 600_000) }),
  spec({ key: 'maxRequestTokens', flag: '--max-request-tokens <n>', env: 'EMBEDCTL_MAX_REQUEST_TOKENS', description: 'most tokens one request may send through the model, after truncation (413 over it)', default: DEFAULTS.maxRequestTokens, parse: int(1) }),
  spec({ key: 'maxWaitMs', flag: '--max-wait-ms <ms>', env: 'EMBEDCTL_MAX_WAIT_MS', description: 'how long a partial batch waits for company', default: DEFAULTS.maxWaitMs, parse: int(0, 10_000) }),
  spec({ key: 'maxPadding', flag: '--max-padding <fraction>', env: 'EMBEDCTL_MAX_PADDING', description: 'largest share of a batch that may be padding, 0..1 (default 0.3 on cpu, 1 on gpu)', default: undefined, parse: fraction }),
  spec({ key: 'maxBodyBytes', flag: '--max-body-bytes <n>', env: 'EMBEDCTL_MAX_BODY_BYTES', description: 'largest request body before 413 (default: 16 bytes per --max-request-tokens, at least 1 MiB)', default: undefined, parse: int(1024) }),
  spec({ key: 'apiKey', flag: '--api-key <key>', env: 'EMBEDCTL_API_KEY', description: 'require "Authorization: Bearer <key>" (prefer the env var: flags show in ps)', default: undefined, parse: str, secret: true }),
  spec({ key: 'modelName', flag: '--model-name <name>', env: 'EMBEDCTL_MODEL_NAME', description: 'model name reported to clients (default: the bundle name)', default: undefined, parse: str }),
  spec({ key: 'drainTimeoutMs', flag: '--drain-timeout-ms <ms>', env: 'EMBEDCTL_DRAIN_TIMEOUT_MS', description: 'longest wait for in-flight requests on shutdown', default: 30_000, parse: int(0) }),
  spec({ key: 'deviceId', flag: '--device-id <n>', env: 'EMBEDCTL_DEVICE_ID', description: 'GPU to run on (cuda provider), as nvidia-smi numbers them', default: 0, parse: int(0, 1023) }),
  spec({ key: 'faultInjection', flag: '--fault-injection <on|off>', env: 'EMBEDCTL_FAULT_INJECTION', description: 'enable POST /admin/fault from loopback (rehearsals and drills only: makes the server answer errors on demand)', default: false, parse: onOff }),
  spec({ key: 'modelWorker', flag: '--model-worker <on|off|auto>', env: 'EMBEDCTL_MODEL_WORKER', description: 'run the model in a worker thread so HTTP and tokenising go on while a batch runs (auto = on for cuda/webgpu, off for cpu)', default: 'auto', parse: onOffAuto }),
  // Cache, per-caller limits, keys, JWT, admin (issue 17): common/serving-options.ts.
  ...(SERVING_OPTION_SPECS as unknown as OptionSpec[]),
];

/** "--max-batch-tokens <n>" -> "--max-batch-tokens". */
export const flagName = (s: OptionSpec) => s.flag.split(' ')[0]!;

/**
 * Resolves every option from `get(spec)` (a flag value or undefined), then the env var, then the
 * default. Throws an Error naming the flag or variable the bad value came from.
 */
export function resolveRuntimeOptions(
  get: (s: OptionSpec) => unknown,
  env: Record<string, string | undefined>,
): RuntimeOptions {
  return resolveSpecs(OPTION_SPECS, get, env) as unknown as RuntimeOptions;
}

/** flag > env > default for any list of specs; errors name the flag or variable at fault. */
function resolveSpecs<S extends { key: string; flag: string; env: string; default: unknown; parse(raw: unknown): unknown }>(
  specs: readonly S[],
  get: (s: S) => unknown,
  env: Record<string, string | undefined>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of specs) {
    const flagVal = get(s);
    const envVal = env[s.env];
    const [raw, origin] = flagVal !== undefined ? [flagVal, s.flag.split(' ')[0]!] : envVal !== undefined && envVal !== '' ? [envVal, s.env] : [undefined, ''];
    if (raw === undefined) {
      out[s.key] = s.default;
      continue;
    }
    try {
      out[s.key] = s.parse(raw);
    } catch (err) {
      throw new Error(`${origin}: ${(err as Error).message}`);
    }
  }
  return out;
}

/* ---------------------------------------------------------------------------------------------- */
/* CloudWatch EMF metrics (runtime/hooks/emf.ts). Only the container entry point (runtime/main.ts) reads  */
/* these: they live apart from OPTION_SPECS so `embedctl serve` shows no flag it would ignore.      */

export interface EmfOptions {
  /** File the EMF lines are appended to; undefined = no EMF reporting. */
  emfLog: string | undefined;
  emfIntervalMs: number;
  /** The Deployment dimension: provision's --name, so its alarms find these metrics. */
  deployment: string;
}

/** An option of the entry point only (EMF, gateway log): flag > env > default. */
export interface OptionSpecOf<T> {
  key: keyof T;
  flag: string;
  env: string;
  description: string;
  default: T[keyof T];
  parse(raw: unknown): T[keyof T];
}

export type EmfOptionSpec = OptionSpecOf<EmfOptions>;

function seconds(min: number, max: number) {
  return (raw: unknown): number => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw.trim().replace(/s$/, '')) : NaN;
    if (!Number.isFinite(n)) throw new Error(`expected seconds (e.g. 60), got ${JSON.stringify(raw)}`);
    if (n < min || n > max) throw new Error(`must be between ${min} and ${max} seconds, got ${n}`);
    return Math.round(n * 1000);
  };
}

function dimensionValue(raw: unknown): string {
  const v = str(raw);
  if (!DEPLOYMENT_RE.test(v)) throw new Error(`expected a deployment name (letters, digits, . _ -; as given to provision --name), got ${JSON.stringify(raw)}`);
  return v;
}

export const EMF_OPTION_SPECS: EmfOptionSpec[] = [
  { key: 'emfLog', flag: '--emf-log <path>', env: 'EMBEDCTL_EMF_LOG', description: 'append CloudWatch Embedded Metric Format lines to this file (off by default)', default: undefined, parse: str },
  { key: 'emfIntervalMs', flag: '--emf-interval <s>', env: 'EMBEDCTL_EMF_INTERVAL', description: 'seconds between EMF lines', default: 60_000, parse: seconds(0.05, 3600) },
  { key: 'deployment', flag: '--deployment <name>', env: 'EMBEDCTL_DEPLOYMENT', description: 'value of the Deployment dimension of the EMF metrics', default: 'main', parse: dimensionValue },
];

/** resolveRuntimeOptions for EMF_OPTION_SPECS: flag > env > default, errors name the source. */
export function resolveEmfOptions(get: (s: EmfOptionSpec) => unknown, env: Record<string, string | undefined>): EmfOptions {
  return resolveSpecs(EMF_OPTION_SPECS, get, env) as unknown as EmfOptions;
}

/* ---------------------------------------------------------------------------------------------- */
/* The gateway's access log (runtime/hooks/gateway-log.ts): container entry point only, as above.  */

export interface GatewayLogOptions {
  /** nginx's embedctl_json access log to follow; undefined = no embedctl_gateway_* metrics. */
  gatewayLog: string | undefined;
  gatewayLogFrom: 'end' | 'start';
}

function fromWhere(raw: unknown): 'end' | 'start' {
  const v = String(raw).trim().toLowerCase();
  if (v !== 'end' && v !== 'start') throw new Error(`expected end or start, got ${JSON.stringify(raw)}`);
  return v;
}

export const GATEWAY_LOG_OPTION_SPECS: Array<OptionSpecOf<GatewayLogOptions>> = [
  { key: 'gatewayLog', flag: '--gateway-log <path>', env: 'EMBEDCTL_GATEWAY_LOG', description: "follow the gateway's JSON access log and export embedctl_gateway_* (split share, fallbacks); give it to one runtime per instance", default: undefined, parse: str },
  { key: 'gatewayLogFrom', flag: '--gateway-log-from <end|start>', env: 'EMBEDCTL_GATEWAY_LOG_FROM', description: 'where the first read of --gateway-log starts: end (only new lines; a restart does not recount) or start', default: 'end', parse: fromWhere },
];

export function resolveGatewayLogOptions(get: (s: OptionSpecOf<GatewayLogOptions>) => unknown, env: Record<string, string | undefined>): GatewayLogOptions {
  return resolveSpecs(GATEWAY_LOG_OPTION_SPECS, get, env) as unknown as GatewayLogOptions;
}
