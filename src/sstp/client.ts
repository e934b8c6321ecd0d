/**
 * SSTP client: MS-SSTP v20240423 section 3.2 (client details), call
 * establishment state machine 3.2.1.1.1, message processing 3.2.5.3.x,
 * timers 3.2.2, interfaces 3.2.4 and 3.2.7; the shared abort / disconnect /
 * echo machinery lives in call.ts.
 *
 *   Client_Call_Disconnected
 *        │ start(): send Call Connect Request, negotiation timer
 *        ▼
 *   Client_Connect_Request_Sent ──Nak──► resend Request (> retries: abort)
 *        │ Call Connect Ack: keep nonce, choose hash (SHA-256 if offered), onPppStart, negotiation timer
 *        ▼
 *   Client_Connect_Ack_Received ── PPP control frames flow ──
 *        │ authenticated(hlak): send Call Connected (crypto binding)
 *        ▼
 *   Client_Call_Connected ── all PPP frames flow, Hello timer / echo ──
 *        │ disconnect() / peer Call Disconnect / Call Abort / timers
 *        ▼
 *   (abort and disconnect sub-machines, call.ts) ──► Client_Call_Disconnected, transport closed
 */
import type { DecodeFailure } from '../util/decode.js';
import { callConnectRequestLength, encodeCallConnectRequest, type ControlMessage, type RawControl } from './codec.js';
import {
  AttribStatus,
  AttributeId,
  DEFAULT_CLIENT_CONNECT_RETRIES,
  HTTP_RESPONSE_TIMEOUT_MS,
  HashProtocol,
  MessageType,
  SSTP_ENCAPSULATED_PROTOCOL_PPP,
} from './constants.js';
import { HLAK_LEN, buildCallConnected, certificateHashFor, chooseHashProtocol, type CertificateHashes } from './binding.js';
import { CallState, SstpCall, statusOf, type SstpCallBaseOptions, type SstpCallEvents } from './call.js';
import { SstpHttpResponseParser, sstpHttpRequest, type ResponseFailure, type SstpHttpRequestOptions } from './http.js';
import type { Timer } from '../util/clock.js';

/** 3.2.1: client states (plus the common ones of 3.1.1). */
export const ClientState = {
  ClientCallDisconnected: 'Client_Call_Disconnected',
  ClientConnectRequestSent: 'Client_Connect_Request_Sent',
  ClientConnectAckReceived: 'Client_Connect_Ack_Received',
  ClientCallConnected: 'Client_Call_Connected',
  ...CallState,
} as const;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];
type ClientOwnState =
  | typeof ClientState.ClientCallDisconnected
  | typeof ClientState.ClientConnectRequestSent
  | typeof ClientState.ClientConnectAckReceived
  | typeof ClientState.ClientCallConnected;

export interface SstpClientCallOptions extends SstpCallBaseOptions {
  /** Hashes of the certificate the server presented in TLS (certificateHashes(peerCert.raw)). */
  serverCertHashes: CertificateHashes;
  /** ClientHashProtocolSupported; default SHA1 | SHA256 (SHA-256 is chosen when offered). */
  hashProtocols?: number;
  /** Times the Call Connect Request is resent after a Nak before aborting (default 3). */
  maxConnectRetries?: number;
}

/** One SSTP call on the client side, after the HTTP exchange. */
export class SstpClientCall extends SstpCall<ClientOwnState> {
  private readonly certHashes: CertificateHashes;
  private readonly supported: number;
  private readonly maxRetries: number;
  private retries = 0;
  /** ClientNonce and ClientHashProtocolChosen, from the Call Connect Ack. */
  private nonce: Uint8Array | undefined;
  private chosen: HashProtocol | undefined;

  constructor(opts: SstpClientCallOptions) {
    super('sstp-client', ClientState.ClientCallDisconnected, ClientState.ClientCallDisconnected, opts);
    this.certHashes = opts.serverCertHashes;
    this.supported = (opts.hashProtocols ?? HashProtocol.Sha1 | HashProtocol.Sha256) & (HashProtocol.Sha1 | HashProtocol.Sha256);
    if (this.supported === 0) throw new RangeError('support at least one of SHA1 and SHA256');
    this.maxRetries = opts.maxConnectRetries ?? DEFAULT_CLIENT_CONNECT_RETRIES;
  }

  /** The hash protocol chosen from the server's offer (after Call Connect Ack). */
  get hashProtocol(): HashProtocol | undefined {
    return this.chosen;
  }

