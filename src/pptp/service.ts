/**
 * The PPTP protocol server of the gateway (`vpngw serve` loads it through
 * src/pptp/server.ts's createProtocolServer): a TCP listener on port 1723
 * (RFC 2637 section 1.4) whose connections each become a
 * {@link PptpServerSession}, and the engine's one raw GRE socket (IP
 * protocol 47) shared by every call.
 *
 *   TCP accept ─ half-open bound per source ─► control connection (we are the
 *     PAC: SCCRQ within limits.handshakeTimeout) ─► Outgoing-Call-Request,
 *     admitted (limits.maxSessions, data-plane table) ─► call established:
 *     data-plane entry keyed by OUR call id, PPP (auth, CCP/MPPE, IPCP)
 *     ─► PPP up: MPPE keys and inner address installed, IP flows
 *
 * Service life:
 *
 *   Stopped ──start()──► Listening ──stop()──► Draining ──(all gone / deadline)──► Stopped
 *
 * Sessions are found by call id, never by peer address alone: several
 * clients behind one NAT address each get their own call id (one
 * allocator per data plane), hence their own session.
 *
 * Policy (config `pptp`, `mppe`, `auth.pptp`): MS-CHAPv2 first (its keys
 * feed MPPE); PAP only with pptp.allowPap; with pptp.requireMppe (the
 * default) only methods that derive MPPE keys are offered and a session
 * without MPPE is refused (MPPE policy 'require', also over a user's weaker
 * per-user policy). Strengths from mppe.strengths (default 128-bit);
 * stateless mode when the client asks and mppe.stateless allows it.
 *
 * Bounds (config `limits`): the control hand-shake and the wait for a call
 * (handshakeTimeout), the whole set-up (SETUP_TIMEOUT_MS), connections per source
 * whose PPP is not up yet, total sessions, sessions per user (checked when
 * the credentials verify), authentication failures per source.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import * as abi from '../../assembly/abi.js';
import { VpnError, isVpnError } from '../util/errors.js';
import { logTransition, type Logger } from '../util/log.js';
import type { Clock, Timer } from '../util/clock.js';
import { MPPE_METHODS, type Config } from '../config/schema.js';
import type { ProtocolServer, ServerContext } from '../admin/gateway.js';
import type { ManagedSession, SessionInfo, SessionPhase } from '../admin/types.js';
import type { AuthOutcome, GatewayMetrics } from '../metrics/registry.js';
import type { AuthMethod, Verifier, VerifyOutcome, UserAttributes } from '../ppp/auth/types.js';
import type { AddressAllocator } from '../pool/types.js';
import { openGatewayVerifier, sessionPolicyVerifier, type GatewayVerifier, type SessionPolicy } from '../aaa/gateway-verifier.js';
import type { Attachment, DataPlane } from '../dataplane/engine.js';
import { native } from '../dataplane/native.js';
import { PppSession, Phase, type MppePolicy, type NameServers, type PppDownInfo, type PppUpInfo } from '../ppp/index.js';
import { MPPE_OVERHEAD } from '../ppp/ccp/mppe.js';
import { CallIdAllocator, type CallIdRange } from './callid.js';
import type { CallClearReason, PptpCall } from './call.js';
import { DisconnectResult, GeneralError, OutgoingCallResult, StopReason } from './codec.js';
import { ControlState, PptpServerConnection, type CallAdmission, type ControlCloseReason } from './control.js';
import { IPPROTO_GRE } from './gre.js';
import { GRE_SOCKET_BUFFER, PPTP_MAX_MRU, PPTP_MAX_MTU, PptpDataPath, type PptpPathStats } from './datapath.js';

// Our choices.
/** From TCP accept to PPP up: control hand-shake, call, LCP, authentication (with MS-CHAPv2 retries), CCP, IPCP. */
export const SETUP_TIMEOUT_MS = 60_000;
/** After our LCP Terminate-Request, how long to wait for PPP to finish before Call-Disconnect-Notify. */
export const TEARDOWN_LCP_WAIT_MS = 3_000;
/** After Call-Disconnect-Notify / Stop-Control-Connection-Request, how long before the TCP connection is dropped. */
export const TEARDOWN_STOP_WAIT_MS = 5_000;
/** After end(), how long a socket may take to flush before it is destroyed. */
export const SOCKET_LINGER_MS = 2_000;

