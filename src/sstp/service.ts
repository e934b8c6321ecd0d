/**
 * The SSTP protocol server of the gateway (`vpngw serve` loads it through
 * src/sstp/server.ts's createProtocolServer): a node:tls listener (TLS 1.2+)
 * whose connections each become an {@link SstpServerSession}.
 *
 *   TCP accept ─ [sstp.proxyProtocol: PROXY header (bounded time and size),
 *     its source becomes the peer] ─ half-open bound per source ─► TLS handshake (handshakeTimeout)
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
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Config } from '../config/schema.js';
import type { ServerContext } from '../admin/gateway.js';
import type { AuthOutcome, TlsFailureReason } from '../metrics/registry.js';
import type { AuthMethod, Verifier } from '../ppp/auth/types.js';
import { sessionPolicyVerifier, type SessionPolicy } from '../aaa/gateway-verifier.js';
import { ServiceState, TunnelService, listenOn, normalizePeerAddress, socketTransport, type TunnelCounters } from '../tunnel/service.js';
import { formatPeer } from '../tunnel/session.js';
import { DEFAULT_PROXY_HEADER_TIMEOUT_MS, PROXY_HEADER_FAILURES, readProxyHeader, type ProxyHeaderFailure } from '../net/proxy-socket.js';
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
  readonly counters: TunnelCounters & { tlsFailures: number; httpRejected: number; proxyRefused: Record<ProxyHeaderFailure, number>; proxyUntrusted: number } = {
    accepted: 0,
    refusedHalfOpen: 0,
    tlsFailures: 0,
    httpRejected: 0,
    up: 0,
    // Connections closed for want of a valid PROXY header (sstp.proxyProtocol), by reason.
    proxyRefused: Object.fromEntries(PROXY_HEADER_FAILURES.map((r) => [r, 0])) as Record<ProxyHeaderFailure, number>,
    // Connections closed because they came from outside sstp.proxyTrusted.
    proxyUntrusted: 0,
  };
  private cert: ServerCertificate | undefined;
  /** Per accepted TCP connection (remote address|port): stop counting it as half-open. */
  private readonly halfOpenRelease = new Map<string, () => void>();
  /** sstp.proxyProtocol: per accepted TCP connection (remote address|port), the client the PROXY header named, and its half-open release. */
  private readonly proxied = new Map<string, { peer: { address: string; port: number }; release: () => void }>();

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
    // sstp.proxyProtocol: a plain TCP listener reads each connection's PROXY header, then hands it to `server`.
    const listener = cfg.sstp.proxyProtocol ? this.proxyFront(server) : server;
    this.server = listener;
    server.on('connection', (socket: net.Socket) => this.onTcpConnection(socket));
    server.on('secureConnection', (socket: tls.TLSSocket) => this.onTlsConnection(socket));
    server.on('tlsClientError', (err, socket) => {
      this.counters.tlsFailures++;
      const reason = tlsFailureReason(err);
      this.ctx!.metrics.tlsHandshakeFailure(reason);
      const proxied = this.proxied.get(`${socket.remoteAddress}|${socket.remotePort}`);
      this.log.info(
        { peer: proxied?.peer.address ?? normalizePeerAddress(socket.remoteAddress), ...(proxied ? { via: normalizePeerAddress(socket.remoteAddress) } : {}), reason, err: err.message },
        'sstp: TLS handshake failed',
      );
      socket.destroy();
    });
    await listenOn(listener, { label: 'sstp', host: cfg.sstp.listen, port: cfg.sstp.port, fd: this.opts.listenFd });
  }

  /**
   * The listener in front of the TLS server with sstp.proxyProtocol: every
   * connection must open with a PROXY header (the spec, section 2: the
   * receiver "MUST NOT try to guess whether the protocol header is present").
   * The connection then goes to the TLS server with what followed the header
   * (its 'connection' event, which node:tls documents for injecting
   * connections), so TLS runs with the listener's options and handlers.
   */
  private proxyFront(tlsServer: tls.Server): net.Server {
    const front = net.createServer({ noDelay: true });
    const trusted = trustedProxies(this.ctx!.config().sstp.proxyTrusted);
    front.on('connection', (socket: net.Socket) => {
      if (trusted && !isTrusted(trusted, socket.remoteAddress)) {
        // Not one of the load balancers: its header would be a forged source address.
        this.counters.proxyUntrusted++;
        this.ctx!.metrics.proxyRefused('untrusted');
        this.log.warn({ peer: normalizePeerAddress(socket.remoteAddress) }, 'sstp: connection closed: not from a trusted proxy (sstp.proxyTrusted)');
        socket.destroy();
        return;
      }
      this.onProxiedConnection(socket, tlsServer);
    });
    return front;
  }

  /**
   * One connection from the load balancer. The header must arrive within
   * min(limits.handshakeTimeout, DEFAULT_PROXY_HEADER_TIMEOUT_MS) and 16 +
   * PROXY_V2_MAX_LENGTH octets (107 for v1); without a valid one the
   * connection is closed and counted (counters.proxyRefused).
   *
   * The half-open bound (limits.maxHalfOpenPerSource) counts the client the
   * header names, not the TCP peer: every client arrives from the load
   * balancer's few addresses, and bounding those would cap the whole service
   * at that many unfinished set-ups. Until its header is in, a connection is
   * bounded by the header's deadline and size only. LOCAL (health checks)
   * and UNKNOWN / UNSPEC headers count against the TCP peer, as their
   * connection is the balancer's own.
   */
  private onProxiedConnection(socket: net.Socket, tlsServer: tls.Server): void {
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return;
    }
    this.trackSocket(socket);
    const via = { address: normalizePeerAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    const cfg = this.ctx!.config();
    const timeoutMs = Math.min(cfg.limits.handshakeTimeout, DEFAULT_PROXY_HEADER_TIMEOUT_MS);
    void readProxyHeader(socket, { clock: this.clock, timeoutMs }).then((r) => {
      if (this.state !== ServiceState.Listening) {
        socket.destroy();
        return;
      }
      if (!r.ok) {
        this.counters.proxyRefused[r.reason]++;
        this.ctx!.metrics.proxyRefused(r.reason);
        this.log.info({ peer: formatPeer(via), reason: r.reason, err: r.message }, 'sstp: connection closed: no valid PROXY protocol header');
        socket.destroy();
        return;
      }
      const src = r.header.addresses?.source ?? via;
      const peer = { address: normalizePeerAddress(src.address), port: src.port };
      const release = this.admitConnection(socket, peer.address);
      if (!release) return;
      const key = `${socket.remoteAddress}|${socket.remotePort}`;
      this.proxied.set(key, { peer, release });
      socket.once('close', () => this.proxied.delete(key));
      this.log.debug({ peer: formatPeer(peer), via: formatPeer(via), version: r.header.version, command: r.header.command }, 'sstp: PROXY header read');
      tlsServer.emit('connection', socket);
    });
  }

  // ---------------------------------------------------------------- connections

  private onTcpConnection(socket: net.Socket): void {
    // The TLS socket made from this one has the same remote address and port.
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    // Behind a PROXY-protocol load balancer, admitted already (onProxiedConnection).
    const release = this.proxied.get(key)?.release ?? this.admitConnection(socket);
    if (!release) return;
    this.halfOpenRelease.set(key, release);
    socket.once('close', () => this.halfOpenRelease.delete(key));
  }

  private onTlsConnection(socket: tls.TLSSocket): void {
    const ctx = this.ctx!;
    const cfg = ctx.config();
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const release = this.halfOpenRelease.get(key);
    const proxied = this.proxied.get(key);
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    this.trackSocket(socket);
    const track = this.tracking(() => release?.());
    const session = new SstpServerSession({
      ...this.sessionBase(socket),
      // Behind a load balancer the client the PROXY header named is the peer: logs, listing, per-source auth throttle.
      ...(proxied ? { peer: proxied.peer } : {}),
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

/** sstp.proxyTrusted as a BlockList (undefined: any source). */
export function trustedProxies(cidrs: readonly string[]): net.BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new net.BlockList();
  for (const c of cidrs) {
    const [addr, len] = c.split('/') as [string, string];
    list.addSubnet(addr, Number(len), net.isIPv6(addr) ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** Whether a TCP peer (IPv4, IPv6 or IPv4-mapped IPv6) is in the trusted list. */
export function isTrusted(list: net.BlockList, address: string | undefined): boolean {
  if (!address) return false;
  const a = normalizePeerAddress(address);
  return list.check(a, net.isIPv6(a) ? 'ipv6' : 'ipv4');
}
