/**
 * The main <-> worker message layer: requests answered or failed with
 * typed errors, timeouts, notes, a peer that goes away (closed channel, a
 * worker thread that exits), and synchronous calls from a real worker
 * thread blocked on Atomics.wait until the main thread answers.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { MessageChannel, type Worker } from 'node:worker_threads';
import { VirtualClock, systemClock } from '../util/clock.js';
import { VpnError } from '../util/errors.js';
import { RpcPeer, createSyncBuffer } from './rpc.js';
import { startTsWorker } from '../../test/lib/ts-worker.js';

const FIXTURE = new URL('../../test/lib/workers/rpc-fixture.ts', import.meta.url);

function pair(clock = systemClock) {
  const { port1, port2 } = new MessageChannel();
  const a = new RpcPeer(port1, { clock, name: 'a' });
  const b = new RpcPeer(port2, { clock, name: 'b' });
  return { a, b, close: () => (port1.close(), port2.close()) };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

describe('RpcPeer over a MessageChannel', () => {
  it('answers requests (sync and async handlers), carries notes, fails with the thrown code', async () => {
    const { a, b, close } = pair();
    b.handle<{ x: number }>('double', ({ x }) => x * 2);
    b.handle<{ x: number }>('later', async ({ x }) => {
      await tick();
      return { x, bytes: new Uint8Array([1, 2, 3]) };
    });
    b.handle('refuse', () => {
      throw new VpnError('ERR_POOL_EXHAUSTED', 'no address left');
    });
    b.handle('bug', () => {
      throw new TypeError('oops');
    });
    const notes: unknown[] = [];
    b.handle('note', (p) => notes.push(p));
    expect(await a.call('double', { x: 21 }, 1000)).toBe(42);
    expect(await a.call('later', { x: 1 }, 1000)).toEqual({ x: 1, bytes: new Uint8Array([1, 2, 3]) });
    const refused = await a.call('refuse', {}, 1000).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(VpnError);
    expect(refused).toMatchObject({ code: 'ERR_POOL_EXHAUSTED', message: 'no address left' });
    await expect(a.call('bug', {}, 1000)).rejects.toMatchObject({ code: 'ERR_INTERNAL', message: 'oops' });
    await expect(a.call('nobody', {}, 1000)).rejects.toMatchObject({ code: 'ERR_USAGE' });
    a.notify('note', { n: 1 });
    a.notify('note', { n: 2 });
    await tick();
    expect(notes).toEqual([{ n: 1 }, { n: 2 }]);
    expect(a.pendingCalls).toBe(0);
    close();
  });

  it('a call not answered in time rejects with ERR_TIMEOUT; its late answer is ignored', async () => {
    const clock = new VirtualClock();
    const { a, b, close } = pair(clock);
    let answer!: (v: number) => void;
    b.handle('slow', () => new Promise<number>((r) => (answer = r)));
    const p = a.call('slow', {}, 500);
    await tick();
    clock.advance(499);
    expect(a.pendingCalls).toBe(1);
    clock.advance(1);
    await expect(p).rejects.toMatchObject({ code: 'ERR_TIMEOUT', message: 'a: no answer to slow within 500 ms' });
    answer(1);
    await tick();
    expect(a.pendingCalls).toBe(0);
    close();
  });

  it('close(): pending and later calls reject with ERR_WORKER; notes are dropped', async () => {
    const { a, b, close } = pair();
    b.handle('never', () => new Promise(() => undefined));
    const p = a.call('never', {}, 10_000);
    await tick();
    a.close('worker 3 exited');
    await expect(p).rejects.toMatchObject({ code: 'ERR_WORKER', message: 'a: never not answered: worker 3 exited' });
    await expect(a.call('never', {}, 100)).rejects.toMatchObject({ code: 'ERR_WORKER' });
    expect(() => a.notify('x', {})).not.toThrow();
    expect(() => a.callSync('x', () => ({}), 10)).toThrow(/no sync buffer/);
    close();
  });
});

describe('RpcPeer with a real worker thread', () => {
  let worker: Worker | undefined;
  afterEach(async () => {
    await worker?.terminate();
    worker = undefined;
  });

  async function start() {
    const sync = createSyncBuffer();
    const w = startTsWorker(FIXTURE, { workerData: { sync } });
    worker = w;
    const peer = new RpcPeer(w, { clock: systemClock, name: 'main', sync });
    const up = new Promise<void>((r) => peer.handle('up', () => r()));
    w.once('exit', () => peer.close('worker exited'));
    await up;
    return { w, peer };
  }

  it('requests both ways, typed errors', async () => {
    const { peer } = await start();
    expect(await peer.call('echo', { a: [1, 'b'] }, 5000)).toEqual({ a: [1, 'b'] });
    await expect(peer.call('fail', { code: 'ERR_LIMIT' }, 5000)).rejects.toMatchObject({ code: 'ERR_LIMIT', message: 'asked to fail' });
    await expect(peer.call('throw', {}, 5000)).rejects.toMatchObject({ code: 'ERR_INTERNAL', message: 'not a VpnError' });
  });

  it('synchronous calls: the worker blocks until main answered; errors and timeouts', async () => {
    const { peer } = await start();
    let asked = 0;
    peer.handleSync<{ n: number }>('inc', ({ n }) => {
      asked++;
      return n + 1;
    });
    peer.handleSync('refuse', () => {
      throw new VpnError('ERR_POOL_CONFLICT', 'taken');
    });
    peer.handleSync('big', () => 'x'.repeat(20_000));
    peer.handleSync('stall', () => {
      // Main busy past the worker's bound (main never blocks on a worker; this only simulates a slow main).
      const until = performance.now() + 300;
      while (performance.now() < until);
      return 'late';
    });
    for (let n = 0; n < 20; n++) expect(await peer.call('callSync', { method: 'inc', params: { n }, timeoutMs: 2000 }, 5000)).toEqual({ ok: true, value: n + 1 });
    expect(asked).toBe(20);
    expect(await peer.call('callSync', { method: 'refuse', params: {}, timeoutMs: 2000 }, 5000)).toEqual({ ok: false, code: 'ERR_POOL_CONFLICT', message: 'taken' });
    expect(await peer.call('callSync', { method: 'big', params: {}, timeoutMs: 2000 }, 5000)).toMatchObject({ ok: false, code: 'ERR_INTERNAL', message: expect.stringMatching(/too large/) });
    expect(await peer.call('callSync', { method: 'nobody', params: {}, timeoutMs: 2000 }, 5000)).toMatchObject({ ok: false, code: 'ERR_USAGE' });
    expect(await peer.call('callSync', { method: 'stall', params: {}, timeoutMs: 100 }, 5000)).toEqual({
      ok: false,
      code: 'ERR_TIMEOUT',
      message: 'fixture: no answer to stall within 100 ms',
    });
    // The late answer does not confuse the next call.
    expect(await peer.call('callSync', { method: 'inc', params: { n: 7 }, timeoutMs: 2000 }, 5000)).toEqual({ ok: true, value: 8 });
  });

  it('a worker that dies while main waits: the call rejects with ERR_WORKER', async () => {
    const { w, peer } = await start();
    const exited = new Promise<number>((r) => w.once('exit', r));
    const p = peer.call('exit', {}, 10_000);
    await expect(p).rejects.toMatchObject({ code: 'ERR_WORKER', message: 'main: exit not answered: worker exited' });
    expect(await exited).toBe(3);
    await expect(peer.call('echo', {}, 1000)).rejects.toMatchObject({ code: 'ERR_WORKER' });
  });
});
