/**
 * The PPTP control connection: RFC 2637 section 3.1 (states), 3.1.4 (keep
 * alives and timers), section 3 (error recovery), with the Windows profile
 * [MS-PTPT] 3.1-3.3. Two roles over one abstract byte stream:
 *
 * - {@link PptpServerConnection}: the gateway, which is the PAC and the
 *   control connection *receiver* ([MS-PTPT] 1.1: the PAC is the server
 *   that terminates the tunnel; Windows and pptp-linux clients are PNSs that
 *   open TCP 1723, send Start-Control-Connection-Request, then
 *   Outgoing-Call-Request).
 * - {@link PptpClientConnection}: a PNS, the *originator* (our client,
 *   tests and benchmarks).
 *
 * States (the RFC's; "closed" is the RFC's idle after the TCP connection is
 * gone, kept distinct so a finished connection is never mistaken for a new
 * one):
 *
 *   receiver (PAC):
 *     idle --SCCRQ, version >= 1.0 / SCCRP(Success)--> established
 *     idle --SCCRQ, version < 1.0 / SCCRP(Unsupported-Version), close--> closed
 *     idle --no SCCRQ in time / close--> closed
 *   originator (PNS):
 *     idle --start() / SCCRQ--> wait_ctl_reply
 *     wait_ctl_reply --SCCRP(Success), version >= 1.0--> established
 *     wait_ctl_reply --SCCRP(error) or no reply in time / close--> closed
 *     wait_ctl_reply --SCCRP, version < 1.0 / StopCCRQ(Stop-Protocol)--> wait_stop_reply
 *   both:
 *     established --stop() / StopCCRQ--> wait_stop_reply
 *     wait_stop_reply --StopCCRP or no reply in time / close--> closed
 *     any open --StopCCRQ / StopCCRP, close--> closed
 *     any open --TCP closed, echo unanswered, malformed stream / close--> closed
 *
 * Keep-alive (section 3.1.4 item 2): when nothing has been received for 60 s
 * on an established connection we send Echo-Request; if its Echo-Reply does
 * not arrive within 60 s we close the TCP connection. Hand-shake (item 1): a
 * receiver closes when no SCCRQ arrives in time (30 s, [MS-PTPT] 3.1.2),
 * an originator when no SCCRP arrives in 60 s.
 *
 * Malformed input (bad cookie, wrong length for the type, unknown type,
 * management message): section 3 says to log it and close the control
 * connection to recover into a known state. A byte stream cannot be
 * resynchronised, so nothing after the bad message is read; when
 * established we first tell the peer (CDN per call from a PAC, then
 * Stop-Control-Connection-Request), then close.
 *
 * Messages that are well-formed but do not fit the role or state (an
 * Outgoing-Call-Reply sent to a PAC, a Set-Link-Info for an unknown call)
 * are logged, counted and ignored, as Windows does for Incoming-Call-Reply
 * ([MS-PTPT] <13>) and pptp-linux for everything it does not expect.
 *
 * Nothing here touches sockets: bytes come in through {@link input}, go out
 * through {@link ControlTransport}; every timer goes through the injected
 * Clock.
 */
import type { Clock, Timer } from '../util/clock.js';
import { VpnError } from '../util/errors.js';
import { logTransition, silentLogger, type Logger } from '../util/log.js';
import type { DecodeFailure } from '../util/decode.js';
import { CallIdAllocator } from './callid.js';
import { CallState, PptpCall, type CallClearReason, type CallHost, type OutgoingCallOptions } from './call.js';
import {
  BEARER_ANY,
  CONTROL_MESSAGE_NAME,
  ControlDeframer,
  ControlMessageType,
  DisconnectResult,
  EchoResult,
  FRAMING_ANY,
  GeneralError,
  IncomingCallResult,
  OutgoingCallResult,
  PPTP_PROTOCOL_VERSION,
  StartControlResult,
  StopReason,
  StopResult,
  encodeControlMessage,
  type ControlMessage,
  type OutgoingCallRequest,
  type StartControlConnectionReply,
  type StartControlConnectionRequest,
} from './codec.js';

// ---------------------------------------------------------------------------
// From the spec

/** Section 3.1.4: send Echo-Request after this long without receiving a control message. */
export const ECHO_INTERVAL_MS = 60_000;
/** Section 3.1.4: close when the Echo-Reply has not come after this long. */
export const ECHO_REPLY_TIMEOUT_MS = 60_000;
/** Section 3: an expected reply that does not arrive within 60 s closes (here: SCCRP, StopCCRP, OCRP, CDN). */
export const REPLY_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------
// Our choices

/** Receiver hand-shake: no SCCRQ within this long closes ([MS-PTPT] 3.1.2 uses 30 s; the RFC 60 s). */
export const SERVER_HANDSHAKE_TIMEOUT_MS = 30_000;
/** A PAC connection with no call for this long (after SCCRP, or after its last call) is stopped. */
export const CALL_SETUP_TIMEOUT_MS = 60_000;
/**
 * Packet Recv. Window Size we advertise. Nobody we interoperate with enforces
 * windows (gre.ts rule 9); 64 lets an RFC-strict peer run well ahead (npppd
 * uses 64 too) while staying far below any real buffering limit.
 */
