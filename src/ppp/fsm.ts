/**
 * The RFC 1661 section 4 option-negotiation automaton, written once: the
 * state transition table of section 4.1 as data, plus one executor. LCP,
 * IPCP, IPV6CP and CCP plug into it through {@link ControlProtocol}.
 *
 *   Up/Open    +---------+  RCR+/sca  +----------+
 *  ----------->| Req-Sent|----------->| Ack-Sent |---RCA/tlu---+
 *              +---------+            +----------+             v
 *                 | RCA                      ^            +--------+
 *                 v                          |            | Opened |
 *              +---------+  RCR+/sca,tlu     |            +--------+
 *              | Ack-Rcvd|-------------------+--------------->  |
 *              +---------+                                    | RTR/tld,zrc,sta
 *   TO- (Max-Configure) -> Stopped        Close -> Closing    v
 *   Closing --RTA/TO- (Max-Terminate)--> Closed   Stopping --TO-/tlf--> Stopped
 *
 * (The table below is the authority; the diagram is the main path only.)
 *
 * The automaton owns the subtle rules so no protocol repeats them:
 * - Identifiers: a Configure-Ack/Nak/Reject counts only if its Identifier is
 *   that of the last Configure-Request sent and no reply to that request
 *   was accepted yet; stale and duplicate replies are silently discarded
 *   (RFC 1661 5.2-5.4). A Configure-Ack must echo the request exactly (5.2).
 * - Restart timer and counter: Max-Configure requests, Max-Terminate
 *   Terminate-Requests, one Restart interval apart (4.6).
 * - Max-Failure: after that many Configure-Naks without an intervening
 *   Configure-Ack, Naks of peer-requested options become Rejects, so Nak
 *   loops end (4.6).
 * - Every transition goes through one function that logs `from -> to (event)`.
 *
 * Events are processed run-to-completion: an event raised from inside an
 * action (a protocol closing itself from a hook) is queued and handled after
 * the current one, so actions never interleave.
 */
import type { Clock, Timer } from '../util/clock.js';
import { logTransition, type Logger } from '../util/log.js';
import { decodeOptions, encodeControlPacket, bytesEqual, concatBytes, encodeOption, type ControlPacket, type RawOption } from './packet.js';
import { Code } from './protocols.js';

export enum FsmState {
  Initial = 0,
  Starting = 1,
  Closed = 2,
  Stopped = 3,
  Closing = 4,
  Stopping = 5,
  ReqSent = 6,
  AckRcvd = 7,
  AckSent = 8,
  Opened = 9,
}

/** The RFC's state names, indexed by {@link FsmState}. */
export const STATE_NAMES = ['Initial', 'Starting', 'Closed', 'Stopped', 'Closing', 'Stopping', 'Req-Sent', 'Ack-Rcvd', 'Ack-Sent', 'Opened'] as const;

export const FSM_EVENTS = ['Up', 'Down', 'Open', 'Close', 'TO+', 'TO-', 'RCR+', 'RCR-', 'RCA', 'RCN', 'RTR', 'RTA', 'RUC', 'RXJ+', 'RXJ-', 'RXR'] as const;
export type FsmEvent = (typeof FSM_EVENTS)[number];

export const FSM_ACTIONS = ['tlu', 'tld', 'tls', 'tlf', 'irc', 'zrc', 'scr', 'sca', 'scn', 'str', 'sta', 'scj', 'ser'] as const;
export type FsmAction = (typeof FSM_ACTIONS)[number];

export interface Transition {
  readonly actions: readonly FsmAction[];
  readonly next: FsmState;
}

const S = FsmState;
/** One cell: actions (comma-separated, RFC spelling) and the next state. */
function c(actions: string, next: FsmState): Transition {
  return Object.freeze({ actions: Object.freeze(actions ? (actions.split(',') as FsmAction[]) : []), next });
}
const __ = null;

/**
 * RFC 1661 section 4.1, row by row (event) and column by column (state 0-9).
 * `null` is the RFC's '-' (the event cannot happen in that state: ignored and
 * counted). The footnotes are not implemented options: 'r' (restart on
 * Open) and 'p' (passive) behave as the plain cell, 'x' (crossed
 * connection) needs nothing extra.
 */
