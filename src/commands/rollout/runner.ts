import type { Context } from '../../context.js';
import { collectEvidence } from '../../adapters/evidence.js';
import type { ApplyResult } from '../../adapters/traffic/types.js';
import { describeProblems, evaluateGates, PRODUCERS } from '../../core/rollout/gates.js';
import { verdict } from '../../core/rollout/machine.js';
import type { TrafficSnapshot } from '../../core/rollout/prometheus.js';
import type { GateResult } from '../../core/rollout/types.js';
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

export async function gatesNow(r: Runner, previous?: TrafficSnapshot, windowMs = r.settings.windowMs, accessLogOffset?: number): Promise<{ gates: GateResult[]; snapshot?: TrafficSnapshot; accessLogOffset?: number }> {
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

/** A move the driver could not confirm is recorded (it happened) and then reported as exit 1. */
export function unconfirmed(a: ApplyResult, target: number): number {
  if (a.confirmed === false) {
    throw new ExternalError('traffic', `the driver applied ${target}% but could not confirm it: ${a.detail}`, {
      hint: 'the new share is recorded; check the gateway, then re-run the same command (it re-applies) or `embedctl rollout rollback`',
    });
  }
  return ExitCode.ok;
}
