/**
 * EAP (RFC 3748) over PPP with one method, EAP-MSCHAPv2
 * (draft-kamath-pppext-eap-mschapv2, EAP Type 26): what Windows proposes by
 * default for SSTP.
 *
 *   authenticator                                        peer
 *   Request/Identity ->
 *                                  <- Response/Identity("alice")
 *   Request/MSCHAPv2 Challenge(auth challenge, name) ->
 *                                  <- Response/MSCHAPv2 Response(49-octet value, name)
 *   Request/MSCHAPv2 Success("S=... M=...") ->        (peer checks S=)
 *                                  <- Response/MSCHAPv2 Success (OpCode only)
 *   EAP-Success ->
 * or, when refused:
 *   Request/MSCHAPv2 Failure("E=691 R=0 C=... V=3 M=...") ->
 *                                  <- Response/MSCHAPv2 Failure (OpCode only)
 *   EAP-Failure ->
 *
 * The authenticator retransmits its current Request (RFC 3748 4.3); the
 * peer answers a retransmission with its previous Response (RFC 3748 4.1).
 * Keys: MPPE master keys (RFC 3079) and the EAP MSK ([MS-CHAP]:
 * MasterReceiveKey | MasterSendKey | 32 zero octets), whose first 32 octets
 * are the SSTP HLAK (MS-SSTP 3.2.5.2.2, "EAP other than EAP-TLS").
 */
import type { Timer } from '../../util/clock.js';
import type { AuthFailureReason, AuthHost, ClientCredentials, MsChapV2Verified, Verifier, VerifyContext, VerifyOutcome } from './types.js';
import { PPP_EAP } from './types.js';
import { AuthMachine, callVerifier, decodeName, encodeName, refusalText, type AuthTiming } from './machine.js';
import { decodeEap, decodeEapMsChapV2, EapCode, EapType, encodeEap, encodeEapMsChapV2, MsChapV2OpCode } from './eap-codec.js';
import {
  AUTHENTICATOR_CHALLENGE_SIZE,
  PEER_CHALLENGE_SIZE,
  checkAuthenticatorResponse,
  generateNtResponseFromHash,
  hashNtPasswordHash,
  ntPasswordHash,
} from './mschapv2-crypto.js';
import {
  decodeResponseValue,
  encodeFailureMessage,
  encodeResponseValue,
  encodeSuccessMessage,
  errorCodeFor,
  parseFailureMessage,
  parseSuccessMessage,
  reasonForError,
} from './mschapv2-codec.js';
import { deriveMppeMasterKeys, eapMsChapV2Msk, hlakFromMsk } from './mppe-keys.js';
import { randomOctets } from '../../util/random.js';

const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const fromLatin1 = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

export interface EapServerOptions {
  verifier: Verifier;
  ctx: VerifyContext;
  serverName: string;
  timing?: Partial<AuthTiming>;
  /** Tests pin the challenge and the first Identifier. */
  challenge?: () => Uint8Array;
  identifier?: number;
}

/**
 * Authenticator side.
 *
 * ```
 *   Initial --start--> IdentitySent --Identity--> ChallengeSent --MSCHAPv2 Response--> Verifying
 *   Verifying --ok--> SuccessSent --Success ack--> Succeeded (EAP-Success sent)
 *   Verifying --refused--> FailureSent --Failure ack--> Failed (EAP-Failure sent)
 *   ChallengeSent --Nak / other type--> Failed (EAP-Failure sent)
 *   any waiting state --restart timer--> same Request again; maxTransmits unanswered or
 *     deadline --> Failed (EAP-Failure sent)
 * ```
 * Responses whose Identifier is not the outstanding Request's are discarded
 * (RFC 3748 4.1).
 */
export type EapServerState = 'Initial' | 'IdentitySent' | 'ChallengeSent' | 'Verifying' | 'SuccessSent' | 'FailureSent' | 'Succeeded' | 'Failed';

