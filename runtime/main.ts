/**
 * The runtime's process entry point (the container's ENTRYPOINT):
 *   node dist/runtime/main.js --model default --port 8080 --ep cuda,cpu
 * Every line on stderr is one JSON event, so container logs can be shipped and queried as they
 * are: "listening" (socket bound, url and port known; /ready still 503 while the model loads),
 * "ready" (model loaded and warmed up, /ready 200), "request" (access log), "stopping",
 * "draining", "closed", "exit"; "usage_error" or "fatal" on failure. SIGTERM/SIGINT: /ready turns 503, new
 * requests get 503, everything admitted is answered, then exit 0.
 * A loaded model that dies (its worker thread: a native crash, out of memory) cannot come back in
 * this process, and a process that stays up answering 503 is never restarted by Docker's restart
 * policy: "model_failed", one "fatal" line, a short drain, exit 1. EMBEDCTL_EXIT_ON_MODEL_FAULT=0
 * keeps it running (503 from then on) for a supervisor that replaces unready replicas itself.
 */
import { parseArgs } from 'node:util';
import {
  EMF_OPTION_SPECS,
  GATEWAY_LOG_OPTION_SPECS,
  OPTION_SPECS,
  flagName,
  resolveEmfOptions,
  resolveGatewayLogOptions,
  resolveRuntimeOptions,
  type EmfOptions,
  type GatewayLogOptions,
  type RuntimeOptions,
} from '../common/runtime-options.js';
import { startEmfReporter, type EmfReporter } from './hooks/emf.js';
import { startGatewayLogFollower, type GatewayLogFollower } from './hooks/gateway-log.js';
import { modelSpecs, startApp } from './start.js';

/**
 * stderr is a pipe under Docker and systemd, and Node writes to pipes synchronously on Linux: one
 * write(2) per access-log line cost the event loop a syscall per request (5 % of its time under a
 * 1,024-client load). Lines are collected and written once per event-loop turn; anything but a
 * "request" line (lifecycle, errors) flushes at once, and so does exit.
 */
let pending: string[] = [];
let flushScheduled = false;
const flush = () => {
  flushScheduled = false;
  if (pending.length === 0) return;
  const out = pending.join('');
  pending = [];
  process.stderr.write(out);
};
process.on('exit', flush);
const emit = (event: Record<string, unknown>) => {
  pending.push(`${JSON.stringify({ ts: new Date().toISOString(), ...event })}\n`);
  if (event.event !== 'request') flush();
  else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
};

const USAGE = `usage: node dist/runtime/main.js [options]\n${[...OPTION_SPECS, ...EMF_OPTION_SPECS, ...GATEWAY_LOG_OPTION_SPECS].map((s) => `  ${s.flag.padEnd(28)} ${s.description} (env ${s.env})`).join('\n')}\n`;

const emfFlag = (s: { flag: string }) => s.flag.split(' ')[0]!.slice(2);

/** The longest a runtime whose model died waits for other requests before it exits. */
const FAULT_DRAIN_MS = 5000;

/** EMBEDCTL_EXIT_ON_MODEL_FAULT: on unless 0/false/off/no. */
const exitOnModelFault = (v: string | undefined) => !/^(0|false|off|no)$/i.test((v ?? '').trim());

function parseCli(argv: string[]): { opts: RuntimeOptions; emf: EmfOptions; gateway: GatewayLogOptions } | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      // Repeatable: --model a --model b serves both (joined with commas, as the env var takes them).
      ...Object.fromEntries(OPTION_SPECS.map((s) => [flagName(s).slice(2), { type: 'string' as const, multiple: true as const }])),
      ...Object.fromEntries([...EMF_OPTION_SPECS, ...GATEWAY_LOG_OPTION_SPECS].map((s) => [emfFlag(s), { type: 'string' as const }])),
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const flagValue = (name: string) => {
    const v = (values as Record<string, unknown>)[name];
    if (!Array.isArray(v)) return v;
    // Only lists join; any other flag given twice means its last value, as before.
    return name === 'model' || name === 'model-alias' ? v.join(',') : v[v.length - 1];
  };
  const opts = resolveRuntimeOptions((s) => flagValue(flagName(s).slice(2)), process.env);
  modelSpecs(opts); // throws on an alias naming no model: a usage error, before anything loads
  return {
    opts,
    emf: resolveEmfOptions((s) => flagValue(emfFlag(s)), process.env),
    gateway: resolveGatewayLogOptions((s) => flagValue(emfFlag(s)), process.env),
  };
}

