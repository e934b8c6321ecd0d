/**
 * One PPTP call (user session) inside a control connection: RFC 2637 section
 * 3.2 (call states), 3.2.4.1 (PAC outgoing call) and 3.2.4.2 (PNS outgoing
 * call), with [MS-PTPT] 3.2 / 3.3.
 *
 * Roles in remote access, as Windows and pptp-linux use them ([MS-PTPT]
 * 1.1): the gateway is the PAC, the connecting client is the PNS, and the
 * client asks the PAC to "place an outgoing call" (Outgoing-Call-Request).
 * Incoming calls (ICRQ/ICRP/ICCN) model a PAC answering a modem call and are
 * never used for VPN ([MS-PTPT] 3.2.5.3: a PAC MUST NOT send ICRQ).
 *
 *   PAC (gateway). There is no circuit to dial, so the RFC's wait_cs_ans is
 *   passed through within one event:
 *
 *     idle --OCRQ admitted / OCRP(Connected)--> established
 *     established --CCRQ / CDN(Request)--> cleared
 *     established --disconnect() / CDN(Admin-Shutdown)--> cleared
 *     any --control connection gone / (nothing sent)--> cleared
 *
 *   PNS (client):
 *
 *     idle --open() / OCRQ--> wait_reply
 *     wait_reply --OCRP(Connected)--> established
 *     wait_reply --OCRP(error)--> cleared
 *     wait_reply --no reply in time / CCRQ--> cleared
 *     wait_reply, established --disconnect() / CCRQ--> wait_disconnect
 *     established, wait_disconnect --CDN--> cleared
 *     wait_disconnect --no CDN in time--> cleared
 *     any --control connection gone / (nothing sent)--> cleared
 *
 * "cleared" is the RFC's return to idle; a call object is not reused, its
 * local Call ID is released when it gets there.
 */
import type { Clock, Timer } from '../util/clock.js';
import { logTransition, type Logger } from '../util/log.js';
import {
  BEARER_ANY,
  ControlMessageType,
  DEFAULT_ACCM,
  DisconnectResult,
  FRAMING_ANY,
  GeneralError,
  OutgoingCallResult,
  type CallDisconnectNotify,
  type ControlMessage,
  type OutgoingCallReply,
  type OutgoingCallRequest,
  type SetLinkInfo,
  type WanErrorNotify,
} from './codec.js';

export enum CallState {
  Idle = 'idle',
  WaitReply = 'wait_reply',
  Established = 'established',
  WaitDisconnect = 'wait_disconnect',
  Cleared = 'cleared',
}

export type CallRole = 'pac' | 'pns';

export type CallClearReason =
  /** PAC: the PNS sent Call-Clear-Request. */
  | 'peer-clear'
  /** PNS: the PAC sent Call-Disconnect-Notify. */
  | 'peer-disconnect'
  /** Our side hung up (disconnect()). */
  | 'local'
  /** PNS: the Outgoing-Call-Reply refused the call. */
  | 'rejected'
  /** PNS: no Outgoing-Call-Reply in time. */
  | 'reply-timeout'
  /** PNS: no Call-Disconnect-Notify after our Call-Clear-Request. */
  | 'disconnect-timeout'
  /** The control connection stopped or broke (Stop-Control-Connection implicitly clears calls, section 2.3). */
  | 'control-closed';

/** What a call needs from its control connection. */
export interface CallHost {
  readonly clock: Clock;
  readonly log: Logger;
  send(m: ControlMessage): void;
  /** The call entered established. */
  callEstablished(call: PptpCall): void;
  /** The call entered cleared; called exactly once per call. */
  callCleared(call: PptpCall, reason: CallClearReason): void;
}

export interface CallParams {
  role: CallRole;
  localCallId: number;
  /** The control connection's peer (GRE destination, and expected GRE source). */
  peerAddress: string;
  /** Packet Recv. Window Size we advertise. */
  localReceiveWindow: number;
  callSerialNumber: number;
  /** PNS: how long to wait for Outgoing-Call-Reply and for Call-Disconnect-Notify. */
  replyTimeoutMs: number;
}

