import { describe, expect, it } from 'vitest';
import { buildCreateSecurityGroup, buildIngress, instanceGatewayUrl, liveGatewayUrl, managedTags, type ProvisionOptions } from '../src/core/provision-plan.js';
import { buildListener, buildLoadBalancer, buildScaleIngress, buildTargetGroup, type ScaleOptions } from '../src/core/provision-scale.js';

/**
 * The character sets AWS documents, written out here rather than imported: a description EC2
 * refuses fails the whole AuthorizeSecurityGroupIngress (InvalidParameterValue), and then
 * `provision` stops after creating the group.
 */
// EC2 (VPC): group names, group descriptions, rule descriptions: a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$*
const EC2_DESCRIPTION = /^[a-zA-Z0-9 ._\-:/()#,@[\]+=&;{}!$*]{1,255}$/;
// Elastic Load Balancing tag values: Unicode letters, digits, spaces and _.:/=+-@, up to 256.
const ELB_TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;

/** Every option that adds a rule: HTTPS, Let's Encrypt's HTTP-01 (open to all), SSH, both address families. */
const everything: ProvisionOptions = {
  name: 'blue-2',
  region: 'us-east-1',
  instanceType: 'g5.xlarge',
  market: 'spot',
  allowCidrs: ['203.0.113.7/32', '2001:db8::/48'],
  keyName: 'me',
  volumeSize: 125,
  gatewayPort: 8000,
  httpsPort: 443,
  acmeHttp01: true,
};
const scale: ScaleOptions = { min: 2, max: 4, metric: 'requests', target: 1000, certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa' };

function ruleDescriptions(perms: ReturnType<typeof buildIngress>['IpPermissions']): string[] {
  return (perms ?? []).flatMap((p) => [
    ...(p.IpRanges ?? []).map((r) => r.Description!),
    ...(p.Ipv6Ranges ?? []).map((r) => r.Description!),
    ...(p.UserIdGroupPairs ?? []).map((g) => g.Description!),
  ]);
}

describe('what provision sends passes EC2 and ELB character rules', () => {
  it('every security group rule description (single instance with HTTPS, HTTP-01 and SSH; scale-out)', () => {
    const single = ruleDescriptions(buildIngress(everything, 'sg-0abc').IpPermissions);
    const scaled = ruleDescriptions(buildScaleIngress({ ...everything, httpsPort: undefined, acmeHttp01: false }, scale, 'sg-0abc').IpPermissions);
    // 3 ports x 2 CIDRs + port 80 from 0.0.0.0/0 and ::/0; scale: listener and SSH x 2 CIDRs + the ALB's group.
    expect(single).toHaveLength(8);
    expect(scaled).toHaveLength(5);
    for (const d of [...single, ...scaled]) expect(d, `rule description ${JSON.stringify(d)}`).toMatch(EC2_DESCRIPTION);
    // The rules that made provision --tls letsencrypt fail at AuthorizeSecurityGroupIngress.
    const http01 = buildIngress(everything, 'sg-0abc').IpPermissions!.find((p) => p.FromPort === 80)!;
    expect(http01.IpRanges).toEqual([{ CidrIp: '0.0.0.0/0', Description: expect.stringMatching(EC2_DESCRIPTION) }]);
    expect(http01.Ipv6Ranges).toEqual([{ CidrIpv6: '::/0', Description: expect.stringMatching(EC2_DESCRIPTION) }]);
  });

  it('the group name and description, for the longest deployment name', () => {
    const sg = buildCreateSecurityGroup({ ...everything, name: `a${'-z9'.repeat(13)}` }, 'vpc-0abc');
    expect(sg.GroupName).toMatch(EC2_DESCRIPTION);
    expect(sg.Description).toMatch(EC2_DESCRIPTION);
  });

  it('tag values on load balancer resources (EC2 tags take any character)', () => {
    const o = { ...everything, name: `a${'-z9'.repeat(13)}` };
    const tags = [
      ...(buildTargetGroup(o, 'vpc-0abc').Tags ?? []),
      ...(buildLoadBalancer(o, ['subnet-0a', 'subnet-0b'], 'sg-0abc').Tags ?? []),
      ...(buildListener(o, scale, 'arn:lb', 'arn:tg').Tags ?? []),
      ...managedTags(o.name, '/embedctl/gateway-keys'),
    ];
    for (const t of tags) expect(t.Value, `tag ${t.Key}`).toMatch(ELB_TAG_VALUE);
  });
});

describe("a single instance's gateway URL", () => {
  it('at launch: the HTTPS name when TLS is on (no address needed), else http on the address once there is one', () => {
    expect(instanceGatewayUrl({ gatewayPort: 8000, httpsPort: 443, domain: 'embed.example.com' }, undefined)).toBe('https://embed.example.com');
    expect(instanceGatewayUrl({ gatewayPort: 8000, httpsPort: 8443, domain: 'embed.example.com' }, '203.0.113.10')).toBe('https://embed.example.com:8443');
    expect(instanceGatewayUrl({ gatewayPort: 9000 }, 'ec2-203-0-113-10.compute-1.amazonaws.com')).toBe('http://ec2-203-0-113-10.compute-1.amazonaws.com:9000');
    expect(instanceGatewayUrl({ gatewayPort: 9000 }, undefined)).toBeUndefined();
  });

  it('now: an HTTPS name as recorded; else the recorded port on the current address (else the default port)', () => {
    expect(liveGatewayUrl('https://embed.example.com:8443', undefined, 8000)).toBe('https://embed.example.com:8443');
    expect(liveGatewayUrl('http://203.0.113.10:9000', '198.51.100.7', 8000)).toBe('http://198.51.100.7:9000');
    expect(liveGatewayUrl(undefined, '198.51.100.7', 8000)).toBe('http://198.51.100.7:8000');
    expect(liveGatewayUrl('http://203.0.113.10:9000', undefined, 8000)).toBeUndefined();
    expect(liveGatewayUrl('not a url', '198.51.100.7', 8000)).toBe('http://198.51.100.7:8000');
  });
});