  /** 3.2.4.1: the HTTPS session is up: send the Call Connect Request. */
  start(): void {
    if (this.closed || this.st !== ClientState.ClientCallDisconnected) return;
    this.sendConnectRequest();
    this.transition(ClientState.ClientConnectRequestSent, 'Call Connect Request sent');
  }

  /**
   * 3.2.7.1 Inner Authentication Completed: PPP authentication succeeded;
   * send Call Connected. `hlak` is the 32-octet client HLAK; omit it for
   * methods without keys (PAP, CHAP-MD5), which use 32 zero octets.
   */
  authenticated(hlak?: Uint8Array): void {
    if (this.closed) return;
    if (hlak && hlak.length !== HLAK_LEN) throw new RangeError(`HLAK must be ${HLAK_LEN} octets`);
    if (this.st !== ClientState.ClientConnectAckReceived) {
      this.log.warn({ state: this.st }, 'sstp: authentication completed outside Client_Connect_Ack_Received; ignored');
      return;
    }
    const key = hlak ? hlak.slice() : new Uint8Array(HLAK_LEN);
    const msg = buildCallConnected({
      hashProtocol: this.chosen!,
      nonce: this.nonce!,
      certHash: certificateHashFor(this.certHashes, this.chosen!)!,
      hlak: key,
    });
    key.fill(0);
    this.sendControl(MessageType.CallConnected, msg);
    this.cancelStateTimer();
    this.transition(ClientState.ClientCallConnected, 'inner authentication completed, Call Connected sent');
    this.startHelloTimer();
    this.events.onConnected?.({ hashProtocol: this.chosen! });
  }

  protected isEstablished(): boolean {
    return this.st === ClientState.ClientCallConnected;
  }

  /** 3.2.7.1 / 3.2.7.2: PPP control frames from Client_Connect_Ack_Received on, data frames once connected. */
  protected admitsPpp(control: boolean): boolean {
    return this.st === ClientState.ClientCallConnected || (control && this.st === ClientState.ClientConnectAckReceived);
  }

  protected onEstablishmentMessage(msg: ControlMessage, _packet: Uint8Array, _raw: RawControl): void {
    switch (msg.type) {
      case MessageType.CallConnectAck:
        return this.onCallConnectAck(msg.hashProtocols, msg.nonce);
      case MessageType.CallConnectNak:
        return this.onCallConnectNak();
      case MessageType.CallConnectRequest:
      case MessageType.CallConnected:
        // Only a client sends these.
        return this.abortUnexpected(msg.type);
      default:
        return;
    }
  }

  protected onInvalidMessage(failure: DecodeFailure): void {
    return this.abortInvalid(failure);
  }

  private sendConnectRequest(): void {
    const b = new Uint8Array(callConnectRequestLength());
    encodeCallConnectRequest(b, 0, SSTP_ENCAPSULATED_PROTOCOL_PPP);
    this.sendControl(MessageType.CallConnectRequest, b);
    // 3.2.2.1: "starts the Negotiation timer after sending a Call Connect Request message".
    this.armStateTimer(this.timers.negotiationMs, () => this.onNegotiationTimerExpired());
  }

  /** 3.2.5.3.2 */
  private onCallConnectAck(offered: number, nonce: Uint8Array): void {
    if (this.tearingDown()) return this.ignored('Call Connect Ack');
    if (this.st !== ClientState.ClientConnectRequestSent) return this.abortUnexpected(MessageType.CallConnectAck);
    // "At least one of the hash protocols in the Hash Protocol Bitmask field is a hash protocol
    // supported by the client ... If more than one hash protocol is supported, a stronger one is chosen."
    const chosen = chooseHashProtocol(offered, this.supported);
    if (chosen === undefined) {
      return this.abortCall(
        statusOf(AttribStatus.ValueNotSupported, AttributeId.CryptoBindingRequest),
        `server offers hash protocols ${offered}, we support ${this.supported}`,
      );
    }
    this.chosen = chosen;
    this.nonce = nonce.slice();
    this.armStateTimer(this.timers.negotiationMs, () => this.onNegotiationTimerExpired());
    this.transition(ClientState.ClientConnectAckReceived, 'Call Connect Ack received');
    this.events.onPppStart?.();
  }

  /** 3.2.5.3.3 */
  private onCallConnectNak(): void {
    if (this.tearingDown()) return this.ignored('Call Connect Nak');
    if (this.st !== ClientState.ClientConnectRequestSent) return this.abortUnexpected(MessageType.CallConnectNak);
    if (this.retries >= this.maxRetries) {
      return this.abortCall(statusOf(AttribStatus.RetryCountExceeded), `Call Connect Request refused ${this.retries + 1} times`);
    }
    this.retries++;
    this.sendConnectRequest();
  }

