/**
 * What the SSTP client and server state machines share: MS-SSTP 3.1
 * (common details). The Call Abort and Call Disconnect sub-machines
 * (3.1.1.1.1, 3.1.1.1.2), the Hello timer and echo (3.1.2.3), the abort and
 * disconnect timers (3.1.2.1, 3.1.2.2), stream delineation and invalid
 * messages (3.1.5.1) and the PPP frame gate (3.1.7, 3.2.7, 3.3.7).
 *
 * Abort (either role; "In_Progress" states are passed through while sending):
 *
 *   any ──invalid/unexpected msg, timeout──► Abort_In_Progress_1 ─send Abort, T1─► Abort_Pending
 *   Abort_Pending ──Abort rcvd──► Abort_Timeout_Pending (T2)        Abort_Pending ──T1──► cleaned up
 *   other ──Abort rcvd──► Abort_In_Progress_2 ─send Abort, T2─► Abort_Timeout_Pending ──T2──► cleaned up
 *
 * Disconnect:
 *
 *   any ──disconnect()──► Disconnect_In_Progress_1 ─send Disconnect, T1─► Disconnect_Ack_Pending
 *   Disconnect_Ack_Pending ──Disconnect Ack rcvd / T1──► cleaned up
 *   other ──Disconnect rcvd──► Disconnect_In_Progress_2 ─send Ack, T2─► Disconnect_Timeout_Pending ──T2──► cleaned up
 *
 * Cleaned up = the role's *_Call_Disconnected state, transport closed,
 * `onClosed` called once. The role classes (server.ts, client.ts) add the
 * call establishment states and messages.
 */
import type { Clock, Timer } from '../util/clock.js';
import type { DecodeFailure } from '../util/decode.js';
import { logTransition, type Logger } from '../util/log.js';
import {
  decodeControlFromRaw,
  decodeRawPacket,
  dataPacketBytes,
  encodeCallAbort,
  encodeCallDisconnect,
  encodeCallDisconnectAck,
  encodeEchoRequest,
  encodeEchoResponse,
  callAbortLength,
  emptyControlLength,
  SstpDeframer,
  type ControlMessage,
  type RawControl,
  type StatusInfo,
} from './codec.js';
import {
  AttribStatus,
  AttributeId,
  DEFAULT_TIMERS,
  MESSAGE_NAMES,
  MessageType,
  SSTP_MAX_DATA_PAYLOAD,
  type HashProtocol,
  type SstpTimers,
} from './constants.js';

/** 3.1.1: states both roles share. */
export const CallState = {
  CallAbortInProgress1: 'Call_Abort_In_Progress_1',
  CallAbortInProgress2: 'Call_Abort_In_Progress_2',
  CallAbortPending: 'Call_Abort_Pending',
  CallAbortTimeoutPending: 'Call_Abort_Timeout_Pending',
  CallDisconnectInProgress1: 'Call_Disconnect_In_Progress_1',
  CallDisconnectInProgress2: 'Call_Disconnect_In_Progress_2',
  CallDisconnectAckPending: 'Call_Disconnect_Ack_Pending',
  CallDisconnectTimeoutPending: 'Call_Disconnect_Timeout_Pending',
} as const;
export type CallState = (typeof CallState)[keyof typeof CallState];

/** The byte stream under SSTP (the TLS socket, after the HTTP exchange). */
export interface SstpTransport {
  write(bytes: Uint8Array): void;
  close(): void;
}

export type SstpEndReason =
  /** Call Disconnect / Disconnect Ack exchange (or its timers). */
  | 'disconnected'
  /** Call Abort exchange (or its timers). */
  | 'aborted'
  /** 3.1.2.3: no SSTP packet for a whole Hello interval after our Echo Request; closed without a message. */
  | 'hello-timeout'
  /** 3.1.5.1: the stream could not be delineated; closed without a message. */
  | 'framing-error'
  /** The transport went away under us. */
  | 'transport-closed'
  /** close() was called: torn down locally without any message. */
  | 'closed';

export interface SstpCallEnd {
  reason: SstpEndReason;
  initiator: 'local' | 'peer';
  /** Human-readable, safe to log. */
  detail: string;
  /** The Status Info we sent (local abort or disconnect) or the peer sent (peer abort or disconnect). */
  status?: StatusInfo;
}

