/**
 * One PPTP call's data-plane session, server and client alike: enhanced GRE
 * (RFC 2637 section 4.1) and MPPE (RFC 3078) run in WASM (assembly/gre.ts,
 * assembly/mppe.ts) over the engine's one raw GRE socket; this is the
 * control plane's handle on that session, bound to the call's PppSession.
 *
 *   raw socket ─GRE_RX─► WASM (call id, peer check, sequence, MPPE) ─► TUN
 *                          ├─► CTRL PPP_FRAME (not IP data) ─► PppSession.input
 *                          ├─► CTRL MPPE_RESET_NEEDED ─► CCP Reset-Request
 *                          └─► CTRL MPPE_SANITY ─► onSanity (tear down)
 *   PppSession send ─► INJECT ─► WASM: GRE with sequence/ack, in the clear ─► raw socket
 *   TUN ─► WASM: MPPE, PPP, GRE ─► raw socket
 *
 * Life:
 *
 *   open (entry allocated) ──attach (GRE call bound: PPP frames flow)──►
 *   attached ──up (MPPE keys installed, inner address bound: IP flows)──► up
 *   any ──close──► closed (entry zeroed and returned to the table)
 *
 * Stateful MPPE resynchronisation (RFC 3078 section 8.2): the data plane
 * reports a lost packet once (MPPE_RESET_NEEDED) and discards until a
 * flushed packet. We send a CCP Reset-Request; if the receiver still
 * discards after RESET_REPEAT_MS and packets kept arriving meanwhile (the
 * request or its flushed answer was lost), we send it again, as pppd does
 * (ccp.c: RACK_PENDING / RREQ_REPEAT). A Reset-Request from the peer makes
 * our next packet flushed; we answer it with a Reset-Ack as pppd does
 * (Windows ignores Reset-Acks: for MPPE the flushed packet is the answer).
 */
import * as abi from '../../assembly/abi.js';
import type { Clock, Timer } from '../util/clock.js';
import { logTransition, type Logger } from '../util/log.js';
import type { DataPlane } from '../dataplane/engine.js';
import type { GreParams, SessionCounters } from '../dataplane/sessions.js';
import type { PppSession, PppUpInfo } from '../ppp/index.js';

// From the spec: IPv4 header, the largest enhanced GRE header (section 4.1),
// the PPP header (ff 03 + protocol 00 fd), the MPPE header and the encrypted
// protocol field (RFC 3078 section 3).
const IPV4_HEADER = 20;
const GRE_HEADER_MAX = 16;
const PPP_HEADER = 4;
const MPPE_OVERHEAD = 4;
/** Ethernet-sized path MTU the outer packets must fit. */
export const PATH_MTU = 1500;
/** The largest IP packet a PPTP tunnel carries without outer fragmentation: 1456. */
export const PPTP_MAX_MTU = PATH_MTU - IPV4_HEADER - GRE_HEADER_MAX - PPP_HEADER - MPPE_OVERHEAD;

// Our choices.
/** Repeat an unanswered CCP Reset-Request after this long while the receiver still discards (pppd: 1 s). */
export const RESET_REPEAT_MS = 500;
/** Raw GRE socket buffers: a burst of a few thousand full-size packets. */
export const GRE_SOCKET_BUFFER = 8 << 20;

export enum PathState {
  Open = 'open',
  Attached = 'attached',
  Up = 'up',
  Closed = 'closed',
}

export interface PptpDataPathOptions {
  clock: Clock;
  log: Logger;
  /** Client role: the inner address is the destination of downlink packets. */
  client: boolean;
  /** Too many malformed MPPE packets (RFC 3078 section 3 "bogus"): the session must go. */
  onSanity(): void;
}

export interface PptpPathStats {
  /** PPP frames the data plane diverted to the control plane. */
  pppFramesIn: number;
  /** PPP frames we sent (INJECT) and those the INJECT ring refused. */
  pppFramesOut: number;
  pppFramesDropped: number;
  /** CCP Reset-Requests we sent (first tries and repeats) and those that were repeats. */
  resetRequestsSent: number;
  resetRequestsRepeated: number;
  /** CCP Reset-Requests / Reset-Acks from the peer. */
  resetRequestsReceived: number;
  resetAcksReceived: number;
}

export class PptpDataPath {
  readonly stats: PptpPathStats = {
    pppFramesIn: 0,
    pppFramesOut: 0,
    pppFramesDropped: 0,
    resetRequestsSent: 0,
    resetRequestsRepeated: 0,
    resetRequestsReceived: 0,
    resetAcksReceived: 0,
  };
  private current = PathState.Open;
  private ppp: PppSession | undefined;
  private resetTimer: Timer | undefined;
  private dropsAtReset = 0n;
  private idxValue = -1;

  private constructor(
    readonly dp: DataPlane,
    private readonly opts: PptpDataPathOptions,
  ) {}

  /** A data-plane entry for a call; undefined when the session table is full (refuse the call). */
  static open(dp: DataPlane, opts: PptpDataPathOptions): PptpDataPath | undefined {
    const path = new PptpDataPath(dp, opts);
    const idx = dp.openSession({ control: (kind, payload) => path.onControl(kind, payload) });
    if (idx === undefined) return undefined;
    path.idxValue = idx;
    return path;
  }

  get idx(): number {
    return this.idxValue;
  }

  get state(): PathState {
    return this.current;
  }

