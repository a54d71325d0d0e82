import { ACMClient, DescribeCertificateCommand } from '@aws-sdk/client-acm';
import { UsageError } from '../../errors.js';
import { awsErrorCode, mapAwsError } from './errors.js';

export function acmClient(region: string): ACMClient {
  return new ACMClient({ region, maxAttempts: 5 });
}

export interface CertificateInfo {
  arn: string;
  domain?: string;
  status: string;
  notAfter?: string;
}

/**
 * The certificate the HTTPS listener will present. Checked before anything is created: an ALB
 * takes a pending or expired certificate only to fail at the first handshake.
 */
export async function checkCertificate(client: ACMClient, region: string, arn: string): Promise<CertificateInfo> {
  let info: CertificateInfo;
  try {
    const out = await client.send(new DescribeCertificateCommand({ CertificateArn: arn }));
    const c = out.Certificate;
    info = { arn, domain: c?.DomainName, status: c?.Status ?? 'UNKNOWN', notAfter: c?.NotAfter?.toISOString() };
  } catch (err) {
    if (awsErrorCode(err) === 'ResourceNotFoundException') {
      throw new UsageError(`certificate ${arn} not found in ${region}`, {
        field: '--certificate-arn',
        hint: 'an ALB needs an ACM certificate in its own region: `aws acm list-certificates --region ' + region + '`',
      });
    }
    throw mapAwsError(err, { action: 'acm:DescribeCertificate', region });
  }
  if (info.status !== 'ISSUED') {
    throw new UsageError(`certificate ${arn} is ${info.status}, not ISSUED`, {
      field: '--certificate-arn',
      hint: 'finish its DNS validation in ACM (or request a new one), then re-run',
    });
  }
  return info;
}