export interface SstpCallEvents {
  /** 3.1.7.1 Lower Link Up: start the PPP state machine (server: after Call Connect Ack; client: on it). */
  onPppStart?(): void;
  /** A PPP frame arrived in a state that admits it. The array is the callee's to keep. */
  onPppFrame?(frame: Uint8Array): void;
  /** Crypto binding done: *_Call_Connected; PPP data frames flow from now on. */
  onConnected?(info: { hashProtocol: HashProtocol }): void;
  /** The call is over and the transport was closed. Called exactly once. */
  onClosed?(end: SstpCallEnd): void;
}

export interface SstpCallStats {
  rxPackets: number;
  txPackets: number;
  rxPppFrames: number;
  txPppFrames: number;
  /** PPP frames dropped, by reason. */
  pppDropped: { state: number; tooLong: number; empty: number };
  echoRequestsSent: number;
  /** Control messages ignored as the abort / disconnect states require. */
  controlIgnored: number;
}

export interface SstpCallBaseOptions {
  transport: SstpTransport;
  clock: Clock;
  log: Logger;
  timers?: Partial<SstpTimers>;
  events?: SstpCallEvents;
}

/**
 * 3.1.7.1 "Check PPP frame type": control frames are the link and network
 * control protocols (protocol 0x8000 and up: LCP, authentication, NCPs, CCP),
 * data frames everything below (IP, IPv6, compressed datagrams). The frame
 * may begin with the 0xff 0x03 address and control fields, and its protocol
 * may be compressed to one octet (odd first octet, always a data protocol).
 */
export function isPppControlFrame(frame: Uint8Array): boolean {
  let p = 0;
  if (frame.length >= 2 && frame[0] === 0xff && frame[1] === 0x03) p = 2;
  if (frame.length <= p) return false;
  const first = frame[p]!;
  if (first & 0x01) return false;
  if (frame.length < p + 2) return false;
  return (first & 0x80) !== 0;
}

/** Status Info for our own Call Disconnect (a normal, user-requested teardown). */
export const STATUS_NO_ERROR: StatusInfo = { attribId: AttributeId.NoError, status: AttribStatus.NoError, value: new Uint8Array(0) };

export function statusOf(status: number, attribId: number = AttributeId.NoError, value = new Uint8Array(0)): StatusInfo {
  return { attribId, status, value };
}

export abstract class SstpCall<S extends string> {
  protected st: S | CallState;
  protected closed = false;
  protected readonly transport: SstpTransport;
  protected readonly clock: Clock;
  protected readonly log: Logger;
  protected readonly events: SstpCallEvents;
  readonly timers: Readonly<SstpTimers>;
  readonly stats: SstpCallStats = {
    rxPackets: 0,
    txPackets: 0,
    rxPppFrames: 0,
    txPppFrames: 0,
    pppDropped: { state: 0, tooLong: 0, empty: 0 },
    echoRequestsSent: 0,
    controlIgnored: 0,
  };

  private readonly deframer = new SstpDeframer();
  private stateTimer: Timer | undefined;
  private helloTimer: Timer | undefined;
  private lastRx = 0;
  private echoOutstanding = false;
  /** Chunks that arrived while an earlier chunk was being processed (re-entrant input). */
  private pendingInput: Uint8Array[] | null = null;
  private ending: SstpCallEnd | undefined;

  protected constructor(
    private readonly machine: string,
    initial: S,
    private readonly disconnectedState: S,
    opts: SstpCallBaseOptions,
  ) {
    this.st = initial;
    this.transport = opts.transport;
    this.clock = opts.clock;
    this.log = opts.log;
    this.events = opts.events ?? {};
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
  }

  get state(): S | CallState {
    return this.st;
  }

  /** True once cleaned up (transport closed, onClosed called). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** How the call ended (or is ending), once teardown has begun. */
  get end(): SstpCallEnd | undefined {
    return this.ending;
  }

  // ---- role hooks --------------------------------------------------------

  /** *_Call_Connected. */
  protected abstract isEstablished(): boolean;
  /** 3.2.7 / 3.3.7: whether a PPP control (or data) frame may pass in the current state. */
  protected abstract admitsPpp(control: boolean): boolean;
  /** Call Connect Request / Ack / Nak / Connected, already decoded. */
  protected abstract onEstablishmentMessage(msg: ControlMessage, packet: Uint8Array, raw: RawControl): void;
  /** A control packet that broke a rule of 2.2 (`raw` is absent when even its attributes could not be split). */
  protected abstract onInvalidMessage(failure: DecodeFailure, packet: Uint8Array, raw: RawControl | undefined): void;