export const RECEIVE_WINDOW_SIZE = 64;
/** Remote access: one call per control connection (Windows and pptp-linux open exactly one). */
export const MAX_CALLS_PER_CONNECTION = 1;
export const HOST_NAME = 'vpngw';
export const VENDOR_NAME = 'vpngw';
/** Firmware Revision field: our PPTP implementation's revision. */
export const FIRMWARE_REVISION = 0x0001;
/** Ignored messages logged at info per connection; the rest at debug (all are counted). */
export const UNEXPECTED_LOGGED_AT_INFO = 10;
/** Connect Speed when the PNS's Maximum BPS is 0; otherwise we echo that maximum (as accel-ppp does). */
export const DEFAULT_CONNECT_SPEED = 100_000_000;

export enum ControlState {
  Idle = 'idle',
  WaitCtlReply = 'wait_ctl_reply',
  Established = 'established',
  WaitStopReply = 'wait_stop_reply',
  Closed = 'closed',
}

/** The byte stream under a control connection (a TCP socket, or an in-memory pipe in tests). */
export interface ControlTransport {
  /** Queue bytes for the peer. */
  write(bytes: Uint8Array): void;
  /** Flush what was written, then close. Called at most once. */
  close(): void;
}

export type ControlCloseReason =
  /** The peer sent Stop-Control-Connection-Request. */
  | 'peer-stop'
  /** We stopped (stop(), or the last call ended) and the peer replied, or we closed before establishment. */
  | 'local-stop'
  /** Our Stop-Control-Connection-Request got no reply in time. */
  | 'stop-reply-timeout'
  /** The TCP connection ended under us. */
  | 'peer-closed'
  /** No Echo-Reply in time (section 3.1.4). */
  | 'echo-timeout'
  /** No SCCRQ (receiver) or SCCRP (originator) in time (section 3.1.4). */
  | 'handshake-timeout'
  /** Malformed control stream (section 3). */
  | 'protocol-error'
  /** The peer's protocol version is older than 1.0. */
  | 'version-unsupported'
  /** The PAC refused our SCCRQ. */
  | 'rejected';

/** What the peer said about itself in its SCCRQ or SCCRP. */
export interface PeerInfo {
  protocolVersion: number;
  hostName: string;
  vendorName: string;
  firmwareRevision: number;
  framingCapabilities: number;
  bearerCapabilities: number;
  maximumChannels: number;
}

/**
 * Callbacks to the tunnel layer. They run synchronously, after the state
 * they report has been entered; exceptions they throw are logged and
 * swallowed so one session's bug cannot wedge the connection.
 */
export interface ControlEvents {
  /** SCCRQ/SCCRP exchanged. */
  onEstablished?(peer: PeerInfo): void;
  /** A call is up: create its PPP session, install GRE state ({@link PptpCall.info}) in the data plane. */
  onCallEstablished?(call: PptpCall): void;
  /** A call is gone (exactly once per call that was created): remove its GRE state, end PPP. */
  onCallCleared?(call: PptpCall, reason: CallClearReason): void;
  /** PAC: Set-Link-Info updated the call's ACCMs. */
  onLinkInfo?(call: PptpCall): void;
  /** The control connection is closed (exactly once); every call was cleared before this. */
  onClosed?(reason: ControlCloseReason): void;
}

export interface ControlConnectionOptions {
  transport: ControlTransport;
  clock: Clock;
  log?: Logger;
  /** Remote address of the TCP connection (GRE peer). */
  peerAddress: string;
  /** The peer as the log lines name it (default peerAddress; a session gives its `ip:port`, as on its other lines). */
  logPeer?: string;
  /** Shared per gateway (or per worker): Call IDs are unique across connections. */
  callIds: CallIdAllocator;
  events?: ControlEvents;
  hostName?: string;
  vendorName?: string;
  firmwareRevision?: number;
  echoIntervalMs?: number;
  echoReplyTimeoutMs?: number;
  /** Receiver: SCCRQ deadline (default 30 s). Originator: SCCRP deadline (default 60 s). */
  handshakeTimeoutMs?: number;
  replyTimeoutMs?: number;
  receiveWindowSize?: number;
  maxCalls?: number;
  /** Stop the control connection when its last call is cleared ([MS-PTPT] 3.2.4, 3.3.4.2). Default true. */
  stopWhenIdle?: boolean;
}

export type CallAdmission = { accept: true } | { accept: false; resultCode: OutgoingCallResult; errorCode?: GeneralError };

export interface PptpServerOptions extends ControlConnectionOptions {
  /** Stop a connection that has had no call for this long (default 60 s). */
  callSetupTimeoutMs?: number;
  /** Connect Speed in the Outgoing-Call-Reply; default: the request's Maximum BPS, or 100 Mbit/s if 0. */
  connectSpeed?: number;
  /** Maximum Channels in our SCCRP (section 2.2: sessions this PAC supports; a PNS ignores it). Default maxCalls. */
  maximumChannels?: number;
  /** Last say on an Outgoing-Call-Request that passed the call limit (policy, data-plane capacity). */
  admitCall?(request: OutgoingCallRequest): CallAdmission;
}

