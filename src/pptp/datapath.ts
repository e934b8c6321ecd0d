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
 * still discards RESET_SECOND_COPY_MS later we send it once more (a lost
 * request costs the peer's next packet, and with TCP that is a retransmission
 * whose loss doubles its timer); after that, while packets keep being
 * discarded (the request or its flushed answer was lost), we repeat it as
 * pppd does (ccp.c: RACK_PENDING / RREQ_REPEAT), the back-off doubling from
 * RESET_REPEAT_MS up to RESET_REPEAT_MAX_MS. Repeats are safe: the sender changes its key on every
 * flushed packet, the first one that arrives ends the discard state, and the
 * data plane finds the key across up to MPPE_FLUSH_TRIES - 1 lost ones
 * (assembly/mppe.ts). A Reset-Request from the peer makes our next packet
 * flushed; we answer it
 * with a Reset-Ack as pppd does (Windows ignores Reset-Acks: for MPPE the
 * flushed packet is the answer).
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
/** The largest PPP information field one GRE packet carries without outer fragmentation: 1460. */
export const PPTP_MAX_MRU = PATH_MTU - IPV4_HEADER - GRE_HEADER_MAX - PPP_HEADER;
/** The largest IP packet a PPTP tunnel carries without outer fragmentation (encrypted): 1456. */
export const PPTP_MAX_MTU = PPTP_MAX_MRU - MPPE_OVERHEAD;

// Our choices.
/** The first Reset-Request of a loss is sent again this much later unless answered (a lost request is costly). */
export const RESET_SECOND_COPY_MS = 5;
/**
 * Back-off before a further repeat while the receiver still discards (pppd
 * waits 1 s); it doubles with each repeat, so a long round trip costs few
 * extra requests.
 */
export const RESET_REPEAT_MS = 100;
/** The longest wait between two repeats (a receiver stuck behind a slow sender still asks now and then). */
export const RESET_REPEAT_MAX_MS = 1_600;
/** How often a discarding receiver looks whether packets keep being discarded. */
export const RESET_POLL_MS = 20;
/** PPP frames kept for a PPP session not bound yet (LCP's first Configure-Requests). */
export const EARLY_FRAMES = 8;
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
  private lastResetAt = 0;
  /** Reset-Requests sent for the current loss (the receiver's current discard episode). */
  private episodeRequests = 0;
  /** PPP frames that arrived before the PPP session was bound (the server's first LCP packet overtaking its call reply). */
  private readonly early: Uint8Array[] = [];
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
   * The call is established (or, for a client, requested: `gre.peerCallId`
   * may then be 0 until {@link setPeerCallId}): GRE keyed with
   * `gre.myCallId` from `gre.peer` is parsed in WASM from now on. Throws
   * (VpnError) when the call id is already bound in this data plane.
   */
  attach(gre: GreParams): void {
    if (this.current !== PathState.Open) return;
    this.dp.sessions.attach(this.idx, { tunnel: abi.Tunnel.PPTP, client: this.opts.client, gre });
    this.transition(PathState.Attached, `GRE call ${gre.myCallId} <- ${gre.peer}, sending to call ${gre.peerCallId}`);
  }

  /** The peer's call id, learnt after attach (a client attaches at its Outgoing-Call-Request). */
  setPeerCallId(peerCallId: number): void {
    if (this.current === PathState.Closed || this.current === PathState.Open) return;
    this.dp.sessions.setGrePeerCall(this.idx, peerCallId);
  }

  /**
   * The call's PPP session, opened: it receives the diverted frames (first
   * those that arrived before it existed); its CCP resets drive MPPE.
   */
  bind(ppp: PppSession): void {
    this.ppp = ppp;
    ppp.on('ccpResetRequest', (id) => this.onPeerResetRequest(id));
    ppp.on('ccpResetAck', () => {
      this.stats.resetAcksReceived++;
    });
    const early = this.early.splice(0);
    for (const f of early) ppp.input(f);
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
    this.early.length = 0;
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
        if (this.ppp) this.ppp.input(payload.slice());
        else if (this.early.length < EARLY_FRAMES) this.early.push(payload.slice());
        return;
      case abi.CtrlKind.MPPE_RESET_NEEDED:
        // A new loss: the data plane reports each discard episode once.
        this.episodeRequests = 0;
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
    this.resetTimer?.cancel();
    this.resetTimer = undefined;
    if (!this.ppp?.sendResetRequest()) return;
    this.episodeRequests++;
    this.stats.resetRequestsSent++;
    if (repeat) this.stats.resetRequestsRepeated++;
    this.opts.log.debug({ session: this.idx, repeat, episodeRequests: this.episodeRequests }, 'pptp: MPPE lost sync, CCP Reset-Request sent');
    this.lastResetAt = this.opts.clock.now();
    this.dropsAtReset = this.dp.sessions.counters(this.idx).drops;
    // The first request goes out twice: a lost request costs the peer's next packet, often a TCP retransmission.
    if (this.episodeRequests === 1) this.resetTimer = this.opts.clock.setTimer(RESET_SECOND_COPY_MS, () => this.onSecondCopy());
    else this.resetTimer = this.opts.clock.setTimer(RESET_POLL_MS, () => this.onResetPoll());
  }

  private onSecondCopy(): void {
    this.resetTimer = undefined;
    if (this.current !== PathState.Up || !this.dp.sessions.mppeState(this.idx).receiveDiscarding) return;
    this.requestReset(true);
  }

  /**
   * While the receiver discards: repeat the request once packets were
   * discarded since the last one and its back-off has passed (an idle peer
   * has nothing to flush; a peer that sends again after a pause gets the
   * repeat right away, not a back-off later).
   */
  private onResetPoll(): void {
    this.resetTimer = undefined;
    if (this.current !== PathState.Up) return;
    if (!this.dp.sessions.mppeState(this.idx).receiveDiscarding) return;
    const backoff = Math.min(RESET_REPEAT_MAX_MS, RESET_REPEAT_MS * 2 ** Math.min(this.episodeRequests - 2, 16));
    const discarded = this.dp.sessions.counters(this.idx).drops !== this.dropsAtReset;
    if (discarded && this.opts.clock.now() - this.lastResetAt >= backoff) {
      this.requestReset(true);
      return;
    }
    this.resetTimer = this.opts.clock.setTimer(RESET_POLL_MS, () => this.onResetPoll());
  }

  private onPeerResetRequest(id: number): void {
    this.stats.resetRequestsReceived++;
    if (this.current !== PathState.Up) return;
    // The next packet we send is flushed; several requests before it still mean one flush.
    this.dp.sessions.mppeReset(this.idx);
    this.ppp?.sendResetAck(id);
  }
}
