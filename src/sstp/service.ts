/**
 * The SSTP protocol server of the gateway (`vpngw serve` loads it through
 * src/sstp/server.ts's createProtocolServer): a node:tls listener (TLS 1.2+)
 * whose connections each become an {@link SstpServerSession}.
 *
 *   TCP accept ─ half-open bound per source ─► TLS handshake (handshakeTimeout)
 *     ─► HTTP head (bounded size and time) ─► admission (limits.maxSessions,
 *     data-plane table) ─► SSTP call + PPP + data plane ─► registered session
 *
 * Service life:
 *
 *   Stopped ──start()──► Listening ──stop()──► Draining ──(all gone / deadline)──► Stopped
 *
 * Bounds (config `limits`): TLS handshake time, HTTP head time and size,
 * connections per source that have not reached Call Connected, total
 * sessions, sessions per user (checked when the credentials verify), and
 * authentication failures per source (throttleVerifier, when this server
 * builds its own verifier).
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { VpnError } from '../util/errors.js';
import { logTransition, type Logger } from '../util/log.js';
import type { Clock } from '../util/clock.js';
import type { Config } from '../config/schema.js';
import type { ProtocolServer, ServerContext } from '../admin/gateway.js';
import type { ManagedSession } from '../admin/types.js';
import type { AuthOutcome, TlsFailureReason } from '../metrics/registry.js';
import type { AuthMethod, Verifier } from '../ppp/auth/types.js';
import { openGatewayVerifier, sessionPolicyVerifier, type GatewayVerifier, type SessionPolicy } from '../aaa/gateway-verifier.js';
import { SLOT_MAX_PAYLOAD } from '../../assembly/abi.js';
import { HashProtocol, type SstpTimers } from './constants.js';
import { certificateHashes } from './binding.js';
import { loadOrCreateCertificate, type CertAlgorithm, type ServerCertificate } from './cert.js';
import { SSTP_MAX_MRU, SstpServerSession, type ServerTransport } from './server-session.js';

// Our choices.
/** After end(), how long a socket may take to flush before it is destroyed. */
export const SOCKET_LINGER_MS = 2_000;

export enum ServiceState {
  Stopped = 'Stopped',
  Listening = 'Listening',
  Draining = 'Draining',
}

export interface SstpServiceOptions {
  /** Listen on this already bound and listening socket (native.tcpListener, e.g. in another namespace). */
  listenFd?: number;
  /** Key type of a generated certificate (default ECDSA P-256). */
  certAlgorithm?: CertAlgorithm;
  /** Names put in a generated certificate (default: the host name, and the listen address when specific). */
  certNames?: readonly string[];
  /** Timer overrides beyond the config (tests). */
  timers?: Partial<SstpTimers>;
  /** LCP echo interval (default: the PPP engine's). */
  lcpEchoIntervalMs?: number;
}

/** Hash Protocol Bitmask (MS-SSTP 2.2.6) for the configured names. */
export function hashBitmask(hashes: readonly ('sha256' | 'sha1')[]): number {
  return hashes.reduce((m, h) => m | (h === 'sha256' ? HashProtocol.Sha256 : HashProtocol.Sha1), 0);
}

/** Map a TLS handshake error to the metric's bounded reason set. */
export function tlsFailureReason(e: unknown): TlsFailureReason {
  const code = String((e as NodeJS.ErrnoException | undefined)?.code ?? '');
  const msg = String((e as Error | undefined)?.message ?? '');
  const s = `${code} ${msg}`.toUpperCase();
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || s.includes('TIMEOUT')) return 'timeout';
  if (code === 'ECONNRESET' || s.includes('SOCKET HANG UP')) return 'reset';
  if (/VERSION|UNSUPPORTED_PROTOCOL/.test(s)) return 'protocol_version';
  if (/NO_SHARED_CIPHER|NO_CIPHERS|NO_SUITABLE|HANDSHAKE_FAILURE/.test(s)) return 'no_shared_cipher';
  if (/CERT|UNKNOWN_CA/.test(s)) return 'certificate';
  return 'other';
}

