import { join } from 'node:path';
import { appendJsonl, currentUser, readVersionedJson, withLock, writeJsonAtomic } from '../util/fs.js';

/**
 * `.embedctl/state.json`: every cloud resource embedctl created, so `status` can find it and
 * `teardown` can remove it (and nothing else). Each step of `provision` writes the state before
 * and after it acts, so an interrupted run never loses track of what exists.
 */
export const STATE_VERSION = 1;

export interface InstanceRecord {
  id: string;
  instanceType: string;
  market: 'on-demand' | 'spot';
  state?: string;
  publicDns?: string;
  publicIp?: string;
  availabilityZone?: string;
  launchedAt?: string;
}

export interface SecurityGroupRecord {
  id: string;
  vpcId: string;
  name: string;
  /** False when an existing embedctl-tagged group was reused (e.g. after a lost state file). */
  createdByUs: boolean;
}

export interface ScaleRecord {
  min: number;
  max: number;
  launchTemplateId?: string;
  targetGroupArn?: string;
  loadBalancerArn?: string;
  loadBalancerDns?: string;
  listenerArn?: string;
  autoScalingGroup?: string;
  scalingPolicy?: string;
}

export interface DeploymentRecord {
  name: string;
  region: string;
  createdAt: string;
  updatedAt: string;
  amiId?: string;
  /**
   * RunInstances ClientToken. Written before the call, so a retry after a timeout or crash sends
   * the same token and EC2 returns the instance it already started instead of a second one.
   */
  clientToken?: string;
  attempt: number;
  instance?: InstanceRecord;
  securityGroup?: SecurityGroupRecord;
  alarms: string[];
  /** Scale-out (provision --min/--max): the launch template, load balancer and Auto Scaling group. */
  scale?: ScaleRecord;
  /** AWS Budgets monthly budget and CloudWatch dashboard provision created (teardown removes them). */
  budget?: { name: string; accountId: string };
  dashboard?: string;
  /** The SSM SecureString the instance reads its gateway keys from; teardown deletes it only if provision created it. */
  gatewayKeys?: { parameter: string; createdByUs: boolean };
  /** The instance's nginx gateway (`status` reads its /health and live split). */
  gateway?: string;
  /** Runtime endpoints reachable from here (`status` probes /health, /ready, /metrics). */
  endpoints: string[];
}

export interface StateFile {
  version: number;
  updatedAt?: string;
  updatedBy?: string;
  deployments: Record<string, DeploymentRecord>;
  /**
   * Next ClientToken attempt per deployment name; survives teardown so re-provisioning a name
   * never reuses a token that already produced a (now terminated) instance.
   */
  attempts: Record<string, number>;
}

export interface HistoryEntry {
  at: string;
  by: string;
  command: string;
  deployment: string;
  action: string;
  detail?: Record<string, unknown>;
}

export function statePaths(cwd: string, env: Record<string, string | undefined> = {}) {
  const dir = env.EMBEDCTL_STATE_DIR ?? join(cwd, '.embedctl');
  return {
    dir,
    state: join(dir, 'state.json'),
    history: join(dir, 'state.history.jsonl'),
    local: join(dir, 'local.json'),
    rollout: join(dir, 'rollout.json'),
  };
}

export function emptyState(): StateFile {
  return { version: STATE_VERSION, deployments: {}, attempts: {} };
}

export async function readState(path: string): Promise<StateFile> {
  const s = await readVersionedJson<StateFile>(path, STATE_VERSION, 'state');
  if (!s) return emptyState();
  return { ...s, deployments: s.deployments ?? {}, attempts: s.attempts ?? {} };
}

export function newDeployment(name: string, region: string, at: Date, attempt: number): DeploymentRecord {
  const iso = at.toISOString();
  return { name, region, createdAt: iso, updatedAt: iso, attempt, alarms: [], endpoints: [] };
}

/**
 * A state session held under the lock for the whole command: a second provision or teardown
 * fails at once with the holder's name instead of racing on the same resources.
 */
export class StateStore {
  private constructor(
    readonly paths: ReturnType<typeof statePaths>,
    public state: StateFile,
    private readonly command: string,
    private readonly user: string,
    private readonly now: () => Date,
  ) {}

  static async locked<T>(
    opts: { cwd: string; env: Record<string, string | undefined>; command: string; now: () => Date },
    fn: (store: StateStore) => Promise<T>,
  ): Promise<T> {
    const paths = statePaths(opts.cwd, opts.env);
    return withLock(
      paths.state,
      async () => {
        const store = new StateStore(paths, await readState(paths.state), opts.command, currentUser(opts.env), opts.now);
        return fn(store);
      },
      'state',
      opts.command,
    );
  }

  /** Applies a change, writes the file atomically and appends one history line. */
  async update(deployment: string, action: string, change: (s: StateFile) => void, detail?: Record<string, unknown>) {
    change(this.state);
    const at = this.now().toISOString();
    const d = this.state.deployments[deployment];
    if (d) d.updatedAt = at;
    this.state.updatedAt = at;
    this.state.updatedBy = this.user;
    await writeJsonAtomic(this.paths.state, this.state);
    const entry: HistoryEntry = { at, by: this.user, command: this.command, deployment, action, ...(detail ? { detail } : {}) };
    await appendJsonl(this.paths.history, entry);
  }
}