export class EapServer extends AuthMachine<EapServerState> {
  readonly protocol = PPP_EAP;
  readonly method = 'eap-mschapv2' as const;
  private identifier: number;
  private request: Uint8Array | undefined;
  private transmits = 0;
  private retransmit: Timer | undefined;
  private challenge: Uint8Array = new Uint8Array(0);
  private msId = 0;
  private identity = '';
  private pending: { username: string; verified?: MsChapV2Verified; refusal?: { reason: AuthFailureReason; message: string } } | undefined;

  constructor(
    host: AuthHost,
    private readonly opts: EapServerOptions,
  ) {
    super(host, 'eap-server', 'Initial', opts.timing);
    this.identifier = opts.identifier ?? randomOctets(1)[0]!;
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.to('IdentitySent', 'start');
    this.timer(this.timing.authTimeoutMs, () => this.giveUp('deadline'));
    this.sendRequest(EapType.Identity, new Uint8Array(0));
  }

  /** A new Request: new Identifier (RFC 3748 4.1), transmit and arm the restart timer. */
  private sendRequest(type: number, data: Uint8Array): void {
    this.identifier = (this.identifier + 1) & 0xff;
    this.request = encodeEap({ code: EapCode.Request, identifier: this.identifier, type, data });
    this.transmits = 0;
    this.transmit();
  }

  private transmit(): void {
    if (!this.request) return;
    if (this.transmits >= this.timing.maxTransmits) {
      this.giveUp(`no Response to ${this.transmits} transmissions`);
      return;
    }
    this.transmits++;
    this.send(this.request);
    this.cancel(this.retransmit);
    this.retransmit = this.timer(this.timing.restartMs, () => this.transmit());
  }

  /**
   * EAP-Success / EAP-Failure. RFC 3748 4.2: "The Identifier field MUST match
   * the Identifier field of the Response packet that it is sent in response
   * to", which is the outstanding Request's (4.1); after a timeout there is no
   * Response and the last Request's Identifier is the one the peer holds (the
   * RFC 4137 authenticator's currentId). A peer built on the RFC 4137 peer
   * state machine accepts a Success only when reqId == lastId; with any other
   * Identifier it discards it and never finishes authenticating.
   */
  private finishWith(code: typeof EapCode.Success | typeof EapCode.Failure): void {
    this.cancel(this.retransmit);
    this.request = undefined;
    this.send(encodeEap({ code, identifier: this.identifier }));
  }