async function run(): Promise<number> {
  let parsed: ReturnType<typeof parseCli>;
  try {
    parsed = parseCli(process.argv.slice(2));
  } catch (err) {
    emit({ event: 'usage_error', error: (err as Error).message });
    process.stderr.write(USAGE);
    return 2;
  }
  if (!parsed) {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = parsed.opts;
  const emfOpts = parsed.emf;
  let modelFault: ((e: { model: string; error: string }) => void) | undefined;
  // The server listens at once (answering /ready 503) while the models load and warm up.
  const app = await startApp(o, { log: emit, modelLog: (message: string) => emit({ event: 'model', message }), processMetrics: true, onModelFault: (e) => modelFault?.(e) });
  const { server } = app;
  emit({ event: 'listening', url: server.url, port: server.port, model: o.model, auth: o.apiKey ? 'bearer' : 'none' });
  let emf: EmfReporter | undefined;
  if (emfOpts.emfLog) {
    emf = startEmfReporter({
      metrics: server.metrics,
      path: emfOpts.emfLog,
      intervalMs: emfOpts.emfIntervalMs,
      deployment: emfOpts.deployment,
      // Metrics are not worth an outage: say so once per distinct failure and keep serving.
      onError: (err) => emit({ event: 'emf_error', path: emfOpts.emfLog, error: err.message }),
    });
    emit({ event: 'emf', path: emfOpts.emfLog, intervalSeconds: emfOpts.emfIntervalMs / 1000, deployment: emfOpts.deployment });
  }
  let gatewayLog: GatewayLogFollower | undefined;
  if (parsed.gateway.gatewayLog) {
    gatewayLog = startGatewayLogFollower({ path: parsed.gateway.gatewayLog, from: parsed.gateway.gatewayLogFrom, registry: server.metrics.registry, onEvent: emit });
  }

  let stopping: Promise<number> | undefined;
  /** `code`: the exit code when the drain completes (a drain that times out exits 1). */
  const stop = (reason: string, opts: { timeoutMs?: number; code?: number } = {}) =>
    (stopping ??= (async () => {
      emit({ event: 'stopping', reason });
      const { timedOut } = await app.stop({ timeoutMs: opts.timeoutMs });
      if (timedOut) emit({ event: 'drain_timeout', ms: Math.min(o.drainTimeoutMs, opts.timeoutMs ?? Number.POSITIVE_INFINITY) });
      // After the drain, so the last line counts the requests answered while draining.
      await emf?.stop();
      await gatewayLog?.stop();
      const code = opts.code || (timedOut ? 1 : 0);
      emit({ event: 'exit', code });
      return code;
    })());

  const signalled = new Promise<number>((resolve) => {
    process.once('SIGTERM', () => resolve(stop('SIGTERM')));
    process.once('SIGINT', () => resolve(stop('SIGINT')));
  });
  const faulted = new Promise<number>((resolve) => {
    if (!exitOnModelFault(process.env.EMBEDCTL_EXIT_ON_MODEL_FAULT)) return;
    modelFault = (e) => {
      modelFault = undefined;
      emit({ event: 'fatal', model: e.model, error: `the model failed: ${e.error}; exiting so that the supervisor restarts the runtime` });
      resolve(stop('model failed', { timeoutMs: FAULT_DRAIN_MS, code: 1 }));
    };
  });
  try {
    // A model that dies while another is still loading ends the wait too.
    if ((await Promise.race([server.ready.then(() => undefined), faulted])) !== undefined) return faulted;
  } catch (err) {
    emit({ event: 'fatal', error: (err as Error).message });
    // A bad --model is the caller's to fix (2); anything else is the environment's (1).
    const code = (err as { exitCode?: unknown }).exitCode === 2 ? 2 : 1;
    await stop('model failed to load', { code });
    return code;
  }
  return Promise.race([signalled, faulted]);
}

run().then(
  (code) => {
    process.exitCode = code;
    // Sockets and timers are closed by now; do not let a stray handle keep the container alive.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    emit({ event: 'fatal', error: err instanceof Error ? err.message : String(err) });
    // A bad --keys-file or --jwt-secret is the caller's to fix (UsageError, 2).
    process.exit((err as { exitCode?: unknown }).exitCode === 2 ? 2 : 1);
  },
);
