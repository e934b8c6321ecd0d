/**
 * One SSTP connection on the server, after TLS: the HTTP exchange, the SSTP
 * call (MS-SSTP 3.3), the PPP server session and the data-plane session,
 * wired together. Transport-agnostic (the service gives it the TLS socket,
 * tests an in-memory one).
 *
 *   HTTP (SstpHttpAcceptor) ──200──► data-plane session attached, SSTP call started
 *      │                                 │ Call Connect Request / Ack
 *      │ refused: error response, closed  ▼
 *      │                              PPP (LCP, auth, IPCP) over the call's PPP gate
 *      │                                 │ auth ok ──► call.authenticated(HLAK)
 *      │                                 │ Call Connected verified + IPCP up ──► activate: IP flows
 *      ▼                                 ▼
 *   closed ◄──── call closed (disconnect / abort / timers) ◄── PPP down ──► Call Disconnect
 *
 * Frames in: every byte after the HTTP head goes to the data plane; what it
 * diverts comes back as whole SSTP control packets (fed to the call) and as
 * PPP frames that are not IP (re-wrapped as an SSTP data packet and fed to
 * the call too, so its state gate, MS-SSTP 3.3.7.2, decides whether PPP
 * sees them). Frames out: PPP and SSTP control through the call, straight to
 * the transport; downlink IP from the data plane, coalesced, also straight
 * to the transport.
 */
import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { DataPlane } from '../dataplane/engine.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { SessionInfo, SessionPhase } from '../admin/types.js';
import { PppSession, Phase, type PppDownInfo, type PppUpInfo } from '../ppp/index.js';
import type { AuthMethod, Verifier } from '../ppp/auth/types.js';
import type { AddressAllocator } from '../pool/types.js';
import type { NameServers } from '../ppp/ipcp/ipcp.js';
import { dataPacketBytes } from './codec.js';
import { SSTP_MAX_DATA_PAYLOAD, type SstpTimers } from './constants.js';
import type { CertificateHashes } from './binding.js';
import type { SstpCallEnd } from './call.js';
import { SstpServerCall, ServerState } from './server.js';
import { SstpHttpAcceptor, type SstpHttpRequest, type HttpRejectStatus } from './http.js';
import { SstpStreamPath, type StreamSocket } from './datapath.js';

// Our choices.
/** After our LCP Terminate-Request, how long to wait for PPP to finish before the Call Disconnect. */
export const TEARDOWN_LCP_WAIT_MS = 3_000;
/** PPP header room: the largest IP packet an SSTP data packet carries (protocol field + ff 03). */
export const SSTP_MAX_MRU = SSTP_MAX_DATA_PAYLOAD - 4;

/** The transport: a TLS socket or a test double. */
export interface ServerTransport extends StreamSocket {
  /** Flush what was written, then close. */
  end(): void;
}

export interface SstpServerSessionOptions {
  dp: DataPlane;
  transport: ServerTransport;
  clock: Clock;
  log: Logger;
  /** Peer's outer address and port. */
  peer: { address: string; port: number };
  certHashes: CertificateHashes;
  hashProtocols: number;
  timers?: Partial<SstpTimers>;
  /** HTTP request head deadline. */
  httpTimeoutMs: number;
  /** Admission beyond the session table (limits.maxSessions): false answers 503. */
  admit?: () => boolean;
  ppp: {
    methods: readonly AuthMethod[];
    verifier: Verifier;
    allocator: AddressAllocator;
    /** The gateway's inner address. */
    localAddress: string;
    dns?: NameServers;
    nbns?: NameServers;
    /** MRU we ask for (the TUN MTU); the data plane's slot bounds the largest packet. */
    mru: number;
    maxMru: number;
    serverName: string;
    /** LCP echo (0 disables); default the PPP engine's. */
    echoIntervalMs?: number;
    authTimeoutMs?: number;
  };
  metrics?: GatewayMetrics;
  /** Tests inject the nonce source. */
  randomBytes?: (n: number) => Uint8Array;
  /** Tests inject PPP's random source (magic numbers, identifiers). */
  pppRandom?: (n: number) => Uint8Array;
  events?: {
    /** HTTP accepted (the session becomes visible) or refused. */
    onAccepted?(s: SstpServerSession, request: SstpHttpRequest): void;
    onRejected?(status: HttpRejectStatus, reason: string): void;
    /** Call connected and PPP up: IP flows. */
    onUp?(s: SstpServerSession): void;
    /** Everything torn down. Called once. */
    onClosed?(s: SstpServerSession, end: SstpCallEnd | undefined): void;
  };
}

