import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { formatGatewayKeys, type GatewayKey } from '../../core/gateway-keys.js';
import { managedTags } from '../../core/provision-plan.js';
import { statePaths } from '../../core/state.js';
import { describeParameter, putSecureString } from '../../adapters/aws/parameters.js';
import { writeFileAtomic } from '../../util/fs.js';
import { step, type StepEnv } from './steps.js';

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
  await writeFileAtomic(path, text);
  chmodSync(path, 0o600);
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
    await e.store.update(e.o.name, `gateway-keys-${r.action}`, () => void (e.dep.gatewayKeys = { parameter: r.parameter, createdByUs: r.createdByUs }), { parameter: r.parameter });
  },
});
