import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.js';
import { rolloutFile } from '../contracts/rollout.js';
import { delta, histogramQuantile, parsePrometheus, snapshot, type TrafficSnapshot } from '../core/rollout/prometheus.js';
import { StateStore, type DeploymentRecord } from '../core/state.js';
import { liveGatewayUrl } from '../core/provision-plan.js';
import { FIELDS } from '../core/deploy-config.js';
import { resolveOption } from '../config.js';
import type { Context } from '../context.js';
import { renderScaleOut, scaleOutStatus, type ScaleOutStatus } from '../adapters/aws/scale.js';
import { Ec2, ec2Client } from '../adapters/aws/ec2.js';
import { breakerLines, localBreakers, type ReplicaBreaker } from '../adapters/nginx-breaker.js';
import { printJson, table, type Logger } from '../ui/output.js';
import { defineCommand } from './define.js';
import { selectDeployments } from './shared.js';
import { STATUS_OPTIONS } from './define-options.js';
import { certificateFailed, certificateLines, certificateStatuses, type CertificateStatus } from './status-tls.js';
import { percentOfGeneration } from '../adapters/traffic/split-dir.js';
import { renderedPercentOf, splitDirOf } from '../core/nginx-conf.js';

export interface Probe {
  ok: boolean;
  status?: number;
  ms?: number;
  error?: string;
}

export interface BackendStatus {
  url: string;
  source: string;
  health: Probe;
  ready: Probe;
  metrics?: {
    /** "since-start" on the first look, "interval" (since the previous frame) with --watch. */
    window: 'since-start' | 'interval';
    requests: number;
    errors: number;
    errorRate: number | null;
    p95Ms: number | null;
  };
  metricsError?: string;
}

export interface InstanceStatus {
  name: string;
  region: string;
  instanceId?: string;
  instanceType?: string;
  market?: string;
  state?: string;
  publicDns?: string;
  publicIp?: string;
  /** Scale-out deployments: the Auto Scaling group's instances and their target health. */
  scale?: ScaleOutStatus;
  error?: string;
}

export interface GatewayStatus {
  url: string;
  source: string;
  health: Probe;
  /** The share the running nginx reports in its /health answer. */
  selfHostedPercent?: number;
  /** What to look at when a deployment's gateway is not healthy. */
  hint?: string;
}

/** A gateway to probe: a deployment's (from its live instance) or the local stack's. */
interface GatewayTarget {
  url?: string;
  source: string;
  /** Set for a single-instance deployment: where its address came from, and the fix if it fails. */
  deployment?: DeploymentRecord;
  instance?: InstanceStatus;
  /** Why there is nothing to probe (no public address). */
  unreachable?: string;
}

export interface SplitStatus {
  percent: number;
  source: string;
}