  // ---- input -------------------------------------------------------------

  /** Bytes from the transport (after the HTTP exchange), in any chunking. */
  input(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.pendingInput) {
      this.pendingInput.push(chunk.slice());
      return;
    }
    this.pendingInput = [];
    try {
      let next: Uint8Array | undefined = chunk;
      while (next && !this.closed) {
        const failure = this.deframer.feed(next, (p) => this.onPacket(p));
        if (failure && !this.closed) {
          // 3.1.5.1: "If the delineation fails ... the connection MUST be forcefully aborted
          // without sending a message to the SSTP far end."
          this.ending = { reason: 'framing-error', initiator: 'peer', detail: `stream delineation failed: ${failure.message}` };
          this.finish('stream delineation failed');
        }
        next = this.pendingInput.shift();
      }
    } finally {
      this.pendingInput = null;
    }
  }

  /**
   * 3.1.5.1 for a stream delineated elsewhere (the WASM data path): the
   * connection "MUST be forcefully aborted without sending a message".
   */
  streamBroken(detail = 'stream delineation failed'): void {
    if (this.closed) return;
    this.ending = { reason: 'framing-error', initiator: 'peer', detail };
    this.finish(detail);
  }

  /** The transport closed or failed under us (3.1.7.1 Lower Link Down). */
  transportClosed(): void {
    if (this.closed) return;
    // 3.1.1.1.2: in Call_Abort_Pending "when a lower layer disconnects ... the Call Abort is completed".
    if (!this.ending) this.ending = { reason: 'transport-closed', initiator: 'peer', detail: 'transport closed' };
    this.finish('transport closed');
  }

  /** Tear down at once, without any SSTP message (shutdown, admin kill). */
  close(detail = 'closed locally'): void {
    if (this.closed) return;
    this.ending = { reason: 'closed', initiator: 'local', detail };
    this.finish(detail);
  }

  private onPacket(packet: Uint8Array): void {
    if (this.closed) return;
    this.stats.rxPackets++;
    // 3.1.2.3: "The timer is restarted after receiving an SSTP packet (both the SSTP control
    // packet and the SSTP data packet)"; any packet also answers an outstanding Echo Request.
    this.lastRx = this.clock.now();
    this.echoOutstanding = false;

    const raw = decodeRawPacket(packet);
    if (!raw.ok) return this.onInvalidMessage(raw, packet, undefined);
    if (raw.value.kind === 'data') return this.onDataPayload(raw.value.payload);
    const m = decodeControlFromRaw(raw.value, raw.consumed);
    if (!m.ok) return this.onInvalidMessage(m, packet, raw.value);
    const msg = m.value;
    this.log.debug({ machine: this.machine, message: MESSAGE_NAMES[msg.type], state: this.st }, 'sstp: recv');
    switch (msg.type) {
      case MessageType.CallAbort:
        return this.onCallAbort(msg.statusInfo);
      case MessageType.CallDisconnect:
        return this.onCallDisconnect(msg.statusInfo);
      case MessageType.CallDisconnectAck:
        return this.onCallDisconnectAck();
      case MessageType.EchoRequest:
        return this.onEchoRequest();
      case MessageType.EchoResponse:
        return this.onEchoResponse();
      case MessageType.CallConnectRequest:
      case MessageType.CallConnectAck:
      case MessageType.CallConnectNak:
      case MessageType.CallConnected:
        return this.onEstablishmentMessage(msg, packet, raw.value);
    }
  }

  private onDataPayload(payload: Uint8Array): void {
    if (payload.length === 0) {
      this.stats.pppDropped.empty++;
      return;
    }
    // 3.2.7.2 / 3.3.7.2: control frames once the call is being set up, data frames only when connected.
    if (!this.admitsPpp(isPppControlFrame(payload))) {
      this.stats.pppDropped.state++;
      return;
    }
    this.stats.rxPppFrames++;
    this.events.onPppFrame?.(payload.slice());
  }

  // ---- output ------------------------------------------------------------

  /**
   * Send one PPP frame (protocol field first, optionally preceded by 0xff 0x03)
   * in an SSTP data packet. Returns false when the frame was dropped: a state
   * that does not admit it (3.2.7.1 / 3.3.7.1 "Else, drop the PPP frame"), or
   * a frame larger than one SSTP packet can carry.
   */
  sendPppFrame(frame: Uint8Array): boolean {
    if (this.closed || !this.admitsPpp(isPppControlFrame(frame))) {
      this.stats.pppDropped.state++;
      return false;
    }
    if (frame.length === 0) {
      this.stats.pppDropped.empty++;
      return false;
    }
    if (frame.length > SSTP_MAX_DATA_PAYLOAD) {
      this.stats.pppDropped.tooLong++;
      return false;
    }
    this.stats.txPppFrames++;
    this.write(dataPacketBytes(frame));
    return true;
  }

  protected write(bytes: Uint8Array): void {
    if (this.closed) return;
    this.stats.txPackets++;
    this.transport.write(bytes);
  }

  protected sendControl(type: MessageType, bytes: Uint8Array): void {
    this.log.debug({ machine: this.machine, message: MESSAGE_NAMES[type], state: this.st }, 'sstp: send');
    this.write(bytes);
  }

  private sendEmpty(type: typeof MessageType.CallDisconnectAck | typeof MessageType.EchoRequest | typeof MessageType.EchoResponse): void {
    const b = new Uint8Array(emptyControlLength());
    if (type === MessageType.CallDisconnectAck) encodeCallDisconnectAck(b, 0);
    else if (type === MessageType.EchoRequest) encodeEchoRequest(b, 0);
    else encodeEchoResponse(b, 0);
    this.sendControl(type, b);
  }

  // ---- transitions and timers ---------------------------------------------

  /** The one place the state changes. */
  protected transition(to: S | CallState, reason: string): void {
    const from = this.st;
    this.st = to;
    logTransition(this.log, this.machine, from, to, reason, 'info');
  }

  /** Arm the single negotiation / abort / disconnect timer slot (replacing what it held). */
  protected armStateTimer(ms: number, onExpired: () => void): void {
    this.stateTimer?.cancel();
    this.stateTimer = this.clock.setTimer(ms, () => {
      this.stateTimer = undefined;
      if (!this.closed) onExpired();
    });
  }

  protected cancelStateTimer(): void {
    this.stateTimer?.cancel();
    this.stateTimer = undefined;
  }

  /** 3.1.2.3: started when the call reaches *_Call_Connected. */
  protected startHelloTimer(): void {
    this.lastRx = this.clock.now();
    this.echoOutstanding = false;
    this.armHello(this.timers.helloMs);
  }

  private armHello(ms: number): void {
    this.helloTimer?.cancel();
    this.helloTimer = this.clock.setTimer(ms, () => {
      this.helloTimer = undefined;
      if (!this.closed) this.onHelloTimerExpired();
    });
  }

  private cancelHelloTimer(): void {
    this.helloTimer?.cancel();
    this.helloTimer = undefined;
  }

  /**
   * 3.1.2.3: "On expiry of the Hello timer, the SSTP peer MUST send an Echo
   * Request packet ... If the SSTP far end does not respond with an Echo
   * Response (or any SSTP packet) within the next timer interval, then it MUST
   * abort the connection without sending a Call Abort packet." Received
   * packets only stamp `lastRx`; the timer re-arms for what is left of the
   * interval instead of being reset per packet.
   */
  private onHelloTimerExpired(): void {
    if (!this.isEstablished()) return;
    if (this.echoOutstanding) {
      this.ending = {
        reason: 'hello-timeout',
        initiator: 'local',
        detail: `no SSTP packet within ${this.timers.helloMs} ms of our Echo Request`,
      };
      this.finish('hello timeout');
      return;
    }
    const idle = this.clock.now() - this.lastRx;
    if (idle < this.timers.helloMs) {
      this.armHello(this.timers.helloMs - idle);
      return;
    }
    this.stats.echoRequestsSent++;
    this.sendEmpty(MessageType.EchoRequest);
    this.echoOutstanding = true;
    this.armHello(this.timers.helloMs);
  }

  /** States in which 3.x.5 says to ignore establishment and echo messages. */
  protected tearingDown(): boolean {
    return (
      this.st === CallState.CallAbortPending ||
      this.st === CallState.CallAbortTimeoutPending ||
      this.st === CallState.CallDisconnectAckPending ||
      this.st === CallState.CallDisconnectTimeoutPending
    );
  }

  protected ignored(what: string): void {
    this.stats.controlIgnored++;
    this.log.debug({ machine: this.machine, state: this.st }, `sstp: ${what} ignored`);
  }

  // ---- abort (3.1.1.1.2, 3.1.5.1) ------------------------------------------

  /**
   * Local abort, the procedure of 3.1.5.1: Call_Abort_In_Progress_1, send
   * Call Abort (with one Status Info, 2.2.13 SHOULD), start
   * TIMER_VAL_ABORT_STATE_TIMER_1, Call_Abort_Pending.
   */
  protected abortCall(status: StatusInfo, detail: string): void {
    if (this.closed) return;
    this.cancelStateTimer();
    this.cancelHelloTimer();
    this.ending = { reason: 'aborted', initiator: 'local', detail, status };
    this.transition(CallState.CallAbortInProgress1, detail);
    const b = new Uint8Array(callAbortLength(status));
    encodeCallAbort(b, 0, status);
    this.sendControl(MessageType.CallAbort, b);
    this.armStateTimer(this.timers.abortT1Ms, () => this.onAbortTimer1Expired());
    this.transition(CallState.CallAbortPending, 'Call Abort sent');
  }

  /** 3.1.5.1 for a message that breaks the syntax: abort, unless already tearing down. */
  protected abortInvalid(failure: DecodeFailure): void {
    if (this.tearingDown()) return this.ignored(`invalid message (${failure.message})`);
    this.abortCall(statusOf(AttribStatus.InvalidFrameReceived), `invalid message: ${failure.message}`);
  }

  /** "Else if CurrentState has any other value": a valid message in a state that does not take it. */
  protected abortUnexpected(type: MessageType): void {
    if (this.tearingDown()) return this.ignored(MESSAGE_NAMES[type]);
    this.abortCall(statusOf(AttribStatus.UnacceptedFrameReceived), `${MESSAGE_NAMES[type]} unexpected in ${this.st}`);
  }

  /** 3.2.5.3.4 / 3.3.5.2.4: receiving SSTP_MSG_CALL_ABORT. */
  private onCallAbort(status: StatusInfo | undefined): void {
    switch (this.st) {
      case CallState.CallAbortPending:
        // "Stop the TIMER_VAL_ABORT_STATE_TIMER_1 timer; Start the TIMER_VAL_ABORT_STATE_TIMER_2".
        this.cancelStateTimer();
        this.armStateTimer(this.timers.abortT2Ms, () => this.onAbortTimer2Expired());
        this.transition(CallState.CallAbortTimeoutPending, 'Call Abort received');
        return;
      case CallState.CallAbortTimeoutPending:
      case CallState.CallDisconnectTimeoutPending:
      case CallState.CallAbortInProgress2:
        return this.ignored('Call Abort');
      default: {
        this.cancelStateTimer();
        this.cancelHelloTimer();
        this.ending = { reason: 'aborted', initiator: 'peer', detail: 'peer sent Call Abort', ...(status ? { status } : {}) };
        this.transition(CallState.CallAbortInProgress2, 'Call Abort received');
        // sstpc acts on a Call Abort only if it carries a Status Info, so ours always does.
        const ours = STATUS_NO_ERROR;
        const b = new Uint8Array(callAbortLength(ours));
        encodeCallAbort(b, 0, ours);
        this.sendControl(MessageType.CallAbort, b);
        this.armStateTimer(this.timers.abortT2Ms, () => this.onAbortTimer2Expired());
        this.transition(CallState.CallAbortTimeoutPending, 'Call Abort sent');
      }
    }
  }

  /** 3.1.2.1: T1 ran out without the far end's Call Abort: clean up. */
  private onAbortTimer1Expired(): void {
    this.finish('TIMER_VAL_ABORT_STATE_TIMER_1 expired');
  }

  /** 3.1.2.1: "Once this timer expires, the SSTP far end MUST clear the connection state". */
  private onAbortTimer2Expired(): void {
    this.finish('TIMER_VAL_ABORT_STATE_TIMER_2 expired');
  }

  // ---- disconnect (3.1.1.1.1) ----------------------------------------------

  /**
   * Disconnect Tunnel event (3.2.4.2 / 3.3.4.x): Call_Disconnect_In_Progress_1,
   * send Call Disconnect, start TIMER_VAL_DISCONNECT_STATE_TIMER_1,
   * Call_Disconnect_Ack_Pending. Used for a user or admin disconnect and when
   * PPP has finished (or failed authentication). No-op while already tearing down.
   */
  disconnect(detail = 'local disconnect'): void {
    if (this.closed || this.tearingDown()) return;
    this.cancelStateTimer();
    this.cancelHelloTimer();
    this.ending = { reason: 'disconnected', initiator: 'local', detail, status: STATUS_NO_ERROR };
    this.transition(CallState.CallDisconnectInProgress1, detail);
    // 2.2.14: "SHOULD have one Status Info attribute"; sstpc only acknowledges one that has it.
    const b = new Uint8Array(callAbortLength(STATUS_NO_ERROR));
    encodeCallDisconnect(b, 0, STATUS_NO_ERROR);
    this.sendControl(MessageType.CallDisconnect, b);
    this.armStateTimer(this.timers.disconnectT1Ms, () => this.onDisconnectTimer1Expired());
    this.transition(CallState.CallDisconnectAckPending, 'Call Disconnect sent');
  }

  /** Receiving SSTP_MSG_CALL_DISCONNECT: acknowledge "regardless of the value of CurrentState" (3.2.4.2). */
  private onCallDisconnect(status: StatusInfo | undefined): void {
    switch (this.st) {
      case CallState.CallAbortPending:
      case CallState.CallAbortTimeoutPending:
      case CallState.CallDisconnectTimeoutPending:
        return this.ignored('Call Disconnect');
      default:
        this.cancelStateTimer();
        this.cancelHelloTimer();
        this.ending = { reason: 'disconnected', initiator: 'peer', detail: 'peer sent Call Disconnect', ...(status ? { status } : {}) };
        this.transition(CallState.CallDisconnectInProgress2, 'Call Disconnect received');
        this.sendEmpty(MessageType.CallDisconnectAck);
        this.armStateTimer(this.timers.disconnectT2Ms, () => this.onDisconnectTimer2Expired());
        this.transition(CallState.CallDisconnectTimeoutPending, 'Call Disconnect Ack sent');
    }
  }

  /** Receiving SSTP_MSG_CALL_DISCONNECT_ACK (3.2.5.3.6 / 3.3.5.2.6). */
  private onCallDisconnectAck(): void {
    switch (this.st) {
      case CallState.CallDisconnectAckPending:
        // "Immediately clear the connection state to clean up the connection."
        this.finish('Call Disconnect Ack received');
        return;
      case CallState.CallAbortPending:
      case CallState.CallAbortTimeoutPending:
      case CallState.CallDisconnectTimeoutPending:
        return this.ignored('Call Disconnect Ack');
      default:
        return this.abortUnexpected(MessageType.CallDisconnectAck);
    }
  }

  /** 3.1.2.2: no acknowledgement within T1: clean up anyway. */
  private onDisconnectTimer1Expired(): void {
    if (this.ending) this.ending = { ...this.ending, detail: `${this.ending.detail}; no Call Disconnect Ack` };
    this.finish('TIMER_VAL_DISCONNECT_STATE_TIMER_1 expired');
  }

  private onDisconnectTimer2Expired(): void {
    this.finish('TIMER_VAL_DISCONNECT_STATE_TIMER_2 expired');
  }

  // ---- echo (3.2.5.3.7-8, 3.3.5.2.7-8) --------------------------------------

  private onEchoRequest(): void {
    if (this.isEstablished()) return this.sendEmpty(MessageType.EchoResponse);
    return this.abortUnexpected(MessageType.EchoRequest);
  }

  private onEchoResponse(): void {
    // The receipt itself already cleared the outstanding echo and stamped lastRx.
    if (this.isEstablished()) return;
    return this.abortUnexpected(MessageType.EchoResponse);
  }

  // ---- cleanup ---------------------------------------------------------------

  /** Clear the connection state: timers off, *_Call_Disconnected, transport closed, onClosed once. */
  protected finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelStateTimer();
    this.cancelHelloTimer();
    const end = this.ending ?? { reason: 'closed', initiator: 'local', detail: reason };
    this.ending = end;
    this.transition(this.disconnectedState, reason);
    this.onFinished();
    this.transport.close();
    this.events.onClosed?.(end);
  }

  /** Role cleanup (wipe keys). */
  protected onFinished(): void {}
}