export enum ServiceState {
  Stopped = 'Stopped',
  Listening = 'Listening',
  Draining = 'Draining',
}

export interface PptpServiceOptions {
  /** Listen on this already bound and listening socket (native.tcpListener, e.g. in another namespace). */
  listenFd?: number;
  /** Open the raw GRE socket (and the listener, without listenFd) in this network namespace. */
  netns?: string;
  /**
   * Open the raw GRE socket and attach it to the data plane (default true).
   * False: the caller moves GRE between the engine's GRE rings itself (tests
   * without root).
   */
  greSocket?: boolean;
  /** Bound from TCP accept to PPP up (default SETUP_TIMEOUT_MS). */
  setupTimeoutMs?: number;
  /** Call ids handed out (default 1..65535 from a random point). */
  callIds?: CallIdRange;
}

/** `a.b.c.d` for IPv4-mapped IPv6 peers, the address itself otherwise. */
export function normalizePeerAddress(a: string | undefined): string {
  if (!a) return '0.0.0.0';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

/** The authentication methods a PPTP server offers under the policy (see the file comment). */
export function pptpAuthMethods(cfg: Pick<Config, 'auth' | 'pptp'>): AuthMethod[] {
  return cfg.auth.pptp.filter((m) => (cfg.pptp.allowPap || m !== 'pap') && (!cfg.pptp.requireMppe || MPPE_METHODS.includes(m)));
}

/**
 * The MPPE policy of a PPTP server: stateful or stateless as the client asks
 * ('peer' mode choice), and, when stateless is allowed, our own CCP request
 * asks for stateless. It has to: a client that refuses stateful mode (pppd's
 * default, refuse-mppe-stateful; Windows asks for stateless too) rejects a
 * stateful request outright and hangs up ("Refusing MPPE stateful mode offered
 * by peer"), while a client that wants stateful Naks our H away and gets it.
 */
export function pptpMppePolicy(cfg: Pick<Config, 'mppe' | 'pptp'>): MppePolicy {
  return {
    policy: cfg.pptp.requireMppe ? 'require' : cfg.mppe.policy,
    strengths: [...cfg.mppe.strengths],
    statelessAllowed: cfg.mppe.stateless,
    statelessPreferred: cfg.mppe.stateless,
    modeChoice: 'peer',
  };
}

/**
 * Our LCP MRU for a tunnel whose inner MTU (the TUN device's) is `mtu`: with
 * MPPE required every IP packet arrives encrypted, MPPE_OVERHEAD octets
 * longer (RFC 3078 section 3), and a client sizes its packets as our MRU
 * less that (pppd's interface MTU): so that it can send `mtu`-sized
 * packets, the MRU covers the expansion. Bounded by what one GRE packet on
 * an Ethernet path carries.
 */
export function pptpMru(mtu: number, mppe: MppePolicy): number {
  return Math.min(mtu + (mppe.policy === 'require' ? MPPE_OVERHEAD : 0), PPTP_MAX_MRU);
}

/**
 * PPTP policy around any verifier: src/aaa's session policy (sessions per
 * user, every verdict counted) and, with `requireMppe`, a user's weaker
 * per-user MPPE policy raised to 'require' (the operator's floor: no
 * cleartext PPTP).
 */
export function pptpPolicyVerifier(inner: Verifier, opts: SessionPolicy & { requireMppe(): boolean }): Verifier {
  async function floor<T extends { attributes: UserAttributes }>(p: Promise<VerifyOutcome<T>>): Promise<VerifyOutcome<T>> {
    const o = await p;
    if (!o.ok || !opts.requireMppe() || o.attributes.mppe === undefined || o.attributes.mppe === 'require') return o;
    return { ...o, attributes: { ...o.attributes, mppe: 'require' } };
  }
  const floored: Verifier = {
    pap: (...a) => floor(inner.pap(...a)),
    chapMd5: (...a) => floor(inner.chapMd5(...a)),
    msChapV2: (...a) => floor(inner.msChapV2(...a)),
  };
  const { requireMppe: _r, ...policy } = opts;
  return sessionPolicyVerifier(floored, { ...policy, stripMppe: false });
}

// ---------------------------------------------------------------------------
// One control connection and its call

/** The TCP connection under a session: a net.Socket or a test double. */
export interface SessionTransport {
  write(bytes: Uint8Array): void;
  /** Flush, then close (destroyed after SOCKET_LINGER_MS). */
  end(): void;
  /** Close now. */
  destroy(): void;
}

export interface PptpServerSessionOptions {
  dp: DataPlane;
  transport: SessionTransport;
  clock: Clock;
  log: Logger;
  /** Peer's outer address (IPv4, dotted) and TCP port. */
  peer: { address: string; port: number };
  callIds: CallIdAllocator;
  control: {
    handshakeTimeoutMs: number;
    echoIntervalMs: number;
    echoReplyTimeoutMs: number;
  };
  /** Admission of an Outgoing-Call-Request beyond the call limit (limits.maxSessions). */
  admit(): boolean;
  setupTimeoutMs: number;
  ppp: {
    methods: readonly AuthMethod[];
    verifier: Verifier;
    allocator: AddressAllocator;
    localAddress: string;
    dns?: NameServers;
    nbns?: NameServers;
    /** The largest IP packet the gateway takes from the client (the TUN device's MTU); the LCP MRU follows ({@link pptpMru}). */
    mtu: number;
    mppe: MppePolicy;
    echoIntervalMs: number;
    echoFailures: number;
    serverName: string;
  };
  metrics?: GatewayMetrics;
  events?: {
    /** The call is established: the session becomes visible (register it). */
    onCall?(s: PptpServerSession): void;
    /** PPP up: IP flows. */
    onUp?(s: PptpServerSession): void;
    /** Everything torn down. Called once. */
    onClosed?(s: PptpServerSession): void;
  };
}

/** How a session ended, for logs and tests. */
export interface PptpSessionEnd {
  control: ControlCloseReason | undefined;
  call: CallClearReason | undefined;
  ppp: PppDownInfo | undefined;
}

/**
 * One accepted TCP connection: the PAC control connection, its (single)
 * call, the call's PPP session and data-plane entry.
 *
 *   control (hand-shake) ──OCRQ admitted──► call established: data-plane
 *   entry attached, PPP opened ──PPP up──► up (MPPE + address installed)
 *   teardown(): LCP Terminate-Request ──PPP down (or TEARDOWN_LCP_WAIT_MS)──►
 *   Call-Disconnect-Notify, Stop-Control-Connection-Request ──StopCCRP (or
 *   TEARDOWN_STOP_WAIT_MS)──► TCP closed ──► closed
 */
export class PptpServerSession {
  readonly id = randomUUID();
  readonly since = new Date();
  readonly control: PptpServerConnection;
  private readonly log: Logger;
  private readonly startedAt: number;
  private call: PptpCall | undefined;
  private path: PptpDataPath | undefined;
  private ppp: PppSession | undefined;
  private pppUp: PppUpInfo | undefined;
  private activated = false;
  private closing = false;
  private finished = false;
  private user: string | null = null;
  private setupTimer: Timer | undefined;
  private lcpWait: Timer | undefined;
  private stopWait: Timer | undefined;
  private readonly ending: PptpSessionEnd = { control: undefined, call: undefined, ppp: undefined };
  /** The data-plane path's counters survive its closing (for the end-of-session log and tests). */
  private lastPathStats: PptpPathStats | undefined;
  private closedResolve!: () => void;
  /** Resolves when the session is fully torn down. */
  readonly closed: Promise<void> = new Promise((r) => (this.closedResolve = r));

  constructor(private readonly opts: PptpServerSessionOptions) {
    this.startedAt = opts.clock.now();
    this.log = opts.log.child({ session: this.id, protocol: 'pptp', peer: this.peer });
    this.control = new PptpServerConnection({
      transport: { write: (b) => opts.transport.write(b), close: () => opts.transport.end() },
      clock: opts.clock,
      log: this.log,
      peerAddress: opts.peer.address,
      callIds: opts.callIds,
      handshakeTimeoutMs: opts.control.handshakeTimeoutMs,
      callSetupTimeoutMs: opts.control.handshakeTimeoutMs,
      echoIntervalMs: opts.control.echoIntervalMs,
      echoReplyTimeoutMs: opts.control.echoReplyTimeoutMs,
      admitCall: () => this.admitCall(),
      events: {
        onCallEstablished: (call) => this.onCallEstablished(call),
        onCallCleared: (call, reason) => this.onCallCleared(call, reason),
        onClosed: (reason) => this.onControlClosed(reason),
      },
    });
    this.setupTimer = opts.clock.setTimer(opts.setupTimeoutMs, () => {
      this.setupTimer = undefined;
      if (!this.activated) void this.teardown('PPTP session not up in time');
    });
  }

  /** `ip:port`. */
  get peer(): string {
    return `${this.opts.peer.address}:${this.opts.peer.port}`;
  }

  get username(): string | null {
    return this.user;
  }

  /** PPP is up and IP flows. */
  get isUp(): boolean {
    return this.activated;
  }

  get isClosed(): boolean {
    return this.finished;
  }

  get dataplaneIndex(): number | undefined {
    return this.path?.idx;
  }

  /** The call ids: ours (the key of GRE we receive) and the client's. */
  get callIds(): { local: number; peer: number } | undefined {
    return this.call ? { local: this.call.localCallId, peer: this.call.peerCallId } : undefined;
  }

  get mppe(): { bits: number; stateless: boolean } | undefined {
    const m = this.pppUp?.mppe;
    return m ? { bits: m.bits, stateless: m.stateless } : undefined;
  }

  get pathStats(): PptpPathStats | undefined {
    return this.path ? { ...this.path.stats } : this.lastPathStats;
  }

  get endInfo(): PptpSessionEnd {
    return { ...this.ending };
  }

  info(): SessionInfo {
    const c = this.path?.counters();
    return {
      id: this.id,
      protocol: 'pptp',
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
    if (this.finished || this.closing) return 'closing';
    if (this.activated) return 'up';
    switch (this.ppp?.phase) {
      case Phase.Terminate:
        return 'closing';
      case Phase.Network:
        return 'network';
      case Phase.Authenticate:
        return 'authenticating';
      default:
        return 'establishing';
    }
  }

  /** Bytes read from the TCP connection. */
  input(chunk: Uint8Array): void {
    this.control.input(chunk);
  }

  /** The TCP connection closed or failed under us. */
  transportClosed(): void {
    this.control.transportClosed();
  }

  /**
   * Proper teardown: LCP Terminate-Request, then (PPP down, or after
   * TEARDOWN_LCP_WAIT_MS) Call-Disconnect-Notify and
   * Stop-Control-Connection-Request; the TCP connection closes on the
   * reply or after TEARDOWN_STOP_WAIT_MS. Resolves when the session is gone.
   */
  teardown(reason: string): Promise<void> {
    if (this.finished || this.closing) return this.closed;
    this.closing = true;
    this.log.info({ reason, user: this.user }, 'pptp: tearing the session down');
    const ppp = this.ppp;
    if (ppp && ppp.phase !== Phase.Dead) {
      ppp.close('admin', reason);
      if ((ppp.phase as Phase) !== Phase.Dead && !this.lcpWait) {
        this.lcpWait = this.opts.clock.setTimer(TEARDOWN_LCP_WAIT_MS, () => {
          this.lcpWait = undefined;
          this.hangUp(DisconnectResult.AdminShutdown);
        });
      }
    } else {
      this.hangUp(DisconnectResult.AdminShutdown);
    }
    return this.closed;
  }

  /** Drop everything now, without any message (shutdown past its deadline). */
  abort(reason: string): void {
    if (this.finished) return;
    this.log.info({ reason }, 'pptp: session dropped');
    this.opts.transport.destroy();
    this.control.transportClosed();
  }

  // ---------------------------------------------------------------- control connection

  private admitCall(): CallAdmission {
    if (this.closing) return { accept: false, resultCode: OutgoingCallResult.GeneralError, errorCode: GeneralError.PacError };
    if (!this.opts.admit()) {
      this.log.warn('pptp: refusing a call: session limit reached');
      return { accept: false, resultCode: OutgoingCallResult.GeneralError, errorCode: GeneralError.NoResource };
    }
    if (!net.isIPv4(this.opts.peer.address)) {
      this.log.warn('pptp: refusing a call: GRE runs over IPv4 only');
      return { accept: false, resultCode: OutgoingCallResult.GeneralError, errorCode: GeneralError.PacError };
    }
    if (this.opts.dp.sessions.used >= this.opts.dp.sessions.capacity) {
      this.log.warn('pptp: refusing a call: data-plane session table full');
      return { accept: false, resultCode: OutgoingCallResult.GeneralError, errorCode: GeneralError.NoResource };
    }
    return { accept: true };
  }

  private onCallEstablished(call: PptpCall): void {
    if (this.call || this.closing) {
      call.disconnect(DisconnectResult.GeneralError, GeneralError.PacError);
      return;
    }
    this.call = call;
    const path = PptpDataPath.open(this.opts.dp, {
      clock: this.opts.clock,
      log: this.log,
      client: false,
      onSanity: () => void this.teardown('malformed MPPE packets'),
    });
    if (!path) {
      this.log.warn('pptp: data-plane session table full at call establishment');
      call.disconnect(DisconnectResult.GeneralError, GeneralError.NoResource);
      return;
    }
    this.path = path;
    try {
      path.attach({ peer: this.opts.peer.address, myCallId: call.localCallId, peerCallId: call.peerCallId });
    } catch (e) {
      this.log.error({ err: e }, 'pptp: the data plane refused the call');
      call.disconnect(DisconnectResult.GeneralError, GeneralError.PacError);
      return;
    }
    this.opts.events?.onCall?.(this);
    this.startPpp(path);
  }

  private onCallCleared(call: PptpCall, reason: CallClearReason): void {
    if (call !== this.call) return;
    this.ending.call = reason;
    this.log.info({ reason, user: this.user }, 'pptp: call cleared');
    this.ppp?.lowerDown('lower-layer-down', `PPTP call cleared (${reason})`);
    this.closePath();
    // The control connection stops itself now that its last call is gone; bound the wait for the peer's reply.
    this.armStopWait();
  }

  private onControlClosed(reason: ControlCloseReason): void {
    this.ending.control = reason;
    if (reason === 'echo-timeout') this.opts.metrics?.keepaliveTimeout('pptp');
    this.log.info({ reason, user: this.user }, 'pptp: control connection closed');
    this.finish();
  }

  // ---------------------------------------------------------------- PPP

  private startPpp(path: PptpDataPath): void {
    const p = this.opts.ppp;
    const ppp = new PppSession({
      role: 'server',
      send: (frame) => {
        path.sendPpp(frame);
      },
      clock: this.opts.clock,
      log: this.log,
      tunnel: 'pptp',
      peer: this.peer,
      sessionId: this.id,
      mru: { desired: pptpMru(p.mtu, p.mppe), max: PPTP_MAX_MRU },
      echo: { intervalMs: p.echoIntervalMs, failures: p.echoFailures },
      auth: { methods: p.methods, verifier: p.verifier, serverName: p.serverName },
      ipcp: {
        allocator: p.allocator,
        localAddress: p.localAddress,
        ...(p.dns ? { dns: p.dns } : {}),
        ...(p.nbns ? { nbns: p.nbns } : {}),
      },
      mppe: p.mppe,
    });
    this.ppp = ppp;
    ppp.on('authenticated', (r) => {
      this.user = r.username;
      this.log.info({ user: r.username, method: r.method }, 'pptp: PPP authenticated');
    });
    ppp.on('authFailed', (r) => {
      this.log.info({ user: r.username, method: r.method, reason: r.reason }, 'pptp: PPP authentication failed');
    });
    ppp.on('up', (info) => this.onPppUp(info));
    ppp.on('down', (info) => this.onPppDown(info));
    ppp.open();
    // After open(): frames that came before the PPP session existed are fed to it now.
    path.bind(ppp);
  }

  private onPppUp(info: PppUpInfo): void {
    if (this.closing || this.finished) return;
    const v4 = info.ipv4;
    if (!v4) {
      void this.teardown('PPP up without IPv4');
      return;
    }
    this.pppUp = info;
    try {
      this.path!.up(info, v4.peerAddress);
    } catch (e) {
      this.log.error({ err: e }, 'pptp: the data plane refused the session');
      void this.teardown('data plane refused the session');
      return;
    }
    this.activated = true;
    this.setupTimer?.cancel();
    this.setupTimer = undefined;
    const seconds = (this.opts.clock.now() - this.startedAt) / 1000;
    this.opts.metrics?.sessionSetup('pptp', seconds);
    this.log.info(
      {
        user: this.user,
        address: v4.peerAddress,
        mtu: Math.min(info.mtu, PPTP_MAX_MTU),
        mppe: info.mppe ? `${info.mppe.bits}-bit ${info.mppe.stateless ? 'stateless' : 'stateful'}` : 'none',
        callId: this.call?.localCallId,
        peerCallId: this.call?.peerCallId,
        setupSeconds: seconds,
      },
      'pptp: session up',
    );
    this.opts.events?.onUp?.(this);
  }

  private onPppDown(info: PppDownInfo): void {
    this.ending.ppp = info;
    this.lcpWait?.cancel();
    this.lcpWait = undefined;
    if (info.reason === 'echo-timeout') this.opts.metrics?.keepaliveTimeout('pptp');
    const result =
      info.reason === 'admin'
        ? DisconnectResult.AdminShutdown
        : info.reason === 'echo-timeout'
          ? DisconnectResult.LostCarrier
          : info.reason === 'peer-terminated'
            ? DisconnectResult.Request
            : DisconnectResult.GeneralError;
    this.hangUp(result);
  }

  // ---------------------------------------------------------------- teardown

  /** Call-Disconnect-Notify (and, the call being the last, Stop-Control-Connection-Request). */
  private hangUp(result: DisconnectResult): void {
    if (this.finished) return;
    if (this.call && this.control.state === ControlState.Established && this.control.activeCalls.includes(this.call)) {
      this.call.disconnect(result, GeneralError.None);
    } else {
      this.control.stop(StopReason.None);
    }
    this.armStopWait();
  }

  private armStopWait(): void {
    if (this.stopWait || this.finished) return;
    this.stopWait = this.opts.clock.setTimer(TEARDOWN_STOP_WAIT_MS, () => {
      this.stopWait = undefined;
      if (this.finished) return;
      this.log.info('pptp: no Stop-Control-Connection-Reply in time; dropping the connection');
      this.opts.transport.destroy();
      this.control.transportClosed();
    });
  }

  private closePath(): void {
    if (!this.path) return;
    this.lastPathStats = { ...this.path.stats };
    this.path.close();
    this.path = undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const t of [this.setupTimer, this.lcpWait, this.stopWait]) t?.cancel();
    this.setupTimer = this.lcpWait = this.stopWait = undefined;
    // The control connection cleared the call before closing; this is the backstop.
    this.ppp?.lowerDown('lower-layer-down', 'PPTP control connection closed');
    this.closePath();
    const s = this.lastPathStats;
    if (s && (s.resetRequestsSent || s.resetRequestsReceived)) {
      this.log.info({ user: this.user, mppeResets: { sent: s.resetRequestsSent, repeated: s.resetRequestsRepeated, received: s.resetRequestsReceived } }, 'pptp: MPPE resynchronisations');
    }
    this.opts.events?.onClosed?.(this);
    this.closedResolve();
  }
}

// ---------------------------------------------------------------------------
// The service

export class PptpService implements ProtocolServer {
  readonly name = 'pptp' as const;
  private state = ServiceState.Stopped;
  private ctx: ServerContext | undefined;
  private log!: Logger;
  private clock!: Clock;
  private server: net.Server | undefined;
  private dp: DataPlane | undefined;
  private greFd: number | undefined;
  private greAttachment: Attachment | undefined;
  private callIds!: CallIdAllocator;
  private verifier: Verifier | undefined;
  private ownVerifier: GatewayVerifier | undefined;
  private listenFd: number | undefined;
  private readonly sessions = new Set<PptpServerSession>();
  private readonly halfOpen = new Map<string, number>();
  /** Counters for tests and diagnostics. */
  readonly counters = { accepted: 0, refusedHalfOpen: 0, up: 0 };

  constructor(private readonly opts: PptpServiceOptions = {}) {}

  /** Bound address (after start). */
  address(): net.AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Every connection (with or without a call yet). */
  get liveSessions(): readonly PptpServerSession[] {
    return [...this.sessions];
  }

  /** The data plane the service runs on (after start). */
  get dataplane(): DataPlane | undefined {
    return this.dp;
  }

  private transition(to: ServiceState, reason: string): void {
    logTransition(this.log, 'pptp-service', this.state, to, reason, 'info');
    this.state = to;
  }

  async start(ctx: ServerContext): Promise<void> {
    if (this.state !== ServiceState.Stopped) throw new VpnError('ERR_USAGE', 'the PPTP server is already started');
    this.ctx = ctx;
    this.log = ctx.log.child({ protocol: 'pptp' });
    this.clock = ctx.clock;
    const cfg = ctx.config();
    const dp = ctx.dataplanes()[0];
    if (!dp) throw new VpnError('ERR_NO_TUN', 'the PPTP server needs the data plane (TUN device), and there is none');
    if (!dp.hasRing(abi.RingId.GRE_RX) || !dp.hasRing(abi.RingId.GRE_TX)) {
      throw new VpnError('ERR_CONFIG_INVALID', 'pptp: the data plane has no GRE rings (dataplane.rings.greRx / greTx are 0)');
    }
    if (!ctx.pool(cfg.pptp.pool)) throw new VpnError('ERR_CONFIG_INVALID', `pptp.pool: no pool named ${cfg.pptp.pool}`);
    if (pptpAuthMethods(cfg).length === 0) {
      throw new VpnError('ERR_CONFIG_INVALID', 'auth.pptp: no method left under the PPTP policy (MS-CHAPv2 or EAP-MSCHAPv2 when pptp.requireMppe)');
    }
    this.dp = dp;
    this.callIds = new CallIdAllocator(this.opts.callIds ?? {});

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
    this.verifier = pptpPolicyVerifier(base, {
      sessionsOf: (user) => ctx.sessions.countOfUser(user),
      maxPerUser: () => ctx.config().limits.maxSessionsPerUser,
      requireMppe: () => ctx.config().pptp.requireMppe,
      // The labels are the verdicts: 'success' or an AuthFailureReason.
      outcome: (method, outcome) => ctx.metrics.authResult(method, outcome as AuthOutcome),
    });

    if (this.opts.greSocket !== false) this.openGre(dp);
    try {
      await this.listen(cfg);
    } catch (e) {
      this.closeGre();
      throw e;
    }
    const a = this.address();
    this.transition(ServiceState.Listening, `listening on ${a ? `${a.address}:${a.port}` : `fd ${this.opts.listenFd}`}`);
  }

  private openGre(dp: DataPlane): void {
    const ns = this.opts.netns !== undefined ? { netns: this.opts.netns } : {};
    try {
      this.greFd = native.rawSocket(IPPROTO_GRE, { ...ns, rcvbuf: GRE_SOCKET_BUFFER, sndbuf: GRE_SOCKET_BUFFER });
    } catch (e) {
      const code = isVpnError(e) ? e.code : 'ERR_NATIVE';
      throw new VpnError(code, `pptp: cannot open the raw GRE socket: ${(e as Error).message}${code === 'ERR_PERMISSION' ? ' (PPTP needs root or CAP_NET_RAW)' : ''}`, { cause: e });
    }
    this.greAttachment = dp.attach('gre', this.greFd, 'socket', abi.RingId.GRE_RX, abi.RingId.GRE_TX);
    this.log.info({ netns: this.opts.netns }, 'pptp: raw GRE socket attached to the data plane');
  }

  private closeGre(): void {
    if (this.greAttachment) this.dp?.detach(this.greAttachment);
    this.greAttachment = undefined;
    if (this.greFd !== undefined) native.close(this.greFd);
    this.greFd = undefined;
  }

  private async listen(cfg: Readonly<Config>): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server = server;
    if (this.opts.listenFd === undefined && this.opts.netns !== undefined) {
      try {
        this.listenFd = native.tcpListener({ netns: this.opts.netns, address: cfg.pptp.listen, port: cfg.pptp.port, backlog: 1024 });
      } catch (e) {
        throw new VpnError(isVpnError(e) ? e.code : 'ERR_NATIVE', `pptp: cannot listen on ${cfg.pptp.listen}:${cfg.pptp.port} in ${this.opts.netns}: ${(e as Error).message}`, { cause: e });
      }
    }
    const fd = this.opts.listenFd ?? this.listenFd;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        const code = e.code === 'EADDRINUSE' ? 'ERR_ADDRESS_IN_USE' : e.code === 'EACCES' ? 'ERR_PERMISSION' : 'ERR_NATIVE';
        reject(new VpnError(code, `pptp: cannot listen on ${cfg.pptp.listen}:${cfg.pptp.port}: ${e.message}${e.code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}`, { cause: e }));
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      if (fd !== undefined) server.listen({ fd });
      else server.listen({ host: cfg.pptp.listen, port: cfg.pptp.port });
    });
    server.on('error', (e) => this.log.error({ err: e }, 'pptp: listener error'));
  }

  // ---------------------------------------------------------------- connections

  private onConnection(socket: net.Socket): void {
    const ctx = this.ctx!;
    const cfg = ctx.config();
    const src = normalizePeerAddress(socket.remoteAddress);
    if (this.state !== ServiceState.Listening) {
      socket.destroy();
      return;
    }
    const n = this.halfOpen.get(src) ?? 0;
    if (n >= cfg.limits.maxHalfOpenPerSource) {
      this.counters.refusedHalfOpen++;
      this.log.warn({ source: src, halfOpen: n }, 'pptp: refusing a connection: too many unfinished set-ups from this source');
      socket.destroy();
      return;
    }
    this.halfOpen.set(src, n + 1);
    let counted = true;
    const releaseHalfOpen = () => {
      if (!counted) return;
      counted = false;
      const left = (this.halfOpen.get(src) ?? 1) - 1;
      if (left <= 0) this.halfOpen.delete(src);
      else this.halfOpen.set(src, left);
    };
    this.counters.accepted++;
    socket.setNoDelay(true);
    const transport: SessionTransport = {
      write: (b) => {
        if (!socket.destroyed && socket.writable) socket.write(b);
      },
      end: () => {
        if (socket.destroyed) return;
        socket.end();
        const t = setTimeout(() => socket.destroy(), SOCKET_LINGER_MS);
        t.unref();
      },
      destroy: () => socket.destroy(),
    };
    let unregister: (() => void) | undefined;
    const session: PptpServerSession = new PptpServerSession({
      dp: this.dp!,
      transport,
      clock: this.clock,
      log: this.log,
      peer: { address: src, port: socket.remotePort ?? 0 },
      callIds: this.callIds,
      control: {
        handshakeTimeoutMs: cfg.limits.handshakeTimeout,
        echoIntervalMs: cfg.pptp.echoInterval,
        echoReplyTimeoutMs: cfg.pptp.echoTimeout,
      },
      admit: () => ctx.sessions.size < ctx.config().limits.maxSessions,
      setupTimeoutMs: this.opts.setupTimeoutMs ?? SETUP_TIMEOUT_MS,
      ppp: {
        methods: pptpAuthMethods(cfg),
        verifier: this.verifier!,
        allocator: ctx.pool(cfg.pptp.pool)!,
        localAddress: cfg.dataplane.gateway,
        ...(cfg.dns.primary ? { dns: { primary: cfg.dns.primary, ...(cfg.dns.secondary ? { secondary: cfg.dns.secondary } : {}) } } : {}),
        ...(cfg.nbns.primary ? { nbns: { primary: cfg.nbns.primary, ...(cfg.nbns.secondary ? { secondary: cfg.nbns.secondary } : {}) } } : {}),
        mtu: cfg.dataplane.tun.mtu,
        mppe: pptpMppePolicy(cfg),
        echoIntervalMs: cfg.pptp.lcpEchoInterval,
        echoFailures: cfg.pptp.lcpEchoFailures,
        serverName: 'vpngw',
      },
      metrics: ctx.metrics,
      events: {
        onCall: (s) => {
          const managed: ManagedSession = { id: s.id, protocol: 'pptp', info: () => s.info(), username: () => s.username, teardown: (reason) => s.teardown(reason) };
          unregister = ctx.sessions.add(managed);
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
    socket.on('error', (e) => this.log.debug({ session: session.id, err: e.message }, 'pptp: socket error'));
    socket.once('close', () => session.transportClosed());
  }

  // ---------------------------------------------------------------- operations

  reload(config: Readonly<Config>): void {
    void config;
    this.ownVerifier?.reload().catch((e: unknown) => this.log.error({ err: e }, 'pptp: user store reload failed'));
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
    await closedListener;
    this.closeGre();
    this.transition(ServiceState.Stopped, 'all sessions closed');
  }
}

/** What `vpngw serve` calls (through src/pptp/server.ts). */
export function createProtocolServer(opts: PptpServiceOptions = {}): PptpService {
  return new PptpService(opts);
}
