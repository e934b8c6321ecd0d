/**
 * MS-CHAPv2 over PPP CHAP, RFC 2759 (LCP Authentication-Protocol c223 with
 * Algorithm 0x81).
 *
 *   authenticator                                   peer
 *   Challenge(id, 16-octet AuthenticatorChallenge, name) ->
 *                      <- Response(id, PeerChallenge|0^8|NT-Response|0, name)
 *   Success(id, "S=<authenticator response> M=...") ->        (peer checks S=)
 *   or Failure(id, "E=691 R=1 C=<new challenge> V=3 M=...") ->
 *                      <- Response(id+1, answering the C= challenge)     (retry)
 *
 * Both sides derive the MPPE master keys (RFC 3079) and the SSTP HLAK.
 */
import type { Timer } from '../../util/clock.js';
import type { AuthFailureReason, AuthHost, ClientCredentials, MsChapV2Verified, Verifier, VerifyContext, VerifyOutcome } from './types.js';
import { PPP_CHAP } from './types.js';
import { AuthMachine, callVerifier, decodeName, encodeName, isRetryable, refusalText, type AuthTiming } from './machine.js';
import { ChapCode, decodeChap, encodeChap } from './chap-codec.js';
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
import { deriveMppeMasterKeys, msChapV2Hlak } from './mppe-keys.js';
import { randomOctets } from '../../util/random.js';

const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const fromLatin1 = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

export interface MsChapV2ServerOptions {
  verifier: Verifier;
  ctx: VerifyContext;
  serverName: string;
  timing?: Partial<AuthTiming>;
  /** Tests pin the challenges; production draws them from node:crypto. */
  challenge?: () => Uint8Array;
  identifier?: number;
}

/**
 * Authenticator side.
 *
 * ```
 *   Initial --start--> Challenged --Response(id)--> Verifying --ok--> Succeeded
 *                       |  ^  |                      |    |
 *                       |  +--+ restart timer        |    +--refused, final--> Failed
 *                       |                            |
 *                       +--unanswered--> Failed      +--refused, attempts left--> RetryWait
 *   RetryWait --Response(failure id + 1)--> Verifying          (Failure said R=1, C=new)
 *   RetryWait --deadline--> Failed (with the last refusal's reason)
 * ```
 * Decided or waiting states answer a repeated Response (same identifier)
 * with the same Success/Failure, unverified.
 */
export type MsChapV2ServerState = 'Initial' | 'Challenged' | 'Verifying' | 'RetryWait' | 'Succeeded' | 'Failed';

export class MsChapV2Server extends AuthMachine<MsChapV2ServerState> {
  readonly protocol = PPP_CHAP;
  readonly method = 'mschapv2' as const;
  private identifier: number;
  private challenge: Uint8Array = new Uint8Array(0);
  private challengePacket: Uint8Array | undefined;
  private transmits = 0;
  private attempts = 0;
  private retransmit: Timer | undefined;
  /** The last Success/Failure and the Response identifier it answered. */
  private verdict: { identifier: number; packet: Uint8Array } | undefined;
  private lastRefusal: { reason: AuthFailureReason; message: string; username: string } | undefined;

  constructor(
    host: AuthHost,
    private readonly opts: MsChapV2ServerOptions,
  ) {
    super(host, 'mschapv2-server', 'Initial', opts.timing);
    this.identifier = opts.identifier ?? randomOctets(1)[0]!;
  }

  private newChallenge(): Uint8Array {
    return this.opts.challenge?.() ?? randomOctets(AUTHENTICATOR_CHALLENGE_SIZE);
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.challenge = this.newChallenge();
    this.challengePacket = encodeChap({
      code: ChapCode.Challenge,
      identifier: this.identifier,
      value: this.challenge,
      name: encodeName(this.opts.serverName),
    });
    this.to('Challenged', 'start');
    this.timer(this.timing.authTimeoutMs, () => this.onAuthTimeout());
    this.transmit();
  }

  private transmit(): void {
    if (this.state !== 'Challenged' || !this.challengePacket) return;
    if (this.transmits >= this.timing.maxTransmits) {
      this.to('Failed', 'no Response');
      this.fail('timeout', `no Response to ${this.transmits} Challenges`);
      return;
    }
    this.transmits++;
    this.send(this.challengePacket);
    this.retransmit = this.timer(this.timing.restartMs, () => this.transmit());
  }

