import { describe, it, expect } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { createLogger } from '../util/log.js';
import { FailureLimiter } from './rate-limit.js';
import { sourceOf, throttleVerifier } from './throttle.js';
import type { Verifier, VerifyContext } from '../ppp/auth/types.js';

describe('FailureLimiter (token bucket per source)', () => {
  it('allows `burst` failures, then refuses until a token grows back', () => {
    const clock = new VirtualClock();
    const l = new FailureLimiter({ clock, failuresPerMinute: 6, burst: 3 });
    for (let i = 0; i < 3; i++) {
      expect(l.check('198.18.0.1')).toEqual({ allowed: true });
      l.recordFailure('198.18.0.1');
    }
    const v = l.check('198.18.0.1');
    expect(v).toEqual({ allowed: false, retryAfterMs: 10_000 });
    // Other sources are not affected.
    expect(l.check('198.18.0.2')).toEqual({ allowed: true });
    clock.advance(9_999);
    expect(l.check('198.18.0.1').allowed).toBe(false);
    clock.advance(1);
    expect(l.check('198.18.0.1')).toEqual({ allowed: true });
    l.recordFailure('198.18.0.1');
    expect(l.check('198.18.0.1').allowed).toBe(false);
  });

  it('defaults the burst to the per-minute rate and forgets fully refilled sources', () => {
    const clock = new VirtualClock();
    const l = new FailureLimiter({ clock, failuresPerMinute: 10 });
    for (let i = 0; i < 10; i++) l.recordFailure('a');
    expect(l.check('a').allowed).toBe(false);
    expect(l.tracked).toBe(1);
    clock.advance(60_000);
    expect(l.check('a')).toEqual({ allowed: true });
    expect(l.tracked).toBe(0);
  });

  it('keeps at most maxSources buckets, forgetting the least recently failed', () => {
    const clock = new VirtualClock();
    const l = new FailureLimiter({ clock, failuresPerMinute: 1, burst: 1, maxSources: 3 });
    for (const s of ['a', 'b', 'c']) l.recordFailure(s);
    l.recordFailure('a'); // a is now the most recent
    l.recordFailure('d'); // evicts b
    expect(l.tracked).toBe(3);
    expect(l.check('b').allowed).toBe(true);
    expect(l.check('a').allowed).toBe(false);
    expect(l.check('c').allowed).toBe(false);
    expect(l.check('d').allowed).toBe(false);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new FailureLimiter({ clock: new VirtualClock(), failuresPerMinute: 0 })).toThrow(RangeError);
  });
});

