/**
 * CCP, the Compression Control Protocol (RFC 1962), on protocol 0x80fd,
 * used here only to negotiate MPPE (RFC 3078). Codes 1-7 are RFC 1661's;
 * CCP adds:
 *
 *   Code 14 Reset-Request, 15 Reset-Ack (RFC 1962 section 2.2): same layout
 *   as a Terminate packet (Code, Identifier, Length, Data). With stateful
 *   MPPE a receiver that lost sync sends Reset-Request; the sender then
 *   flushes (sets the A bit on its next packet, RFC 3078 section 3.1).
 *   Both are meaningful only in the Opened state; elsewhere they are
 *   discarded.
 *
 * Options: only MPPE (type 18, ./mppe.ts); every other algorithm (Stac,
 * Deflate, BSD, Predictor...) is rejected, and so is MPPC (the C bit).
 */
import type { FsmTimers } from '../fsm.js';
import { FsmState, type ExtendedOutcome } from '../fsm.js';
import { TableProtocol, type NcpHost } from '../ncp.js';
import { ACK, nak, option, OptionTable, u32Codec } from '../options.js';
import { encodeControlPacket, type ControlPacket, type RawOption } from '../packet.js';
import { Code } from '../protocols.js';
import {
  CCP_OPT_MPPE,
  MPPE_H,
  MPPE_STRENGTH_MASK,
  describeMppeBits,
  singleStrength,
  strengthBit,
  strengthMask,
  strongest,
  type MppeBits,
  type MppePolicy,
} from './mppe.js';

export interface CcpConfig {
  /** Effective policy (the user's override already applied); never 'deny' (no CCP then). */
  mppe: MppePolicy;
  timers?: Partial<FsmTimers>;
}

export interface CcpHost extends NcpHost {
  /** The peer sent a Reset-Request (Opened): our sender must flush / re-key. */
  resetRequested(id: number): void;
  /** The peer sent a Reset-Ack (Opened). */
  resetAcked(id: number): void;
}

/** Per direction: the MPPE bits agreed, or undefined when that direction has no MPPE. */
export interface CcpResult {
  /** What we acknowledged in the peer's request: how we send. */
  send: number | undefined;
  /** What the peer acknowledged in our request: how we receive. */
  recv: number | undefined;
}

/** One mode both directions agree on, or why not. */
export type MppeAgreement = { ok: true; mppe: { bits: MppeBits; stateless: boolean } | undefined } | { ok: false; detail: string };

export function agreeMppe(r: CcpResult): MppeAgreement {
  if (r.send === undefined && r.recv === undefined) return { ok: true, mppe: undefined };
  if (r.send === undefined || r.recv === undefined) return { ok: false, detail: `MPPE in one direction only (send ${r.send !== undefined}, receive ${r.recv !== undefined})` };
  const s = singleStrength(r.send);
  const v = singleStrength(r.recv);
  if (!s || s !== v || (r.send & MPPE_H) !== (r.recv & MPPE_H)) {
    return { ok: false, detail: `directions disagree: send ${describeMppeBits(r.send)}, receive ${describeMppeBits(r.recv)}` };
  }
  return { ok: true, mppe: { bits: s, stateless: (r.send & MPPE_H) !== 0 } };
}

const CCP_OPTIONS = new OptionTable<Ccp>([
  option({
    type: CCP_OPT_MPPE,
    name: 'MPPE',
    length: [6, 6],
    codec: u32Codec,
    request: (ctx) => ctx.want,
    judge: (ctx, v) => {
      const want = ctx.chooseForPeer(v);
      ctx.followPeerMode(want);
      if (want === v) {
        ctx.peerBits = v;
        return ACK;
      }
      return nak(want);
    },
    acked: (ctx, v) => {
      ctx.ackedWant = v;
    },
    naked: (ctx, v, requested) => {
      if (requested) ctx.adoptSuggestion(v);
    },
    rejected: (ctx) => {
      ctx.want = undefined;
    },
  }),
]);

export class Ccp extends TableProtocol<Ccp> {
  /** Our request's MPPE bits; undefined once the peer rejected the option. */
  want: number | undefined;
  /** The MPPE bits of the peer request we judged last (= acknowledged, when Opened). */
  peerBits: number | undefined;
  /** The MPPE bits of our request the peer acknowledged (= how we receive, when Opened). */
  ackedWant: number | undefined;
  private readonly allowed: number;
  private readonly policy: MppePolicy;
  readonly counters = { resetRequestsReceived: 0, resetAcksReceived: 0, resetRequestsSent: 0, discardedResets: 0 };

  constructor(
    cfg: CcpConfig,
    protected override readonly host: CcpHost,
  ) {
    super('CCP', CCP_OPTIONS, host, cfg.timers);
    this.policy = cfg.mppe;
    this.allowed = strengthMask(cfg.mppe.strengths);
    this.want = this.initialWant();
  }

  protected ctx(): Ccp {
    return this;
  }

