/**
 * What every TCP-borne tunnel server (SSTP on TLS, PPTP's control
 * connection) does the same way around its sessions: the listener, the
 * half-open bound per source, the shared verifier with the tunnel's policy
 * around it, registering sessions with the gateway, and the graceful stop.
 *
 *   TCP accept ─ half-open bound per source (released when the session is up
 *     or gone) ─► the protocol's session (src/tunnel/session.ts) ─► visible:
 *     registered with the gateway ─► up ─► closed: unregistered, forgotten
 *
 * Service life:
 *
 *   Stopped ──start()──► Listening ──stop()──► Draining ──(all gone / deadline)──► Stopped
 *
 * The protocol's subclass checks and prepares what it needs (certificate,
 * GRE socket, call ids), makes its listener and turns each connection into a
 * session (src/sstp/service.ts, src/pptp/service.ts).
 */
import net from 'node:net';
import { VpnError } from '../util/errors.js';
import { coalescingWriter } from '../net/coalesce.js';
import { logTransition, type Logger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import type { Config } from '../config/schema.js';
import type { ProtocolServer, ServerContext } from '../admin/gateway.js';
import type { DataPlane } from '../dataplane/engine.js';
import type { Verifier } from '../ppp/auth/types.js';
import { openGatewayVerifier, type GatewayVerifier } from '../aaa/gateway-verifier.js';
import type { TunnelPppOptions, TunnelSession } from './session.js';

// Our choices.
/** After end(), how long a socket may take to flush before it is destroyed. */
export const SOCKET_LINGER_MS = 2_000;
/**
 * Connections the kernel may hold for a listener before we accept them (the
 * kernel caps it at net.core.somaxconn, 4096 by default). A storm of
 * reconnecting clients (after a restart, a link flap) arrives faster than a
 * busy event loop accepts; past the backlog their SYNs are dropped and each
 * waits out TCP's 1 s, 3 s, 7 s retransmissions.
 */
export const LISTEN_BACKLOG = 4096;

export enum ServiceState {
  Stopped = 'Stopped',
  Listening = 'Listening',
  Draining = 'Draining',
}

/** The tunnels served over a TCP listener (their config sections have listen, port and pool). */
export type TcpTunnel = 'sstp' | 'pptp';

/** `a.b.c.d` for IPv4-mapped IPv6 peers, the address itself otherwise. */
export function normalizePeerAddress(a: string | undefined): string {
  if (!a) return '0.0.0.0';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

/** A session's transport over a TCP (or TLS) socket. */
export interface SocketTransport {
  /** Dropped once the socket cannot take it any more. */
  write(bytes: Uint8Array, done?: () => void): void;
  readonly writableLength: number;
  pause(): void;
  resume(): void;
  /** Flush, then close (destroyed after SOCKET_LINGER_MS). */
  end(): void;
  /** Close now. */
  destroy(): void;
}

/** The transport over `socket`; the writes of one event-loop turn leave together (src/net/coalesce.ts). */
export function socketTransport(socket: net.Socket): SocketTransport {
  const out = coalescingWriter(socket);
  return {
    write: out.write,
    get writableLength() {
      return socket.writableLength;
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    end: () => {
      if (socket.destroyed) return;
      socket.end();
      const t = setTimeout(() => socket.destroy(), SOCKET_LINGER_MS);
      t.unref();
    },
    destroy: () => {
      out.flush();
      socket.destroy();
    },
  };
}

/**
 * Connections per source that have not reached "up" (limits.maxHalfOpenPerSource).
 */
export class HalfOpenBound {
  private readonly counts = new Map<string, number>();

  /** Count one more from `source`; its release (idempotent), or undefined when the source is at `max`. */
  admit(source: string, max: number): (() => void) | undefined {
    const n = this.counts.get(source) ?? 0;
    if (n >= max) return undefined;
    this.counts.set(source, n + 1);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      const left = (this.counts.get(source) ?? 1) - 1;
      if (left <= 0) this.counts.delete(source);
      else this.counts.set(source, left);
    };
  }

  of(source: string): number {
    return this.counts.get(source) ?? 0;
  }
}

/** Listen on `fd` (already bound, e.g. in another namespace) or host:port; a failure is a VpnError with the reason. */
export function listenOn(server: net.Server, where: { label: string; host: string; port: number; fd?: number | undefined }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const code = e.code === 'EADDRINUSE' ? 'ERR_ADDRESS_IN_USE' : e.code === 'EACCES' ? 'ERR_PERMISSION' : 'ERR_NATIVE';
      reject(
        new VpnError(code, `${where.label}: cannot listen on ${where.host}:${where.port}: ${e.message}${e.code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}`, {
          cause: e,
        }),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    // Node would listen() with its own backlog of 511 (on a given fd too, replacing the one it was made with).
    // For an fd, Node takes the backlog only as the second argument, not from the options.
    if (where.fd !== undefined) server.listen({ fd: where.fd }, LISTEN_BACKLOG);
    else server.listen({ host: where.host, port: where.port, backlog: LISTEN_BACKLOG });
  });
}

/** Counters for tests and diagnostics (protocols add their own). */
export interface TunnelCounters {
  /** Connections that became sessions. */
  accepted: number;
  refusedHalfOpen: number;
  up: number;
}

/** The service's hooks into one session's life (give them to the session's events). */
export interface SessionTracking<S> {
  /** The session is visible (hand-shake done): registered with the gateway. */
  visible(s: S): void;
  /** IP flows: no longer half-open. */
  up(): void;
  /** Gone: no longer half-open, unregistered, forgotten. */
  closed(s: S): void;
}

export abstract class TunnelService<S extends TunnelSession> implements ProtocolServer {
  abstract readonly name: TcpTunnel;
  abstract readonly counters: TunnelCounters;
  protected state = ServiceState.Stopped;
  protected ctx: ServerContext | undefined;
  protected log!: Logger;
  protected clock!: Clock;
  protected server: net.Server | undefined;
  /** The verifier sessions use: the gateway's (or our own local store), with the tunnel's policy around it. */
  protected verifier: Verifier | undefined;
  private ownVerifier: GatewayVerifier | undefined;
  protected readonly sessions = new Set<S>();
  /** Every accepted socket (TCP and what is layered on it), until it closes. */
  protected readonly sockets = new Set<net.Socket>();
  private readonly halfOpen = new HalfOpenBound();

  /** Bound address (after start). */
  address(): net.AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Sessions not yet gone. */
  get liveSessions(): readonly S[] {
    return [...this.sessions];
  }

  protected transition(to: ServiceState, reason: string): void {
    logTransition(this.log, `${this.name}-service`, this.state, to, reason, 'info');
    this.state = to;
  }

  async start(ctx: ServerContext): Promise<void> {
    const label = this.name.toUpperCase();
    if (this.state !== ServiceState.Stopped) throw new VpnError('ERR_USAGE', `the ${label} server is already started`);
    this.ctx = ctx;
    this.log = ctx.log.child({ protocol: this.name });
    this.clock = ctx.clock;
    const cfg = ctx.config();
    const dp = ctx.dataplanes()[0];
    if (!dp) throw new VpnError('ERR_NO_TUN', `the ${label} server needs the data plane (TUN device), and there is none`);
    this.check(cfg, dp);
    const pool = cfg[this.name].pool;
    if (!ctx.pool(pool)) throw new VpnError('ERR_CONFIG_INVALID', `${this.name}.pool: no pool named ${pool}`);
    await this.prepare(ctx, dp);

    // `vpngw serve` shares one verifier between the protocol servers; embedded without one, we open the local store.
    let base = ctx.verifier;
    if (!base) {
      this.ownVerifier = await openGatewayVerifier({
        usersFile: cfg.users.file,
        clock: ctx.clock,
        log: this.log,
        failuresPerMinute: cfg.limits.authFailuresPerSourcePerMinute,
      });
      base = this.ownVerifier.verifier;
    }
    this.verifier = this.policyVerifier(base, ctx);

    await this.listen(cfg);
    this.server?.on('error', (e) => this.log.error({ err: e }, `${this.name}: listener error`));
    const a = this.address();
    this.transition(ServiceState.Listening, `listening on ${a ? `${a.address}:${a.port}` : `fd ${this.listenFd()}`}`);
  }

  /** Refuse a config or data plane the protocol cannot run on (before anything is opened). */
  protected check(cfg: Readonly<Config>, dp: DataPlane): void {
    void cfg;
    void dp;
  }
  /** Load or open what the protocol needs before it listens. */
  protected prepare(ctx: ServerContext, dp: DataPlane): Promise<void> {
    void ctx;
    void dp;
    return Promise.resolve();
  }
  /** The tunnel's policy around the shared verifier. */
  protected abstract policyVerifier(base: Verifier, ctx: ServerContext): Verifier;
  /** Make `this.server` and listen; undo what prepare() opened if that fails. */
  protected abstract listen(cfg: Readonly<Config>): Promise<void>;
  /** The fd listened on, when given one. */
  protected abstract listenFd(): number | undefined;
  /** After the listener closed and every session is gone (stop()). */
  protected stopped(): void {}

  // ---------------------------------------------------------------- connections

  /**
   * A new TCP connection: refused (destroyed) when the service is not
   * listening or its source is at the half-open bound; otherwise tracked
   * until it closes. Returns the release of its half-open count. `source`:
   * the client's address when it is not the TCP peer's (a PROXY header from
   * a load balancer); the bound then counts it, and the refusal names both.
   */
  protected admitConnection(socket: net.Socket, source?: string): (() => void) | undefined {
    const cfg = this.ctx!.config();
    const tcpPeer = normalizePeerAddress(socket.remoteAddress);
    const src = source ?? tcpPeer;
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return undefined;
    }
    const release = this.halfOpen.admit(src, cfg.limits.maxHalfOpenPerSource);
    if (!release) {
      this.counters.refusedHalfOpen++;
      this.log.warn(
        { source: src, ...(source !== undefined ? { via: tcpPeer } : {}), halfOpen: this.halfOpen.of(src) },
        `${this.name}: refusing a connection: too many unfinished set-ups from this source`,
      );
      socket.destroy();
      return undefined;
    }
    this.trackSocket(socket);
    socket.once('close', release);
    return release;
  }

  protected trackSocket(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** What every session of the service shares (peer, clock, logger, metrics, the admission check). */
  protected sessionBase(socket: net.Socket): {
    dp: DataPlane;
    clock: Clock;
    log: Logger;
    peer: { address: string; port: number };
    admit: () => boolean;
    metrics: ServerContext['metrics'];
    steering?: ServerContext['steering'];
  } {
    const ctx = this.ctx!;
    return {
      dp: ctx.dataplanes()[0]!,
      clock: this.clock,
      log: this.log,
      peer: { address: normalizePeerAddress(socket.remoteAddress), port: socket.remotePort ?? 0 },
      // Total sessions (limits.maxSessions), beyond the data-plane table.
      admit: () => (ctx.totalSessions?.() ?? ctx.sessions.size) < ctx.config().limits.maxSessions,
      metrics: ctx.metrics,
      ...(ctx.steering ? { steering: ctx.steering } : {}),
    };
  }

  /** PPP options from the config: the tunnel's pool, the gateway's inner address, name servers, the verifier. */
  protected pppOptions(cfg: Readonly<Config>, methods: TunnelPppOptions['methods']): TunnelPppOptions {
    return {
      methods,
      verifier: this.verifier!,
      allocator: this.ctx!.pool(cfg[this.name].pool)!,
      localAddress: cfg.dataplane.gateway,
      ...(cfg.dns.primary ? { dns: { primary: cfg.dns.primary, ...(cfg.dns.secondary ? { secondary: cfg.dns.secondary } : {}) } } : {}),
      ...(cfg.nbns.primary ? { nbns: { primary: cfg.nbns.primary, ...(cfg.nbns.secondary ? { secondary: cfg.nbns.secondary } : {}) } } : {}),
      serverName: 'vpngw',
    };
  }

  /** The service's side of a new session's life; `releaseHalfOpen` is the connection's. */
  protected tracking(releaseHalfOpen: () => void): SessionTracking<S> {
    let unregister: (() => void) | undefined;
    return {
      visible: (s) => {
        unregister = this.ctx!.sessions.add(s.managed());
      },
      up: () => {
        this.counters.up++;
        releaseHalfOpen();
      },
      closed: (s) => {
        releaseHalfOpen();
        unregister?.();
        this.sessions.delete(s);
      },
    };
  }

  /** Feed the socket to the session: bytes, errors (logged as the session's), close. */
  protected attach(socket: net.Socket, session: S): void {
    this.sessions.add(session);
    socket.on('data', (chunk: Buffer) => session.input(chunk));
    socket.on('error', (e) => session.transportError(e));
    socket.once('close', () => session.transportClosed());
  }

  // ---------------------------------------------------------------- operations

  reload(config: Readonly<Config>): void {
    void config;
    this.ownVerifier?.reload().catch((e: unknown) => this.log.error({ err: e }, `${this.name}: user store reload failed`));
  }

  async stop(graceful: boolean, deadlineMs: number): Promise<void> {
    if (this.state !== ServiceState.Listening) return;
    this.transition(ServiceState.Draining, graceful ? 'graceful stop' : 'stop');
    const closedListener = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    if (graceful && this.sessions.size) {
      const all = Promise.all([...this.sessions].map((s) => s.teardown('server shutting down')));
      const wait = Math.max(0, deadlineMs - this.clock.now());
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, wait)))]);
      clearTimeout(timer);
    }
    for (const s of [...this.sessions]) s.abort('server stopped');
    for (const so of [...this.sockets]) so.destroy();
    await closedListener;
    this.stopped();
    this.transition(ServiceState.Stopped, 'all sessions closed');
  }
}
