/**
 * SSTP server: MS-SSTP v20240423 section 3.3 (server details), call
 * establishment state machine 3.3.1.1.1, message processing 3.3.5.2.x,
 * timers 3.3.2, interfaces 3.3.7; the shared abort / disconnect / echo
 * machinery lives in call.ts.
 *
 *   Server_Call_Disconnected
 *        │ start(): HTTPS connection accepted, negotiation timer (connectRequestMs)
 *        ▼
 *   Server_Connect_Request_Pending ──unacceptable Request──► send Nak (stay; > maxNaks: abort)
 *        │ Call Connect Request: send Ack (nonce, hash bitmask), negotiation timer, onPppStart
 *        ▼
 *   Server_Call_Connected_Pending  ── PPP control frames flow ──
 *        │ Call Connected + PPP auth success (either order): verify crypto binding
 *        │      bad binding ──► Call Abort (Call_Abort_Pending ...)
 *        ▼
 *   Server_Call_Connected ── all PPP frames flow, Hello timer / echo ──
 *        │ disconnect() / peer Call Disconnect / Call Abort / timers
 *        ▼
 *   (abort and disconnect sub-machines, call.ts) ──► Server_Call_Disconnected, transport closed
 *
 * Call Connected may arrive before PPP has finished authenticating on this
 * side (the client sends it when *its* PPP is done): the message is kept
 * and verified when authenticated() brings the HLAK. The negotiation timer
 * bounds the wait either way.
 */
import type { DecodeFailure } from '../util/decode.js';
import {
  callConnectAckLength,
  callConnectNakLength,
  callConnectRequestProblems,
  encodeCallConnectAck,
  encodeCallConnectNak,
  type ControlMessage,
  type RawControl,
} from './codec.js';
import {
  AttribStatus,
  AttributeId,
  DEFAULT_MAX_NAKS,
  HTTP_REQUEST_TIMEOUT_MS,
  HashProtocol,
  MessageType,
  SSTP_NONCE_LEN,
} from './constants.js';
import { HLAK_LEN, verifyCallConnected, type CertificateHashes } from './binding.js';
import { CallState, SstpCall, statusOf, type SstpCallBaseOptions, type SstpCallEvents, type SstpTransport } from './call.js';
import {
  SstpHttpAcceptor,
  type HttpLimits,
  type HttpRejectStatus,
  type HttpResponseOptions,
  type SstpHttpRequest,
} from './http.js';
import { randomOctets } from '../util/random.js';

/** 3.3.1: server states (plus the common ones of 3.1.1). */
export const ServerState = {
  ServerCallDisconnected: 'Server_Call_Disconnected',
  ServerConnectRequestPending: 'Server_Connect_Request_Pending',
  ServerCallConnectedPending: 'Server_Call_Connected_Pending',
  ServerCallConnected: 'Server_Call_Connected',
  ...CallState,
} as const;
export type ServerState = (typeof ServerState)[keyof typeof ServerState];
type ServerOwnState =
  | typeof ServerState.ServerCallDisconnected
  | typeof ServerState.ServerConnectRequestPending
  | typeof ServerState.ServerCallConnectedPending
  | typeof ServerState.ServerCallConnected;

export interface SstpServerCallOptions extends SstpCallBaseOptions {
  /** Hashes of the certificate this server presents in TLS (ServerCertificateHash). */
  certHashes: CertificateHashes;
  /** Hash Protocol Bitmask offered in Call Connect Ack (ServerHashProtocolSupported); default SHA1 | SHA256. */
  hashProtocols?: number;
  /** Call Connect Naks before giving up with a Call Abort (default 3). */
  maxNaks?: number;
  /** Source of the 32-octet nonce (tests inject a fixed one). */
  randomBytes?: (n: number) => Uint8Array;
}

