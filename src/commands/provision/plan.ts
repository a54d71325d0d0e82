import type { RunInstancesCommandInput, SecurityGroup } from '@aws-sdk/client-ec2';
import { UsageError } from '../../errors.js';
import {
  approxHourlyUsd,
  buildRunInstances,
  clientToken,
  DLAMI_SSM_PARAMETER,
  ingressRules,
  securityGroupName,
  tagsConfirm,
  MANAGED_TAG,
  DEPLOYMENT_TAG,
  type Market,
} from '../../core/provision-plan.js';
import { autoScalingGroupName, elbName, HEALTH_CHECK_PATH, launchTemplateName, listenerPort, scaleIngressSummary, TLS_POLICY } from '../../core/provision-scale.js';
import { budgetName, buildAlarms, dashboardName } from '../../core/provision-monitoring.js';
import { demoModelProblem, type DeployConfig } from '../../core/deploy-config.js';
import { USER_DATA_LIMIT } from '../../core/render.js';
import { latestDlamiId } from '../../adapters/aws/ssm.js';
import { checkCertificate, type CertificateInfo } from '../../adapters/aws/acm.js';
import { fmtUsd } from '../../ui/output.js';
import type { Resolved } from './options.js';
import { tlsPlan } from '../../core/gateway-config.js';
import type { AwsClients } from './steps.js';

/** What provision learns from the account before it shows the plan (all read-only calls). */
export interface Discovery {
  amiId: string;
  vpcId: string;
  /** Scale-out: the subnets of the ALB and the group (given, or the VPC's default subnets). */
  subnetIds: string[];
  existingSg?: SecurityGroup;
  certificate?: CertificateInfo;
}

export async function discover(aws: AwsClients, o: Resolved): Promise<Discovery> {
  const amiId = await latestDlamiId(aws.ssm, o.region);
  const { vpcId } = await aws.ec2.resolveVpc(o.subnetIds[0]);
  let subnetIds = o.subnetIds;
  if (o.scale && subnetIds.length === 0) subnetIds = (await aws.ec2.defaultSubnets(vpcId)).map((s) => s.id);
  if (o.scale && subnetIds.length < 2) {
    // An ALB needs two availability zones.
    throw new UsageError(`a load balancer needs subnets in at least two availability zones, found ${subnetIds.length}`, {
      field: '--subnet',
      hint: 'pass --subnet twice (public subnets in different zones of one VPC)',
    });
  }
  const existingSg = await aws.ec2.findSecurityGroup(vpcId, securityGroupName(o.name));
  if (existingSg && !tagsConfirm(existingSg.Tags, o.name)) {
    throw new UsageError(`security group ${existingSg.GroupId} is named ${securityGroupName(o.name)} but is not tagged as embedctl's`, {
      field: '--name',
      hint: 'pick another --name; embedctl never changes resources it did not create',
    });
  }
  const certificate = o.scale?.certificateArn ? await checkCertificate(aws.acm, o.region, o.scale.certificateArn) : undefined;
  return { amiId, vpcId, subnetIds, existingSg, certificate };
}

export interface PlanDoc {
  name: string;
  region: string;
  instanceType: string;
  market: Market;
  approxHourlyUsd?: number;
  ami: { source: string; id?: string };
  network: { vpcId?: string; subnets: string[]; choice: string };
  securityGroup: { name: string; id?: string; action: 'create' | 'reuse' | 'create or reuse'; ingress: Array<{ port: number; from: string }> };
  volume: { sizeGiB: number; type: 'gp3'; encrypted: true };
  userData: { bytes: number; limit: number; gzipped: boolean };
  tags: Record<string, string>;
  alarms: string[];
  dashboard: string;
  budget: { name: string; monthlyUsd?: number; notifies?: string };
  model: { name: string; problem?: string };
  /** The SSM SecureString the instance's nginx reads its keys from, and what provision does with it. */
  gatewayKeys: { parameter: string; action: string };
  /** HTTPS at the instance's gateway (render's --tls flags). */
  tls?: { mode: 'files' | 'letsencrypt'; domain: string; port: number; certPath: string };
  scale?: {
    min: number;
    max: number;
    launchTemplate: string;
    autoScalingGroup: string;
    loadBalancer: string;
    listener: { protocol: 'HTTP' | 'HTTPS'; port: number; certificateArn?: string; sslPolicy?: string };
    targetGroup: { name: string; port: number; healthCheckPath: string };
    policy: { metric: string; target: number };
  };
  /** The exact RunInstances request (one-instance mode); ImageId is `resolve:ssm:...` offline. */
  runInstances?: Omit<RunInstancesCommandInput, 'UserData'> & { UserData: string };
  deploy: Pick<DeployConfig, 'image' | 'model' | 'replicas' | 'gatewayPort' | 'hostedUrl' | 'percent'>;
  sources: Record<string, string>;
  /** What this plan could not check against the account (offline) or at all (no dry run). */
  notChecked: string[];
}