export const TRANSITIONS: Readonly<Record<FsmEvent, readonly (Transition | null)[]>> = Object.freeze({
  //        Initial          Starting               Closed              Stopped                  Closing           Stopping          Req-Sent                 Ack-Rcvd                 Ack-Sent               Opened
  Up: [c('', S.Closed), c('irc,scr', S.ReqSent), __, __, __, __, __, __, __, __],
  Down: [__, __, c('', S.Initial), c('tls', S.Starting), c('', S.Initial), c('', S.Starting), c('', S.Starting), c('', S.Starting), c('', S.Starting), c('tld', S.Starting)],
  Open: [c('tls', S.Starting), c('', S.Starting), c('irc,scr', S.ReqSent), c('', S.Stopped), c('', S.Stopping), c('', S.Stopping), c('', S.ReqSent), c('', S.AckRcvd), c('', S.AckSent), c('', S.Opened)],
  Close: [c('', S.Initial), c('tlf', S.Initial), c('', S.Closed), c('', S.Closed), c('', S.Closing), c('', S.Closing), c('irc,str', S.Closing), c('irc,str', S.Closing), c('irc,str', S.Closing), c('tld,irc,str', S.Closing)],
  'TO+': [__, __, __, __, c('str', S.Closing), c('str', S.Stopping), c('scr', S.ReqSent), c('scr', S.ReqSent), c('scr', S.AckSent), __],
  'TO-': [__, __, __, __, c('tlf', S.Closed), c('tlf', S.Stopped), c('tlf', S.Stopped), c('tlf', S.Stopped), c('tlf', S.Stopped), __],
  'RCR+': [__, __, c('sta', S.Closed), c('irc,scr,sca', S.AckSent), c('', S.Closing), c('', S.Stopping), c('sca', S.AckSent), c('sca,tlu', S.Opened), c('sca', S.AckSent), c('tld,scr,sca', S.AckSent)],
  'RCR-': [__, __, c('sta', S.Closed), c('irc,scr,scn', S.ReqSent), c('', S.Closing), c('', S.Stopping), c('scn', S.ReqSent), c('scn', S.AckRcvd), c('scn', S.ReqSent), c('tld,scr,scn', S.ReqSent)],
  RCA: [__, __, c('sta', S.Closed), c('sta', S.Stopped), c('', S.Closing), c('', S.Stopping), c('irc', S.AckRcvd), c('scr', S.ReqSent), c('irc,tlu', S.Opened), c('tld,scr', S.ReqSent)],
  RCN: [__, __, c('sta', S.Closed), c('sta', S.Stopped), c('', S.Closing), c('', S.Stopping), c('irc,scr', S.ReqSent), c('scr', S.ReqSent), c('irc,scr', S.AckSent), c('tld,scr', S.ReqSent)],
  RTR: [__, __, c('sta', S.Closed), c('sta', S.Stopped), c('sta', S.Closing), c('sta', S.Stopping), c('sta', S.ReqSent), c('sta', S.ReqSent), c('sta', S.ReqSent), c('tld,zrc,sta', S.Stopping)],
  RTA: [__, __, c('', S.Closed), c('', S.Stopped), c('tlf', S.Closed), c('tlf', S.Stopped), c('', S.ReqSent), c('', S.ReqSent), c('', S.AckSent), c('tld,scr', S.ReqSent)],
  RUC: [__, __, c('scj', S.Closed), c('scj', S.Stopped), c('scj', S.Closing), c('scj', S.Stopping), c('scj', S.ReqSent), c('scj', S.AckRcvd), c('scj', S.AckSent), c('scj', S.Opened)],
  'RXJ+': [__, __, c('', S.Closed), c('', S.Stopped), c('', S.Closing), c('', S.Stopping), c('', S.ReqSent), c('', S.ReqSent), c('', S.AckSent), c('', S.Opened)],
  'RXJ-': [__, __, c('tlf', S.Closed), c('tlf', S.Stopped), c('tlf', S.Closed), c('tlf', S.Stopped), c('tlf', S.Stopped), c('tlf', S.Stopped), c('tlf', S.Stopped), c('tld,irc,str', S.Stopping)],
  RXR: [__, __, c('', S.Closed), c('', S.Stopped), c('', S.Closing), c('', S.Stopping), c('', S.ReqSent), c('', S.AckRcvd), c('', S.AckSent), c('ser', S.Opened)],
});

