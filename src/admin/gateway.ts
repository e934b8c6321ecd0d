/**
 * The gateway supervisor: the protocol servers (how they plug in), the
 * session registry they report to, the address pools, and the state the
 * admin API and the metrics read.
 *
 * Protocol servers plug in by implementing {@link ProtocolServer}. `vpngw
 * serve` finds one per enabled protocol: first in the in-process registry
 * ({@link registerProtocolServer}, used by tests and embedders), otherwise by
 * importing `src/<protocol>/server.ts` and calling its exported
 * `createProtocolServer()`. A protocol without one is reported as not
 * implemented yet.
 *
 * Gateway life:
 *
 *   starting --start()--> running --shutdown()--> stopping --> stopped
 *       \________________________(start failed)_____________/
 */
import type { Clock } from '../util/clock.js';
import { logTransition, type Logger } from '../util/log.js';
import type { Verifier } from '../ppp/auth/types.js';
import type { AddressAllocator } from '../pool/types.js';
import type { DataPlane } from '../dataplane/engine.js';
import { Ipv4Pool } from '../pool/ipv4-pool.js';
import type { Config, Protocol } from '../config/schema.js';
import type { DataplaneSnapshot, GatewayMetrics, MetricsSource, PoolUsage, SessionCount, TunnelMetrics } from '../metrics/registry.js';
import type { AddressSteering } from '../tunnel/session.js';
import type { GatewayControl, ManagedSession, SessionInfo } from './types.js';

/** Everything a protocol server gets from the gateway. */
export interface ServerContext {
  /** The running configuration (replaced on reload: read it when you need it). */
  config(): Readonly<Config>;
  log: Logger;
  clock: Clock;
  /** Set-up, authentication, TLS and keepalive events (main's GatewayMetrics, or a worker's forwarder). */
  metrics: TunnelMetrics;
  sessions: SessionRegistry;
  /** Address pool by name (the protocol section's `pool`). */
  pool(name: string): AddressAllocator | undefined;
  /** Checks credentials (local user store or RADIUS); undefined until src/aaa is wired. */
  verifier: Verifier | undefined;
  /** The data-plane engines, one per worker (empty while there is none). */
  dataplanes(): readonly DataPlane[];
  /**
   * Sessions of the whole gateway, when this context is one data-plane
   * worker's (limits.maxSessions counts them all); absent: sessions.size.
   */
  totalSessions?(): number;
  /** Downlink steering of inner addresses to this worker (multi-worker data plane; absent in-process). */
  steering?: AddressSteering;
  /** Tell the operator something once (stderr of `vpngw serve`, e.g. a certificate fingerprint); absent when embedded. */
  progress?(message: string): void;
}

export interface ProtocolServer {
  readonly name: Protocol;
  /** Bind listeners and start accepting. Rejects (VpnError) if it cannot. */
  start(ctx: ServerContext): Promise<void>;
  /**
   * Stop accepting. Graceful: tell every client with the protocol's own
   * disconnect and wait for them, until `deadlineMs` (absolute, ctx.clock
   * time) at the latest. Not graceful: drop everything now.
   */
  stop(graceful: boolean, deadlineMs: number): Promise<void>;
  /** Reloadable settings (users, pools, policies, log level) changed. */
  reload?(config: Readonly<Config>): void;
}

export type ProtocolServerFactory = () => ProtocolServer;

const factories = new Map<Protocol, ProtocolServerFactory>();

/**
 * Is `e` the failure to find the module `<...>/<stem>.js` itself? (A module
 * that exists but imports something missing is a real error, not absence.)
 */
export function isMissingModule(e: unknown, stem: string): boolean {
  if ((e as NodeJS.ErrnoException | undefined)?.code !== 'ERR_MODULE_NOT_FOUND') return false;
  const m = /^Cannot find module '([^']+)'/.exec(String((e as Error).message));
  return m !== null && /\.[jt]s$/.test(m[1]!) && m[1]!.replace(/\.[jt]s$/, '').endsWith(`/${stem}`);
}

/** Register (or with `undefined`, unregister) the server for a protocol, in this process. */
export function registerProtocolServer(name: Protocol, factory: ProtocolServerFactory | undefined): void {
  if (factory) factories.set(name, factory);
  else factories.delete(name);
}

/**
 * The server for `name`: registered, or from `src/<name>/server.js`'s
 * `createProtocolServer()`; undefined when there is none yet.
 */
