import type {
  AuthorizeSecurityGroupIngressCommandInput,
  CreateSecurityGroupCommandInput,
  IpPermission,
  RunInstancesCommandInput,
  Tag,
  TagSpecification,
} from '@aws-sdk/client-ec2';

/**
 * The exact AWS request parameters of `embedctl provision`, built from options alone (no I/O),
 * so tests and `--dry-run` see precisely what would be sent.
 */

/** Public SSM parameter: AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04), x86_64. */
export const DLAMI_SSM_PARAMETER = '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id';
/** The DLAMI Ubuntu images boot from /dev/sda1 (not /dev/xvda as Amazon Linux does). */
export const ROOT_DEVICE = '/dev/sda1';

export const MANAGED_TAG = 'embedctl:managed';
export const DEPLOYMENT_TAG = 'embedctl:deployment';

/**
 * Only the nginx gateway is published (default 8000, `render`'s gatewayPort); the runtimes bind
 * 127.0.0.1 on the instance behind it, so they need no rule.
 */
export const DEFAULT_GATEWAY_PORT = 8000;
export const SSH_PORT = 22;

/** The service metrics (runtime/emf.ts publishes them) the alarms read: one list for every reader. */
export { DEPLOYMENT_DIMENSION, SERVICE_METRICS, SERVICE_NAMESPACE } from './service-metrics.js';

export type Market = 'on-demand' | 'spot';

export interface ProvisionOptions {
  name: string;
  region: string;
  instanceType: string;
  market: Market;
  allowCidrs: string[];
  keyName?: string;
  subnetId?: string;
  volumeSize: number;
  /** The port nginx publishes on the instance (the only service port opened). */
  gatewayPort: number;
  /** HTTPS at the gateway (render --tls ...): this port is opened to the same CIDRs. */
  httpsPort?: number;
  /** Let's Encrypt HTTP-01 (certbot --standalone in user data): port 80 from anywhere, where only certbot listens. */
  acmeHttp01?: boolean;
  iamInstanceProfile?: string;
  /** SNS topic the alarms notify; none = alarms only show in the console. */
  alarmTopicArn?: string;
}

const NAME_RE = /^[a-z][a-z0-9-]{0,39}$/;

/** Returns an error message, or undefined when the name is usable in tags, SG names and tokens. */
export function checkDeploymentName(name: string): string | undefined {
  if (!NAME_RE.test(name)) return `expected 1-40 characters of a-z, 0-9 and "-", starting with a letter, got ${JSON.stringify(name)}`;
  return undefined;
}

export interface CidrCheck {
  cidr: string;
  ipv6: boolean;
  bits: number;
  /** First address and size of the range, as integers (IPv6 needs BigInt). */
  start: bigint;
  size: bigint;
}

function ipv6ToBigInt(addr: string): bigint | undefined {
  const halves = addr.split('::');
  if (halves.length > 2) return undefined;
  const part = (h: string) => (h === '' ? [] : h.split(':'));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(Math.max(fill, 0)).fill('0'), ...tail];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Validates one IPv4 or IPv6 CIDR; throws an Error with a one-line message. */
export function parseCidr(raw: string): CidrCheck {
  const s = raw.trim();
  const m4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (m4) {
    const octets = m4.slice(1, 5).map(Number);
    const bits = Number(m4[5]);
    if (octets.some((o) => o > 255) || bits > 32) throw new Error(`${JSON.stringify(raw)} is not a valid IPv4 CIDR`);
    const addr = octets.reduce((n, o) => (n << 8n) | BigInt(o), 0n);
    const size = 1n << BigInt(32 - bits);
    return { cidr: s, ipv6: false, bits, start: addr - (addr % size), size };
  }
  const m6 = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(s);
  const addr6 = m6 && m6[1]!.includes(':') ? ipv6ToBigInt(m6[1]!) : undefined;
  if (m6 && addr6 !== undefined && Number(m6[2]) <= 128) {
    const bits = Number(m6[2]);
    const size = 1n << BigInt(128 - bits);
    return { cidr: s.toLowerCase(), ipv6: true, bits, start: addr6 - (addr6 % size), size };
  }
  throw new Error(`${JSON.stringify(raw)} is not a CIDR; use an address with a prefix length, e.g. 203.0.113.7/32`);
}

