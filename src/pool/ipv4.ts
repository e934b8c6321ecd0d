/**
 * IPv4 address arithmetic for the pools: dotted quads and pool entries as
 * closed intervals of unsigned 32-bit integers (host order).
 *
 * Pool entry syntax (the same the configuration accepts):
 *   - `a.b.c.d/len`      a CIDR block; for prefixes up to /30 the network and
 *                        broadcast addresses are not handed out (RFC 919/922
 *                        semantics; /31 follows RFC 3021 and /32 is one host);
 *   - `a.b.c.d-e.f.g.h`  an inclusive range;
 *   - `a.b.c.d`          one address.
 */

/** A closed interval [first, last] of IPv4 addresses, host order. */
export interface Ipv4Interval {
  first: number;
  last: number;
}

const QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Dotted quad to u32 (host order), or undefined when it is not one (no leading zeros, no spaces). */
export function parseIpv4(s: string): number | undefined {
  if (!QUAD.test(s)) return undefined;
  const p = s.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

const ENTRY_HELP = 'expected a CIDR block like 198.18.128.0/24, a range like 198.18.128.10-198.18.128.200 or one address';

/** Parse one pool entry; a string result says what is wrong with it. */
export function parsePoolEntry(s: string): Ipv4Interval | string {
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const addr = parseIpv4(s.slice(0, slash));
    const lenText = s.slice(slash + 1);
    const len = /^\d{1,2}$/.test(lenText) ? Number(lenText) : NaN;
    if (addr === undefined || !(len >= 0 && len <= 32)) return `${ENTRY_HELP}, got ${JSON.stringify(s)}`;
    const mask = prefixMask(len);
    const first = (addr & mask) >>> 0;
    const last = (first | (~mask >>> 0)) >>> 0;
    if (first !== addr) return `${s} has host bits set (the block is ${formatIpv4(first)}/${len})`;
    return len <= 30 ? { first: first + 1, last: last - 1 } : { first, last };
  }
  const dash = s.indexOf('-');
  if (dash >= 0) {
    const first = parseIpv4(s.slice(0, dash).trim());
    const last = parseIpv4(s.slice(dash + 1).trim());
    if (first === undefined || last === undefined) return `${ENTRY_HELP}, got ${JSON.stringify(s)}`;
    if (first > last) return `range ${s} ends before it starts`;
    return { first, last };
  }
  const one = parseIpv4(s.trim());
  if (one !== undefined) return { first: one, last: one };
  return `${ENTRY_HELP}, got ${JSON.stringify(s)}`;
}

/**
 * Sort and merge intervals, then cut the excluded addresses out. The result
 * is sorted, disjoint and non-adjacent.
 */
export function normalize(intervals: readonly Ipv4Interval[], exclude: readonly number[] = []): Ipv4Interval[] {
  const sorted = [...intervals].sort((a, b) => a.first - b.first);
  const merged: Ipv4Interval[] = [];
  for (const i of sorted) {
    const last = merged[merged.length - 1];
    if (last && i.first <= last.last + 1) last.last = Math.max(last.last, i.last);
    else merged.push({ first: i.first, last: i.last });
  }
  let out = merged;
  for (const x of [...new Set(exclude)].sort((a, b) => a - b)) {
    const next: Ipv4Interval[] = [];
    for (const i of out) {
      if (x < i.first || x > i.last) next.push(i);
      else {
        if (i.first < x) next.push({ first: i.first, last: x - 1 });
        if (x < i.last) next.push({ first: x + 1, last: i.last });
      }
    }
    out = next;
  }
  return out;
}
