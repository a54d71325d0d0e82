import { z } from 'zod';
import { defineLines, defineStateFile } from './contract.js';

/**
 * `.embedctl/state.json` (provision writes, status and teardown read) and its history,
 * `.embedctl/state.history.jsonl`. Shapes as src/core/state.ts has them (version 1).
 */
const iso = z.string().min(1, 'expected an ISO date-time');

export const instanceRecord = z.object({
  id: z.string().min(1),
  instanceType: z.string(),
  market: z.enum(['on-demand', 'spot']),
  state: z.string().optional(),
  publicDns: z.string().optional(),
  publicIp: z.string().optional(),
  availabilityZone: z.string().optional(),
  launchedAt: iso.optional(),
});

export const securityGroupRecord = z.object({
  id: z.string().min(1),
  vpcId: z.string(),
  name: z.string(),
  createdByUs: z.boolean(),
});

export const deploymentRecord = z.object({
  name: z.string().min(1),
  region: z.string().min(1),
  createdAt: iso,
  updatedAt: iso,
  amiId: z.string().optional(),
  clientToken: z.string().optional(),
  attempt: z.number().int().min(0),
  instance: instanceRecord.optional(),
  securityGroup: securityGroupRecord.optional(),
  alarms: z.array(z.string()),
  gateway: z.string().optional(),
  endpoints: z.array(z.string()),
});

export const stateFileSchema = z.object({
  version: z.literal(1),
  updatedAt: iso.optional(),
  updatedBy: z.string().optional(),
  deployments: z.record(z.string(), deploymentRecord).default({}),
  attempts: z.record(z.string(), z.number().int().min(0)).default({}),
});

export type StateFileDoc = z.infer<typeof stateFileSchema>;
export type DeploymentRecordDoc = z.infer<typeof deploymentRecord>;

export const stateFile = defineStateFile<StateFileDoc>('provisioning state', stateFileSchema, 'restore .embedctl/state.json from version control (each change is in .embedctl/state.history.jsonl), or move it aside if nothing is provisioned');

export const stateHistoryLine = z.object({
  at: iso,
  by: z.string(),
  command: z.string(),
  deployment: z.string(),
  action: z.string(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type StateHistoryLine = z.infer<typeof stateHistoryLine>;

export const stateHistory = defineLines<StateHistoryLine>({
  name: 'provisioning history',
  schema: stateHistoryLine,
  fix: 'the history is append-only: move the bad line aside, the rest stays valid',
});
