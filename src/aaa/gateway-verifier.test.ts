import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { VirtualClock } from '../util/clock.js';
import { silentLogger } from '../util/log.js';
import type { Verifier, VerifyContext } from '../ppp/auth/types.js';
import { openGatewayVerifier, sessionPolicyVerifier } from './gateway-verifier.js';

const ctx: VerifyContext = { tunnel: 'pptp', peer: '198.18.0.2' };
const pw = (s: string) => new TextEncoder().encode(s);

/** Let a verdict that waits on the (virtual) failure delay come through. */
async function settle<T>(p: Promise<T>, clock: VirtualClock): Promise<T> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 100 && !done; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(500);
  }
  return p;
}

describe('gateway verifier', () => {
  it('refuses everyone until the users file exists, then follows reloads', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vpngw-gv-'));
    try {
      const file = path.join(dir, 'users.yaml');
      const clock = new VirtualClock();
      const g = await openGatewayVerifier({ usersFile: file, clock, log: silentLogger, failuresPerMinute: 100 });
      expect((await settle(g.verifier.pap(ctx, 'alice', pw('wonderland')), clock)).ok).toBe(false);
      writeFileSync(file, 'users:\n  alice:\n    password: wonderland\n');
      await g.reload();
      expect((await g.verifier.pap(ctx, 'alice', pw('wonderland'))).ok).toBe(true);
      writeFileSync(file, 'users:\n  alice: [not, a, user]\n');
      await g.reload(); // a bad file keeps the previous users
      expect((await g.verifier.pap(ctx, 'alice', pw('wonderland'))).ok).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the session policy counts verdicts, enforces sessions per user, and strips MPPE only when asked', async () => {
    const inner: Verifier = {
      pap: async (_c, username) => ({ ok: true, username, attributes: { mppe: 'require' as const, ...(username === 'solo' ? { maxSessions: 1 } : {}) } }),
      chapMd5: async () => ({ ok: false, reason: 'bad-credentials', message: 'no' }),
      msChapV2: async () => ({ ok: false, reason: 'unknown-user', message: 'no' }),
    };
    const live = new Map([['solo', 1], ['pair', 1]]);
    const seen: string[] = [];
    const policy = (stripMppe: boolean) =>
      sessionPolicyVerifier(inner, { sessionsOf: (u) => live.get(u) ?? 0, maxPerUser: () => 2, outcome: (m, o) => seen.push(`${m}:${o}`), stripMppe });
    const keep = await policy(false).pap(ctx, 'pair', pw('x'));
    expect(keep.ok && keep.attributes.mppe).toBe('require');
    const strip = await policy(true).pap(ctx, 'pair', pw('x'));
    expect(strip.ok && 'mppe' in strip.attributes).toBe(false);
    const solo = await policy(false).pap(ctx, 'solo', pw('x'));
    expect(solo.ok ? 'ok' : solo.reason).toBe('rate-limited');
    await policy(false).chapMd5(ctx, 'x', 1, new Uint8Array(16), new Uint8Array(16));
    expect(seen).toEqual(['pap:success', 'pap:success', 'pap:rate-limited', 'chap-md5:bad-credentials']);
  });
});
