import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Hooks } from '../hooks/index.js';
import type { RuntimeMetrics } from '../hooks/metrics.js';
import type { ModelSet } from '../inference/models.js';
import type { ApiError } from './errors.js';

export type ServerState = 'loading' | 'ready' | 'draining' | 'failed' | 'closed';

/** What a request tells the access log and metrics once answered. */
export interface RequestNote {
  inputs?: number;
  tokens?: number;
  model?: string;
  /** Who asked (the principal's id: a key's name, never the key). */
  caller?: string;
  /** When its headers were read (performance.now()): the queue timeout counts from here. */
  receivedAt?: number;
}

/** What every route may use: the models, the hooks, the server's state and limits. */
export interface RouteContext {
  models: ModelSet;
  hooks: Hooks;
  metrics: RuntimeMetrics;
  state(): ServerState;
  started: number;
  maxBodyBytes: number;
  log(event: Record<string, unknown>): void;
  /** Injected failures (POST /admin/fault, --fault-injection on): that share of embedding calls fails. */
  fault: { status: number; rate: number };
}

export interface Route {
  /** Exact paths (trailing slashes are stripped before matching). */
  paths: string[];
  methods: string[];
  /** Counted as traffic: in-flight, drained before shutdown, `route` metric label kept. */
  traffic?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext, note: RequestNote): Promise<void>;
  /** The API shape's error status and body (default: OpenAI's {error:{message,type,param,code}}). */
  errorBody?(err: ApiError): { status: number; body: unknown };
}
