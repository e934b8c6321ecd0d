import { describe, it, expect } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { createLogger } from '../util/log.js';
import { parseConfig } from '../config/load.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { Gateway, GatewayState, findProtocolServer, isMissingModule, registerProtocolServer, type ProtocolServer, type ServerContext } from './gateway.js';
import type { ManagedSession, SessionInfo, SessionPhase } from './types.js';
import type { Protocol } from '../config/schema.js';

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { log, lines };
}

class FakeSession implements ManagedSession {
  tornDown: string[] = [];
  constructor(
    readonly id: string,
    readonly protocol: Protocol,
    public user: string | null,
    public state: SessionPhase,
    private readonly onGone: () => void = () => {},
  ) {}
  info(): SessionInfo {
    return { id: this.id, protocol: this.protocol, user: this.user, peer: '198.18.0.2:1', innerAddress: null, state: this.state, since: 'x', bytesIn: 0, bytesOut: 0 };
  }
  async teardown(reason: string) {
    this.tornDown.push(reason);
    this.onGone();
  }
}

class FakeServer implements ProtocolServer {
  events: string[] = [];
  ctx: ServerContext | undefined;
  constructor(
    readonly name: Protocol,
    private readonly opts: { failStart?: boolean; hangOnStop?: boolean } = {},
  ) {}
  async start(ctx: ServerContext) {
    this.ctx = ctx;
    if (this.opts.failStart) throw new Error(`${this.name} cannot bind`);
    this.events.push('start');
  }
  stop(graceful: boolean, deadline: number) {
    this.events.push(`stop graceful=${graceful} deadline=${deadline}`);
    return this.opts.hangOnStop ? new Promise<void>(() => {}) : Promise.resolve();
  }
  reload() {
    this.events.push('reload');
  }
}

function gateway(clock = new VirtualClock()) {
  const { log, lines } = logSink();
  const metrics = new GatewayMetrics(undefined, { defaultMetrics: false });
  const config = parseConfig('dataplane: {prefixLength: 22}\npools: {default: {ranges: ["198.18.128.0/24"]}}');
  return { gw: new Gateway({ config, log, clock, metrics }), lines, clock, metrics };
}

describe('SessionRegistry through the gateway', () => {
  it('lists, counts, kills by id and by user', async () => {
    const { gw, metrics } = gateway();
    const reg = gw.sessions;
    const unregister: (() => void)[] = [];
    const mk = (id: string, p: Protocol, user: string | null, st: SessionPhase) => {
      const s: FakeSession = new FakeSession(id, p, user, st, () => unregister[Number(id.slice(1))]!());
      unregister[Number(id.slice(1))] = reg.add(s);
      return s;
    };
    const s0 = mk('s0', 'sstp', 'alice', 'up');
    mk('s1', 'sstp', 'alice', 'up');
    mk('s2', 'pptp', null, 'authenticating');
    expect(() => reg.add(new FakeSession('s0', 'sstp', null, 'up'))).toThrow(/already registered/);
    expect(gw.control.sessions().map((s) => s.id)).toEqual(['s0', 's1', 's2']);
    const text = await metrics.text();
    expect(text).toContain('vpngw_sessions{protocol="sstp",state="up"} 2');
    expect(text).toContain('vpngw_sessions{protocol="pptp",state="authenticating"} 1');
    expect(text).toContain('vpngw_pool_addresses{pool="default"} 253');
    expect(text).toContain('vpngw_pool_addresses_used{pool="default"} 0');

    expect(await gw.control.kill('s0', 'admin')).toBe(true);
    expect(s0.tornDown).toEqual(['admin']);
    expect(await gw.control.kill('s0', 'admin')).toBe(false);
    expect(await gw.control.killUser('alice', 'policy')).toBe(1);
    expect(await gw.control.killUser('nobody', 'policy')).toBe(0);
    expect(reg.list().map((s) => s.id)).toEqual(['s2']);
    // Unregistering twice, or a stale handle, is harmless.
    unregister[0]!();
    expect(reg.size).toBe(1);
  });

  it('counts sessions per user from username() without building listings (info() for sessions without it), learning each user once', () => {
    const { gw } = gateway();
    const reg = gw.sessions;
    let infos = 0;
    let asked = 0;
    const users = new Map<string, string | null>();
    const lean = (id: string): ManagedSession => ({
      id,
      protocol: 'sstp',
      info: () => {
        infos++;
        return new FakeSession(id, 'sstp', users.get(id) ?? null, 'up').info();
      },
      username: () => {
        asked++;
        return users.get(id) ?? null;
      },
      teardown: async () => {},
    });
    const gone = new Map<string, () => void>();
    for (let i = 0; i < 300; i++) {
      users.set(`a${i}`, i % 3 === 0 ? 'alice' : i % 3 === 1 ? 'bob' : null);
      gone.set(`a${i}`, reg.add(lean(`a${i}`)));
    }
    reg.add(new FakeSession('f0', 'pptp', 'alice', 'up'));
    const f1 = new FakeSession('f1', 'pptp', null, 'authenticating');
    reg.add(f1);
    expect(reg.countOfUser('alice')).toBe(101);
    expect(reg.countOfUser('bob')).toBe(100);
    expect(reg.countOfUser('carol')).toBe(0);
    expect(reg.ofUser('alice').map((s) => s.id)).toEqual([...Array.from({ length: 100 }, (_, i) => `a${i * 3}`), 'f0']);
    expect(infos).toBe(0);
    // Known users are not asked again: a count costs the sessions still authenticating (100 lean + f1).
    asked = 0;
    expect(reg.countOfUser('alice')).toBe(101);
    expect(asked).toBe(100);
    // Sessions authenticate later; sessions go.
    users.set('a2', 'carol');
    f1.user = 'carol';
    expect(reg.countOfUser('carol')).toBe(2);
    gone.get('a0')!();
    gone.get('a0')!();
    gone.get('a1')!();
    gone.get('a2')!();
    gone.get('a5')!();
    expect(reg.countOfUser('alice')).toBe(100);
    expect(reg.countOfUser('bob')).toBe(99);
    expect(reg.countOfUser('carol')).toBe(1);
    expect(reg.ofUser('carol')).toEqual([f1]);
    expect(reg.size).toBe(298);
  });

  it('hands protocol servers a pool by name', () => {
    const { gw } = gateway();
    const pool = gw.ctx.pool('default')!;
    const r = pool.allocate({ sessionId: 'a', username: 'u' });
    expect(r.ok && r.lease.address).toBe('198.18.128.2');
    expect(gw.ctx.pool('nope')).toBeUndefined();
  });
});