export function buildPlan(o: Resolved, d: Discovery | undefined, userData: Uint8Array, token: { clientToken?: string; attempt: number }, offline?: string): PlanDoc {
  const tls = tlsPlan(o.deploy);
  const s = o.scale;
  const sgId = d?.existingSg?.GroupId;
  const gz = userData[0] === 0x1f && userData[1] === 0x8b;
  const run = s
    ? undefined
    : buildRunInstances(o, {
        // EC2 resolves this itself at launch; the online plan shows the id it resolves to today.
        amiId: d?.amiId ?? `resolve:ssm:${DLAMI_SSM_PARAMETER}`,
        securityGroupId: sgId,
        userData,
        clientToken: token.clientToken ?? clientToken(o.name, token.attempt),
      });
  const notChecked: string[] = [];
  if (offline) {
    notChecked.push(
      `${offline}: nothing below was checked against the account`,
      `the AMI id (EC2 resolves ${DLAMI_SSM_PARAMETER} at launch)`,
      o.subnetIds.length ? `that ${o.subnetIds.join(', ')} exist${s ? ' in different availability zones' : ''}` : `that ${o.region} has a default VPC${s ? ' with subnets in two zones' : ''}`,
      `whether security group ${securityGroupName(o.name)} already exists`,
      `IAM permissions (EC2 DryRun of ${s ? 'CreateSecurityGroup, CreateLaunchTemplate' : 'CreateSecurityGroup, RunInstances'})`,
      'the vCPU quota for G instances',
      ...(s?.certificateArn ? [`that certificate ${s.certificateArn} is ISSUED`] : []),
      `whether the cost-allocation tag ${MANAGED_TAG} is active`,
    );
  }
  notChecked.push(
    `cloudwatch:PutMetricAlarm, cloudwatch:PutDashboard and budgets:ModifyBudget (no dry run)${offline ? '' : '; ssm:GetParameter ran for real (read-only)'}`,
  );
  if (s) notChecked.push('Auto Scaling and Elastic Load Balancing permissions (neither has a dry run)');
  return {
    name: o.name,
    region: o.region,
    instanceType: o.instanceType,
    market: o.market,
    approxHourlyUsd: approxHourlyUsd(o.instanceType),
    ami: { source: `SSM parameter ${DLAMI_SSM_PARAMETER} (Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu 22.04)`, id: d?.amiId },
    network: {
      vpcId: d?.vpcId,
      subnets: d?.subnetIds ?? o.subnetIds,
      choice: o.subnetIds.length ? `subnet ${o.subnetIds.join(', ')}` : `the default VPC of ${o.region}${s ? ' (its default subnet in each zone)' : ''}`,
    },
    securityGroup: {
      name: securityGroupName(o.name),
      id: sgId,
      action: offline ? 'create or reuse' : sgId ? 'reuse' : 'create',
      ingress: s ? scaleIngressSummary(o, s) : ingressRules(o).map((r) => ({ port: r.port, from: r.cidr })),
    },
    volume: { sizeGiB: o.volumeSize, type: 'gp3', encrypted: true },
    userData: { bytes: userData.length, limit: USER_DATA_LIMIT, gzipped: gz },
    tags: { [MANAGED_TAG]: 'true', [DEPLOYMENT_TAG]: o.name },
    alarms: buildAlarms(o, s ? { autoScalingGroupName: autoScalingGroupName(o.name) } : 'i-pending').map((a) => a.AlarmName!),
    dashboard: dashboardName(o.name),
    budget: { name: budgetName(o.name), monthlyUsd: o.monthlyBudgetUsd, notifies: o.alarmTopicArn },
    model: { name: o.deploy.model, problem: demoModelProblem(o.deploy.model, Boolean(o.deploy.allowDemoModel)) },
    gatewayKeys: {
      parameter: o.deploy.gatewayKeysParameter,
      action: o.gatewayKeys ? `set from ${o.gatewayKeys.path}` : 'keep if it exists, else create with a fresh operator and client key (saved to .embedctl/gateway-keys/)',
    },
    ...(tls.mode !== 'off' ? { tls: { mode: tls.mode, domain: tls.domain, port: tls.port, certPath: tls.certPath } } : {}),
    ...(s
      ? {
          scale: {
            min: s.min,
            max: s.max,
            launchTemplate: launchTemplateName(o.name),
            autoScalingGroup: autoScalingGroupName(o.name),
            loadBalancer: elbName(o.name),
            listener: s.certificateArn
              ? { protocol: 'HTTPS' as const, port: listenerPort(s), certificateArn: s.certificateArn, sslPolicy: TLS_POLICY }
              : { protocol: 'HTTP' as const, port: listenerPort(s) },
            targetGroup: { name: elbName(o.name, '-tg'), port: o.gatewayPort, healthCheckPath: HEALTH_CHECK_PATH },
            policy: { metric: s.metric === 'requests' ? 'ALBRequestCountPerTarget' : 'Embedctl RequestLatencyP95 (Maximum)', target: s.target },
          },
        }
      : {}),
    // The user-data is long and base64: show its size, not its bytes.
    ...(run ? { runInstances: { ...run, UserData: `<${run.UserData?.length ?? 0} bytes base64>` } } : {}),
    deploy: {
      image: o.deploy.image,
      model: o.deploy.model,
      replicas: o.deploy.replicas,
      gatewayPort: o.deploy.gatewayPort,
      hostedUrl: o.deploy.hostedUrl,
      percent: o.deploy.percent,
    },
    sources: o.sources,
    notChecked,
  };
}