/** The last WAN-Error-Notify counters (cumulative since the call was established, section 2.14). */
export interface WanErrors {
  notifies: number;
  crcErrors: number;
  framingErrors: number;
  hardwareOverruns: number;
  bufferOverruns: number;
  timeoutErrors: number;
  alignmentErrors: number;
}

/** A snapshot of what the tunnel layer needs to run the session. */
export interface CallInfo {
  role: CallRole;
  /** Our Call ID: GRE packets arriving for this call carry it in their key. */
  localCallId: number;
  /** The peer's Call ID: we put it in the key of every GRE packet we send. */
  peerCallId: number;
  peerAddress: string;
  /** The peer's Packet Recv. Window Size (recorded, not enforced: see gre.ts rule 9). */
  peerReceiveWindow: number;
  /** The peer's Packet Processing Delay, 1/10 s. */
  peerProcessingDelay: number;
  localReceiveWindow: number;
  connectSpeed: number;
  callSerialNumber: number;
  /** ACCMs from Set-Link-Info (default 0xffffffff); irrelevant to GRE framing, kept for PPP. */
  sendAccm: number;
  receiveAccm: number;
}

export interface OutgoingCallOptions {
  minimumBps?: number;
  maximumBps?: number;
  bearerType?: number;
  framingType?: number;
  processingDelay?: number;
  phoneNumber?: string;
  subaddress?: Uint8Array;
}

/** Our choices for the Outgoing-Call-Request a PNS sends (values Windows uses, [MS-PTPT] <10>). */
export const PNS_MINIMUM_BPS = 300;
export const PNS_MAXIMUM_BPS = 100_000_000;

export class PptpCall {
  readonly role: CallRole;
  readonly localCallId: number;
  readonly peerAddress: string;
  readonly localReceiveWindow: number;
  readonly callSerialNumber: number;
  peerCallId = 0;
  peerReceiveWindow = 0;
  peerProcessingDelay = 0;
  connectSpeed = 0;
  sendAccm = DEFAULT_ACCM;
  receiveAccm = DEFAULT_ACCM;
  readonly wanErrors: WanErrors = {
    notifies: 0,
    crcErrors: 0,
    framingErrors: 0,
    hardwareOverruns: 0,
    bufferOverruns: 0,
    timeoutErrors: 0,
    alignmentErrors: 0,
  };
  /** Why the call was cleared, once it is. */
  clearReason: CallClearReason | undefined;

  private current = CallState.Idle;
  private timer: Timer | undefined;
  private readonly log: Logger;
  private readonly replyTimeoutMs: number;

  constructor(
    private readonly host: CallHost,
    params: CallParams,
  ) {
    this.role = params.role;
    this.localCallId = params.localCallId;
    this.peerAddress = params.peerAddress;
    this.localReceiveWindow = params.localReceiveWindow;
    this.callSerialNumber = params.callSerialNumber;
    this.replyTimeoutMs = params.replyTimeoutMs;
    this.log = host.log.child({ callId: params.localCallId });
  }

  get state(): CallState {
    return this.current;
  }

  get info(): CallInfo {
    return {
      role: this.role,
      localCallId: this.localCallId,
      peerCallId: this.peerCallId,
      peerAddress: this.peerAddress,
      peerReceiveWindow: this.peerReceiveWindow,
      peerProcessingDelay: this.peerProcessingDelay,
      localReceiveWindow: this.localReceiveWindow,
      connectSpeed: this.connectSpeed,
      callSerialNumber: this.callSerialNumber,
      sendAccm: this.sendAccm,
      receiveAccm: this.receiveAccm,
    };
  }

  // -------------------------------------------------------------------------
  // PAC