export type PptpClientOptions = ControlConnectionOptions;

export interface ControlCounters {
  messagesIn: number;
  messagesOut: number;
  /** Well-formed messages that did not fit the role, state or a known call. */
  unexpected: number;
  echoRequestsSent: number;
  echoRequestsReceived: number;
  callsRejected: number;
  wanErrorNotifies: number;
}

/** What both roles share; use {@link PptpServerConnection} or {@link PptpClientConnection}. */
export abstract class ControlConnection implements CallHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly peerAddress: string;
  readonly counters: ControlCounters = {
    messagesIn: 0,
    messagesOut: 0,
    unexpected: 0,
    echoRequestsSent: 0,
    echoRequestsReceived: 0,
    callsRejected: 0,
    wanErrorNotifies: 0,
  };
  /** What the peer said about itself, once established. */
  peer: PeerInfo | undefined;
  closeReason: ControlCloseReason | undefined;

  protected current = ControlState.Idle;
  protected readonly transport: ControlTransport;
  protected readonly events: ControlEvents;
  protected readonly callIds: CallIdAllocator;
  protected readonly calls = new Map<number, PptpCall>();
  protected readonly hostName: string;
  protected readonly vendorName: string;
  protected readonly firmwareRevision: number;
  protected readonly echoIntervalMs: number;
  protected readonly echoReplyTimeoutMs: number;
  protected readonly replyTimeoutMs: number;
  protected readonly receiveWindowSize: number;
  protected readonly maxCalls: number;
  protected readonly stopWhenIdle: boolean;
  /** Set once we have begun stopping or closing: no new calls, no automatic stop. */
  protected stopping = false;
  protected handshakeTimer: Timer | undefined;
  /** Why we are stopping, reported when the peer confirms. */
  protected closeReasonAfterStop: ControlCloseReason = 'local-stop';

  private readonly deframer = new ControlDeframer();
  private inputBusy = false;
  private readonly inputQueue: Uint8Array[] = [];
  private lastReceived: number;
  private echoTimer: Timer | undefined;
  private echoReplyTimer: Timer | undefined;
  private echoOutstanding: number | undefined;
  private nextEchoId = 1;
  private stopReplyTimer: Timer | undefined;
  private transportDone = false;

  protected constructor(
    protected readonly machine: string,
    opts: ControlConnectionOptions,
  ) {
    this.transport = opts.transport;
    this.clock = opts.clock;
    this.peerAddress = opts.peerAddress;
    this.log = (opts.log ?? silentLogger).child({ pptp: machine, peer: opts.logPeer ?? opts.peerAddress });
    this.events = opts.events ?? {};
    this.callIds = opts.callIds;
    this.hostName = opts.hostName ?? HOST_NAME;
    this.vendorName = opts.vendorName ?? VENDOR_NAME;
    this.firmwareRevision = opts.firmwareRevision ?? FIRMWARE_REVISION;
    this.echoIntervalMs = opts.echoIntervalMs ?? ECHO_INTERVAL_MS;
    this.echoReplyTimeoutMs = opts.echoReplyTimeoutMs ?? ECHO_REPLY_TIMEOUT_MS;
    this.replyTimeoutMs = opts.replyTimeoutMs ?? REPLY_TIMEOUT_MS;
    this.receiveWindowSize = opts.receiveWindowSize ?? RECEIVE_WINDOW_SIZE;
    this.maxCalls = opts.maxCalls ?? MAX_CALLS_PER_CONNECTION;
    this.stopWhenIdle = opts.stopWhenIdle ?? true;
    this.lastReceived = this.clock.now();
  }

  get state(): ControlState {
    return this.current;
  }

  /** Calls not yet cleared. */
  get activeCalls(): readonly PptpCall[] {
    return [...this.calls.values()];
  }

  /** Bytes read from the TCP connection, in any chunking. Never throws on their content. */
  input(chunk: Uint8Array): void {
    if (this.inputBusy) {
      // Re-entered from a callback that fed us more bytes: keep order, process after the current chunk.
      this.inputQueue.push(chunk);
      return;
    }
    this.inputBusy = true;
    try {
      let next: Uint8Array | undefined = chunk;
      while (next) {
        this.consume(next);
        next = this.inputQueue.shift();
      }
    } finally {
      this.inputBusy = false;
    }
  }

  /** The TCP connection ended (peer close or error). */
  transportClosed(): void {
    this.transportDone = true; // the socket is gone: nothing to close
    this.closeWith('peer-closed', 'TCP connection closed');
  }

  /**
   * Stop the control connection (section 3.1.1 local terminate): calls are
   * cleared (a PAC sends Call-Disconnect-Notify for each first, [MS-PTPT]
   * 3.2.4), then Stop-Control-Connection-Request; the TCP connection closes
   * on the reply or after the reply time-out. Before establishment it just
   * closes.
   */
  stop(reason: StopReason = StopReason.None): void {
    switch (this.current) {
      case ControlState.Closed:
      case ControlState.WaitStopReply:
        return;
      case ControlState.Idle:
      case ControlState.WaitCtlReply:
        this.closeWith('local-stop', 'stopped before establishment');
        return;
      case ControlState.Established:
        this.stopping = true;
        this.clearCallsBeforeStop();
        this.sendStopRequest(reason, `local stop (reason ${reason})`);
        return;
    }
  }

  // -------------------------------------------------------------------------
  // CallHost

  send(m: ControlMessage): void {
    if (this.current === ControlState.Closed || this.transportDone) {
      this.log.debug({ message: CONTROL_MESSAGE_NAME[m.type] }, 'PPTP message not sent: connection closed');
      return;
    }
    this.counters.messagesOut++;
    this.log.debug({ message: CONTROL_MESSAGE_NAME[m.type] }, 'PPTP send');
    this.transport.write(encodeControlMessage(m));
  }

  callEstablished(call: PptpCall): void {
    this.emit('onCallEstablished', () => this.events.onCallEstablished?.(call));
  }

  callCleared(call: PptpCall, reason: CallClearReason): void {
    this.calls.delete(call.localCallId);
    this.callIds.release(call.localCallId);
    this.emit('onCallCleared', () => this.events.onCallCleared?.(call, reason));
    if (this.calls.size === 0 && !this.stopping && this.current === ControlState.Established) this.onLastCallCleared();
  }

  // -------------------------------------------------------------------------
  // Role hooks

  /** Handle a message the common code did not (role-specific: handshake and calls). */
  protected abstract handleMessage(m: ControlMessage): void;
  /** Before our StopCCRQ: PAC sends CDNs, PNS clears silently (section 2.3: stop implicitly clears calls). */
  protected abstract clearCallsBeforeStop(errorCode?: GeneralError): void;
  /** The last call of an established connection was cleared. */
  protected onLastCallCleared(): void {
    if (this.stopWhenIdle) this.stop(StopReason.None);
  }

  // -------------------------------------------------------------------------
  // Shared machinery

  protected enterEstablished(peer: PeerInfo, reason: string): void {
    this.peer = peer;
    this.transition(ControlState.Established, reason);
    this.armEchoTimer();
    this.emit('onEstablished', () => this.events.onEstablished?.(peer));
  }

  protected sendStopRequest(reason: StopReason, why: string): void {
    this.cancelEchoTimers();
    this.send({ type: ControlMessageType.StopControlConnectionRequest, reason });
    this.transition(ControlState.WaitStopReply, why);
    this.stopReplyTimer = this.clock.setTimer(this.replyTimeoutMs, () => this.onStopReplyTimeout());
  }

  /** Tear everything down and close the TCP connection; the single way into `closed`. */
  protected closeWith(reason: ControlCloseReason, why: string): void {
    if (this.current === ControlState.Closed) return;
    this.stopping = true;
    this.cancelTimers();
    for (const call of [...this.calls.values()]) call.abort('control-closed');
    this.closeReason = reason;
    this.transition(ControlState.Closed, why);
    if (!this.transportDone) {
      this.transportDone = true;
      this.transport.close();
    }
    this.emit('onClosed', () => this.events.onClosed?.(reason));
  }

  protected unexpected(m: ControlMessage, why: string): void {
    this.counters.unexpected++;
    // The first few at info; after that a misbehaving peer must not be able to flood the log.
    const level = this.counters.unexpected <= UNEXPECTED_LOGGED_AT_INFO ? 'info' : 'debug';
    this.log[level]({ message: CONTROL_MESSAGE_NAME[m.type], state: this.current }, `PPTP message ignored: ${why}`);
  }

  protected newCall(role: 'pac' | 'pns', localCallId: number, serial: number): PptpCall {
    const call = new PptpCall(this, {
      role,
      localCallId,
      peerAddress: this.peerAddress,
      localReceiveWindow: this.receiveWindowSize,
      callSerialNumber: serial,
      replyTimeoutMs: this.replyTimeoutMs,
    });
    this.calls.set(localCallId, call);
    return call;
  }

  protected findCall(predicate: (c: PptpCall) => boolean): PptpCall | undefined {
    for (const c of this.calls.values()) if (predicate(c)) return c;
    return undefined;
  }

  protected cancelHandshakeTimer(): void {
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
  }

  protected emit(name: keyof ControlEvents, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err, event: name }, 'PPTP event handler threw');
    }
  }

  /** The one way the state changes. */
  protected transition(to: ControlState, reason: string): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    logTransition(this.log, this.machine, from, to, reason);
  }

  /** A method, not a narrowed field read: handlers change the state under our feet. */
  protected isClosed(): boolean {
    return this.current === ControlState.Closed;
  }

  private consume(chunk: Uint8Array): void {
    if (this.isClosed()) return;
    const { messages, error } = this.deframer.push(chunk);
    for (const m of messages) {
      if (this.isClosed()) return;
      this.dispatch(m);
    }
    if (error && !this.isClosed()) this.onMalformed(error);
  }

  private dispatch(m: ControlMessage): void {
    this.counters.messagesIn++;
    this.lastReceived = this.clock.now();
    this.log.debug({ message: CONTROL_MESSAGE_NAME[m.type], state: this.current }, 'PPTP receive');
    switch (m.type) {
      case ControlMessageType.EchoRequest:
        this.counters.echoRequestsReceived++;
        if (this.current === ControlState.Established || this.current === ControlState.WaitStopReply) {
          this.send({ type: ControlMessageType.EchoReply, identifier: m.identifier, resultCode: EchoResult.Ok, errorCode: GeneralError.None });
        } else {
          // Section 2.16 Not-Connected: no control connection exists yet.
          this.send({
            type: ControlMessageType.EchoReply,
            identifier: m.identifier,
            resultCode: EchoResult.GeneralError,
            errorCode: GeneralError.NotConnected,
          });
        }
        return;
      case ControlMessageType.EchoReply:
        if (this.echoOutstanding !== undefined && m.identifier === this.echoOutstanding) {
          this.echoOutstanding = undefined;
          this.echoReplyTimer?.cancel();
          this.echoReplyTimer = undefined;
          this.armEchoTimer();
        } else {
          this.unexpected(m, 'Echo-Reply matches no outstanding Echo-Request');
        }
        return;
      case ControlMessageType.StopControlConnectionRequest:
        // Sections 3.1.1/3.1.2: reply, then close the TCP connection; calls are implicitly cleared (2.3).
        this.send({ type: ControlMessageType.StopControlConnectionReply, resultCode: StopResult.Ok, errorCode: GeneralError.None });
        this.closeWith('peer-stop', `StopCCRQ received (reason ${m.reason})`);
        return;
      case ControlMessageType.StopControlConnectionReply:
        if (this.current === ControlState.WaitStopReply) this.closeWith(this.closeReasonAfterStop, 'StopCCRP received');
        else this.unexpected(m, 'no Stop-Control-Connection-Request outstanding');
        return;
      default:
        this.handleMessage(m);
    }
  }

  private onMalformed(failure: DecodeFailure): void {
    this.log.warn({ failure }, 'PPTP malformed control stream, closing (RFC 2637 section 3)');
    if (this.current === ControlState.Established) {
      this.stopping = true;
      this.clearCallsBeforeStop(GeneralError.BadFormat);
      this.send({ type: ControlMessageType.StopControlConnectionRequest, reason: StopReason.None });
    }
    this.closeWith('protocol-error', `malformed stream: ${failure.kind}`);
  }

  private armEchoTimer(): void {
    this.echoTimer?.cancel();
    const due = Math.max(0, this.lastReceived + this.echoIntervalMs - this.clock.now());
    this.echoTimer = this.clock.setTimer(due, () => this.onEchoIdleTimeout());
  }

  /** Section 3.1.4: nothing received for the echo interval. */
  private onEchoIdleTimeout(): void {
    this.echoTimer = undefined;
    if (this.current !== ControlState.Established || this.echoOutstanding !== undefined) return;
    const idle = this.clock.now() - this.lastReceived;
    if (idle < this.echoIntervalMs) {
      this.armEchoTimer();
      return;
    }
    const identifier = this.nextEchoId;
    this.nextEchoId = (this.nextEchoId + 1) >>> 0 || 1;
    this.echoOutstanding = identifier;
    this.counters.echoRequestsSent++;
    this.send({ type: ControlMessageType.EchoRequest, identifier });
    this.echoReplyTimer = this.clock.setTimer(this.echoReplyTimeoutMs, () => this.onEchoReplyTimeout());
  }

  /** Section 3.1.4: the Echo-Reply did not come; close the TCP connection. */
  private onEchoReplyTimeout(): void {
    this.echoReplyTimer = undefined;
    if (this.echoOutstanding === undefined) return;
    this.closeWith('echo-timeout', 'no Echo-Reply in time');
  }

  private onStopReplyTimeout(): void {
    this.stopReplyTimer = undefined;
    if (this.current === ControlState.WaitStopReply) this.closeWith('stop-reply-timeout', 'no StopCCRP in time');
  }

  private cancelEchoTimers(): void {
    this.echoTimer?.cancel();
    this.echoTimer = undefined;
    this.echoReplyTimer?.cancel();
    this.echoReplyTimer = undefined;
    this.echoOutstanding = undefined;
  }

  protected cancelTimers(): void {
    this.cancelEchoTimers();
    this.cancelHandshakeTimer();
    this.stopReplyTimer?.cancel();
    this.stopReplyTimer = undefined;
  }
}

