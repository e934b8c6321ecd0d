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
 * What every tunnel's session shares (PPP, activation in the data plane,
 * metrics, the user on every log line, the LCP step of the teardown) is
 * src/tunnel/session.ts's.
 *
 * Frames in: every byte after the HTTP head goes to the data plane; what it
 * diverts comes back as whole SSTP control packets (fed to the call) and as
 * PPP frames that are not IP (re-wrapped as an SSTP data packet and fed to
 * the call too, so its state gate, MS-SSTP 3.3.7.2, decides whether PPP
 * sees them). Frames out: PPP and SSTP control through the call, straight to
 * the transport; downlink IP from the data plane, coalesced, also straight
 * to the transport.
 */
import type { Logger } from '../util/log.js';
import type { DataPlane } from '../dataplane/engine.js';
import type { TunnelMetrics } from '../metrics/registry.js';
import type { PppDownInfo, PppUpInfo } from '../ppp/index.js';
import type { AuthSuccess } from '../ppp/auth/types.js';
import { TunnelSession, type AddressSteering, type TunnelDataPath, type TunnelPppOptions } from '../tunnel/session.js';
import type { Clock } from '../util/clock.js';
import { dataPacketBytes } from './codec.js';
import { SSTP_MAX_DATA_PAYLOAD, type SstpTimers } from './constants.js';
import type { CertificateHashes } from './binding.js';
import type { SstpCallEnd } from './call.js';
import { SstpServerCall, ServerState } from './server.js';
import { SstpHttpAcceptor, type SstpHttpRequest, type HttpRejectStatus } from './http.js';
import { SstpStreamPath, type StreamSocket } from './datapath.js';

export { TEARDOWN_LCP_WAIT_MS } from '../tunnel/session.js';

// Our choices.
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
  ppp: TunnelPppOptions & {
    /** MRU we ask for (the TUN MTU); the data plane's slot bounds the largest packet. */
    mru: number;
    maxMru: number;
    /** LCP echo (0 disables); default the PPP engine's. */
    echoIntervalMs?: number;
    authTimeoutMs?: number;
  };
  metrics?: TunnelMetrics;
  /** Downlink steering of the inner address (multi-worker data plane). */
  steering?: AddressSteering;
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

export class SstpServerSession extends TunnelSession {
  private readonly acceptor: SstpHttpAcceptor;
  private phase: 'http' | 'sstp' = 'http';
  private path: SstpStreamPath | undefined;
  private call: SstpServerCall | undefined;
  private connected = false;
  private ending: SstpCallEnd | undefined;

  constructor(private readonly opts: SstpServerSessionOptions) {
    super('sstp', opts);
    this.acceptor = new SstpHttpAcceptor({
      transport: { write: (b) => opts.transport.write(b), close: () => opts.transport.end() },
      clock: opts.clock,
      log: this.log,
      timeoutMs: opts.httpTimeoutMs,
      admit: () => this.admit(),
      onAccepted: (request, rest) => this.onHttpAccepted(request, rest),
      onRejected: (status, reason) => {
        this.end(undefined);
        opts.events?.onRejected?.(status, reason);
      },
    });
  }

  get state(): 'HTTP' | ServerState {
    return this.call ? this.call.state : this.phase === 'http' && !this.finished ? 'HTTP' : ServerState.ServerCallDisconnected;
  }

  /** Still in the handshake (TLS done, call not yet connected). */
  get isHalfOpen(): boolean {
    return !this.finished && !this.connected;
  }

  get endInfo(): { call: SstpCallEnd | undefined; ppp: PppDownInfo | undefined } {
    return { call: this.ending, ppp: this.pppDown };
  }

  get downlinkDropped(): number {
    return this.path?.stats.downlinkDropped ?? 0;
  }

  protected override dataPath(): TunnelDataPath | undefined {
    return this.path;
  }

  protected override isClosing(): boolean {
    if (this.call && !this.connected && this.call.isClosed) return true;
    const st = this.call?.state;
    return !!st && st !== ServerState.ServerConnectRequestPending && st !== ServerState.ServerCallConnectedPending && st !== ServerState.ServerCallConnected;
  }

  /** The TLS handshake is done: arm the HTTP read deadline. */
  start(): void {
    this.acceptor.start();
  }

