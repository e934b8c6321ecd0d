/**
 * One PPP link, transport-agnostic: frames in through {@link PppSession.input},
 * frames out through the `send` option. The same class is the server
 * (authenticator, address assigner) and the client (peer).
 *
 * Phases (RFC 1661 section 3.2), one enum, one transition function:
 *
 *   +------+  open  +-----------+ LCP Opened +--------------+ auth ok / none
 *   | Dead |------->| Establish |----------->| Authenticate |---------+
 *   +------+        +-----------+            +--------------+         |
 *      ^                 | LCP finished           | auth failed       v
 *      |                 v                        v             +---------+
 *      +-------------- (finalize) <------ +-----------+ <-------| Network |
 *                                         | Terminate |  close  +---------+
 *                                         +-----------+
 *
 * Rules:
 * - Before LCP is Opened only LCP is processed; during Authenticate only LCP
 *   and the negotiated authentication protocol (RFC 1661 3.4/3.5: other
 *   packets are silently discarded, and counted).
 * - The NCPs (IPCP, IPV6CP, CCP) start only after authentication succeeded.
 * - `up` fires once, when every enabled NCP has settled (Opened or finished)
 *   and IPCP or IPV6CP is Opened, and, under an MPPE 'require' policy, CCP
 *   is Opened with MPPE in both directions: with PPTP the tunnel installs the
 *   session in the data plane only then, so no IP flows unencrypted.
 * - `down` fires once, with a stable reason code ({@link PPP_DOWN_REASONS}).
 * - {@link PppSession.input} never throws; drops are counted by reason.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { VpnError } from '../util/errors.js';
import { logTransition, silentLogger, type Logger } from '../util/log.js';
import { createAuthClient, createAuthServer } from './auth/index.js';
import type {
  AuthFailure,
  AuthHost,
  AuthMethod,
  AuthProtocol,
  AuthResult,
  AuthSuccess,
  ClientCredentials,
  Verifier,
  VerifyContext,
} from './auth/types.js';
import { PPP_CHAP, PPP_EAP, PPP_PAP } from './auth/types.js';
import type { AddressAllocator, Lease } from '../pool/types.js';
import { Ccp } from './ccp/ccp.js';
import { agreeMppe } from './ccp/ccp.js';
import { DEFAULT_MPPE_POLICY, MPPE_OVERHEAD, deriveMppeSession, type MppePolicy, type MppeSession } from './ccp/mppe.js';
import { decodeFrame, encodeFrame, NO_COMPRESSION } from './frame.js';
import { FsmState, type FsmEvent, type FsmTimers } from './fsm.js';
import { Ipcp, type IpcpResult, type NameServers } from './ipcp/ipcp.js';
import { Ipv6cp, type Ipv6cpResult } from './ipv6cp/ipv6cp.js';
import { DEFAULT_ECHO_FAILURES, DEFAULT_ECHO_INTERVAL_MS, DEFAULT_MAGIC_LOOP_LIMIT, Lcp } from './lcp/lcp.js';
import { DEFAULT_MRU } from './lcp/options.js';
import type { NcpHost } from './ncp.js';
import { decodeControlPacket, type ControlPacket } from './packet.js';
import { Code, PPP_CCP, PPP_COMPRESSED, PPP_IPCP, PPP_IPV4, PPP_IPV6, PPP_IPV6CP, PPP_LCP, protocolName } from './protocols.js';
import { randomOctets } from '../util/random.js';

export enum Phase {
  Dead = 'Dead',
  Establish = 'Establish',
  Authenticate = 'Authenticate',
  Network = 'Network',
  Terminate = 'Terminate',
}

export type TunnelKind = VerifyContext['tunnel'];

/** Why a session ended: stable codes for logs, metrics and the admin API. */
export const PPP_DOWN_REASONS = [
  'admin', // close() without a reason
  'lower-layer-down', // the tunnel went away
  'echo-timeout', // LCP keepalive found the peer dead
  'peer-terminated', // the peer sent an LCP Terminate-Request
  'auth-failed',
  'auth-timeout',
  'no-common-auth', // the peer accepts none of our methods
  'peer-refused-auth', // the peer rejected the Authentication-Protocol option
  'loopback', // RFC 1661 6.4 looped-back link
  'lcp-timeout', // LCP never converged (Max-Configure) or its Terminate went unanswered
  'lcp-rejected', // the peer Code/Protocol-Rejected LCP itself
  'lcp-renegotiation', // the peer restarted LCP negotiation on an open link
  'pool-exhausted',
  'address-conflict',
  'address-invalid',
  'no-address', // client: IPCP opened without an address for us
  'no-network-protocol', // no IPCP/IPV6CP could be opened
  'mppe-unavailable', // MPPE required but the authentication method derives no keys
  'mppe-required', // MPPE required but the peer would not negotiate it
  'mppe-mismatch', // MPPE negotiated differently in the two directions
  'ncp-down', // an NCP went down after the session was up
  'internal-error',
] as const;
export type PppDownReason = (typeof PPP_DOWN_REASONS)[number];

