/**
 * {@link Verifier} over the local {@link UserStore}.
 *
 * Order of checks, chosen so that only a peer that knows the password learns
 * anything about the account:
 *   1. user lookup (exact name; for a "DOMAIN\user" name also "user") -> 'unknown-user'
 *   2. the method is allowed and the stored credential supports it    -> 'method-not-allowed'
 *   3. the credential, compared in constant time                      -> 'bad-credentials'
 *   4. enabled                                                        -> 'disabled'
 *   5. password expiry                                                -> 'expired'
 *   6. the tunnel protocol is allowed                                 -> 'protocol-not-allowed'
 * An unknown user costs the same computation as a known one. Messages name
 * the user and the outcome, never a secret. Rate limiting and failure delays
 * are a separate layer (./throttle.ts) so RADIUS gets them too.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthFailureReason, AuthMethod, MsChapV2Verified, UserAttributes, Verifier, VerifyContext, VerifyOutcome } from '../ppp/auth/types.js';
import { chapMd5Response } from '../ppp/auth/chap-md5.js';
import { stripDomain, verifyMsChapV2Response } from '../ppp/auth/mschapv2-crypto.js';
import { allowedMethods, CLEARTEXT_METHODS, type UserRecord, type UserStore } from './user-store.js';

type Refusal = { ok: false; reason: AuthFailureReason; message: string };
type Basic = VerifyOutcome<{ attributes: UserAttributes; username: string }>;

export interface LocalVerifierOptions {
  /** Wall clock for password expiry (epoch ms); the injected Clock is monotonic. */
  now?: () => number;
}

/** Stand-in used when the user is unknown, so both paths cost the same. */
const DECOY: UserRecord = Object.freeze({ username: '', password: '', ntHash: new Uint8Array(16), enabled: false });

function sha256(b: Uint8Array | string): Buffer {
  return createHash('sha256').update(b).digest();
}

/** Constant-time equality of two secrets of any length (compared as SHA-256 digests). */
export function secretsEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

export class LocalVerifier implements Verifier {
  private readonly now: () => number;

  constructor(
    private readonly store: UserStore,
    opts: LocalVerifierOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  private lookup(username: string): UserRecord | undefined {
    const exact = this.store.get(username);
    if (exact) return exact;
    const bare = stripDomain(username);
    return bare !== username ? this.store.get(bare) : undefined;
  }

  private methodRefusal(u: UserRecord, method: AuthMethod): Refusal | undefined {
    if (CLEARTEXT_METHODS.includes(method) && u.password === undefined) {
      return {
        ok: false,
        reason: 'method-not-allowed',
        message: `${u.username} has only an NT hash stored; ${method} needs the cleartext password (use MS-CHAPv2 or EAP-MSCHAPv2, or store a password)`,
      };
    }
    if (!allowedMethods(u).includes(method)) {
      return { ok: false, reason: 'method-not-allowed', message: `${u.username} may not authenticate with ${method} (allowed: ${allowedMethods(u).join(', ')})` };
    }
    return undefined;
  }

  /** Checks 4-6, after the credential was found right. */
  private statusRefusal(u: UserRecord, ctx: VerifyContext): Refusal | undefined {
    if (!u.enabled) return { ok: false, reason: 'disabled', message: `${u.username} is disabled` };
    if (u.expiresAt !== undefined && this.now() >= u.expiresAt) {
      return { ok: false, reason: 'expired', message: `the password of ${u.username} expired (${u.expires})` };
    }
    if (u.tunnels && !(u.tunnels as readonly string[]).includes(ctx.tunnel)) {
      return { ok: false, reason: 'protocol-not-allowed', message: `${u.username} may not connect over ${ctx.tunnel} (allowed: ${u.tunnels.join(', ')})` };
    }
    return undefined;
  }

  private attributes(u: UserRecord): UserAttributes {
    return {
      ...(u.staticIpv4 !== undefined ? { staticIpv4: u.staticIpv4 } : {}),
      ...(u.mppe !== undefined ? { mppe: u.mppe } : {}),
      ...(u.maxSessions !== undefined ? { maxSessions: u.maxSessions } : {}),
    };
  }

  private unknown(username: string): Refusal {
    return { ok: false, reason: 'unknown-user', message: `unknown user ${JSON.stringify(username)}` };
  }

  private wrong(u: UserRecord, method: AuthMethod): Refusal {
    return { ok: false, reason: 'bad-credentials', message: `wrong password for ${u.username} (${method})` };
  }

  async pap(ctx: VerifyContext, username: string, password: Uint8Array): Promise<Basic> {
    const u = this.lookup(username);
    if (!u) {
      secretsEqual(password, DECOY.password!);
      return this.unknown(username);
    }
    const m = this.methodRefusal(u, 'pap');
    if (m) return m;
    if (!secretsEqual(password, Buffer.from(u.password!, 'utf8'))) return this.wrong(u, 'pap');
    return this.statusRefusal(u, ctx) ?? { ok: true, username: u.username, attributes: this.attributes(u) };
  }

  async chapMd5(ctx: VerifyContext, username: string, identifier: number, challenge: Uint8Array, response: Uint8Array): Promise<Basic> {
    const u = this.lookup(username);
    const secret = Buffer.from((u ?? DECOY).password ?? '', 'utf8');
    const want = chapMd5Response(identifier, secret, challenge);
    secret.fill(0);
    if (!u) {
      secretsEqual(want, response);
      return this.unknown(username);
    }
    const m = this.methodRefusal(u, 'chap-md5');
    if (m) return m;
    // RFC 1994: the Response Value is the 16-octet MD5 digest; secretsEqual also handles other lengths.
    if (!secretsEqual(want, response)) return this.wrong(u, 'chap-md5');
    return this.statusRefusal(u, ctx) ?? { ok: true, username: u.username, attributes: this.attributes(u) };
  }

  async msChapV2(
    ctx: VerifyContext,
    username: string,
    authenticatorChallenge: Uint8Array,
    peerChallenge: Uint8Array,
    ntResponse: Uint8Array,
  ): Promise<VerifyOutcome<MsChapV2Verified>> {
    const u = this.lookup(username);
    // The name hashed is the one the peer sent (RFC 2759 8.2), not the store's spelling.
    const check = verifyMsChapV2Response({ username, ntHash: (u ?? DECOY).ntHash, authenticatorChallenge, peerChallenge, ntResponse });
    if (!u) return this.unknown(username);
    const method = ctx.method === 'eap-mschapv2' ? 'eap-mschapv2' : 'mschapv2';
    const m = this.methodRefusal(u, method);
    if (m) return m;
    if (!check) return this.wrong(u, method);
    const s = this.statusRefusal(u, ctx);
    if (s) return s;
    return { ok: true, username: u.username, attributes: this.attributes(u), authenticatorResponse: check.authenticatorResponse, mppe: check.mppe };
  }
}
