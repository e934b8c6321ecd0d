/**
 * The main thread's side of the data-plane workers (DESIGN.md "Threads"):
 * main keeps config, the user store and verifier chain, the address pools,
 * metrics and the admin API; N worker threads (src/workers/runtime.ts) own
 * the sessions, end to end.
 *
 *   main: open the TUN device's N queues (multi-queue, in dataplane.tun.netns
 *     if set), configure it, attach the steering program (its map: inner
 *     address -> queue, filled by the workers as sessions come up)
 *     ─► spawn worker i with {index, count, config, queue fd i, map fd, layout}
 *     ─► worker i: 'ready' {memory, layout} ─► main reads its counters from
 *        that memory (DataplaneView): metrics, session byte counts
 *
 * Per worker, main answers: verify (its verifier chain), pool.allocate
 * (PoolHost, synchronous), session mirror notes (RemoteSessions, into the
 * gateway's registry), metrics events, progress lines. A worker that exits
 * unexpectedly loses its sessions (forgotten here, their leases released)
 * and is reported through `onWorkerExit`.
 *
 * Each enabled protocol is one ProtocolServer for the Gateway
 * ({@link WorkerSet.servers}): starting it starts the protocol in worker 0
 * first (a generated certificate is written once), then in the others;
 * stopping it stops it in every worker.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';
import { logTransition, type Logger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import { ringSlotsById, type Config, type Protocol } from '../config/schema.js';
import { parseIpv4 } from '../config/ipv4.js';
import type { ProtocolServer, SessionRegistry } from '../admin/gateway.js';
import type { GatewayMetrics, AuthOutcome, ProxyRefusalReason, TlsFailureReason } from '../metrics/registry.js';
import type { Verifier } from '../ppp/auth/types.js';
import type { AddressAllocator } from '../pool/types.js';
import type { LayoutOptions } from '../dataplane/layout.js';
import { native } from '../dataplane/native.js';
import { RpcPeer, createSyncBuffer, fromRpcError, type RpcError } from './rpc.js';
import { PoolHost } from './pools.js';
import { RemoteSessions } from './sessions.js';
import { DataplaneView } from './dataplane-view.js';
import type { MetricsEvent, WorkerInit, WorkerReady } from './runtime.js';

// Our choices.
/** From spawning a worker to its 'ready' (WASM compile, memory, TUN attach). */
export const WORKER_START_TIMEOUT_MS = 30_000;
/** Starting a protocol in a worker (certificate generation, listeners). */
export const PROTOCOL_START_TIMEOUT_MS = 60_000;
/** Beyond a stop's own deadline, how long main waits for the worker's answer. */
export const STOP_MARGIN_MS = 2_000;
/** Closing a worker (its services, its I/O threads) before it is terminated. */
export const CLOSE_TIMEOUT_MS = 5_000;

export type SpawnWorker = (script: URL, options: WorkerOptions & { workerData: WorkerInit }) => Worker;

export interface WorkerSetOptions {
  config: Readonly<Config>;
  log: Logger;
  clock: Clock;
  metrics: GatewayMetrics;
  /** The gateway's registry: the workers' sessions are mirrored into it. */
  registry: SessionRegistry;
  /** The gateway's pools. */
  pools(name: string): AddressAllocator | undefined;
  /** Main's verifier chain (local store throttled per source, per-user session limit). */
  verifier: Verifier;
  progress?(message: string): void;
  /** A worker exited while the set was running. */
  onWorkerExit?(index: number, reason: string): void;
  /** The worker script (default: the compiled worker.js next to this module). */
  script?: URL;
  /** How to start a thread (tests run TypeScript workers through a loader). */
  spawn?: SpawnWorker;
  /** Workers open their listeners and raw sockets in this namespace (embedders, benchmarks). */
  netns?: string;
}

/** One running worker, as main sees it. */
export interface WorkerHandle {
  readonly index: number;
  readonly thread: Worker;
  readonly peer: RpcPeer;
  readonly view: DataplaneView;
  readonly sessions: RemoteSessions;
  readonly leases: PoolHost;
}

/** The TUN device's queues and the steering map. */
export interface TunQueues {
  name: string;
  fds: number[];
  mapFd: number;
  close(): void;
}

export enum WorkerSetState {
  Starting = 'starting',
  Running = 'running',
  Closing = 'closing',
  Closed = 'closed',
}

/** The layout options of every worker's data plane, from the config. */
export function workerLayout(config: Readonly<Config>): LayoutOptions {
  const d = config.dataplane;
  return {
    mode: abi.Mode.FORWARD,
    maxSessions: d.maxSessionsPerWorker,
    ringSlots: ringSlotsById(config),
    gatewayV4: parseIpv4(d.gateway)!,
    streamBuffers: config.sstp.enabled,
  };
}