// ---------------------------------------------------------------------------
// PAC: the gateway side

/**
 * One accepted TCP connection on port 1723. Create it when the connection
 * is accepted (the hand-shake timer starts then), feed it with input(),
 * call transportClosed() on end/error.
 */
export class PptpServerConnection extends ControlConnection {
  private readonly callSetupTimeoutMs: number;
  private readonly connectSpeed: number | undefined;
  private readonly maximumChannels: number;
  private readonly admitCall: ((r: OutgoingCallRequest) => CallAdmission) | undefined;
  private callSetupTimer: Timer | undefined;

  constructor(opts: PptpServerOptions) {
    super('pptp-pac', opts);
    this.callSetupTimeoutMs = opts.callSetupTimeoutMs ?? CALL_SETUP_TIMEOUT_MS;
    this.connectSpeed = opts.connectSpeed;
    this.maximumChannels = opts.maximumChannels ?? this.maxCalls;
    this.admitCall = opts.admitCall;
    const handshake = opts.handshakeTimeoutMs ?? SERVER_HANDSHAKE_TIMEOUT_MS;
    this.handshakeTimer = this.clock.setTimer(handshake, () => this.onHandshakeTimeout());
  }

  protected handleMessage(m: ControlMessage): void {
    switch (m.type) {
      case ControlMessageType.StartControlConnectionRequest:
        this.onStartRequest(m);
        return;
      case ControlMessageType.OutgoingCallRequest:
        this.onOutgoingCallRequest(m);
        return;
      case ControlMessageType.CallClearRequest: {
        if (this.current !== ControlState.Established) return this.unexpected(m, 'not established');
        // The Call ID is the PNS's (section 2.12); accept our own too, for peers that get this backwards.
        const call =
          this.findCall((c) => c.state === CallState.Established && c.peerCallId === m.callId) ??
          this.findCall((c) => c.state === CallState.Established && c.localCallId === m.callId);
        if (!call) return this.unexpected(m, `Call-Clear-Request for unknown call ${m.callId}`);
        call.handleCallClearRequest();
        return;
      }
      case ControlMessageType.SetLinkInfo: {
        if (this.current !== ControlState.Established) return this.unexpected(m, 'not established');
        // Peer's Call ID here is ours, the PAC's (section 2.15).
        const call = this.calls.get(m.peerCallId);
        if (!call || call.state !== CallState.Established) return this.unexpected(m, `Set-Link-Info for unknown call ${m.peerCallId}`);
        call.handleSetLinkInfo(m);
        this.emit('onLinkInfo', () => this.events.onLinkInfo?.(call));
        return;
      }
      case ControlMessageType.IncomingCallReply:
        // [MS-PTPT] <13>: a PAC that never sends ICRQ silently discards ICRP.
        return this.unexpected(m, 'we never send Incoming-Call-Request');
      default:
        // SCCRP, OCRP, ICRQ, ICCN, CDN, WEN travel PAC -> PNS (or answer requests we never make).
        return this.unexpected(m, 'not a message a PNS sends to a PAC');
    }
  }

