/**
 * `vpngw serve`: run the gateway.
 *
 *   load config -> logger -> state dir -> admin/metrics listener -> TUN device
 *   (one queue per worker, steering) + data-plane worker threads -> demo user
 *   (first start) -> protocol servers (in every worker) -> ready
 *
 * Threads (src/workers): main keeps config, users and the verifier chain,
 * pools, metrics, admin API and signals; `dataplane.workers` worker threads
 * (default one per core, 1 still a thread) each own a data plane, a TUN
 * queue, SO_REUSEPORT listeners and their sessions. A worker that dies
 * stops the gateway (graceful for the others, exit status 1).
 *   SIGHUP: reload (users, pools growing, policies, log level); an invalid
 *           file keeps the running config and logs every issue
 *   SIGTERM/SIGINT: stop accepting, servers tell their clients, bounded wait,
 *           close the data plane and the TUN device, exit 0; signals that
 *           arrive meanwhile are logged and ignored (see handleSignals)
 *
 * Needs root (CAP_NET_ADMIN) for the TUN device.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as abi from '../../assembly/abi.js';
import { ConfigError, VpnError, isVpnError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { systemClock } from '../util/clock.js';
import { loadConfig } from '../config/load.js';
import { planReload } from '../config/reload.js';
import { enabledProtocols, ringSlotsById, type Config } from '../config/schema.js';
import { parseIpv4 } from '../config/ipv4.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { snapshotDataplane } from '../metrics/dataplane.js';
import { Gateway, findProtocolServer, type ProtocolServer } from '../admin/gateway.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import { DataPlane } from '../dataplane/engine.js';
import { native } from '../dataplane/native.js';
import { findUserStore } from './plugins.js';
import { openGatewayVerifier, sessionPolicyVerifier } from '../aaa/gateway-verifier.js';
import { WorkerSet, openTunQueues } from '../workers/supervisor.js';
import { progress, type CliIo, type SignalName } from './io.js';

// Our choices.
/** How long SIGTERM waits for protocol servers to say goodbye to their clients. */
export const SHUTDOWN_GRACE_MS = 10_000;
export const DEMO_USER = 'demo';

export interface ServeOptions {
  configFile?: string | undefined;
  version: string;
}

/** The running data plane: its engines and how to close it. */
export interface RunningDataplane {
  engines: DataPlane[];
  tunName: string;
  close(): void;
}

/** A permission failure on the TUN device, explained for the operator; other errors unchanged. */
export function needsRoot(e: unknown, what: string): unknown {
  if (isVpnError(e) && (e.code === 'ERR_PERMISSION' || e.code === 'ERR_NOT_ROOT')) {
    return new VpnError(e.code, `${what}: ${e.message}. vpngw serve needs root (or CAP_NET_ADMIN) to create its TUN device`, { cause: e });
  }
  return e;
}

/**
 * One forward-mode engine on this thread, attached to a new TUN device
 * configured with the gateway address: the in-process mode (test labs,
 * benchmarks, embedders). `vpngw serve` runs worker threads instead.
 */
export function openDataplane(config: Readonly<Config>, log: Logger): RunningDataplane {
  const d = config.dataplane;
  const netns = d.tun.netns !== undefined ? { netns: d.tun.netns } : {};
  if (d.workers > 1) log.info({ configured: d.workers }, 'data plane: in-process, one engine on this thread (dataplane.workers applies to worker threads)');
  const dp = new DataPlane({
    mode: abi.Mode.FORWARD,
    maxSessions: d.maxSessionsPerWorker,
    ringSlots: ringSlotsById(config),
    gatewayV4: parseIpv4(d.gateway)!,
    streamBuffers: config.sstp.enabled,
  });
  let fd = -1;
  try {
    const tun = (() => {
      try {
        return native.openTun(d.tun.name, netns);
      } catch (e) {
        throw needsRoot(e, `cannot open TUN device ${d.tun.name}`);
      }
    })();
    fd = tun.fd;
    try {
      native.configureInterface(tun.name, { ...netns, mtu: d.tun.mtu, txQueueLen: d.tun.txQueueLen, ipv4: d.gateway, prefixLen: d.prefixLength, up: true });
    } catch (e) {
      throw needsRoot(e, `cannot configure ${tun.name}`);
    }
    dp.attach(tun.name, tun.fd, 'tun', abi.RingId.TUN_RX, abi.RingId.TUN_TX);
    log.info({ tun: tun.name, address: `${d.gateway}/${d.prefixLength}`, mtu: d.tun.mtu, netns: d.tun.netns }, 'data plane: TUN device up');
    return {
      engines: [dp],
      tunName: tun.name,
      close: () => {
        dp.close();
        native.close(tun.fd);
      },
    };
  } catch (e) {
    dp.close();
    if (fd >= 0) native.close(fd);
    throw e;
  }
}