/** Open `count` queues of the configured TUN device, configure it, attach the steering program. */
export function openTunQueues(config: Readonly<Config>, count: number, log: Logger, onPermission: (e: unknown, what: string) => unknown = (e) => e): TunQueues {
  const d = config.dataplane;
  const netns = d.tun.netns !== undefined ? { netns: d.tun.netns } : {};
  const fds: number[] = [];
  let mapFd = -1;
  const closeAll = () => {
    if (mapFd >= 0) native.close(mapFd);
    mapFd = -1;
    for (const fd of fds.splice(0)) native.close(fd);
  };
  try {
    let name = d.tun.name;
    for (let i = 0; i < count; i++) {
      try {
        const q = native.openTun(name, { ...netns, multiQueue: true });
        fds.push(q.fd);
        name = q.name;
      } catch (e) {
        throw onPermission(e, `cannot open queue ${i} of TUN device ${d.tun.name}`);
      }
    }
    try {
      native.configureInterface(name, { ...netns, mtu: d.tun.mtu, txQueueLen: d.tun.txQueueLen, ipv4: d.gateway, prefixLen: d.prefixLength, up: true });
    } catch (e) {
      throw onPermission(e, `cannot configure ${name}`);
    }
    mapFd = native.tunSteering(fds[0]!, Math.max(64, count * d.maxSessionsPerWorker));
    log.info({ tun: name, queues: count, address: `${d.gateway}/${d.prefixLength}`, mtu: d.tun.mtu, netns: d.tun.netns }, 'data plane: multi-queue TUN device up, steering attached');
    return { name, fds: [...fds], mapFd, close: closeAll };
  } catch (e) {
    closeAll();
    throw e;
  }
}

export class WorkerSet {
  private state = WorkerSetState.Starting;
  private readonly handles: WorkerHandle[] = [];
  /** The gateway's session count, read by every worker's admission (limits.maxSessions). */
  private readonly sessionTotal = new Int32Array(new SharedArrayBuffer(4));

  private constructor(
    private readonly opts: WorkerSetOptions,
    readonly tun: TunQueues,
  ) {}

  /** Open the TUN queues and start `config.dataplane.workers` workers; each is ready when this resolves. */
  static async start(opts: WorkerSetOptions, tun?: TunQueues): Promise<WorkerSet> {
    const count = opts.config.dataplane.workers;
    const queues = tun ?? openTunQueues(opts.config, count, opts.log);
    const set = new WorkerSet(opts, queues);
    try {
      const started = await Promise.allSettled(Array.from({ length: count }, (_, i) => set.spawn(i)));
      for (const r of started) if (r.status === 'fulfilled') set.handles.push(r.value);
      set.handles.sort((a, b) => a.index - b.index);
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } catch (e) {
      await set.close();
      throw e;
    }
    set.transition(WorkerSetState.Running, `${count} worker${count === 1 ? '' : 's'} ready`);
    return set;
  }

  private transition(to: WorkerSetState, reason: string): void {
    logTransition(this.opts.log, 'workers', this.state, to, reason, 'info');
    this.state = to;
  }

  get workers(): readonly WorkerHandle[] {
    return this.handles;
  }

  /** Each worker's data plane, read-only (metrics). */
  get views(): DataplaneView[] {
    return this.handles.map((h) => h.view);
  }