  protected clearCallsBeforeStop(errorCode: GeneralError = GeneralError.None): void {
    const result = errorCode === GeneralError.None ? DisconnectResult.AdminShutdown : DisconnectResult.GeneralError;
    for (const call of [...this.calls.values()]) call.disconnect(result, errorCode);
  }

  protected override onLastCallCleared(): void {
    if (this.stopWhenIdle) this.stop(StopReason.None);
    else this.armCallSetupTimer();
  }

  protected override cancelTimers(): void {
    super.cancelTimers();
    this.callSetupTimer?.cancel();
    this.callSetupTimer = undefined;
  }

  private onStartRequest(m: StartControlConnectionRequest): void {
    if (this.current === ControlState.Established) {
      // A second SCCRQ on this connection: section 2.2 result 3, "command channel already exists".
      this.unexpected(m, 'control connection already established');
      this.send(this.startReply(StartControlResult.AlreadyExists));
      return;
    }
    if (this.current !== ControlState.Idle) return this.unexpected(m, 'stopping');
    this.cancelHandshakeTimer();
    if (m.protocolVersion < PPTP_PROTOCOL_VERSION) {
      // Section 3.1.2: a version we cannot support gets an error reply, then the TCP connection closes.
      this.send(this.startReply(StartControlResult.UnsupportedVersion));
      this.closeWith('version-unsupported', `SCCRQ version 0x${m.protocolVersion.toString(16)}`);
      return;
    }
    // Section 3.1.2: same or later version than ours: reply with ours and establish.
    this.send(this.startReply(StartControlResult.Success));
    this.armCallSetupTimer();
    this.enterEstablished(
      {
        protocolVersion: m.protocolVersion,
        hostName: m.hostName,
        vendorName: m.vendorName,
        firmwareRevision: m.firmwareRevision,
        framingCapabilities: m.framingCapabilities,
        bearerCapabilities: m.bearerCapabilities,
        maximumChannels: m.maximumChannels,
      },
      'SCCRQ accepted, SCCRP sent',
    );
  }

