import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { Interrupted } from '../errors.js';
import { parseFlag, parsers } from '../config.js';
import type { Contract } from '../contracts/contract.js';
import { costReport, loadTestReport, ragOverlapReport, verifyConsistencyReport } from '../contracts/reports.js';
import { rolloutFile } from '../contracts/rollout.js';
import { nginxBinary } from '../adapters/nginx.js';
import { localPaths, readLocalStack, startStandaloneRuntime, stopLocalStack, stopStandaloneRuntime, type LocalRuntime } from '../adapters/local-stack.js';
import * as figuresOf from '../core/rehearse.js';
import { fmtFigures, overallExitCode, RehearsalClock, WEEK_MS, type StageResult } from '../core/rehearse.js';
import { writeJsonAtomic } from '../util/fs.js';
import { printJson, table, withSchema } from '../ui/output.js';
import { sampleKeys, sampleSplit, setFault, steadyTraffic, type TrafficRoute } from './rehearse-traffic.js';
import { routesToSelfHosted } from '../client/route.js';
import { rehearsalDriver, subRunner } from './rehearse-sub.js';
import { run as runRollout, type Verb } from './rollout.js';
import { register as costReportCommand } from './cost-report.js';
import { runDefined } from './define.js';
import { run as runLoadTest } from './load-test.js';
import { register as ragOverlapCommand } from './rag-overlap.js';
import { run as runRender } from './render.js';
import { run as runUp } from './up.js';
import { register as verifyCommand } from './verify-consistency.js';
import type { RolloutOpts } from './rollout/options.js';
import { action, examples, type ExitHolder, type RunEnv } from './shared.js';

interface RehearseOptions {
  keep?: boolean;
  out?: string;
  skipNginx?: boolean;
  sample?: string;
  loadSeconds?: string;
}

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('rehearse')
    .description('the whole migration, end to end, on this machine and offline: cost, render, serve, verify, load-test, five-week rollout, fault and rollback')
    .option('--keep', 'leave the runtimes, nginx and the work dir afterwards (stop them with `embedctl down --local` in the work dir)')
    .option('--out <dir>', 'work directory for reports, rendered files and state, kept afterwards (default: a temp dir, removed at the end)')
    .option('--skip-nginx', 'route with the hybrid client instead of nginx (automatic when nginx is not installed)')
    .option('--sample <n>', 'texts compared by verify-consistency in the first check', '231')
    .option('--load-seconds <s>', 'length of the load test', '5');
  examples(cmd, [
    'embedctl rehearse',
    'embedctl rehearse --json > rehearsal.json',
    'embedctl rehearse --out ./rehearsal --keep      # inspect .embedctl/ and the reports afterwards',
    'embedctl rehearse --skip-nginx                  # the hybrid-client path',
  ]);
  cmd.action(action<RehearseOptions>(ctx, holder, (env) => rehearse(env)));
}

