/**
 * The verifier a running gateway shares between its protocol servers: the
 * local user store (following reloads, and the file appearing after start),
 * throttled per source; plus the per-session policy layer every tunnel puts
 * around it (sessions per user, auth metrics, tunnel-specific attributes).
 */
import { existsSync } from 'node:fs';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { AuthMethod, UserAttributes, Verifier, VerifyOutcome } from '../ppp/auth/types.js';
import { LocalVerifier } from './local-verifier.js';
import { UserStore } from './user-store.js';
import { FailureLimiter } from './rate-limit.js';
import { throttleVerifier } from './throttle.js';

/**
 * The local user store as a Verifier that follows reloads (the store file
 * may appear after start: `vpngw users add` then SIGHUP).
 */
export class ReloadableLocalVerifier implements Verifier {
  private verifier: LocalVerifier;
  private constructor(
    private readonly file: string,
    private store: UserStore | undefined,
    private readonly log: Logger,
  ) {
    this.verifier = new LocalVerifier(store ?? UserStore.fromObject({ users: {} }));
  }

  static async open(file: string, log: Logger): Promise<ReloadableLocalVerifier> {
    if (!existsSync(file)) {
      log.warn({ file }, 'users: no user store file: every login is refused until one exists (vpngw users add, then SIGHUP)');
      return new ReloadableLocalVerifier(file, undefined, log);
    }
    return new ReloadableLocalVerifier(file, await UserStore.load(file), log);
  }

  /** Re-read the users file; a bad file keeps the previous users (logged with every issue). */
  async reload(): Promise<void> {
    if (!existsSync(this.file)) return;
    if (!this.store) {
      this.store = await UserStore.load(this.file);
      this.verifier = new LocalVerifier(this.store);
      this.log.info({ file: this.file, users: this.store.size }, 'users: user store loaded');
      return;
    }
    const r = await this.store.reload();
    if (!r.ok) this.log.error({ file: this.file, issues: r.issues }, 'users: user store reload refused; keeping the previous users');
    else this.log.info({ file: this.file, users: r.users }, 'users: user store reloaded');
  }

  pap: Verifier['pap'] = (...a) => this.verifier.pap(...a);
  chapMd5: Verifier['chapMd5'] = (...a) => this.verifier.chapMd5(...a);
  msChapV2: Verifier['msChapV2'] = (...a) => this.verifier.msChapV2(...a);
}

export interface GatewayVerifier {
  /** Local store, throttled per source (failures delayed and rate-limited). */
  verifier: Verifier;
  reload(): Promise<void>;
}

export async function openGatewayVerifier(opts: {
  usersFile: string;
  clock: Clock;
  log: Logger;
  failuresPerMinute: number;
}): Promise<GatewayVerifier> {
  const local = await ReloadableLocalVerifier.open(opts.usersFile, opts.log);
  const limiter = new FailureLimiter({ clock: opts.clock, failuresPerMinute: opts.failuresPerMinute });
  return {
    verifier: throttleVerifier(local, { limiter, clock: opts.clock, log: opts.log }),
    reload: () => local.reload(),
  };
}

export type AuthOutcomeLabel = 'success' | string;

export interface SessionPolicy {
  /** Live sessions of a user (all protocols). */
  sessionsOf(user: string): number;
  /** Default per-user limit (limits.maxSessionsPerUser); a user's own maxSessions overrides it. */
  maxPerUser(): number;
  /** Record every verdict (auth metrics), including refusals a client never retries after. */
  outcome?(method: AuthMethod, outcome: AuthOutcomeLabel): void;
  /** Remove the per-user MPPE policy (tunnels whose transport encrypts, like SSTP). */
  stripMppe?: boolean;
}

/**
 * A tunnel's policy around any verifier: sessions per user (refused as
 * 'rate-limited' when the user is at the limit) and the verdict counted.
 */
export function sessionPolicyVerifier(inner: Verifier, policy: SessionPolicy): Verifier {
  async function check<T extends { attributes: UserAttributes; username: string }>(method: AuthMethod, p: Promise<VerifyOutcome<T>>): Promise<VerifyOutcome<T>> {
    const o = await limited(p);
    policy.outcome?.(method, o.ok ? 'success' : o.reason);
    return o;
  }
  async function limited<T extends { attributes: UserAttributes; username: string }>(p: Promise<VerifyOutcome<T>>): Promise<VerifyOutcome<T>> {
    const o = await p;
    if (!o.ok) return o;
    const limit = o.attributes.maxSessions ?? policy.maxPerUser();
    const n = policy.sessionsOf(o.username);
    if (n >= limit) return { ok: false, reason: 'rate-limited', message: `${o.username} already has ${n} session${n === 1 ? '' : 's'} (limit ${limit})` };
    if (!policy.stripMppe) return o;
    const { mppe: _mppe, ...attributes } = o.attributes;
    return { ...o, attributes };
  }
  return {
    pap: (ctx, u, pw) => check(ctx.method ?? 'pap', inner.pap(ctx, u, pw)),
    chapMd5: (ctx, u, id, ch, r) => check(ctx.method ?? 'chap-md5', inner.chapMd5(ctx, u, id, ch, r)),
    msChapV2: (ctx, u, ac, pc, nt) => check(ctx.method ?? 'mschapv2', inner.msChapV2(ctx, u, ac, pc, nt)),
  };
}
