import { describe, it, expect } from 'vitest';
import { ConfigError } from '../util/errors.js';
import { Ipv4Pool } from './ipv4-pool.js';
import { formatIpv4, normalize, parseIpv4, parsePoolEntry } from './ipv4.js';
import type { Lease } from './types.js';

function req(n: number, staticIpv4?: string) {
  return { sessionId: `s${n}`, username: `u${n}`, ...(staticIpv4 ? { staticIpv4 } : {}) };
}

function mustLease(pool: Ipv4Pool, n: number, staticIpv4?: string): Lease {
  const r = pool.allocate(req(n, staticIpv4));
  if (!r.ok) throw new Error(`allocation failed: ${r.message}`);
  return r.lease;
}

/** Deterministic PRNG (mulberry32) so the property test replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('ipv4 helpers', () => {
  it('parses dotted quads strictly', () => {
    expect(parseIpv4('198.18.0.1')).toBe(0xc6120001);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['198.18.0', '198.18.0.256', '01.2.3.4', ' 1.2.3.4', '1.2.3.4.5', '', 'a.b.c.d']) expect(parseIpv4(bad)).toBeUndefined();
    expect(formatIpv4(0xc6120001)).toBe('198.18.0.1');
  });

  it('parses pool entries: CIDR without network/broadcast, /31, /32, ranges, single addresses', () => {
    expect(parsePoolEntry('198.18.0.0/24')).toEqual({ first: parseIpv4('198.18.0.1'), last: parseIpv4('198.18.0.254') });
    expect(parsePoolEntry('198.18.0.0/30')).toEqual({ first: parseIpv4('198.18.0.1'), last: parseIpv4('198.18.0.2') });
    expect(parsePoolEntry('198.18.0.4/31')).toEqual({ first: parseIpv4('198.18.0.4'), last: parseIpv4('198.18.0.5') });
    expect(parsePoolEntry('198.18.0.9/32')).toEqual({ first: parseIpv4('198.18.0.9'), last: parseIpv4('198.18.0.9') });
    expect(parsePoolEntry('198.18.0.10-198.18.0.20')).toEqual({ first: parseIpv4('198.18.0.10'), last: parseIpv4('198.18.0.20') });
    expect(parsePoolEntry('198.18.0.7')).toEqual({ first: parseIpv4('198.18.0.7'), last: parseIpv4('198.18.0.7') });
    expect(parsePoolEntry('198.18.0.1/24')).toMatch(/host bits set/);
    expect(parsePoolEntry('198.18.0.20-198.18.0.10')).toMatch(/ends before it starts/);
    expect(parsePoolEntry('198.18.0.0/33')).toMatch(/expected a CIDR block/);
    expect(parsePoolEntry('nonsense')).toMatch(/expected a CIDR block/);
  });

  it('normalizes: merges overlapping and adjacent intervals, cuts exclusions', () => {
    const a = (s: string) => parseIpv4(s)!;
    const n = normalize(
      [
        { first: a('10.0.0.10'), last: a('10.0.0.20') },
        { first: a('10.0.0.1'), last: a('10.0.0.9') },
        { first: a('10.0.0.15'), last: a('10.0.0.30') },
      ],
      [a('10.0.0.1'), a('10.0.0.12'), a('10.0.0.30'), a('10.0.0.99')],
    );
    expect(n).toEqual([
      { first: a('10.0.0.2'), last: a('10.0.0.11') },
      { first: a('10.0.0.13'), last: a('10.0.0.29') },
    ]);
  });
});

describe('Ipv4Pool', () => {
  it('hands out the lowest free address, skipping the gateway, network and broadcast', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.10.0/29'], gateway: '198.18.10.1' });
    expect(pool.size).toBe(5); // .2 .. .6
    const got = [1, 2, 3, 4, 5].map((n) => mustLease(pool, n).address);
    expect(got).toEqual(['198.18.10.2', '198.18.10.3', '198.18.10.4', '198.18.10.5', '198.18.10.6']);
    expect(pool.used).toBe(5);
    expect(pool.free).toBe(0);
  });

  it('reuses a released address first, and release is idempotent', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.10.10-198.18.10.20'] });
    const leases = [1, 2, 3, 4].map((n) => mustLease(pool, n));
    leases[1]!.release();
    leases[1]!.release();
    expect(pool.used).toBe(3);
    expect(mustLease(pool, 5).address).toBe('198.18.10.11');
    // The stale lease's second release must not free the address now held by session 5.
    leases[1]!.release();
    expect(pool.isLeased('198.18.10.11')).toBe(true);
    expect(pool.used).toBe(4);
  });

  it('spans several ranges in address order', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.20.5-198.18.20.6', '198.18.10.1', '198.18.30.0/31'] });
    expect(pool.size).toBe(5);
    expect([1, 2, 3, 4, 5].map((n) => mustLease(pool, n).address)).toEqual([
      '198.18.10.1',
      '198.18.20.5',
      '198.18.20.6',
      '198.18.30.0',
      '198.18.30.1',
    ]);
  });

  it('returns exhausted cleanly and keeps serving once an address is freed', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.1-198.18.0.2'] });
    const a = mustLease(pool, 1);
    mustLease(pool, 2);
    const r = pool.allocate(req(3));
    expect(r).toMatchObject({ ok: false, reason: 'exhausted' });
    expect(pool.used).toBe(2);
    a.release();
    expect(mustLease(pool, 4).address).toBe('198.18.0.1');
    // Refusals are counted by reason (the pool metric); successes are not.
    expect(pool.allocate(req(5))).toMatchObject({ ok: false, reason: 'exhausted' });
    expect(pool.allocate(req(6, '198.18.0.1'))).toMatchObject({ ok: false, reason: 'conflict' });
    expect(pool.allocate(req(7, 'nonsense'))).toMatchObject({ ok: false, reason: 'invalid' });
    expect(pool.failures).toEqual({ exhausted: 2, conflict: 1, invalid: 1 });
  });

  it('honours a free static address inside the pool and skips it for dynamic allocation', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.1-198.18.0.4'] });
    expect(mustLease(pool, 1, '198.18.0.1').address).toBe('198.18.0.1');
    expect(mustLease(pool, 2).address).toBe('198.18.0.2');
    expect(pool.used).toBe(2);
  });

  it('honours a static address outside the pool without consuming pool space', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.1-198.18.0.2'] });
    const s = mustLease(pool, 1, '198.19.5.5');
    expect(s.address).toBe('198.19.5.5');
    expect(pool.used).toBe(0);
    expect(pool.outside).toBe(1);
    expect(pool.allocate(req(2, '198.19.5.5'))).toMatchObject({ ok: false, reason: 'conflict' });
    s.release();
    expect(pool.outside).toBe(0);
    expect(mustLease(pool, 3, '198.19.5.5').address).toBe('198.19.5.5');
  });

  it('refuses a static address that is in use, the gateway, or not assignable', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.0/24'], gateway: '198.18.0.1' });
    const dyn = mustLease(pool, 1);
    expect(dyn.address).toBe('198.18.0.2');
    const c = pool.allocate(req(2, '198.18.0.2'));
    expect(c).toMatchObject({ ok: false, reason: 'conflict' });
    if (!c.ok) expect(c.message).toContain('session s1');
    expect(pool.allocate(req(3, '198.18.0.1'))).toMatchObject({ ok: false, reason: 'conflict' });
    for (const bad of ['198.18.0', '0.0.0.0', '127.0.0.1', '224.0.0.1', '255.255.255.255']) {
      expect(pool.allocate(req(4, bad))).toMatchObject({ ok: false, reason: 'invalid' });
    }
    expect(pool.used).toBe(1);
  });

  it('reports every configuration problem with its path', () => {
    const issues = Ipv4Pool.validate({ ranges: ['198.18.0.0/33', 'x'], gateway: 'gw', exclude: ['1.2.3.4', 'nope'] });
    expect(issues.map((i) => i.path)).toEqual(['ranges[0]', 'ranges[1]', 'gateway', 'exclude[1]']);
    expect(() => Ipv4Pool.create({ ranges: [] })).toThrow(ConfigError);
    expect(Ipv4Pool.validate({ ranges: ['198.18.0.1'], gateway: '198.18.0.1' })[0]?.message).toMatch(/no usable address/);
    expect(Ipv4Pool.validate({ ranges: ['10.0.0.0/7'] })[0]?.message).toMatch(/at most/);
  });

  it('grows on reconfigure without disturbing existing leases', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.1-198.18.0.2'] });
    const a = mustLease(pool, 1);
    const b = mustLease(pool, 2);
    expect(pool.allocate(req(3))).toMatchObject({ ok: false, reason: 'exhausted' });
    expect(pool.reconfigure({ ranges: ['198.18.0.1-198.18.0.2', '198.18.1.0/30'] })).toEqual({ ok: true });
    expect(pool.size).toBe(4);
    expect(pool.used).toBe(2);
    expect(mustLease(pool, 3).address).toBe('198.18.1.1');
    a.release();
    expect(mustLease(pool, 4).address).toBe('198.18.0.1');
    expect(b.address).toBe('198.18.0.2');
    expect(pool.isLeased('198.18.0.2')).toBe(true);
  });

  it('keeps a lease whose address left the pool on reconfigure, and never hands it out meanwhile', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.1-198.18.0.3'] });
    mustLease(pool, 1);
    const b = mustLease(pool, 2); // .2
    expect(pool.reconfigure({ ranges: ['198.18.0.1', '198.18.0.3'] }).ok).toBe(true);
    expect(pool.used).toBe(1);
    expect(pool.outside).toBe(1);
    expect(mustLease(pool, 3).address).toBe('198.18.0.3');
    expect(pool.allocate(req(4, '198.18.0.2'))).toMatchObject({ ok: false, reason: 'conflict' });
    b.release();
    expect(pool.outside).toBe(0);
  });

  it('a failed reconfigure changes nothing', () => {
    const pool = Ipv4Pool.create({ ranges: ['198.18.0.1-198.18.0.2'] });
    mustLease(pool, 1);
    const r = pool.reconfigure({ ranges: ['bogus'] });
    expect(r.ok).toBe(false);
    expect(pool.size).toBe(2);
    expect(mustLease(pool, 2).address).toBe('198.18.0.2');
  });

  it('lists leases for the admin API', () => {
    const pool = Ipv4Pool.create({ name: 'main', ranges: ['198.18.0.1-198.18.0.9'] });
    mustLease(pool, 1);
    mustLease(pool, 2, '198.19.0.1');
    expect(pool.leases()).toEqual([
      { address: '198.18.0.1', sessionId: 's1', username: 'u1', inPool: true },
      { address: '198.19.0.1', sessionId: 's2', username: 'u2', inPool: false },
    ]);
  });

  it('property: random allocate/release never double-assigns and always finds the lowest free address', () => {
    for (const seed of [1, 2, 3, 42, 1337]) {
      const random = rng(seed);
      // Several ranges with gaps, a gateway in the middle, and word-boundary sizes.
      const pool = Ipv4Pool.create({
        ranges: ['198.18.0.0/27', '198.18.1.30-198.18.1.70', '198.18.2.0/31'],
        gateway: '198.18.1.40',
        exclude: ['198.18.0.7'],
      });
      const size = pool.size;
      expect(size).toBe(30 - 1 + 41 - 1 + 2);
      const poolAddrs: string[] = [];
      for (let a = parseIpv4('198.18.0.0')!; a <= parseIpv4('198.18.2.1')!; a++) if (pool.contains(formatIpv4(a))) poolAddrs.push(formatIpv4(a));
      expect(poolAddrs.length).toBe(size);
      const live = new Map<string, Lease>();
      const everFreed: Lease[] = [];
      const statics = ['198.19.0.1', '198.19.0.2', '198.18.0.9', '198.18.1.31'];
      for (let step = 0; step < 3000; step++) {
        const roll = random();
        if (roll < 0.5) {
          const useStatic = random() < 0.1;
          const st = useStatic ? statics[Math.floor(random() * statics.length)]! : undefined;
          const r = pool.allocate(req(step, st));
          if (r.ok) {
            expect(live.has(r.lease.address)).toBe(false);
            if (!st) {
              // Lowest free: every pool address below it is leased.
              const below = poolAddrs.slice(0, poolAddrs.indexOf(r.lease.address));
              expect(below.length).toBe(poolAddrs.indexOf(r.lease.address));
              expect(below.every((a) => live.has(a))).toBe(true);
            }
            live.set(r.lease.address, r.lease);
          } else if (st) {
            expect(r.reason).toBe('conflict');
            expect(live.has(st)).toBe(true);
          } else {
            expect(r.reason).toBe('exhausted');
            expect(pool.used).toBe(size);
          }
        } else if (roll < 0.9 && live.size > 0) {
          const keys = [...live.keys()];
          const k = keys[Math.floor(random() * keys.length)]!;
          const l = live.get(k)!;
          l.release();
          live.delete(k);
          everFreed.push(l);
        } else if (everFreed.length > 0) {
          // Stale double release: must be harmless.
          everFreed[Math.floor(random() * everFreed.length)]!.release();
        }
        const inPool = [...live.keys()].filter((a) => pool.contains(a)).length;
        expect(pool.used).toBe(inPool);
        expect(pool.outside).toBe(live.size - inPool);
      }
      for (const a of poolAddrs) expect(pool.isLeased(a)).toBe(live.has(a));
      for (const l of live.values()) l.release();
      expect(pool.used + pool.outside).toBe(0);
    }
  });

  it('handles a large pool quickly enough to allocate all of it', () => {
    const pool = Ipv4Pool.create({ ranges: ['10.8.0.0/16'], gateway: '10.8.0.1' });
    expect(pool.size).toBe(65533);
    let last = '';
    for (let i = 0; i < pool.size; i++) last = mustLease(pool, i).address;
    expect(last).toBe('10.8.255.254');
    expect(pool.allocate(req(-1))).toMatchObject({ ok: false, reason: 'exhausted' });
  });
});