  private giveUp(why: string): void {
    if (this.state === 'Succeeded' || this.state === 'Failed' || this.state === 'Initial') return;
    const refusal = this.pending?.refusal;
    this.finishWith(EapCode.Failure);
    this.to('Failed', why);
    if (refusal) this.fail(refusal.reason, refusal.message, this.pending?.username);
    else this.fail('timeout', `EAP did not complete: ${why}`, this.pending?.username ?? (this.identity || undefined));
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodeEap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `eap-server: dropped: ${d.message}`);
      return;
    }
    const p = d.value;
    if (p.code !== EapCode.Response) return;
    // RFC 3748 4.1: the Response's Identifier must match the outstanding Request's.
    if (p.identifier !== this.identifier || !this.request) return;
    switch (this.state) {
      case 'IdentitySent':
        if (p.type !== EapType.Identity) return;
        this.identity = decodeName(p.data);
        this.host.log.debug({ identity: this.identity }, 'eap-server: identity');
        this.challenge = this.opts.challenge?.() ?? randomOctets(AUTHENTICATOR_CHALLENGE_SIZE);
        this.msId = (this.identifier + 1) & 0xff;
        this.to('ChallengeSent', 'Identity');
        this.sendRequest(
          EapType.MsChapV2,
          encodeEapMsChapV2({ op: MsChapV2OpCode.Challenge, msId: this.msId, value: this.challenge, name: encodeName(this.opts.serverName) }),
        );
        return;
      case 'ChallengeSent':
        this.onChallengeAnswer(p.type, p.data);
        return;
      case 'SuccessSent':
      case 'FailureSent':
        this.onAck(p.type, p.data);
        return;
      case 'Initial':
      case 'Verifying':
      case 'Succeeded':
      case 'Failed':
        return;
    }
  }

  private onChallengeAnswer(type: number, data: Uint8Array): void {
    if (type === EapType.Nak) {
      this.finishWith(EapCode.Failure);
      this.to('Failed', 'Nak');
      this.fail('method-not-allowed', `the peer refused EAP-MSCHAPv2 (Nak proposing ${[...data].join(', ') || 'nothing'})`, this.identity || undefined);
      return;
    }
    if (type !== EapType.MsChapV2) return;
    const m = decodeEapMsChapV2(data);
    if (!m.ok || m.value.op !== MsChapV2OpCode.Response) {
      this.host.log.debug({}, `eap-server: dropped an EAP-MSCHAPv2 answer: ${m.ok ? 'not a Response' : m.message}`);
      return;
    }
    const username = decodeName(m.value.name);
    const rv = decodeResponseValue(m.value.value);
    this.cancel(this.retransmit);
    if (!rv || m.value.msId !== this.msId) {
      this.pending = { username };
      this.refuse({ reason: 'protocol-error', message: rv ? 'MS-CHAPv2-ID does not match the Challenge' : 'Response Value is not 49 octets' });
      return;
    }
    this.pending = { username };
    const challenge = this.challenge;
    this.to('Verifying', 'MSCHAPv2 Response');
    this.guardAsync(
      callVerifier(() => this.opts.verifier.msChapV2({ ...this.opts.ctx, method: 'eap-mschapv2' }, username, challenge, rv.peerChallenge, rv.ntResponse)).then((outcome) => {
        if (!this.isStopped) this.guard(() => this.onVerified(outcome));
      }),
    );
  }

  private onVerified(outcome: VerifyOutcome<MsChapV2Verified>): void {
    if (this.state !== 'Verifying' || !this.pending) return;
    if (!outcome.ok) {
      this.refuse({ reason: outcome.reason, message: outcome.message });
      return;
    }
    this.pending.verified = outcome;
    this.to('SuccessSent', 'verified');
    const message = fromLatin1(encodeSuccessMessage(outcome.authenticatorResponse, 'Access granted'));
    this.sendRequest(EapType.MsChapV2, encodeEapMsChapV2({ op: MsChapV2OpCode.Success, msId: this.msId, message }));
  }

  /** EAP-MSCHAPv2 offers no retry (R=0): the Failure Request is answered by an ack, then EAP-Failure. */
  private refuse(refusal: { reason: AuthFailureReason; message: string }): void {
    this.pending = { ...this.pending!, refusal };
    this.to('FailureSent', `refused (${refusal.reason})`);
    const text = encodeFailureMessage({
      error: errorCodeFor(refusal.reason),
      retry: false,
      challenge: randomOctets(AUTHENTICATOR_CHALLENGE_SIZE),
      text: refusalText(refusal.reason),
    });
    this.sendRequest(EapType.MsChapV2, encodeEapMsChapV2({ op: MsChapV2OpCode.Failure, msId: this.msId, message: fromLatin1(text) }));
  }

  private onAck(type: number, data: Uint8Array): void {
    if (type !== EapType.MsChapV2) return;
    const m = decodeEapMsChapV2(data);
    if (!m.ok) return;
    const pending = this.pending!;
    if (this.state === 'SuccessSent' && m.value.op === 'success-ack' && pending.verified) {
      const v = pending.verified;
      this.finishWith(EapCode.Success);
      this.to('Succeeded', 'Success acknowledged');
      const msk = eapMsChapV2Msk(v.mppe, 'server');
      this.succeed({ username: v.username, attributes: v.attributes, mppe: v.mppe, msk, hlak: hlakFromMsk(msk) });
      return;
    }
    if (this.state === 'FailureSent' && m.value.op === 'failure-ack' && pending.refusal) {
      this.finishWith(EapCode.Failure);
      this.to('Failed', 'Failure acknowledged');
      this.fail(pending.refusal.reason, pending.refusal.message, pending.username);
    }
  }
}