export type PppDropReason =
  | 'dead' // session finished
  | 'frame-malformed'
  | 'packet-malformed'
  | 'wrong-phase' // RFC 1661 3.x: not allowed in the current phase
  | 'protocol-rejected' // answered with an LCP Protocol-Reject
  | 'unknown-protocol' // unknown, and LCP not in a state to reject it
  | 'ncp-not-open' // network-layer packet before its NCP is Opened and the session up
  | 'unencrypted' // plain IP while MPPE is in force (RFC 3078 section 3)
  | 'internal-error';

export interface PppCounters {
  framesIn: number;
  framesOut: number;
  drops: Record<PppDropReason, number>;
  allocationFailures: number;
}

export interface AuthFactory {
  server(method: AuthMethod, host: AuthHost, opts: { verifier: Verifier; ctx: VerifyContext; serverName: string }): AuthProtocol;
  client(method: AuthMethod, host: AuthHost, opts: { credentials: ClientCredentials; hostName?: string }): AuthProtocol;
}

export const DEFAULT_AUTH_FACTORY: AuthFactory = {
  server: (m, h, o) => createAuthServer(m, h, o),
  client: (m, h, o) => createAuthClient(m, h, o),
};

export interface ServerAuthOptions {
  /** Methods offered, in order of preference (the first is proposed first). */
  methods: readonly AuthMethod[];
  verifier: Verifier;
  serverName: string;
  /** Defaults to { tunnel, peer } of the session. */
  ctx?: VerifyContext;
}

export interface ClientAuthOptions {
  /** Methods accepted, in order of preference. */
  methods: readonly AuthMethod[];
  credentials: ClientCredentials;
  hostName?: string;
}

export interface ServerIpcpOptions {
  allocator: AddressAllocator;
  /** The gateway's own inner address, told to the peer. */
  localAddress: string;
  dns?: NameServers;
  nbns?: NameServers;
}

export interface ClientIpcpOptions {
  /** Address to ask for; default 0.0.0.0 (assign me one). */
  requestAddress?: string;
  /** Default true. */
  requestDns?: boolean;
  requestNbns?: boolean;
}

interface CommonOptions {
  /** Send one PPP frame to the peer (the tunnel frames it). */
  send(frame: Uint8Array): void;
  clock?: Clock;
  log?: Logger;
  tunnel: TunnelKind;
  /** The peer's outer address (logs, rate limits). */
  peer: string;
  /** Identifies the session to the address allocator and in logs; random by default. */
  sessionId?: string;
  /** MRU we ask for (default 1500) and the largest packet the tunnel carries (clamps both directions). */
  mru?: { desired?: number; max?: number };
  /** LCP Echo keepalive; intervalMs 0 disables it. */
  echo?: { intervalMs?: number; failures?: number };
  lcp?: { requestPfc?: boolean; requestAcfc?: boolean; magicLoopLimit?: number };
  /** Negotiate IPV6CP (default false). */
  ipv6cp?: boolean | { interfaceId?: Uint8Array };
  /** Global MPPE policy; a user's AuthSuccess.attributes.mppe overrides `policy` (server side). */
  mppe?: Partial<MppePolicy>;
  /** Restart timer and counters for every control protocol (RFC 1661 4.6 defaults). */
  timers?: Partial<FsmTimers>;
  /** Backstop for the whole Authenticate phase (our choice, default 60 s: MS-CHAPv2 retries may wait for a user). */
  authTimeoutMs?: number;
  random?: (n: number) => Uint8Array;
  /** The authentication protocols (default: ./auth); tests inject fakes. */
  authFactory?: AuthFactory;
}

export interface ServerSessionOptions extends CommonOptions {
  role: 'server';
  auth: ServerAuthOptions;
  /** IPv4 (absent: no IPCP). */
  ipcp?: ServerIpcpOptions | false;
}

export interface ClientSessionOptions extends CommonOptions {
  role: 'client';
  auth: ClientAuthOptions;
  /** IPv4 (default: ask for an address and DNS; false: no IPCP). */
  ipcp?: ClientIpcpOptions | false;
}

export type PppSessionOptions = ServerSessionOptions | ClientSessionOptions;

/** Everything the tunnel needs to install the session in the data plane. */
export interface PppUpInfo {
  sessionId: string;
  role: 'server' | 'client';
  tunnel: TunnelKind;
  peer: string;
  /** The authenticated user (server) or our own name (client); undefined without authentication. */
  username: string | undefined;
  authMethod: AuthMethod | undefined;
  /** The whole authentication result: MPPE master keys, SSTP HLAK, user attributes. */
  auth: AuthSuccess | undefined;
  ipv4: IpcpResult | undefined;
  ipv6: Ipv6cpResult | undefined;
  /**
   * Largest information field we receive (our MRU); largest network-layer
   * packet we send: the peer's MRU, less MPPE's expansion when MPPE is on
   * (RFC 3078 section 3). PFC and ACFC our sends may use (the peer asked for them).
   */
  mru: number;
  mtu: number;
  pfc: boolean;
  acfc: boolean;
  localMagic: number;
  peerMagic: number;
  /** Set when CCP opened with MPPE. */
  mppe: MppeSession | undefined;
}