/** States in which the Restart timer runs (RFC 1661 4.2). */
const TIMER_STATES: ReadonlySet<FsmState> = new Set([S.Closing, S.Stopping, S.ReqSent, S.AckRcvd, S.AckSent]);
/** States in which a Configure-Request must be judged (its verdict picks RCR+ or RCR-). */
const JUDGE_STATES: ReadonlySet<FsmState> = new Set([S.Stopped, S.ReqSent, S.AckRcvd, S.AckSent, S.Opened]);
/** States in which replies to our Configure-Request are matched and applied. */
const REPLY_STATES: ReadonlySet<FsmState> = new Set([S.ReqSent, S.AckRcvd, S.AckSent, S.Opened]);

/** From the spec (RFC 1661 4.6) suggested values. */
export const DEFAULT_RESTART_MS = 3000;
export const DEFAULT_MAX_CONFIGURE = 10;
export const DEFAULT_MAX_TERMINATE = 2;
export const DEFAULT_MAX_FAILURE = 5;

export interface FsmTimers {
  restartMs: number;
  maxConfigure: number;
  maxTerminate: number;
  maxFailure: number;
}

export const DEFAULT_FSM_TIMERS: Readonly<FsmTimers> = Object.freeze({
  restartMs: DEFAULT_RESTART_MS,
  maxConfigure: DEFAULT_MAX_CONFIGURE,
  maxTerminate: DEFAULT_MAX_TERMINATE,
  maxFailure: DEFAULT_MAX_FAILURE,
});

/** Verdict on one option of a peer's Configure-Request. Nak data is the suggested option data. */
export type RawVerdict = { kind: 'ack' } | { kind: 'nak'; data: Uint8Array } | { kind: 'reject' };

export interface ConfigureJudgement {
  /** One verdict per received option, in order. */
  verdicts: RawVerdict[];
  /** Options the peer did not include that we ask it to (whole encoded options; RFC 1661 5.3 allows them in a Nak). */
  hints?: Uint8Array[];
}

/** What an extended code (beyond 1..7) means to the automaton. */
export type ExtendedOutcome = 'RXR' | 'RXJ+' | 'RXJ-' | 'handled' | 'unknown';

/**
 * A control protocol (LCP, IPCP, IPV6CP, CCP) as the automaton sees it:
 * what to request, how to judge the peer's request, how to apply the
 * peer's replies, and the four layer events.
 */
export interface ControlProtocol {
  /** Start of a negotiation: go back to the options we want (RFC 1661: before the first request of a negotiation). */
  resetRequest(): void;
  /** Data field (encoded options) of our next Configure-Request. */
  buildRequest(): Uint8Array;
  /** Judge a peer's Configure-Request, option by option. */
  judgeRequest(opts: readonly RawOption[]): ConfigureJudgement;
  /** The peer acknowledged our last request (already checked to echo it exactly). */
  acked(opts: readonly RawOption[]): void;
  /** Apply a Configure-Nak to the request it answers; false if it is malformed (discarded, no event). */
  naked(opts: readonly RawOption[], lastRequest: readonly RawOption[]): boolean;
  /** Apply a Configure-Reject (already checked to hold only options we sent); false to discard it. */
  rejected(opts: readonly RawOption[]): boolean;
  /** This-Layer-Up / -Down / -Started / -Finished, with the event that caused them. */
  up(cause: FsmEvent): void;
  down(cause: FsmEvent): void;
  started(cause: FsmEvent): void;
  finished(cause: FsmEvent): void;
  /** Codes beyond 1..7 (LCP 8-13, CCP 14-15). Absent or 'unknown': Code-Reject (RUC). */
  extendedCode?(pkt: ControlPacket, state: FsmState): ExtendedOutcome;
  /** The 'ser' action: an RXR packet (Echo-Request/Reply, Discard-Request) in the Opened state. */
  rxr?(pkt: ControlPacket): void;
  /** Code-Reject of an extended code: is it catastrophic? Default RXJ+. Codes 1..7 are always RXJ-. */
  codeRejected?(code: number): 'RXJ+' | 'RXJ-';
}

export interface FsmHost {
  /** Send a control packet (Code, Identifier, Data) of this protocol. */
  send(packet: Uint8Array): void;
  clock: Clock;
  log: Logger;
  /** Largest packet (Information field) the peer accepts: bounds a Code-Reject. */
  peerMru(): number;
}

/** Why a received packet was dropped without an event. */
export type FsmDropReason = 'not-up' | 'malformed-options' | 'stale-id' | 'bad-ack' | 'bad-nak' | 'bad-reject' | 'bad-code-reject' | 'illegal-event';

