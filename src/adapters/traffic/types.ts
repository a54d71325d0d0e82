import type { DriverName } from '../../core/rollout/types.js';

/** What a driver reports after moving traffic. */
export interface ApplyResult {
  /** true: the new share was observed; false: observed but outside tolerance; null: cannot tell. */
  confirmed: boolean | null;
  observedPercent: number | null;
  /** What was changed and how it was checked, one line. */
  detail: string;
  samples?: number;
}

/** Something that moves the self-hosted share: an nginx split (local or over SSM), an env file, a k8s weight. */
export interface TrafficDriver {
  readonly name: DriverName;
  /** Where it acts, one line ("nginx /srv/gw/nginx.conf", "ssm i-0abc in eu-west-1"), said before it acts. */
  readonly target: string;
  /** What it will touch, for --dry-run and messages. */
  describe(percent: number): string;
  apply(percent: number, signal?: AbortSignal): Promise<ApplyResult>;
}

export const PERCENT_KEY = 'SELF_HOSTED_TRAFFIC_PERCENT';
