/**
 * A circuit breaker per self-hosted replica, the hybrid client's twin of nginx's passive health
 * (max_fails / fail_timeout): `failureThreshold` consecutive server-side failures open it; while
 * open the replica gets no traffic; after `openMs` one request probes it (half-open) and its
 * outcome closes or re-opens the breaker. Node built-ins only: user applications import this.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive server-side failures (5xx, 429, timeouts, network errors) that open it (default 3). */
  failureThreshold?: number;
  /** How long it stays open before one probe request (default 5 s). */
  openMs?: number;
}

export interface BreakerSnapshot {
  state: BreakerState;
  consecutiveFailures: number;
  /** Times it opened since the client was created. */
  opened: number;
  /** When it will let a probe through (epoch ms), while open. */
  probeAt?: number;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | undefined;
  private probing = false;
  private openCount = 0;
  private readonly threshold: number;
  private readonly openMs: number;

  constructor(
    o: BreakerOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.threshold = Math.max(1, o.failureThreshold ?? 3);
    this.openMs = Math.max(0, o.openMs ?? 5000);
  }

  state(): BreakerState {
    if (this.openedAt === undefined) return 'closed';
    return this.now() >= this.openedAt + this.openMs ? 'half-open' : 'open';
  }

  /** Whether a request may go to this replica now; in half-open only one probe at a time. */
  tryAcquire(): boolean {
    const s = this.state();
    if (s === 'closed') return true;
    if (s === 'open' || this.probing) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.probing = false;
  }

  failure(): void {
    this.failures++;
    const wasProbe = this.probing;
    this.probing = false;
    if (wasProbe || this.failures >= this.threshold) {
      if (this.openedAt === undefined) this.openCount++;
      this.openedAt = this.now();
    }
  }

  /** The request ended without a verdict (the caller aborted): let another probe through. */
  release(): void {
    this.probing = false;
  }

  snapshot(): BreakerSnapshot {
    const state = this.state();
    return {
      state,
      consecutiveFailures: this.failures,
      opened: this.openCount,
      ...(this.openedAt !== undefined ? { probeAt: this.openedAt + this.openMs } : {}),
    };
  }
}
