/**
 * A data-plane worker (one thread of `vpngw serve`): it owns its sessions
 * end to end, their sockets, their PPP state and their WASM slots. Its
 * own DataPlane (own WebAssembly.Memory) reads and writes its queue of the
 * multi-queue TUN device; its SSTP / PPTP services listen on SO_REUSEPORT
 * sockets of their own; PPTP has its own raw GRE socket, filtered to the
 * call ids of this worker's residue class (id % count == index).
 *
 * What the worker asks of main (src/workers/supervisor.ts), over one RpcPeer:
 *
 *   verify          call  credentials, through main's shared verifier chain
 *   pool.allocate   sync  an inner address (RemotePool); pool.release: note
 *   session.*       note  its registry, mirrored (MirroringRegistry)
 *   metrics         note  set-up, auth, TLS, keepalive events
 *   progress        note  operator messages (worker 0 only: every worker would say the same)
 *   ready / failed  note  once, after start-up: its memory and layout, or why not
 *
 * Main keeps the gateway's session total in a shared Int32 (`sessionTotal`)
 * that admissions read (limits.maxSessions over every worker), no message.
 *
 * What main asks of it: start {protocol}, stop {protocol, graceful, waitMs},
 * reload {config}, session.teardown {id, reason}, close.
 *
 * Worker life:
 *
 *   booting ──ready──► running ──close──► closed
 *      └──failed (then exits)
 */
import { pino } from 'pino';
import * as abi from '../../assembly/abi.js';
import { VpnError, isVpnError } from '../util/errors.js';
import { createLogger, logTransition, type Logger } from '../util/log.js';
import { systemClock } from '../util/clock.js';
import { deepFreeze } from '../config/load.js';
import type { Config, Protocol } from '../config/schema.js';
import type { ProtocolServer, ServerContext } from '../admin/gateway.js';
import type { TunnelMetrics } from '../metrics/registry.js';
import type { Verifier } from '../ppp/auth/types.js';
import type { AddressSteering } from '../tunnel/session.js';
import { LISTEN_BACKLOG } from '../tunnel/service.js';
import { DataPlane } from '../dataplane/engine.js';
import type { Layout, LayoutOptions } from '../dataplane/layout.js';
import { native } from '../dataplane/native.js';
import { ipv4ToInt } from '../dataplane/sessions.js';
import { SstpService } from '../sstp/service.js';
import { PptpService } from '../pptp/service.js';
import { RpcPeer, toRpcError, type Endpoint, type RpcError } from './rpc.js';
import { RemotePool } from './pools.js';
import { MirroringRegistry, serveTeardowns } from './sessions.js';

// Our choices.
/** How long a worker waits for main's verifier (failures are delayed by the throttle; RADIUS may be slow). */
export const VERIFY_TIMEOUT_MS = 30_000;

/** What main gives a worker (worker_threads workerData; structured-clone plain data). */
export interface WorkerInit {
  index: number;
  count: number;
  /** The running configuration, as plain data (frozen again here). */
  config: Config;
  /** This worker's queue of the TUN device. */
  tunFd: number;
  tunName: string;
  /** The steering map (native.tunSteering). */
  steeringMapFd: number;
  layout: LayoutOptions;
  /** The channel's sync buffer (RpcPeer). */
  sync: SharedArrayBuffer;
  /** One Int32: every worker's sessions as main's registry counts them (written by main). */
  sessionTotal: SharedArrayBuffer;
  /** Open the listeners and the raw GRE socket in this network namespace (embedders, benchmarks); default the process's. */
  netns?: string;
}

/** What a worker reports once it is up. */
export interface WorkerReady {
  memory: WebAssembly.Memory;
  layout: Layout;
}

export interface MetricsEvent {
  k: 'auth' | 'setup' | 'tls' | 'proxy' | 'keepalive';
  a: unknown;
  b?: unknown;
}

export enum WorkerState {
  Booting = 'booting',
  Running = 'running',
  Closed = 'closed',
}

/** The worker's logger: JSON lines on the process's stdout, one synchronous write() per line (whole lines on a pipe). */
export function workerLogger(init: Pick<WorkerInit, 'index' | 'config'>): Logger {
  return createLogger({ level: init.config.log.level, destination: pino.destination({ dest: 1, sync: true }) }).child({ worker: init.index });
}