export async function findProtocolServer(name: Protocol): Promise<ProtocolServerFactory | undefined> {
  const registered = factories.get(name);
  if (registered) return registered;
  const specifier = `../${name}/server.js`;
  let mod: { createProtocolServer?: unknown };
  try {
    mod = (await import(specifier)) as { createProtocolServer?: unknown };
  } catch (e) {
    if (isMissingModule(e, `${name}/server`)) return undefined;
    throw e;
  }
  return typeof mod.createProtocolServer === 'function' ? (mod.createProtocolServer as ProtocolServerFactory) : undefined;
}

// ---------------------------------------------------------------------------

const userOf = (s: ManagedSession): string | null => (s.username ? s.username() : s.info().user);

/**
 * Every live session of every protocol, by id; and by user, for the
 * per-user limit asked on every log-in. A session's user is learned the
 * first time it is found non-null (it never changes after that), so a
 * count looks only at the sessions not authenticated yet, not at all N.
 */
export class SessionRegistry {
  private readonly byId = new Map<string, ManagedSession>();
  /** Sessions whose user is not known yet (null when last asked). */
  private readonly anonymous = new Set<ManagedSession>();
  private readonly userOfSession = new Map<ManagedSession, string>();
  private readonly perUser = new Map<string, number>();

  /** Register a session; the returned function unregisters it (idempotent). */
  add(s: ManagedSession): () => void {
    if (this.byId.has(s.id)) throw new Error(`session id ${s.id} is already registered`);
    this.byId.set(s.id, s);
    this.anonymous.add(s);
    return () => {
      if (this.byId.get(s.id) !== s) return;
      this.byId.delete(s.id);
      this.anonymous.delete(s);
      const u = this.userOfSession.get(s);
      if (u === undefined) return;
      this.userOfSession.delete(s);
      const n = (this.perUser.get(u) ?? 1) - 1;
      if (n > 0) this.perUser.set(u, n);
      else this.perUser.delete(u);
    };
  }

  private learnUsers(): void {
    for (const s of this.anonymous) {
      const u = userOf(s);
      if (u === null) continue;
      this.anonymous.delete(s);
      this.userOfSession.set(s, u);
      this.perUser.set(u, (this.perUser.get(u) ?? 0) + 1);
    }
  }

  get(id: string): ManagedSession | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  list(): SessionInfo[] {
    return [...this.byId.values()].map((s) => s.info());
  }

  /** Sessions of `user`. */
  ofUser(user: string): ManagedSession[] {
    this.learnUsers();
    const out: ManagedSession[] = [];
    for (const s of this.byId.values()) if (this.userOfSession.get(s) === user) out.push(s);
    return out;
  }

  /**
   * How many sessions `user` has (limits.maxSessionsPerUser). Asked on every
   * authentication: it costs the number of sessions still authenticating,
   * not of all sessions (building every session's listing per log-in made
   * set-ups cost O(N)).
   */
  countOfUser(user: string): number {
    this.learnUsers();
    return this.perUser.get(user) ?? 0;
  }

  counts(): SessionCount[] {
    const m = new Map<string, SessionCount>();
    for (const s of this.byId.values()) {
      const i = s.info();
      const k = `${i.protocol}/${i.state}`;
      const c = m.get(k);
      if (c) c.count++;
      else m.set(k, { protocol: i.protocol, state: i.state, count: 1 });
    }
    return [...m.values()];
  }

  async kill(id: string, reason: string): Promise<boolean> {
    const s = this.byId.get(id);
    if (!s) return false;
    await s.teardown(reason);
    return true;
  }

  async killUser(user: string, reason: string): Promise<number> {
    const list = this.ofUser(user);
    await Promise.all(list.map((s) => s.teardown(reason)));
    return list.length;
  }

  /** Tear every session down (shutdown). */
  async killAll(reason: string): Promise<number> {
    const list = [...this.byId.values()];
    await Promise.all(list.map((s) => s.teardown(reason)));
    return list.length;
  }
}

// ---------------------------------------------------------------------------

export enum GatewayState {
  STARTING = 'starting',
  RUNNING = 'running',
  STOPPING = 'stopping',
  STOPPED = 'stopped',
}

export interface GatewayOptions {
  config: Readonly<Config>;
  log: Logger;
  clock: Clock;
  metrics: GatewayMetrics;
  verifier?: Verifier;
  /** Data-plane snapshot for metrics (undefined: no data plane). */
  dataplane?: () => DataplaneSnapshot | undefined;
  dataplanes?: () => readonly DataPlane[];
  progress?: (message: string) => void;
}

export class Gateway {
  readonly sessions = new SessionRegistry();
  private state = GatewayState.STARTING;
  private cfg: Readonly<Config>;
  private readonly pools = new Map<string, Ipv4Pool>();
  private readonly servers: ProtocolServer[] = [];
  readonly ctx: ServerContext;