/** One SSTP call on the server side, after the HTTP exchange. */
export class SstpServerCall extends SstpCall<ServerOwnState> {
  private readonly certHashes: CertificateHashes;
  private readonly offered: number;
  private readonly maxNaks: number;
  private readonly random: (n: number) => Uint8Array;
  private naksSent = 0;
  private nonce: Uint8Array | undefined;
  /** ServerHLAKKey, once PPP authentication succeeded. */
  private hlak: Uint8Array | undefined;
  /** PPP reported authentication success (the HLAK may since have been wiped). */
  private authDone = false;
  /** A Call Connected that came before the HLAK. */
  private pendingCallConnected: Uint8Array | undefined;

  constructor(opts: SstpServerCallOptions) {
    super('sstp-server', ServerState.ServerCallDisconnected, ServerState.ServerCallDisconnected, opts);
    this.certHashes = opts.certHashes;
    this.offered = (opts.hashProtocols ?? HashProtocol.Sha1 | HashProtocol.Sha256) & (HashProtocol.Sha1 | HashProtocol.Sha256);
    // 2.2.6: "The server MUST select at least one hash protocol."
    if (this.offered === 0) throw new RangeError('offer at least one of SHA1 and SHA256');
    this.maxNaks = opts.maxNaks ?? DEFAULT_MAX_NAKS;
    this.random = opts.randomBytes ?? randomOctets;
  }

  /** 3.3.7.2: New HTTPS Connection Received: wait for the Call Connect Request. */
  start(): void {
    if (this.closed || this.st !== ServerState.ServerCallDisconnected) return;
    this.transition(ServerState.ServerConnectRequestPending, 'HTTPS connection accepted');
    this.armStateTimer(this.timers.connectRequestMs, () => this.onNegotiationTimerExpired());
  }

  /**
   * Inner authentication completed (PPP authenticated the peer). `hlak` is the
   * 32-octet ServerHLAKKey; omit it for methods without keys (PAP, CHAP-MD5),
   * which use 32 zero octets (3.2.5.2.1).
   */
  authenticated(hlak?: Uint8Array): void {
    if (this.closed) return;
    if (hlak && hlak.length !== HLAK_LEN) throw new RangeError(`HLAK must be ${HLAK_LEN} octets`);
    if (this.authDone) return;
    this.authDone = true;
    this.hlak = hlak ? hlak.slice() : new Uint8Array(HLAK_LEN);
    if (this.st === ServerState.ServerCallConnectedPending && this.pendingCallConnected) {
      const msg = this.pendingCallConnected;
      this.pendingCallConnected = undefined;
      this.verifyBinding(msg);
    }
  }

  protected isEstablished(): boolean {
    return this.st === ServerState.ServerCallConnected;
  }

  /** 3.3.7.1 / 3.3.7.2: PPP control frames from Server_Call_Connected_Pending on, data frames once connected. */
  protected admitsPpp(control: boolean): boolean {
    return this.st === ServerState.ServerCallConnected || (control && this.st === ServerState.ServerCallConnectedPending);
  }

  protected onEstablishmentMessage(msg: ControlMessage, packet: Uint8Array, raw: RawControl): void {
    switch (msg.type) {
      case MessageType.CallConnectRequest:
        return this.onCallConnectRequest(raw);
      case MessageType.CallConnected:
        return this.onCallConnected(packet);
      case MessageType.CallConnectAck:
      case MessageType.CallConnectNak:
        // Only a server sends these.
        return this.abortUnexpected(msg.type);
      default:
        return;
    }
  }

  protected onInvalidMessage(failure: DecodeFailure, _packet: Uint8Array, raw: RawControl | undefined): void {
    // An unacceptable Call Connect Request is answered with a Nak listing why (3.3.5.2.2), not an abort.
    if (raw && raw.messageType === MessageType.CallConnectRequest) return this.onCallConnectRequest(raw);
    return this.abortInvalid(failure);
  }