  private onAuthTimeout(): void {
    if (this.state === 'Succeeded' || this.state === 'Failed') return;
    this.to('Failed', 'deadline');
    const last = this.lastRefusal;
    if (last) this.fail(last.reason, `${last.message} (no retry)`, last.username);
    else this.fail('timeout', `not authenticated within ${this.timing.authTimeoutMs} ms`);
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodeChap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `mschapv2-server: dropped: ${d.message}`);
      return;
    }
    const p = d.value;
    if (p.code !== ChapCode.Response) return;
    if (this.verdict && p.identifier === this.verdict.identifier && this.state !== 'Verifying') {
      // The peer did not get our answer: repeat it.
      this.send(this.verdict.packet);
      return;
    }
    if (this.state !== 'Challenged' && this.state !== 'RetryWait') return;
    // RFC 1994 4.1: a Response for another Identifier is silently discarded.
    if (p.identifier !== this.identifier) return;
    this.cancel(this.retransmit);
    this.attempts++;
    const username = decodeName(p.name);
    const rv = decodeResponseValue(p.value);
    if (!rv) {
      this.refuse(p.identifier, username, 'protocol-error', `Response Value of ${p.value.length} octets, not 49`, false);
      return;
    }
    const challenge = this.challenge;
    this.to('Verifying', `Response ${p.identifier}`);
    this.guardAsync(
      callVerifier(() => this.opts.verifier.msChapV2({ ...this.opts.ctx, method: 'mschapv2' }, username, challenge, rv.peerChallenge, rv.ntResponse)).then((outcome) => {
        if (!this.isStopped) this.guard(() => this.onVerified(p.identifier, username, outcome));
      }),
    );
  }

  private onVerified(identifier: number, username: string, outcome: VerifyOutcome<MsChapV2Verified>): void {
    if (this.state !== 'Verifying') return;
    if (outcome.ok) {
      const packet = encodeChap({
        code: ChapCode.Success,
        identifier,
        message: fromLatin1(encodeSuccessMessage(outcome.authenticatorResponse, 'Access granted')),
      });
      this.verdict = { identifier, packet };
      this.send(packet);
      this.to('Succeeded', 'verified');
      this.succeed({
        username: outcome.username,
        attributes: outcome.attributes,
        mppe: outcome.mppe,
        hlak: msChapV2Hlak(outcome.mppe, 'server'),
      });
      return;
    }
    const retry = isRetryable(outcome.reason) && this.attempts < this.timing.maxAttempts;
    this.refuse(identifier, username, outcome.reason, outcome.message, retry);
  }

  private refuse(identifier: number, username: string, reason: AuthFailureReason, message: string, retry: boolean): void {
    // RFC 2759 6: C= "MUST be exactly 32 octets long and MUST be present": a fresh challenge for the retry.
    this.challenge = this.newChallenge();
    const text = encodeFailureMessage({ error: errorCodeFor(reason), retry, challenge: this.challenge, text: refusalText(reason) });
    const packet = encodeChap({ code: ChapCode.Failure, identifier, message: fromLatin1(text) });
    this.verdict = { identifier, packet };
    this.send(packet);
    if (retry) {
      this.lastRefusal = { reason, message, username };
      this.identifier = (identifier + 1) & 0xff;
      this.to('RetryWait', `refused (${reason}), attempt ${this.attempts} of ${this.timing.maxAttempts}`);
      this.host.log.info({ user: username, reason }, 'mschapv2-server: attempt refused, retry allowed');
      return;
    }
    this.to('Failed', `refused (${reason})`);
    this.fail(reason, message, username);
  }
}

export interface MsChapV2ClientOptions {
  credentials: ClientCredentials;
  /** Name sent in the Response (and hashed into the challenge); defaults to the user name. */
  hostName?: string;
  timing?: Partial<AuthTiming>;
  /**
   * Asked after a Failure that allows a retry (R=1): new credentials to try
   * with the server's new challenge, or undefined to give up. Retries are
   * bounded by timing.maxAttempts. Without it the client gives up at once.
   */
  retryCredentials?: (failure: { error: number; text: string; attempt: number }) => ClientCredentials | undefined;
  /** Tests pin the peer challenge. */
  peerChallenge?: () => Uint8Array;
}

/**
 * Peer side.
 *
 * ```
 *   Initial --start--> AwaitChallenge --Challenge--> Responded --Success, S= valid--> Succeeded
 *                                                    |  ^  |  |
 *                                                    |  +--+  +--Success, S= wrong--> Failed (mutual auth)
 *                                                    |  Challenge again / Failure R=1 with new credentials
 *                                                    +--Failure, final--> Failed
 *   AwaitChallenge / Responded --deadline--> Failed
 * ```
 * A retransmitted Challenge (same identifier) gets the same Response; a new
 * one a new Response.
 */
export type MsChapV2ClientState = 'Initial' | 'AwaitChallenge' | 'Responded' | 'Succeeded' | 'Failed';

interface Answer {
  identifier: number;
  authChallenge: Uint8Array;
  peerChallenge: Uint8Array;
  ntResponse: Uint8Array;
  passwordHash: Uint8Array;
  name: Uint8Array;
  packet: Uint8Array;
}