export const register = defineCommand({
  name: 'status',
  options: STATUS_OPTIONS,
  examples: ['embedctl status', 'embedctl status --watch --interval 5s', 'embedctl status --json'],
  async run(opts, { ctx, globals, log }) {
    const intervalMs = opts.interval;
    const timeoutMs = opts.timeout;
    const { paths, deployments } = await selectDeployments(ctx, opts.name);
    const local = readLocal(paths.local);
    const previous = new Map<string, TrafficSnapshot>();

    const frame = async () => {
      const instances = await Promise.all(deployments.map((d) => instanceStatus(d)));
      const targets = [
        ...deployments.flatMap((d) => d.endpoints.map((url) => ({ url, source: `deployment ${d.name}` }))),
        ...local.backends.map((url) => ({ url, source: 'up --local' })),
      ];
      const gatewayTargets: GatewayTarget[] = [
        ...deployments.flatMap((d, i) => deploymentGateway(ctx, d, instances[i]!)),
        ...(local.gateway ? [{ url: local.gateway, source: 'up --local' }] : []),
      ];
      const probed = gatewayTargets.filter((g): g is GatewayTarget & { url: string } => Boolean(g.url));
      const [backends, gateways, certificates] = await Promise.all([
        Promise.all(targets.map((t) => backendStatus(t.url, t.source, timeoutMs, previous))),
        Promise.all(gatewayTargets.map((g) => gatewayStatusOf(g, timeoutMs))),
        // Certificate expiry (serve's status-tls.ts): served certificates and rendered ones found here.
        certificateStatuses({ gateways: probed, localConf: local.nginxConf }, { cwd: ctx.cwd, now: ctx.now(), timeoutMs }),
      ]);
      await recordGateways(ctx, gatewayTargets, gateways, log);
      const live = gateways.find((g) => g.selfHostedPercent !== undefined);
      const split =
        (await trafficSplitFromRollout(paths.rollout, log)) ??
        (live ? { percent: live.selfHostedPercent!, source: `${live.url}/health` } : trafficSplitFromConf(ctx.cwd, local.nginxConf));
      const nothing = deployments.length === 0 && targets.length === 0 && gatewayTargets.length === 0;
      const breakers = localBreakers(ctx.cwd, ctx.now().getTime());
      return { at: ctx.now().toISOString(), nothing, instances, backends, gateways, split, breakers, certificates };
    };

    const unhealthy = (f: Awaited<ReturnType<typeof frame>>) =>
      f.instances.some((i) => i.error || (i.state && i.state !== 'running')) ||
      f.backends.some((b) => !b.health.ok) ||
      f.gateways.some((g) => !g.health.ok) ||
      f.certificates.some(certificateFailed);

    const draw = (f: Awaited<ReturnType<typeof frame>>, watching: boolean) => {
      const doc = {
        generatedAt: f.at,
        nothingProvisioned: f.nothing,
        deployments: f.instances,
        gateways: f.gateways,
        backends: f.backends,
        split: f.split ?? null,
        breakers: f.breakers ?? [],
        certificates: f.certificates,
      };
      if (globals.json) {
        if (watching) ctx.stdout.write(`${JSON.stringify({ schema: 'embedctl.status/v1', ...doc })}\n`);
        else printJson(ctx, 'status', doc);
        return;
      }
      if (watching && ctx.isTTY) ctx.stdout.write('\x1b[H\x1b[2J');
      else if (watching) ctx.stdout.write(`--- ${f.at}\n`);
      ctx.stdout.write(renderFrame(f, paths.state));
    };

    if (!opts.watch) {
      const f = await frame();
      draw(f, false);
      return f.nothing || !unhealthy(f) ? ExitCode.ok : ExitCode.external;
    }
    // Ctrl-C is how a watch ends: the last frame stays, and the exit code says so (130), as
    // every other command interrupted by Ctrl-C does.
    while (!ctx.signal?.aborted) {
      draw(await frame(), true);
      try {
        await ctx.sleep(intervalMs, ctx.signal);
      } catch {
        break;
      }
    }
    return ExitCode.interrupted;
  },
});

async function instanceStatus(d: DeploymentRecord): Promise<InstanceStatus> {
  const base: InstanceStatus = { name: d.name, region: d.region, instanceId: d.instance?.id, instanceType: d.instance?.instanceType, market: d.instance?.market };
  if (d.scale) {
    try {
      const scale = await scaleOutStatus(d.region, d.scale);
      // "running" as long as the load balancer has a healthy target: what clients need.
      const state = scale?.instances.some((i) => i.target.startsWith('healthy')) ? 'running' : 'no healthy target';
      return { ...base, state, publicDns: d.scale.loadBalancerDns, scale };
    } catch (err) {
      return { ...base, state: 'scale-out', error: (err as Error).message };
    }
  }
  if (!d.instance) return { ...base, state: 'none' };
  try {
    const inst = await new Ec2(ec2Client(d.region), d.region).describeInstance(d.instance.id);
    // The live addresses only: a stopped and started instance has new ones.
    if (inst) return { ...base, state: inst.State?.Name ?? 'unknown', publicDns: inst.PublicDnsName || undefined, publicIp: inst.PublicIpAddress || undefined };
    return { ...base, state: 'not found', publicDns: d.instance.publicDns };
  } catch (err) {
    return { ...base, publicDns: d.instance.publicDns, error: (err as Error).message };
  }
}

async function get(url: string, timeoutMs: number): Promise<{ probe: Probe; text?: string }> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { probe: { ok: res.ok, status: res.status, ms: Math.round((performance.now() - t0) * 10) / 10 }, text };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const reason = e.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { probe: { ok: false, error: reason } };
  }
}