  /** 3.3.5.2.2 */
  private onCallConnectRequest(raw: RawControl): void {
    if (this.tearingDown()) return this.ignored('Call Connect Request');
    if (this.st !== ServerState.ServerConnectRequestPending) return this.abortUnexpected(MessageType.CallConnectRequest);

    const problems = callConnectRequestProblems(raw);
    if (problems.length > 0) {
      if (this.naksSent >= this.maxNaks) {
        return this.abortCall(statusOf(AttribStatus.RetryCountExceeded), `Call Connect Request still unacceptable after ${this.naksSent} Naks`);
      }
      this.naksSent++;
      const b = new Uint8Array(callConnectNakLength(problems));
      encodeCallConnectNak(b, 0, problems);
      this.log.info({ naks: this.naksSent, problems: problems.map((p) => ({ attribId: p.attribId, status: p.status })) }, 'sstp: Call Connect Request refused');
      this.sendControl(MessageType.CallConnectNak, b);
      return;
    }

    this.nonce = this.random(SSTP_NONCE_LEN);
    if (this.nonce.length !== SSTP_NONCE_LEN) throw new RangeError('nonce source returned the wrong length');
    // "The server MUST: 1. Start the negotiation timer. 2. Respond with an SSTP_MSG_CALL_CONNECT_ACK
    // 3. Change CurrentState to Server_Call_Connected_Pending."
    this.armStateTimer(this.timers.negotiationMs, () => this.onNegotiationTimerExpired());
    const b = new Uint8Array(callConnectAckLength());
    encodeCallConnectAck(b, 0, this.offered, this.nonce);
    this.sendControl(MessageType.CallConnectAck, b);
    this.transition(ServerState.ServerCallConnectedPending, 'Call Connect Request accepted');
    // "Request the PPP layer to start the FSM" (3.1.7.1 Lower Link Up).
    this.events.onPppStart?.();
  }

  /** 3.3.5.2.3 */
  private onCallConnected(packet: Uint8Array): void {
    if (this.tearingDown()) return this.ignored('Call Connected');
    if (this.st !== ServerState.ServerCallConnectedPending || this.pendingCallConnected) {
      return this.abortUnexpected(MessageType.CallConnected);
    }
    if (!this.authDone) {
      this.pendingCallConnected = packet.slice();
      this.log.info('sstp: Call Connected before PPP authentication completed; kept until it does');
      return;
    }
    this.verifyBinding(packet);
  }

  private verifyBinding(packet: Uint8Array): void {
    const hlak = this.hlak!;
    const verdict = verifyCallConnected(packet, {
      nonce: this.nonce!,
      offeredHashProtocols: this.offered,
      certHashes: this.certHashes,
      hlak,
    });
    // The HLAK is needed for this one check only.
    hlak.fill(0);
    this.hlak = undefined;
    if (!verdict.ok) {
      // The Crypto Binding attribute's value is not acceptable (2.2.8 ATTRIB_STATUS_VALUE_NOT_SUPPORTED).
      return this.abortCall(statusOf(AttribStatus.ValueNotSupported, AttributeId.CryptoBinding), `crypto binding rejected: ${verdict.message}`);
    }
    this.cancelStateTimer();
    this.transition(ServerState.ServerCallConnected, `crypto binding verified (${verdict.hashProtocol === HashProtocol.Sha256 ? 'SHA-256' : 'SHA-1'})`);
    this.startHelloTimer();
    this.events.onConnected?.({ hashProtocol: verdict.hashProtocol });
  }

  /** 3.3.2: the negotiation timer ran out before the call was connected. */
  private onNegotiationTimerExpired(): void {
    if (this.st !== ServerState.ServerConnectRequestPending && this.st !== ServerState.ServerCallConnectedPending) return;
    const waitingFor = this.st === ServerState.ServerConnectRequestPending ? 'Call Connect Request' : this.authDone ? 'Call Connected' : 'PPP authentication / Call Connected';
    this.abortCall(statusOf(AttribStatus.NegotiationTimeout), `negotiation timer expired waiting for ${waitingFor}`);
  }

  protected override onFinished(): void {
    this.hlak?.fill(0);
    this.hlak = undefined;
    this.pendingCallConnected = undefined;
  }
}

// ---------------------------------------------------------------------------
// One TLS connection: HTTP exchange, then the SSTP call.
// ---------------------------------------------------------------------------