  /**
   * The call is established: GRE keyed with `gre.myCallId` from `gre.peer`
   * is parsed in WASM from now on. Throws (VpnError) when the call id is
   * already bound in this data plane.
   */
  attach(gre: GreParams): void {
    if (this.current !== PathState.Open) return;
    this.dp.sessions.attach(this.idx, { tunnel: abi.Tunnel.PPTP, client: this.opts.client, gre });
    this.transition(PathState.Attached, `GRE call ${gre.myCallId} <- ${gre.peer}, sending to call ${gre.peerCallId}`);
  }

  /** The call's PPP session: it receives the diverted frames; its CCP resets drive MPPE. */
  bind(ppp: PppSession): void {
    this.ppp = ppp;
    ppp.on('ccpResetRequest', (id) => this.onPeerResetRequest(id));
    ppp.on('ccpResetAck', () => {
      this.stats.resetAcksReceived++;
    });
  }

  /** Send a PPP frame through the tunnel (sequenced GRE, never encrypted). False when INJECT is full. */
  sendPpp(frame: Uint8Array): boolean {
    if (this.current === PathState.Closed || this.current === PathState.Open) {
      this.stats.pppFramesDropped++;
      return false;
    }
    const ok = this.dp.submit(abi.RingId.INJECT, frame, { session: this.idx });
    if (ok) this.stats.pppFramesOut++;
    else this.stats.pppFramesDropped++;
    return ok;
  }

  /**
   * PPP is up: install MPPE (when negotiated; the start keys, from this
   * side's point of view), then bind the inner address. The MTU is the
   * peer's MRU capped by what fits in one outer packet. Throws (VpnError)
   * when the data plane refuses (address already bound).
   */
  up(info: PppUpInfo, ipv4: string): void {
    if (this.current !== PathState.Attached) return;
    if (info.mppe) {
      const m = info.mppe;
      this.dp.sessions.mppe(this.idx, { bits: m.bits, stateless: m.stateless, sendStartKey: m.sendStartKey, recvStartKey: m.recvStartKey });
    }
    const mtu = Math.min(info.mtu, PPTP_MAX_MTU);
    this.dp.sessions.activate(this.idx, { ipv4, mtu, pfc: info.pfc, acfc: info.acfc });
    this.transition(PathState.Up, `${ipv4}, MTU ${mtu}, ${info.mppe ? `MPPE ${info.mppe.bits}-bit ${info.mppe.stateless ? 'stateless' : 'stateful'}` : 'no MPPE'}`);
  }

  counters(): SessionCounters | undefined {
    if (this.current === PathState.Closed) return undefined;
    return this.dp.sessions.counters(this.idx);
  }

  /** Out of the data path; the entry goes back to the table. Idempotent. */
  close(): void {
    if (this.current === PathState.Closed) return;
    this.transition(PathState.Closed, 'closed');
    this.resetTimer?.cancel();
    this.resetTimer = undefined;
    this.ppp = undefined;
    if (this.idx >= 0) this.dp.closeSession(this.idx);
  }

  /** The one way the state changes. */
  private transition(to: PathState, reason: string): void {
    logTransition(this.opts.log, 'pptp-datapath', this.current, to, reason);
    this.current = to;
  }

  // ---------------------------------------------------------------- data plane -> control plane

  private onControl(kind: abi.CtrlKind, payload: Uint8Array): void {
    if (this.current === PathState.Closed) return;
    switch (kind) {
      case abi.CtrlKind.PPP_FRAME:
        this.stats.pppFramesIn++;
        // The view is valid only during this call.
        this.ppp?.input(payload.slice());
        return;
      case abi.CtrlKind.MPPE_RESET_NEEDED:
        this.requestReset(false);
        return;
      case abi.CtrlKind.MPPE_SANITY:
        this.opts.log.warn({ session: this.idx }, 'pptp: too many malformed MPPE packets; taking the session down');
        this.opts.onSanity();
        return;
      default:
        return;
    }
  }

  /** RFC 3078 8.2: ask the peer to flush; repeat while we keep discarding. */
  private requestReset(repeat: boolean): void {
    if (!this.ppp?.sendResetRequest()) return;
    this.stats.resetRequestsSent++;
    if (repeat) this.stats.resetRequestsRepeated++;
    this.opts.log.debug({ session: this.idx, repeat }, 'pptp: MPPE lost sync, CCP Reset-Request sent');
    this.dropsAtReset = this.dp.sessions.counters(this.idx).drops;
    this.resetTimer?.cancel();
    this.resetTimer = this.opts.clock.setTimer(RESET_REPEAT_MS, () => this.onResetRepeatTimeout());
  }

  private onResetRepeatTimeout(): void {
    this.resetTimer = undefined;
    if (this.current !== PathState.Up) return;
    if (!this.dp.sessions.mppeState(this.idx).receiveDiscarding) return;
    // Only when packets were discarded meanwhile: an idle peer has nothing to flush.
    if (this.dp.sessions.counters(this.idx).drops === this.dropsAtReset) {
      this.resetTimer = this.opts.clock.setTimer(RESET_REPEAT_MS, () => this.onResetRepeatTimeout());
      return;
    }
    this.requestReset(true);
  }

  private onPeerResetRequest(id: number): void {
    this.stats.resetRequestsReceived++;
    if (this.current !== PathState.Up) return;
    // The next packet we send is flushed; several requests before it still mean one flush.
    this.dp.sessions.mppeReset(this.idx);
    this.ppp?.sendResetAck(id);
  }
}