export function renderPlan(p: PlanDoc): string {
  const price = p.approxHourlyUsd !== undefined ? `, about ${fmtUsd(p.approxHourlyUsd)}/h on-demand list price${p.market === 'spot' ? ' (spot is usually far less)' : ''}` : '';
  const rules = p.securityGroup.ingress.map((r) => `tcp ${r.port} from ${r.from}`).join('; ');
  const sgAction = p.securityGroup.action === 'reuse' ? `reuse ${p.securityGroup.id}` : p.securityGroup.action;
  const s = p.scale;
  const lines = [
    `Plan for deployment "${p.name}" in ${p.region} (region from ${p.sources.region}):`,
    `  instance        ${p.instanceType}, ${p.market}${price}${s ? `, ${s.min} to ${s.max} of them` : ''}`,
    `  image           ${p.ami.id ? `${p.ami.id} (Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu 22.04)` : `latest from ${p.ami.source}, resolved at launch`}`,
    `  network         ${p.network.choice}${p.network.vpcId ? ` (${p.network.vpcId})` : ''}${s && p.network.subnets.length ? `: ${p.network.subnets.join(', ')}` : ''}`,
    `  root volume     ${p.volume.sizeGiB} GiB gp3, encrypted, deleted with the instance`,
    `  metadata        IMDSv2 required, hop limit 2`,
    `  security group  ${p.securityGroup.name}${p.network.vpcId ? ` in ${p.network.vpcId}` : ''} (${sgAction}): ${rules}`,
    `  user data       ${p.userData.bytes} bytes${p.userData.gzipped ? ' gzipped' : ''} of EC2's ${p.userData.limit}`,
    `  workload        ${p.deploy.replicas} x ${p.deploy.image} (model ${p.deploy.model}) behind nginx on port ${p.deploy.gatewayPort}, ${p.deploy.percent}% self-hosted / rest to ${p.deploy.hostedUrl}`,
  ];
  if (s) {
    const l = s.listener;
    lines.push(
      `  launch template ${s.launchTemplate} (this user data, IMDSv2, encrypted gp3)`,
      `  auto scaling    group ${s.autoScalingGroup}: min ${s.min}, max ${s.max}, ELB health checks`,
      `  load balancer   ${s.loadBalancer} (internet-facing ALB): ${l.protocol} ${l.port}${l.certificateArn ? ` with ${l.certificateArn} (${l.sslPolicy})` : ''} -> target group ${s.targetGroup.name} (port ${s.targetGroup.port}, health check ${s.targetGroup.healthCheckPath})`,
      `  scaling policy  target tracking on ${s.policy.metric}, target ${s.policy.target}`,
    );
  }
  lines.push(
    `  alarms          ${p.alarms.join(', ')}`,
    `  dashboard       ${p.dashboard} (CloudWatch)`,
    `  budget          ${p.budget.name}: ${p.budget.monthlyUsd !== undefined ? `${fmtUsd(p.budget.monthlyUsd)}/month` : 'no default for this instance type: pass --monthly-budget'}${p.budget.notifies ? `, notifies ${p.budget.notifies}` : ' (no --alarm-topic: console only)'}`,
    `  logs            CloudWatch Logs /embedctl/${p.name}/containers (container logs), /embedctl/${p.name}/metrics (EMF)`,
    `  tags            ${Object.entries(p.tags).map(([k, v]) => `${k}=${v}`).join(', ')}`,
  );
  lines.push(`  gateway keys    SSM SecureString ${p.gatewayKeys.parameter}: ${p.gatewayKeys.action}`);
  if (p.tls) {
    lines.push(
      `  https           ${p.tls.domain}:${p.tls.port} (${p.tls.mode === 'letsencrypt' ? "Let's Encrypt via certbot on the instance, renewed by its timer; port 80 open to all for HTTP-01" : `certificate ${p.tls.certPath} on the instance`}); point ${p.tls.domain} at the instance`,
    );
  }
  if (p.model.problem) lines.push(`  MODEL           provision (without --dry-run) refuses this: ${p.model.problem}`);
  return lines.join('\n') + '\n';
}

export function renderNotChecked(p: PlanDoc): string {
  return ['Not checked:', ...p.notChecked.map((n) => `  - ${n}`)].join('\n') + '\n';
}