export interface SstpServerConnectionOptions extends Omit<SstpServerCallOptions, 'events'> {
  events: SstpCallEvents & {
    /** HTTP request accepted (200 sent); the SSTP call starts. */
    onHttpAccepted?(request: SstpHttpRequest): void;
    /** HTTP request refused: error response sent, transport closed; no SSTP call. */
    onHttpRejected?(status: HttpRejectStatus, reason: string): void;
  };
  http?: {
    /** Read deadline for the request head (default 30 s). */
    timeoutMs?: number;
    limits?: Partial<HttpLimits>;
    response?: Omit<HttpResponseOptions, 'date'>;
    /** Wall clock for the Date field. */
    now?: () => Date;
    /** Admission control: false answers 503. */
    admit?: (request: SstpHttpRequest) => boolean;
  };
}

/**
 * Everything one accepted TLS connection needs: feed it the decrypted octets
 * with input(), give it PPP frames with sendPppFrame(), tell it about PPP
 * authentication with authenticated(), and it writes to / closes the transport.
 */
export class SstpServerConnection {
  private readonly acceptor: SstpHttpAcceptor;
  private sstp: SstpServerCall | undefined;
  private phase: 'http' | 'sstp' | 'closed' = 'http';
  /** authenticated() before the call existed cannot happen in order; kept for robustness. */
  private earlyHlak: Uint8Array | undefined | null = null;

  constructor(private readonly opts: SstpServerConnectionOptions) {
    this.acceptor = new SstpHttpAcceptor({
      transport: opts.transport,
      clock: opts.clock,
      log: opts.log,
      timeoutMs: opts.http?.timeoutMs ?? HTTP_REQUEST_TIMEOUT_MS,
      ...(opts.http?.limits ? { limits: opts.http.limits } : {}),
      ...(opts.http?.response ? { response: opts.http.response } : {}),
      ...(opts.http?.now ? { now: opts.http.now } : {}),
      ...(opts.http?.admit ? { admit: opts.http.admit } : {}),
      onAccepted: (request, rest) => this.onAccepted(request, rest),
      onRejected: (status, reason) => {
        this.phase = 'closed';
        opts.events.onHttpRejected?.(status, reason);
      },
    });
  }

  /** The SSTP call, once the HTTP exchange succeeded. */
  get call(): SstpServerCall | undefined {
    return this.sstp;
  }

  get state(): 'HTTP' | ServerState {
    return this.sstp ? this.sstp.state : this.phase === 'http' ? 'HTTP' : ServerState.ServerCallDisconnected;
  }

  /** The TLS handshake completed: arm the HTTP read deadline. */
  start(): void {
    this.acceptor.start();
  }

  input(chunk: Uint8Array): void {
    if (this.phase === 'http') this.acceptor.input(chunk);
    else if (this.phase === 'sstp') this.sstp!.input(chunk);
  }

  sendPppFrame(frame: Uint8Array): boolean {
    return this.sstp ? this.sstp.sendPppFrame(frame) : false;
  }

  authenticated(hlak?: Uint8Array): void {
    if (this.sstp) this.sstp.authenticated(hlak);
    else this.earlyHlak = hlak;
  }

  disconnect(detail?: string): void {
    if (this.sstp) this.sstp.disconnect(detail);
    else this.close(detail);
  }

  transportClosed(): void {
    if (this.phase === 'http') {
      this.phase = 'closed';
      this.acceptor.transportClosed();
    } else if (this.sstp) this.sstp.transportClosed();
  }

  close(detail?: string): void {
    if (this.phase === 'http') {
      this.phase = 'closed';
      this.acceptor.transportClosed();
      this.opts.transport.close();
    } else if (this.sstp) this.sstp.close(detail);
  }

  private onAccepted(request: SstpHttpRequest, rest: Uint8Array): void {
    this.sstp = new SstpServerCall({ ...this.opts, log: this.opts.log.child({ correlationId: request.correlationId }) });
    this.phase = 'sstp';
    this.opts.events.onHttpAccepted?.(request);
    this.sstp.start();
    if (this.earlyHlak !== null) this.sstp.authenticated(this.earlyHlak);
    if (rest.length > 0) this.sstp.input(rest);
  }
}

export type { SstpTransport };

/** The gateway's SSTP protocol server (`vpngw serve` finds it here): see service.ts. */
export { createProtocolServer } from './service.js';