export interface PppDownInfo {
  reason: PppDownReason;
  detail: string;
  /** `up` had fired. */
  wasUp: boolean;
}

export interface PppSessionEvents {
  phase: [to: Phase, from: Phase, reason: string];
  authenticated: [result: AuthSuccess];
  authFailed: [result: AuthFailure];
  up: [info: PppUpInfo];
  down: [info: PppDownInfo];
  /** A network-layer packet that reached the control plane (no data plane attached: tests, the client). */
  data: [protocol: number, payload: Uint8Array];
  /** CCP Reset-Request / Reset-Ack from the peer (stateful MPPE resynchronisation). */
  ccpResetRequest: [id: number];
  ccpResetAck: [id: number];
}

// Our choices.
export const DEFAULT_AUTH_TIMEOUT_MS = 60_000;
/** Bound on frames queued while a frame is being processed (re-entrant input). */
const MAX_BACKLOG = 256;

function authProtocolNumber(m: AuthMethod): number {
  return m === 'pap' ? PPP_PAP : m === 'eap-mschapv2' ? PPP_EAP : PPP_CHAP;
}

export class PppSession extends EventEmitter<PppSessionEvents> {
  readonly id: string;
  readonly role: 'server' | 'client';
  readonly counters: PppCounters = {
    framesIn: 0,
    framesOut: 0,
    drops: {
      dead: 0,
      'frame-malformed': 0,
      'packet-malformed': 0,
      'wrong-phase': 0,
      'protocol-rejected': 0,
      'unknown-protocol': 0,
      'ncp-not-open': 0,
      unencrypted: 0,
      'internal-error': 0,
    },
    allocationFailures: 0,
  };
  private ph = Phase.Dead;
  private started = false;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: (n: number) => Uint8Array;
  private readonly lcp: Lcp;
  private auth: AuthProtocol | undefined;
  private authDone = false;
  private authResult: AuthSuccess | undefined;
  private authTimer: Timer | undefined;
  private ipcp: Ipcp | undefined;
  private ipv6cp: Ipv6cp | undefined;
  private ccp: Ccp | undefined;
  /** IPCP / IPV6CP held back until CCP opens (MPPE required), see enterNetwork. */
  private ncpsHeld = false;
  private lease: Lease | undefined;
  private mppePolicy: MppePolicy;
  private info: PppUpInfo | undefined;
  private endReason: { reason: PppDownReason; detail: string } | undefined;
  private peerTerminateText = '';
  private terminating = false;
  private busy = false;
  private readonly backlog: Uint8Array[] = [];

  constructor(private readonly opts: PppSessionOptions) {
    super();
    this.role = opts.role;
    this.id = opts.sessionId ?? randomUUID();
    const clock = opts.clock ?? systemClock;
    // Every timer of the protocols runs through run(): a transport that loops a send straight back
    // into input() gets its frame queued, never processed in the middle of a timer action.
    this.clock = { now: () => clock.now(), setTimer: (ms, fn) => clock.setTimer(ms, () => this.run(fn)) };
    this.random = opts.random ?? randomOctets;
    this.log = (opts.log ?? silentLogger).child({ ppp: this.id, role: opts.role, tunnel: opts.tunnel, peer: opts.peer });
    // One side settles stateful vs stateless (see MppePolicy.modeChoice): the server follows the client.
    this.mppePolicy = { ...DEFAULT_MPPE_POLICY, modeChoice: opts.role === 'server' ? 'peer' : 'ours', ...opts.mppe };
    if (opts.role === 'server' && opts.auth.methods.length === 0) {
      throw new VpnError('ERR_CONFIG_INVALID', 'a PPP server needs at least one authentication method');
    }
    const maxMru = opts.mru?.max ?? 65535;
    this.lcp = new Lcp(
      {
        role: opts.role,
        mru: Math.min(opts.mru?.desired ?? DEFAULT_MRU, maxMru),
        maxMru,
        authMethods: opts.auth.methods,
        requestPfc: opts.lcp?.requestPfc ?? false,
        requestAcfc: opts.lcp?.requestAcfc ?? false,
        echoIntervalMs: opts.echo?.intervalMs ?? DEFAULT_ECHO_INTERVAL_MS,
        echoFailures: opts.echo?.failures ?? DEFAULT_ECHO_FAILURES,
        magicLoopLimit: opts.lcp?.magicLoopLimit ?? DEFAULT_MAGIC_LOOP_LIMIT,
        ...(opts.timers ? { timers: opts.timers } : {}),
      },
      {
        send: (p) => this.sendFrame(PPP_LCP, p),
        clock: this.clock,
        log: this.log,
        random: this.random,
        up: () => this.onLcpUp(),
        down: (cause) => this.onLcpDown(cause),
        finished: (cause) => this.onLcpFinished(cause),
        protocolRejected: (proto) => this.onProtocolRejected(proto),
        fail: (reason, detail) => this.close(reason as PppDownReason, detail),
        echoTimeout: () => this.abort('echo-timeout', 'no Echo-Reply from the peer'),
      },
    );
  }

