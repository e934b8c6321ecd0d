/**
 * The Link Control Protocol (RFC 1661 sections 5 and 6) on the shared
 * automaton: options from ./options.ts, plus the LCP-only codes and the
 * Echo keepalive.
 *
 *   Code  Packet            Here
 *   1-7   Configure-*, Terminate-*, Code-Reject   the automaton (../fsm.ts)
 *   8     Protocol-Reject   received: RXJ+ (RXJ- for LCP itself), the upper layer stops that protocol;
 *                           sent by {@link Lcp.sendProtocolReject} in Opened only (5.7)
 *   9     Echo-Request      RXR: answered with an Echo-Reply in Opened only (5.8)
 *   10    Echo-Reply        RXR: resets the keepalive failure count
 *   11    Discard-Request   RXR: counted, discarded
 *   12/13 Identification, Time-Remaining (RFC 1570): accepted and ignored
 *
 *   Echo-Request / Echo-Reply / Discard-Request data:
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                         Magic-Number                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |    Data ...
 *
 * Keepalive: in Opened, every `echoIntervalMs` an Echo-Request goes out; when
 * `echoFailures` requests in a row have each had one interval to be answered
 * without an Echo-Reply, the peer is declared dead (`onEchoTimeout`).
 */
import type { Timer } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import type { Clock } from '../../util/clock.js';
import type { AuthMethod } from '../auth/types.js';
import { Fsm, FsmState, type ControlProtocol, type ConfigureJudgement, type ExtendedOutcome, type FsmEvent, type FsmTimers } from '../fsm.js';
import { encodeControlPacket, type ControlPacket, type RawOption } from '../packet.js';
import { Code, PPP_LCP } from '../protocols.js';
import { DEFAULT_MRU, LCP_OPTIONS, MIN_MRU, type LcpNegotiation, type LcpPeer, type LcpWant } from './options.js';

// Our choices.
/** Loop-back suspicions (RFC 1661 6.4) tolerated before the link is given up. */
export const DEFAULT_MAGIC_LOOP_LIMIT = 5;
export const DEFAULT_ECHO_INTERVAL_MS = 30_000;
export const DEFAULT_ECHO_FAILURES = 3;

export interface LcpConfig {
  role: 'server' | 'client';
  /** MRU we want to receive (clamped to maxMru). */
  mru: number;
  /** The largest PPP packet the tunnel carries, each way. */
  maxMru: number;
  /** Server: methods offered, in order. Client: methods accepted, in order of preference. */
  authMethods: readonly AuthMethod[];
  requestPfc: boolean;
  requestAcfc: boolean;
  /** 0 disables the keepalive. */
  echoIntervalMs: number;
  echoFailures: number;
  magicLoopLimit: number;
  timers?: Partial<FsmTimers>;
}

export interface LcpHost {
  /** Send an LCP packet (the information field of a 0xc021 frame). */
  send(packet: Uint8Array): void;
  clock: Clock;
  log: Logger;
  random(n: number): Uint8Array;
  /** This-Layer-Up: LCP is Opened (negotiated values in {@link Lcp.negotiated}). */
  up(): void;
  /** This-Layer-Down: LCP leaves Opened. */
  down(cause: FsmEvent): void;
  /** This-Layer-Finished: the link is no longer needed. */
  finished(cause: FsmEvent): void;
  /** The peer Protocol-Rejected `protocol` (not LCP). */
  protocolRejected(protocol: number): void;
  /** Negotiation cannot succeed: the upper layer closes the link with this reason. */
  fail(reason: string, detail: string): void;
  /** The keepalive found the peer dead. */
  echoTimeout(): void;
}

/** What LCP agreed, as the data plane needs it. */
export interface LcpResult {
  /** Largest packet we receive: our acknowledged MRU, else the default. */
  mru: number;
  /** The peer's MRU. */
  peerMru: number;
  /** Largest packet we send: the peer's MRU clamped to what the tunnel carries. */
  mtu: number;
  localMagic: number;
  peerMagic: number;
  /** The peer accepts compressed Protocol / Address-Control fields: our sends may compress. */
  pfc: boolean;
  acfc: boolean;
  /** The method the server authenticates the client with (undefined: no authentication). */
  auth: AuthMethod | undefined;
}

export interface LcpCounters {
  echoRequestsSent: number;
  echoRepliesReceived: number;
  echoRequestsAnswered: number;
  discardRequests: number;
  protocolRejectsSent: number;
  protocolRejectsReceived: number;
  ignoredCodes: number;
  malformed: number;
  loopSuspicions: number;
}

function freshPeer(): LcpPeer {
  return { mru: DEFAULT_MRU, magic: 0, pfc: false, acfc: false, auth: undefined };
}