  private startReply(resultCode: StartControlResult): StartControlConnectionReply {
    return {
      type: ControlMessageType.StartControlConnectionReply,
      protocolVersion: PPTP_PROTOCOL_VERSION,
      resultCode,
      errorCode: GeneralError.None,
      framingCapabilities: FRAMING_ANY,
      bearerCapabilities: BEARER_ANY,
      maximumChannels: this.maximumChannels,
      firmwareRevision: this.firmwareRevision,
      hostName: this.hostName,
      vendorName: this.vendorName,
    };
  }

  private onOutgoingCallRequest(m: OutgoingCallRequest): void {
    if (this.current === ControlState.Idle) {
      this.unexpected(m, 'before Start-Control-Connection');
      return this.refuseCall(m, OutgoingCallResult.GeneralError, GeneralError.NotConnected);
    }
    if (this.current !== ControlState.Established || this.stopping) return this.unexpected(m, 'stopping');
    if (this.calls.size >= this.maxCalls) return this.refuseCall(m, OutgoingCallResult.GeneralError, GeneralError.NoResource);
    const admission = this.admission(m);
    if (!admission.accept) return this.refuseCall(m, admission.resultCode, admission.errorCode ?? GeneralError.None);
    const id = this.callIds.allocate();
    if (id === undefined) return this.refuseCall(m, OutgoingCallResult.GeneralError, GeneralError.NoResource);
    this.callSetupTimer?.cancel();
    this.callSetupTimer = undefined;
    const call = this.newCall('pac', id, m.callSerialNumber);
    call.accept(m, {
      connectSpeed: this.connectSpeed ?? (m.maximumBps !== 0 ? m.maximumBps : DEFAULT_CONNECT_SPEED),
      processingDelay: 0,
      physicalChannelId: 0,
    });
  }

