import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { ExternalError, UsageError } from '../../errors.js';
import { confirmShare } from '../traffic/nginx.js';
import { percentOfGeneration, writeSplitScript } from '../traffic/split-dir.js';
import { configIdOf, renderedPercentOf, splitDirOf, splitPercentProblem } from '../../core/render.js';
import type { ApplyResult, TrafficDriver } from '../traffic/types.js';
import { mapAwsError } from './errors.js';

/**
 * The `ssm` traffic driver: moves the split of a deployed gateway (nginx in a container on the
 * instance, templates/docker-compose.yml) with AWS Systems Manager Run Command. Two commands:
 * one reads the live nginx.conf and split generation; the second writes a new generation of the
 * split directory the gateway container mounts (split-dir.ts: one file per self-hosted bucket,
 * `current` swapped by rename), unless the split moved in between. nginx reads it per request and
 * is never reloaded for it. The share is then confirmed from outside by sampling the public
 * gateway (X-Embedctl-Backend).
 */
export interface SsmTrafficOptions {
  client: SSMClient;
  instanceId: string;
  region: string;
  /** The public gateway, sampled to confirm the share (state.json's deployment.gateway). */
  gatewayUrl?: string;
  samples?: number;
  tolerance?: number;
  model?: string;
  /** How often GetCommandInvocation is polled, and for how long at most. */
  pollMs?: number;
  timeoutMs?: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** The deploy directory user data writes (templates/user-data.sh); the stand-in overrides it by env. */
const PRELUDE = [
  'set -eu',
  'DEPLOY_DIR="${EMBEDCTL_DEPLOY_DIR:-/opt/embedctl/deploy}"',
  'CONF="$DEPLOY_DIR/nginx/nginx.conf"',
  // The host side of the gateway container's split directory mount (templates/docker-compose.yml).
  'SPLIT="$DEPLOY_DIR/nginx/split"',
];

/**
 * Line 1: the live split generation ("current: " and nothing when none was written yet); then
 * the rendered config's header (its id, listen address, split directory, rendered share): all
 * embedctl reads, and well under the 24,000 characters SSM returns (the whole file is not).
 */
export function readSplitScript(): string[] {
  return [...PRELUDE, 'echo "current: $(readlink "$SPLIT/current" || true)"', 'head -n 12 "$CONF"'];
}

/**
 * The script that moves the split on the instance: a new generation of the split directory,
 * swapped in with rename(2); nginx is not reloaded (a reload closes idle keep-alive client
 * connections). It refuses when the live generation is no longer `expected`: someone else moved
 * the split in between.
 */
export function applySplitScript(percent: number, expected: string | undefined): string[] {
  return [...PRELUDE, ...writeSplitScript(percent, expected)];
}

export function ssmTrafficDriver(o: SsmTrafficOptions): TrafficDriver {
  const run = (commands: string[], comment: string, signal?: AbortSignal) => runShell(o, commands, comment, signal);
  return {
    name: 'ssm',
    target: `ssm ${o.instanceId} (${o.region})${o.gatewayUrl ? `, gateway ${o.gatewayUrl}` : ''}`,
    describe: (percent) =>
      `ssm:SendCommand to ${o.instanceId} (${o.region}): read the gateway's split, write ${percent}% self-hosted to its split directory (no nginx reload)${o.gatewayUrl && (o.samples ?? 200) > 0 ? `; sample ${o.samples ?? 200} requests via ${o.gatewayUrl}` : ''}`,
    async apply(percent, signal): Promise<ApplyResult> {
      const problem = splitPercentProblem(percent);
      if (problem) throw new UsageError(`the self-hosted share ${problem}`, { field: 'percent', hint: 'use whole percents in rollout steps and targets' });
      const live = await run(readSplitScript(), 'embedctl rollout: read the gateway split', signal);
      const generation = /^current: (\S*)/m.exec(live)?.[1] ?? '';
      if (!splitDirOf(live)) {
        throw new ExternalError(`ssm ${o.instanceId}`, "the gateway's nginx.conf keeps its split in the file (rendered by an older embedctl, moved only by reloading nginx, which resets idle keep-alive connections) and its compose file mounts no split directory", {
          hint: 'provision the instance again with this embedctl (embedctl provision) so its gateway reads the split from /opt/embedctl/deploy/nginx/split',
        });
      }
      const from = percentOfGeneration(generation.trim() || undefined) ?? renderedPercentOf(live);
      await run(applySplitScript(percent, generation.trim() || undefined), `embedctl rollout: ${percent}% self-hosted`, signal);
      const applied = `${o.instanceId}: split ${from ?? '?'}% -> ${percent}%, written to the gateway's split directory (no reload)`;
      if (!o.gatewayUrl) return { confirmed: null, observedPercent: null, detail: `${applied}; no gateway URL to sample (--gateway-url)` };
      // The config id tells answers of workers on another config apart (a reload for TLS, say).
      const c = await confirmShare(o.gatewayUrl, percent, { samples: o.samples, tolerance: o.tolerance, model: o.model, splitKey: 'auto', signal, configId: configIdOf(live) });
      return { ...c, detail: `${applied}; ${c.detail}` };
    },
  };
}

/** SendCommand(AWS-RunShellScript), then GetCommandInvocation until it ends; stdout on success. */
export async function runShell(
  o: Pick<SsmTrafficOptions, 'client' | 'instanceId' | 'region' | 'pollMs' | 'timeoutMs' | 'sleep'> & { failureHint?: (exitCode: number | undefined) => string },
  commands: string[],
  comment: string,
  signal?: AbortSignal,
): Promise<string> {
  const system = `AWS SSM (${o.region})`;
  let commandId: string | undefined;
  try {
    const sent = await o.client.send(
      new SendCommandCommand({
        InstanceIds: [o.instanceId],
        DocumentName: 'AWS-RunShellScript',
        Comment: comment.slice(0, 100),
        TimeoutSeconds: 60,
        Parameters: { commands, executionTimeout: ['120'] },
      }),
    );
    commandId = sent.Command?.CommandId;
  } catch (err) {
    throw mapAwsError(err, { action: 'ssm:SendCommand', region: o.region });
  }
  if (!commandId) throw new ExternalError(system, 'SendCommand returned no CommandId');
  const deadline = Date.now() + (o.timeoutMs ?? 180_000);
  for (;;) {
    await o.sleep(o.pollMs ?? 1000, signal);
    let inv;
    try {
      inv = await o.client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: o.instanceId }));
    } catch (err) {
      // Right after SendCommand the invocation may not exist yet.
      if ((err as { name?: string }).name === 'InvocationDoesNotExist' && Date.now() < deadline) continue;
      throw mapAwsError(err, { action: 'ssm:GetCommandInvocation', region: o.region });
    }
    const status = inv.Status ?? 'Pending';
    if (status === 'Success') return inv.StandardOutputContent ?? '';
    if (['Pending', 'InProgress', 'Delayed'].includes(status)) {
      if (Date.now() > deadline) throw new ExternalError(system, `command ${commandId} on ${o.instanceId} still ${status} after ${Math.round((o.timeoutMs ?? 180_000) / 1000)}s`, { hint: 'is the SSM agent running and the instance online? (aws ssm describe-instance-information)' });
      continue;
    }
    const why = (inv.StandardErrorContent ?? '').trim().split('\n').filter(Boolean).pop() ?? inv.StatusDetails ?? status;
    throw new ExternalError(system, `command on ${o.instanceId} ended ${status} (exit ${inv.ResponseCode ?? '?'}): ${why}`, {
      hint: o.failureHint
        ? o.failureHint(inv.ResponseCode)
        : inv.ResponseCode === 3
          ? 'the gateway split changed while embedctl worked: run the command again'
          : 'the gateway keeps its previous split unless the message says otherwise',
    });
  }
}