describe('throttleVerifier', () => {
  const ctx: VerifyContext = { tunnel: 'sstp', peer: '198.18.7.7:50000' };
  const stub = (ok: boolean): Verifier & { calls: number } => {
    const v = {
      calls: 0,
      async pap() {
        v.calls++;
        return ok ? { ok: true as const, username: 'alice', attributes: {} } : { ok: false as const, reason: 'bad-credentials' as const, message: 'wrong password' };
      },
      async chapMd5() {
        return v.pap();
      },
      async msChapV2() {
        v.calls++;
        return { ok: false as const, reason: 'backend-error' as const, message: 'down' };
      },
    };
    return v;
  };

  async function settle(clock: VirtualClock, p: Promise<unknown>, ms: number): Promise<boolean> {
    let done = false;
    void p.then(() => (done = true));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    if (done) return true;
    clock.advance(ms);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    return done;
  }

  it('answers successes at once and refusals only after the failure delay', async () => {
    const clock = new VirtualClock();
    const limiter = new FailureLimiter({ clock, failuresPerMinute: 10 });
    const good = throttleVerifier(stub(true), { limiter, clock, failureDelayMs: 1000 });
    expect(await settle(clock, good.pap(ctx, 'alice', new Uint8Array()), 0)).toBe(true);

    const bad = throttleVerifier(stub(false), { limiter, clock, failureDelayMs: 1000 });
    let result: unknown;
    const p = bad.pap(ctx, 'alice', new Uint8Array()).then((r) => (result = r));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(result).toBeUndefined();
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    expect(result).toBeUndefined();
    clock.advance(1);
    await p;
    expect(result).toMatchObject({ ok: false, reason: 'bad-credentials' });
  });

  it('cuts a source off after its burst without consulting the inner verifier; other sources pass', async () => {
    const clock = new VirtualClock();
    const limiter = new FailureLimiter({ clock, failuresPerMinute: 3 });
    const inner = stub(false);
    const v = throttleVerifier(inner, { limiter, clock, failureDelayMs: 10 });
    for (let i = 0; i < 3; i++) {
      const p = v.pap(ctx, 'alice', new Uint8Array());
      expect(await settle(clock, p, 10)).toBe(true);
    }
    expect(inner.calls).toBe(3);
    const p = v.chapMd5(ctx, 'alice', 1, new Uint8Array(16), new Uint8Array(16));
    let r: unknown;
    void p.then((x) => (r = x));
    await settle(clock, p, 10);
    expect(r).toMatchObject({ ok: false, reason: 'rate-limited' });
    expect(inner.calls).toBe(3);
    // The same address on another port is the same source.
    const p2 = v.pap({ tunnel: 'sstp', peer: '198.18.7.7:1' }, 'alice', new Uint8Array());
    let r2: unknown;
    void p2.then((x) => (r2 = x));
    await settle(clock, p2, 10);
    expect(r2).toMatchObject({ reason: 'rate-limited' });
    // Another source is not affected.
    const p3 = v.pap({ tunnel: 'sstp', peer: '198.18.7.8' }, 'alice', new Uint8Array());
    let r3: unknown;
    void p3.then((x) => (r3 = x));
    await settle(clock, p3, 10);
    expect(r3).toMatchObject({ reason: 'bad-credentials' });
  });

  it('does not count backend errors against the source', async () => {
    const clock = new VirtualClock();
    const limiter = new FailureLimiter({ clock, failuresPerMinute: 1 });
    const v = throttleVerifier(stub(false), { limiter, clock, failureDelayMs: 0 });
    for (let i = 0; i < 5; i++) await settle(clock, v.msChapV2(ctx, 'alice', new Uint8Array(16), new Uint8Array(16), new Uint8Array(24)), 0);
    expect(limiter.tracked).toBe(0);
  });

  it('its refusal lines name the tunnel and the peer, and the session when the context has one; never the password', async () => {
    const clock = new VirtualClock();
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
    const limiter = new FailureLimiter({ clock, failuresPerMinute: 1, burst: 1 });
    const v = throttleVerifier(stub(false), { limiter, clock, failureDelayMs: 0, log });
    const session = { tunnel: 'pptp' as const, peer: '198.18.7.9:1723', sessionId: '6f1c2d7e-0000-4000-8000-000000000001' };
    await settle(clock, v.pap(session, 'alice', new TextEncoder().encode('hunter2')), 0);
    await settle(clock, v.pap(session, 'alice', new TextEncoder().encode('hunter2')), 0);
    await settle(clock, v.pap({ tunnel: 'sstp', peer: '198.18.7.10:443' }, 'bob', new Uint8Array(1)), 0);
    expect(lines.map((l) => [l.msg, l.session, l.protocol, l.peer, l.source, l.user, l.reason ?? null])).toEqual([
      ['authentication refused', session.sessionId, 'pptp', '198.18.7.9:1723', '198.18.7.9', 'alice', 'bad-credentials'],
      ['authentication refused: too many failures from this source', session.sessionId, 'pptp', '198.18.7.9:1723', '198.18.7.9', 'alice', null],
      ['authentication refused', undefined, 'sstp', '198.18.7.10:443', '198.18.7.10', 'bob', 'bad-credentials'],
    ]);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('sourceOf strips a port from IPv4 and bracketed IPv6 peers', () => {
    expect(sourceOf({ tunnel: 'sstp', peer: '198.18.0.1:443' })).toBe('198.18.0.1');
    expect(sourceOf({ tunnel: 'sstp', peer: '[2001:db8::1]:443' })).toBe('2001:db8::1');
    expect(sourceOf({ tunnel: 'sstp', peer: '2001:db8::1' })).toBe('2001:db8::1');
    expect(sourceOf({ tunnel: 'sstp', peer: '198.18.0.1' })).toBe('198.18.0.1');
  });
});
