/**
 * Wraps any {@link Verifier} (local store, later RADIUS) with the per-source
 * failure policy:
 *   - a source the {@link FailureLimiter} has cut off is refused
 *     ('rate-limited') without its credentials being looked at;
 *   - every refusal is answered only after `failureDelayMs` (on the injected
 *     clock), so guessing costs wall time and refusals of all kinds take the
 *     same time;
 *   - refusals other than backend trouble count against the source.
 * Logs carry the source, the user name, the outcome, the tunnel, the peer
 * and the session (when the context names one), never credentials.
 */
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { AuthFailureReason, Verifier, VerifyContext, VerifyOutcome } from '../ppp/auth/types.js';
import type { FailureLimiter } from './rate-limit.js';

export interface ThrottleOptions {
  limiter: FailureLimiter;
  clock: Clock;
  /** Our choice: 1 s, enough to make online guessing slow, short enough for a mistyped password. */
  failureDelayMs?: number;
  log?: Logger;
}

export const DEFAULT_FAILURE_DELAY_MS = 1_000;

/** Reasons that say nothing about the peer's behaviour are not held against it. */
function counts(reason: AuthFailureReason): boolean {
  return reason !== 'backend-error' && reason !== 'rate-limited' && reason !== 'timeout';
}

/** The source of a context: the outer address, without a port if one was appended. */
export function sourceOf(ctx: VerifyContext): string {
  const p = ctx.peer;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(p);
  if (v4) return v4[1]!;
  const v6 = /^\[([^\]]+)\]:\d+$/.exec(p);
  return v6 ? v6[1]! : p;
}

/** The session (when the context names one), the tunnel and the peer, under the field names of the session's own lines. */
function sessionOf(ctx: VerifyContext): { session?: string; protocol: string; peer: string } {
  return { ...(ctx.sessionId !== undefined ? { session: ctx.sessionId } : {}), protocol: ctx.tunnel, peer: ctx.peer };
}

export function throttleVerifier(inner: Verifier, opts: ThrottleOptions): Verifier {
  const delayMs = opts.failureDelayMs ?? DEFAULT_FAILURE_DELAY_MS;

  const delayed = <T>(value: T): Promise<T> =>
    new Promise((resolve) => {
      opts.clock.setTimer(delayMs, () => resolve(value));
    });

  async function run<T>(method: string, ctx: VerifyContext, username: string, call: () => Promise<VerifyOutcome<T>>): Promise<VerifyOutcome<T>> {
    const source = sourceOf(ctx);
    const verdict = opts.limiter.check(source);
    if (!verdict.allowed) {
      opts.log?.warn({ ...sessionOf(ctx), source, user: username, method, retryAfterMs: verdict.retryAfterMs }, 'authentication refused: too many failures from this source');
      return delayed({ ok: false, reason: 'rate-limited', message: `too many failed attempts from ${source}; retry in ${Math.ceil(verdict.retryAfterMs / 1000)} s` });
    }
    const outcome = await call();
    if (outcome.ok) return outcome;
    if (counts(outcome.reason)) opts.limiter.recordFailure(source);
    opts.log?.info({ ...sessionOf(ctx), source, user: username, method, reason: outcome.reason }, 'authentication refused');
    return delayed(outcome);
  }

  return {
    pap: (ctx, username, password) => run('pap', ctx, username, () => inner.pap(ctx, username, password)),
    chapMd5: (ctx, username, identifier, challenge, response) =>
      run('chap-md5', ctx, username, () => inner.chapMd5(ctx, username, identifier, challenge, response)),
    msChapV2: (ctx, username, authenticatorChallenge, peerChallenge, ntResponse) =>
      run('mschapv2', ctx, username, () => inner.msChapV2(ctx, username, authenticatorChallenge, peerChallenge, ntResponse)),
  };
}