export class SstpServerSession {
  readonly id = randomUUID();
  readonly since = new Date();
  private readonly startedAt: number;
  private readonly log: Logger;
  private readonly acceptor: SstpHttpAcceptor;
  private phase: 'http' | 'sstp' | 'closed' = 'http';
  private path: SstpStreamPath | undefined;
  private call: SstpServerCall | undefined;
  private ppp: PppSession | undefined;
  private pppUp: PppUpInfo | undefined;
  private connected = false;
  private activated = false;
  private user: string | null = null;
  private lcpWait: Timer | undefined;
  private closedResolve!: () => void;
  /** Resolves when the session is fully torn down. */
  readonly closed: Promise<void> = new Promise((r) => (this.closedResolve = r));
  private ending: SstpCallEnd | undefined;
  private pppDown: PppDownInfo | undefined;

  constructor(private readonly opts: SstpServerSessionOptions) {
    this.startedAt = opts.clock.now();
    this.log = opts.log.child({ session: this.id, protocol: 'sstp', peer: this.peer });
    this.acceptor = new SstpHttpAcceptor({
      transport: { write: (b) => opts.transport.write(b), close: () => opts.transport.end() },
      clock: opts.clock,
      log: this.log,
      timeoutMs: opts.httpTimeoutMs,
      admit: () => this.admit(),
      onAccepted: (request, rest) => this.onHttpAccepted(request, rest),
      onRejected: (status, reason) => {
        this.finish(undefined);
        opts.events?.onRejected?.(status, reason);
      },
    });
  }

  /** `ip:port` (IPv6 in brackets). */
  get peer(): string {
    const a = this.opts.peer.address;
    return a.includes(':') ? `[${a}]:${this.opts.peer.port}` : `${a}:${this.opts.peer.port}`;
  }