async function backendStatus(url: string, source: string, timeoutMs: number, previous: Map<string, TrafficSnapshot>): Promise<BackendStatus> {
  const base = url.replace(/\/+$/, '');
  const [health, ready, metrics] = await Promise.all([get(`${base}/health`, timeoutMs), get(`${base}/ready`, timeoutMs), get(`${base}/metrics`, timeoutMs)]);
  const out: BackendStatus = { url: base, source, health: health.probe, ready: ready.probe };
  if (metrics.probe.ok && metrics.text !== undefined) {
    const cur = snapshot(parsePrometheus(metrics.text));
    // A fresh runtime declares the family but has no embeddings samples yet: that is 0, not missing.
    if (!cur.found.requests && !/^# TYPE embedctl_requests_total /m.test(metrics.text)) {
      out.metricsError = 'no embedctl_requests_total in /metrics';
    } else {
      const prev = previous.get(base);
      const d = delta(prev, cur);
      previous.set(base, cur);
      const p95 = histogramQuantile(0.95, d.buckets);
      out.metrics = {
        window: prev && cur.total >= prev.total ? 'interval' : 'since-start',
        requests: d.total,
        errors: d.errors,
        errorRate: d.total > 0 ? d.errors / d.total : null,
        p95Ms: p95 === null ? null : Math.round(p95 * 1000 * 10) / 10,
      };
    }
  } else {
    out.metricsError = metrics.probe.error ?? `HTTP ${metrics.probe.status}`;
  }
  return out;
}

/**
 * What to probe for a deployment's gateway. A scale-out one is its load balancer, as recorded. A
 * single instance's is derived from what EC2 says now (its address changes with a stop and start,
 * and `provision --no-wait` records none) plus the recorded scheme and port (else the gateway
 * port from EMBEDCTL_GATEWAY_PORT / embedctl.yaml, default 8000). A stopped instance is not
 * probed: its state already reports it.
 */
function deploymentGateway(ctx: Context, d: DeploymentRecord, inst: InstanceStatus): GatewayTarget[] {
  const source = `deployment ${d.name}`;
  if (d.scale || !d.instance || inst.error) return d.gateway ? [{ url: d.gateway, source }] : [];
  if (inst.state !== 'running') return [];
  const host = inst.publicDns || inst.publicIp;
  const url = liveGatewayUrl(d.gateway, host, defaultGatewayPort(ctx));
  if (!url) return [{ source, deployment: d, instance: inst, unreachable: `${d.instance.id} has no public address` }];
  return [{ url, source, deployment: d, instance: inst }];
}

function defaultGatewayPort(ctx: Context): number {
  const f = FIELDS.gatewayPort;
  try {
    return resolveOption<number>(ctx, { flag: f.flag, flagValue: undefined, env: f.env, file: 'deploy.gatewayPort', default: f.default, parse: (raw) => f.schema.parse(raw) }).value;
  } catch {
    return f.default;
  }
}

async function gatewayStatusOf(g: GatewayTarget, timeoutMs: number): Promise<GatewayStatus> {
  if (!g.url) {
    return {
      url: '(no address)',
      source: g.source,
      health: { ok: false, error: g.unreachable ?? 'no address' },
      hint: `launched in a subnet that assigns no public IPs by hand? (provision --subnet asks for one); from inside the VPC, or over SSM: aws ssm start-session --target ${g.deployment?.instance?.id}`,
    };
  }
  const out = await gatewayStatus(g.url, g.source, timeoutMs);
  if (g.deployment && !out.health.ok) {
    out.hint = `the instance runs but its gateway does not answer: user data may still be working (minutes after launch) or have failed; see /var/log/embedctl-user-data.log on ${g.deployment.instance?.id} (CloudWatch log group /embedctl/user-data)`;
  }
  return out;
}

/**
 * Writes a gateway address that answered back to the state, where rollout and the --deployment
 * evidence commands read it. Best effort: with another command holding the state lock it waits
 * for the next status.
 */