  // ------------------------------------------------------------ public API

  get phase(): Phase {
    return this.ph;
  }

  /** Set once `up` fired. */
  get upInfo(): PppUpInfo | undefined {
    return this.info;
  }

  /** Why the session ended (or is ending). */
  get downReason(): { reason: PppDownReason; detail: string } | undefined {
    return this.endReason;
  }

  /** Automaton states and counters of each control protocol, for diagnostics. */
  snapshot(): Record<string, { state: string; drops: Record<string, number> }> {
    const out: Record<string, { state: string; drops: Record<string, number> }> = {};
    for (const [name, p] of [
      ['LCP', this.lcp],
      ['IPCP', this.ipcp],
      ['IPV6CP', this.ipv6cp],
      ['CCP', this.ccp],
    ] as const) {
      if (p) out[name] = { state: p.fsm.stateName, drops: { ...p.fsm.counters.drops } };
    }
    return out;
  }

  /** The tunnel is up: start LCP (RFC 1661: Open and Up). */
  open(): void {
    if (this.started) return;
    this.started = true;
    this.run(() => {
      this.setPhase(Phase.Establish, 'open');
      this.lcp.fsm.open();
      this.lcp.fsm.up();
    });
  }

  /** Graceful close: LCP Terminate-Request, `down` when the peer acknowledges or the Restart timer gives up. */
  close(reason: PppDownReason = 'admin', detail = ''): void {
    this.setEndReason(reason, detail);
    if (this.ph === Phase.Dead) return;
    this.run(() => {
      this.terminating = true;
      this.stopAuth();
      if (this.ph !== Phase.Terminate) this.setPhase(Phase.Terminate, reason);
      this.lcp.fsm.close(reason);
      if (this.lcp.fsm.isFinished) this.finalize();
    });
  }

  /** The tunnel went away: no more sends, `down` now. */
  lowerDown(reason: PppDownReason = 'lower-layer-down', detail = ''): void {
    this.setEndReason(reason, detail);
    if (this.ph === Phase.Dead) return;
    this.run(() => {
      this.terminating = true;
      this.lcp.fsm.down();
      this.finalize();
    });
  }

  /** Feed one PPP frame from the tunnel. Never throws. */
  input(frame: Uint8Array): void {
    if (this.busy) {
      // Re-entrant delivery (a send looped straight back): process after the current operation.
      if (this.backlog.length < MAX_BACKLOG) this.backlog.push(frame.slice());
      else this.drop('internal-error', 'input backlog full');
      return;
    }
    this.run(() => this.handleFrame(frame));
  }

  /**
   * Run one operation to completion, then the frames that arrived re-entrantly during it. Nested
   * calls just run. Keeps every protocol action atomic whatever the transport does inside send().
   */
  private run(fn: () => void): void {
    if (this.busy) {
      fn();
      return;
    }
    this.busy = true;
    try {
      fn();
      for (let f = this.backlog.shift(); f; f = this.backlog.shift()) this.handleFrame(f);
    } catch (e) {
      this.internalError(e);
    } finally {
      this.busy = false;
    }
  }

  /** A bug (ours or a listener's) must not take the caller down: count, log, end the session cleanly. */
  private internalError(e: unknown): void {
    this.counters.drops['internal-error']++;
    this.log.error({ err: e }, 'PPP: internal error');
    try {
      this.close('internal-error', e instanceof Error ? e.message : String(e));
    } catch (e2) {
      this.log.error({ err: e2 }, 'PPP: internal error while closing');
    }
  }

  /** Send a network-layer packet (IPv4 0x0021, IPv6 0x0057) once up; false otherwise. */
  sendData(protocol: number, payload: Uint8Array): boolean {
    if (!this.info || this.ph !== Phase.Network) return false;
    if (protocol === PPP_IPV4 && !this.ipcp?.fsm.isOpened) return false;
    if (protocol === PPP_IPV6 && !this.ipv6cp?.fsm.isOpened) return false;
    if (protocol === PPP_COMPRESSED && !this.ccp?.fsm.isOpened) return false;
    if (this.info.mppe && protocol !== PPP_COMPRESSED) return false;
    const flags = { acfc: this.info.acfc, pfc: this.info.pfc };
    this.run(() => this.sendFrame(protocol, payload, flags));
    return true;
  }

