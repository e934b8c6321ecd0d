/**
 * IPv4 address arithmetic for configuration: dotted quads, CIDR blocks and
 * "first-last" ranges as closed intervals of unsigned 32-bit integers (host
 * order). Used to validate pools against the TUN network and each other, and
 * to decide whether a reloaded pool only grows.
 */

/** A closed interval [first, last] of IPv4 addresses, host order. */
export interface Ipv4Interval {
  first: number;
  last: number;
}

const QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Dotted quad to u32 (host order), or undefined when it is not one. */
export function parseIpv4(s: string): number | undefined {
  if (!QUAD.test(s)) return undefined;
  const p = s.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIpv4(s: string): boolean {
  return parseIpv4(s) !== undefined;
}

export function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** The network [network address, broadcast address] of `addr/len`. */
export function networkOf(addr: number, len: number): Ipv4Interval {
  const mask = prefixMask(len);
  const first = (addr & mask) >>> 0;
  return { first, last: (first | (~mask >>> 0)) >>> 0 };
}

/**
 * One pool entry: `a.b.c.d/len` (its host addresses: network and broadcast
 * excluded for prefixes up to /30) or `a.b.c.d-e.f.g.h` (inclusive). Returns
 * the interval or a message saying what is wrong.
 */
export function parsePoolEntry(s: string): Ipv4Interval | string {
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const addr = parseIpv4(s.slice(0, slash));
    const lenText = s.slice(slash + 1);
    const len = /^\d{1,2}$/.test(lenText) ? Number(lenText) : NaN;
    if (addr === undefined || !(len >= 0 && len <= 32)) return `expected a CIDR block like 198.18.128.0/24 or a range like 198.18.128.10-198.18.128.200, got ${JSON.stringify(s)}`;
    const net = networkOf(addr, len);
    if (net.first !== addr) return `${s} has host bits set (the block is ${formatIpv4(net.first)}/${len})`;
    if (len <= 30) return { first: net.first + 1, last: net.last - 1 };
    return net;
  }
  const dash = s.indexOf('-');
  if (dash >= 0) {
    const first = parseIpv4(s.slice(0, dash).trim());
    const last = parseIpv4(s.slice(dash + 1).trim());
    if (first === undefined || last === undefined) {
      return `expected a CIDR block like 198.18.128.0/24 or a range like 198.18.128.10-198.18.128.200, got ${JSON.stringify(s)}`;
    }
    if (first > last) return `range ${s} ends before it starts`;
    return { first, last };
  }
  const one = parseIpv4(s);
  if (one !== undefined) return { first: one, last: one };
  return `expected a CIDR block like 198.18.128.0/24 or a range like 198.18.128.10-198.18.128.200, got ${JSON.stringify(s)}`;
}

export function intervalSize(i: Ipv4Interval): number {
  return i.last - i.first + 1;
}

export function overlaps(a: Ipv4Interval, b: Ipv4Interval): boolean {
  return a.first <= b.last && b.first <= a.last;
}

export function contains(outer: Ipv4Interval, inner: Ipv4Interval): boolean {
  return outer.first <= inner.first && inner.last <= outer.last;
}

/** Sort and merge touching or overlapping intervals. */
export function normalize(list: readonly Ipv4Interval[]): Ipv4Interval[] {
  const sorted = [...list].sort((a, b) => a.first - b.first);
  const out: Ipv4Interval[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.first <= last.last + 1) last.last = Math.max(last.last, i.last);
    else out.push({ ...i });
  }
  return out;
}

/** Remove one address from a set of intervals. */
export function without(list: readonly Ipv4Interval[], addr: number): Ipv4Interval[] {
  const out: Ipv4Interval[] = [];
  for (const i of list) {
    if (addr < i.first || addr > i.last) out.push({ ...i });
    else {
      if (i.first < addr) out.push({ first: i.first, last: addr - 1 });
      if (addr < i.last) out.push({ first: addr + 1, last: i.last });
    }
  }
  return out;
}

/** Is every address of `inner` also in `outer`? */
export function coveredBy(inner: readonly Ipv4Interval[], outer: readonly Ipv4Interval[]): boolean {
  const o = normalize(outer);
  return normalize(inner).every((i) => o.some((x) => contains(x, i)));
}

export function isLoopback(address: string): boolean {
  if (address === 'localhost' || address === '::1') return true;
  const n = parseIpv4(address);
  return n !== undefined && n >>> 24 === 127;
}