export class MsChapV2Client extends AuthMachine<MsChapV2ClientState> {
  readonly protocol = PPP_CHAP;
  readonly method = 'mschapv2' as const;
  private answer: Answer | undefined;
  private credentials: ClientCredentials;
  private attempts = 0;

  constructor(
    host: AuthHost,
    private readonly opts: MsChapV2ClientOptions,
  ) {
    super(host, 'mschapv2-client', 'Initial', opts.timing);
    this.credentials = opts.credentials;
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.to('AwaitChallenge', 'start');
    this.timer(this.timing.authTimeoutMs, () => {
      if (this.state === 'AwaitChallenge' || this.state === 'Responded') {
        this.to('Failed', 'deadline');
        this.fail('timeout', `not authenticated within ${this.timing.authTimeoutMs} ms`, this.credentials.username);
      }
    });
  }

  private respond(identifier: number, authChallenge: Uint8Array): void {
    const peerChallenge = this.opts.peerChallenge?.() ?? randomOctets(PEER_CHALLENGE_SIZE);
    const name = encodeName(this.opts.hostName ?? this.credentials.username);
    const passwordHash = ntPasswordHash(this.credentials.password);
    const ntResponse = generateNtResponseFromHash(authChallenge, peerChallenge, decodeName(name), passwordHash);
    const packet = encodeChap({ code: ChapCode.Response, identifier, value: encodeResponseValue({ peerChallenge, ntResponse }), name });
    this.answer?.passwordHash.fill(0);
    this.answer = { identifier, authChallenge, peerChallenge, ntResponse, passwordHash, name, packet };
    this.attempts++;
    this.send(packet);
    this.to('Responded', `answered ${identifier}`);
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodeChap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `mschapv2-client: dropped: ${d.message}`);
      return;
    }
    if (this.state !== 'AwaitChallenge' && this.state !== 'Responded') return;
    const p = d.value;
    const a = this.answer;
    switch (p.code) {
      case ChapCode.Challenge:
        if (p.value.length !== AUTHENTICATOR_CHALLENGE_SIZE) {
          this.host.log.debug({ size: p.value.length }, 'mschapv2-client: dropped a Challenge that is not 16 octets');
          return;
        }
        if (a && a.identifier === p.identifier && Buffer.compare(a.authChallenge, p.value) === 0) this.send(a.packet);
        else this.respond(p.identifier, p.value);
        return;
      case ChapCode.Success:
        if (!a || p.identifier !== a.identifier) return;
        this.onSuccess(a, latin1(p.message));
        return;
      case ChapCode.Failure:
        if (!a || p.identifier !== a.identifier) return;
        this.onFailure(a, latin1(p.message));
        return;
      case ChapCode.Response:
        return;
    }
  }

  private onSuccess(a: Answer, message: string): void {
    const s = parseSuccessMessage(message);
    const username = this.credentials.username;
    // RFC 2759 8.8 CheckAuthenticatorResponse: a server that cannot prove it knows the password is refused.
    if (!s || !checkAuthenticatorResponse(a.passwordHash, a.ntResponse, a.peerChallenge, a.authChallenge, decodeName(a.name), s.authenticatorResponse)) {
      this.to('Failed', 'bad authenticator response');
      this.fail('bad-credentials', 'the server did not prove it knows the password (wrong or missing S=)', username);
      return;
    }
    const hashHash = hashNtPasswordHash(a.passwordHash);
    const mppe = deriveMppeMasterKeys(hashHash, a.ntResponse, 'client');
    hashHash.fill(0);
    a.passwordHash.fill(0);
    this.to('Succeeded', 'Success');
    this.succeed({ username, attributes: {}, mppe, hlak: msChapV2Hlak(mppe, 'client') });
  }

  private onFailure(a: Answer, message: string): void {
    const f = parseFailureMessage(message);
    const username = this.credentials.username;
    if (!f) {
      this.to('Failed', 'Failure');
      this.fail('bad-credentials', 'refused by the authenticator (unparsable Failure message)', username);
      return;
    }
    if (f.retry && f.challenge && this.attempts < this.timing.maxAttempts && this.opts.retryCredentials) {
      const next = this.opts.retryCredentials({ error: f.error, text: f.text, attempt: this.attempts });
      if (next) {
        this.credentials = next;
        this.respond((a.identifier + 1) & 0xff, f.challenge);
        return;
      }
    }
    a.passwordHash.fill(0);
    this.to('Failed', `Failure E=${f.error}`);
    this.fail(reasonForError(f.error), `refused by the authenticator: E=${f.error}${f.text ? ` (${f.text})` : ''}`, username);
  }

  protected override onStop(): void {
    this.answer?.passwordHash.fill(0);
  }
}
