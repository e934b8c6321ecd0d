/**
 * CHAP with MD5, RFC 1994 (LCP Authentication-Protocol c223 with Algorithm 5).
 *
 * The authenticator sends a random Challenge; the peer answers
 * Response Value = MD5(Identifier | secret | Challenge Value) (RFC 1994
 * section 4.1) with its name; the authenticator answers Success or Failure.
 * The authenticator retransmits its Challenge until a Response arrives; the
 * peer never retransmits on its own.
 */
import { createHash } from 'node:crypto';
import type { AuthHost, ClientCredentials, UserAttributes, Verifier, VerifyContext, VerifyOutcome } from './types.js';
import { PPP_CHAP } from './types.js';
import { AuthMachine, callVerifier, decodeName, encodeName, refusalText, zeroHlak, type AuthTiming } from './machine.js';
import { ChapCode, decodeChap, encodeChap } from './chap-codec.js';
import type { Timer } from '../../util/clock.js';
import { randomOctets } from '../../util/random.js';

// Our choice: RFC 1994 leaves the challenge length open; 16 octets as MS-CHAPv2 uses.
export const CHAP_MD5_CHALLENGE_SIZE = 16;
// From the spec: an MD5 digest.
export const CHAP_MD5_RESPONSE_SIZE = 16;

/** RFC 1994 section 4.1: MD5 over Identifier, secret and Challenge Value. */
export function chapMd5Response(identifier: number, secret: Uint8Array, challenge: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('md5').update(Uint8Array.of(identifier & 0xff)).update(secret).update(challenge).digest());
}

export interface ChapMd5ServerOptions {
  verifier: Verifier;
  ctx: VerifyContext;
  serverName: string;
  timing?: Partial<AuthTiming>;
  /** Tests pin the challenge; production draws it from node:crypto. */
  challenge?: () => Uint8Array;
  identifier?: number;
}

/**
 * Authenticator side.
 *
 * ```
 *   Initial --start--> Challenged --Response(id)--> Verifying --ok--> Succeeded
 *                       |  ^  |                         |
 *                       |  +--+ restart timer:          +--refused--> Failed
 *                       |       same Challenge again
 *                       +--maxTransmits unanswered--> Failed
 *   Challenged / Verifying --deadline (authTimeoutMs)--> Failed
 * ```
 * A Response whose Identifier is not the current Challenge's is silently
 * discarded (RFC 1994 4.1). A repeated Response once decided gets the same
 * Success/Failure again (the first may have been lost). RFC 1994 4.2 says the
 * authenticator "SHOULD take action to terminate the link" after a Failure:
 * there is no second attempt.
 */
export type ChapMd5ServerState = 'Initial' | 'Challenged' | 'Verifying' | 'Succeeded' | 'Failed';

export class ChapMd5Server extends AuthMachine<ChapMd5ServerState> {
  readonly protocol = PPP_CHAP;
  readonly method = 'chap-md5' as const;
  private readonly identifier: number;
  private challenge: Uint8Array | undefined;
  private challengePacket: Uint8Array | undefined;
  private transmits = 0;
  private retransmit: Timer | undefined;
  private verdict: Uint8Array | undefined;