/** Prefixes shorter than this are "the internet" whatever else is listed. */
export const MIN_PREFIX_BITS = 8;

/** Addresses covered by a set of ranges, overlaps counted once. */
function unionSize(ranges: CidrCheck[]): bigint {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let total = 0n;
  let end = -1n;
  for (const r of sorted) {
    const rEnd = r.start + r.size;
    if (rEnd <= end) continue;
    total += rEnd - (r.start > end ? r.start : end);
    end = rEnd;
  }
  return total;
}

/**
 * Why a set of --allow-cidr values opens the endpoint to (a big share of) the internet, or
 * undefined. Checked as a set: 0.0.0.0/1 + 128.0.0.0/1 is 0.0.0.0/0 spelled twice, and
 * 2000::/3 is every global IPv6 address. Anything shorter than /8, or together more than one /8
 * worth of addresses per family, needs --allow-world.
 */
export function internetExposure(cidrs: string[]): string | undefined {
  const parsed = cidrs.map(parseCidr);
  const short = parsed.filter((c) => c.bits < MIN_PREFIX_BITS);
  if (short.length) return `${short.map((c) => c.cidr).join(', ')} ${short.length > 1 ? 'are' : 'is'} shorter than /${MIN_PREFIX_BITS}`;
  for (const [family, total] of [['IPv4', 32n], ['IPv6', 128n]] as const) {
    const mine = parsed.filter((c) => c.ipv6 === (family === 'IPv6'));
    if (mine.length < 2) continue;
    const covered = unionSize(mine);
    if (covered > 1n << (total - BigInt(MIN_PREFIX_BITS))) {
      const share = Number((covered * 10_000n) / (1n << total)) / 100;
      return `${mine.map((c) => c.cidr).join(' + ')} together cover ${share}% of the ${family} internet (more than one /${MIN_PREFIX_BITS})`;
    }
  }
  return undefined;
}

export function managedTags(name: string, resourceName: string): Array<Tag & { Key: string; Value: string }> {
  return [
    { Key: 'Name', Value: resourceName },
    { Key: MANAGED_TAG, Value: 'true' },
    { Key: DEPLOYMENT_TAG, Value: name },
  ];
}

/** Whether a resource's tags say embedctl manages it for this deployment. */
export function tagsConfirm(tags: Array<{ Key?: string; Value?: string }> | undefined, name: string): boolean {
  const get = (k: string) => tags?.find((t) => t.Key === k)?.Value;
  return get(MANAGED_TAG) === 'true' && get(DEPLOYMENT_TAG) === name;
}

export const securityGroupName = (name: string) => `embedctl-${name}`;
export const instanceName = (name: string) => `embedctl-${name}`;

/** ClientToken: deterministic per deployment and attempt (EC2 allows 64 ASCII characters). */
export function clientToken(name: string, attempt: number): string {
  return `embedctl-${name}-${attempt}`;
}

export function buildCreateSecurityGroup(o: ProvisionOptions, vpcId: string): CreateSecurityGroupCommandInput {
  const groupName = securityGroupName(o.name);
  return {
    GroupName: groupName,
    Description: `embedctl ${o.name}: embeddings runtime, inbound only from the allowed CIDRs`,
    VpcId: vpcId,
    TagSpecifications: [{ ResourceType: 'security-group', Tags: managedTags(o.name, groupName) }],
  };
}

/**
 * EC2 takes only a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$* in group and rule descriptions:
 * one apostrophe fails the whole AuthorizeSecurityGroupIngress (InvalidParameterValue).
 */
export const ACME_HTTP01_DESCRIPTION = 'ACME HTTP-01 for Lets Encrypt (certbot --standalone only)';

export interface IngressRule {
  port: number;
  cidr: string;
  ipv6: boolean;
  description: string;
}