export class Lcp implements ControlProtocol, LcpNegotiation {
  readonly fsm: Fsm;
  readonly role: 'server' | 'client';
  readonly maxMru: number;
  readonly authMethods: readonly AuthMethod[];
  want: LcpWant;
  peer: LcpPeer = freshPeer();
  readonly authTried = new Set<AuthMethod>();
  lastNakMagic = 0;
  /** Our acknowledged request values (valid in Opened). */
  private ackedWant: LcpWant | undefined;
  private echoTimer: Timer | undefined;
  private echoPending = 0;
  private loops = 0;
  readonly counters: LcpCounters = {
    echoRequestsSent: 0,
    echoRepliesReceived: 0,
    echoRequestsAnswered: 0,
    discardRequests: 0,
    protocolRejectsSent: 0,
    protocolRejectsReceived: 0,
    ignoredCodes: 0,
    malformed: 0,
    loopSuspicions: 0,
  };

  constructor(
    private readonly cfg: LcpConfig,
    private readonly host: LcpHost,
  ) {
    this.role = cfg.role;
    this.maxMru = Math.max(MIN_MRU, cfg.maxMru);
    this.authMethods = cfg.authMethods;
    this.want = this.initialWant();
    this.fsm = new Fsm('LCP', this, { send: (p) => host.send(p), clock: host.clock, log: host.log, peerMru: () => this.sendLimit() }, cfg.timers, host.random(1)[0]);
  }

  private initialWant(): LcpWant {
    const mru = Math.max(MIN_MRU, Math.min(this.cfg.mru, this.maxMru));
    return {
      mru: mru === DEFAULT_MRU ? undefined : mru,
      auth: this.role === 'server' ? this.cfg.authMethods[0] : undefined,
      magic: this.newMagic([]),
      pfc: this.cfg.requestPfc,
      acfc: this.cfg.requestAcfc,
    };
  }

  /** The largest LCP packet we may send right now. */
  private sendLimit(): number {
    const peerMru = this.fsm?.isOpened ? this.peer.mru : DEFAULT_MRU;
    return Math.min(peerMru, this.maxMru);
  }

  get negotiated(): LcpResult {
    const w = this.ackedWant ?? this.want;
    const mru = w.mru ?? DEFAULT_MRU;
    return {
      mru,
      peerMru: this.peer.mru,
      mtu: Math.min(this.peer.mru, this.maxMru),
      localMagic: w.magic,
      peerMagic: this.peer.magic,
      pfc: this.peer.pfc,
      acfc: this.peer.acfc,
      auth: this.role === 'server' ? w.auth : this.peer.auth,
    };
  }

  // ------------------------------------------------------------ LcpNegotiation

  newMagic(avoid: number[]): number {
    for (let i = 0; i < 16; i++) {
      const b = this.host.random(4);
      const m = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      if (m !== 0 && !avoid.includes(m)) return m;
    }
    // A broken random source: still never zero, never an avoided value.
    let m = 1;
    while (avoid.includes(m)) m++;
    return m;
  }

  loopSuspected(how: string): void {
    this.loops++;
    this.counters.loopSuspicions++;
    this.host.log.warn({ machine: 'LCP', loops: this.loops }, `LCP: possible looped-back link: ${how}`);
    if (this.loops > this.cfg.magicLoopLimit) this.fail('loopback', `looped-back link suspected ${this.loops} times (RFC 1661 6.4)`);
  }

  fail(reason: string, detail: string): void {
    this.host.fail(reason, detail);
  }

  // ------------------------------------------------------------ ControlProtocol

  resetRequest(): void {
    this.want = this.initialWant();
    this.authTried.clear();
    if (this.want.auth) this.authTried.add(this.want.auth);
    this.ackedWant = undefined;
    this.loops = 0;
  }

  buildRequest(): Uint8Array {
    return LCP_OPTIONS.buildRequest(this);
  }

  judgeRequest(opts: readonly RawOption[]): ConfigureJudgement {
    this.peer = freshPeer();
    return LCP_OPTIONS.judge(this, opts);
  }

  acked(opts: readonly RawOption[]): void {
    LCP_OPTIONS.acked(this, opts);
    this.ackedWant = { ...this.want };
  }

  naked(opts: readonly RawOption[], lastRequest: readonly RawOption[]): boolean {
    return LCP_OPTIONS.naked(this, opts, lastRequest);
  }

  rejected(opts: readonly RawOption[]): boolean {
    return LCP_OPTIONS.rejected(this, opts);
  }

  up(): void {
    this.startKeepalive();
    this.host.up();
  }

  down(cause: FsmEvent): void {
    this.stopKeepalive();
    this.host.down(cause);
  }

