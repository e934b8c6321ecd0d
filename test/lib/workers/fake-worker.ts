/**
 * A stand-in data-plane worker for src/workers/supervisor.test.ts: it
 * speaks the worker protocol (ready with a real DataPlane's memory and
 * layout, start / stop / close, a session and a lease through main) without
 * TUN devices or listeners; workerData.mode 'fail' reports a failed start.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RpcPeer } from '../../../src/workers/rpc.js';
import { RemotePool } from '../../../src/workers/pools.js';
import { MirroringRegistry, serveTeardowns } from '../../../src/workers/sessions.js';
import { DataPlane } from '../../../src/dataplane/engine.js';
import { systemClock } from '../../../src/util/clock.js';
import { VpnError } from '../../../src/util/errors.js';
import type { WorkerInit } from '../../../src/workers/runtime.js';

const init = workerData as WorkerInit & { mode?: string };
const peer = new RpcPeer(parentPort!, { clock: systemClock, name: `fake worker ${init.index}`, sync: init.sync });
if (init.mode === 'fail') {
  peer.notify('failed', { code: 'ERR_LAYOUT', message: `worker ${init.index} cannot lay out its memory` });
} else {
  const dp = new DataPlane({ maxSessions: 4 });
  const registry = new MirroringRegistry(peer);
  serveTeardowns(peer, registry);
  peer.handle('start', async (p: { protocol: string }) => {
    peer.notify('progress', `start ${p.protocol} in ${init.index} at ${Date.now()}`);
    // Worker 0 takes its time: the others must not start before it is done.
    if (init.index === 0) await new Promise((r) => setTimeout(r, 200));
    if (p.protocol === 'pptp' && init.index === 1) throw new VpnError('ERR_ADDRESS_IN_USE', 'pptp: port taken');
    peer.notify('progress', `started ${p.protocol} in ${init.index} at ${Date.now()}`);
  });
  peer.handle('stop', (p: { protocol: string }) => peer.notify('progress', `stop ${p.protocol} in ${init.index}`));
  peer.handle('close', () => dp.close());
  peer.handle('session', () => {
    const r = new RemotePool(peer, 'default').allocate({ sessionId: `s${init.index}`, username: 'alice' });
    let torn = false;
    registry.add({
      id: `s${init.index}`,
      protocol: 'sstp',
      info: () => ({ id: `s${init.index}`, protocol: 'sstp', user: 'alice', peer: '198.18.0.2:1', innerAddress: r.ok ? r.lease.address : null, state: torn ? 'closing' : 'up', since: '', bytesIn: 0, bytesOut: 0 }),
      teardown: () => {
        torn = true;
        return Promise.resolve();
      },
    });
    return r.ok ? r.lease.address : r.message;
  });
  peer.handle('exit', () => process.exit(2));
  peer.notify('ready', { memory: dp.memory, layout: dp.layout });
}