  constructor(
    host: AuthHost,
    private readonly opts: ChapMd5ServerOptions,
  ) {
    super(host, 'chap-md5-server', 'Initial', opts.timing);
    this.identifier = opts.identifier ?? randomOctets(1)[0]!;
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.challenge = this.opts.challenge?.() ?? randomOctets(CHAP_MD5_CHALLENGE_SIZE);
    this.challengePacket = encodeChap({
      code: ChapCode.Challenge,
      identifier: this.identifier,
      value: this.challenge,
      name: encodeName(this.opts.serverName),
    });
    this.to('Challenged', 'start');
    // Bounds a verifier that never answers, too.
    this.timer(this.timing.authTimeoutMs, () => {
      if (this.state === 'Succeeded' || this.state === 'Failed') return;
      this.to('Failed', 'deadline');
      this.fail('timeout', `not authenticated within ${this.timing.authTimeoutMs} ms`);
    });
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

  protected onInput(packet: Uint8Array): void {
    const d = decodeChap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `chap-md5-server: dropped: ${d.message}`);
      return;
    }
    const p = d.value;
    if (p.code !== ChapCode.Response || p.identifier !== this.identifier) return;
    switch (this.state) {
      case 'Initial':
      case 'Verifying':
        return;
      case 'Succeeded':
      case 'Failed':
        if (this.verdict) this.send(this.verdict);
        return;
      case 'Challenged':
        break;
    }
    this.cancel(this.retransmit);
    const username = decodeName(p.name);
    const challenge = this.challenge!;
    this.to('Verifying', `Response ${p.identifier}`);
    this.guardAsync(
      callVerifier(() => this.opts.verifier.chapMd5({ ...this.opts.ctx, method: 'chap-md5' }, username, p.identifier, challenge, p.value)).then((outcome) => {
        if (!this.isStopped) this.guard(() => this.onVerified(username, outcome));
      }),
    );
  }

  private onVerified(username: string, outcome: VerifyOutcome<{ attributes: UserAttributes; username: string }>): void {
    if (this.state !== 'Verifying') return;
    if (outcome.ok) {
      this.verdict = encodeChap({ code: ChapCode.Success, identifier: this.identifier, message: encodeName('Access granted') });
      this.send(this.verdict);
      this.to('Succeeded', 'verified');
      this.succeed({ username: outcome.username, attributes: outcome.attributes, hlak: zeroHlak() });
      return;
    }
    this.verdict = encodeChap({ code: ChapCode.Failure, identifier: this.identifier, message: encodeName(refusalText(outcome.reason)) });
    this.send(this.verdict);
    this.to('Failed', `refused (${outcome.reason})`);
    this.fail(outcome.reason, outcome.message, username);
  }
}

export interface ChapMd5ClientOptions {
  credentials: ClientCredentials;
  /** Name sent in the Response; defaults to the user name. */
  hostName?: string;
  timing?: Partial<AuthTiming>;
}

/**
 * Peer side.
 *
 * ```
 *   Initial --start--> AwaitChallenge --Challenge--> Responded --Success(id)--> Succeeded
 *                                                     |  ^  |
 *                                                     |  +--+ Challenge: answer it (again)
 *                                                     +--Failure(id)--> Failed
 *   any state but the last two --deadline--> Failed
 * ```
 */
export type ChapMd5ClientState = 'Initial' | 'AwaitChallenge' | 'Responded' | 'Succeeded' | 'Failed';

export class ChapMd5Client extends AuthMachine<ChapMd5ClientState> {
  readonly protocol = PPP_CHAP;
  readonly method = 'chap-md5' as const;
  private respondedId = -1;

  constructor(
    host: AuthHost,
    private readonly opts: ChapMd5ClientOptions,
  ) {
    super(host, 'chap-md5-client', 'Initial', opts.timing);
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.to('AwaitChallenge', 'start');
    this.timer(this.timing.authTimeoutMs, () => {
      if (this.state === 'AwaitChallenge' || this.state === 'Responded') {
        this.to('Failed', 'deadline');
        this.fail('timeout', `not authenticated within ${this.timing.authTimeoutMs} ms`, this.opts.credentials.username);
      }
    });
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodeChap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `chap-md5-client: dropped: ${d.message}`);
      return;
    }
    const p = d.value;
    if (this.state !== 'AwaitChallenge' && this.state !== 'Responded') return;
    const username = this.opts.credentials.username;
    switch (p.code) {
      case ChapCode.Challenge: {
        const secret = encodeName(this.opts.credentials.password);
        const value = chapMd5Response(p.identifier, secret, p.value);
        secret.fill(0);
        this.send(encodeChap({ code: ChapCode.Response, identifier: p.identifier, value, name: encodeName(this.opts.hostName ?? username) }));
        this.respondedId = p.identifier;
        this.to('Responded', `Challenge ${p.identifier}`);
        return;
      }
      case ChapCode.Success:
        if (this.state !== 'Responded' || p.identifier !== this.respondedId) return;
        this.to('Succeeded', 'Success');
        this.succeed({ username, attributes: {}, hlak: zeroHlak() });
        return;
      case ChapCode.Failure: {
        if (this.state !== 'Responded' || p.identifier !== this.respondedId) return;
        this.to('Failed', 'Failure');
        const text = decodeName(p.message);
        this.fail('bad-credentials', text ? `refused by the authenticator: ${text}` : 'refused by the authenticator', username);
        return;
      }
      case ChapCode.Response:
        return;
    }
  }
}
