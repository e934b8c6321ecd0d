/**
 * Address pools across threads. The pools live in the main thread (one
 * source of truth for every worker); a worker's IPCP asks through
 * {@link RemotePool}, an AddressAllocator whose allocate() is a synchronous
 * call (RpcPeer.callSync: the worker blocks until main answered, bounded by
 * POOL_CALL_TIMEOUT_MS). Releases are one-way notes.
 *
 *   worker: allocate(req) ──sync 'pool.allocate' {pool, req, seq}──► main: pool.allocate()
 *           lease {address} ◄── {ok, address, lease: seq} ── (lease kept under seq)
 *   worker: lease.release() ──note 'pool.release' {lease}──► main: release (idempotent)
 *
 * An allocation whose answer came too late is released by the worker at
 * once (it names the call by its seq), so main never holds a lease nobody
 * has. When a worker is gone, main releases everything it held
 * ({@link PoolHost.releaseAll}).
 */
import type { AddressAllocator, AllocationRequest, AllocationResult, Lease } from '../pool/types.js';
import type { RpcPeer } from './rpc.js';

// Our choices.
/** How long a worker waits for main to answer an allocation. */
export const POOL_CALL_TIMEOUT_MS = 2_000;

interface AllocateParams {
  pool: string;
  req: AllocationRequest;
  seq: number;
}

type WireAllocation = { ok: true; address: string; lease: number } | Exclude<AllocationResult, { ok: true }>;

/** Worker side: one pool of the main thread. */
export class RemotePool implements AddressAllocator {
  constructor(
    private readonly peer: RpcPeer,
    readonly name: string,
    private readonly opts: {
      timeoutMs?: number;
      /** Called before the release is sent (the address stops being routed here while it is still ours). */
      beforeRelease?(address: string): void;
    } = {},
  ) {}

  allocate(req: AllocationRequest): AllocationResult {
    let seq = 0;
    let r: WireAllocation;
    const timeoutMs = this.opts.timeoutMs ?? POOL_CALL_TIMEOUT_MS;
    try {
      r = this.peer.callSync<WireAllocation>(
        'pool.allocate',
        (s) => {
          seq = s;
          return { pool: this.name, req, seq: s } satisfies AllocateParams;
        },
        timeoutMs,
      );
    } catch (e) {
      // An answer may still come: give back whatever it allocated.
      if (seq) this.peer.notify('pool.release', { lease: seq });
      return { ok: false, reason: 'exhausted', message: `address pool ${this.name}: no address from the main thread: ${(e as Error).message}` };
    }
    if (!r.ok) return r;
    const { address, lease } = r;
    let released = false;
    const out: Lease = {
      address,
      release: () => {
        if (released) return;
        released = true;
        this.opts.beforeRelease?.(address);
        this.peer.notify('pool.release', { lease });
      },
    };
    return { ok: true, lease: out };
  }
}

/** Main side: answers one worker's pool calls from the main thread's pools. */
export class PoolHost {
  private readonly leases = new Map<number, Lease>();

  constructor(
    peer: RpcPeer,
    private readonly pools: (name: string) => AddressAllocator | undefined,
  ) {
    peer.handleSync<AllocateParams>('pool.allocate', (p) => this.allocate(p));
    peer.handle<{ lease: number }>('pool.release', (p) => this.release(p.lease));
  }

  /** Leases the worker holds. */
  get held(): number {
    return this.leases.size;
  }

  private allocate(p: AllocateParams): WireAllocation {
    const pool = this.pools(p.pool);
    if (!pool) return { ok: false, reason: 'invalid', message: `no address pool named ${p.pool}` };
    const r = pool.allocate(p.req);
    if (!r.ok) return r;
    // A seq is reused only after ~2^31 calls; a lease still held under it would be a leak, not a conflict.
    this.leases.get(p.seq)?.release();
    this.leases.set(p.seq, r.lease);
    return { ok: true, address: r.lease.address, lease: p.seq };
  }

  private release(lease: number): void {
    const l = this.leases.get(lease);
    if (!l) return;
    this.leases.delete(lease);
    l.release();
  }

  /** The worker is gone: every lease it held goes back. */
  releaseAll(): number {
    const n = this.leases.size;
    for (const l of this.leases.values()) l.release();
    this.leases.clear();
    return n;
  }
}
