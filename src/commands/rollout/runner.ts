import { dirname } from 'node:path';
import type { Context } from '../../context.js';
import { collectEvidence } from '../../adapters/evidence.js';
import type { ApplyResult } from '../../adapters/traffic/types.js';
import { describeProblems, evaluateGates, PRODUCERS } from '../../core/rollout/gates.js';
import { verdict } from '../../core/rollout/machine.js';
import type { TrafficSnapshot } from '../../core/rollout/prometheus.js';
import type { DriverName, GateResult } from '../../core/rollout/types.js';
import { ExitCode, ExternalError, GateFailed } from '../../errors.js';
import type { Logger } from '../../ui/output.js';
import type { RolloutOpts, Settings } from './options.js';
import type { RolloutStore } from './store.js';

/** What every rollout verb works with. */
export interface Runner {
  ctx: Context;
  opts: RolloutOpts;
  log: Logger;
  settings: Settings;
  store: RolloutStore;
}

export async function gatesNow(
  r: Runner,
  previous?: TrafficSnapshot,
  windowMs = r.settings.windowMs,
  accessLogOffset?: number,
  opts: { baseline?: boolean } = {},
): Promise<{ gates: GateResult[]; snapshot?: TrafficSnapshot; accessLogOffset?: number }> {
  const { evidence, snapshot, accessLogOffset: offset } = await collectEvidence({
    nginxAccessLog: r.settings.nginxAccessLog,
    windowMs,
    evidenceDir: r.settings.evidenceDir,
    metricsUrl: r.settings.metricsUrl,
    metricsApiKey: r.settings.metricsApiKey,
    cloudwatch: r.settings.cloudwatch,
    cloudwatchClient: r.ctx.adapters.cloudwatchClient,
    previous,
    accessLogOffset,
    now: r.ctx.now(),
    // /metrics scrapes are kept beside the rollout state, so a one-off check measures a rate
    // since an earlier scrape instead of the runtime's lifetime counters (adapters/prometheus.ts).
    stateDir: dirname(r.store.statePath),
    sleep: r.ctx.sleep,
    signal: r.ctx.signal,
    expected: { deployment: r.opts.deployment },
    // The watch's first read only sets the baseline for its next tick: no pause for a second scrape.
    ...(opts.baseline ? { settleMs: 0 } : r.settings.metricsSettleMs !== undefined ? { settleMs: r.settings.metricsSettleMs } : {}),
  });
  return { gates: evaluateGates(evidence, r.settings.gates, r.ctx.now()), snapshot, accessLogOffset: offset };
}

/** A failed or inconclusive verdict as an exit-3 error, naming what is wrong and what fixes it. */
export function gateError(gates: GateResult[], what: string): GateFailed {
  const v = verdict(gates);
  const bad = gates.filter((g) => g.status !== 'pass');
  return new GateFailed(`${what}: gates ${v === 'fail' ? 'failed' : 'inconclusive'}: ${describeProblems(gates)}`, {
    report: gates,
    hint:
      v === 'fail'
        ? 'a failed gate is never skipped (not even with --force): fix the cause, refresh the evidence and run `embedctl rollout check`'
        : `refresh the evidence: ${[...new Set(bad.map((g) => PRODUCERS[g.name]))].join('; ')}`,
  });
}

/** How to let a driver confirm a share it could not observe. */
const HOW_TO_CONFIRM: Record<DriverName, string> = {
  nginx: 'let it sample the gateway (--nginx-url, --samples above 0)',
  ssm: 'let it sample the public gateway (--gateway-url, --samples above 0)',
  env: 'check that the env file is writable and readable',
  k8s: 'check the canary Ingress (kubectl get ingress)',
};

/**
 * A move the driver did not confirm is recorded (it happened) and then reported as exit 1,
 * whether it saw another share (false) or could not look (null: no gateway to sample,
 * --samples 0). A forward step is not done until confirmed; only a rollback may be accepted
 * unconfirmed, and only when asked for with --no-confirm.
 */
export function unconfirmed(a: ApplyResult, target: number, o: { driver: DriverName; acceptUnconfirmed?: boolean }): number {
  if (a.confirmed === true || (a.confirmed === null && target === 0 && o.acceptUnconfirmed)) return ExitCode.ok;
  const message = `the driver applied ${target}% but could not confirm it: ${a.detail}`;
  const fix = a.confirmed === null ? HOW_TO_CONFIRM[o.driver] : 'check the gateway';
  if (target === 0) {
    throw new ExternalError('traffic', message, {
      hint: `recorded as not confirmed; ${fix}, then run \`embedctl rollout rollback\` again${a.confirmed === null ? ', or accept 0% unconfirmed with --no-confirm' : ''}`,
    });
  }
  throw new ExternalError('traffic', message, {
    hint: `recorded as not confirmed: the step's dwell has not started and nothing moves further; ${fix}, then re-run \`embedctl rollout to ${target}\` (it re-applies) or \`embedctl rollout rollback\``,
  });
}
