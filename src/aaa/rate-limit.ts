/**
 * Per-source limit on failed authentications: a token bucket per source
 * address. Every failure takes a token; a source with no token left is
 * refused without its credentials being checked until a token has grown back.
 *
 *   tokens(t) = min(burst, tokens(t0) + (t - t0) * perMinute / 60 s)
 *
 * Memory is bounded: at most `maxSources` buckets are kept; a bucket that has
 * refilled carries no information and is dropped, and when the table is full
 * the least recently failed source is forgotten first.
 */
import type { Clock } from '../util/clock.js';

export interface FailureLimiterOptions {
  clock: Clock;
  /** Failures forgiven per minute (the refill rate); the config's limits.authFailuresPerSourcePerMinute. */
  failuresPerMinute: number;
  /** Failures a source may make back to back; defaults to failuresPerMinute. */
  burst?: number;
  /** Sources tracked at most (our choice: 65536). */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export type LimitVerdict = { allowed: true } | { allowed: false; retryAfterMs: number };

export class FailureLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly clock: Clock;
  private readonly burst: number;
  private readonly msPerToken: number;
  private readonly maxSources: number;

  constructor(opts: FailureLimiterOptions) {
    if (!(opts.failuresPerMinute > 0)) throw new RangeError('failuresPerMinute must be positive');
    this.clock = opts.clock;
    this.burst = Math.max(1, opts.burst ?? opts.failuresPerMinute);
    this.msPerToken = 60_000 / opts.failuresPerMinute;
    this.maxSources = opts.maxSources ?? 65_536;
  }

  private level(b: Bucket, now: number): number {
    return Math.min(this.burst, b.tokens + (now - b.at) / this.msPerToken);
  }

  /** May this source try now? */
  check(source: string): LimitVerdict {
    const b = this.buckets.get(source);
    if (!b) return { allowed: true };
    const now = this.clock.now();
    const tokens = this.level(b, now);
    if (tokens >= this.burst) {
      this.buckets.delete(source);
      return { allowed: true };
    }
    if (tokens >= 1) return { allowed: true };
    return { allowed: false, retryAfterMs: Math.ceil((1 - tokens) * this.msPerToken) };
  }

  /** Count one failed attempt from this source. */
  recordFailure(source: string): void {
    const now = this.clock.now();
    const b = this.buckets.get(source);
    const tokens = b ? this.level(b, now) : this.burst;
    this.buckets.delete(source); // re-insert: Map order is our recency order
    this.buckets.set(source, { tokens: Math.max(0, tokens - 1), at: now });
    while (this.buckets.size > this.maxSources) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }

  /** Sources currently tracked (for metrics). */
  get tracked(): number {
    return this.buckets.size;
  }
}