  /** CCP Reset-Request (stateful MPPE lost sync on receive); false unless CCP is Opened. */
  sendResetRequest(): boolean {
    let sent = false;
    this.run(() => (sent = this.ccp?.sendResetRequest() ?? false));
    return sent;
  }

  /** CCP Reset-Ack for a peer's Reset-Request; false unless CCP is Opened. */
  sendResetAck(id: number): boolean {
    let sent = false;
    this.run(() => (sent = this.ccp?.sendResetAck(id) ?? false));
    return sent;
  }

  // ------------------------------------------------------------ input

  private handleFrame(frame: Uint8Array): void {
    try {
      this.counters.framesIn++;
      if (this.ph === Phase.Dead) return this.drop('dead');
      const f = decodeFrame(frame);
      if (!f.ok) return this.drop('frame-malformed', f.message);
      const { protocol, info } = f.value;
      switch (protocol) {
        case PPP_LCP:
          return this.controlInput(protocol, info, (pkt) => {
            if (pkt.code === Code.TerminateRequest) this.peerTerminateText = printable(pkt.data);
            this.lcp.fsm.receive(pkt);
          });
        case PPP_IPCP:
        case PPP_IPV6CP:
        case PPP_CCP:
          return this.ncpInput(protocol, info);
        case PPP_IPV4:
        case PPP_IPV6:
        case PPP_COMPRESSED:
          return this.dataInput(protocol, info);
        default:
          if (this.auth && protocol === this.auth.protocol && (this.ph === Phase.Authenticate || this.ph === Phase.Network)) {
            this.auth.input(info);
            return;
          }
          return this.rejectOrDrop(protocol, info, 'unknown-protocol');
      }
    } catch (e) {
      this.internalError(e);
    }
  }

  private controlInput(protocol: number, info: Uint8Array, deliver: (pkt: ControlPacket) => void): void {
    const d = decodeControlPacket(info);
    if (!d.ok) return this.drop('packet-malformed', `${protocolName(protocol)}: ${d.message}`);
    deliver(d.value);
  }

  private ncpInput(protocol: number, info: Uint8Array): void {
    // RFC 1661 3.4/3.5: NCP packets before the Network phase are silently discarded.
    if (this.ph !== Phase.Network) return this.drop('wrong-phase', protocolName(protocol));
    const ncp = protocol === PPP_IPCP ? this.ipcp : protocol === PPP_IPV6CP ? this.ipv6cp : this.ccp;
    if (!ncp) return this.rejectOrDrop(protocol, info, 'unknown-protocol');
    this.controlInput(protocol, info, (pkt) => {
      // A peer that starts IPCP before CCP has opened does not hold it back: neither do we.
      if (ncp !== this.ccp) this.releaseNcps(`${protocolName(protocol)} from the peer`);
      ncp.fsm.receive(pkt);
    });
  }

  private dataInput(protocol: number, info: Uint8Array): void {
    if (this.ph !== Phase.Network) return this.drop('wrong-phase', protocolName(protocol));
    const ncp = protocol === PPP_IPV4 ? this.ipcp : protocol === PPP_IPV6 ? this.ipv6cp : this.ccp;
    if (!ncp) return this.rejectOrDrop(protocol, info, 'unknown-protocol');
    // RFC 1661 3.5: network-layer packets flow only once their NCP is Opened (and here: the session is up).
    if (!ncp.fsm.isOpened || !this.info) return this.drop('ncp-not-open', protocolName(protocol));
    // With MPPE in force every datagram arrives encrypted (as protocol 0x00fd).
    if (this.info.mppe && protocol !== PPP_COMPRESSED) return this.drop('unencrypted', protocolName(protocol));
    this.emit('data', protocol, info);
  }

  /** RFC 1661 5.7: in the Network phase an unsupported protocol gets a Protocol-Reject; earlier it is discarded. */
  private rejectOrDrop(protocol: number, info: Uint8Array, reason: PppDropReason): void {
    if (this.ph === Phase.Network && this.lcp.sendProtocolReject(protocol, info)) {
      this.counters.drops['protocol-rejected']++;
      this.log.debug({ protocol: protocolName(protocol) }, 'PPP: Protocol-Reject sent');
      return;
    }
    this.drop(this.ph === Phase.Network ? reason : 'wrong-phase', protocolName(protocol));
  }

  private drop(reason: PppDropReason, detail?: string): void {
    this.counters.drops[reason]++;
    this.log.debug({ reason, detail }, `PPP: frame dropped (${reason})`);
  }

  // ------------------------------------------------------------ output

  private sendFrame(protocol: number, info: Uint8Array, flags = NO_COMPRESSION): void {
    if (this.ph === Phase.Dead && this.started) return;
    this.counters.framesOut++;
    // Control frames go out uncompressed (always allowed); data uses what the peer asked for.
    this.opts.send(encodeFrame(protocol, info, flags));
  }

  // ------------------------------------------------------------ phases