  constructor(private readonly opts: GatewayOptions) {
    this.cfg = opts.config;
    for (const [name, p] of Object.entries(opts.config.pools)) {
      this.pools.set(name, Ipv4Pool.create({ name, ranges: p.ranges, gateway: opts.config.dataplane.gateway }));
    }
    this.ctx = {
      config: () => this.cfg,
      log: opts.log,
      clock: opts.clock,
      metrics: opts.metrics,
      sessions: this.sessions,
      pool: (name) => this.pools.get(name),
      verifier: opts.verifier,
      dataplanes: opts.dataplanes ?? (() => []),
      ...(opts.progress ? { progress: opts.progress } : {}),
    };
    opts.metrics.setSource(this.metricsSource);
  }

  get config(): Readonly<Config> {
    return this.cfg;
  }

  get phase(): GatewayState {
    return this.state;
  }

  private transition(to: GatewayState, reason: string): void {
    logTransition(this.opts.log, 'gateway', this.state, to, reason, 'info');
    this.state = to;
  }

  /** Start the given servers in order; if one fails, stop those already started and rethrow. */
  async start(servers: readonly ProtocolServer[]): Promise<void> {
    for (const s of servers) {
      try {
        await s.start(this.ctx);
        this.servers.push(s);
        this.opts.log.info({ protocol: s.name }, `${s.name}: server started`);
      } catch (e) {
        await this.stopServers(false, this.opts.clock.now());
        this.transition(GatewayState.STOPPED, `${s.name} failed to start`);
        throw e;
      }
    }
    this.transition(GatewayState.RUNNING, servers.length ? `started ${servers.map((s) => s.name).join(', ')}` : 'started with no protocol server');
  }

  /** Apply a reloaded (already planned, see config/reload.ts) configuration. */
  reload(next: Readonly<Config>): void {
    this.cfg = next;
    for (const [name, p] of Object.entries(next.pools)) {
      const pool = this.pools.get(name);
      const cfg = { name, ranges: p.ranges, gateway: next.dataplane.gateway };
      if (!pool) this.pools.set(name, Ipv4Pool.create(cfg));
      else {
        const r = pool.reconfigure(cfg);
        if (!r.ok) this.opts.log.error({ pool: name, issues: r.issues }, `pool ${name}: reconfiguration refused`);
      }
    }
    for (const s of this.servers) s.reload?.(next);
  }

  /**
   * Stop accepting, let each server tell its clients, wait until
   * `graceMs` has passed at most, then stop whatever is left.
   */
  async shutdown(reason: string, graceMs: number): Promise<void> {
    if (this.state === GatewayState.STOPPING || this.state === GatewayState.STOPPED) return;
    this.transition(GatewayState.STOPPING, reason);
    const deadline = this.opts.clock.now() + graceMs;
    await this.stopServers(true, deadline);
    if (this.sessions.size) {
      this.opts.log.warn({ sessions: this.sessions.size }, 'sessions left after the servers stopped: tearing them down');
      await Promise.race([this.sessions.killAll(reason), this.sleepUntil(deadline)]);
    }
    this.transition(GatewayState.STOPPED, reason);
  }

  private async stopServers(graceful: boolean, deadline: number): Promise<void> {
    const servers = this.servers.splice(0).reverse();
    await Promise.all(
      servers.map(async (s) => {
        try {
          await Promise.race([s.stop(graceful, deadline), this.sleepUntil(deadline)]);
          this.opts.log.info({ protocol: s.name }, `${s.name}: server stopped`);
        } catch (e) {
          this.opts.log.error({ protocol: s.name, err: (e as Error).message }, `${s.name}: stop failed`);
        }
      }),
    );
  }

  private sleepUntil(deadline: number): Promise<void> {
    return new Promise((resolve) => this.opts.clock.setTimer(Math.max(0, deadline - this.opts.clock.now()), resolve));
  }

  /** What the admin API uses. */
  readonly control: GatewayControl = {
    ready: () => this.state === GatewayState.RUNNING,
    sessions: () => this.sessions.list(),
    kill: (id, reason) => this.sessions.kill(id, reason),
    killUser: (user, reason) => this.sessions.killUser(user, reason),
  };

  /** What the metrics read at scrape time. */
  readonly metricsSource: MetricsSource = {
    sessions: () => this.sessions.counts(),
    pools: () => [...this.pools.values()].map((p): PoolUsage => ({ pool: p.name, size: p.size, used: p.used, failures: p.failures })),
    dataplane: () => this.opts.dataplane?.(),
  };
}
