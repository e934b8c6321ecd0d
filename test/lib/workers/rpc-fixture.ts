/**
 * A worker thread for the RPC and pool tests (src/workers/*.test.ts): an
 * RpcPeer on its parentPort with the sync buffer from workerData, handlers
 * the test drives, and RemotePool allocations made on request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RpcPeer } from '../../../src/workers/rpc.js';
import { RemotePool } from '../../../src/workers/pools.js';
import { systemClock } from '../../../src/util/clock.js';
import { VpnError, type ErrorCode } from '../../../src/util/errors.js';
import type { AllocationRequest, Lease } from '../../../src/pool/types.js';

const peer = new RpcPeer(parentPort!, { clock: systemClock, name: 'fixture', sync: (workerData as { sync: SharedArrayBuffer }).sync });
const leases = new Map<string, Lease>();
const unbound: string[] = [];

peer.handle('echo', (p: unknown) => p);
peer.handle('fail', (p: { code: ErrorCode }) => {
  throw new VpnError(p.code, 'asked to fail');
});
peer.handle('throw', () => {
  throw new TypeError('not a VpnError');
});
peer.handle('never', () => new Promise(() => undefined));
peer.handle('exit', () => process.exit(3));
peer.handle('callSync', (p: { method: string; params: unknown; timeoutMs: number }) => {
  try {
    return { ok: true, value: peer.callSync(p.method, () => p.params, p.timeoutMs) };
  } catch (e) {
    return { ok: false, code: (e as VpnError).code, message: (e as Error).message };
  }
});
peer.handle('allocate', (p: { pool: string; req: AllocationRequest; timeoutMs?: number }) => {
  const r = new RemotePool(peer, p.pool, { ...(p.timeoutMs ? { timeoutMs: p.timeoutMs } : {}), beforeRelease: (a) => unbound.push(a) }).allocate(p.req);
  if (!r.ok) return r;
  leases.set(r.lease.address, r.lease);
  return { ok: true, address: r.lease.address };
});
peer.handle('release', (p: { address: string }) => {
  const l = leases.get(p.address);
  l?.release();
  l?.release(); // idempotent
  leases.delete(p.address);
  return unbound;
});
peer.notify('up', {});