function forwardingMetrics(peer: RpcPeer): TunnelMetrics {
  const send = (e: MetricsEvent) => peer.notify('metrics', e);
  return {
    authResult: (method, outcome) => send({ k: 'auth', a: method, b: outcome }),
    sessionSetup: (protocol, seconds) => send({ k: 'setup', a: protocol, b: seconds }),
    tlsHandshakeFailure: (reason) => send({ k: 'tls', a: reason }),
    proxyRefused: (reason) => send({ k: 'proxy', a: reason }),
    keepaliveTimeout: (protocol) => send({ k: 'keepalive', a: protocol }),
  };
}

/** Main's verifier chain, asked over RPC. A failed call is a 'backend-error' refusal (logged). */
export function remoteVerifier(peer: RpcPeer, log: Logger, timeoutMs = VERIFY_TIMEOUT_MS): Verifier {
  const ask = async <T>(method: 'pap' | 'chapMd5' | 'msChapV2', args: unknown[]): Promise<T> => {
    try {
      return await peer.call<T>('verify', { method, args }, timeoutMs);
    } catch (e) {
      log.error({ err: (e as Error).message, method }, 'verifier: no verdict from the main thread');
      return { ok: false, reason: 'backend-error', message: `no verdict from the main thread: ${(e as Error).message}` } as T;
    }
  };
  return {
    pap: (ctx, u, pw) => ask('pap', [ctx, u, pw]),
    chapMd5: (ctx, u, id, ch, r) => ask('chapMd5', [ctx, u, id, ch, r]),
    msChapV2: (ctx, u, ac, pc, nt) => ask('msChapV2', [ctx, u, ac, pc, nt]),
  };
}

/** Steering of inner addresses to this worker's TUN queue (bound addresses remembered: unbind is idempotent). */
export function queueSteering(mapFd: number, queue: number): AddressSteering & { readonly bound: ReadonlySet<string> } {
  const bound = new Set<string>();
  return {
    bound,
    bind(ip) {
      native.steerSet(mapFd, ipv4ToInt(ip), queue);
      bound.add(ip);
    },
    unbind(ip) {
      if (!bound.delete(ip)) return;
      native.steerDelete(mapFd, ipv4ToInt(ip));
    },
  };
}

/** A SO_REUSEPORT listener for one of the worker's services. */
function reusePortListener(protocol: 'sstp' | 'pptp', cfg: Readonly<Config>, netns: string | undefined): number {
  const { listen, port } = cfg[protocol];
  try {
    return native.tcpListener({ address: listen, port, reusePort: true, backlog: LISTEN_BACKLOG, ...(netns !== undefined ? { netns } : {}) });
  } catch (e) {
    const code = isVpnError(e) ? e.code : 'ERR_NATIVE';
    throw new VpnError(code, `${protocol}: cannot listen on ${listen}:${port}: ${(e as Error).message}`, { cause: e });
  }
}

export class WorkerRuntime {
  private state = WorkerState.Booting;
  private cfg: Readonly<Config>;
  readonly log: Logger;
  readonly peer: RpcPeer;
  readonly dp: DataPlane;
  readonly registry: MirroringRegistry;
  readonly ctx: ServerContext;
  private readonly services = new Map<Protocol, ProtocolServer>();
  private readonly pools = new Map<string, RemotePool>();
  private readonly total: Int32Array;

  constructor(
    private readonly init: WorkerInit,
    endpoint: Endpoint,
  ) {
    this.cfg = deepFreeze(init.config);
    this.total = new Int32Array(init.sessionTotal, 0, 1);
    this.log = workerLogger(init);
    this.peer = new RpcPeer(endpoint, {
      clock: systemClock,
      name: `worker ${init.index}`,
      sync: init.sync,
      onUnhandled: (what, e) => this.log.error({ err: e }, `worker: ${what} failed or has no handler`),
    });
    this.dp = new DataPlane({ ...init.layout, workerId: init.index });
    try {
      this.dp.attach(init.tunName, init.tunFd, 'tun', abi.RingId.TUN_RX, abi.RingId.TUN_TX);
    } catch (e) {
      this.dp.close();
      throw e;
    }
    this.registry = new MirroringRegistry(this.peer);
    const steering = queueSteering(init.steeringMapFd, init.index);
    this.ctx = {
      config: () => this.cfg,
      log: this.log,
      clock: systemClock,
      metrics: forwardingMetrics(this.peer),
      sessions: this.registry,
      pool: (name) => this.pool(name, steering),
      verifier: remoteVerifier(this.peer, this.log),
      dataplanes: () => [this.dp],
      totalSessions: () => this.totalSessions(),
      steering,
      ...(init.index === 0 ? { progress: (m: string) => this.peer.notify('progress', m) } : {}),
    };
    serveTeardowns(this.peer, this.registry);
    this.peer.handle<{ protocol: Protocol }>('start', ({ protocol }) => this.start(protocol));
    this.peer.handle<{ protocol: Protocol; graceful: boolean; waitMs: number }>('stop', (p) => this.stop(p.protocol, p.graceful, p.waitMs));
    this.peer.handle<{ config: Config }>('reload', ({ config }) => this.reload(config));
    this.peer.handle('close', () => this.close());
    this.transition(WorkerState.Running, 'data plane attached to its TUN queue');
  }