export interface FsmCounters {
  drops: Record<FsmDropReason, number>;
  /** Configure-Naks converted into Configure-Rejects by Max-Failure. */
  maxFailureConversions: number;
}

/** The data of the event being processed: the received packet and, for RCR-, the reply. */
export interface EventContext {
  pkt?: ControlPacket;
  /** RCR-: the Configure-Nak or Configure-Reject to send. */
  reply?: { code: Code.ConfigureNak | Code.ConfigureReject; data: Uint8Array };
}

export class Fsm {
  private st = FsmState.Initial;
  private counter = 0;
  private timer: Timer | undefined;
  private idSeq: number;
  /** Identifier and data of our last Configure-Request, and whether a reply to it was accepted. */
  private reqId = -1;
  private reqData: Uint8Array = new Uint8Array(0);
  private replySeen = true;
  /** Configure-Naks sent since the last Configure-Ack (Max-Failure). */
  private naksSent = 0;
  private termReason = '';
  private readonly queue: { ev: FsmEvent; ctx: EventContext }[] = [];
  private running = false;
  readonly timers: FsmTimers;
  readonly counters: FsmCounters = {
    drops: { 'not-up': 0, 'malformed-options': 0, 'stale-id': 0, 'bad-ack': 0, 'bad-nak': 0, 'bad-reject': 0, 'bad-code-reject': 0, 'illegal-event': 0 },
    maxFailureConversions: 0,
  };

  constructor(
    readonly name: string,
    private readonly proto: ControlProtocol,
    private readonly host: FsmHost,
    timers: Partial<FsmTimers> = {},
    firstId = 1,
  ) {
    this.timers = { ...DEFAULT_FSM_TIMERS, ...timers };
    this.idSeq = firstId & 0xff;
  }

  get state(): FsmState {
    return this.st;
  }

  get stateName(): string {
    return STATE_NAMES[this.st];
  }

  /** The Restart counter (RFC 1661 4.6). */
  get restartCount(): number {
    return this.counter;
  }

  get timerRunning(): boolean {
    return this.timer !== undefined;
  }

  get isOpened(): boolean {
    return this.st === FsmState.Opened;
  }

  /** Closed, Stopped or Initial/Starting after having run: the layer is finished. */
  get isFinished(): boolean {
    return this.st === FsmState.Closed || this.st === FsmState.Stopped || this.st === FsmState.Initial || this.st === FsmState.Starting;
  }

  /** Identifier for a packet we originate. */
  nextId(): number {
    const id = this.idSeq;
    this.idSeq = (this.idSeq + 1) & 0xff;
    return id;
  }

  up(): void {
    this.dispatch('Up');
  }

  down(): void {
    this.dispatch('Down');
  }

  open(): void {
    this.dispatch('Open');
  }

  /** Administrative Close; `reason` goes into the Terminate-Request's data (ASCII, no secrets). */
  close(reason = ''): void {
    if (reason && !this.termReason) this.termReason = reason;
    this.dispatch('Close');
  }

  /** The peer Protocol-Rejected this protocol (RFC 1661 5.7): RXJ-. */
  protocolRejected(): void {
    this.dispatch('RXJ-');
  }