  /** The one place the phase changes. */
  private setPhase(to: Phase, reason: string): void {
    const from = this.ph;
    if (from === to) return;
    this.ph = to;
    logTransition(this.log, 'PPP', from, to, reason, 'info');
    this.emit('phase', to, from, reason);
  }

  private setEndReason(reason: PppDownReason, detail: string): void {
    if (!this.endReason) this.endReason = { reason, detail };
  }

  /** Close after a failure that must not wait for the peer (dead peer): one Terminate-Request, then down. */
  private abort(reason: PppDownReason, detail: string): void {
    this.setEndReason(reason, detail);
    if (this.ph === Phase.Dead) return;
    this.terminating = true;
    this.stopAuth();
    this.setPhase(Phase.Terminate, reason);
    this.lcp.fsm.close(reason);
    this.lcp.fsm.down();
    this.finalize();
  }

  private finalize(): void {
    if (this.ph === Phase.Dead) return;
    this.terminating = true;
    this.stopAuth();
    for (const ncp of [this.ccp, this.ipcp, this.ipv6cp]) {
      if (ncp && ncp.fsm.state !== FsmState.Initial) ncp.fsm.down();
    }
    if (this.lease) {
      this.lease.release();
      this.lease = undefined;
    }
    const end = this.endReason ?? { reason: 'lcp-timeout' as const, detail: 'LCP finished' };
    this.setPhase(Phase.Dead, end.reason);
    this.log.info({ reason: end.reason, detail: end.detail, wasUp: !!this.info }, `PPP: session down (${end.reason})`);
    this.emit('down', { reason: end.reason, detail: end.detail, wasUp: !!this.info });
  }

  // ------------------------------------------------------------ LCP events

  private onLcpUp(): void {
    if (this.terminating) return;
    const method = this.lcp.negotiated.auth;
    if (this.role === 'server' && !method) {
      // Cannot happen: the server always asks for authentication and LCP opened only once the peer acknowledged.
      this.close('peer-refused-auth', 'LCP opened without an authentication method');
      return;
    }
    if (!method) {
      this.setPhase(Phase.Authenticate, 'lcp-opened');
      this.enterNetwork('no authentication requested');
      return;
    }
    this.setPhase(Phase.Authenticate, `lcp-opened, ${method}`);
    this.startAuth(method);
  }

  private onLcpDown(cause: FsmEvent): void {
    // Decide why first: the NCPs going down below must see a session that is already terminating.
    const wasTerminating = this.terminating;
    let renegotiation = false;
    if (!wasTerminating) {
      this.terminating = true;
      if (cause === 'RTR') this.setEndReason('peer-terminated', this.peerTerminateText);
      else if (cause === 'RXJ-') this.setEndReason('lcp-rejected', 'the peer rejected LCP');
      else if (cause !== 'Down' && cause !== 'Close') {
        // The peer restarted LCP negotiation on an open link (RCR/RCA/RCN/RTA in Opened). The data
        // plane holds the old parameters; a fresh session is the safe answer.
        renegotiation = true;
        this.setEndReason('lcp-renegotiation', `LCP renegotiation (${cause}) on an open link`);
      }
      if (this.endReason) this.setPhase(Phase.Terminate, this.endReason.reason);
    }
    this.stopAuth();
    for (const ncp of [this.ccp, this.ipcp, this.ipv6cp]) if (ncp && ncp.fsm.state !== FsmState.Initial) ncp.fsm.down();
    if (renegotiation) this.lcp.fsm.close('lcp-renegotiation');
  }

  private onLcpFinished(cause: FsmEvent): void {
    if (cause === 'TO-') this.setEndReason('lcp-timeout', 'no answer from the peer within Max-Configure / Max-Terminate');
    if (cause === 'RXJ-') this.setEndReason('lcp-rejected', 'the peer rejected LCP');
    this.finalize();
  }

  private onProtocolRejected(protocol: number): void {
    if (protocol === PPP_IPCP) this.ipcp?.fsm.protocolRejected();
    else if (protocol === PPP_IPV6CP) this.ipv6cp?.fsm.protocolRejected();
    else if (protocol === PPP_CCP) this.ccp?.fsm.protocolRejected();
    else if (this.auth && protocol === this.auth.protocol && !this.authDone) this.close('peer-refused-auth', `the peer rejected ${protocolName(protocol)}`);
  }

  // ------------------------------------------------------------ authentication

  private startAuth(method: AuthMethod): void {
    const host: AuthHost = {
      send: (packet) => this.sendFrame(authProtocolNumber(method), packet),
      done: (result) => this.run(() => this.onAuthDone(result)),
      clock: this.clock,
      log: this.log,
    };
    const factory = this.opts.authFactory ?? DEFAULT_AUTH_FACTORY;
    this.authDone = false;
    if (this.opts.role === 'server') {
      const a = this.opts.auth;
      this.auth = factory.server(method, host, { verifier: a.verifier, ctx: a.ctx ?? { tunnel: this.opts.tunnel, peer: this.opts.peer }, serverName: a.serverName });
    } else {
      const a = this.opts.auth;
      this.auth = factory.client(method, host, { credentials: a.credentials, ...(a.hostName !== undefined ? { hostName: a.hostName } : {}) });
    }
    this.authTimer = this.clock.setTimer(this.opts.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS, () => this.onAuthTimeout());
    this.auth.start();
  }