  /** 3.2.2.1 */
  private onNegotiationTimerExpired(): void {
    if (this.st !== ClientState.ClientConnectRequestSent && this.st !== ClientState.ClientConnectAckReceived) return;
    const waitingFor = this.st === ClientState.ClientConnectRequestSent ? 'Call Connect Ack' : 'PPP authentication';
    this.abortCall(statusOf(AttribStatus.NegotiationTimeout), `negotiation timer expired waiting for ${waitingFor}`);
  }

  protected override onFinished(): void {
    this.nonce = undefined;
  }
}

// ---------------------------------------------------------------------------
// One TLS connection: HTTP exchange, then the SSTP call.
// ---------------------------------------------------------------------------

export interface SstpClientConnectionOptions extends Omit<SstpClientCallOptions, 'events'> {
  http: SstpHttpRequestOptions & {
    /** How long to wait for the response head (default 60 s, 4.1). */
    timeoutMs?: number;
  };
  events: SstpCallEvents & {
    /** The server answered 200; the SSTP call starts. */
    onHttpAccepted?(): void;
    /** The HTTP exchange failed: the transport is closed, no SSTP call. */
    onHttpFailed?(failure: ResponseFailure | 'timeout' | 'transport-closed', message: string, status?: number): void;
  };
}

/** The client side of one TLS connection: sends the HTTP request, checks the answer, runs the call. */
export class SstpClientConnection {
  private readonly parser = new SstpHttpResponseParser();
  private sstp: SstpClientCall | undefined;
  private phase: 'idle' | 'http' | 'sstp' | 'closed' = 'idle';
  private timer: Timer | undefined;

  constructor(private readonly opts: SstpClientConnectionOptions) {}

  get call(): SstpClientCall | undefined {
    return this.sstp;
  }

  get state(): 'HTTP' | ClientState {
    return this.sstp ? this.sstp.state : this.phase === 'http' || this.phase === 'idle' ? 'HTTP' : ClientState.ClientCallDisconnected;
  }

  /** TLS is up: send the request (4.1: "the client initiates a timer (for 60 seconds)"). */
  start(): void {
    if (this.phase !== 'idle') return;
    this.phase = 'http';
    const { timeoutMs, ...request } = this.opts.http;
    const ms = timeoutMs ?? HTTP_RESPONSE_TIMEOUT_MS;
    this.timer = this.opts.clock.setTimer(ms, () => {
      this.timer = undefined;
      this.fail('timeout', `no HTTP response within ${ms} ms`);
    });
    this.opts.transport.write(sstpHttpRequest(request));
  }

  input(chunk: Uint8Array): void {
    if (this.phase === 'sstp') return this.sstp!.input(chunk);
    if (this.phase !== 'http') return;
    const r = this.parser.push(chunk);
    if (r.state === 'incomplete') return;
    if (r.state === 'rejected') return this.fail(r.failure, r.message, r.status);
    this.timer?.cancel();
    this.timer = undefined;
    this.sstp = new SstpClientCall(this.opts);
    this.phase = 'sstp';
    this.opts.events.onHttpAccepted?.();
    this.sstp.start();
    if (r.rest.length > 0) this.sstp.input(r.rest);
  }

  sendPppFrame(frame: Uint8Array): boolean {
    return this.sstp ? this.sstp.sendPppFrame(frame) : false;
  }

  authenticated(hlak?: Uint8Array): void {
    this.sstp?.authenticated(hlak);
  }

  disconnect(detail?: string): void {
    if (this.sstp) this.sstp.disconnect(detail);
    else this.close(detail);
  }

  transportClosed(): void {
    if (this.phase === 'http') this.fail('transport-closed', 'transport closed before the HTTP response', undefined, false);
    else this.sstp?.transportClosed();
  }

  close(detail?: string): void {
    if (this.sstp) return this.sstp.close(detail);
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.timer?.cancel();
    this.opts.transport.close();
  }

  private fail(failure: ResponseFailure | 'timeout' | 'transport-closed', message: string, status?: number, closeTransport = true): void {
    if (this.phase !== 'http') return;
    this.phase = 'closed';
    this.timer?.cancel();
    this.timer = undefined;
    this.opts.log.warn({ failure, status }, `sstp: HTTP exchange failed: ${message}`);
    if (closeTransport) this.opts.transport.close();
    this.opts.events.onHttpFailed?.(failure, message, status);
  }
}
