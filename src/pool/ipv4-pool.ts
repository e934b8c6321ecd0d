/**
 * IPv4 address pool: hands inner addresses to PPP sessions (IPCP, server side)
 * through the {@link AddressAllocator} contract.
 *
 * Invariants:
 *   - an address is held by at most one live lease (pool addresses and static
 *     addresses outside the pool alike);
 *   - a lease is released at most once (release() is idempotent) and a stale
 *     lease can never free an address that has since been handed to someone
 *     else;
 *   - exhaustion or a conflict fails only the request that hit it.
 *
 * Allocation order: the lowest free address of the pool (predictable for
 * operators reading logs and firewall rules; a released address is the first
 * to be reused). Found with a bitmap and a "lowest word that may have a free
 * bit" hint, so a full scan happens only when the pool is nearly full.
 *
 * Reconfiguration ({@link Ipv4Pool.reconfigure}) swaps the ranges without
 * touching live leases: a lease on an address that is still in the pool stays
 * marked; one on an address the new pool no longer has is kept until it is
 * released (never handed out again meanwhile). Growing is the normal case.
 */
import { ConfigError, type ConfigIssue } from '../util/errors.js';
import type { AddressAllocator, AllocationFailureReason, AllocationRequest, AllocationResult, Lease } from './types.js';
import { formatIpv4, normalize, parseIpv4, parsePoolEntry, type Ipv4Interval } from './ipv4.js';

// Our choices.
/** Largest pool we build a bitmap for (a /8): 2 MiB of bitmap. */
export const MAX_POOL_SIZE = 1 << 24;

export interface Ipv4PoolConfig {
  /** Name for messages and metrics labels. */
  name?: string;
  /** Pool entries: CIDR blocks, inclusive ranges or single addresses (see ./ipv4.ts). */
  ranges: readonly string[];
  /** The gateway's own inner address: never handed out. */
  gateway?: string;
  /** Further addresses never handed out. */
  exclude?: readonly string[];
}

export interface LeaseInfo {
  address: string;
  sessionId: string;
  username: string;
  /** True when the address lies in the pool's ranges (false: a static address outside them). */
  inPool: boolean;
}

interface Holder {
  sessionId: string;
  username: string;
  inPool: boolean;
}

interface Layout {
  intervals: Ipv4Interval[];
  /** offsets[i] = index of intervals[i].first in the pool's index space. */
  offsets: number[];
  size: number;
  gateway: number | undefined;
}

function buildLayout(config: Ipv4PoolConfig): Layout | ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const intervals: Ipv4Interval[] = [];
  if (config.ranges.length === 0) issues.push({ path: 'ranges', message: 'a pool needs at least one range' });
  config.ranges.forEach((r, i) => {
    const p = parsePoolEntry(r);
    if (typeof p === 'string') issues.push({ path: `ranges[${i}]`, message: p });
    else intervals.push(p);
  });
  const excluded: number[] = [];
  let gateway: number | undefined;
  if (config.gateway !== undefined) {
    gateway = parseIpv4(config.gateway);
    if (gateway === undefined) issues.push({ path: 'gateway', message: `not an IPv4 address: ${JSON.stringify(config.gateway)}` });
    else excluded.push(gateway);
  }
  (config.exclude ?? []).forEach((x, i) => {
    const a = parseIpv4(x);
    if (a === undefined) issues.push({ path: `exclude[${i}]`, message: `not an IPv4 address: ${JSON.stringify(x)}` });
    else excluded.push(a);
  });
  if (issues.length > 0) return issues;
  const norm = normalize(intervals, excluded);
  const offsets: number[] = [];
  let size = 0;
  for (const i of norm) {
    offsets.push(size);
    size += i.last - i.first + 1;
  }
  if (size === 0) return [{ path: 'ranges', message: 'the pool has no usable address once the gateway and exclusions are removed' }];
  if (size > MAX_POOL_SIZE) return [{ path: 'ranges', message: `the pool has ${size} addresses; at most ${MAX_POOL_SIZE} are supported` }];
  return { intervals: norm, offsets, size, gateway };
}

function isAssignable(a: number): boolean {
  const top = a >>> 24;
  // 0.0.0.0/8 ("this network"), 127/8 loopback, 224/4 multicast, 240/4 reserved and broadcast.
  return top !== 0 && top !== 127 && top < 224;
}

export class Ipv4Pool implements AddressAllocator {
  readonly name: string;
  private layout: Layout;
  private bits: Uint32Array;
  /** Lowest bitmap word that may contain a free bit. */
  private hint = 0;
  private inPoolCount = 0;
  private readonly failed: Record<AllocationFailureReason, number> = { exhausted: 0, conflict: 0, invalid: 0 };
  /** Every live lease, by address (u32). */
  private readonly holders = new Map<number, Holder>();

  private constructor(name: string, layout: Layout) {
    this.name = name;
    this.layout = layout;
    this.bits = Ipv4Pool.emptyBitmap(layout.size);
  }

  /** Build a pool; throws {@link ConfigError} listing every problem of the configuration. */
  static create(config: Ipv4PoolConfig): Ipv4Pool {
    const layout = buildLayout(config);
    const name = config.name ?? 'pool';
    if (Array.isArray(layout)) throw new ConfigError(layout, `address pool ${JSON.stringify(name)}`);
    return new Ipv4Pool(name, layout);
  }

  /** Validate a configuration without building a pool. */
  static validate(config: Ipv4PoolConfig): ConfigIssue[] {
    const layout = buildLayout(config);
    return Array.isArray(layout) ? layout : [];
  }