  private get statelessAllowed(): boolean {
    return this.policy.statelessAllowed || this.policy.statelessPreferred;
  }

  private initialWant(): number | undefined {
    if (!this.allowed) return undefined;
    return this.allowed | (this.policy.statelessPreferred ? MPPE_H : 0);
  }

  /**
   * The single mode we accept for the peer's request: the strongest allowed
   * strength it offers (or the one we settled on ourselves), stateless iff it
   * asks and we allow it (or we ask for stateless ourselves); C, D and
   * unknown bits dropped. Equal to the request: Ack; else Nak with it.
   */
  chooseForPeer(v: number): number {
    const common = v & MPPE_STRENGTH_MASK & this.allowed;
    if (!common) {
      // Nothing in common: tell the peer what we can use (as pppd does), so it can choose.
      return this.allowed | (this.statelessForPeer(v) ? MPPE_H : 0);
    }
    const ours = this.want !== undefined ? singleStrength(this.want) : undefined;
    const pick: MppeBits = ours && common & strengthBit(ours) ? ours : strongest(common)!;
    return strengthBit(pick) | (this.statelessForPeer(v) ? MPPE_H : 0);
  }

  /**
   * The mode for the peer's direction. It must be the mode of our own request
   * (one mode both ways): acknowledging H while asking without it (or the
   * reverse) ends, once both sides acknowledge, in two modes. pppd does that
   * to a server whose request lacks H ("mppe-stateful": it acknowledges our
   * stateful request and asks stateless for itself).
   */
  private statelessForPeer(v: number): boolean {
    const asks = (v & MPPE_H) !== 0;
    // Our direction has no MPPE (the peer rejected it): nothing to match.
    if (this.want === undefined) return asks && this.statelessAllowed;
    if (this.followsPeer && (!asks || this.statelessAllowed)) return asks;
    return ((this.ackedWant ?? this.want) & MPPE_H) !== 0;
  }

  /** 'peer' mode choice, and our request not yet acknowledged: it can still follow the peer's mode. */
  private get followsPeer(): boolean {
    return this.policy.modeChoice === 'peer' && this.ackedWant === undefined;
  }

  /** With the 'peer' mode choice, our own request takes the mode we are about to give the peer. */
  followPeerMode(chosen: number): void {
    if (!this.followsPeer || this.want === undefined) return;
    const next = (this.want & ~MPPE_H) | (chosen & MPPE_H);
    if (next === this.want) return;
    // Not a state transition: `was`/`now`, not `from`/`to` (those fields mark transition lines).
    this.host.log.debug({ machine: 'CCP', was: describeMppeBits(this.want), now: describeMppeBits(next) }, 'CCP: our request follows the mode the peer asks for');
    this.want = next;
  }

  /** The peer Nak'd our request with `v`: adopt one allowed strength and its mode, or give MPPE up. */
  adoptSuggestion(v: number): void {
    const common = v & MPPE_STRENGTH_MASK & this.allowed;
    if (!common) {
      this.host.log.info({ machine: 'CCP', suggested: describeMppeBits(v) }, 'CCP: peer suggests no MPPE strength we allow');
      this.want = undefined;
      return;
    }
    const stateless = (v & MPPE_H) !== 0 && this.statelessAllowed;
    this.want = strengthBit(strongest(common)!) | (stateless ? MPPE_H : 0);
  }

  resetRequest(): void {
    this.want = this.initialWant();
    this.ackedWant = undefined;
  }

  protected resetPeer(): void {
    this.peerBits = undefined;
  }

  override acked(opts: readonly RawOption[]): void {
    // What the peer acknowledged is what we asked in that request (our want may have moved since).
    this.ackedWant = undefined;
    super.acked(opts);
  }

  get negotiated(): CcpResult {
    return { send: this.peerBits, recv: this.ackedWant };
  }

  extendedCode(pkt: ControlPacket, state: FsmState): ExtendedOutcome {
    if (pkt.code !== Code.ResetRequest && pkt.code !== Code.ResetAck) return 'unknown';
    if (state !== FsmState.Opened) {
      this.counters.discardedResets++;
      return 'handled';
    }
    if (pkt.code === Code.ResetRequest) {
      this.counters.resetRequestsReceived++;
      this.host.resetRequested(pkt.id);
    } else {
      this.counters.resetAcksReceived++;
      this.host.resetAcked(pkt.id);
    }
    return 'handled';
  }

  /** Send a Reset-Request (our stateful decryptor lost sync). Only in Opened. */
  sendResetRequest(): boolean {
    if (!this.fsm.isOpened) return false;
    this.counters.resetRequestsSent++;
    this.host.send(encodeControlPacket(Code.ResetRequest, this.fsm.nextId()));
    return true;
  }

  /** Answer a Reset-Request (not used by MPPE itself; for completeness). Only in Opened. */
  sendResetAck(id: number): boolean {
    if (!this.fsm.isOpened) return false;
    this.host.send(encodeControlPacket(Code.ResetAck, id));
    return true;
  }
}
