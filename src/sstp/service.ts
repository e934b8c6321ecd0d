/**
 * The SSTP protocol server of the gateway (`vpngw serve` loads it through
 * src/sstp/server.ts's createProtocolServer): a node:tls listener (TLS 1.2+)
 * whose connections each become an {@link SstpServerSession}.
 *
 *   TCP accept ─ half-open bound per source ─► TLS handshake (handshakeTimeout)
 *     ─► HTTP head (bounded size and time) ─► admission (limits.maxSessions,
 *     data-plane table) ─► SSTP call + PPP + data plane ─► registered session
 *
 * Service life (src/tunnel/service.ts, which owns the listener, the
 * half-open bound, the verifier, registration and the graceful stop):
 *
 *   Stopped ──start()──► Listening ──stop()──► Draining ──(all gone / deadline)──► Stopped
 *
 * Bounds (config `limits`): TLS handshake time, HTTP head time and size,
 * connections per source that have not reached Call Connected, total
 * sessions, sessions per user (checked when the credentials verify), and
 * authentication failures per source (throttleVerifier, when this server
 * builds its own verifier).
 */
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Config } from '../config/schema.js';
import type { ServerContext } from '../admin/gateway.js';
import type { AuthOutcome, TlsFailureReason } from '../metrics/registry.js';
import type { AuthMethod, Verifier } from '../ppp/auth/types.js';
import { sessionPolicyVerifier, type SessionPolicy } from '../aaa/gateway-verifier.js';
import { ServiceState, TunnelService, listenOn, normalizePeerAddress, socketTransport, type TunnelCounters } from '../tunnel/service.js';
import { SLOT_MAX_PAYLOAD } from '../../assembly/abi.js';
import { HashProtocol, type SstpTimers } from './constants.js';
import { certificateHashes } from './binding.js';
import { loadOrCreateCertificate, type CertAlgorithm, type ServerCertificate } from './cert.js';
import { SSTP_MAX_MRU, SstpServerSession } from './server-session.js';

export { SOCKET_LINGER_MS, ServiceState, normalizePeerAddress } from '../tunnel/service.js';

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

export class SstpService extends TunnelService<SstpServerSession> {
  readonly name = 'sstp' as const;
  readonly counters: TunnelCounters & { tlsFailures: number; httpRejected: number } = { accepted: 0, refusedHalfOpen: 0, tlsFailures: 0, httpRejected: 0, up: 0 };
  private cert: ServerCertificate | undefined;
  /** Per accepted TCP connection (remote address|port): stop counting it as half-open. */
  private readonly halfOpenRelease = new Map<string, () => void>();

  constructor(private readonly opts: SstpServiceOptions = {}) {
    super();
  }

  get certificate(): ServerCertificate | undefined {
    return this.cert;
  }

  protected override async prepare(ctx: ServerContext): Promise<void> {
    const cfg = ctx.config();
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
  }

  protected override policyVerifier(base: Verifier, ctx: ServerContext): Verifier {
    return sstpPolicyVerifier(base, {
      sessionsOf: (user) => ctx.sessions.countOfUser(user),
      maxPerUser: () => ctx.config().limits.maxSessionsPerUser,
      outcome: (method, outcome) => ctx.metrics.authResult(method, outcome),
    });
  }

  protected override listenFd(): number | undefined {
    return this.opts.listenFd;
  }

  protected override async listen(cfg: Readonly<Config>): Promise<void> {
    const server = tls.createServer({
      cert: this.cert!.certPem,
      key: this.cert!.keyPem,
      minVersion: 'TLSv1.2',
      maxVersion: cfg.sstp.tlsMaxVersion,
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
      this.ctx!.metrics.tlsHandshakeFailure(reason);
      this.log.info({ peer: normalizePeerAddress(socket.remoteAddress), reason, err: err.message }, 'sstp: TLS handshake failed');
      socket.destroy();
    });
    await listenOn(server, { label: 'sstp', host: cfg.sstp.listen, port: cfg.sstp.port, fd: this.opts.listenFd });
  }

  // ---------------------------------------------------------------- connections

  private onTcpConnection(socket: net.Socket): void {
    const release = this.admitConnection(socket);
    if (!release) return;
    // The TLS socket made from this one has the same remote address and port.
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.halfOpenRelease.set(key, release);
    socket.once('close', () => this.halfOpenRelease.delete(key));
  }

  private onTlsConnection(socket: tls.TLSSocket): void {
    const ctx = this.ctx!;
    const cfg = ctx.config();
    const release = this.halfOpenRelease.get(`${socket.remoteAddress}|${socket.remotePort}`);
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    this.trackSocket(socket);
    const track = this.tracking(() => release?.());
    const session = new SstpServerSession({
      ...this.sessionBase(socket),
      transport: socketTransport(socket),
      certHashes: certificateHashes(this.cert!.der),
      hashProtocols: hashBitmask(cfg.sstp.hashes),
      timers: {
        connectRequestMs: cfg.sstp.negotiationTimeout,
        negotiationMs: cfg.sstp.negotiationTimeout,
        helloMs: cfg.sstp.helloInterval,
        ...this.opts.timers,
      },
      httpTimeoutMs: cfg.limits.handshakeTimeout,
      ppp: {
        ...this.pppOptions(cfg, cfg.auth.sstp),
        mru: cfg.dataplane.tun.mtu,
        maxMru: Math.min(SSTP_MAX_MRU, SLOT_MAX_PAYLOAD),
        ...(this.opts.lcpEchoIntervalMs !== undefined ? { echoIntervalMs: this.opts.lcpEchoIntervalMs } : {}),
      },
      events: {
        onAccepted: track.visible,
        onRejected: () => {
          this.counters.httpRejected++;
        },
        onUp: track.up,
        onClosed: track.closed,
      },
    });
    this.attach(socket, session);
    session.start();
  }
}

/** What `vpngw serve` calls (through src/sstp/server.ts). */
export function createProtocolServer(opts: SstpServiceOptions = {}): SstpService {
  return new SstpService(opts);
}
