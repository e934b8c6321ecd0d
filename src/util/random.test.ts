import { describe, expect, it } from 'vitest';
import { randomOctets } from './random.js';

describe('randomOctets', () => {
  it('returns fresh arrays of the asked length that do not share memory', () => {
    const a = randomOctets(16);
    const b = randomOctets(16);
    expect(a.length).toBe(16);
    expect(a.buffer).not.toBe(b.buffer);
    a.fill(0);
    expect(b.some((x) => x !== 0)).toBe(true); // 2^-128 to fail by chance
  });

  it('never hands the same octets out twice across refills (16-octet draws are all distinct)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(Buffer.from(randomOctets(16)).toString('hex'));
    expect(seen.size).toBe(2000);
  });

  it('looks uniform: each octet value about 1/256 of 1 MiB drawn in odd sizes, and large requests work', () => {
    const counts = new Array<number>(256).fill(0);
    let total = 0;
    for (let n = 1; total < 1 << 20; n = (n % 37) + 1) {
      for (const x of randomOctets(n)) counts[x]!++;
      total += n;
    }
    const expected = total / 256;
    // chi-square with 255 degrees of freedom: mean 255, 400 is far in the tail (p < 1e-8)
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(400);
    expect(randomOctets(10_000).length).toBe(10_000);
  });
});