export function ingressRules(o: ProvisionOptions): IngressRule[] {
  const ports: Array<[number, string]> = [[o.gatewayPort, 'embedctl gateway (nginx)']];
  // SSH only exists when a key pair does: without one nobody could log in anyway.
  if (o.keyName) ports.push([SSH_PORT, 'embedctl ssh (docker over ssh)']);
  if (o.httpsPort) ports.push([o.httpsPort, 'embedctl gateway (nginx, HTTPS)']);
  const rules: IngressRule[] = [];
  for (const [port, description] of ports) {
    for (const raw of o.allowCidrs) {
      const c = parseCidr(raw);
      rules.push({ port, cidr: c.cidr, ipv6: c.ipv6, description });
    }
  }
  // Let's Encrypt validates from addresses it does not publish: port 80 must be open to all.
  if (o.acmeHttp01) {
    rules.push({ port: 80, cidr: '0.0.0.0/0', ipv6: false, description: ACME_HTTP01_DESCRIPTION });
    rules.push({ port: 80, cidr: '::/0', ipv6: true, description: ACME_HTTP01_DESCRIPTION });
  }
  return rules;
}

export function buildIngress(o: ProvisionOptions, groupId: string): AuthorizeSecurityGroupIngressCommandInput {
  const byPort = new Map<number, IpPermission>();
  for (const r of ingressRules(o)) {
    let perm = byPort.get(r.port);
    if (!perm) {
      perm = { IpProtocol: 'tcp', FromPort: r.port, ToPort: r.port, IpRanges: [], Ipv6Ranges: [] };
      byPort.set(r.port, perm);
    }
    if (r.ipv6) perm.Ipv6Ranges!.push({ CidrIpv6: r.cidr, Description: r.description });
    else perm.IpRanges!.push({ CidrIp: r.cidr, Description: r.description });
  }
  const perms = [...byPort.values()].map((p) => {
    const out: IpPermission = { IpProtocol: p.IpProtocol, FromPort: p.FromPort, ToPort: p.ToPort };
    if (p.IpRanges!.length) out.IpRanges = p.IpRanges;
    if (p.Ipv6Ranges!.length) out.Ipv6Ranges = p.Ipv6Ranges;
    return out;
  });
  return {
    GroupId: groupId,
    IpPermissions: perms,
    TagSpecifications: [{ ResourceType: 'security-group-rule', Tags: managedTags(o.name, securityGroupName(o.name)) }],
  };
}

export interface RunInputs {
  amiId: string;
  /** Undefined only in a dry run before the group exists (EC2 then checks with the default group). */
  securityGroupId?: string;
  /** The cloud-init script as sent (plain, or gzipped when over EC2's 16 KB limit). */
  userData: string | Uint8Array;
  clientToken: string;
}

export function buildRunInstances(o: ProvisionOptions, r: RunInputs): RunInstancesCommandInput {
  const nameTag = instanceName(o.name);
  const tagSpecs: TagSpecification[] = (['instance', 'volume', 'network-interface'] as const).map((ResourceType) => ({
    ResourceType,
    Tags: managedTags(o.name, nameTag),
  }));
  if (o.market === 'spot') tagSpecs.push({ ResourceType: 'spot-instances-request', Tags: managedTags(o.name, nameTag) });
  const input: RunInstancesCommandInput = {
    ImageId: r.amiId,
    InstanceType: o.instanceType as RunInstancesCommandInput['InstanceType'],
    MinCount: 1,
    MaxCount: 1,
    ClientToken: r.clientToken,
    // IMDSv2 only; hop limit 2 so containers (one extra hop through the docker bridge) still reach it.
    // Instance tags in IMDS: user data reads embedctl:deployment from there, so the runtime's
    // metrics carry the Deployment dimension the alarms below are keyed on.
    MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 2, HttpEndpoint: 'enabled', InstanceMetadataTags: 'enabled' },
    BlockDeviceMappings: [
      {
        DeviceName: ROOT_DEVICE,
        Ebs: { VolumeSize: o.volumeSize, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
      },
    ],
    TagSpecifications: tagSpecs,
    UserData: Buffer.from(r.userData).toString('base64'),
    Monitoring: { Enabled: false },
  };
  if (o.subnetId) {
    // A custom subnet may not auto-assign public IPs; ask for one on the primary interface.
    input.NetworkInterfaces = [
      {
        DeviceIndex: 0,
        SubnetId: o.subnetId,
        AssociatePublicIpAddress: true,
        DeleteOnTermination: true,
        ...(r.securityGroupId ? { Groups: [r.securityGroupId] } : {}),
      },
    ];
  } else if (r.securityGroupId) {
    input.SecurityGroupIds = [r.securityGroupId];
  }
  if (o.keyName) input.KeyName = o.keyName;
  if (o.iamInstanceProfile) {
    input.IamInstanceProfile = o.iamInstanceProfile.startsWith('arn:') ? { Arn: o.iamInstanceProfile } : { Name: o.iamInstanceProfile };
  }
  if (o.market === 'spot') {
    input.InstanceMarketOptions = {
      MarketType: 'spot',
      SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
    };
  }
  return input;
}