  /** The link is going down (or renegotiating): the exchange ends, its timers stop, it sends nothing more. */
  private stopAuth(): void {
    this.authTimer?.cancel();
    this.authTimer = undefined;
    const a = this.auth;
    this.auth = undefined;
    a?.stop();
  }

  private onAuthTimeout(): void {
    this.authTimer = undefined;
    if (this.ph === Phase.Authenticate && !this.authDone) this.close('auth-timeout', 'authentication did not complete in time');
  }

  private onAuthDone(result: AuthResult): void {
    if (this.authDone || this.terminating || this.ph !== Phase.Authenticate) return;
    this.authDone = true;
    this.authTimer?.cancel();
    this.authTimer = undefined;
    if (!result.ok) {
      this.log.info({ method: result.method, username: result.username, failure: result.reason }, `PPP: authentication failed (${result.reason})`);
      this.emit('authFailed', result);
      this.close('auth-failed', `${result.reason}: ${result.message}`);
      return;
    }
    this.authResult = result;
    this.log.info({ method: result.method, username: result.username }, 'PPP: authenticated');
    this.emit('authenticated', result);
    if (this.ph === Phase.Authenticate && !this.terminating) this.enterNetwork('authenticated');
  }

  // ------------------------------------------------------------ network phase

  private enterNetwork(reason: string): void {
    this.setPhase(Phase.Network, reason);
    const auth = this.authResult;
    // Per-user MPPE policy (RADIUS / user store) overrides the global one (server side).
    const policyName = (this.role === 'server' ? auth?.attributes.mppe : undefined) ?? this.mppePolicy.policy;
    this.mppePolicy = { ...this.mppePolicy, policy: policyName };
    if (policyName === 'require' && !auth?.mppe) {
      this.close('mppe-unavailable', `MPPE is required but ${auth?.method ?? 'no authentication'} derives no MPPE keys`);
      return;
    }
    const ncpHost = (name: string, extra?: Partial<NcpHost>): NcpHost => ({
      send: (p) => this.sendFrame(name === 'IPCP' ? PPP_IPCP : name === 'IPV6CP' ? PPP_IPV6CP : PPP_CCP, p),
      clock: this.clock,
      log: this.log,
      random: this.random,
      peerMru: () => this.lcp.negotiated.mtu,
      up: () => this.checkUp(),
      down: () => this.onNcpDown(name),
      finished: () => this.onNcpFinished(name),
      fail: (r, d) => this.close(r as PppDownReason, d),
      ...extra,
    });
    const timers = this.opts.timers ? { timers: this.opts.timers } : {};

    if (policyName !== 'deny' && auth?.mppe && this.mppePolicy.strengths.length > 0) {
      this.ccp = new Ccp(
        { mppe: this.mppePolicy, ...timers },
        {
          ...ncpHost('CCP'),
          up: () => {
            this.releaseNcps('CCP opened');
            this.checkUp();
          },
          resetRequested: (id) => this.emit('ccpResetRequest', id),
          resetAcked: (id) => this.emit('ccpResetAck', id),
        },
      );
    }
    if (this.opts.role === 'server') {
      const ip = this.opts.ipcp;
      if (ip) {
        const r = ip.allocator.allocate({
          sessionId: this.id,
          username: auth?.username ?? '',
          ...(auth?.attributes.staticIpv4 ? { staticIpv4: auth.attributes.staticIpv4 } : {}),
        });
        if (!r.ok) {
          this.counters.allocationFailures++;
          const why: PppDownReason = r.reason === 'exhausted' ? 'pool-exhausted' : r.reason === 'conflict' ? 'address-conflict' : 'address-invalid';
          this.log.warn({ reason: r.reason, detail: r.message }, `PPP: no address for the peer (${r.reason})`);
          this.ccp = undefined;
          this.close(why, r.message);
          return;
        }
        this.lease = r.lease;
        this.ipcp = new Ipcp(
          { role: 'server', localAddress: ip.localAddress, peerAddress: r.lease.address, ...(ip.dns ? { dns: ip.dns } : {}), ...(ip.nbns ? { nbns: ip.nbns } : {}), ...timers },
          ncpHost('IPCP'),
        );
      }
    } else {
      const ip = this.opts.ipcp ?? {};
      if (ip !== false) {
        this.ipcp = new Ipcp(
          { role: 'client', localAddress: ip.requestAddress ?? '0.0.0.0', requestDns: ip.requestDns ?? true, requestNbns: ip.requestNbns ?? false, ...timers },
          ncpHost('IPCP'),
        );
      }
    }
    const v6 = this.opts.ipv6cp;
    if (v6) {
      const iid = typeof v6 === 'object' ? v6.interfaceId : undefined;
      this.ipv6cp = new Ipv6cp({ ...(iid ? { interfaceId: iid } : {}), ...timers }, ncpHost('IPV6CP'));
    }
    if (!this.ipcp && !this.ipv6cp) {
      this.close('no-network-protocol', 'neither IPCP nor IPV6CP is enabled');
      return;
    }
    // CCP first: with MPPE the peer learns early that data will be encrypted. With MPPE required, CCP
    // runs alone until it opens (as pppd does on both sides): a peer that requires MPPE holds its IPCP back
    // until then and answers our early Configure-Request with a Terminate-Ack (pppd does), which costs a
    // restart interval of the set-up. The peer's own IPCP packets start ours at once (ncpInput).
    this.ncpsHeld = !!this.ccp && policyName === 'require';
    this.startNcps(this.ncpsHeld ? [this.ccp] : [this.ccp, this.ipcp, this.ipv6cp]);
  }

