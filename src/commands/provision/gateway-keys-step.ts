import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { formatGatewayKeys, type GatewayKey } from '../../core/gateway-keys.js';
import { managedTags } from '../../core/provision-plan.js';
import { statePaths } from '../../core/state.js';
import { describeParameter, putSecureString } from '../../adapters/aws/parameters.js';
import { writeFileAtomic } from '../../util/fs.js';
import { step, type StepEnv } from './steps.js';
import { runShell } from '../../adapters/aws/ssm-traffic.js';
import { awsErrorCode } from '../../adapters/aws/errors.js';
import { ExternalError } from '../../errors.js';

/**
 * The gateway keys the instance's nginx enforces live in an SSM SecureString (user data reads it
 * at boot and stops rather than open the gateway without it). Provision makes sure it exists
 * before anything boots: `--gateway-keys FILE` uploads that file; otherwise an existing parameter
 * is kept as it is, and a missing one is created with a fresh operator and client key, which are
 * also written to .embedctl/gateway-keys/<name> (0600) so their owner can use them.
 */

/** The Description marking a parameter as this deployment's (teardown deletes only those). */
export const gatewayKeysMarker = (name: string) => `embedctl gateway keys for deployment ${name}`;

export interface GatewayKeysOutcome {
  parameter: string;
  createdByUs: boolean;
  action: 'kept' | 'created' | 'uploaded';
  /** Where freshly generated keys were saved. */
  savedTo?: string;
}

const freshKey = () => `ek_${randomBytes(24).toString('base64url')}`;

export function generatedKeysPath(cwd: string, env: Record<string, string | undefined>, name: string): string {
  return join(statePaths(cwd, env).dir, 'gateway-keys', name);
}

async function saveKeys(e: StepEnv, text: string): Promise<string> {
  const path = generatedKeysPath(e.ctx.cwd, e.ctx.env, e.o.name);
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  chmodSync(join(path, '..'), 0o700);
  await writeFileAtomic(path, text, { mode: 0o600 });
  return path;
}

export const gatewayKeysStep = step<GatewayKeysOutcome>({
  name: 'gateway-keys',
  async check(e) {
    // A file to upload always goes up (it may be a rotation).
    if (e.o.gatewayKeys) return undefined;
    const parameter = e.o.deploy.gatewayKeysParameter;
    const found = await describeParameter(e.aws.ssm, e.o.region, parameter);
    if (!found) return undefined;
    const known = e.dep.gatewayKeys;
    const createdByUs = known?.parameter === parameter ? known.createdByUs : found.description === gatewayKeysMarker(e.o.name);
    return { parameter, createdByUs, action: 'kept' };
  },
  async create(e) {
    const parameter = e.o.deploy.gatewayKeysParameter;
    const existing = e.o.gatewayKeys ? await describeParameter(e.aws.ssm, e.o.region, parameter) : undefined;
    let text: string;
    let savedTo: string | undefined;
    if (e.o.gatewayKeys) text = e.o.gatewayKeys.text;
    else {
      const keys: GatewayKey[] = [
        { role: 'operator', key: freshKey() },
        { role: 'client', key: freshKey() },
      ];
      text = formatGatewayKeys(keys);
      // Saved before the upload: keys that exist only in SSM would help nobody.
      savedTo = await saveKeys(e, text);
    }
    await putSecureString(e.aws.ssm, e.o.region, {
      name: parameter,
      value: text,
      description: gatewayKeysMarker(e.o.name),
      overwrite: Boolean(existing),
      tags: managedTags(e.o.name, parameter),
    });
    const known = e.dep.gatewayKeys;
    const createdByUs = existing ? (known?.parameter === parameter ? known.createdByUs : existing.description === gatewayKeysMarker(e.o.name)) : true;
    return { parameter, createdByUs, action: e.o.gatewayKeys ? 'uploaded' : 'created', savedTo };
  },
  async record(e, r) {
    const where = r.savedTo ? `; the keys are in ${relative(e.ctx.cwd, r.savedTo) || r.savedTo} (0600): send "Authorization: Bearer <client key>"` : '';
    e.log.info(`gateway keys: SSM parameter ${r.parameter} ${r.action === 'kept' ? 'exists, kept as it is' : r.action === 'uploaded' ? `set from ${e.o.gatewayKeys!.path}` : 'created with a fresh operator and client key'}${where}`);
    // A rotation must not look done while the gateway still takes the old keys: instances read
    // the parameter when they boot (templates/user-data.sh). A single instance gets the new keys
    // over SSM below (gatewayKeysApplyStep); a scale group's instances need replacing.
    if (r.action === 'uploaded' && e.dep.scale?.autoScalingGroup) {
      e.log.warn(
        `gateway keys: the scale group's running instances still enforce the previous keys (a key removed from the file still works there) until replaced: aws autoscaling start-instance-refresh --region ${e.o.region} --auto-scaling-group-name ${e.dep.scale.autoScalingGroup}`,
      );
    }
    await e.store.update(e.o.name, `gateway-keys-${r.action}`, () => void (e.dep.gatewayKeys = { parameter: r.parameter, createdByUs: r.createdByUs }), { parameter: r.parameter });
  },
});

