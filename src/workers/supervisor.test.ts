/**
 * WorkerSet, the main thread's side of the workers, with stand-in worker
 * threads (test/lib/workers/fake-worker.ts: the worker protocol without TUN
 * devices or listeners): every worker ready with its memory, a protocol
 * started in worker 0 before the others and stopped where it started when
 * one fails, a worker that fails to start, and a worker that exits while
 * running (its sessions forgotten, its leases released, reported).
 */
import { describe, it, expect } from 'vitest';
import { parseConfig } from '../config/load.js';
import { silentLogger } from '../util/log.js';
import { systemClock } from '../util/clock.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { SessionRegistry } from '../admin/gateway.js';
import { Ipv4Pool } from '../pool/ipv4-pool.js';
import type { Verifier } from '../ppp/auth/types.js';
import { WorkerSet, type TunQueues } from './supervisor.js';
import { startTsWorker } from '../../test/lib/ts-worker.js';
import { waitUntil } from '../../test/lib/wait.js';

const FIXTURE = new URL('../../test/lib/workers/fake-worker.ts', import.meta.url);
const refuse = async () => ({ ok: false as const, reason: 'bad-credentials' as const, message: 'no' });
const verifier: Verifier = { pap: refuse, chapMd5: refuse, msChapV2: refuse };

function setup(mode: Record<number, string> = {}) {
  const config = parseConfig('dataplane: {workers: 3, maxSessionsPerWorker: 4}\n');
  const pool = Ipv4Pool.create({ name: 'default', ranges: ['198.18.128.10-198.18.128.20'], gateway: '198.18.128.1' });
  const registry = new SessionRegistry();
  const progress: string[] = [];
  const exits: string[] = [];
  let tunClosed = 0;
  const tun: TunQueues = { name: 'fake', fds: [-1, -1, -1], mapFd: -1, close: () => void tunClosed++ };
  const start = () =>
    WorkerSet.start(
      {
        config,
        log: silentLogger,
        clock: systemClock,
        metrics: new GatewayMetrics(undefined, { defaultMetrics: false }),
        registry,
        pools: (n) => (n === 'default' ? pool : undefined),
        verifier,
        progress: (m) => progress.push(m),
        onWorkerExit: (i, reason) => exits.push(`${i}: ${reason}`),
        spawn: (_script, opts) => startTsWorker(FIXTURE, { ...opts, workerData: { ...opts.workerData, mode: mode[opts.workerData.index] } }),
      },
      tun,
    );
  return { start, pool, registry, progress, exits, tunClosed: () => tunClosed };
}

describe('WorkerSet', () => {
  it('starts every worker; a protocol starts in worker 0 first; a failed start stops it where it started', async () => {
    const s = setup();
    const ws = await s.start();
    try {
      expect(ws.workers.map((w) => w.index)).toEqual([0, 1, 2]);
      expect(ws.views.map((v) => v.layout.maxSessions)).toEqual([4, 4, 4]);
      await ws.server('sstp').start(undefined as never);
      const at = (what: string) => Number(/ at (\d+)$/.exec(s.progress.find((p) => p.startsWith(what))!)![1]);
      expect(at('start sstp in 1')).toBeGreaterThanOrEqual(at('started sstp in 0'));
      expect(at('start sstp in 2')).toBeGreaterThanOrEqual(at('started sstp in 0'));
      // pptp fails in worker 1: stopped in 0 and 2 (where it started), the error is worker 1's.
      await expect(ws.server('pptp').start(undefined as never)).rejects.toMatchObject({ code: 'ERR_ADDRESS_IN_USE', message: 'pptp: port taken' });
      await waitUntil(() => s.progress.includes('stop pptp in 0') && s.progress.includes('stop pptp in 2'), 2000, 'the stops');
      expect(s.progress).not.toContain('stop pptp in 1');
    } finally {
      await ws.close();
    }
    expect(s.tunClosed()).toBe(1);
    expect(s.exits).toEqual([]);
  }, 30_000);

  it('a worker that fails to start fails the set (typed error), and everything is closed', async () => {
    const s = setup({ 2: 'fail' });
    await expect(s.start()).rejects.toMatchObject({ code: 'ERR_LAYOUT', message: 'worker 2 cannot lay out its memory' });
    expect(s.tunClosed()).toBe(1);
  }, 30_000);

  it('a worker that exits while running: reported, its sessions forgotten, its leases released; kill from main reaches live workers', async () => {
    const s = setup();
    const ws = await s.start();
    try {
      const [w0, w1] = ws.workers;
      expect(await w0!.peer.call('session', {}, 5000)).toBe('198.18.128.10');
      expect(await w1!.peer.call('session', {}, 5000)).toBe('198.18.128.11');
      await waitUntil(() => s.registry.size === 2, 2000, 'the mirrored sessions');
      expect(s.registry.list().map((i) => [i.id, i.worker, i.innerAddress])).toEqual([
        ['s0', 0, '198.18.128.10'],
        ['s1', 1, '198.18.128.11'],
      ]);
      expect(s.pool.used).toBe(2);
      await w1!.peer.call('exit', {}, 5000).catch(() => undefined);
      await waitUntil(() => s.exits.length === 1, 5000, 'the exit to be reported');
      expect(s.exits).toEqual(['1: worker 1 exited unexpectedly (code 2)']);
      expect(s.registry.list().map((i) => i.id)).toEqual(['s0']);
      expect(s.pool.used).toBe(1);
      expect(await s.registry.kill('s0', 'admin')).toBe(true);
    } finally {
      await ws.close();
    }
    expect(s.exits).toHaveLength(1);
  }, 30_000);
});