  private admission(m: OutgoingCallRequest): CallAdmission {
    if (!this.admitCall) return { accept: true };
    try {
      return this.admitCall(m);
    } catch (err) {
      this.log.error({ err }, 'PPTP admitCall threw; refusing the call');
      return { accept: false, resultCode: OutgoingCallResult.GeneralError, errorCode: GeneralError.PacError };
    }
  }

  private refuseCall(m: OutgoingCallRequest, resultCode: OutgoingCallResult, errorCode: GeneralError): void {
    this.counters.callsRejected++;
    this.log.info({ peerCallId: m.callId, resultCode, errorCode }, 'PPTP outgoing call refused');
    this.send({
      type: ControlMessageType.OutgoingCallReply,
      callId: 0,
      peerCallId: m.callId,
      resultCode,
      errorCode,
      causeCode: 0,
      connectSpeed: 0,
      receiveWindowSize: this.receiveWindowSize,
      processingDelay: 0,
      physicalChannelId: 0,
    });
  }

  private armCallSetupTimer(): void {
    this.callSetupTimer?.cancel();
    this.callSetupTimer = this.clock.setTimer(this.callSetupTimeoutMs, () => this.onCallSetupTimeout());
  }

  private onCallSetupTimeout(): void {
    this.callSetupTimer = undefined;
    if (this.current === ControlState.Established && this.calls.size === 0) {
      this.log.info('PPTP control connection without a call, stopping');
      this.stop(StopReason.None);
    }
  }

  private onHandshakeTimeout(): void {
    this.handshakeTimer = undefined;
    if (this.current === ControlState.Idle) this.closeWith('handshake-timeout', 'no SCCRQ in time');
  }
}

// ---------------------------------------------------------------------------
// PNS: the client side

export class PptpClientConnection extends ControlConnection {
  private readonly handshakeTimeoutMs: number;
  private nextSerial = 1;

  constructor(opts: PptpClientOptions) {
    super('pptp-pns', opts);
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? REPLY_TIMEOUT_MS;
  }

  /** The TCP connection is open: send Start-Control-Connection-Request (section 3.1.1). */
  start(): void {
    if (this.current !== ControlState.Idle) return;
    this.send({
      type: ControlMessageType.StartControlConnectionRequest,
      protocolVersion: PPTP_PROTOCOL_VERSION,
      framingCapabilities: FRAMING_ANY,
      bearerCapabilities: BEARER_ANY,
      maximumChannels: 0, // section 2.1: a PNS SHOULD send 0
      firmwareRevision: this.firmwareRevision,
      hostName: this.hostName,
      vendorName: this.vendorName,
    });
    this.transition(ControlState.WaitCtlReply, 'SCCRQ sent');
    this.handshakeTimer = this.clock.setTimer(this.handshakeTimeoutMs, () => this.onHandshakeTimeout());
  }

  /**
   * Ask the PAC for a call (Outgoing-Call-Request). The returned call reports
   * through onCallEstablished / onCallCleared. Throws VpnError
   * ERR_PROTOCOL before establishment, ERR_LIMIT past the call limit.
   */
  openCall(opts: OutgoingCallOptions = {}): PptpCall {
    if (this.current !== ControlState.Established || this.stopping) {
      throw new VpnError('ERR_PROTOCOL', `PPTP control connection is ${this.current}, cannot open a call`);
    }
    if (this.calls.size >= this.maxCalls) throw new VpnError('ERR_LIMIT', `PPTP call limit (${this.maxCalls}) reached`);
    const id = this.callIds.allocate();
    if (id === undefined) throw new VpnError('ERR_LIMIT', 'no free PPTP Call ID');
    const serial = this.nextSerial;
    this.nextSerial = (this.nextSerial + 1) & 0xffff;
    const call = this.newCall('pns', id, serial);
    call.open(opts);
    return call;
  }

