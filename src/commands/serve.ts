import type { Command } from 'commander';
import { OPTION_SPECS, flagName, type RuntimeOptions } from '../../common/runtime-options.js';
import { resolveOption, type Resolved } from '../config.js';
import type { Context } from '../context.js';
import { EmbedctlError, ExternalError, UsageError } from '../errors.js';
import { printJson } from '../ui/output.js';
import { action, examples, type ExitHolder } from './shared.js';

/** commander's camelCase for "--max-batch-tokens" (and "--ep" -> "ep"). */
const optKey = (flag: string) => flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function resolveAll(ctx: Context, flags: Record<string, unknown>): { opts: RuntimeOptions; sources: Record<string, Resolved<unknown>> } {
  const out: Record<string, unknown> = {};
  const sources: Record<string, Resolved<unknown>> = {};
  for (const s of OPTION_SPECS) {
    const r = resolveOption<unknown>(ctx, {
      flag: flagName(s),
      flagValue: flags[optKey(flagName(s))],
      env: s.env,
      file: `serve.${s.key}`,
      default: s.default,
      parse: s.parse,
    });
    out[s.key] = r.value;
    sources[s.key] = r;
  }
  return { opts: out as unknown as RuntimeOptions, sources };
}

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('serve')
    .description('run the embedding server (OpenAI- and Jina-compatible /v1/embeddings) on this machine');
  // A repeated --model / --model-alias adds to the list (several models in one runtime).
  const list = (v: string, prev: string | undefined) => (prev ? `${prev},${v}` : v);
  for (const s of OPTION_SPECS) {
    if (s.key === 'model' || s.key === 'modelAlias') cmd.option(s.flag, `${s.description} [env ${s.env}]`, list);
    else cmd.option(s.flag, `${s.description} [env ${s.env}]`);
  }
  cmd.option('--dry-run', 'print the resolved settings and where each came from; start nothing');
  examples(cmd, [
    'embedctl serve                                  # default model on http://127.0.0.1:8080',
    'embedctl serve --model tiny-bert --port 0 --json  # any free port; URL as JSON on stdout',
    'EMBEDCTL_API_KEY=s3cret embedctl serve --host 0.0.0.0 --max-batch-tokens 32768',
    'embedctl serve --model ./models/bge-small-en-v1.5 --ep cuda,cpu',
    'embedctl serve --dry-run',
  ]);
  cmd.action(
    action<Record<string, unknown>>(ctx, holder, async ({ opts: flags, globals, log }) => {
      const { opts, sources } = resolveAll(ctx, flags);
      // Secrets (API key, JWT secret, a Redis URL with its password) are shown as set or not, never echoed.
      const shown = (k: keyof RuntimeOptions) => (OPTION_SPECS.find((s) => s.key === k)?.secret ? (opts[k] ? '(set)' : '(none)') : opts[k]);

      if (flags.dryRun) {
        const settings = Object.fromEntries(OPTION_SPECS.map((s) => [s.key, { value: shown(s.key) ?? null, source: sources[s.key]!.origin }]));
        if (globals.json) printJson(ctx, 'serve', { dryRun: true, settings });
        else for (const s of OPTION_SPECS) ctx.stdout.write(`${flagName(s).padEnd(20)} ${String(shown(s.key) ?? '-').padEnd(24)} ${sources[s.key]!.origin}\n`);
        return 0;
      }

      log.info(`loading model ${opts.model} (providers ${opts.providers.join(',')})`);
      // runtime/start.ts owns start, drain and stop (the container entry uses it too); loaded on
      // demand so other commands do not pay for onnxruntime at start-up.
      const { startApp } = await import('../../runtime/start.js');
      let app;
      try {
        app = await startApp(opts, {
          log: (ev) => {
            // Access log lines stay JSON (machine-readable); lifecycle events are told in words below.
            if (ev.event === 'request' || ev.event === 'error') ctx.stderr.write(`${JSON.stringify(ev)}\n`);
          },
          modelLog: (m: string) => log.verbose(m),
          cwd: ctx.cwd,
          env: ctx.env,
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new UsageError(`${opts.host}:${opts.port} is already in use`, { field: '--port', hint: 'pick another port, or --port 0 for any free one' });
        if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') throw new UsageError(`cannot listen on ${opts.host}`, { field: '--host', hint: 'use 127.0.0.1, 0.0.0.0 or an address of this machine' });
        if (e.code === 'EACCES') throw new UsageError(`not allowed to listen on port ${opts.port}`, { field: '--port', hint: 'ports below 1024 need root; use 8080' });
        if (e instanceof Error && e.message.startsWith('--model-alias')) throw new UsageError(e.message.replace(/^--model-alias: /, ''), { field: '--model-alias' });
        throw err;
      }
      const { server } = app;
      log.verbose(`bound ${server.url}; /ready answers 503 until the model is loaded`);

      const stop = async () => {
        const { timedOut } = await app.stop();
        if (timedOut) log.warn(`requests still in flight after ${opts.drainTimeoutMs} ms (--drain-timeout-ms); stopping anyway`);
      };
      try {
        await server.ready;
      } catch (err) {
        await stop();
        if (err instanceof EmbedctlError) throw err;
        throw new ExternalError('model', `cannot load ${opts.model}: ${(err as Error).message}`, {
          cause: err,
          hint: 'run "embedctl models list" for the models here, or pass a model directory with --model',
        });
      }
      const m = server.models.primary.service!.model;
      log.info(
        `listening on ${server.url} (POST ${server.url}/v1/embeddings): ${server.models.names().join(', ')}, ${m.manifest.dimensions} dims, ${m.provider}${opts.apiKey ? ', API key required' : ''}; Ctrl-C to stop`,
      );
      if (globals.json) {
        printJson(ctx, 'serve', {
          url: server.url,
          model: server.models.primary.name,
          models: server.models.slots.map((sl) => ({ name: sl.name, aliases: sl.aliases, loadMs: sl.loadMs })),
          provider: m.provider,
          dimensions: m.manifest.dimensions,
          auth: opts.apiKey ? 'bearer' : 'none',
        });
      }

      await new Promise<void>((resolve) => {
        if (!ctx.signal) return; // no signal: serve until the process is killed
        if (ctx.signal.aborted) return resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      log.info('stopping: draining in-flight requests');
      await stop();
      log.info('stopped');
      return 0;
    }),
  );
}