/** First start: create the demo user with a generated password, shown once on stderr (never logged). */
async function ensureDemoUser(config: Readonly<Config>, io: CliIo, log: Logger): Promise<void> {
  if (!config.users.demoUser || existsSync(config.users.file)) return;
  const open = await findUserStore();
  if (!open) {
    log.warn({ file: config.users.file }, 'users: the local user store is not available yet; no demo user created');
    progress(io, 'no users file and no user store implementation yet: no demo user created');
    return;
  }
  const store = await open(config.users.file);
  const password = randomBytes(12).toString('base64url');
  await store.add(DEMO_USER, password);
  log.info({ user: DEMO_USER, file: config.users.file }, 'users: demo user created');
  progress(io, `created user "${DEMO_USER}" with password ${password}\n  (shown once; change it with: vpngw users passwd ${DEMO_USER}, or disable users.demoUser)`);
}

/** What the process does with its signals while it serves and while it stops. */
export interface SignalHandling {
  /** Resolves with the first SIGTERM or SIGINT. */
  readonly stopped: Promise<SignalName>;
  /** Remove every handler (when the process is done). */
  dispose(): void;
}

/**
 * Signal handling of `vpngw serve`:
 *
 *   serving:  SIGHUP -> onReload; SIGTERM / SIGINT -> `stopped` resolves
 *   stopping: SIGHUP, SIGTERM, SIGINT -> onIgnored (logged), nothing else
 *
 * The handlers stay installed until dispose(): without one, a signal's
 * default action would kill the process in the middle of its graceful
 * shutdown (a log-rotation SIGHUP, a supervisor's second SIGTERM) and it
 * would exit by the signal instead of 0.
 */
export function handleSignals(io: Pick<CliIo, 'signals'>, on: { reload(): void; ignored(sig: SignalName): void }): SignalHandling {
  let resolveStop!: (sig: SignalName) => void;
  const stopped = new Promise<SignalName>((r) => (resolveStop = r));
  let stopping = false;
  const handlers = new Map<SignalName, () => void>();
  for (const sig of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) {
    const fn = () => {
      if (stopping) on.ignored(sig);
      else if (sig === 'SIGHUP') on.reload();
      else {
        stopping = true;
        resolveStop(sig);
      }
    };
    handlers.set(sig, fn);
    io.signals.on(sig, fn);
  }
  return {
    stopped,
    dispose() {
      for (const [sig, fn] of handlers) io.signals.off(sig, fn);
      handlers.clear();
    },
  };
}

