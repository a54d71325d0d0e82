import { DeleteParameterCommand, DescribeParametersCommand, PutParameterCommand, type SSMClient, type Tag } from '@aws-sdk/client-ssm';
import { awsErrorCode, mapAwsError } from './errors.js';

/**
 * SSM parameters embedctl creates for a deployment (the gateway keys SecureString). Only these
 * three calls; the AMI lookup and the rollout's Run Command live in ssm*.ts.
 */

export interface ParameterInfo {
  name: string;
  type?: string;
  description?: string;
}

/** The parameter's metadata (never its value), or undefined when it does not exist. */
export async function describeParameter(client: SSMClient, region: string, name: string): Promise<ParameterInfo | undefined> {
  try {
    const out = await client.send(new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Name', Option: 'Equals', Values: [name] }] }));
    const p = out?.Parameters?.find((x) => x.Name === name);
    return p ? { name, type: p.Type, description: p.Description } : undefined;
  } catch (err) {
    throw mapAwsError(err, { action: 'ssm:DescribeParameters', region });
  }
}

/** Creates (tagged) or overwrites (tags cannot go with Overwrite) a SecureString. */
export async function putSecureString(client: SSMClient, region: string, p: { name: string; value: string; description: string; overwrite: boolean; tags: Tag[] }): Promise<void> {
  try {
    await client.send(
      new PutParameterCommand({
        Name: p.name,
        Value: p.value,
        Type: 'SecureString',
        Description: p.description,
        // Standard parameters hold 4 KB; a long keys list needs the advanced tier.
        Tier: Buffer.byteLength(p.value) > 4096 ? 'Advanced' : 'Standard',
        Overwrite: p.overwrite,
        ...(p.overwrite ? {} : { Tags: p.tags }),
      }),
    );
  } catch (err) {
    throw mapAwsError(err, { action: 'ssm:PutParameter', region });
  }
}

export async function deleteParameter(client: SSMClient, region: string, name: string): Promise<'deleted' | 'gone'> {
  try {
    await client.send(new DeleteParameterCommand({ Name: name }));
    return 'deleted';
  } catch (err) {
    if (awsErrorCode(err) === 'ParameterNotFound') return 'gone';
    throw mapAwsError(err, { action: 'ssm:DeleteParameter', region });
  }
}