  private transition(to: WorkerState, reason: string): void {
    logTransition(this.log, 'worker', this.state, to, reason);
    this.state = to;
  }

  /** Main's pool `name`, when the config has one. */
  private pool(name: string, steering: AddressSteering): RemotePool | undefined {
    if (!this.cfg.pools[name]) return undefined;
    let p = this.pools.get(name);
    if (!p) {
      // The address stops routing here before main can hand it to another worker.
      p = new RemotePool(this.peer, name, { beforeRelease: (a) => steering.unbind(a) });
      this.pools.set(name, p);
    }
    return p;
  }

  /**
   * Every worker's sessions, as main's registry counts them (at least this
   * worker's own: its newest ones may not have reached main yet).
   */
  private totalSessions(): number {
    return Math.max(Atomics.load(this.total, 0), this.registry.size);
  }

  ready(): WorkerReady {
    return { memory: this.dp.memory, layout: this.dp.layout };
  }

  async start(protocol: Protocol): Promise<void> {
    if (this.services.has(protocol)) throw new VpnError('ERR_USAGE', `worker ${this.init.index}: ${protocol} is already started`);
    const { index, count } = this.init;
    let service: ProtocolServer;
    let fd: number | undefined;
    if (protocol === 'sstp') {
      fd = reusePortListener('sstp', this.cfg, this.init.netns);
      service = new SstpService({ listenFd: fd });
    } else if (protocol === 'pptp') {
      fd = reusePortListener('pptp', this.cfg, this.init.netns);
      service = new PptpService({
        listenFd: fd,
        callIds: { modulus: count, remainder: index },
        greFilter: { modulus: count, remainder: index },
        ...(this.init.netns !== undefined ? { netns: this.init.netns } : {}),
      });
    } else {
      throw new VpnError('ERR_USAGE', `${protocol}: no protocol server runs in data-plane workers yet`);
    }
    try {
      await service.start(this.ctx);
    } catch (e) {
      // The listener is the server's once it listens; before that it is ours to close.
      if (fd !== undefined) {
        try {
          native.close(fd);
        } catch {
          // already closed by the server
        }
      }
      throw e;
    }
    this.services.set(protocol, service);
    this.log.info({ protocol }, `${protocol}: server started in worker ${index}`);
  }

  async stop(protocol: Protocol, graceful: boolean, waitMs: number): Promise<void> {
    const s = this.services.get(protocol);
    if (!s) return;
    this.services.delete(protocol);
    await s.stop(graceful, systemClock.now() + waitMs);
  }

  reload(config: Config): void {
    this.cfg = deepFreeze(config);
    this.log.level = this.cfg.log.level;
    for (const s of this.services.values()) s.reload?.(this.cfg);
  }

  /** Stop whatever still runs (not gracefully), then the data plane's I/O threads. */
  async close(): Promise<void> {
    if (this.state === WorkerState.Closed) return;
    const left = [...this.services.entries()];
    this.services.clear();
    await Promise.all(left.map(([, s]) => s.stop(false, systemClock.now()).catch(() => undefined)));
    this.dp.close();
    this.transition(WorkerState.Closed, 'closed by main');
  }
}

/** Start a worker on `endpoint` (the thread's parentPort); reports ready or failed to main. */
export function runWorker(init: WorkerInit, endpoint: Endpoint): WorkerRuntime | undefined {
  try {
    const w = new WorkerRuntime(init, endpoint);
    w.peer.notify('ready', w.ready());
    return w;
  } catch (e) {
    endpoint.postMessage({ rpc: 'note', method: 'failed', params: toRpcError(e) satisfies RpcError });
    return undefined;
  }
}

