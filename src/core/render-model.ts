import { z } from 'zod';

/**
 * How the instance prepares a hub model at first boot (issue 20): `models fetch --optimize`,
 * owned with templates/user-data.sh. auto = the hardware's recipe: fp16 with pooling in the graph
 * when the runtimes get GPUs (T4 tensor cores; only pooled vectors leave the card), int8 on CPU.
 * Built-in models ship in the image and are served as they are.
 */

export const OPTIMIZE_CHOICES = ['auto', 'none', 'int8', 'fp16'] as const;
export type OptimizeChoice = (typeof OPTIMIZE_CHOICES)[number];

export const MODEL_FIELDS = {
  optimize: {
    flag: '--optimize',
    env: 'EMBEDCTL_OPTIMIZE',
    default: 'auto' as OptimizeChoice,
    schema: z.enum(OPTIMIZE_CHOICES),
    help: 'how the instance optimises a fetched hub model: auto (fp16 + pooling in the graph with GPUs, int8 without), none, int8, fp16',
  },
} as const;

export const MODEL_FLAGS = ['optimize'] as const;

/** What `models fetch --optimize` gets on the instance. */
export function fetchOptimizeFor(c: { optimize?: OptimizeChoice; gpusPerReplica: number }): 'none' | 'int8' | 'fp16' {
  const o = c.optimize ?? 'auto';
  if (o !== 'auto') return o;
  return c.gpusPerReplica > 0 ? 'fp16' : 'int8';
}
