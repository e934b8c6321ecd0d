/**
 * PAP, RFC 1334 section 2: the peer sends its name and password in clear
 * (Authenticate-Request) until the authenticator answers Ack or Nak.
 *
 * Only worth offering inside an encrypted tunnel (SSTP's TLS, L2TP's ESP);
 * which methods are offered is the PPP core's decision.
 */
import type { AuthFailureReason, AuthHost, ClientCredentials, UserAttributes, Verifier, VerifyContext, VerifyOutcome } from './types.js';
import { PPP_PAP } from './types.js';
import { AuthMachine, callVerifier, decodeName, encodeName, isRetryable, refusalText, zeroHlak, type AuthTiming } from './machine.js';
import { decodePap, encodePap, PapCode } from './pap-codec.js';
import type { Timer } from '../../util/clock.js';

export interface PapServerOptions {
  verifier: Verifier;
  ctx: VerifyContext;
  timing?: Partial<AuthTiming>;
}

/**
 * Authenticator side.
 *
 * ```
 *   Initial --start--> AwaitRequest --Request--> Verifying --ok--> Succeeded
 *                        ^     |                    |  |
 *                        |     | deadline           |  +--refused, final or last attempt--> Failed
 *                        |     v                    |
 *                        |   Failed                 |
 *                        +------- Nak sent ---------+ (refused, attempts left)
 * ```
 * Succeeded / Failed answer any further Request with the same Ack / Nak, so a
 * lost reply is repaired by the peer's retransmission (as pppd does). A
 * Request is never verified twice: retransmissions that arrive while
 * Verifying are dropped.
 */
export type PapServerState = 'Initial' | 'AwaitRequest' | 'Verifying' | 'Succeeded' | 'Failed';

export class PapServer extends AuthMachine<PapServerState> {
  readonly protocol = PPP_PAP;
  readonly method = 'pap' as const;
  private attempts = 0;
  private lastRefusal: { reason: AuthFailureReason; message: string; username: string } | undefined;
  private deadline: Timer | undefined;

  constructor(
    host: AuthHost,
    private readonly opts: PapServerOptions,
  ) {
    super(host, 'pap-server', 'Initial', opts.timing);
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    this.to('AwaitRequest', 'start');
    this.deadline = this.timer(this.timing.authTimeoutMs, () => this.onAuthTimeout());
  }

  private onAuthTimeout(): void {
    if (this.state !== 'AwaitRequest' && this.state !== 'Verifying') return;
    this.to('Failed', 'deadline');
    // A peer that gave up after a Nak failed for the reason of that Nak, not for slowness.
    const last = this.lastRefusal;
    if (last) this.fail(last.reason, `${last.message} (no further attempt)`, last.username);
    else this.fail('timeout', `no valid Authenticate-Request within ${this.timing.authTimeoutMs} ms`);
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodePap(packet);
    if (!d.ok) {
      this.host.log.debug({ kind: d.kind }, `pap-server: dropped: ${d.message}`);
      return;
    }
    const p = d.value;
    if (p.code !== PapCode.AuthenticateRequest) {
      this.host.log.debug({ code: p.code }, 'pap-server: dropped a packet only an authenticator sends');
      return;
    }
    switch (this.state) {
      case 'Initial':
      case 'Verifying':
        return;
      case 'Succeeded':
        this.send(encodePap({ code: PapCode.AuthenticateAck, identifier: p.identifier, message: encodeName('Login OK') }));
        return;
      case 'Failed':
        this.send(encodePap({ code: PapCode.AuthenticateNak, identifier: p.identifier, message: encodeName('Authentication failed') }));
        return;
      case 'AwaitRequest':
        break;
    }
    this.attempts++;
    const username = decodeName(p.peerId);
    const password = p.password.slice();
    this.to('Verifying', `Authenticate-Request ${p.identifier}`);
    this.guardAsync(
      callVerifier(() => this.opts.verifier.pap({ ...this.opts.ctx, method: 'pap' }, username, password)).then((outcome) => {
        password.fill(0);
        if (!this.isStopped) this.guard(() => this.onVerified(p.identifier, username, outcome));
      }),
    );
  }