describe('Gateway life', () => {
  it('starting -> running -> stopping -> stopped, logging each transition', async () => {
    const { gw, lines, clock } = gateway();
    const sstp = new FakeServer('sstp');
    expect(gw.control.ready()).toBe(false);
    await gw.start([sstp]);
    expect(gw.phase).toBe(GatewayState.RUNNING);
    expect(gw.control.ready()).toBe(true);
    expect(sstp.ctx?.config().sstp.port).toBe(443);
    clock.advance(1000);
    await gw.shutdown('SIGTERM', 5000);
    expect(sstp.events).toEqual(['start', 'stop graceful=true deadline=6000']);
    expect(gw.phase).toBe(GatewayState.STOPPED);
    expect(gw.control.ready()).toBe(false);
    const msgs = lines.filter((l) => l.machine === 'gateway').map((l) => l.msg);
    expect(msgs).toEqual(['gateway: starting -> running (started sstp)', 'gateway: running -> stopping (SIGTERM)', 'gateway: stopping -> stopped (SIGTERM)']);
  });

  it('a server that fails to start stops the ones already started', async () => {
    const { gw } = gateway();
    const a = new FakeServer('sstp');
    const b = new FakeServer('pptp', { failStart: true });
    await expect(gw.start([a, b])).rejects.toThrow('pptp cannot bind');
    expect(a.events).toEqual(['start', expect.stringMatching(/^stop graceful=false/)]);
    expect(gw.phase).toBe(GatewayState.STOPPED);
  });

  it('shutdown is bounded: a server that never finishes stopping is abandoned at the deadline', async () => {
    const clock = new VirtualClock();
    const { gw } = gateway(clock);
    const s = new FakeServer('sstp', { hangOnStop: true });
    await gw.start([s]);
    let done = false;
    const p = gw.shutdown('SIGINT', 3000).then(() => (done = true));
    await Promise.resolve();
    clock.advance(2999);
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    clock.advance(1);
    await p;
    expect(done).toBe(true);
  });

  it('sessions left after the servers stopped are torn down', async () => {
    const { gw } = gateway();
    await gw.start([new FakeServer('sstp')]);
    let un = () => {};
    const s = new FakeSession('x', 'sstp', 'u', 'up', () => un());
    un = gw.sessions.add(s);
    await gw.shutdown('SIGTERM', 1000);
    expect(s.tornDown).toEqual(['SIGTERM']);
  });

  it('reload grows pools and tells the servers', async () => {
    const { gw } = gateway();
    const s = new FakeServer('sstp');
    await gw.start([s]);
    const pool = gw.ctx.pool('default')!;
    gw.reload(parseConfig('dataplane: {prefixLength: 22}\npools: {default: {ranges: ["198.18.128.0/24", "198.18.129.0/24"]}}'));
    expect(s.events).toContain('reload');
    expect(gw.metricsSource.pools()).toEqual([{ pool: 'default', size: 253 + 254, used: 0, failures: { exhausted: 0, conflict: 0, invalid: 0 } }]);
    expect(gw.ctx.pool('default')).toBe(pool);
  });
});

describe('finding protocol servers', () => {
  it('prefers the in-process registry, and reports none for a protocol without server module', async () => {
    expect(await findProtocolServer('l2tp')).toBeUndefined();
    const f = () => new FakeServer('l2tp');
    registerProtocolServer('l2tp', f);
    expect(await findProtocolServer('l2tp')).toBe(f);
    registerProtocolServer('l2tp', undefined);
    expect(await findProtocolServer('l2tp')).toBeUndefined();
  });
});

describe('isMissingModule', () => {
  const err = (message: string) => Object.assign(new Error(message), { code: 'ERR_MODULE_NOT_FOUND' });
  it('is true only when the module itself is missing', () => {
    expect(isMissingModule(err("Cannot find module '/app/dist/src/l2tp/server.js' imported from /app/dist/src/admin/gateway.js"), 'l2tp/server')).toBe(true);
    expect(isMissingModule(err("Cannot find module '/src/l2tp/server.js' imported from /work/src/admin/gateway.ts"), 'l2tp/server')).toBe(true);
    // The server exists but one of its imports is missing: a real error.
    expect(isMissingModule(err("Cannot find module '/app/dist/src/l2tp/codec.js' imported from /app/dist/src/l2tp/server.js"), 'l2tp/server')).toBe(false);
    expect(isMissingModule(err("Cannot find module '/app/dist/src/xl2tp/server.js' imported from x"), 'l2tp/server')).toBe(false);
    expect(isMissingModule(new Error("Cannot find module '/src/l2tp/server.js'"), 'l2tp/server')).toBe(false);
  });
});
