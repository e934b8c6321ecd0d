import { describe, it, expect } from 'vitest';
import { coveredBy, formatIpv4, isLoopback, networkOf, parseIpv4, parsePoolEntry } from './ipv4.js';

describe('ipv4 helpers', () => {
  it('parses and formats dotted quads, rejecting near misses', () => {
    expect(parseIpv4('198.18.128.1')).toBe(0xc6128001);
    expect(formatIpv4(0xc6128001)).toBe('198.18.128.1');
    for (const bad of ['198.18.128', '198.18.128.256', '01.2.3.4', '1.2.3.4 ', '', 'a.b.c.d']) expect(parseIpv4(bad)).toBeUndefined();
  });

  it('pool entries (shared with src/pool): CIDR host addresses, /31 and /32 whole, ranges inclusive, single addresses', () => {
    expect(parsePoolEntry('198.18.128.0/24')).toEqual({ first: 0xc6128001, last: 0xc61280fe });
    expect(parsePoolEntry('198.18.128.4/31')).toEqual({ first: 0xc6128004, last: 0xc6128005 });
    expect(parsePoolEntry('198.18.128.9/32')).toEqual({ first: 0xc6128009, last: 0xc6128009 });
    expect(parsePoolEntry('198.18.128.10-198.18.128.20')).toEqual({ first: 0xc612800a, last: 0xc6128014 });
    expect(parsePoolEntry('198.18.128.7')).toEqual({ first: 0xc6128007, last: 0xc6128007 });
    expect(parsePoolEntry('198.18.128.1/24')).toMatch(/host bits set \(the block is 198\.18\.128\.0\/24\)/);
    expect(parsePoolEntry('198.18.128.0/33')).toMatch(/^expected a CIDR block/);
    expect(parsePoolEntry('198.18.128.9-198.18.128.1')).toMatch(/ends before it starts/);
  });

  it('set operations used by pool reload', () => {
    expect(networkOf(0xc6128001, 24)).toEqual({ first: 0xc6128000, last: 0xc61280ff });
    expect(networkOf(0xc6128001, 0)).toEqual({ first: 0, last: 0xffffffff });
    expect(coveredBy([{ first: 2, last: 3 }], [{ first: 1, last: 2 }, { first: 3, last: 9 }])).toBe(true);
    expect(coveredBy([{ first: 2, last: 10 }], [{ first: 1, last: 9 }])).toBe(false);
  });

  it('loopback detection', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['0.0.0.0', '::', '198.18.0.1', '128.0.0.1'].map(isLoopback)).toEqual([false, false, false, false]);
  });
});