async function rehearse(env: RunEnv<RehearseOptions>): Promise<number> {
  const { ctx, opts, globals, log } = env;
  const started = Date.now();
  const sampleN = parseFlag('--sample', opts.sample ?? '231', parsers.number({ min: 10, max: 100_000, integer: true }));
  const loadSeconds = parseFlag('--load-seconds', opts.loadSeconds ?? '5', parsers.number({ min: 1, max: 600, integer: true }));
  const clock = new RehearsalClock(() => ctx.now());
  const work = resolve(ctx.cwd, opts.out ?? mkdtempSync(join(tmpdir(), 'embedctl-rehearse-')));
  const evidence = join(work, '.embedctl', 'reports');
  mkdirSync(evidence, { recursive: true });
  const useNginx = !opts.skipNginx && nginxBinary(ctx.env) !== undefined;
  const stages: StageResult[] = [];
  const hostedKey = `rehearsal-${randomBytes(12).toString('hex')}`;
  let hosted: LocalRuntime | undefined;
  let selfHosted: LocalRuntime[] = [];
  let gatewayUrl: string | undefined;
  let stackUp = false;

  log.info(`rehearse: work dir ${work}`);
  if (!useNginx) log.info(`rehearse: ${opts.skipNginx ? '--skip-nginx given' : 'nginx is not installed'}: traffic is split by the hybrid client (embedctl/client) instead of nginx`);

  /** The stage being run, and the copies of the reports it was judged on (<work>/stages/<id>[-n].json). */
  let current: { id: string; reports: string[] } | undefined;
  const subRun = subRunner(ctx, work, () => clock.now());
  /** The gateway's traffic driver, set once the stack is up: ssm through the local instance, or env. */
  let driver: ReturnType<typeof rehearsalDriver> | undefined;
  const rollout = (verb: Verb, arg?: string, extra: RolloutOpts = {}) =>
    subRun((c, l) => runRollout(verb, { json: true, evidenceDir: evidence, metricsUrl: `${candUrl()}/metrics`, metricsSettle: '1s', ...driver!.opts, ...extra }, c, l, arg), { adapters: driver!.adapters, env: driver!.env });
  /** Keeps a copy of what the stage's command wrote as the stage's report. */
  const keepCopy = (path: string) => {
    if (!current) return;
    const copy = join(work, 'stages', `${current.id}${current.reports.length ? `-${current.reports.length + 1}` : ''}.json`);
    mkdirSync(join(work, 'stages'), { recursive: true });
    copyFileSync(path, copy);
    current.reports.push(copy);
  };
  /** Reads what a stage's command wrote through its contract, and keeps a copy. */
  const keep = async <T>(contract: Contract<T>, path: string): Promise<T> => {
    const doc = await contract.read(path);
    if (doc === undefined) throw new Error(`${path} was not written`);
    keepCopy(path);
    return doc;
  };
  const failed = (r: { code: number; errTail: string }, note?: string) => ({ verdict: 'fail' as const, exitCode: r.code, figures: {}, note: note ?? r.errTail.trim().split('\n').pop() });

  const stage = async (id: string, title: string, fn: () => Promise<Omit<StageResult, 'id' | 'title' | 'seconds'>>): Promise<StageResult> => {
    if (ctx.signal?.aborted) throw new Interrupted();
    const n = stages.length + 1;
    log.info(log.c.bold(`[${n}] ${title}`));
    const t0 = Date.now();
    current = { id, reports: [] };
    let r: Omit<StageResult, 'id' | 'title' | 'seconds'>;
    try {
      r = await fn();
      // A stage that finished as Ctrl-C came in is reported as interrupted, not as failed.
      if (ctx.signal?.aborted) throw new Interrupted();
    } catch (err) {
      if (err instanceof Interrupted || ctx.signal?.aborted) throw err;
      r = { verdict: 'fail', exitCode: (err as { exitCode?: number }).exitCode ?? 1, figures: {}, note: (err as Error).message.split('\n')[0] };
    }
    // The report the stage is judged on is the last sub-command's (weekly refreshes run first).
    const res: StageResult = { id, title, seconds: (Date.now() - t0) / 1000, ...r, ...(current.reports.length ? { report: current.reports.at(-1) } : {}) };
    current = undefined;
    stages.push(res);
    const mark = res.verdict === 'pass' ? log.c.green('pass') : res.verdict === 'skipped' ? log.c.yellow('skipped') : log.c.red('FAIL');
    log.info(`[${n}] ${mark} in ${res.seconds.toFixed(1)} s ${fmtFigures(res.figures)}${res.note ? ` (${res.note})` : ''}`);
    return res;
  };

  const judged = (code: number, want = 0) => (code === want ? 'pass' : 'fail') as 'pass' | 'fail';
  const refUrl = () => hosted!.url;
  const candUrl = () => selfHosted[0]!.url;
  // The other commands, called through their typed run() on the rehearsal's clock and work dir.
  const sides = () => ({ reference: refUrl(), referenceHeader: [`Authorization: Bearer ${hostedKey}`], candidate: candUrl() });
  const verify = (sample: number, quiet = false) =>
    subRun((c, l) => runDefined(verifyCommand, { ...sides(), sample, minCosine: 0.999, warnCosine: 0.99, cache: 'off', out: join(evidence, 'verify-consistency.json') }, c, l), { quiet });
  const overlap = (cache: 'off' | 'all', quiet = false) =>
    subRun((c, l) => runDefined(ragOverlapCommand, { ...sides(), k: 10, minOverlap: 0.8, warnOverlap: 0.7, cache, out: join(evidence, 'rag-overlap.json') }, c, l), { quiet });
  const load = (seconds: number, vus: number, quiet = false) =>
    subRun((c, l) => runLoadTest({ target: candUrl(), engine: 'autocannon', stages: `${seconds}s:${vus}`, batch: '8', p95: '500', maxErrorRate: '0.05', maxRequests: '20000', out: join(evidence, 'load-test.json') }, c, l), { quiet });
  const cost = (quiet = false) =>
    subRun((c, l) => runDefined(costReportCommand, { tokensPerMonth: '5B', provider: 'openai', model: 'text-embedding-3-large', instanceType: 'g4dn.xlarge', egressShare: 0, pricing: 'all', out: join(evidence, 'cost-report.json') }, c, l), { quiet });
  const route = (): TrafficRoute => ({
    gatewayUrl: useNginx ? gatewayUrl : undefined,
    hostedUrl: refUrl(),
    hostedKey,
    selfHostedUrl: candUrl(),
    trafficEnv: join(work, '.embedctl', 'traffic.env'),
  });
  const rolloutJson = join(work, '.embedctl', 'rollout.json');

  try {
    // 1. Decide.
    await stage('cost', 'cost-report: does self-hosting pay for a sample workload?', async () => {
      const r = await cost();
      if (r.code !== 0) return failed(r);
      return { verdict: 'pass', exitCode: 0, figures: figuresOf.costFigures(await keep(costReport, join(evidence, 'cost-report.json'))) };
    });

    // 2. Render (validated with nginx -t when nginx is installed). Ports are chosen by `up`; the
    // hosted stand-in's URL is not known yet, so render for its final place: 127.0.0.1.
    await stage('render', 'render: docker-compose, nginx, k8s and user-data from templates/', async () => {
      const r = await subRun((c, l) => runRender({ allowDemoModel: true, out: join(work, 'deploy'), replicas: 2, hostedUrl: 'https://api.openai.com/v1/embeddings', percent: 0 }, c, l));
      if (r.code !== 0) return failed(r);
      return { verdict: 'pass', exitCode: 0, figures: { files: readdirSync(join(work, 'deploy'), { recursive: true, withFileTypes: true }).filter((f) => f.isFile()).length } };
    });

    // 3. Serve: the hosted stand-in (default-q behind an API key) and the self-hosted side.
    await stage('serve', `start: hosted stand-in (default-q, API key) + 2 self-hosted runtimes (default)${useNginx ? ' behind nginx' : ''}`, async () => {
      hosted = await startStandaloneRuntime({
        cwd: work,
        name: 'hosted',
        model: 'default-q',
        env: { ...ctx.env, EMBEDCTL_API_KEY: hostedKey },
        signal: ctx.signal,
        onProgress: (m) => log.info(`    | ${m}`),
      });
      if (useNginx) {
        const r = await subRun((c, l) => runUp({ local: true, replicas: 2, model: 'default', hostedUrl: hosted!.url, percent: 0, sameModel: true }, c, l), {
          env: {
            EMBEDCTL_HOSTED_API_KEY: hostedKey,
            // The self-hosted side is open inside the rehearsal, whatever the caller's shell exports.
            EMBEDCTL_API_KEY: '',
            // Lets stage 7 switch the self-hosted runtimes to answering 500s (POST /admin/fault).
            EMBEDCTL_FAULT_INJECTION: '1',
          },
        });
        // Whatever `up` answered (Ctrl-C may land just after it started the stack), what it
        // recorded is ours to stop.
        const stack = await readLocalStack(work);
        stackUp = stack !== undefined;
        if (!stack || r.code !== 0) return failed(r);
        keepCopy(localPaths(work).state);
        gatewayUrl = stack.url;
        selfHosted = stack.runtimes;
      } else {
        for (let i = 0; i < 2; i++) {
          selfHosted.push(
            await startStandaloneRuntime({ cwd: work, name: `selfhosted-${i + 1}`, model: 'default', env: { ...ctx.env, EMBEDCTL_API_KEY: '', EMBEDCTL_FAULT_INJECTION: '1' }, signal: ctx.signal, onProgress: (m) => log.info(`    | ${m}`) }),
          );
        }
      }
      driver = rehearsalDriver(ctx, work, useNginx ? gatewayUrl : undefined);
      const split = await sampleSplit(route(), 50);
      return {
        verdict: split.errors === 0 && split.selfhosted === 0 ? 'pass' : 'fail',
        exitCode: 0,
        figures: { gateway: gatewayUrl ?? 'hybrid client', hosted: hosted.url, hostedPid: hosted.pid, selfHosted: selfHosted.map((r) => r.url).join(','), sampledHosted: split.hosted, sampledErrors: split.errors },
      };
    });
    if (stages.at(-1)!.verdict !== 'pass') throw new StopRehearsal();

    // 4. Quality gates. A failed gate still wrote its report: the figures say by how much.
    const judgedBy = async <T, F extends StageResult['figures']>(r: { code: number; errTail: string }, contract: Contract<T>, path: string, figures: (d: T) => F) => {
      if (r.code !== 0 && r.code !== 3) return failed(r);
      return { verdict: judged(r.code), exitCode: r.code, figures: figures(await keep(contract, path)) };
    };
    await stage('verify', 'verify-consistency: per-text cosine, hosted stand-in vs self-hosted', async () =>
      judgedBy(await verify(sampleN), verifyConsistencyReport, join(evidence, 'verify-consistency.json'), figuresOf.verifyFigures),
    );
    await stage('overlap', 'rag-overlap: top-10 retrieval agreement on the shipped corpus', async () =>
      judgedBy(await overlap('off'), ragOverlapReport, join(evidence, 'rag-overlap.json'), figuresOf.overlapFigures),
    );

    // 5. Load.
    await stage('load', `load-test: ${loadSeconds} s of autocannon against the self-hosted runtime`, async () =>
      judgedBy(await load(loadSeconds, 8), loadTestReport, join(evidence, 'load-test.json'), figuresOf.loadFigures),
    );

    // 6. The five weeks: each week refreshes the evidence on the rehearsal clock, then moves one step.
    const steps = [10, 25, 50, 75, 100];
    for (const [i, pct] of steps.entries()) {
      await stage(`rollout-${pct}`, `rollout week ${i + 1}: gates, then ${i === 0 ? '0' : steps[i - 1]} -> ${pct} % self-hosted`, async () => {
        if (i > 0) {
          clock.advance(WEEK_MS + 3600_000);
          const refresh = [await cost(true), await verify(40, true), await overlap('all', true), await load(2, 4, true)];
          const bad = refresh.find((x) => x.code !== 0);
          if (bad) return failed(bad, `evidence refresh failed: ${bad.errTail.trim().split('\n').pop()}`);
        }
        const r = i === 0 ? await rollout('to', String(pct)) : await rollout('next');
        if (r.code !== 0) return failed(r);
        const split = await sampleSplit(route(), 200);
        const observed = (100 * split.selfhosted) / Math.max(1, split.selfhosted + split.hosted);
        // The keys are fixed, and the gateway and the hybrid client split them as routesToSelfHosted
        // does: their expected share is exact (within 2 points of the step); the margin is for fallbacks.
        const expected = (100 * sampleKeys(200).filter((k) => routesToSelfHosted(k, pct)).length) / 200;
        const ok = Math.abs(observed - expected) <= 10 && split.errors === 0;
        const state = await keep(rolloutFile, rolloutJson);
        return {
          verdict: ok ? 'pass' : 'fail',
          exitCode: r.code,
          figures: { ...figuresOf.rolloutFigures(state), observedSelfHostedPct: +observed.toFixed(1), expectedSelfHostedPct: expected, simulatedDate: clock.now().toISOString().slice(0, 10) },
        };
      });
      if (stages.at(-1)!.verdict !== 'pass') throw new StopRehearsal();
    }

    // 7. Fault: the self-hosted runtimes start answering 500; `rollout --watch` must roll back alone.
    await stage('fault', 'fault: self-hosted returns 500s; rollout --watch must roll back to 0 % by itself', async () => {
      const t0 = Date.now();
      for (const rt of selfHosted) await setFault(rt, 500);
      const stop = new AbortController();
      const traffic = steadyTraffic(route(), stop.signal);
      let r;
      try {
        r = await rollout('watch', undefined, { interval: '1s', maxDuration: '60s' });
      } finally {
        stop.abort();
      }
      const seen = await traffic;
      const detectSeconds = (Date.now() - t0) / 1000;
      for (const rt of selfHosted) await setFault(rt, 0);
      const after = await sampleSplit(route(), 200);
      // Clients must not notice: every request during the fault and after the rollback answered.
      const ok = r.code === 4 && after.selfhosted === 0 && after.errors === 0 && seen.failed === 0;
      const state = await keep(rolloutFile, rolloutJson);
      return {
        verdict: ok ? 'pass' : 'fail',
        exitCode: r.code === 4 ? 0 : r.code,
        figures: {
          watchExit: r.code,
          secondsToRollback: +detectSeconds.toFixed(1),
          ...figuresOf.rollbackFigures(state),
          clientRequestsDuringFault: seen.sent,
          clientErrorsDuringFault: seen.failed,
          connectionRetriesDuringFault: seen.connectionRetries,
          afterSelfHosted: after.selfhosted,
          afterHosted: after.hosted,
        },
        note: ok ? undefined : `watch exited ${r.code}; ${seen.failed} of ${seen.sent} client requests failed during the fault; after rollback ${after.selfhosted} of 200 sampled went to self-hosted`,
      };
    });
  } catch (err) {
    if (!(err instanceof StopRehearsal)) {
      if (err instanceof Interrupted || ctx.signal?.aborted) {
        stages.push({ id: 'interrupted', title: 'interrupted', verdict: 'fail', exitCode: 130, seconds: 0, figures: {} });
      } else throw err;
    }
  } finally {
    if (!opts.keep) {
      if (stackUp) await stopLocalStack(work).catch((e: Error) => log.warn(`could not stop the local stack: ${e.message}`));
      for (const rt of [...(stackUp ? [] : selfHosted), ...(hosted ? [hosted] : [])]) await stopStandaloneRuntime(rt).catch(() => undefined);
    } else {
      log.info(`rehearse: --keep: still running; stop with: (cd ${work} && embedctl down --local)${hosted ? ` and kill ${hosted.pid}` : ''}`);
    }
  }
  // A temp work dir holds ~25 MB of logs and reports: gone unless asked for (--out or --keep).
  const kept = Boolean(opts.out || opts.keep);

  const seconds = (Date.now() - started) / 1000;
  const code = overallExitCode(stages);
  const verdict = code === 0 ? 'pass' : 'fail';
  const doc = { verdict, seconds: +seconds.toFixed(1), workDir: kept ? work : null, nginx: useNginx, simulatedDays: Math.round(clock.skippedMs / 86_400_000), stages: kept ? stages : stages.map(({ report: _, ...st }) => st) };
  if (kept) await writeJsonAtomic(join(work, 'rehearsal-summary.json'), withSchema('rehearse', doc));
  else rmSync(work, { recursive: true, force: true });
  if (globals.json) printJson(ctx, 'rehearse', doc);
  else {
    ctx.stdout.write(
      table(
        ['stage', 'verdict', 'seconds', 'key figures'],
        stages.map((s) => [s.title.split(':')[0]!, s.verdict, s.seconds.toFixed(1), fmtFigures(s.figures) + (s.note ? ` (${s.note})` : '')]),
      ),
    );
    const where = kept ? `reports in ${evidence}` : 'work dir removed (keep it with --out <dir> or --keep)';
    ctx.stdout.write(`\nrehearsal ${verdict} in ${seconds.toFixed(1)} s (${Math.round(clock.skippedMs / 86_400_000)} simulated days); ${where}\n`);
  }
  return code;
}

class StopRehearsal extends Error {}