async function recordGateways(ctx: Context, targets: GatewayTarget[], probes: GatewayStatus[], log: Logger): Promise<void> {
  const changed = targets.filter((t, i) => t.deployment && t.url && probes[i]!.health.ok && (t.url !== t.deployment.gateway || addressChanged(t)));
  if (changed.length === 0) return;
  try {
    await StateStore.locked({ cwd: ctx.cwd, env: ctx.env, command: 'status', now: () => ctx.now() }, async (store) => {
      for (const t of changed) {
        const d = store.state.deployments[t.deployment!.name];
        // Torn down or replaced meanwhile: not ours to touch.
        if (!d?.instance || d.instance.id !== t.deployment!.instance?.id) continue;
        const url = t.url!;
        await store.update(d.name, 'gateway', () => {
          d.gateway = url;
          d.instance = { ...d.instance!, publicDns: t.instance?.publicDns, publicIp: t.instance?.publicIp };
        }, { gateway: url, from: t.deployment!.gateway ?? null });
        log.info(`deployment "${d.name}": recorded its gateway ${url}`);
        // --watch keeps the deployments it read: the next frame must not record it again.
        t.deployment!.gateway = url;
        t.deployment!.instance = d.instance;
      }
    });
  } catch (err) {
    log.info(`gateway address not recorded: ${(err as Error).message.split('\n')[0]}`);
  }
}

const addressChanged = (t: GatewayTarget) => t.deployment!.instance?.publicDns !== t.instance?.publicDns || t.deployment!.instance?.publicIp !== t.instance?.publicIp;

async function gatewayStatus(url: string, source: string, timeoutMs: number): Promise<GatewayStatus> {
  const base = url.replace(/\/+$/, '');
  const h = await get(`${base}/health`, timeoutMs);
  const out: GatewayStatus = { url: base, source, health: h.probe };
  try {
    const p = (JSON.parse(h.text ?? '') as { selfHostedPercent?: unknown }).selfHostedPercent;
    if (typeof p === 'number') out.selfHostedPercent = p;
  } catch {
    /* a gateway without the embedctl /health body: no live split */
  }
  return out;
}

interface LocalStack {
  backends: string[];
  gateway?: string;
  nginxConf?: string;
}

/**
 * `.embedctl/local.json` as `up --local` writes it. Read leniently (a list of backends as URLs
 * or {url} objects under one of a few keys) so status keeps working across small format changes.
 */
function readLocal(path: string): LocalStack {
  if (!existsSync(path)) return { backends: [] };
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`${path} is not valid JSON (${(err as Error).message})`, { hint: 'run `embedctl up --local` again, or remove the file' });
  }
  const urlOf = (v: unknown): string | undefined =>
    typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { url?: unknown }).url === 'string' ? (v as { url: string }).url : undefined;
  const list = (doc.backends ?? doc.runtimes ?? doc.selfHosted ?? doc.endpoints) as unknown;
  const backends = Array.isArray(list) ? list.map(urlOf).filter((u): u is string => Boolean(u)) : [];
  const nginx = doc.nginx as Record<string, unknown> | undefined;
  const gateway = urlOf(doc.gateway) ?? urlOf(nginx) ?? (typeof doc.url === 'string' ? doc.url : undefined);
  const conf = (nginx?.confPath ?? doc.nginxConf ?? doc.confPath) as string | undefined;
  return { backends, gateway, nginxConf: typeof conf === 'string' ? conf : undefined };
}

/** The self-hosted share of a rendered nginx.conf's split_clients block, or undefined. */
export function splitFromNginxConf(text: string): number | undefined {
  // A config that reads a split directory: the share it serves until a split is written there.
  if (splitDirOf(text)) return renderedPercentOf(text);
  const block = /split_clients\s+\S+\s+\$embedctl_backend\s*\{([^}]*)\}/.exec(text);
  if (!block) return undefined;
  let percent = 0;
  for (const m of block[1]!.matchAll(/^\s*(\*|[\d.]+%)\s+(\S+?);/gm)) {
    const share = m[1]!;
    const backend = m[2]!;
    if (backend !== 'selfhosted') continue;
    percent += share === '*' ? 100 - percent : Number(share.slice(0, -1));
  }
  return Math.min(100, Math.round(percent * 100) / 100);
}