  private startNcps(ncps: readonly (Ccp | Ipcp | Ipv6cp | undefined)[]): void {
    for (const ncp of ncps) {
      if (!ncp || this.terminating || ncp.fsm.state !== FsmState.Initial) continue;
      ncp.fsm.open();
      ncp.fsm.up();
    }
  }

  /** Start the NCPs held back for CCP (it opened, or the peer began one of them). */
  private releaseNcps(why: string): void {
    if (!this.ncpsHeld || this.terminating) return;
    this.ncpsHeld = false;
    this.log.debug({ why }, 'PPP: starting IPCP/IPV6CP');
    this.startNcps([this.ipcp, this.ipv6cp]);
  }

  private onNcpDown(name: string): void {
    if (this.terminating || !this.info) return;
    // The data plane holds the negotiated parameters: an NCP renegotiating or stopping ends the session.
    this.close('ncp-down', `${name} left the Opened state`);
  }

  private onNcpFinished(name: string): void {
    if (this.terminating) return;
    if (this.info) {
      this.close('ncp-down', `${name} finished`);
      return;
    }
    this.log.info({ ncp: name }, `PPP: ${name} finished without opening`);
    this.checkUp();
  }

  /** Fire `up` once every enabled NCP has settled and the result is acceptable. */
  private checkUp(): void {
    if (this.info || this.terminating || this.ph !== Phase.Network) return;
    if (this.ncpsHeld) {
      // Only CCP runs: it finished without opening (the peer refused MPPE) or is still negotiating.
      if (this.ccp?.fsm.isFinished) this.close('mppe-required', 'MPPE is required but the peer did not negotiate it');
      return;
    }
    const ncps = [this.ccp, this.ipcp, this.ipv6cp].filter((n) => n !== undefined);
    if (ncps.some((n) => !n.fsm.isOpened && !n.fsm.isFinished)) return;
    if (!this.ipcp?.fsm.isOpened && !this.ipv6cp?.fsm.isOpened) {
      this.close('no-network-protocol', 'neither IPCP nor IPV6CP opened');
      return;
    }
    let mppe: MppeSession | undefined;
    if (this.ccp?.fsm.isOpened) {
      const agreed = agreeMppe(this.ccp.negotiated);
      if (!agreed.ok) {
        this.close('mppe-mismatch', agreed.detail);
        return;
      }
      if (agreed.mppe && this.authResult?.mppe) mppe = deriveMppeSession(this.authResult.mppe, agreed.mppe.bits, agreed.mppe.stateless);
    }
    if (this.mppePolicy.policy === 'require' && !mppe) {
      this.close('mppe-required', 'MPPE is required but the peer did not negotiate it');
      return;
    }
    const l = this.lcp.negotiated;
    const mtu = l.mtu - (mppe ? MPPE_OVERHEAD : 0);
    this.info = {
      sessionId: this.id,
      role: this.role,
      tunnel: this.opts.tunnel,
      peer: this.opts.peer,
      username: this.authResult?.username,
      authMethod: this.authResult?.method,
      auth: this.authResult,
      ipv4: this.ipcp?.fsm.isOpened ? this.ipcp.negotiated : undefined,
      ipv6: this.ipv6cp?.fsm.isOpened ? this.ipv6cp.negotiated : undefined,
      mru: l.mru,
      mtu,
      pfc: l.pfc,
      acfc: l.acfc,
      localMagic: l.localMagic,
      peerMagic: l.peerMagic,
      mppe,
    };
    this.log.info(
      { ipv4: this.info.ipv4?.peerAddress, ipv6: this.info.ipv6?.peerLinkLocal, mppeBits: mppe?.bits, stateless: mppe?.stateless, mtu },
      'PPP: session up',
    );
    this.emit('up', this.info);
  }
}

function printable(b: Uint8Array): string {
  let s = '';
  for (const c of b.subarray(0, 128)) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.';
  return s;
}