  /** Classify a received packet into an event (or a counted drop) and process it. */
  receive(pkt: ControlPacket): void {
    const s = this.st;
    if (s === FsmState.Initial || s === FsmState.Starting) {
      this.drop('not-up', pkt);
      return;
    }
    switch (pkt.code) {
      case Code.ConfigureRequest: {
        const opts = decodeOptions(pkt.data);
        if (!opts.ok) return this.drop('malformed-options', pkt, opts.message);
        if (!JUDGE_STATES.has(s)) return this.dispatch('RCR+', { pkt });
        const reply = this.judge(opts.value);
        return this.dispatch(reply ? 'RCR-' : 'RCR+', reply ? { pkt, reply } : { pkt });
      }
      case Code.ConfigureAck: {
        if (REPLY_STATES.has(s)) {
          if (!this.replyMatches(pkt)) return;
          // RFC 1661 5.2: the options of a Configure-Ack MUST exactly match those of the last request.
          if (!bytesEqual(pkt.data, this.reqData)) return this.drop('bad-ack', pkt);
          const opts = decodeOptions(pkt.data);
          if (!opts.ok) return this.drop('bad-ack', pkt);
          this.replySeen = true;
          this.proto.acked(opts.value);
        }
        return this.dispatch('RCA', { pkt });
      }
      case Code.ConfigureNak:
      case Code.ConfigureReject: {
        const nak = pkt.code === Code.ConfigureNak;
        if (REPLY_STATES.has(s)) {
          if (!this.replyMatches(pkt)) return;
          const opts = decodeOptions(pkt.data);
          if (!opts.ok) return this.drop('malformed-options', pkt, opts.message);
          if (nak) {
            const sent = decodeOptions(this.reqData);
            if (!this.proto.naked(opts.value, sent.ok ? sent.value : [])) return this.drop('bad-nak', pkt);
          } else {
            if (!this.rejectIsSubset(opts.value) || !this.proto.rejected(opts.value)) return this.drop('bad-reject', pkt);
          }
          this.replySeen = true;
        }
        return this.dispatch('RCN', { pkt });
      }
      case Code.TerminateRequest:
        return this.dispatch('RTR', { pkt });
      case Code.TerminateAck:
        return this.dispatch('RTA', { pkt });
      case Code.CodeReject: {
        if (pkt.data.length < 1) return this.drop('bad-code-reject', pkt);
        const rejected = pkt.data[0]!;
        // RFC 1661 4.3: rejecting a code the automaton needs (1..7) is catastrophic.
        const ev = rejected >= Code.ConfigureRequest && rejected <= Code.CodeReject ? 'RXJ-' : (this.proto.codeRejected?.(rejected) ?? 'RXJ+');
        this.host.log.debug({ machine: this.name, rejectedCode: rejected }, `${this.name}: peer rejected code ${rejected}`);
        return this.dispatch(ev, { pkt });
      }
      default: {
        const out = this.proto.extendedCode?.(pkt, s) ?? 'unknown';
        if (out === 'handled') return;
        if (out === 'unknown') return this.dispatch('RUC', { pkt });
        return this.dispatch(out, { pkt });
      }
    }
  }

