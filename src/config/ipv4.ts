/**
 * IPv4 set arithmetic the configuration needs beyond src/pool/ipv4.ts (whose
 * parsing of addresses and pool entries it reuses, so the config accepts
 * exactly what the pools accept): networks, containment, overlap, and
 * whether a reloaded pool only grows.
 */
import { normalize, parseIpv4, type Ipv4Interval } from '../pool/ipv4.js';

export { formatIpv4, normalize, parseIpv4, parsePoolEntry, type Ipv4Interval } from '../pool/ipv4.js';

export function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** The network [network address, broadcast address] of `addr/len`. */
export function networkOf(addr: number, len: number): Ipv4Interval {
  const mask = prefixMask(len);
  const first = (addr & mask) >>> 0;
  return { first, last: (first | (~mask >>> 0)) >>> 0 };
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