  get state(): 'HTTP' | ServerState {
    return this.call ? this.call.state : this.phase === 'http' ? 'HTTP' : ServerState.ServerCallDisconnected;
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  /** The call is connected and PPP is up: IP flows. */
  get isUp(): boolean {
    return this.activated;
  }

  /** Still in the handshake (TLS done, call not yet connected). */
  get isHalfOpen(): boolean {
    return this.phase !== 'closed' && !this.connected;
  }

  get dataplaneIndex(): number | undefined {
    return this.path?.idx;
  }

  get username(): string | null {
    return this.user;
  }

  get endInfo(): { call: SstpCallEnd | undefined; ppp: PppDownInfo | undefined } {
    return { call: this.ending, ppp: this.pppDown };
  }

  get downlinkDropped(): number {
    return this.path?.stats.downlinkDropped ?? 0;
  }

  info(): SessionInfo {
    const c = this.path?.counters();
    return {
      id: this.id,
      protocol: 'sstp',
      user: this.user,
      peer: this.peer,
      innerAddress: this.pppUp?.ipv4?.peerAddress ?? null,
      state: this.sessionPhase(),
      since: this.since.toISOString(),
      bytesIn: c ? Number(c.upBytes) : 0,
      bytesOut: c ? Number(c.downBytes) : 0,
    };
  }

  private sessionPhase(): SessionPhase {
    if (this.phase === 'closed' || (this.call && !this.connected && this.call.isClosed)) return 'closing';
    const st = this.call?.state;
    if (st && st !== ServerState.ServerConnectRequestPending && st !== ServerState.ServerCallConnectedPending && st !== ServerState.ServerCallConnected) return 'closing';
    if (this.activated) return 'up';
    const ph = this.ppp?.phase;
    if (ph === Phase.Terminate) return 'closing';
    if (ph === Phase.Network) return 'network';
    if (ph === Phase.Authenticate) return 'authenticating';
    return 'establishing';
  }

  /** The TLS handshake is done: arm the HTTP read deadline. */
  start(): void {
    this.acceptor.start();
  }

  /** Bytes read from the transport. */
  input(chunk: Uint8Array): void {
    if (this.phase === 'http') this.acceptor.input(chunk);
    else if (this.phase === 'sstp') this.path!.input(chunk);
  }

  /** The transport closed or failed under us. */
  transportClosed(): void {
    if (this.phase === 'http') {
      this.acceptor.transportClosed();
      this.finish(undefined);
    } else if (this.call) this.call.transportClosed();
  }

  /**
   * Proper teardown: LCP Terminate-Request, then (PPP down, or after
   * TEARDOWN_LCP_WAIT_MS) SSTP Call Disconnect; resolves when the session is
   * gone. Before the call exists the connection is just closed.
   */
  teardown(reason: string): Promise<void> {
    if (this.phase === 'closed') return this.closed;
    if (this.phase === 'http' || !this.call) {
      this.acceptor.transportClosed();
      this.opts.transport.end();
      this.finish(undefined);
      return this.closed;
    }
    this.log.info({ reason }, 'sstp: tearing the session down');
    const ppp = this.ppp;
    if (ppp && ppp.phase !== Phase.Dead) {
      ppp.close('admin', reason);
      if ((ppp.phase as Phase) !== Phase.Dead && !this.lcpWait) {
        this.lcpWait = this.opts.clock.setTimer(TEARDOWN_LCP_WAIT_MS, () => {
          this.lcpWait = undefined;
          this.call?.disconnect(reason);
        });
      }
    } else {
      this.call.disconnect(reason);
    }
    return this.closed;
  }

  /** Drop everything now, without any message (shutdown past its deadline). */
  abort(reason: string): void {
    if (this.call) this.call.close(reason);
    else {
      this.acceptor.transportClosed();
      this.opts.transport.end();
      this.finish(undefined);
    }
  }

  // ---------------------------------------------------------------- HTTP

  private admit(): boolean {
    if (this.opts.admit && !this.opts.admit()) {
      this.log.warn('sstp: refusing a connection: session limit reached');
      return false;
    }
    this.path = SstpStreamPath.open(this.opts.dp, this.opts.transport, {
      onControl: (packet) => this.call?.input(packet),
      // Through the call's PPP gate (3.3.7.2): it drops what the call state does not admit.
      onPppFrame: (frame) => {
        if (frame.length <= SSTP_MAX_DATA_PAYLOAD) this.call?.input(dataPacketBytes(frame));
      },
      onStreamError: () => this.call?.streamBroken('the data plane could not delineate the SSTP stream'),
    });
    if (!this.path) {
      this.log.warn('sstp: refusing a connection: data-plane session table full');
      return false;
    }
    return true;
  }

  private onHttpAccepted(request: SstpHttpRequest, rest: Uint8Array): void {
    const path = this.path!;
    path.attach(false);
    this.phase = 'sstp';
    const log = request.correlationId ? this.log.child({ correlationId: request.correlationId }) : this.log;
    this.call = new SstpServerCall({
      transport: { write: (b) => this.opts.transport.write(b), close: () => this.opts.transport.end() },
      clock: this.opts.clock,
      log,
      certHashes: this.opts.certHashes,
      hashProtocols: this.opts.hashProtocols,
      ...(this.opts.timers ? { timers: this.opts.timers } : {}),
      ...(this.opts.randomBytes ? { randomBytes: this.opts.randomBytes } : {}),
      events: {
        onPppStart: () => this.startPpp(log),
        onPppFrame: (frame) => this.ppp?.input(frame),
        onConnected: () => {
          this.connected = true;
          this.maybeActivate();
        },
        onClosed: (end) => this.onCallClosed(end),
      },
    });
    this.opts.events?.onAccepted?.(this, request);
    this.call.start();
    if (rest.length > 0) path.input(rest);
  }

  // ---------------------------------------------------------------- PPP

  private startPpp(log: Logger): void {
    if (this.ppp || this.phase !== 'sstp') return;
    const p = this.opts.ppp;
    const ppp = new PppSession({
      role: 'server',
      send: (frame) => {
        this.call?.sendPppFrame(frame);
      },
      clock: this.opts.clock,
      log,
      tunnel: 'sstp',
      peer: this.peer,
      sessionId: this.id,
      mru: { desired: Math.min(p.mru, p.maxMru), max: p.maxMru },
      ...(p.echoIntervalMs !== undefined ? { echo: { intervalMs: p.echoIntervalMs } } : {}),
      ...(p.authTimeoutMs !== undefined ? { authTimeoutMs: p.authTimeoutMs } : {}),
      auth: { methods: p.methods, verifier: p.verifier, serverName: p.serverName },
      ipcp: {
        allocator: p.allocator,
        localAddress: p.localAddress,
        ...(p.dns ? { dns: p.dns } : {}),
        ...(p.nbns ? { nbns: p.nbns } : {}),
      },
      // SSTP is encrypted by TLS: no MPPE (CCP is Protocol-Rejected).
      mppe: { policy: 'deny' },
      ...(this.opts.pppRandom ? { random: this.opts.pppRandom } : {}),
    });
    this.ppp = ppp;
    ppp.on('authenticated', (r) => {
      this.user = r.username;
      this.log.info({ user: r.username, method: r.method }, 'sstp: PPP authenticated');
      this.call?.authenticated(r.hlak);
    });
    ppp.on('authFailed', (r) => {
      this.log.info({ user: r.username, method: r.method, reason: r.reason }, 'sstp: PPP authentication failed');
    });
    ppp.on('up', (info) => {
      this.pppUp = info;
      this.maybeActivate();
    });
    ppp.on('down', (info) => this.onPppDown(info));
    ppp.open();
  }

  private onPppDown(info: PppDownInfo): void {
    this.pppDown = info;
    this.lcpWait?.cancel();
    this.lcpWait = undefined;
    if (info.reason === 'echo-timeout') this.opts.metrics?.keepaliveTimeout('sstp');
    // 3.3.4 Disconnect Tunnel: PPP is over, so is the call.
    this.call?.disconnect(`PPP down: ${info.reason}${info.detail ? ` (${info.detail})` : ''}`);
  }

  /** IP flows only when both the crypto binding is verified and IPCP is up. */
  private maybeActivate(): void {
    if (this.activated || !this.connected || !this.pppUp || this.phase !== 'sstp') return;
    const v4 = this.pppUp.ipv4;
    if (!v4) {
      this.call?.disconnect('PPP up without IPv4');
      return;
    }
    try {
      this.path!.activate({ ipv4: v4.peerAddress, mtu: this.pppUp.mtu, pfc: this.pppUp.pfc, acfc: this.pppUp.acfc });
    } catch (e) {
      this.log.error({ err: e }, 'sstp: the data plane refused the session');
      this.teardown('data plane refused the session').catch(() => undefined);
      return;
    }
    this.activated = true;
    const seconds = (this.opts.clock.now() - this.startedAt) / 1000;
    this.opts.metrics?.sessionSetup('sstp', seconds);
    this.log.info({ user: this.user, address: v4.peerAddress, mtu: this.pppUp.mtu, setupSeconds: seconds }, 'sstp: session up');
    this.opts.events?.onUp?.(this);
  }

  // ---------------------------------------------------------------- teardown

  private onCallClosed(end: SstpCallEnd): void {
    this.ending = end;
    if (end.reason === 'hello-timeout') this.opts.metrics?.keepaliveTimeout('sstp');
    this.log.info({ reason: end.reason, initiator: end.initiator, detail: end.detail, user: this.user }, 'sstp: call closed');
    this.ppp?.lowerDown('lower-layer-down', `SSTP call ${end.reason}`);
    this.finish(end);
  }

  private finish(end: SstpCallEnd | undefined): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.lcpWait?.cancel();
    this.lcpWait = undefined;
    this.path?.close();
    this.opts.events?.onClosed?.(this, end);
    this.closedResolve();
  }
}