export interface EapClientOptions {
  credentials: ClientCredentials;
  /** Identity and MS-CHAPv2 Name; defaults to the user name. */
  hostName?: string;
  timing?: Partial<AuthTiming>;
  /** Tests pin the peer challenge. */
  peerChallenge?: () => Uint8Array;
}

/**
 * Peer side.
 *
 * ```
 *   Initial --start--> Waiting --Identity / Notification--> Waiting (answered)
 *   Waiting --MSCHAPv2 Challenge--> Responded --Success Request, S= valid--> SuccessAcked --EAP-Success--> Succeeded
 *                                     |   +--Success Request, S= wrong--> Failed (mutual auth)
 *                                     +--Failure Request--> FailureAcked --EAP-Failure--> Failed
 *   EAP-Failure anywhere --> Failed;  EAP-Success before SuccessAcked --> Failed (no premature success)
 *   deadline --> Failed
 * ```
 */
export type EapClientState = 'Initial' | 'Waiting' | 'Responded' | 'SuccessAcked' | 'FailureAcked' | 'Succeeded' | 'Failed';

export class EapClient extends AuthMachine<EapClientState> {
  readonly protocol = PPP_EAP;
  readonly method = 'eap-mschapv2' as const;
  private last: { identifier: number; packet: Uint8Array } | undefined;
  private exchange:
    | { authChallenge: Uint8Array; peerChallenge: Uint8Array; ntResponse: Uint8Array; passwordHash: Uint8Array; name: string; msId: number }
    | undefined;
  private failure: { error: number; text: string } | undefined;
  private keys: { mppe: ReturnType<typeof deriveMppeMasterKeys>; msk: Uint8Array } | undefined;

  constructor(
    host: AuthHost,
    private readonly opts: EapClientOptions,
  ) {
    super(host, 'eap-client', 'Initial', opts.timing);
  }

  private get name(): string {
    return this.opts.hostName ?? this.opts.credentials.username;
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.to('Waiting', 'start');
    this.timer(this.timing.authTimeoutMs, () => {
      if (this.state === 'Succeeded' || this.state === 'Failed') return;
      this.to('Failed', 'deadline');
      this.fail('timeout', `not authenticated within ${this.timing.authTimeoutMs} ms`, this.opts.credentials.username);
    });
  }

