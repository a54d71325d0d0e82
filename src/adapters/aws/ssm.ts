import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ExternalError } from '../../errors.js';
import { DLAMI_SSM_PARAMETER } from '../../core/provision-plan.js';
import { mapAwsError } from './errors.js';

export function ssmClient(region: string): SSMClient {
  return new SSMClient({ region, maxAttempts: 5 });
}

/** The current Deep Learning Base GPU AMI id for the region, from AWS's public SSM parameter. */
export async function latestDlamiId(client: SSMClient, region: string, parameter = DLAMI_SSM_PARAMETER): Promise<string> {
  let value: string | undefined;
  try {
    const out = await client.send(new GetParameterCommand({ Name: parameter }));
    value = out.Parameter?.Value;
  } catch (err) {
    throw mapAwsError(err, { action: 'ssm:GetParameter', region });
  }
  if (!value || !/^ami-[0-9a-f]+$/.test(value)) {
    throw new ExternalError(`AWS SSM (${region})`, `parameter ${parameter} holds ${JSON.stringify(value)}, not an AMI id`);
  }
  return value;
}