  /** Process one event (queued behind any event being processed). Public for the table test and NCP control. */
  dispatch(ev: FsmEvent, ctx: EventContext = {}): void {
    this.queue.push({ ev, ctx });
    if (this.running) return;
    this.running = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) this.execute(item.ev, item.ctx);
    } finally {
      this.running = false;
      this.queue.length = 0;
    }
  }

  private execute(ev: FsmEvent, ctx: EventContext): void {
    const from = this.st;
    const cell = TRANSITIONS[ev][from];
    if (!cell) {
      this.counters.drops['illegal-event']++;
      this.host.log.debug({ machine: this.name, state: STATE_NAMES[from], event: ev }, `${this.name}: event ${ev} ignored in ${STATE_NAMES[from]}`);
      return;
    }
    this.transition(from, cell.next, ev);
    for (const a of cell.actions) this.act(a, ev, from, cell, ctx);
    if (!TIMER_STATES.has(this.st)) this.stopTimer();
  }

  /** The one place the state changes. */
  private transition(from: FsmState, to: FsmState, ev: FsmEvent): void {
    this.st = to;
    if (from !== to) logTransition(this.host.log, this.name, STATE_NAMES[from], STATE_NAMES[to], ev);
  }

  private act(a: FsmAction, ev: FsmEvent, from: FsmState, cell: Transition, ctx: EventContext): void {
    switch (a) {
      case 'tlu':
        this.proto.up(ev);
        return;
      case 'tld':
        this.proto.down(ev);
        return;
      case 'tls':
        this.proto.started(ev);
        return;
      case 'tlf':
        this.proto.finished(ev);
        return;
      case 'irc':
        // Initialize-Restart-Count: Max-Terminate before a Terminate-Request, else Max-Configure.
        this.counter = cell.actions.includes('str') ? this.timers.maxTerminate : this.timers.maxConfigure;
        return;
      case 'zrc':
        this.counter = 0;
        this.startTimer();
        return;
      case 'scr':
        this.sendConfigureRequest(ev === 'TO+', from);
        return;
      case 'sca':
        this.naksSent = 0;
        this.send(Code.ConfigureAck, ctx.pkt?.id ?? 0, ctx.pkt?.data);
        return;
      case 'scn':
        if (!ctx.reply) return;
        if (ctx.reply.code === Code.ConfigureNak) this.naksSent++;
        this.send(ctx.reply.code, ctx.pkt?.id ?? 0, ctx.reply.data);
        return;
      case 'str':
        this.counter--;
        this.startTimer();
        this.send(Code.TerminateRequest, this.nextId(), asciiBytes(this.termReason));
        return;
      case 'sta':
        this.send(Code.TerminateAck, ctx.pkt?.id ?? this.nextId());
        return;
      case 'scj': {
        // RFC 1661 5.6: the rejected packet, truncated to fit the peer's MRU.
        const room = Math.max(0, this.host.peerMru() - 4);
        const rejected = ctx.pkt?.raw ?? new Uint8Array(0);
        this.send(Code.CodeReject, this.nextId(), rejected.subarray(0, room));
        return;
      }
      case 'ser':
        if (ctx.pkt) this.proto.rxr?.(ctx.pkt);
        return;
      default: {
        const never: never = a;
        throw new Error(`unhandled action ${String(never)}`);
      }
    }
  }

  private sendConfigureRequest(retransmit: boolean, from: FsmState): void {
    if (from !== FsmState.ReqSent && from !== FsmState.AckRcvd && from !== FsmState.AckSent) {
      // Not negotiating yet: start from the options we want.
      this.proto.resetRequest();
      this.naksSent = 0;
    }
    if (!retransmit || this.reqId < 0) {
      // RFC 1661 5.1: a new Identifier whenever the contents change or a reply was received.
      this.reqId = this.nextId();
      this.reqData = this.proto.buildRequest();
    }
    this.replySeen = false;
    this.counter--;
    this.startTimer();
    this.send(Code.ConfigureRequest, this.reqId, this.reqData);
  }

  /** Judge a Configure-Request; undefined means acceptable (RCR+), else the Nak/Reject to send (RCR-). */
  private judge(opts: readonly RawOption[]): EventContext['reply'] | undefined {
    const j = this.proto.judgeRequest(opts);
    const rejects: Uint8Array[] = [];
    const naks: Uint8Array[] = [];
    opts.forEach((o, i) => {
      const v = j.verdicts[i] ?? { kind: 'reject' };
      if (v.kind === 'reject') rejects.push(o.raw);
      else if (v.kind === 'nak') naks.push(encodeOption(o.type, v.data));
    });
    // RFC 1661 5.3/5.4: Reject takes precedence; a Nak carries only unacceptable options (plus hints).
    if (rejects.length) return { code: Code.ConfigureReject, data: concatBytes(rejects) };
    const hints = j.hints ?? [];
    if (!naks.length && !hints.length) return undefined;
    if (this.naksSent >= this.timers.maxFailure) {
      // RFC 1661 4.6 Max-Failure: not converging; Nak'd options are Rejected, hints dropped.
      const failed = opts.filter((_, i) => j.verdicts[i]?.kind === 'nak').map((o) => o.raw);
      if (!failed.length) return undefined;
      this.counters.maxFailureConversions++;
      this.host.log.debug({ machine: this.name, naksSent: this.naksSent }, `${this.name}: Max-Failure reached, rejecting instead of Nak`);
      return { code: Code.ConfigureReject, data: concatBytes(failed) };
    }
    return { code: Code.ConfigureNak, data: concatBytes([...naks, ...hints]) };
  }

  private replyMatches(pkt: ControlPacket): boolean {
    if (pkt.id !== this.reqId || this.replySeen) {
      this.drop('stale-id', pkt);
      return false;
    }
    return true;
  }

  /** RFC 1661 5.4: a Configure-Reject holds only options of our request, unmodified. */
  private rejectIsSubset(opts: readonly RawOption[]): boolean {
    const sent = decodeOptions(this.reqData);
    if (!sent.ok) return false;
    return opts.every((r) => sent.value.some((s) => bytesEqual(s.raw, r.raw)));
  }

  private send(code: Code, id: number, data?: Uint8Array): void {
    this.host.send(encodeControlPacket(code, id, data));
  }

  private drop(reason: FsmDropReason, pkt: ControlPacket, detail?: string): void {
    this.counters.drops[reason]++;
    this.host.log.debug({ machine: this.name, reason, code: pkt.code, id: pkt.id, detail }, `${this.name}: dropped packet (${reason})`);
  }

  private startTimer(): void {
    this.timer?.cancel();
    this.timer = this.host.clock.setTimer(this.timers.restartMs, () => this.onRestartTimerExpired());
  }

  private stopTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private onRestartTimerExpired(): void {
    this.timer = undefined;
    this.dispatch(this.counter > 0 ? 'TO+' : 'TO-');
  }
}

function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(Math.min(s.length, 128));
  for (let i = 0; i < out.length; i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
}
