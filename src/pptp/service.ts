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
 * Service life (src/tunnel/service.ts, which owns the listener, the
 * half-open bound, the verifier, registration and the graceful stop):
 *
 *   Stopped ──start()──► Listening ──stop()──► Draining ──(all gone / deadline)──► Stopped
 *
 * A session's PPP, data-plane entry, metrics and log lines are
 * src/tunnel/session.ts's; the control connection, the call and the
 * hang-up are this file's.
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
import net from 'node:net';
import * as abi from '../../assembly/abi.js';
import { VpnError, isVpnError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { Clock, Timer } from '../util/clock.js';
import { MPPE_METHODS, type Config } from '../config/schema.js';
import type { ServerContext } from '../admin/gateway.js';
import type { AuthOutcome, TunnelMetrics } from '../metrics/registry.js';
import type { AuthMethod, Verifier, VerifyOutcome, UserAttributes } from '../ppp/auth/types.js';
import { sessionPolicyVerifier, type SessionPolicy } from '../aaa/gateway-verifier.js';
import type { Attachment, DataPlane } from '../dataplane/engine.js';
import { native } from '../dataplane/native.js';
import type { MppePolicy, PppDownInfo, PppUpInfo } from '../ppp/index.js';
import { MPPE_OVERHEAD } from '../ppp/ccp/mppe.js';
import { TunnelSession, type AddressSteering, type TunnelDataPath, type TunnelPppOptions } from '../tunnel/session.js';
import { ServiceState, TunnelService, listenOn, socketTransport, type SocketTransport, type TunnelCounters } from '../tunnel/service.js';
import { CallIdAllocator, type CallIdRange } from './callid.js';
import type { CallClearReason, PptpCall } from './call.js';
import { DisconnectResult, GeneralError, OutgoingCallResult, StopReason } from './codec.js';
import { ControlState, PptpServerConnection, type CallAdmission, type ControlCloseReason } from './control.js';
import { IPPROTO_GRE } from './gre.js';
import { GRE_SOCKET_BUFFER, PPTP_MAX_MRU, PPTP_MAX_MTU, PptpDataPath, type PptpPathStats } from './datapath.js';

export { TEARDOWN_LCP_WAIT_MS } from '../tunnel/session.js';
export { SOCKET_LINGER_MS, ServiceState, normalizePeerAddress } from '../tunnel/service.js';

// Our choices.
/** From TCP accept to PPP up: control hand-shake, call, LCP, authentication (with MS-CHAPv2 retries), CCP, IPCP. */
export const SETUP_TIMEOUT_MS = 60_000;
/** After Call-Disconnect-Notify / Stop-Control-Connection-Request, how long before the TCP connection is dropped. */
export const TEARDOWN_STOP_WAIT_MS = 5_000;

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
  /**
   * Receive only GRE whose call id % modulus == remainder on the raw socket
   * (a data-plane worker of N; give callIds the same class).
   */
  greFilter?: { modulus: number; remainder: number };
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
export type SessionTransport = Pick<SocketTransport, 'end' | 'destroy'> & { write(bytes: Uint8Array): void };

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
  ppp: TunnelPppOptions & {
    /** The largest IP packet the gateway takes from the client (the TUN device's MTU); the LCP MRU follows ({@link pptpMru}). */
    mtu: number;
    mppe: MppePolicy;
    echoIntervalMs: number;
    echoFailures: number;
  };
  metrics?: TunnelMetrics;
  /** Downlink steering of the inner address (multi-worker data plane). */
  steering?: AddressSteering;
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
export class PptpServerSession extends TunnelSession {
  readonly control: PptpServerConnection;
  private call: PptpCall | undefined;
  private path: PptpDataPath | undefined;
  private closing = false;
  private setupTimer: Timer | undefined;
  private stopWait: Timer | undefined;
  private ending: { control: ControlCloseReason | undefined; call: CallClearReason | undefined } = { control: undefined, call: undefined };
  /** The data-plane path's counters survive its closing (for the end-of-session log and tests). */
  private lastPathStats: PptpPathStats | undefined;

  constructor(private readonly opts: PptpServerSessionOptions) {
    super('pptp', opts);
    this.control = new PptpServerConnection({
      transport: { write: (b) => opts.transport.write(b), close: () => opts.transport.end() },
      clock: opts.clock,
      log: this.log,
      logPeer: this.peer,
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
    return { ...this.ending, ppp: this.pppDown };
  }

  protected override dataPath(): TunnelDataPath | undefined {
    return this.path;
  }

  protected override isClosing(): boolean {
    return this.closing;
  }

  /** Bytes read from the TCP connection. */
  override input(chunk: Uint8Array): void {
    this.control.input(chunk);
  }

  /** The TCP connection closed or failed under us. */
  override transportClosed(): void {
    this.control.transportClosed();
  }

  /**
   * Proper teardown: LCP Terminate-Request, then (PPP down, or after
   * TEARDOWN_LCP_WAIT_MS) Call-Disconnect-Notify and
   * Stop-Control-Connection-Request; the TCP connection closes on the
   * reply or after TEARDOWN_STOP_WAIT_MS. Resolves when the session is gone.
   */
  override teardown(reason: string): Promise<void> {
    if (this.finished || this.closing) return this.closed;
    this.closing = true;
    this.log.info({ reason }, 'pptp: tearing the session down');
    this.terminatePpp(reason, () => this.hangUp(DisconnectResult.AdminShutdown));
    return this.closed;
  }

  /** Drop everything now, without any message (shutdown past its deadline). */
  override abort(reason: string): void {
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
    if (!net.isIPv4(this.peerAddress)) {
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
      path.attach({ peer: this.peerAddress, myCallId: call.localCallId, peerCallId: call.peerCallId });
    } catch (e) {
      this.log.error({ err: e }, 'pptp: the data plane refused the call');
      call.disconnect(DisconnectResult.GeneralError, GeneralError.PacError);
      return;
    }
    this.opts.events?.onCall?.(this);
    this.openPpp(path);
  }

  private onCallCleared(call: PptpCall, reason: CallClearReason): void {
    if (call !== this.call) return;
    this.ending.call = reason;
    this.log.info({ reason }, 'pptp: call cleared');
    this.ppp?.lowerDown('lower-layer-down', `PPTP call cleared (${reason})`);
    this.closePath();
    // The control connection stops itself now that its last call is gone; bound the wait for the peer's reply.
    this.armStopWait();
  }

  private onControlClosed(reason: ControlCloseReason): void {
    this.ending.control = reason;
    if (reason === 'echo-timeout') this.metrics?.keepaliveTimeout('pptp');
    this.log.info({ reason }, 'pptp: control connection closed');
    this.end();
  }

  // ---------------------------------------------------------------- PPP

  private openPpp(path: PptpDataPath): void {
    const p = this.opts.ppp;
    const ppp = this.startPpp({
      ppp: p,
      send: (frame) => {
        path.sendPpp(frame);
      },
      mru: { desired: pptpMru(p.mtu, p.mppe), max: PPTP_MAX_MRU },
      echo: { intervalMs: p.echoIntervalMs, failures: p.echoFailures },
      mppe: p.mppe,
    });
    // After open(): frames that came before the PPP session existed are fed to it now.
    path.bind(ppp);
  }

  protected override onPppUp(info: PppUpInfo): void {
    if (this.closing || this.finished) return;
    const v4 = info.ipv4;
    if (!v4) {
      void this.teardown('PPP up without IPv4');
      return;
    }
    this.pppUp = info;
    const installed = this.activate(v4, () => this.path!.up(info, v4.peerAddress), {
      mtu: Math.min(info.mtu, PPTP_MAX_MTU),
      mppe: info.mppe ? `${info.mppe.bits}-bit ${info.mppe.stateless ? 'stateless' : 'stateful'}` : 'none',
      callId: this.call?.localCallId,
      peerCallId: this.call?.peerCallId,
    });
    if (!installed) return;
    this.setupTimer?.cancel();
    this.setupTimer = undefined;
    this.opts.events?.onUp?.(this);
  }

  protected override onPppDown(info: PppDownInfo): void {
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

  private end(): void {
    this.finish(() => {
      for (const t of [this.setupTimer, this.stopWait]) t?.cancel();
      this.setupTimer = this.stopWait = undefined;
      // The control connection cleared the call before closing; this is the backstop.
      this.ppp?.lowerDown('lower-layer-down', 'PPTP control connection closed');
      this.closePath();
      const s = this.lastPathStats;
      if (s && (s.resetRequestsSent || s.resetRequestsReceived)) {
        this.log.info({ mppeResets: { sent: s.resetRequestsSent, repeated: s.resetRequestsRepeated, received: s.resetRequestsReceived } }, 'pptp: MPPE resynchronisations');
      }
      this.opts.events?.onClosed?.(this);
    });
  }
}

// ---------------------------------------------------------------------------
// The service

export class PptpService extends TunnelService<PptpServerSession> {
  readonly name = 'pptp' as const;
  readonly counters: TunnelCounters = { accepted: 0, refusedHalfOpen: 0, up: 0 };
  private dp: DataPlane | undefined;
  private greFd: number | undefined;
  private greAttachment: Attachment | undefined;
  private callIds!: CallIdAllocator;
  private ownListenFd: number | undefined;

  constructor(private readonly opts: PptpServiceOptions = {}) {
    super();
  }

  /** The data plane the service runs on (after start). */
  get dataplane(): DataPlane | undefined {
    return this.dp;
  }

  protected override check(cfg: Readonly<Config>, dp: DataPlane): void {
    if (!dp.hasRing(abi.RingId.GRE_RX) || !dp.hasRing(abi.RingId.GRE_TX)) {
      throw new VpnError('ERR_CONFIG_INVALID', 'pptp: the data plane has no GRE rings (dataplane.rings.greRx / greTx are 0)');
    }
    void cfg;
  }

  protected override async prepare(ctx: ServerContext, dp: DataPlane): Promise<void> {
    if (pptpAuthMethods(ctx.config()).length === 0) {
      throw new VpnError('ERR_CONFIG_INVALID', 'auth.pptp: no method left under the PPTP policy (MS-CHAPv2 or EAP-MSCHAPv2 when pptp.requireMppe)');
    }
    this.dp = dp;
    this.callIds = new CallIdAllocator(this.opts.callIds ?? {});
    return Promise.resolve();
  }

  protected override policyVerifier(base: Verifier, ctx: ServerContext): Verifier {
    return pptpPolicyVerifier(base, {
      sessionsOf: (user) => ctx.sessions.countOfUser(user),
      maxPerUser: () => ctx.config().limits.maxSessionsPerUser,
      requireMppe: () => ctx.config().pptp.requireMppe,
      // The labels are the verdicts: 'success' or an AuthFailureReason.
      outcome: (method, outcome) => ctx.metrics.authResult(method, outcome as AuthOutcome),
    });
  }

  protected override listenFd(): number | undefined {
    return this.opts.listenFd;
  }

  protected override async listen(cfg: Readonly<Config>): Promise<void> {
    if (this.opts.greSocket !== false) this.openGre(this.dp!);
    try {
      await this.listenControl(cfg);
    } catch (e) {
      this.closeGre();
      throw e;
    }
  }

  protected override stopped(): void {
    this.closeGre();
  }

  private openGre(dp: DataPlane): void {
    const ns = this.opts.netns !== undefined ? { netns: this.opts.netns } : {};
    try {
      this.greFd = native.rawSocket(IPPROTO_GRE, { ...ns, rcvbuf: GRE_SOCKET_BUFFER, sndbuf: GRE_SOCKET_BUFFER });
    } catch (e) {
      const code = isVpnError(e) ? e.code : 'ERR_NATIVE';
      throw new VpnError(code, `pptp: cannot open the raw GRE socket: ${(e as Error).message}${code === 'ERR_PERMISSION' ? ' (PPTP needs root or CAP_NET_RAW)' : ''}`, { cause: e });
    }
    if (this.opts.greFilter) {
      try {
        native.greCallIdFilter(this.greFd, this.opts.greFilter.modulus, this.opts.greFilter.remainder);
      } catch (e) {
        native.close(this.greFd);
        this.greFd = undefined;
        throw e;
      }
    }
    this.greAttachment = dp.attach('gre', this.greFd, 'socket', abi.RingId.GRE_RX, abi.RingId.GRE_TX);
    this.log.info({ netns: this.opts.netns, callIdClass: this.opts.greFilter }, 'pptp: raw GRE socket attached to the data plane');
  }

  private closeGre(): void {
    if (this.greAttachment) this.dp?.detach(this.greAttachment);
    this.greAttachment = undefined;
    if (this.greFd !== undefined) native.close(this.greFd);
    this.greFd = undefined;
  }

  private async listenControl(cfg: Readonly<Config>): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server = server;
    if (this.opts.listenFd === undefined && this.opts.netns !== undefined) {
      try {
        this.ownListenFd = native.tcpListener({ netns: this.opts.netns, address: cfg.pptp.listen, port: cfg.pptp.port, backlog: 1024 });
      } catch (e) {
        throw new VpnError(isVpnError(e) ? e.code : 'ERR_NATIVE', `pptp: cannot listen on ${cfg.pptp.listen}:${cfg.pptp.port} in ${this.opts.netns}: ${(e as Error).message}`, { cause: e });
      }
    }
    await listenOn(server, { label: 'pptp', host: cfg.pptp.listen, port: cfg.pptp.port, fd: this.opts.listenFd ?? this.ownListenFd });
  }

  // ---------------------------------------------------------------- connections

  private onConnection(socket: net.Socket): void {
    const release = this.admitConnection(socket);
    if (!release) return;
    const cfg = this.ctx!.config();
    this.counters.accepted++;
    socket.setNoDelay(true);
    const track = this.tracking(release);
    const session = new PptpServerSession({
      ...this.sessionBase(socket),
      transport: socketTransport(socket),
      callIds: this.callIds,
      control: {
        handshakeTimeoutMs: cfg.limits.handshakeTimeout,
        echoIntervalMs: cfg.pptp.echoInterval,
        echoReplyTimeoutMs: cfg.pptp.echoTimeout,
      },
      setupTimeoutMs: this.opts.setupTimeoutMs ?? SETUP_TIMEOUT_MS,
      ppp: {
        ...this.pppOptions(cfg, pptpAuthMethods(cfg)),
        mtu: cfg.dataplane.tun.mtu,
        mppe: pptpMppePolicy(cfg),
        echoIntervalMs: cfg.pptp.lcpEchoInterval,
        echoFailures: cfg.pptp.lcpEchoFailures,
      },
      events: { onCall: track.visible, onUp: track.up, onClosed: track.closed },
    });
    this.attach(socket, session);
  }
}

/** What `vpngw serve` calls (through src/pptp/server.ts). */
export function createProtocolServer(opts: PptpServiceOptions = {}): PptpService {
  return new PptpService(opts);
}
