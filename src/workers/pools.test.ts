/**
 * Address pools across threads: a real worker thread allocates from the
 * main thread's Ipv4Pool synchronously (RemotePool, blocked on
 * Atomics.wait), releases by note (idempotent, the address unsteered
 * first), meets exhaustion and static-address conflicts like a local
 * caller, and never leaves a lease behind when main answered too late;
 * a worker that is gone gets all its leases released.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { systemClock } from '../util/clock.js';
import { Ipv4Pool } from '../pool/ipv4-pool.js';
import { RpcPeer, createSyncBuffer } from './rpc.js';
import { PoolHost } from './pools.js';
import { startTsWorker } from '../../test/lib/ts-worker.js';
import { waitUntil as waitFor } from '../../test/lib/wait.js';

const FIXTURE = new URL('../../test/lib/workers/rpc-fixture.ts', import.meta.url);

describe('RemotePool (worker) and PoolHost (main)', () => {
  let worker: Worker | undefined;
  afterEach(async () => {
    await worker?.terminate();
    worker = undefined;
  });

  async function start(pool: Ipv4Pool, opts: { slowMs?: number } = {}) {
    const sync = createSyncBuffer();
    const w = startTsWorker(FIXTURE, { workerData: { sync } });
    worker = w;
    const peer = new RpcPeer(w, { clock: systemClock, name: 'main', sync });
    const up = new Promise<void>((r) => peer.handle('up', () => r()));
    const slow = opts.slowMs
      ? {
          allocate: (req: Parameters<Ipv4Pool['allocate']>[0]) => {
            const until = performance.now() + opts.slowMs!;
            while (performance.now() < until);
            return pool.allocate(req);
          },
        }
      : pool;
    const host = new PoolHost(peer, (name) => (name === 'default' ? slow : undefined));
    await up;
    return { peer, host };
  }

  const req = (n: number, extra: Record<string, unknown> = {}) => ({ pool: 'default', req: { sessionId: `s${n}`, username: `u${n}`, ...extra } });

  it('allocates the lowest free address from the worker, releases once (unsteered first), then exhaustion', async () => {
    const pool = Ipv4Pool.create({ name: 'default', ranges: ['198.18.128.10-198.18.128.12'], gateway: '198.18.128.1' });
    const { peer, host } = await start(pool);
    expect(await peer.call('allocate', req(1), 5000)).toEqual({ ok: true, address: '198.18.128.10' });
    expect(await peer.call('allocate', req(2), 5000)).toEqual({ ok: true, address: '198.18.128.11' });
    expect(pool.used).toBe(2);
    expect(host.held).toBe(2);
    expect(pool.leases().map((l) => [l.address, l.sessionId, l.username])).toEqual([
      ['198.18.128.10', 's1', 'u1'],
      ['198.18.128.11', 's2', 'u2'],
    ]);
    expect(await peer.call('release', { address: '198.18.128.10' }, 5000)).toEqual(['198.18.128.10']);
    await waitFor(() => pool.used === 1, 2000, 'the release to reach main');
    expect(host.held).toBe(1);
    // Lowest free again, then the pool runs out.
    expect(await peer.call('allocate', req(3), 5000)).toEqual({ ok: true, address: '198.18.128.10' });
    expect(await peer.call('allocate', req(4), 5000)).toEqual({ ok: true, address: '198.18.128.12' });
    expect(await peer.call('allocate', req(5), 5000)).toEqual({ ok: false, reason: 'exhausted', message: 'address pool default is exhausted (3 addresses in use)' });
    expect(await peer.call('allocate', { ...req(6), pool: 'other' }, 5000)).toEqual({ ok: false, reason: 'invalid', message: 'no address pool named other' });
    // The worker is gone: main releases what it held.
    expect(host.releaseAll()).toBe(3);
    expect(pool.used).toBe(0);
  });

  it('static addresses: granted when free (also outside the ranges), conflict when held', async () => {
    const pool = Ipv4Pool.create({ name: 'default', ranges: ['198.18.128.10-198.18.128.20'], gateway: '198.18.128.1' });
    const { peer } = await start(pool);
    expect(await peer.call('allocate', req(1, { staticIpv4: '198.18.128.15' }), 5000)).toEqual({ ok: true, address: '198.18.128.15' });
    expect(await peer.call('allocate', req(2, { staticIpv4: '198.18.128.50' }), 5000)).toEqual({ ok: true, address: '198.18.128.50' });
    expect(await peer.call('allocate', req(3, { staticIpv4: '198.18.128.15' }), 5000)).toEqual({
      ok: false,
      reason: 'conflict',
      message: 'static address 198.18.128.15 of u3 is in use by session s1',
    });
    expect(await peer.call('allocate', req(4, { staticIpv4: '198.18.128.1' }), 5000)).toMatchObject({ ok: false, reason: 'conflict' });
    expect(pool.outside).toBe(1);
    expect(pool.used).toBe(1);
  });

  it('an answer later than the bound: the worker reports the failure and the late lease goes back', async () => {
    const pool = Ipv4Pool.create({ name: 'default', ranges: ['198.18.128.10-198.18.128.12'], gateway: '198.18.128.1' });
    const { peer, host } = await start(pool, { slowMs: 300 });
    const r = (await peer.call('allocate', { ...req(1), timeoutMs: 100 }, 5000)) as { ok: boolean; reason: string; message: string };
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/^address pool default: no address from the main thread: .*no answer to pool\.allocate within 100 ms$/);
    await waitFor(() => pool.used === 0 && host.held === 0, 2000, 'the late lease to be released');
  });
});
