import type { RuntimeOptions } from '../common/runtime-options.js';
import { BODY_GRACE_MS, startServer, type RunningServer } from './app.js';
import type { Hooks } from './hooks/index.js';
import type { ModelSpec } from './inference/models.js';
import { loadRuntimeModel } from './inference/model-worker.js';

/**
 * Start, drain and stop, once for both callers: `embedctl serve` (src/commands/serve.ts) and the
 * container entry point (runtime/main.ts). Loads every --model, starts the server at once (it
 * answers /ready 503 while the models load) and hands back stop().
 */

export interface AppOptions {
  log?: (event: Record<string, unknown>) => void;
  /** Model-loading progress lines. */
  modelLog?: (line: string) => void;
  cwd?: string;
  env?: Record<string, string | undefined>;
  processMetrics?: boolean;
  hooks?: Partial<Hooks>;
  /** A loaded model died (its worker thread): see ServerOptions.onModelFault. */
  onModelFault?: (e: { model: string; error: string }) => void;
}

export interface RuntimeApp {
  server: RunningServer;
  /**
   * Drains (bounded by --drain-timeout-ms, or timeoutMs when shorter) and frees the models;
   * timedOut: requests were cut. The first call's bound holds for later calls.
   */
  stop(opts?: { timeoutMs?: number }): Promise<{ timedOut: boolean }>;
}

/** "--model a,b" and "--model-alias x,y=b" -> one spec per model (names are resolved at load). */
export function modelSpecs(o: Pick<RuntimeOptions, 'model' | 'modelAlias' | 'modelName'>): {
  specs: Array<Omit<ModelSpec, 'model'>>;
  /** alias=target pairs whose target is a served name, known once the models are loaded. */
  late: Array<[string, string]>;
} {
  const refs = o.model.split(',').map((s) => s.trim()).filter(Boolean);
  const specs = refs.map((ref, i) => ({ ref, name: i === 0 ? o.modelName : undefined, aliases: [] as string[] }));
  const late: Array<[string, string]> = [];
  for (const item of (o.modelAlias ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [alias, target] = item.includes('=') ? item.split('=', 2).map((s) => s.trim()) : [item, undefined];
    if (!alias || target === '') throw new Error(`--model-alias: "${item}" is not alias or alias=<model>`);
    const spec = target === undefined ? specs[0] : specs.find((s) => s.ref === target || s.name === target);
    if (spec) spec.aliases.push(alias);
    else late.push([alias, target!]);
  }
  return { specs, late };
}

export async function startApp(o: RuntimeOptions, opts: AppOptions = {}): Promise<RuntimeApp> {
  const named = modelSpecs(o);
  const specs = named.specs.map((s) => {
    const model = loadRuntimeModel(s.ref, o.modelWorker, { providers: o.providers, deviceId: o.deviceId, log: opts.modelLog, cwd: opts.cwd, env: opts.env });
    // A load failure surfaces through server.ready; this only keeps it from counting as unhandled.
    model.catch(() => {});
    return { ...s, model };
  });
  let server: RunningServer;
  try {
    const { model: _ref, ...settings } = o;
    // A slow uploader gets at most half the drain timeout: past that its 503 would come after the
    // drain gave up (exit 1, requests cut) instead of before it.
    const bodyGraceMs = Math.min(BODY_GRACE_MS, o.drainTimeoutMs / 2);
    server = await startServer({ ...settings, bodyGraceMs, models: specs, lateAliases: named.late, log: opts.log, processMetrics: opts.processMetrics, hooks: opts.hooks, onModelFault: opts.onModelFault });
  } catch (err) {
    await Promise.all(specs.map((s) => s.model.then((m) => m.close()).catch(() => {})));
    throw err;
  }
  let stopping: Promise<{ timedOut: boolean }> | undefined;
  const stop = (stopOpts: { timeoutMs?: number } = {}) =>
    (stopping ??= (async () => {
      const timeoutMs = Math.min(o.drainTimeoutMs, stopOpts.timeoutMs ?? Number.POSITIVE_INFINITY);
      const timedOut = await Promise.race([
        server.close().then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
      ]);
      await server.models.release();
      return { timedOut };
    })());
  return { server, stop };
}