export async function serve(io: CliIo, opts: ServeOptions): Promise<number> {
  const file = opts.configFile !== undefined ? path.resolve(io.cwd, opts.configFile) : undefined;
  progress(io, `loading configuration from ${file ?? 'the embedded default'}`);
  let config = await loadConfig(file);
  const log = createLogger({ level: config.log.level });
  log.info({ version: opts.version, config: file ?? '(embedded default)' }, 'vpngw starting');

  const cleanup: (() => Promise<void> | void)[] = [];
  let signals: SignalHandling | undefined;
  const runCleanup = async () => {
    for (const fn of cleanup.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        log.error({ err: e }, 'cleanup step failed');
      }
    }
  };

  try {
    try {
      await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const hint =
        code === 'EACCES' || code === 'EPERM'
          ? `. vpngw serve needs root (its TUN device needs CAP_NET_ADMIN); run it as root${process.getuid?.() === 0 ? '' : ` (you are uid ${process.getuid?.()})`}, or set stateDir in a config file to a directory you can write`
          : '';
      throw new VpnError('ERR_STATE_DIR', `cannot create state directory ${config.stateDir}: ${code ?? e}${hint}`, { cause: e });
    }

    const metrics = new GatewayMetrics(undefined, { version: opts.version });
    let workers: WorkerSet | undefined;
    // Created before the gateway so every protocol server shares it; the demo
    // user (first start) is added below and picked up by a reload.
    const users = await openGatewayVerifier({
      usersFile: config.users.file,
      clock: systemClock,
      log,
      failuresPerMinute: config.limits.authFailuresPerSourcePerMinute,
    });
    const gateway = new Gateway({
      config,
      log,
      clock: systemClock,
      metrics,
      verifier: users.verifier,
      dataplane: () => (workers ? snapshotDataplane(workers.views) : undefined),
      progress: (m) => progress(io, m),
    });

    let admin: AdminServer | undefined;
    if (config.admin.enabled) {
      progress(io, `starting the admin API on ${config.admin.listen}:${config.admin.port}`);
      admin = await startAdminServer({
        listen: config.admin.listen,
        port: config.admin.port,
        token: config.admin.token,
        metrics: config.admin.metrics ? metrics : undefined,
        gateway: gateway.control,
        log,
      });
      const a = admin;
      cleanup.push(() => a.close());
    }

    progress(io, `opening TUN device ${config.dataplane.tun.name}`);
    const tun = openTunQueues(config, config.dataplane.workers, log, needsRoot);
    progress(io, `starting ${config.dataplane.workers} data-plane worker${config.dataplane.workers === 1 ? '' : 's'}`);
    let workerLost!: (reason: string) => void;
    const workerFailed = new Promise<string>((r) => (workerLost = r));
    const ws = await WorkerSet.start(
      {
        config,
        log,
        clock: systemClock,
        metrics,
        registry: gateway.sessions,
        pools: (name) => gateway.ctx.pool(name),
        // The per-user limit counts every worker's sessions here; each worker's tunnel policy adds its own layer (MPPE, auth metrics).
        verifier: sessionPolicyVerifier(users.verifier, {
          sessionsOf: (user) => gateway.sessions.countOfUser(user),
          maxPerUser: () => config.limits.maxSessionsPerUser,
        }),
        progress: (m) => progress(io, m),
        onWorkerExit: (_index, reason) => workerLost(reason),
      },
      tun,
    );
    workers = ws;
    cleanup.push(async () => {
      await ws.close();
      workers = undefined;
    });

    await ensureDemoUser(config, io, log);
    await users.reload();

    const enabled = enabledProtocols(config);
    const servers: ProtocolServer[] = [];
    for (const p of enabled) {
      if (p === 'sstp' || p === 'pptp') servers.push(ws.server(p));
      else {
        const why = (await findProtocolServer(p)) ? 'its server does not run in data-plane workers yet' : 'no protocol server is implemented yet';
        log.warn({ protocol: p }, `${p}: enabled, but ${why}`);
        progress(io, `${p}: enabled, but ${why}`);
      }
    }
    progress(io, `protocols enabled: ${enabled.length ? enabled.join(', ') : 'none'}`);
    await gateway.start(servers);
    cleanup.push(() => gateway.shutdown('cleanup', 0));
    progress(io, `ready${admin ? `; admin API on ${admin.url}` : ''}`);

    const reload = async () => {
      await users.reload().catch((e: unknown) => log.error({ err: e }, 'reload: user store reload failed'));
      if (!file) {
        log.info('SIGHUP: users reloaded; running on the embedded default config, nothing else to reload');
        return;
      }
      try {
        const next = await loadConfig(file);
        const plan = planReload(config, next);
        for (const r of plan.needsRestart) log.warn({ path: r.path, reason: r.reason }, `reload: ${r.path} needs a restart (${r.reason})`);
        gateway.reload(plan.config);
        ws.reload(plan.config);
        log.level = plan.config.log.level;
        config = plan.config;
        log.info({ applied: plan.applied, needsRestart: plan.needsRestart.length }, 'reload: configuration applied');
      } catch (e) {
        if (e instanceof ConfigError) {
          for (const i of e.issues) log.error({ path: i.path }, `reload: ${i.path || '(file)'}: ${i.message}`);
          log.error({ file, problems: e.issues.length }, 'reload: the file is invalid; keeping the running configuration');
        } else {
          log.error({ err: e }, 'reload failed; keeping the running configuration');
        }
      }
    };
    signals = handleSignals(io, {
      reload: () => void reload(),
      ignored: (sig) => {
        log.warn({ signal: sig }, `${sig} ignored: already shutting down`);
        progress(io, `${sig} ignored: already shutting down`);
      },
    });
    const stop = await Promise.race([signals.stopped.then((sig) => ({ sig, lost: undefined })), workerFailed.then((lost) => ({ sig: 'worker failure', lost }))]);
    progress(io, `${stop.lost ? `${stop.lost}` : stop.sig}: shutting down (up to ${SHUTDOWN_GRACE_MS / 1000} s)`);
    await gateway.shutdown(stop.sig, SHUTDOWN_GRACE_MS);
    await runCleanup();
    signals.dispose();
    if (stop.lost) throw new VpnError('ERR_WORKER', `${stop.lost}; the gateway stopped`);
    log.info('vpngw stopped');
    progress(io, 'stopped');
    return 0;
  } catch (e) {
    await runCleanup();
    signals?.dispose();
    log.error({ err: e }, 'vpngw failed');
    log.flush?.();
    throw e;
  }
}