  private respond(identifier: number, type: number, data: Uint8Array): void {
    const packet = encodeEap({ code: EapCode.Response, identifier, type, data });
    this.last = { identifier, packet };
    this.send(packet);
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodeEap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `eap-client: dropped: ${d.message}`);
      return;
    }
    if (this.state === 'Initial' || this.state === 'Succeeded' || this.state === 'Failed') return;
    const p = d.value;
    const username = this.opts.credentials.username;
    if (p.code === EapCode.Success) {
      if (this.state === 'SuccessAcked' && this.keys) {
        this.to('Succeeded', 'EAP-Success');
        this.succeed({ username, attributes: {}, mppe: this.keys.mppe, msk: this.keys.msk, hlak: hlakFromMsk(this.keys.msk) });
      } else {
        // RFC 3748 4.2 and the method's mutual authentication: no success before the method has completed.
        this.to('Failed', 'premature EAP-Success');
        this.fail('protocol-error', 'EAP-Success before EAP-MSCHAPv2 completed', username);
      }
      return;
    }
    if (p.code === EapCode.Failure) {
      const f = this.failure;
      this.to('Failed', 'EAP-Failure');
      if (f) this.fail(reasonForError(f.error), `refused by the authenticator: E=${f.error}${f.text ? ` (${f.text})` : ''}`, username);
      else this.fail('bad-credentials', 'refused by the authenticator (EAP-Failure)', username);
      return;
    }
    if (p.code !== EapCode.Request) return;
    // RFC 3748 4.1: a retransmitted Request gets the same Response again.
    if (this.last && p.identifier === this.last.identifier) {
      this.send(this.last.packet);
      return;
    }
    switch (p.type) {
      case EapType.Identity:
        this.respond(p.identifier, EapType.Identity, encodeName(this.name));
        return;
      case EapType.Notification:
        this.respond(p.identifier, EapType.Notification, new Uint8Array(0));
        return;
      case EapType.MsChapV2:
        this.onMsChapV2(p.identifier, p.data);
        return;
      default:
        // RFC 3748 5.3.1: a Legacy Nak names the method we do support.
        this.respond(p.identifier, EapType.Nak, Uint8Array.of(EapType.MsChapV2));
        return;
    }
  }

  private onMsChapV2(identifier: number, data: Uint8Array): void {
    const m = decodeEapMsChapV2(data);
    if (!m.ok) {
      this.host.log.debug({ kind: m.kind }, `eap-client: dropped EAP-MSCHAPv2: ${m.message}`);
      return;
    }
    const v = m.value;
    const username = this.opts.credentials.username;
    if (v.op === MsChapV2OpCode.Challenge) {
      if (this.state !== 'Waiting' && this.state !== 'Responded') return;
      if (v.value.length !== AUTHENTICATOR_CHALLENGE_SIZE) return;
      const peerChallenge = this.opts.peerChallenge?.() ?? randomOctets(PEER_CHALLENGE_SIZE);
      const passwordHash = ntPasswordHash(this.opts.credentials.password);
      const ntResponse = generateNtResponseFromHash(v.value, peerChallenge, this.name, passwordHash);
      this.exchange?.passwordHash.fill(0);
      this.exchange = { authChallenge: v.value, peerChallenge, ntResponse, passwordHash, name: this.name, msId: v.msId };
      this.to('Responded', 'Challenge');
      this.respond(
        identifier,
        EapType.MsChapV2,
        encodeEapMsChapV2({ op: MsChapV2OpCode.Response, msId: v.msId, value: encodeResponseValue({ peerChallenge, ntResponse }), name: encodeName(this.name) }),
      );
      return;
    }
    if (v.op === MsChapV2OpCode.Success) {
      const x = this.exchange;
      if (this.state !== 'Responded' || !x) return;
      const s = parseSuccessMessage(latin1(v.message));
      if (!s || !checkAuthenticatorResponse(x.passwordHash, x.ntResponse, x.peerChallenge, x.authChallenge, x.name, s.authenticatorResponse)) {
        x.passwordHash.fill(0);
        this.to('Failed', 'bad authenticator response');
        this.fail('bad-credentials', 'the server did not prove it knows the password (wrong or missing S=)', username);
        return;
      }
      const hashHash = hashNtPasswordHash(x.passwordHash);
      const mppe = deriveMppeMasterKeys(hashHash, x.ntResponse, 'client');
      hashHash.fill(0);
      x.passwordHash.fill(0);
      this.keys = { mppe, msk: eapMsChapV2Msk(mppe, 'client') };
      this.to('SuccessAcked', 'Success Request');
      this.respond(identifier, EapType.MsChapV2, encodeEapMsChapV2({ op: 'success-ack' }));
      return;
    }
    if (v.op === MsChapV2OpCode.Failure) {
      if (this.state !== 'Responded' && this.state !== 'Waiting') return;
      const f = parseFailureMessage(latin1(v.message));
      this.failure = f ? { error: f.error, text: f.text } : { error: 691, text: '' };
      this.exchange?.passwordHash.fill(0);
      this.to('FailureAcked', `Failure E=${this.failure.error}`);
      this.respond(identifier, EapType.MsChapV2, encodeEapMsChapV2({ op: 'failure-ack' }));
    }
  }

  protected override onStop(): void {
    this.exchange?.passwordHash.fill(0);
  }
}
