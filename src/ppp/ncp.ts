/**
 * What every network control protocol (IPCP, IPV6CP, CCP) needs from the
 * session, and the small base they share: an option table driving the
 * automaton, a per-judgement record of what the peer asked for, and the
 * four layer events forwarded to the session.
 */
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { Fsm, type ConfigureJudgement, type ControlProtocol, type FsmEvent, type FsmTimers } from './fsm.js';
import type { OptionTable } from './options.js';
import type { RawOption } from './packet.js';

export interface NcpHost {
  /** Send a packet of this protocol (the information field of its frame). */
  send(packet: Uint8Array): void;
  clock: Clock;
  log: Logger;
  random(n: number): Uint8Array;
  /** The peer's MRU (bounds Code-Rejects). */
  peerMru(): number;
  up(): void;
  down(cause: FsmEvent): void;
  finished(cause: FsmEvent): void;
  /** Negotiation cannot succeed in a way the session must act on (reason is a stable code). */
  fail(reason: string, detail: string): void;
}

/**
 * Base of the NCPs: `C` is the state the option rows read and write (the
 * subclass itself). Subclasses provide the table, `initialWant()` and
 * `freshPeer()`.
 */
export abstract class TableProtocol<C> implements ControlProtocol {
  readonly fsm: Fsm;
  /** Judging a request: 'hints' for options the peer left out (RFC 1661 5.3). */
  protected hints?: (present: ReadonlySet<number>) => Uint8Array[];

  protected constructor(
    readonly name: string,
    protected readonly table: OptionTable<C>,
    protected readonly host: NcpHost,
    timers?: Partial<FsmTimers>,
  ) {
    this.fsm = new Fsm(name, this, { send: (p) => host.send(p), clock: host.clock, log: host.log, peerMru: () => host.peerMru() }, timers, host.random(1)[0]);
  }

  protected abstract ctx(): C;
  /** Go back to the options we want at the start of a negotiation. */
  abstract resetRequest(): void;
  /** Forget what the peer asked for before judging a new request. */
  protected abstract resetPeer(): void;

  buildRequest(): Uint8Array {
    return this.table.buildRequest(this.ctx());
  }

  judgeRequest(opts: readonly RawOption[]): ConfigureJudgement {
    this.resetPeer();
    return this.table.judge(this.ctx(), opts, this.hints);
  }

  acked(opts: readonly RawOption[]): void {
    this.table.acked(this.ctx(), opts);
  }

  naked(opts: readonly RawOption[], lastRequest: readonly RawOption[]): boolean {
    return this.table.naked(this.ctx(), opts, lastRequest);
  }

  rejected(opts: readonly RawOption[]): boolean {
    return this.table.rejected(this.ctx(), opts);
  }

  up(cause: FsmEvent): void {
    void cause;
    this.host.up();
  }

  down(cause: FsmEvent): void {
    this.host.down(cause);
  }

  started(): void {
    // NCPs are opened by the session once LCP is up: nothing to ask the lower layer.
  }

  finished(cause: FsmEvent): void {
    this.host.finished(cause);
  }
}
