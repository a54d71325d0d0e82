import { deployFile } from '../../contracts/deploy.js';
import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseFlag, parsers, resolveOption } from '../../config.js';
import { fmtValue, type GateConfig } from '../../core/rollout/gates.js';
import { rollbackTriggers, verdict } from '../../core/rollout/machine.js';
import { fmtDuration, stateSummary } from '../../core/rollout/plan.js';
import type { GateResult } from '../../core/rollout/types.js';
import { ExitCode, GateFailed, UsageError } from '../../errors.js';
import { printJson } from '../../ui/output.js';
import { rollback } from './actions.js';
import { durationParser } from './options.js';
import { gatesNow, type Runner } from './runner.js';

/**
 * `rollout watch`: polls a LIVE traffic signal (the runtime's /metrics, the gateway's access log
 * or CloudWatch EMF metrics) and rolls back after `--failure-limit` consecutive breaching
 * intervals (Argo Rollouts' failureLimit), never on saved reports alone: with the runtimes dead,
 * a report from yesterday still says "ok" (issue 13). A signal that stops updating is reported
 * as inconclusive, loudly, and ends the watch with exit 3 if it is still frozen at the end.
 */
export async function watch(r: Runner): Promise<number> {
  const { ctx, opts, log } = r;
  const interval = opts.interval ? parseFlag('--interval', opts.interval, durationParser) : 30_000;
  if (interval <= 0) throw new UsageError('must be more than 0', { field: '--interval' });
  const maxDuration = opts.maxDuration ? parseFlag('--max-duration', opts.maxDuration, durationParser) : r.settings.dwellMs.value;
  const failureLimit = resolveOption(ctx, { flag: '--failure-limit', flagValue: opts.failureLimit, env: 'EMBEDCTL_ROLLOUT_FAILURE_LIMIT', file: 'rollout.failureLimit', default: 2, parse: parsers.number({ min: 1, max: 1000, integer: true }) }).value;
  const staleAfter = opts.staleAfter ? parseFlag('--stale-after', opts.staleAfter, parsers.number({ min: 1, max: 1000, integer: true })) : 3;
  const source = liveSource(r);

  const first = await gatesNow(r, undefined, interval, undefined, { baseline: true });
  const unreadable = signalError(first.gates);
  if (unreadable) {
    throw new UsageError(`cannot read the live signal ${source}: ${unreadable}`, { hint: 'check the path or URL; the watch does not start blind' });
  }
  let baseline = first.snapshot;
  let logOffset = first.accessLogOffset;
  let last: GateResult[] = first.gates;
  let ticks = 0;
  let breaches = 0;
  let quiet = 0;
  let frozenSince: string | null = null;
  const started = performance.now();
  log.info(`watching ${source} every ${fmtDuration(interval)} for up to ${fmtDuration(maxDuration)}: rollback after ${failureLimit} consecutive interval${failureLimit > 1 ? 's' : ''} with ${triggerText(r.settings.gates)}`);
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
    const got = await gatesNow(r, baseline, interval, logOffset);
    baseline = got.snapshot ?? baseline;
    logOffset = got.accessLogOffset ?? logOffset;
    last = got.gates;
    // Re-read each tick without holding the lock between ticks: an operator's own rollback or
    // move must never wait for a watcher.
    const { state, exists } = await r.store.current();
    const triggers = rollbackTriggers(last);
    // The signal was readable when the watch started: a source that stops answering now (the
    // runtime's /metrics refusing connections) is the runtime going down, a breach, not silence.
    const down = signalError(last);
    const breach = triggers.length > 0 || Boolean(down);
    const noData = !breach && last.find((g) => g.name === 'errorRate')?.value === null;
    // An interval with no new traffic neither clears nor adds a breach (Argo Rollouts treats an
    // inconclusive measurement the same way): when a gateway's breaker or fallback moves clients
    // off a failing self-hosted side, only its re-probes reach the runtime, so healthy and failing
    // intervals alternate with silent ones; resetting on silence would never roll back.
    breaches = breach ? breaches + 1 : noData ? breaches : 0;
    quiet = noData ? quiet + 1 : 0;
    if (quiet === 0) frozenSince = null;
    else if (quiet === 1) frozenSince = ctx.now().toISOString();
    const verdictText = breach ? `BREACH ${breaches}/${failureLimit}` : noData ? `no new traffic (${quiet}/${staleAfter})` : verdict(last) === 'inconclusive' ? 'hold (inconclusive)' : 'ok';
    log.info(`[${ctx.now().toISOString()}] ${state.percent}% ${last.map((g) => `${g.name}=${g.value === null ? g.status : fmtValue(g.name, g.value)}`).join(' ')}${down ? ` signal: ${down}` : ''} -> ${verdictText}`);
    if (quiet === staleAfter) {
      log.warn(`INCONCLUSIVE: ${source} has shown no new traffic for ${quiet} intervals (since ${frozenSince}); this watch cannot see users. Check that the signal is live (runtime up, log written, metrics published) or that traffic reaches the self-hosted side.`);
    }
    if (breaches >= failureLimit && state.percent > 0) {
      const why = triggers.map((g) => `${g.name} ${fmtValue(g.name, g.value)} ${g.direction === 'max' ? '>' : '<'} ${fmtValue(g.name, g.threshold)}`);
      if (down) why.push(`live signal lost (${down})`);
      const reason = `automatic: ${why.join(', ')} for ${breaches} consecutive intervals`;
      const code = await rollback(r, reason, 'auto-rollback', last);
      log.warn(`rolled back by rollout watch: ${reason}`);
      return code === ExitCode.ok ? ExitCode.rolledBack : code;
    }
    if (exists) {
      await r.store.mutate('watch', async (s) => ({ state: { ...s, lastGates: last, lastGatesAt: ctx.now().toISOString() }, result: undefined })).catch((err: unknown) => log.verbose(`gates not recorded this tick: ${(err as Error).message}`));
    }
  }
  const interrupted = Boolean(ctx.signal?.aborted);
  const frozen = quiet >= staleAfter;
  const { state } = await r.store.current();
  const doc = { action: 'watch', rolledBack: false, interrupted, ticks, source, failureLimit, consecutiveBreaches: breaches, frozen, frozenSince, verdict: frozen ? 'inconclusive' : ticks ? verdict(last) : null, gates: last, state: stateSummary(state, ctx.now()) };
  if (opts.json) printJson(ctx, 'rollout', doc);
  else ctx.stdout.write(`${interrupted ? 'interrupted' : 'watch ended'} after ${ticks} checks at ${state.percent}% self-hosted; no rollback${frozen ? `; INCONCLUSIVE: the signal has been frozen since ${frozenSince}` : ''}\n`);
  if (interrupted) return ExitCode.interrupted;
  if (frozen) throw new GateFailed(`watch inconclusive: ${source} stopped updating at ${frozenSince}; no traffic was seen for the last ${quiet} intervals`, { hint: 'make sure the signal is live, then watch again' });
  return ExitCode.ok;
}