  started(): void {
    // The lower layer (the tunnel) is already up when a session exists: nothing to ask for.
  }

  finished(cause: FsmEvent): void {
    this.stopKeepalive();
    this.host.finished(cause);
  }

  extendedCode(pkt: ControlPacket, state: FsmState): ExtendedOutcome {
    switch (pkt.code) {
      case Code.ProtocolReject: {
        // RFC 1661 5.7: received in any state but Opened: silently discarded.
        if (state !== FsmState.Opened) return 'handled';
        if (pkt.data.length < 2) {
          this.counters.malformed++;
          return 'handled';
        }
        this.counters.protocolRejectsReceived++;
        const proto = (pkt.data[0]! << 8) | pkt.data[1]!;
        this.host.log.info({ machine: 'LCP', protocol: proto }, `LCP: peer rejected protocol 0x${proto.toString(16)}`);
        if (proto === PPP_LCP) return 'RXJ-';
        this.host.protocolRejected(proto);
        return 'RXJ+';
      }
      case Code.EchoRequest:
      case Code.EchoReply:
      case Code.DiscardRequest:
        // Magic-Number field, 4 octets (RFC 1661 5.8, 5.9).
        if (pkt.data.length < 4) {
          this.counters.malformed++;
          return 'handled';
        }
        return 'RXR';
      case Code.Identification:
      case Code.TimeRemaining:
        this.counters.ignoredCodes++;
        return 'handled';
      default:
        return 'unknown';
    }
  }

  rxr(pkt: ControlPacket): void {
    const magic = ((pkt.data[0]! << 24) | (pkt.data[1]! << 16) | (pkt.data[2]! << 8) | pkt.data[3]!) >>> 0;
    const ours = this.negotiated.localMagic;
    switch (pkt.code) {
      case Code.EchoRequest: {
        // RFC 1661 5.8: reply with our Magic-Number and the request's data, within the peer's MRU.
        const data = new Uint8Array(pkt.data.length);
        data.set(pkt.data);
        data[0] = ours >>> 24;
        data[1] = (ours >>> 16) & 0xff;
        data[2] = (ours >>> 8) & 0xff;
        data[3] = ours & 0xff;
        this.counters.echoRequestsAnswered++;
        this.host.send(encodeControlPacket(Code.EchoReply, pkt.id, data.subarray(0, this.sendLimit() - 4)));
        return;
      }
      case Code.EchoReply:
        if (ours !== 0 && magic === ours) {
          this.loopSuspected('received an Echo-Reply carrying our own Magic-Number');
          return;
        }
        this.counters.echoRepliesReceived++;
        this.echoPending = 0;
        return;
      case Code.DiscardRequest:
        this.counters.discardRequests++;
        return;
    }
  }

  // ------------------------------------------------------------ operations

  /**
   * RFC 1661 5.7: reject a protocol the peer sent that we do not run.
   * Only in Opened; the rejected information is truncated to the peer's MRU.
   */
  sendProtocolReject(protocol: number, info: Uint8Array): boolean {
    if (!this.fsm.isOpened) return false;
    const room = Math.max(0, this.sendLimit() - 4 - 2);
    const data = new Uint8Array(2 + Math.min(room, info.length));
    data[0] = protocol >>> 8;
    data[1] = protocol & 0xff;
    data.set(info.subarray(0, room), 2);
    this.counters.protocolRejectsSent++;
    this.host.send(encodeControlPacket(Code.ProtocolReject, this.fsm.nextId(), data));
    return true;
  }

  private startKeepalive(): void {
    this.stopKeepalive();
    this.echoPending = 0;
    if (this.cfg.echoIntervalMs > 0 && this.cfg.echoFailures > 0) this.armEcho();
  }

  private armEcho(): void {
    this.echoTimer = this.host.clock.setTimer(this.cfg.echoIntervalMs, () => this.onEchoInterval());
  }

  private stopKeepalive(): void {
    this.echoTimer?.cancel();
    this.echoTimer = undefined;
  }

  private onEchoInterval(): void {
    this.echoTimer = undefined;
    if (!this.fsm.isOpened) return;
    if (this.echoPending >= this.cfg.echoFailures) {
      this.host.log.warn({ machine: 'LCP', unanswered: this.echoPending }, 'LCP: peer stopped answering Echo-Requests');
      this.host.echoTimeout();
      return;
    }
    const m = this.negotiated.localMagic;
    this.echoPending++;
    this.counters.echoRequestsSent++;
    this.host.send(encodeControlPacket(Code.EchoRequest, this.fsm.nextId(), new Uint8Array([m >>> 24, (m >>> 16) & 0xff, (m >>> 8) & 0xff, m & 0xff])));
    this.armEcho();
  }
}