  /** Bitmap with the padding bits past `size` permanently set. */
  private static emptyBitmap(size: number): Uint32Array {
    const words = Math.ceil(size / 32);
    const bits = new Uint32Array(words);
    const tail = size % 32;
    if (tail !== 0) bits[words - 1] = (0xffffffff << tail) >>> 0;
    return bits;
  }

  /** Number of addresses the pool can hand out. */
  get size(): number {
    return this.layout.size;
  }

  /** Pool addresses currently leased. */
  get used(): number {
    return this.inPoolCount;
  }

  get free(): number {
    return this.layout.size - this.inPoolCount;
  }

  /** Leased static addresses that lie outside the pool's ranges. */
  get outside(): number {
    return this.holders.size - this.inPoolCount;
  }

  leases(): LeaseInfo[] {
    return [...this.holders.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([a, h]) => ({ address: formatIpv4(a), sessionId: h.sessionId, username: h.username, inPool: h.inPool }));
  }

  isLeased(address: string): boolean {
    const a = parseIpv4(address);
    return a !== undefined && this.holders.has(a);
  }

  /** Whether `address` is one the pool hands out (gateway and exclusions are not). */
  contains(address: string): boolean {
    const a = parseIpv4(address);
    return a !== undefined && this.indexOf(a) >= 0;
  }

  /** Refused allocations since start, by reason (the metric vpngw_pool_allocation_failures_total). */
  get failures(): Readonly<Record<AllocationFailureReason, number>> {
    return this.failed;
  }

  allocate(req: AllocationRequest): AllocationResult {
    const r = this.tryAllocate(req);
    if (!r.ok) this.failed[r.reason]++;
    return r;
  }

  private tryAllocate(req: AllocationRequest): AllocationResult {
    if (req.staticIpv4 !== undefined) return this.allocateStatic(req, req.staticIpv4);
    const index = this.lowestFree();
    if (index < 0) {
      return { ok: false, reason: 'exhausted', message: `address pool ${this.name} is exhausted (${this.layout.size} addresses in use)` };
    }
    const address = this.addressAt(index);
    return { ok: true, lease: this.take(address, index, req) };
  }

  private allocateStatic(req: AllocationRequest, text: string): AllocationResult {
    const address = parseIpv4(text);
    if (address === undefined || !isAssignable(address)) {
      return { ok: false, reason: 'invalid', message: `static address ${JSON.stringify(text)} of ${req.username} is not an assignable IPv4 address` };
    }
    if (address === this.layout.gateway) {
      return { ok: false, reason: 'conflict', message: `static address ${text} of ${req.username} is the gateway's own address` };
    }
    const holder = this.holders.get(address);
    if (holder) {
      return { ok: false, reason: 'conflict', message: `static address ${text} of ${req.username} is in use by session ${holder.sessionId}` };
    }
    return { ok: true, lease: this.take(address, this.indexOf(address), req) };
  }

  private take(address: number, index: number, req: AllocationRequest): Lease {
    const holder: Holder = { sessionId: req.sessionId, username: req.username, inPool: index >= 0 };
    this.holders.set(address, holder);
    if (index >= 0) {
      this.setBit(index);
      this.inPoolCount++;
    }
    const text = formatIpv4(address);
    let released = false;
    return {
      address: text,
      release: () => {
        if (released) return;
        released = true;
        // Only the lease that holds the address may free it.
        if (this.holders.get(address) !== holder) return;
        this.holders.delete(address);
        if (holder.inPool) {
          const i = this.indexOf(address);
          if (i >= 0) this.clearBit(i);
          this.inPoolCount--;
        }
      },
    };
  }

  /**
   * Replace the ranges (configuration reload). Live leases are kept (see the
   * file comment). A bad configuration changes nothing and returns every
   * problem.
   */
  reconfigure(config: Ipv4PoolConfig): { ok: true } | { ok: false; issues: ConfigIssue[] } {
    const layout = buildLayout(config);
    if (Array.isArray(layout)) return { ok: false, issues: layout };
    this.layout = layout;
    this.bits = Ipv4Pool.emptyBitmap(layout.size);
    this.hint = 0;
    this.inPoolCount = 0;
    for (const [address, holder] of this.holders) {
      const i = this.indexOf(address);
      holder.inPool = i >= 0;
      if (i >= 0) {
        this.setBit(i);
        this.inPoolCount++;
      }
    }
    return { ok: true };
  }

  /** Index of `address` in the pool's index space, or -1. */
  private indexOf(address: number): number {
    const { intervals, offsets } = this.layout;
    let lo = 0;
    let hi = intervals.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const iv = intervals[mid]!;
      if (address < iv.first) hi = mid - 1;
      else if (address > iv.last) lo = mid + 1;
      else return offsets[mid]! + (address - iv.first);
    }
    return -1;
  }

  private addressAt(index: number): number {
    const { intervals, offsets } = this.layout;
    let lo = 0;
    let hi = offsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (offsets[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return intervals[lo]!.first + (index - offsets[lo]!);
  }

  private lowestFree(): number {
    const bits = this.bits;
    for (let w = this.hint; w < bits.length; w++) {
      const word = bits[w]!;
      if (word === 0xffffffff) continue;
      this.hint = w;
      // Lowest clear bit: isolate with ~word & (word + 1).
      const lowest = ~word & (word + 1);
      return w * 32 + (31 - Math.clz32(lowest));
    }
    this.hint = bits.length;
    return -1;
  }

  private setBit(i: number): void {
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }

  private clearBit(i: number): void {
    const w = i >>> 5;
    this.bits[w]! &= ~(1 << (i & 31));
    if (w < this.hint) this.hint = w;
  }
}
