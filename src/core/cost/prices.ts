/**
 * The built-in price table. Every number carries its date and where it came from, because a cost
 * report is only as honest as its inputs; `--live-pricing` replaces the EC2 rows with the Pricing
 * API and spot history, and every hosted price is overridable with --price-per-million.
 */

export const PRICE_TABLE_DATE = '2026-11';
export const PRICE_TABLE_REGION = 'us-east-1';

export interface InstancePrice {
  instanceType: string;
  vcpu: number;
  gpu: string;
  gpus: number;
  memoryGiB: number;
  /** USD per hour, Linux, shared tenancy. */
  onDemand: number;
  /** Effective USD per hour of a 1-year standard reserved instance, no upfront. */
  reserved: number;
  /** A typical recent spot price (USD per hour); spot moves, so this is the weakest number here. */
  spot: number;
  /**
   * Embeddings per minute one instance sustains for a MiniLM / bge-small class model (384 dims,
   * ~256-token texts, batched, fp16 on GPU): an ASSUMPTION to replace with --capacity-from a load test.
   */
  ratedEmbeddingsPerMinute: number;
  source: string;
}

const EC2_SRC = `AWS EC2 on-demand and reserved-instance pricing pages, us-east-1, Linux, shared tenancy (list prices, as of ${PRICE_TABLE_DATE}); spot is a typical recent price from the EC2 spot price history`;

export const INSTANCES: Record<string, InstancePrice> = {
  'g4dn.xlarge': { instanceType: 'g4dn.xlarge', vcpu: 4, gpu: 'NVIDIA T4', gpus: 1, memoryGiB: 16, onDemand: 0.526, reserved: 0.331, spot: 0.21, ratedEmbeddingsPerMinute: 60_000, source: EC2_SRC },
  'g4dn.2xlarge': { instanceType: 'g4dn.2xlarge', vcpu: 8, gpu: 'NVIDIA T4', gpus: 1, memoryGiB: 32, onDemand: 0.752, reserved: 0.474, spot: 0.29, ratedEmbeddingsPerMinute: 72_000, source: EC2_SRC },
  'g5.xlarge': { instanceType: 'g5.xlarge', vcpu: 4, gpu: 'NVIDIA A10G', gpus: 1, memoryGiB: 16, onDemand: 1.006, reserved: 0.634, spot: 0.42, ratedEmbeddingsPerMinute: 150_000, source: EC2_SRC },
  'g6.xlarge': { instanceType: 'g6.xlarge', vcpu: 4, gpu: 'NVIDIA L4', gpus: 1, memoryGiB: 16, onDemand: 0.8048, reserved: 0.507, spot: 0.36, ratedEmbeddingsPerMinute: 120_000, source: EC2_SRC },
  'inf2.xlarge': { instanceType: 'inf2.xlarge', vcpu: 4, gpu: 'AWS Inferentia2', gpus: 1, memoryGiB: 16, onDemand: 0.7582, reserved: 0.4549, spot: 0.3, ratedEmbeddingsPerMinute: 100_000, source: EC2_SRC },
  'c6i.2xlarge': { instanceType: 'c6i.2xlarge', vcpu: 8, gpu: 'none (CPU)', gpus: 0, memoryGiB: 16, onDemand: 0.34, reserved: 0.214, spot: 0.13, ratedEmbeddingsPerMinute: 12_000, source: EC2_SRC },
};

export interface HostedModelPrice {
  provider: 'jina' | 'openai';
  model: string;
  /** USD per 1M input tokens. */
  pricePerMillion: number;
  dimensions: number;
  source: string;
}

const JINA_SRC = `jina.ai/embeddings pricing (token packs, ~$0.02 per 1M tokens at list price; as of ${PRICE_TABLE_DATE}; check your plan)`;
const OPENAI_SRC = `openai.com/api/pricing, standard (non-batch) tier (as of ${PRICE_TABLE_DATE})`;

export const HOSTED_MODELS: HostedModelPrice[] = [
  { provider: 'jina', model: 'jina-embeddings-v3', pricePerMillion: 0.02, dimensions: 1024, source: JINA_SRC },
  { provider: 'jina', model: 'jina-embeddings-v4', pricePerMillion: 0.02, dimensions: 2048, source: JINA_SRC },
  { provider: 'jina', model: 'jina-embeddings-v2-base-en', pricePerMillion: 0.02, dimensions: 768, source: JINA_SRC },
  { provider: 'openai', model: 'text-embedding-3-small', pricePerMillion: 0.02, dimensions: 1536, source: OPENAI_SRC },
  { provider: 'openai', model: 'text-embedding-3-large', pricePerMillion: 0.13, dimensions: 3072, source: OPENAI_SRC },
  { provider: 'openai', model: 'text-embedding-ada-002', pricePerMillion: 0.1, dimensions: 1536, source: OPENAI_SRC },
];

export const DEFAULT_HOSTED_MODEL: Record<'jina' | 'openai', string> = {
  jina: 'jina-embeddings-v3',
  openai: 'text-embedding-3-small',
};

/**
 * The one list price per model (cost-report's hosted side and the paid-call guard of
 * verify-consistency / rag-overlap both read it); undefined for a model not in the table.
 */
export function listPricePerMillion(model: string | undefined): number | undefined {
  return HOSTED_MODELS.find((m) => m.model === model)?.pricePerMillion;
}

export function hostedModel(provider: string, model: string): HostedModelPrice | undefined {
  // "jina-embeddings-v2" is how people say it; the API name carries a language suffix.
  return HOSTED_MODELS.find((m) => m.provider === provider && (m.model === model || m.model.startsWith(`${model}-`)));
}

const AWS_SRC = (page: string) => `aws.amazon.com/${page} pricing, us-east-1 (as of ${PRICE_TABLE_DATE})`;

/** AWS unit prices beyond the instance itself, each with the pricing page it comes from. */
const aws = (page: string, value: number, unit: string) => ({ value, unit, source: AWS_SRC(page) });
export const AWS_UNIT_PRICES = {
  ebsGp3PerGbMonth: aws('ebs', 0.08, 'USD/GB-month'),
  ebsGp3IopsPerMonth: aws('ebs', 0.005, 'USD per provisioned IOPS-month above 3,000'),
  ebsGp3ThroughputPerMbpsMonth: aws('ebs', 0.04, 'USD per MB/s-month above 125 MB/s'),
  ebsGp3BaselineIops: aws('ebs', 3000, 'IOPS'),
  ebsGp3BaselineThroughput: aws('ebs', 125, 'MB/s'),
  snapshotPerGbMonth: aws('ebs', 0.05, 'USD/GB-month'),
  egressPerGb: aws('ec2/pricing/on-demand data transfer', 0.09, 'USD/GB (internet egress, first 10 TB tier)'),
  egressFreeGb: aws('ec2/pricing/on-demand data transfer', 100, 'GB/month free across the account'),
  albPerHour: aws('elasticloadbalancing', 0.0225, 'USD/hour'),
  albPerLcuHour: aws('elasticloadbalancing', 0.008, 'USD/LCU-hour'),
  cloudwatchAlarmPerMonth: aws('cloudwatch', 0.1, 'USD per standard alarm-month'),
  cloudwatchMetricPerMonth: aws('cloudwatch', 0.3, 'USD per custom metric-month'),
} as const;

/** Hours in the month AWS bills by (8,760 / 12). */
export const HOURS_PER_MONTH = 730;