export { alarmName, buildAlarms } from './provision-monitoring.js';

/**
 * A single instance's gateway: its DNS name over HTTPS when TLS is on (known before launch; the
 * certificate is for that name), else http on its public address, once it has one.
 */
export function instanceGatewayUrl(o: { gatewayPort: number; httpsPort?: number; domain?: string }, host: string | undefined): string | undefined {
  if (o.httpsPort && o.domain) return `https://${o.domain}${o.httpsPort === 443 ? '' : `:${o.httpsPort}`}`;
  return host ? `http://${host}:${o.gatewayPort}` : undefined;
}

/**
 * The gateway of a running instance now: an HTTPS name as recorded (DNS is its owner's to move),
 * else the recorded scheme and port (else http and `port`) on the instance's current address,
 * which changes with every stop and start.
 */
export function liveGatewayUrl(recorded: string | undefined, host: string | undefined, port: number): string | undefined {
  let url: URL | undefined;
  try {
    url = recorded ? new URL(recorded) : undefined;
  } catch {
    url = undefined;
  }
  if (url?.protocol === 'https:') return recorded;
  if (!host) return undefined;
  return `http://${host}:${url?.port || port}`;
}

/**
 * Approximate us-east-1 on-demand list prices (USD/hour) for the usual embedding GPUs, shown in
 * the plan so nobody launches a p4d by typo. `cost-report` has the real Pricing API lookup.
 */
const LIST_PRICE_USD_HOUR: Record<string, number> = {
  'g4dn.xlarge': 0.526,
  'g4dn.2xlarge': 0.752,
  'g4dn.4xlarge': 1.204,
  'g5.xlarge': 1.006,
  'g5.2xlarge': 1.212,
  'g5.4xlarge': 1.624,
  'g6.xlarge': 0.8048,
  'g6.2xlarge': 0.9776,
  'g6e.xlarge': 1.861,
  'g6e.2xlarge': 2.24208,
};

export function approxHourlyUsd(instanceType: string): number | undefined {
  return LIST_PRICE_USD_HOUR[instanceType];
}

/** GPU families the runtime's CUDA image runs on; anything else gets a warning, not a refusal. */
export function isGpuInstanceType(t: string): boolean {
  return /^(g4dn|g4ad|g5|g5g|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en|p6-[a-z0-9]+)\./.test(t);
}

/** Regions as of 2025 (incl. opt-in ones); used to reject typos before any network call. */
export const AWS_REGIONS = [
  'us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'af-south-1', 'ap-east-1', 'ap-east-2', 'ap-south-1', 'ap-south-2',
  'ap-southeast-1', 'ap-southeast-2', 'ap-southeast-3', 'ap-southeast-4', 'ap-southeast-5', 'ap-southeast-7',
  'ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3', 'ca-central-1', 'ca-west-1', 'eu-central-1', 'eu-central-2',
  'eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-south-1', 'eu-south-2', 'eu-north-1', 'il-central-1', 'me-south-1',
  'me-central-1', 'mx-central-1', 'sa-east-1', 'us-gov-east-1', 'us-gov-west-1', 'cn-north-1', 'cn-northwest-1',
] as const;

export function checkRegion(region: string): string | undefined {
  if ((AWS_REGIONS as readonly string[]).includes(region)) return undefined;
  const near = AWS_REGIONS.filter((r) => r.startsWith(region.split('-')[0] ?? '')).slice(0, 4);
  return `unknown AWS region ${JSON.stringify(region)}${near.length ? `; did you mean ${near.join(', ')}?` : ''}`;
}
