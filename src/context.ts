import type { Readable, Writable } from 'node:stream';
import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { CostExplorerClient } from '@aws-sdk/client-cost-explorer';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { PricingClient } from '@aws-sdk/client-pricing';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type autocannon from 'autocannon';

/**
 * Outside-world clients a test injects in place of the real ones; a missing key means "build the
 * real client". Type-only imports: nothing here loads an SDK at start-up.
 */
export interface Adapters {
  /** The yes/no prompt of src/ui/prompts.ts. */
  confirm?: (q: { message: string }) => Promise<boolean>;
  /** HTTP for the embeddings clients (tests redirect the hosted APIs to a local stand-in). */
  fetch?: typeof fetch;
  autocannon?: typeof autocannon;
  cloudwatchClient?: CloudWatchClient;
  costExplorerClient?: CostExplorerClient;
  pricingClient?: PricingClient;
  ec2Client?: EC2Client;
  /** The rollout ssm traffic driver's client. */
  ssmClient?: SSMClient;
}

/**
 * Everything a command may touch of the outside world. Commands never read `process` directly,
 * so tests run `main(argv, ctx)` in-process with PassThrough streams, a fake env and a fake clock.
 */
export interface Context {
  stdout: Writable;
  stderr: Writable;
  stdin?: Readable;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Wall clock; rollout dwell and report ages read this, so tests and `rehearse` can inject one. */
  now(): Date;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Whether stdin and stderr are an interactive terminal (prompts and spinners only then). */
  isTTY: boolean;
  /** Aborted on SIGINT/SIGTERM by the bin shim; long commands stop and print partial results. */
  signal?: AbortSignal;
  /** Injected outside-world clients for tests (see Adapters); empty in a real run. */
  adapters: Adapters;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function processContext(signal?: AbortSignal): Context {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    now: () => new Date(),
    sleep,
    isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    signal,
    adapters: {},
  };
}
