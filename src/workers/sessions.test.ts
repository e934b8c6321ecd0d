/**
 * The session registry across threads (over a MessageChannel here): a
 * worker's MirroringRegistry tells main of every add, change and removal;
 * main's RemoteSessions keeps them in the gateway's SessionRegistry, whose
 * listing merges the byte counters read from the worker's memory and names
 * the worker, whose per-user count sees them, and whose kill runs the
 * worker's own protocol teardown.
 */
import { describe, it, expect } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { systemClock } from '../util/clock.js';
import { silentLogger } from '../util/log.js';
import { SessionRegistry } from '../admin/gateway.js';
import type { ManagedSession, SessionInfo, SessionPhase } from '../admin/types.js';
import type { SessionCounters } from '../dataplane/sessions.js';
import { RpcPeer } from './rpc.js';
import { MirroringRegistry, RemoteSessions, serveTeardowns } from './sessions.js';
import { waitUntil } from '../../test/lib/wait.js';

class FakeSession implements ManagedSession {
  readonly protocol = 'pptp' as const;
  user: string | null = null;
  state: SessionPhase = 'establishing';
  inner: string | null = null;
  idx: number | undefined = 3;
  torn: string[] = [];
  private readonly watchers = new Set<() => void>();
  constructor(readonly id: string) {}
  info(): SessionInfo {
    return { id: this.id, protocol: 'pptp', user: this.user, peer: '198.18.1.2:5000', innerAddress: this.inner, state: this.state, since: '2026-11-22T00:00:00.000Z', bytesIn: 1, bytesOut: 2 };
  }
  username() {
    return this.user;
  }
  dataplaneIndex() {
    return this.idx;
  }
  watch(fn: () => void) {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }
  change(f: (s: this) => void) {
    f(this);
    for (const w of this.watchers) w();
  }
  teardown(reason: string): Promise<void> {
    this.torn.push(reason);
    return Promise.resolve();
  }
}

function setup() {
  const { port1, port2 } = new MessageChannel();
  const workerPeer = new RpcPeer(port1, { clock: systemClock, name: 'worker 1' });
  const mainPeer = new RpcPeer(port2, { clock: systemClock, name: 'main' });
  const local = new MirroringRegistry(workerPeer);
  serveTeardowns(workerPeer, local);
  const main = new SessionRegistry();
  const counters = new Map<number, SessionCounters>([[3, { upPackets: 5n, upBytes: 500n, downPackets: 7n, downBytes: 700n, drops: 0n }]]);
  let changes = 0;
  const remote = new RemoteSessions({ worker: 1, peer: mainPeer, registry: main, counters: (i) => counters.get(i), log: silentLogger, onChange: () => changes++ });
  /** session.update notes main received. */
  const updates: unknown[] = [];
  port2.on('message', (m: { rpc?: string; method?: string; params?: unknown }) => {
    if (m.rpc === 'note' && m.method === 'session.update') updates.push(m.params);
  });
  return { local, main, remote, counters, updates, changes: () => changes, close: () => (port1.close(), port2.close()) };
}

describe('MirroringRegistry (worker) -> RemoteSessions (main)', () => {
  it('mirrors add, changes and removal; main lists with counters from memory and the worker index', async () => {
    const { local, main, remote, updates, changes, close } = setup();
    const s = new FakeSession('a');
    const unregister = local.add(s);
    await waitUntil(() => main.size === 1, 2000, 'the add');
    expect(main.list()).toEqual([
      { id: 'a', protocol: 'pptp', user: null, peer: '198.18.1.2:5000', innerAddress: null, state: 'establishing', since: '2026-11-22T00:00:00.000Z', bytesIn: 500, bytesOut: 700, worker: 1 },
    ]);
    expect(main.countOfUser('alice')).toBe(0);
    s.change((x) => {
      x.user = 'alice';
      x.state = 'network';
    });
    s.change((x) => {
      x.inner = '198.18.128.9';
      x.state = 'up';
    });
    await waitUntil(() => main.list()[0]?.state === 'up', 2000, 'the changes');
    // The changes of one turn travel in one note; a notification without a change sends nothing.
    expect(updates).toHaveLength(1);
    s.change(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    expect(updates).toHaveLength(1);
    expect(changes()).toBe(1);
    expect(main.list()[0]).toMatchObject({ user: 'alice', innerAddress: '198.18.128.9', state: 'up', worker: 1 });
    expect(main.countOfUser('alice')).toBe(1);
    expect(main.counts()).toEqual([{ protocol: 'pptp', state: 'up', count: 1 }]);
    // Without a data-plane entry, no counters.
    s.change((x) => (x.idx = undefined));
    await waitUntil(() => main.list()[0]?.bytesIn === 0, 2000, 'the entry to go');
    unregister();
    unregister();
    await waitUntil(() => main.size === 0, 2000, 'the removal');
    expect(changes()).toBe(2);
    expect(main.countOfUser('alice')).toBe(0);
    expect(remote.size).toBe(0);
    // Changes after removal are not sent.
    s.change((x) => (x.state = 'closing'));
    close();
  });

  it('kill from main runs the worker session teardown; unknown ids are false; a gone worker leaves nothing', async () => {
    const { local, main, remote, close } = setup();
    const a = new FakeSession('a');
    const b = new FakeSession('b');
    local.add(a);
    local.add(b);
    await waitUntil(() => main.size === 2, 2000, 'the adds');
    expect(await main.kill('a', 'admin kill')).toBe(true);
    expect(a.torn).toEqual(['admin kill']);
    expect(b.torn).toEqual([]);
    expect(await main.kill('zz', 'x')).toBe(false);
    expect(remote.dropAll()).toBe(2);
    expect(main.size).toBe(0);
    close();
  });
});
