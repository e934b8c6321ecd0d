/**
 * What every authentication protocol instance shares: its state variable and
 * the one transition function that logs `from -> to (reason)`, the "done
 * exactly once" guarantee of {@link AuthHost.done}, timers that die with the
 * instance, and an input guard so that {@link AuthProtocol.input} never
 * throws even if a bug slips past the total decoders.
 *
 * Subclasses keep the protocol logic; their doc comments carry the state
 * diagrams.
 */
import type { Timer } from '../../util/clock.js';
import { logTransition } from '../../util/log.js';
import type { AuthFailureReason, AuthHost, AuthMethod, AuthProtocol, AuthResult, AuthSuccess, VerifyOutcome } from './types.js';

// Our choices (the RFCs leave them to the implementation).
export interface AuthTiming {
  /** Retransmission interval of our requests (RFC 1661 4.6 suggests 3 s for the Restart timer). */
  restartMs: number;
  /** Transmissions of one request before giving up (RFC 1661 Max-Configure default is 10). */
  maxTransmits: number;
  /** Deadline for the whole exchange, from start(). */
  authTimeoutMs: number;
  /** Server: authentication attempts a peer may make before it is refused for good. */
  maxAttempts: number;
}

export const DEFAULT_AUTH_TIMING: Readonly<AuthTiming> = Object.freeze({
  restartMs: 3_000,
  maxTransmits: 10,
  authTimeoutMs: 30_000,
  maxAttempts: 3,
});

/** Failure reasons after which a server may let the peer try again (it may have mistyped). */
export function isRetryable(reason: AuthFailureReason): boolean {
  return reason === 'bad-credentials' || reason === 'unknown-user';
}

export abstract class AuthMachine<S extends string> implements AuthProtocol {
  abstract readonly protocol: number;
  abstract readonly method: AuthMethod;
  protected state: S;
  protected readonly timing: AuthTiming;
  private finished = false;
  private stopped = false;
  private readonly timers = new Set<Timer>();

  protected constructor(
    protected readonly host: AuthHost,
    private readonly machine: string,
    initial: S,
    timing: Partial<AuthTiming> = {},
  ) {
    this.state = initial;
    this.timing = { ...DEFAULT_AUTH_TIMING, ...timing };
  }

  /** Current state (for tests and session diagnostics). */
  get current(): S {
    return this.state;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  start(): void {
    if (this.stopped) return;
    this.guard(() => this.onStart());
  }

  input(packet: Uint8Array): void {
    if (this.stopped) return;
    this.guard(() => this.onInput(packet));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    this.onStop();
  }

  protected abstract onStart(): void;
  protected abstract onInput(packet: Uint8Array): void;
  protected onStop(): void {}

  protected get isStopped(): boolean {
    return this.stopped;
  }

  protected to(next: S, reason: string): void {
    if (next === this.state) return;
    logTransition(this.host.log, this.machine, this.state, next, reason);
    this.state = next;
  }

  protected send(packet: Uint8Array): void {
    if (!this.stopped) this.host.send(packet);
  }

  /** A one-shot timer cancelled by stop(); the callback is guarded like input. */
  protected timer(ms: number, fn: () => void): Timer {
    const t = this.host.clock.setTimer(ms, () => {
      this.timers.delete(t);
      if (!this.stopped) this.guard(fn);
    });
    this.timers.add(t);
    return t;
  }

  protected cancel(t: Timer | undefined): void {
    if (!t) return;
    t.cancel();
    this.timers.delete(t);
  }

  protected succeed(result: Omit<AuthSuccess, 'ok' | 'method'>): void {
    this.finish({ ok: true, method: this.method, ...result });
  }

  protected fail(reason: AuthFailureReason, message: string, username?: string): void {
    this.finish({ ok: false, method: this.method, reason, message, ...(username !== undefined ? { username } : {}) });
  }

  private finish(result: AuthResult): void {
    if (this.finished) return;
    this.finished = true;
    // A decided exchange needs no timer: it only answers duplicates.
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    if (result.ok) this.host.log.info({ machine: this.machine, user: result.username }, `${this.machine}: authenticated ${result.username}`);
    else this.host.log.info({ machine: this.machine, user: result.username, reason: result.reason }, `${this.machine}: failed: ${result.message}`);
    if (!this.stopped) this.host.done(result);
  }

  /** Run `fn`; a thrown error (a bug, never input) ends the exchange instead of escaping. */
  protected guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.host.log.error({ machine: this.machine, err }, `${this.machine}: internal error`);
      this.fail('protocol-error', `internal error in ${this.machine}`);
    }
  }

  /** Run an async step (a verifier call) under the same guard; ignores its outcome once stopped. */
  protected guardAsync(p: Promise<void>): void {
    p.catch((err: unknown) => {
      this.host.log.error({ machine: this.machine, err }, `${this.machine}: internal error`);
      this.fail('backend-error', `internal error in ${this.machine}`);
    });
  }
}

/** Call a verifier; a rejected promise (backend bug or outage) becomes a 'backend-error' outcome. */
export async function callVerifier<T>(f: () => Promise<VerifyOutcome<T>>): Promise<VerifyOutcome<T>> {
  try {
    return await f();
  } catch {
    return { ok: false, reason: 'backend-error', message: 'the credential backend failed' };
  }
}

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** Names on the wire are octets; we read them as UTF-8 (invalid sequences become U+FFFD). */
export function decodeName(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

export function encodeName(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** The HLAK of methods that derive no keys (PAP, CHAP-MD5): 32 zero octets (MS-SSTP 3.2.5.2.x). */
export function zeroHlak(): Uint8Array {
  return new Uint8Array(32);
}

/** Peer-facing text for a refusal: never says more than "failed" for credential errors. */
export function refusalText(reason: AuthFailureReason): string {
  switch (reason) {
    case 'bad-credentials':
    case 'unknown-user':
      return 'Authentication failed';
    case 'rate-limited':
      return 'Too many failed attempts, try again later';
    case 'disabled':
      return 'Account disabled';
    case 'expired':
      return 'Password expired';
    case 'method-not-allowed':
      return 'Authentication method not allowed for this account';
    case 'protocol-not-allowed':
      return 'Tunnel type not allowed for this account';
    case 'timeout':
    case 'protocol-error':
    case 'backend-error':
      return 'Authentication unavailable';
  }
}