  /** Bytes read from the transport. */
  override input(chunk: Uint8Array): void {
    if (this.finished) return;
    if (this.phase === 'http') this.acceptor.input(chunk);
    else this.path!.input(chunk);
  }

  /** The transport closed or failed under us. */
  override transportClosed(): void {
    if (this.finished) return;
    if (this.phase === 'http') {
      this.acceptor.transportClosed();
      this.end(undefined);
    } else if (this.call) this.call.transportClosed();
  }

  /**
   * Proper teardown: LCP Terminate-Request, then (PPP down, or after
   * TEARDOWN_LCP_WAIT_MS) SSTP Call Disconnect; resolves when the session is
   * gone. Before the call exists the connection is just closed.
   */
  override teardown(reason: string): Promise<void> {
    if (this.finished) return this.closed;
    if (this.phase === 'http' || !this.call) {
      this.acceptor.transportClosed();
      this.opts.transport.end();
      this.end(undefined);
      return this.closed;
    }
    this.log.info({ reason }, 'sstp: tearing the session down');
    this.terminatePpp(reason, () => this.call?.disconnect(reason));
    return this.closed;
  }

  /** Drop everything now, without any message (shutdown past its deadline). */
  override abort(reason: string): void {
    if (this.call) this.call.close(reason);
    else {
      this.acceptor.transportClosed();
      this.opts.transport.end();
      this.end(undefined);
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
        onPppStart: () => this.openPpp(log),
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

  private openPpp(log: Logger): void {
    if (this.ppp || this.phase !== 'sstp' || this.finished) return;
    const p = this.opts.ppp;
    this.startPpp({
      ppp: p,
      send: (frame) => {
        this.call?.sendPppFrame(frame);
      },
      log,
      mru: { desired: Math.min(p.mru, p.maxMru), max: p.maxMru },
      ...(p.echoIntervalMs !== undefined ? { echo: { intervalMs: p.echoIntervalMs } } : {}),
      ...(p.authTimeoutMs !== undefined ? { authTimeoutMs: p.authTimeoutMs } : {}),
      // SSTP is encrypted by TLS: no MPPE (CCP is Protocol-Rejected).
      mppe: { policy: 'deny' },
      ...(this.opts.pppRandom ? { random: this.opts.pppRandom } : {}),
    });
  }

  protected override onAuthenticated(r: AuthSuccess): void {
    // The crypto binding (MS-SSTP 3.3.5.2.4) is keyed from this authentication's HLAK.
    this.call?.authenticated(r.hlak);
  }

  protected override onPppUp(info: PppUpInfo): void {
    this.pppUp = info;
    this.maybeActivate();
  }

  protected override onPppDown(info: PppDownInfo): void {
    // 3.3.4 Disconnect Tunnel: PPP is over, so is the call.
    this.call?.disconnect(`PPP down: ${info.reason}${info.detail ? ` (${info.detail})` : ''}`);
  }

  /** IP flows only when both the crypto binding is verified and IPCP is up. */
  private maybeActivate(): void {
    if (this.activated || !this.connected || !this.pppUp || this.phase !== 'sstp' || this.finished) return;
    const up = this.pppUp;
    const v4 = up.ipv4;
    if (!v4) {
      this.call?.disconnect('PPP up without IPv4');
      return;
    }
    if (!this.activate(v4, () => this.path!.activate({ ipv4: v4.peerAddress, mtu: up.mtu, pfc: up.pfc, acfc: up.acfc }), { mtu: up.mtu })) return;
    this.opts.events?.onUp?.(this);
  }

  // ---------------------------------------------------------------- teardown

  private onCallClosed(end: SstpCallEnd): void {
    this.ending = end;
    if (end.reason === 'hello-timeout') this.metrics?.keepaliveTimeout('sstp');
    this.log.info({ reason: end.reason, initiator: end.initiator, detail: end.detail }, 'sstp: call closed');
    this.ppp?.lowerDown('lower-layer-down', `SSTP call ${end.reason}`);
    this.end(end);
  }

  private end(end: SstpCallEnd | undefined): void {
    this.finish(() => {
      this.path?.close();
      this.opts.events?.onClosed?.(this, end);
    });
  }
}