  private spawn(index: number): Promise<WorkerHandle> {
    const o = this.opts;
    const init: WorkerInit = {
      index,
      count: o.config.dataplane.workers,
      config: o.config as Config,
      tunFd: this.tun.fds[index]!,
      tunName: this.tun.name,
      steeringMapFd: this.tun.mapFd,
      layout: workerLayout(o.config),
      sync: createSyncBuffer(),
      sessionTotal: this.sessionTotal.buffer as SharedArrayBuffer,
      ...(o.netns !== undefined ? { netns: o.netns } : {}),
    };
    const script = o.script ?? new URL('./worker.js', import.meta.url);
    const thread = (o.spawn ?? ((s, opt) => new Worker(s, opt)))(script, { workerData: init });
    const log = o.log.child({ worker: index });
    const peer = new RpcPeer(thread, {
      clock: o.clock,
      name: `worker ${index}`,
      sync: init.sync,
      onUnhandled: (what, e) => log.error({ err: e }, `workers: ${what} from worker ${index} failed or has no handler`),
    });
    const leases = new PoolHost(peer, o.pools);
    let view: DataplaneView | undefined;
    const sessions = new RemoteSessions({
      worker: index,
      peer,
      registry: o.registry,
      counters: (idx) => view?.sessionCounters(idx),
      log,
      onChange: () => Atomics.store(this.sessionTotal, 0, o.registry.size),
    });
    peer.handle<{ method: 'pap' | 'chapMd5' | 'msChapV2'; args: unknown[] }>('verify', ({ method, args }) =>
      (o.verifier[method] as (...a: unknown[]) => Promise<unknown>)(...args),
    );
    peer.handle<MetricsEvent>('metrics', (e) => {
      switch (e.k) {
        case 'auth':
          o.metrics.authResult(e.a as never, e.b as AuthOutcome);
          return;
        case 'setup':
          o.metrics.sessionSetup(e.a as Protocol, e.b as number);
          return;
        case 'tls':
          o.metrics.tlsHandshakeFailure(e.a as TlsFailureReason);
          return;
        case 'proxy':
          o.metrics.proxyRefused(e.a as ProxyRefusalReason);
          return;
        case 'keepalive':
          o.metrics.keepaliveTimeout(e.a as Protocol);
          return;
      }
    });
    peer.handle<string>('progress', (m) => o.progress?.(m));

    return new Promise<WorkerHandle>((resolve, reject) => {
      let settled = false;
      const timer = o.clock.setTimer(WORKER_START_TIMEOUT_MS, () => fail(new VpnError('ERR_WORKER', `worker ${index}: not ready within ${WORKER_START_TIMEOUT_MS} ms`)));
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        peer.close('failed to start');
        void thread.terminate();
        reject(e);
      };
      peer.handle<RpcError>('failed', (e) => fail(fromRpcError(e)));
      peer.handle<WorkerReady>('ready', (r) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        view = new DataplaneView(r.memory, r.layout);
        const h: WorkerHandle = { index, thread, peer, view, sessions, leases };
        resolve(h);
      });
      thread.on('error', (e) => {
        log.error({ err: e }, `workers: worker ${index} failed`);
        fail(new VpnError('ERR_WORKER', `worker ${index} failed: ${e.message}`, { cause: e }));
      });
      thread.once('exit', (code) => {
        fail(new VpnError('ERR_WORKER', `worker ${index} exited (code ${code}) before it was ready`));
        this.onExit(index, peer, sessions, leases, code);
      });
    });
  }

  private onExit(index: number, peer: RpcPeer, sessions: RemoteSessions, leases: PoolHost, code: number): void {
    peer.close(`worker ${index} exited`);
    const lost = sessions.dropAll();
    const released = leases.releaseAll();
    if (this.state === WorkerSetState.Running) {
      const reason = `worker ${index} exited unexpectedly (code ${code})`;
      this.opts.log.error({ worker: index, code, sessionsLost: lost, leasesReleased: released }, `workers: ${reason}`);
      this.opts.onWorkerExit?.(index, reason);
    }
  }

  /** One ProtocolServer per protocol, running in every worker. */
  server(protocol: Protocol): ProtocolServer {
    return {
      name: protocol,
      start: async () => {
        const [first, ...rest] = this.handles;
        const started: WorkerHandle[] = [];
        const startIn = async (h: WorkerHandle) => {
          await h.peer.call('start', { protocol }, PROTOCOL_START_TIMEOUT_MS);
          started.push(h);
        };
        try {
          if (first) await startIn(first);
          const r = await Promise.allSettled(rest.map(startIn));
          const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
          if (failed) throw failed.reason;
        } catch (e) {
          await Promise.all(started.map((h) => h.peer.call('stop', { protocol, graceful: false, waitMs: 0 }, STOP_MARGIN_MS).catch(() => undefined)));
          throw e;
        }
      },
      stop: async (graceful, deadlineMs) => {
        const waitMs = Math.max(0, deadlineMs - this.opts.clock.now());
        await Promise.all(
          this.handles.map((h) =>
            h.peer.call('stop', { protocol, graceful, waitMs }, waitMs + STOP_MARGIN_MS).catch((e: unknown) => {
              this.opts.log.error({ worker: h.index, protocol, err: (e as Error).message }, `workers: ${protocol} did not stop cleanly in worker ${h.index}`);
            }),
          ),
        );
      },
    };
  }

  /** Reloaded configuration: every worker's services follow it. */
  reload(config: Readonly<Config>): void {
    for (const h of this.handles) h.peer.notify('reload', { config });
  }

  /** Close every worker (services dropped, I/O threads stopped), terminate the threads, close the TUN queues and map. */
  async close(): Promise<void> {
    if (this.state === WorkerSetState.Closing || this.state === WorkerSetState.Closed) return;
    this.transition(WorkerSetState.Closing, 'close');
    await Promise.all(
      this.handles.map(async (h) => {
        if (!h.peer.closed) {
          await h.peer.call('close', {}, CLOSE_TIMEOUT_MS).catch((e: unknown) => {
            this.opts.log.warn({ worker: h.index, err: (e as Error).message }, `workers: worker ${h.index} did not close in time`);
          });
        }
        await h.thread.terminate();
      }),
    );
    this.tun.close();
    this.transition(WorkerSetState.Closed, 'threads terminated, TUN queues closed');
  }
}