/**
 * SendCommand answers a bare InvalidInstanceId when the instance's SSM agent never registered:
 * almost always a role without AmazonSSMManagedInstanceCore (or no instance profile at all),
 * otherwise an instance that is not running. The rotated keys are in SSM either way.
 */
function notManagedBySsm(err: unknown, id: string, region: string): ExternalError | undefined {
  if (awsErrorCode((err as { cause?: unknown }).cause ?? err) !== 'InvalidInstanceId') return undefined;
  return new ExternalError(`AWS SSM (${region})`, `ssm:SendCommand: ${id} is not a managed instance (InvalidInstanceId), so it still enforces the previous gateway keys`, {
    cause: err,
    hint: `attach AmazonSSMManagedInstanceCore to the role of its instance profile (--iam-instance-profile), wait until \`aws ssm describe-instance-information --region ${region}\` lists ${id} (and that it is running), then provision --gateway-keys again`,
  });
}

/** Where user data puts the keys script on the instance (templates/user-data.sh). */
export const INSTANCE_KEYS_SCRIPT = '/opt/embedctl/deploy/gateway-keys.sh';

export interface GatewayKeysApplied {
  applied: boolean;
  detail: string;
}

/**
 * A rotation (`--gateway-keys FILE` for a deployment whose instance was already running): the
 * instance read the parameter when it booted, so until told otherwise its gateway keeps taking
 * the previous keys, a revoked one included. Over SSM Run Command the instance runs the script
 * user data left for this (gateway-keys.sh --reload: the parameter into nginx's key files, nginx
 * -t, reload). A reload closes idle keep-alive connections, which clients reopen (the SDKs retry).
 */
export const gatewayKeysApplyStep = step<GatewayKeysApplied>({
  name: 'gateway-keys-apply',
  async check(e) {
    if (!e.o.gatewayKeys || !e.instanceFound || !e.dep.instance) return { applied: false, detail: 'nothing to apply' };
    return undefined;
  },
  async create(e) {
    const id = e.dep.instance!.id;
    const out = await runShell(
      {
        client: e.aws.ssm,
        instanceId: id,
        region: e.o.region,
        sleep: (ms, signal) => e.w.sleep(ms, signal),
        failureHint: (code) =>
          code === 3
            ? 'this instance was provisioned by an older embedctl, without the keys script: replace it (embedctl teardown, then provision) to rotate its keys'
            : `the new keys are in SSM, but ${id} may still enforce the previous ones: fix the cause above and provision again, or run ${INSTANCE_KEYS_SCRIPT} --reload on it`,
      },
      [`test -x ${INSTANCE_KEYS_SCRIPT} || { echo "${INSTANCE_KEYS_SCRIPT} is missing: provisioned by an older embedctl" >&2; exit 3; }`, `${INSTANCE_KEYS_SCRIPT} --reload`],
      'embedctl provision: apply the rotated gateway keys',
      e.w.signal,
    ).catch((err: unknown) => {
      throw notManagedBySsm(err, id, e.o.region) ?? err;
    });
    return { applied: true, detail: out.trim().split('\n').filter(Boolean).pop() ?? 'applied' };
  },
  async record(e, r, found) {
    if (found) return;
    e.log.info(`gateway keys: applied on ${e.dep.instance!.id} over SSM: ${r.detail}`);
    await e.store.update(e.o.name, 'gateway-keys-applied', () => {}, { instance: e.dep.instance!.id });
  },
});