function readlinkOrUndefined(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The split the rollout state records; a damaged file is reported and the other sources decide. */
async function trafficSplitFromRollout(rolloutPath: string, log: Logger): Promise<SplitStatus | undefined> {
  try {
    const state = await rolloutFile.read(rolloutPath);
    return state && { percent: state.percent, source: rolloutPath };
  } catch (err) {
    log.warn(`traffic split: ${(err as Error).message}`);
    return undefined;
  }
}

function trafficSplitFromConf(cwd: string, nginxConf?: string): SplitStatus | undefined {
  const candidates = [
    ...(nginxConf ? [isAbsolute(nginxConf) ? nginxConf : resolve(cwd, nginxConf)] : []),
    join(cwd, 'deploy', 'nginx', 'nginx.conf'),
    join(cwd, 'deploy', 'nginx.conf'),
  ];
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const text = readFileSync(c, 'utf8');
    // The live split, when rollout wrote one (nginx reads it per request; the config is not re-rendered).
    const dir = splitDirOf(text);
    const live = dir ? percentOfGeneration(readlinkOrUndefined(join(dir, 'current'))) : undefined;
    if (live !== undefined) return { percent: live, source: join(dir!, 'current') };
    const p = splitFromNginxConf(text);
    if (p !== undefined) return { percent: p, source: c };
  }
  return undefined;
}

const probeText = (p: Probe) => (p.ok ? 'ok' : p.status ? String(p.status) : (p.error ?? 'down'));

function renderFrame(
  f: { at: string; nothing: boolean; instances: InstanceStatus[]; backends: BackendStatus[]; gateways: GatewayStatus[]; split?: SplitStatus; breakers?: ReplicaBreaker[]; certificates?: CertificateStatus[] },
  statePath: string,
): string {
  if (f.nothing) {
    return `Nothing provisioned: no deployments in ${statePath} and no local stack.\nStart with \`embedctl provision --allow-cidr <your-ip>/32\` or \`embedctl up --local\`.\n`;
  }
  const out: string[] = [`embedctl status at ${f.at}`, ''];
  for (const i of f.instances) {
    const where = i.publicDns || i.publicIp ? `, ${i.publicDns || i.publicIp}` : '';
    const what = i.instanceId ? `${i.instanceId} (${i.instanceType}, ${i.market}) ${i.state ?? 'unknown'}${where}` : 'no instance';
    out.push(`deployment "${i.name}" in ${i.region}: ${i.scale ? 'scale-out' : what}${i.error ? `  [${i.error}]` : ''}`);
    if (i.scale) out.push(...renderScaleOut(i.scale));
  }
  for (const g of f.gateways) {
    const share = g.selfHostedPercent !== undefined ? `, serving ${g.selfHostedPercent}% self-hosted` : '';
    out.push(`gateway ${g.url} (${g.source}): ${probeText(g.health)}${g.health.ms !== undefined ? ` in ${g.health.ms} ms` : ''}${share}`);
    if (g.hint && !g.health.ok) out.push(`  hint: ${g.hint}`);
  }
  out.push(...certificateLines(f.certificates ?? []));
  if (f.instances.length || f.gateways.length) out.push('');
  if (f.backends.length) {
    const rows = f.backends.map((b) => [
      b.url,
      probeText(b.health),
      probeText(b.ready),
      b.metrics ? b.metrics.requests : '-',
      b.metrics ? b.metrics.errors : '-',
      b.metrics?.errorRate != null ? `${(b.metrics.errorRate * 100).toFixed(2)}%` : '-',
      b.metrics?.p95Ms != null ? b.metrics.p95Ms : '-',
      b.metrics ? (b.metrics.window === 'interval' ? 'last interval' : 'since start') : (b.metricsError ?? '-'),
    ]);
    out.push(table(['backend', 'health', 'ready', 'requests', 'errors', 'error %', 'p95 ms', 'window'], rows, ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'left']));
  } else {
    out.push(f.gateways.length ? 'runtimes: behind the gateway (not reachable from here)' : 'no backends recorded (run `embedctl up`)', '');
  }
  out.push(...breakerLines(f.breakers));
  out.push(
    f.split
      ? `traffic split: ${f.split.percent}% self-hosted, ${Math.round((100 - f.split.percent) * 100) / 100}% hosted (from ${f.split.source})`
      : 'traffic split: unknown (no .embedctl/rollout.json and no rendered nginx.conf)',
  );
  return out.join('\n') + '\n';
}