  /**
   * PAC: answer an admitted Outgoing-Call-Request with a Connected reply.
   * The peer's Call ID and window come from the request.
   */
  accept(request: OutgoingCallRequest, reply: { connectSpeed: number; processingDelay: number; physicalChannelId: number }): void {
    if (this.role !== 'pac' || this.current !== CallState.Idle) return;
    this.peerCallId = request.callId;
    this.peerReceiveWindow = request.receiveWindowSize;
    this.peerProcessingDelay = request.processingDelay;
    this.connectSpeed = reply.connectSpeed;
    this.host.send({
      type: ControlMessageType.OutgoingCallReply,
      callId: this.localCallId,
      peerCallId: request.callId,
      resultCode: OutgoingCallResult.Connected,
      errorCode: GeneralError.None,
      causeCode: 0,
      connectSpeed: reply.connectSpeed,
      receiveWindowSize: this.localReceiveWindow,
      processingDelay: reply.processingDelay,
      physicalChannelId: reply.physicalChannelId,
    });
    this.transition(CallState.Established, 'OCRQ accepted, OCRP sent');
  }

  /** PAC: the PNS asked to clear this call (section 3.2.4.1: answer with Call-Disconnect-Notify). */
  handleCallClearRequest(): void {
    if (this.role !== 'pac' || this.current !== CallState.Established) return;
    this.sendDisconnectNotify(DisconnectResult.Request, GeneralError.None);
    this.clear('peer-clear', 'CCRQ received, CDN sent');
  }

  /** PAC: Set-Link-Info from the PNS (section 2.15): record the ACCMs. */
  handleSetLinkInfo(m: SetLinkInfo): void {
    if (this.role !== 'pac' || this.current !== CallState.Established) return;
    this.sendAccm = m.sendAccm;
    this.receiveAccm = m.receiveAccm;
    this.log.debug({ sendAccm: m.sendAccm, receiveAccm: m.receiveAccm }, 'PPTP Set-Link-Info');
  }

  // -------------------------------------------------------------------------
  // PNS

  /** PNS: send Outgoing-Call-Request and wait for the reply. */
  open(opts: OutgoingCallOptions = {}): void {
    if (this.role !== 'pns' || this.current !== CallState.Idle) return;
    const phoneNumber = opts.phoneNumber ?? '';
    this.host.send({
      type: ControlMessageType.OutgoingCallRequest,
      callId: this.localCallId,
      callSerialNumber: this.callSerialNumber,
      minimumBps: opts.minimumBps ?? PNS_MINIMUM_BPS,
      maximumBps: opts.maximumBps ?? PNS_MAXIMUM_BPS,
      bearerType: opts.bearerType ?? BEARER_ANY,
      framingType: opts.framingType ?? FRAMING_ANY,
      receiveWindowSize: this.localReceiveWindow,
      processingDelay: opts.processingDelay ?? 0,
      phoneNumberLength: Math.min(phoneNumber.length, 64),
      phoneNumber,
      subaddress: opts.subaddress ?? new Uint8Array(64),
    });
    this.transition(CallState.WaitReply, 'OCRQ sent');
    this.armTimer(() => this.onCallReplyTimeout());
  }

  /** PNS: Outgoing-Call-Reply for this call (matched on its Peer's Call ID). */
  handleOutgoingCallReply(m: OutgoingCallReply): void {
    if (this.role !== 'pns') return;
    if (this.current === CallState.WaitDisconnect) {
      // We gave up while the reply was in flight; learn the PAC's id so its CDN can be matched.
      this.peerCallId = m.callId;
      return;
    }
    if (this.current !== CallState.WaitReply) return;
    this.cancelTimer();
    if (m.resultCode !== OutgoingCallResult.Connected) {
      this.log.info({ resultCode: m.resultCode, errorCode: m.errorCode, causeCode: m.causeCode }, 'PPTP outgoing call refused');
      this.clear('rejected', `OCRP result ${m.resultCode} error ${m.errorCode}`);
      return;
    }
    this.peerCallId = m.callId;
    this.peerReceiveWindow = m.receiveWindowSize;
    this.peerProcessingDelay = m.processingDelay;
    this.connectSpeed = m.connectSpeed;
    this.transition(CallState.Established, 'OCRP connected');
  }

  /** PNS: the PAC disconnected the call. */
  handleCallDisconnectNotify(m: CallDisconnectNotify): void {
    if (this.role !== 'pns') return;
    if (this.current !== CallState.Established && this.current !== CallState.WaitDisconnect) return;
    const wasOurs = this.current === CallState.WaitDisconnect;
    this.clear(wasOurs ? 'local' : 'peer-disconnect', `CDN result ${m.resultCode} error ${m.errorCode} cause ${m.causeCode}`);
  }

