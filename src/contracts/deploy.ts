import { z } from 'zod';
import { defineStateFile } from './contract.js';

/**
 * `.embedctl/deploy.json`: the running gateway's parameters, written by `up --local` (and
 * rehearse), read by `rollout --driver nginx` to re-render the split. v1.
 */
export const nginxRenderOptions = z
  .object({
    listen: z.object({ host: z.string().optional(), port: z.number().int().min(1).max(65535) }),
    selfHosted: z.array(z.string()).min(1, 'needs at least one self-hosted host:port'),
    hostedUrl: z.string().min(1),
    // The share is rollout's to set; the file keeps everything else.
    selfHostedPercent: z.number().min(0).max(100).optional(),
  })
  // The rest of the render options (timeouts, logs, auth include) pass through to the renderer.
  .catchall(z.unknown());

export const deployFileSchema = z.object({
  version: z.literal(1),
  /** Which command wrote it, e.g. "embedctl up --local". */
  source: z.string(),
  nginx: z
    .object({
      confPath: z.string().min(1),
      prefix: z.string().min(1),
      url: z.string().optional(),
      model: z.string().optional(),
      options: nginxRenderOptions,
    })
    .optional(),
});

export type DeployFileDoc = z.infer<typeof deployFileSchema>;

export const deployFile = defineStateFile<DeployFileDoc>('gateway deploy file', deployFileSchema, 'run `embedctl up --local` again to rewrite .embedctl/deploy.json, or pass --nginx-conf, --nginx-prefix, --self-hosted and --hosted-url');