/** `a.b.c.d` for IPv4-mapped IPv6 peers, the address itself otherwise. */
export function normalizePeerAddress(a: string | undefined): string {
  if (!a) return '0.0.0.0';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

/**
 * SSTP policy around any verifier: sessions per user and no MPPE (TLS
 * encrypts SSTP; a per-user MPPE policy does not apply to it).
 */
export function sstpPolicyVerifier(
  inner: Verifier,
  opts: { sessionsOf(user: string): number; maxPerUser(): number; outcome?(method: AuthMethod, outcome: AuthOutcome): void },
): Verifier {
  return sessionPolicyVerifier(inner, { ...opts, ...(opts.outcome ? { outcome: opts.outcome as SessionPolicy['outcome'] } : {}), stripMppe: true });
}

export class SstpService implements ProtocolServer {
  readonly name = 'sstp' as const;
  private state = ServiceState.Stopped;
  private ctx: ServerContext | undefined;
  private log!: Logger;
  private clock!: Clock;
  private server: tls.Server | undefined;
  private cert: ServerCertificate | undefined;
  private verifier: Verifier | undefined;
  private ownVerifier: GatewayVerifier | undefined;
  private readonly sessions = new Set<SstpServerSession>();
  private readonly sockets = new Set<net.Socket>();
  private readonly halfOpen = new Map<string, number>();
  /** Per accepted TCP connection (remote address|port): stop counting it as half-open. */
  private readonly halfOpenRelease = new Map<string, () => void>();
  /** Counters for tests and diagnostics. */
  readonly counters = { accepted: 0, refusedHalfOpen: 0, tlsFailures: 0, httpRejected: 0, up: 0 };

  constructor(private readonly opts: SstpServiceOptions = {}) {}

  get certificate(): ServerCertificate | undefined {
    return this.cert;
  }

  /** Bound address (after start). */
  address(): net.AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Live connections past the TLS handshake. */
  get liveSessions(): readonly SstpServerSession[] {
    return [...this.sessions];
  }

  private transition(to: ServiceState, reason: string): void {
    logTransition(this.log, 'sstp-service', this.state, to, reason, 'info');
    this.state = to;
  }

  async start(ctx: ServerContext): Promise<void> {
    if (this.state !== ServiceState.Stopped) throw new VpnError('ERR_USAGE', 'the SSTP server is already started');
    this.ctx = ctx;
    this.log = ctx.log.child({ protocol: 'sstp' });
    this.clock = ctx.clock;
    const cfg = ctx.config();
    if (!ctx.dataplanes()[0]) throw new VpnError('ERR_NO_TUN', 'the SSTP server needs the data plane (TUN device), and there is none');
    if (!ctx.pool(cfg.sstp.pool)) throw new VpnError('ERR_CONFIG_INVALID', `sstp.pool: no pool named ${cfg.sstp.pool}`);

    const generated = cfg.sstp.certificate === path.join(cfg.stateDir, 'sstp-cert.pem') && cfg.sstp.key === path.join(cfg.stateDir, 'sstp-key.pem');
    const host = os.hostname();
    const listenIsSpecific = cfg.sstp.listen !== '0.0.0.0' && cfg.sstp.listen !== '::';
    this.cert = await loadOrCreateCertificate({
      certFile: cfg.sstp.certificate,
      keyFile: cfg.sstp.key,
      generate: generated,
      commonName: this.opts.certNames?.[0] ?? host,
      altNames: this.opts.certNames ?? [host, ...(listenIsSpecific ? [cfg.sstp.listen] : [])],
      ...(this.opts.certAlgorithm ? { algorithm: this.opts.certAlgorithm } : {}),
    });
    const certInfo = { subject: this.cert.subject, fingerprint256: this.cert.fingerprint256, validTo: this.cert.validTo, file: cfg.sstp.certificate };
    if (this.cert.generated) this.log.info(certInfo, 'sstp: generated a self-signed certificate');
    else this.log.info(certInfo, 'sstp: certificate loaded');
    ctx.progress?.(
      `sstp: ${this.cert.generated ? 'generated a self-signed' : 'using the'} certificate ${cfg.sstp.certificate}\n  SHA-256 fingerprint ${this.cert.fingerprint256}`,
    );

    let base = ctx.verifier;
    if (!base) {
      // Standalone use (tests, embedders) without the gateway's shared verifier.
      this.ownVerifier = await openGatewayVerifier({
        usersFile: cfg.users.file,
        clock: ctx.clock,
        log: this.log,
        failuresPerMinute: cfg.limits.authFailuresPerSourcePerMinute,
      });
      base = this.ownVerifier.verifier;
    }
    this.verifier = sstpPolicyVerifier(base, {
      sessionsOf: (user) => ctx.sessions.countOfUser(user),
      maxPerUser: () => ctx.config().limits.maxSessionsPerUser,
      outcome: (method, outcome) => ctx.metrics.authResult(method, outcome),
    });

    const server = tls.createServer({
      cert: this.cert.certPem,
      key: this.cert.keyPem,
      minVersion: 'TLSv1.2',
      handshakeTimeout: cfg.limits.handshakeTimeout,
      // The tunnel carries interactive traffic and the inner TCP's own ACKs: no Nagle delay on top.
      noDelay: true,
    });
    this.server = server;
    server.on('connection', (socket: net.Socket) => this.onTcpConnection(socket));
    server.on('secureConnection', (socket: tls.TLSSocket) => this.onTlsConnection(socket));
    server.on('tlsClientError', (err, socket) => {
      this.counters.tlsFailures++;
      const reason = tlsFailureReason(err);
      ctx.metrics.tlsHandshakeFailure(reason);
      this.log.info({ peer: normalizePeerAddress(socket.remoteAddress), reason, err: err.message }, 'sstp: TLS handshake failed');
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        const code = e.code === 'EADDRINUSE' ? 'ERR_ADDRESS_IN_USE' : e.code === 'EACCES' ? 'ERR_PERMISSION' : 'ERR_NATIVE';
        reject(new VpnError(code, `sstp: cannot listen on ${cfg.sstp.listen}:${cfg.sstp.port}: ${e.message}${e.code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}`, { cause: e }));
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      if (this.opts.listenFd !== undefined) server.listen({ fd: this.opts.listenFd });
      else server.listen({ host: cfg.sstp.listen, port: cfg.sstp.port });
    });
    server.on('error', (e) => this.log.error({ err: e }, 'sstp: listener error'));
    const a = this.address();
    this.transition(ServiceState.Listening, `listening on ${a ? `${a.address}:${a.port}` : `fd ${this.opts.listenFd}`}`);
  }

  // ---------------------------------------------------------------- connections

  private source(socket: net.Socket): string {
    return normalizePeerAddress(socket.remoteAddress);
  }

  private onTcpConnection(socket: net.Socket): void {
    const cfg = this.ctx!.config();
    const src = this.source(socket);
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return;
    }
    const n = this.halfOpen.get(src) ?? 0;
    if (n >= cfg.limits.maxHalfOpenPerSource) {
      this.counters.refusedHalfOpen++;
      this.log.warn({ source: src, halfOpen: n }, 'sstp: refusing a connection: too many unfinished handshakes from this source');
      socket.destroy();
      return;
    }
    this.halfOpen.set(src, n + 1);
    this.sockets.add(socket);
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      const left = (this.halfOpen.get(src) ?? 1) - 1;
      if (left <= 0) this.halfOpen.delete(src);
      else this.halfOpen.set(src, left);
    };
    // The TLS socket made from this one has the same remote address and port.
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.halfOpenRelease.set(key, release);
    socket.once('close', () => {
      release();
      this.halfOpenRelease.delete(key);
      this.sockets.delete(socket);
    });
  }

  private onTlsConnection(socket: tls.TLSSocket): void {
    const ctx = this.ctx!;
    const cfg = ctx.config();
    const release = this.halfOpenRelease.get(`${socket.remoteAddress}|${socket.remotePort}`);
    const releaseHalfOpen = () => release?.();
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    this.sockets.add(socket);
    const dp = ctx.dataplanes()[0]!;
    const transport: ServerTransport = {
      write: (b, done) => {
        if (!socket.destroyed && socket.writable) socket.write(b, done);
      },
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
    };
    let unregister: (() => void) | undefined;
    const session: SstpServerSession = new SstpServerSession({
      dp,
      transport,
      clock: this.clock,
      log: this.log,
      peer: { address: this.source(socket), port: socket.remotePort ?? 0 },
      certHashes: certificateHashes(this.cert!.der),
      hashProtocols: hashBitmask(cfg.sstp.hashes),
      timers: {
        connectRequestMs: cfg.sstp.negotiationTimeout,
        negotiationMs: cfg.sstp.negotiationTimeout,
        helloMs: cfg.sstp.helloInterval,
        ...this.opts.timers,
      },
      httpTimeoutMs: cfg.limits.handshakeTimeout,
      admit: () => ctx.sessions.size < ctx.config().limits.maxSessions,
      ppp: {
        methods: cfg.auth.sstp,
        verifier: this.verifier!,
        allocator: ctx.pool(cfg.sstp.pool)!,
        localAddress: cfg.dataplane.gateway,
        ...(cfg.dns.primary ? { dns: { primary: cfg.dns.primary, ...(cfg.dns.secondary ? { secondary: cfg.dns.secondary } : {}) } } : {}),
        ...(cfg.nbns.primary ? { nbns: { primary: cfg.nbns.primary, ...(cfg.nbns.secondary ? { secondary: cfg.nbns.secondary } : {}) } } : {}),
        mru: cfg.dataplane.tun.mtu,
        maxMru: Math.min(SSTP_MAX_MRU, SLOT_MAX_PAYLOAD),
        serverName: 'vpngw',
        ...(this.opts.lcpEchoIntervalMs !== undefined ? { echoIntervalMs: this.opts.lcpEchoIntervalMs } : {}),
      },
      metrics: ctx.metrics,
      events: {
        onAccepted: (s) => {
          const managed: ManagedSession = { id: s.id, protocol: 'sstp', info: () => s.info(), username: () => s.username, teardown: (reason) => s.teardown(reason) };
          unregister = ctx.sessions.add(managed);
        },
        onRejected: () => {
          this.counters.httpRejected++;
        },
        onUp: () => {
          this.counters.up++;
          releaseHalfOpen();
        },
        onClosed: () => {
          releaseHalfOpen();
          unregister?.();
          this.sessions.delete(session);
        },
      },
    });
    this.sessions.add(session);
    socket.on('data', (chunk: Buffer) => session.input(chunk));
    socket.on('error', (e) => this.log.debug({ session: session.id, err: e.message }, 'sstp: socket error'));
    socket.once('close', () => {
      this.sockets.delete(socket);
      session.transportClosed();
    });
    session.start();
  }

  // ---------------------------------------------------------------- operations

  reload(config: Readonly<Config>): void {
    void config;
    this.ownVerifier?.reload().catch((e: unknown) => this.log.error({ err: e }, 'sstp: user store reload failed'));
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
    this.transition(ServiceState.Stopped, 'all sessions closed');
  }
}

/** What `vpngw serve` calls (through src/sstp/server.ts). */
export function createProtocolServer(opts: SstpServiceOptions = {}): SstpService {
  return new SstpService(opts);
}
