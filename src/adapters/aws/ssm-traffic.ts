import { createHash } from 'node:crypto';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { ExternalError } from '../../errors.js';
import { resplit, splitOf } from '../traffic/split.js';
import { confirmShare } from '../traffic/nginx.js';
import { configIdOf } from '../../core/render.js';
import type { ApplyResult, TrafficDriver } from '../traffic/types.js';
import { mapAwsError } from './errors.js';

/**
 * The `ssm` traffic driver: moves the split of a deployed gateway (nginx in a container on the
 * instance, templates/docker-compose.yml) with AWS Systems Manager Run Command. Two commands:
 * one reads the live nginx.conf; embedctl re-renders its split here with the local nginx
 * driver's code (resplit); the second validates the candidate with `nginx -t` INSIDE the gateway
 * container, installs it in place, reloads, and restores the old file if the reload fails. The
 * share is then confirmed from outside by sampling the public gateway (X-Embedctl-Backend).
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
const PRELUDE = ['set -eu', 'DEPLOY_DIR="${EMBEDCTL_DEPLOY_DIR:-/opt/embedctl/deploy}"', 'CONF="$DEPLOY_DIR/nginx/nginx.conf"'];

/** Base64 on one line: the bytes come back exact, whatever SSM does to whitespace in the output. */
export function readConfScript(): string[] {
  return [...PRELUDE, 'base64 -w0 "$CONF"'];
}

/**
 * The script that installs `conf` on the instance. It refuses when the live file is no longer
 * the one read (`expectedSha256`): someone else changed the gateway in between.
 */
export function applyConfScript(conf: string, expectedSha256: string): string[] {
  const b64 = Buffer.from(conf, 'utf8').toString('base64').replace(/(.{76})/g, '$1\n');
  return [
    ...PRELUDE,
    'CAND="$DEPLOY_DIR/nginx/.embedctl-candidate.conf"',
    'compose() { docker compose -f "$DEPLOY_DIR/docker-compose.yml" "$@"; }',
    `[ "$(sha256sum "$CONF" | cut -d' ' -f1)" = "${expectedSha256}" ] || { echo "embedctl: $CONF changed since it was read; nothing applied" >&2; exit 3; }`,
    `base64 -d > "$CAND" <<'EMBEDCTL_CONF_EOF'\n${b64}\nEMBEDCTL_CONF_EOF`,
    // nginx -t in the container itself: its nginx version, modules and include paths.
    'compose cp "$CAND" gateway:/etc/nginx/.embedctl-candidate.conf',
    'compose exec -T gateway nginx -t -p /var/cache/nginx/ -c /etc/nginx/.embedctl-candidate.conf',
    'cp "$CONF" "$CONF.previous"',
    // In place (same inode): the container bind-mounts this single file and would not see a rename.
    'cat "$CAND" > "$CONF"',
    'if ! compose exec -T gateway nginx -p /var/cache/nginx/ -s reload; then cat "$CONF.previous" > "$CONF"; echo "embedctl: reload failed; the previous config is back" >&2; exit 4; fi',
    'rm -f "$CAND"',
    'echo "embedctl: applied $(sha256sum "$CONF" | cut -d\' \' -f1)"',
  ];
}

export const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

export function ssmTrafficDriver(o: SsmTrafficOptions): TrafficDriver {
  const run = (commands: string[], comment: string, signal?: AbortSignal) => runShell(o, commands, comment, signal);
  return {
    name: 'ssm',
    target: `ssm ${o.instanceId} (${o.region})${o.gatewayUrl ? `, gateway ${o.gatewayUrl}` : ''}`,
    describe: (percent) =>
      `ssm:SendCommand to ${o.instanceId} (${o.region}): read nginx.conf, re-render the split at ${percent}%, nginx -t in the gateway container, install, reload${o.gatewayUrl && (o.samples ?? 200) > 0 ? `; sample ${o.samples ?? 200} requests via ${o.gatewayUrl}` : ''}`,
    async apply(percent, signal): Promise<ApplyResult> {
      const live = Buffer.from((await run(readConfScript(), 'embedctl rollout: read the gateway config', signal)).trim(), 'base64').toString('utf8');
      let next: string;
      try {
        next = resplit(live, percent);
      } catch (err) {
        throw new ExternalError(`ssm ${o.instanceId}`, `the gateway's nginx.conf cannot be re-split: ${(err as Error).message}`, { hint: 'was this instance provisioned by embedctl? (/opt/embedctl/deploy/nginx/nginx.conf)' });
      }
      await run(applyConfScript(next, sha256(live)), `embedctl rollout: ${percent}% self-hosted`, signal);
      const applied = `${o.instanceId}: nginx.conf ${splitOf(live) ?? '?'}% -> ${percent}%, nginx -t and reload in the gateway container`;
      if (!o.gatewayUrl) return { confirmed: null, observedPercent: null, detail: `${applied}; no gateway URL to sample (--gateway-url)` };
      // The config id tells answers of workers still on the previous config apart (not counted).
      const c = await confirmShare(o.gatewayUrl, percent, { samples: o.samples, tolerance: o.tolerance, model: o.model, splitKey: 'auto', signal, configId: configIdOf(next) });
      return { ...c, detail: `${applied}; ${c.detail}` };
    },
  };
}

/** SendCommand(AWS-RunShellScript), then GetCommandInvocation until it ends; stdout on success. */
async function runShell(o: SsmTrafficOptions, commands: string[], comment: string, signal?: AbortSignal): Promise<string> {
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
      hint: inv.ResponseCode === 3 ? 'the gateway config changed while embedctl worked: run the command again' : 'nothing was reloaded unless the message says so; the gateway keeps its previous split',
    });
  }
}