  /** PNS: WAN-Error-Notify (section 2.14): keep the latest cumulative counters. */
  handleWanErrorNotify(m: WanErrorNotify): void {
    if (this.role !== 'pns' || this.current !== CallState.Established) return;
    const w = this.wanErrors;
    w.notifies++;
    w.crcErrors = m.crcErrors;
    w.framingErrors = m.framingErrors;
    w.hardwareOverruns = m.hardwareOverruns;
    w.bufferOverruns = m.bufferOverruns;
    w.timeoutErrors = m.timeoutErrors;
    w.alignmentErrors = m.alignmentErrors;
    this.log.warn({ wanErrors: { ...w } }, 'PPTP WAN-Error-Notify');
  }

  /** PNS: tell the PAC the ACCMs PPP negotiated (section 2.15). */
  setLinkInfo(sendAccm: number, receiveAccm: number): void {
    if (this.role !== 'pns' || this.current !== CallState.Established) return;
    this.sendAccm = sendAccm >>> 0;
    this.receiveAccm = receiveAccm >>> 0;
    this.host.send({ type: ControlMessageType.SetLinkInfo, peerCallId: this.peerCallId, sendAccm, receiveAccm });
  }

  // -------------------------------------------------------------------------
  // Both

  /**
   * Hang up. PAC: Call-Disconnect-Notify, then cleared. PNS:
   * Call-Clear-Request, then wait for the PAC's Call-Disconnect-Notify.
   */
  disconnect(result: DisconnectResult = DisconnectResult.AdminShutdown, errorCode: GeneralError = GeneralError.None): void {
    if (this.role === 'pac') {
      if (this.current !== CallState.Established) return;
      this.sendDisconnectNotify(result, errorCode);
      this.clear('local', 'local disconnect, CDN sent');
      return;
    }
    if (this.current !== CallState.Established && this.current !== CallState.WaitReply) return;
    this.cancelTimer();
    this.host.send({ type: ControlMessageType.CallClearRequest, callId: this.localCallId });
    this.transition(CallState.WaitDisconnect, 'local disconnect, CCRQ sent');
    this.armTimer(() => this.onDisconnectTimeout());
  }

  /** The control connection is gone: clear without sending anything. */
  abort(reason: CallClearReason = 'control-closed'): void {
    if (this.current === CallState.Cleared) return;
    this.clear(reason, reason);
  }

  // -------------------------------------------------------------------------

  private onCallReplyTimeout(): void {
    this.timer = undefined;
    if (this.current !== CallState.WaitReply) return;
    // Section 3: a reply that does not come within the time-out ends the attempt; tell the PAC.
    this.host.send({ type: ControlMessageType.CallClearRequest, callId: this.localCallId });
    this.clear('reply-timeout', 'no OCRP in time, CCRQ sent');
  }

  private onDisconnectTimeout(): void {
    this.timer = undefined;
    if (this.current !== CallState.WaitDisconnect) return;
    this.clear('disconnect-timeout', 'no CDN in time');
  }

  private sendDisconnectNotify(result: DisconnectResult, errorCode: GeneralError): void {
    this.host.send({
      type: ControlMessageType.CallDisconnectNotify,
      callId: this.localCallId,
      resultCode: result,
      errorCode,
      causeCode: 0,
      callStatistics: '',
    });
  }

  private clear(reason: CallClearReason, why: string): void {
    this.cancelTimer();
    this.clearReason = reason;
    this.transition(CallState.Cleared, why);
  }

  private armTimer(fn: () => void): void {
    this.cancelTimer();
    this.timer = this.host.clock.setTimer(this.replyTimeoutMs, fn);
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** The one way the state changes. */
  private transition(to: CallState, reason: string): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    logTransition(this.log, 'pptp-call', from, to, reason, 'info');
    if (to === CallState.Established) this.host.callEstablished(this);
    else if (to === CallState.Cleared) this.host.callCleared(this, this.clearReason ?? 'control-closed');
  }
}
