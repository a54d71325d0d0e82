import { EmbedctlError, ExternalError, UsageError } from '../../errors.js';

/**
 * Turns AWS SDK errors into one line the user can act on. `action` is the IAM action of the call
 * (e.g. "ec2:RunInstances") so a permission error says exactly what to grant.
 */
export interface AwsCallContext {
  action: string;
  region: string;
  instanceType?: string;
  market?: 'on-demand' | 'spot';
}

interface AwsLikeError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  hostname?: string;
}

export function awsErrorCode(err: unknown): string {
  const e = err as AwsLikeError | undefined;
  return (e?.Code ?? e?.name ?? e?.code ?? '') as string;
}

const G_ON_DEMAND_QUOTA = 'L-DB2E81BA';
const G_SPOT_QUOTA = 'L-3819A6DF';

export function mapAwsError(err: unknown, c: AwsCallContext): EmbedctlError {
  if (err instanceof EmbedctlError) return err;
  const code = awsErrorCode(err);
  const message = ((err as AwsLikeError)?.message ?? String(err)).split('\n')[0]!;
  const system = `AWS ${c.action.split(':')[0]!.toUpperCase()} (${c.region})`;

  if (code === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return new ExternalError('AWS', 'no credentials found', {
      cause: err,
      hint: 'set AWS_PROFILE (after `aws configure` or `aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY',
    });
  }
  if (['AuthFailure', 'InvalidClientTokenId', 'UnrecognizedClientException', 'SignatureDoesNotMatch'].includes(code)) {
    return new ExternalError('AWS', `the credentials were rejected (${code})`, {
      cause: err,
      hint: 'check AWS_PROFILE / AWS_ACCESS_KEY_ID; the key may be deleted or belong to another partition',
    });
  }
  if (['ExpiredToken', 'ExpiredTokenException', 'RequestExpired'].includes(code)) {
    return new ExternalError('AWS', 'the session credentials have expired', {
      cause: err,
      hint: 'refresh them (e.g. `aws sso login`) and re-run; provision resumes where it stopped',
    });
  }
  if (code === 'UnauthorizedOperation' || code === 'AccessDenied' || code === 'AccessDeniedException') {
    return new ExternalError(system, `not allowed to call ${c.action}`, {
      cause: err,
      hint: `grant ${c.action} to this IAM identity (an encoded reason, if any, decodes with \`aws sts decode-authorization-message\`)`,
    });
  }
  if (code === 'OptInRequired') {
    return new UsageError(`region ${c.region} is not enabled for this account`, {
      field: '--region',
      cause: err,
      hint: 'enable it under Account > AWS Regions, or pick an enabled region',
    });
  }
  if (code === 'VcpuLimitExceeded' || code === 'MaxSpotInstanceCountExceeded' || code === 'InstanceLimitExceeded') {
    const spot = c.market === 'spot' || code === 'MaxSpotInstanceCountExceeded';
    const quota = spot ? `"All G and VT Spot Instance Requests" (${G_SPOT_QUOTA})` : `"Running On-Demand G and VT instances" (${G_ON_DEMAND_QUOTA})`;
    return new ExternalError(system, `the account's vCPU quota for ${c.instanceType ?? 'this instance type'} is too low (${code})`, {
      cause: err,
      hint: `request an increase in Service Quotas > Amazon EC2 > ${quota} for ${c.region}: \`aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${spot ? G_SPOT_QUOTA : G_ON_DEMAND_QUOTA} --desired-value 8 --region ${c.region}\`${spot ? '' : ', or try --market spot'}`,
    });
  }
  if (code === 'InsufficientInstanceCapacity' || code === 'InsufficientCapacity' || code === 'SpotMaxPriceTooLow') {
    return new ExternalError(system, `AWS has no ${c.instanceType ?? ''} capacity right now in this zone (${code})`.replace('  ', ' '), {
      cause: err,
      hint: 'try another availability zone (--subnet in another AZ), another region, another instance type (e.g. g5.xlarge, g6.xlarge), or --market on-demand',
    });
  }
  if (code === 'InvalidParameterValue' && c.instanceType && /instance ?type/i.test(message)) {
    return new UsageError(`EC2 does not know instance type ${JSON.stringify(c.instanceType)} in ${c.region}`, {
      field: '--instance-type',
      cause: err,
      hint: 'use a GPU type such as g4dn.xlarge, g5.xlarge or g6.xlarge',
    });
  }
  if (code === 'Unsupported' && c.instanceType) {
    return new UsageError(`${c.instanceType} is not offered in this availability zone or region: ${message}`, {
      field: '--instance-type',
      cause: err,
      hint: 'pick a --subnet in another availability zone, or another instance type',
    });
  }
  if (code === 'InvalidSubnetID.NotFound' || code === 'InvalidSubnetID.Malformed') {
    return new UsageError(`subnet not found in ${c.region}: ${message}`, { field: '--subnet', cause: err });
  }
  if (code === 'InvalidKeyPair.NotFound') {
    return new UsageError(`key pair not found in ${c.region}: ${message}`, {
      field: '--key-name',
      cause: err,
      hint: 'list them with `aws ec2 describe-key-pairs`; key pairs are per region',
    });
  }
  if (code === 'ParameterNotFound') {
    return new UsageError(`the Deep Learning AMI is not published in ${c.region}`, { field: '--region', cause: err });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || /getaddrinfo/.test(message)) {
    return new ExternalError(system, `cannot reach the AWS endpoint (${message})`, {
      cause: err,
      hint: 'check the network and --region',
    });
  }
  return new ExternalError(system, `${c.action} failed: ${code ? `${code}: ` : ''}${message}`, { cause: err });
}

/** Codes that mean "the thing is already gone", for idempotent teardown. */
export const NOT_FOUND_CODES = new Set([
  'InvalidInstanceID.NotFound',
  'InvalidGroup.NotFound',
  'InvalidGroupId.NotFound',
  'ResourceNotFound',
  'ResourceNotFoundException',
]);

/**
 * Why AWS cannot be asked anything from here (no or bad credentials, no network), or undefined
 * for any other failure. `provision --dry-run` then prints the plan offline instead of failing.
 */
export function offlineReason(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown })?.cause ?? err;
  const code = awsErrorCode(cause);
  const message = String((cause as AwsLikeError)?.message ?? '');
  if (code === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) return 'no AWS credentials found';
  if (['ExpiredToken', 'ExpiredTokenException', 'RequestExpired'].includes(code)) return 'the AWS session credentials have expired';
  if (['AuthFailure', 'InvalidClientTokenId', 'UnrecognizedClientException', 'SignatureDoesNotMatch'].includes(code)) return `the AWS credentials were rejected (${code})`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || /getaddrinfo/.test(message)) return 'the AWS endpoint cannot be reached';
  return undefined;
}