  protected handleMessage(m: ControlMessage): void {
    switch (m.type) {
      case ControlMessageType.StartControlConnectionReply:
        if (this.current !== ControlState.WaitCtlReply) return this.unexpected(m, 'no SCCRQ outstanding');
        this.onStartReply(m);
        return;
      case ControlMessageType.OutgoingCallReply: {
        // Peer's Call ID is ours (section 2.8).
        const call = this.calls.get(m.peerCallId);
        if (!call) return this.unexpected(m, `Outgoing-Call-Reply for unknown call ${m.peerCallId}`);
        call.handleOutgoingCallReply(m);
        return;
      }
      case ControlMessageType.CallDisconnectNotify: {
        // The Call ID is the PAC's (section 2.13); some PACs (accel-ppp) send ours, so accept that too.
        const live = (c: PptpCall): boolean => c.state === CallState.Established || c.state === CallState.WaitDisconnect;
        const call =
          this.findCall((c) => live(c) && c.peerCallId === m.callId) ?? this.findCall((c) => live(c) && c.localCallId === m.callId);
        if (!call) return this.unexpected(m, `Call-Disconnect-Notify for unknown call ${m.callId}`);
        call.handleCallDisconnectNotify(m);
        return;
      }
      case ControlMessageType.WanErrorNotify: {
        this.counters.wanErrorNotifies++;
        const call = this.calls.get(m.peerCallId);
        if (!call) return this.unexpected(m, `WAN-Error-Notify for unknown call ${m.peerCallId}`);
        call.handleWanErrorNotify(m);
        return;
      }
      case ControlMessageType.IncomingCallRequest:
        if (this.current !== ControlState.Established) return this.unexpected(m, 'not established');
        // A remote-access PNS takes no incoming calls: section 2.10 result 3, Do-Not-Accept.
        this.send({
          type: ControlMessageType.IncomingCallReply,
          callId: 0,
          peerCallId: m.callId,
          resultCode: IncomingCallResult.DoNotAccept,
          errorCode: GeneralError.None,
          receiveWindowSize: this.receiveWindowSize,
          transmitDelay: 0,
        });
        return;
      case ControlMessageType.OutgoingCallRequest:
        if (this.current !== ControlState.Established) return this.unexpected(m, 'not established');
        // We are not a PAC: we place no calls (pptp-linux answers the same way).
        this.send({
          type: ControlMessageType.OutgoingCallReply,
          callId: 0,
          peerCallId: m.callId,
          resultCode: OutgoingCallResult.DoNotAccept,
          errorCode: GeneralError.None,
          causeCode: 0,
          connectSpeed: 0,
          receiveWindowSize: this.receiveWindowSize,
          processingDelay: 0,
          physicalChannelId: 0,
        });
        return;
      case ControlMessageType.StartControlConnectionRequest:
        if (this.current === ControlState.Established) {
          this.unexpected(m, 'control connection already established');
          this.send({
            type: ControlMessageType.StartControlConnectionReply,
            protocolVersion: PPTP_PROTOCOL_VERSION,
            resultCode: StartControlResult.AlreadyExists,
            errorCode: GeneralError.None,
            framingCapabilities: FRAMING_ANY,
            bearerCapabilities: BEARER_ANY,
            maximumChannels: 0,
            firmwareRevision: this.firmwareRevision,
            hostName: this.hostName,
            vendorName: this.vendorName,
          });
          return;
        }
        return this.unexpected(m, 'we originate this control connection');
      default:
        // ICRP, ICCN... would answer requests we never send; CCRQ and SLI travel PNS -> PAC.
        return this.unexpected(m, 'not a message a PAC sends to a PNS');
    }
  }

  protected clearCallsBeforeStop(): void {
    for (const call of [...this.calls.values()]) call.abort('control-closed');
  }

  private onStartReply(m: StartControlConnectionReply): void {
    this.cancelHandshakeTimer();
    // Result 0 is not in the RFC, but some PACs (ADSL modems, per pptp-linux) send it for success.
    if (m.resultCode !== StartControlResult.Success && m.resultCode !== 0) {
      this.log.warn({ resultCode: m.resultCode, errorCode: m.errorCode }, 'PPTP PAC refused the control connection');
      this.closeWith('rejected', `SCCRP result ${m.resultCode} error ${m.errorCode}`);
      return;
    }
    if (m.protocolVersion < PPTP_PROTOCOL_VERSION) {
      // Section 3.1.1: an earlier version we cannot support: Stop-Control-Connection-Request, wait_stop_reply.
      this.closeReasonAfterStop = 'version-unsupported';
      this.stopping = true;
      this.sendStopRequest(StopReason.StopProtocol, `SCCRP version 0x${m.protocolVersion.toString(16)}`);
      return;
    }
    this.enterEstablished(
      {
        protocolVersion: m.protocolVersion,
        hostName: m.hostName,
        vendorName: m.vendorName,
        firmwareRevision: m.firmwareRevision,
        framingCapabilities: m.framingCapabilities,
        bearerCapabilities: m.bearerCapabilities,
        maximumChannels: m.maximumChannels,
      },
      'SCCRP success',
    );
  }

  private onHandshakeTimeout(): void {
    this.handshakeTimer = undefined;
    if (this.current === ControlState.WaitCtlReply) this.closeWith('handshake-timeout', 'no SCCRP in time');
  }
}
