/**
 * In-memory fake link for tests: a server and a client authentication
 * instance wired back to back through two {@link AuthHost}s sharing one
 * {@link VirtualClock}. Packets are queued (never delivered re-entrantly) and
 * can be dropped or rewritten in flight; every log line is captured so tests
 * can check that no secret reaches one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VirtualClock } from '../../util/clock.js';
import { createLogger, type Logger } from '../../util/log.js';
import type {
  AuthFailureReason,
  AuthHost,
  AuthProtocol,
  AuthResult,
  MsChapV2Verified,
  UserAttributes,
  Verifier,
  VerifyContext,
  VerifyOutcome,
} from './types.js';
import { chapMd5Response } from './chap-md5.js';
import { ntPasswordHash, verifyMsChapV2Response } from './mschapv2-crypto.js';

export type Direction = 'toServer' | 'toClient';

export interface Captured {
  dir: Direction;
  bytes: Uint8Array;
}

/** Return the packet to deliver (possibly rewritten), or null to drop it. */
export type Tamper = (dir: Direction, packet: Uint8Array, index: number) => Uint8Array | null;

export class CapturingLog {
  readonly lines: string[] = [];
  readonly logger: Logger = createLogger({ level: 'trace', destination: { write: (s: string) => void this.lines.push(s) } });

  get text(): string {
    return this.lines.join('');
  }
}

export class FakeHost implements AuthHost {
  readonly results: AuthResult[] = [];
  constructor(
    readonly clock: VirtualClock,
    readonly log: Logger,
    private readonly out: (p: Uint8Array) => void,
  ) {}

  send(packet: Uint8Array): void {
    this.out(packet.slice());
  }

  done(result: AuthResult): void {
    this.results.push(result);
  }

  /** The single result, or undefined while the exchange runs. Throws if done() was called twice. */
  get result(): AuthResult | undefined {
    if (this.results.length > 1) throw new Error(`done() called ${this.results.length} times`);
    return this.results[0];
  }
}

export class AuthLink {
  readonly clock = new VirtualClock();
  readonly logs = new CapturingLog();
  readonly captured: Captured[] = [];
  readonly serverHost: FakeHost;
  readonly clientHost: FakeHost;
  server: AuthProtocol | undefined;
  client: AuthProtocol | undefined;
  tamper: Tamper | undefined;
  private queue: Captured[] = [];
  private sent = 0;

  constructor() {
    this.serverHost = new FakeHost(this.clock, this.logs.logger, (p) => this.enqueue('toClient', p));
    this.clientHost = new FakeHost(this.clock, this.logs.logger, (p) => this.enqueue('toServer', p));
  }

  private enqueue(dir: Direction, bytes: Uint8Array): void {
    this.captured.push({ dir, bytes });
    const index = this.sent++;
    const out = this.tamper ? this.tamper(dir, bytes, index) : bytes;
    if (out) this.queue.push({ dir, bytes: out });
  }

  /** Packets sent in one direction, in order (before tampering). */
  sentBy(side: 'server' | 'client'): Uint8Array[] {
    const dir: Direction = side === 'server' ? 'toClient' : 'toServer';
    return this.captured.filter((c) => c.dir === dir).map((c) => c.bytes);
  }

  /** Inject a packet as if the other side had sent it. */
  inject(dir: Direction, bytes: Uint8Array): void {
    this.queue.push({ dir, bytes });
  }

  /** Deliver queued packets and let verifier promises resolve, until nothing moves. */
  async settle(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const c of batch) {
        const target = c.dir === 'toServer' ? this.server : this.client;
        target?.input(c.bytes);
      }
      await new Promise<void>((r) => setImmediate(r));
      if (this.queue.length === 0 && batch.length === 0) return;
    }
    throw new Error('AuthLink.settle: the exchange did not quiesce');
  }

  /** Start both sides (client first, as a peer is ready before the challenge arrives) and settle. */
  async start(): Promise<void> {
    this.client?.start();
    this.server?.start();
    await this.settle();
  }

  /** Advance virtual time in steps, settling after each. */
  async run(ms: number, step = 250): Promise<void> {
    for (let t = 0; t < ms; t += step) {
      this.clock.advance(Math.min(step, ms - t));
      await this.settle();
    }
  }
}

export interface FakeUser {
  password: string;
  disabled?: boolean;
  expired?: boolean;
  attributes?: UserAttributes;
}

/**
 * A verifier over a plain map, for protocol tests (the real one is
 * src/aaa/local-verifier.ts). Records every call it gets.
 */
export class FakeVerifier implements Verifier {
  readonly calls: { method: string; username: string; ctx: VerifyContext }[] = [];
  /** When set, every call rejects (a backend outage). */
  broken = false;

  constructor(private readonly users: Record<string, FakeUser>) {}

  private lookup(method: string, username: string, ctx: VerifyContext): FakeUser | { ok: false; reason: AuthFailureReason; message: string } {
    this.calls.push({ method, username, ctx });
    if (this.broken) throw new Error('backend down');
    const u = this.users[username];
    if (!u) return { ok: false, reason: 'unknown-user', message: `unknown user ${username}` };
    return u;
  }

  private status(u: FakeUser, username: string): VerifyOutcome<{ attributes: UserAttributes; username: string }> {
    if (u.disabled) return { ok: false, reason: 'disabled', message: `${username} is disabled` };
    if (u.expired) return { ok: false, reason: 'expired', message: `${username}'s password expired` };
    return { ok: true, attributes: u.attributes ?? {}, username };
  }

  async pap(ctx: VerifyContext, username: string, password: Uint8Array) {
    const u = this.lookup('pap', username, ctx);
    if ('ok' in u) return u;
    if (Buffer.compare(Buffer.from(password), Buffer.from(u.password, 'utf8')) !== 0) {
      return { ok: false as const, reason: 'bad-credentials' as const, message: 'wrong password' };
    }
    return this.status(u, username);
  }

  async chapMd5(ctx: VerifyContext, username: string, identifier: number, challenge: Uint8Array, response: Uint8Array) {
    const u = this.lookup('chap-md5', username, ctx);
    if ('ok' in u) return u;
    const want = chapMd5Response(identifier, Buffer.from(u.password, 'utf8'), challenge);
    if (Buffer.compare(Buffer.from(want), Buffer.from(response)) !== 0) {
      return { ok: false as const, reason: 'bad-credentials' as const, message: 'wrong password' };
    }
    return this.status(u, username);
  }

  async msChapV2(
    ctx: VerifyContext,
    username: string,
    authenticatorChallenge: Uint8Array,
    peerChallenge: Uint8Array,
    ntResponse: Uint8Array,
  ): Promise<VerifyOutcome<MsChapV2Verified>> {
    const u = this.lookup('mschapv2', username, ctx);
    if ('ok' in u) return u;
    const r = verifyMsChapV2Response({
      username,
      ntHash: ntPasswordHash(u.password),
      authenticatorChallenge,
      peerChallenge,
      ntResponse,
    });
    if (!r) return { ok: false, reason: 'bad-credentials', message: 'wrong password' };
    const s = this.status(u, username);
    if (!s.ok) return s;
    return { ok: true, username, attributes: s.attributes, authenticatorResponse: r.authenticatorResponse, mppe: r.mppe };
  }
}

/** A published vector file from ../shared/vectors (never copied into the repo). */
export function readVectors<T = { vectors: Record<string, unknown>[] }>(file: string): T {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return JSON.parse(readFileSync(path.resolve(here, '../../../../shared/vectors', file), 'utf8')) as T;
}
