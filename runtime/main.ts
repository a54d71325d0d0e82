/**
 * The runtime's process entry point (the container's ENTRYPOINT):
 *   node dist/runtime/main.js --model default --port 8080 --ep cuda,cpu
 * Every line on stderr is one JSON event, so container logs can be shipped and queried as they
 * are: "listening" (socket bound, url and port known; /ready still 503 while the model loads),
 * "ready" (model loaded and warmed up, /ready 200), "request" (access log), "stopping",
 * "draining", "closed", "exit"; "usage_error" or "fatal" on failure. SIGTERM/SIGINT: /ready turns 503, new
 * requests get 503, everything admitted is answered, then exit 0.
 */
import { parseArgs } from 'node:util';
import { startEmfReporter, type EmfReporter } from './emf.js';
import { loadRuntimeModel } from './model-worker.js';
import { EMF_OPTION_SPECS, OPTION_SPECS, flagName, resolveEmfOptions, resolveRuntimeOptions, type EmfOptions, type RuntimeOptions } from './options.js';
import { startServer } from './server.js';

const emit = (event: Record<string, unknown>) => {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...event })}\n`);
};

const USAGE = `usage: node dist/runtime/main.js [options]\n${[...OPTION_SPECS, ...EMF_OPTION_SPECS].map((s) => `  ${s.flag.padEnd(28)} ${s.description} (env ${s.env})`).join('\n')}\n`;

const emfFlag = (s: { flag: string }) => s.flag.split(' ')[0]!.slice(2);

function parseCli(argv: string[]): { opts: RuntimeOptions; emf: EmfOptions } | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(OPTION_SPECS.map((s) => [flagName(s).slice(2), { type: 'string' as const }])),
      ...Object.fromEntries(EMF_OPTION_SPECS.map((s) => [emfFlag(s), { type: 'string' as const }])),
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const flagValue = (name: string) => (values as Record<string, unknown>)[name];
  return {
    opts: resolveRuntimeOptions((s) => flagValue(flagName(s).slice(2)), process.env),
    emf: resolveEmfOptions((s) => flagValue(emfFlag(s)), process.env),
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
  const modelPromise = loadRuntimeModel(o.model, o.modelWorker, { providers: o.providers, deviceId: o.deviceId, log: (message: string) => emit({ event: 'model', message }) });
  // The server listens at once (answering /ready 503) while the model loads and warms up.
  const server = await startServer({ ...o, model: modelPromise, log: emit, processMetrics: true });
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

  let stopping: Promise<number> | undefined;
  const stop = (reason: string) =>
    (stopping ??= (async () => {
      emit({ event: 'stopping', reason });
      const timedOut = await Promise.race([
        server.close().then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), o.drainTimeoutMs).unref()),
      ]);
      if (timedOut) emit({ event: 'drain_timeout', ms: o.drainTimeoutMs });
      // After the drain, so the last line counts the requests answered while draining.
      await emf?.stop();
      await modelPromise.then((m) => m.close()).catch(() => {});
      emit({ event: 'exit', code: timedOut ? 1 : 0 });
      return timedOut ? 1 : 0;
    })());

  const signalled = new Promise<number>((resolve) => {
    process.once('SIGTERM', () => resolve(stop('SIGTERM')));
    process.once('SIGINT', () => resolve(stop('SIGINT')));
  });
  try {
    await server.ready;
  } catch (err) {
    emit({ event: 'fatal', error: (err as Error).message });
    await stop('model failed to load');
    // A bad --model is the caller's to fix (2); anything else is the environment's (1).
    const code = (err as { exitCode?: unknown }).exitCode;
    return code === 2 ? 2 : 1;
  }
  return signalled;
}

run().then(
  (code) => {
    process.exitCode = code;
    // Sockets and timers are closed by now; do not let a stray handle keep the container alive.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    emit({ event: 'fatal', error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