  private onVerified(identifier: number, username: string, outcome: VerifyOutcome<{ attributes: UserAttributes; username: string }>): void {
    if (this.state !== 'Verifying') return;
    if (outcome.ok) {
      this.cancel(this.deadline);
      this.send(encodePap({ code: PapCode.AuthenticateAck, identifier, message: encodeName('Login OK') }));
      this.to('Succeeded', 'verified');
      this.succeed({ username: outcome.username, attributes: outcome.attributes, hlak: zeroHlak() });
      return;
    }
    this.send(encodePap({ code: PapCode.AuthenticateNak, identifier, message: encodeName(refusalText(outcome.reason)) }));
    if (isRetryable(outcome.reason) && this.attempts < this.timing.maxAttempts) {
      this.lastRefusal = { reason: outcome.reason, message: outcome.message, username };
      this.to('AwaitRequest', `refused (${outcome.reason}), attempt ${this.attempts} of ${this.timing.maxAttempts}`);
      this.host.log.info({ user: username, reason: outcome.reason }, 'pap-server: attempt refused');
      return;
    }
    this.cancel(this.deadline);
    this.to('Failed', `refused (${outcome.reason})`);
    this.fail(outcome.reason, outcome.message, username);
  }
}

export interface PapClientOptions {
  credentials: ClientCredentials;
  timing?: Partial<AuthTiming>;
}

/**
 * Peer side.
 *
 * ```
 *   Initial --start--> Requesting --Ack--> Succeeded
 *                       |   ^  |
 *                       |   +--+ restart timer: retransmit (at most maxTransmits)
 *                       +--Nak / last transmission unanswered--> Failed
 * ```
 */
export type PapClientState = 'Initial' | 'Requesting' | 'Succeeded' | 'Failed';

export class PapClient extends AuthMachine<PapClientState> {
  readonly protocol = PPP_PAP;
  readonly method = 'pap' as const;
  private identifier: number;
  private transmits = 0;
  private request: Uint8Array | undefined;

  constructor(
    host: AuthHost,
    private readonly opts: PapClientOptions,
  ) {
    super(host, 'pap-client', 'Initial', opts.timing);
    this.identifier = Math.floor(Math.random() * 256);
  }

  protected onStart(): void {
    if (this.state !== 'Initial') return;
    const peerId = encodeName(this.opts.credentials.username);
    const password = encodeName(this.opts.credentials.password);
    if (peerId.length > 255 || password.length > 255) {
      this.to('Failed', 'credentials too long');
      this.fail('protocol-error', 'PAP carries at most 255 octets of user name and of password', this.opts.credentials.username);
      return;
    }
    this.request = encodePap({ code: PapCode.AuthenticateRequest, identifier: this.identifier, peerId, password });
    password.fill(0);
    this.to('Requesting', 'start');
    this.transmit();
  }

  private transmit(): void {
    if (this.state !== 'Requesting' || !this.request) return;
    if (this.transmits >= this.timing.maxTransmits) {
      this.to('Failed', 'no reply');
      this.fail('timeout', `no reply to ${this.transmits} Authenticate-Requests`, this.opts.credentials.username);
      return;
    }
    this.transmits++;
    this.send(this.request);
    this.timer(this.timing.restartMs, () => this.transmit());
  }

  protected onInput(packet: Uint8Array): void {
    const d = decodePap(packet);
    if (!d.ok || this.state !== 'Requesting') return;
    const p = d.value;
    if (p.code === PapCode.AuthenticateRequest || p.identifier !== this.identifier) return;
    this.request?.fill(0);
    this.request = undefined;
    const username = this.opts.credentials.username;
    if (p.code === PapCode.AuthenticateAck) {
      this.to('Succeeded', 'Authenticate-Ack');
      this.succeed({ username, attributes: {}, hlak: zeroHlak() });
    } else {
      this.to('Failed', 'Authenticate-Nak');
      const text = decodeName(p.message);
      this.fail('bad-credentials', text ? `refused by the authenticator: ${text}` : 'refused by the authenticator', username);
    }
  }

  protected override onStop(): void {
    this.request?.fill(0);
  }
}