/** The live source in use, or exit 2 naming every source tried and the flag that gives one. */
function liveSource(r: Runner): string {
  const s = r.settings;
  if (s.metricsUrl) return `${s.metricsUrl} (Prometheus /metrics)`;
  if (!s.nginxAccessLog) s.nginxAccessLog = accessLogFromDeploy(r);
  if (s.nginxAccessLog) return `${s.nginxAccessLog} (gateway access log)`;
  if (s.cloudwatch) return `cloudwatch:${s.cloudwatch.namespace} ${s.cloudwatch.dimensions.map((d) => `${d.Name}=${d.Value}`).join(',')} (${s.cloudwatch.region})`;
  throw new UsageError(
    'no live traffic signal: tried --metrics-url (also EMBEDCTL_METRICS_URL, rollout.metricsUrl), --nginx-access-log (also rollout.nginxAccessLog, and the gateway in .embedctl/deploy.json), --cloudwatch; saved reports cannot see users failing',
    { field: 'rollout watch', hint: "give one: --metrics-url http://<runtime>/metrics, --nginx-access-log <gateway access log> or --cloudwatch (the runtime's EMF metrics)" },
  );
}

/** The local gateway's access log, when `up --local` wrote one into deploy.json. */
function accessLogFromDeploy(r: Runner): string | undefined {
  try {
    const nginx = deployFile.readSync(resolve(r.ctx.cwd, r.opts.deployFile ?? '.embedctl/deploy.json'))?.nginx;
    const accessLog = nginx?.options.accessLog;
    const log = typeof accessLog === 'string' ? accessLog : undefined;
    if (!log || !nginx?.prefix || log.startsWith('/dev/')) return undefined;
    return isAbsolute(log) ? log : resolve(r.ctx.cwd, nginx.prefix, log);
  } catch {
    return undefined;
  }
}

/** Why the live source itself could not be read (not: read, and showed no traffic). */
function signalError(gates: GateResult[]): string | undefined {
  const note = gates.find((g) => g.name === 'errorRate')?.note;
  return note && /failed:|answered HTTP|cannot read|GetMetricData failed/.test(note) ? note : undefined;
}

function triggerText(g: GateConfig): string {
  return `error rate > ${fmtValue('errorRate', g.maxErrorRate)}, p95 > ${g.maxP95Ms} ms, min cosine < ${g.minConsistency} or overlap < ${fmtValue('overlap', g.minOverlap)}`;
}
