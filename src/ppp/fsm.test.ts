import { describe, it, expect } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { silentLogger } from '../util/log.js';
import { Fsm, FsmState, FSM_EVENTS, type ControlProtocol, type ConfigureJudgement, type EventContext, type FsmEvent } from './fsm.js';
import { decodeControlPacket, encodeControlPacket, encodeOption, type ControlPacket, type RawOption } from './packet.js';
import { Code } from './protocols.js';

/**
 * RFC 1661 section 4.1, transcribed independently of the implementation in
 * the RFC's own notation: 'actions/next-state', '-' for an illegal event,
 * footnote letters (r, p, x) kept as printed.
 */
const RFC_TABLE_0_5 = `
 Up   |    2     irc,scr/6     -         -         -         -
 Down |    -         -         0       tls/1       0         1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r
 Close|    0       tlf/0       2         2         4         4
 TO+  |    -         -         -         -       str/4     str/5
 TO-  |    -         -         -         -       tlf/2     tlf/3
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
 RCA  |    -         -       sta/2     sta/3       4         5
 RCN  |    -         -       sta/2     sta/3       4         5
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
 RXJ+ |    -         -         2         3         4         5
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
 RXR  |    -         -         2         3         4         5
`;
const RFC_TABLE_6_9 = `
 Up   |    -         -         -           -
 Down |    1         1         1         tld/1
 Open |    6         7         8           9r
 Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
 TO+  |  scr/6     scr/6     scr/8         -
 TO-  |  tlf/3p    tlf/3p    tlf/3p        -
 RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
 RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    6         6         8       tld,scr/6
 RUC  |  scj/6     scj/7     scj/8       scj/9
 RXJ+ |    6         6         8           9
 RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
 RXR  |    6         7         8         ser/9
`;

interface Cell {
  actions: string[];
  next: number;
}

function parseRfcTable(): Map<string, Cell | null> {
  const out = new Map<string, Cell | null>();
  for (const [text, firstState] of [
    [RFC_TABLE_0_5, 0],
    [RFC_TABLE_6_9, 6],
  ] as const) {
    for (const line of text.trim().split('\n')) {
      const [ev, cells] = line.split('|') as [string, string];
      const tokens = cells.trim().split(/\s+/);
      tokens.forEach((tok, i) => {
        const key = `${ev.trim()}@${firstState + i}`;
        if (tok === '-') return out.set(key, null);
        const m = /^(?:([a-z,]+)\/)?(\d)[rpx]?$/.exec(tok);
        if (!m) throw new Error(`cannot parse cell ${tok}`);
        out.set(key, { actions: m[1] ? m[1].split(',') : [], next: Number(m[2]) });
      });
    }
  }
  return out;
}

/** A control protocol that records the layer events and the ser action, with a switchable judge. */
class RecordingProtocol implements ControlProtocol {
  log: string[] = [];
  verdict: 'ack' | 'nak' | 'reject' = 'ack';
  nakValid = true;
  resets = 0;
  acks = 0;
  resetRequest(): void {
    this.resets++;
  }
  buildRequest(): Uint8Array {
    return encodeOption(1, new Uint8Array([0x05, 0xdc]));
  }
  judgeRequest(opts: readonly RawOption[]): ConfigureJudgement {
    return {
      verdicts: opts.map(() =>
        this.verdict === 'ack' ? { kind: 'ack' as const } : this.verdict === 'nak' ? { kind: 'nak' as const, data: new Uint8Array([0x05, 0x78]) } : { kind: 'reject' as const },
      ),
    };
  }
  acked(): void {
    this.acks++;
  }
  naked(): boolean {
    return this.nakValid;
  }
  rejected(): boolean {
    return true;
  }
  up(): void {
    this.log.push('tlu');
  }
  down(): void {
    this.log.push('tld');
  }
  started(): void {
    this.log.push('tls');
  }
  finished(): void {
    this.log.push('tlf');
  }
  extendedCode(pkt: ControlPacket): 'RXR' | 'unknown' {
    return pkt.code === Code.EchoRequest ? 'RXR' : 'unknown';
  }
  rxr(): void {
    this.log.push('ser');
  }
}

const SEND_ACTION: Record<number, string> = { 1: 'scr', 2: 'sca', 3: 'scn', 4: 'scn', 5: 'str', 6: 'sta', 7: 'scj' };

function harness() {
  const clock = new VirtualClock();
  const proto = new RecordingProtocol();
  const sent: ControlPacket[] = [];
  const fsm = new Fsm(
    'TEST',
    proto,
    {
      send: (p) => {
        const d = decodeControlPacket(p);
        if (!d.ok) throw new Error('fsm sent a malformed packet');
        sent.push(d.value);
        proto.log.push(SEND_ACTION[d.value.code] ?? `code${d.value.code}`);
      },
      clock,
      log: silentLogger,
      peerMru: () => 1500,
    },
    {},
    1,
  );
  const lastRequest = () => [...sent].reverse().find((p) => p.code === Code.ConfigureRequest)!;
  return { clock, proto, fsm, sent, lastRequest };
}

type H = ReturnType<typeof harness>;

function pkt(code: number, id: number, data: Uint8Array = new Uint8Array(0)): ControlPacket {
  const raw = encodeControlPacket(code, id, data);
  return { code, id, data: raw.subarray(4), raw };
}

/** Event payloads for direct dispatch. */
function ctxFor(ev: FsmEvent, h: H): EventContext {
  const opt = encodeOption(1, new Uint8Array([0x05, 0xdc]));
  switch (ev) {
    case 'RCR+':
      return { pkt: pkt(Code.ConfigureRequest, 0x42, opt) };
    case 'RCR-':
      return { pkt: pkt(Code.ConfigureRequest, 0x42, opt), reply: { code: Code.ConfigureNak, data: encodeOption(1, new Uint8Array([0x05, 0x78])) } };
    case 'RCA':
      return { pkt: pkt(Code.ConfigureAck, h.lastRequest()?.id ?? 0, opt) };
    case 'RCN':
      return { pkt: pkt(Code.ConfigureNak, h.lastRequest()?.id ?? 0, opt) };
    case 'RTR':
      return { pkt: pkt(Code.TerminateRequest, 0x43) };
    case 'RTA':
      return { pkt: pkt(Code.TerminateAck, 0x44) };
    case 'RUC':
      return { pkt: pkt(0x20, 0x45, new Uint8Array([1, 2, 3])) };
    case 'RXJ+':
    case 'RXJ-':
      return { pkt: pkt(Code.CodeReject, 0x46, new Uint8Array([ev === 'RXJ+' ? 12 : 1, 0, 0, 4])) };
    case 'RXR':
      return { pkt: pkt(Code.EchoRequest, 0x47, new Uint8Array([0, 0, 0, 0])) };
    default:
      return {};
  }
}

/** Reach each state through legal event sequences (not by poking the state). */
function reach(state: FsmState): H {
  const h = harness();
  const d = (ev: FsmEvent) => h.fsm.dispatch(ev, ctxFor(ev, h));
  switch (state) {
    case FsmState.Initial:
      break;
    case FsmState.Starting:
      h.fsm.open();
      break;
    case FsmState.Closed:
      h.fsm.up();
      break;
    case FsmState.Stopped:
      h.fsm.open();
      h.fsm.up();
      d('RXJ-');
      break;
    case FsmState.Closing:
      h.fsm.open();
      h.fsm.up();
      h.fsm.close();
      break;
    case FsmState.Stopping:
      h.fsm.open();
      h.fsm.up();
      d('RCA');
      d('RCR+');
      d('RTR');
      break;
    case FsmState.ReqSent:
      h.fsm.open();
      h.fsm.up();
      break;
    case FsmState.AckRcvd:
      h.fsm.open();
      h.fsm.up();
      d('RCA');
      break;
    case FsmState.AckSent:
      h.fsm.open();
      h.fsm.up();
      d('RCR+');
      break;
    case FsmState.Opened:
      h.fsm.open();
      h.fsm.up();
      d('RCA');
      d('RCR+');
      break;
  }
  expect(h.fsm.state).toBe(state);
  h.proto.log = [];
  return h;
}

function fire(h: H, ev: FsmEvent): void {
  if (ev === 'Up') h.fsm.up();
  else if (ev === 'Down') h.fsm.down();
  else if (ev === 'Open') h.fsm.open();
  else if (ev === 'Close') h.fsm.close();
  else h.fsm.dispatch(ev, ctxFor(ev, h));
}

const TIMER_STATES = new Set([4, 5, 6, 7, 8]);

describe('RFC 1661 automaton: every cell of the state transition table', () => {
  const rfc = parseRfcTable();
  it('the transcription has 160 cells', () => {
    expect(rfc.size).toBe(160);
  });

  for (const ev of FSM_EVENTS) {
    for (let state = 0; state <= 9; state++) {
      const expected = rfc.get(`${ev}@${state}`);
      const label = expected === null ? '-' : `${expected!.actions.join(',') || '(none)'}/${expected!.next}`;
      it(`${ev} in state ${state} (${FsmState[state]}): ${label}`, () => {
        const h = reach(state);
        const before = h.fsm.restartCount;
        const sentBefore = h.sent.length;
        fire(h, ev);
        if (expected === null || expected === undefined) {
          expect(h.fsm.state).toBe(state);
          expect(h.proto.log).toEqual([]);
          expect(h.sent.length).toBe(sentBefore);
          expect(h.fsm.restartCount).toBe(before);
          expect(h.fsm.counters.drops['illegal-event']).toBe(1);
          return;
        }
        expect(h.fsm.state).toBe(expected.next);
        // Observable actions, in the order the RFC lists them.
        expect(h.proto.log).toEqual(expected.actions.filter((a) => a !== 'irc' && a !== 'zrc'));
        // Restart counter: irc -> Max-Terminate before str else Max-Configure, zrc -> 0, each scr/str -1.
        let counter = before;
        for (const a of expected.actions) {
          if (a === 'irc') counter = expected.actions.includes('str') ? 2 : 10;
          if (a === 'zrc') counter = 0;
          if (a === 'scr' || a === 'str') counter--;
        }
        expect(h.fsm.restartCount).toBe(counter);
        // The Restart timer runs exactly in Closing, Stopping, Req-Sent, Ack-Rcvd and Ack-Sent.
        expect(h.fsm.timerRunning).toBe(TIMER_STATES.has(expected.next));
        // Replies carry the Identifier of what they answer.
        const reply = h.sent.slice(sentBefore).find((p) => p.code === Code.ConfigureAck || p.code === Code.ConfigureNak);
        if (reply) expect(reply.id).toBe(0x42);
        const tack = h.sent.slice(sentBefore).find((p) => p.code === Code.TerminateAck);
        if (tack && ev === 'RTR') expect(tack.id).toBe(0x43);
        const cj = h.sent.slice(sentBefore).find((p) => p.code === Code.CodeReject);
        if (cj) expect(Array.from(cj.data)).toEqual([0x20, 0x45, 0x00, 0x07, 1, 2, 3]);
      });
    }
  }
});

describe('restart timer and counters in virtual time', () => {
  it('Max-Configure: 10 Configure-Requests 3 s apart, then TO- -> tlf, Stopped', () => {
    const h = harness();
    h.fsm.open();
    h.fsm.up();
    const times: number[] = [];
    const origLen = () => h.sent.filter((p) => p.code === Code.ConfigureRequest).length;
    let seen = origLen();
    times.push(h.clock.now());
    for (let i = 0; i < 40 && h.fsm.state === FsmState.ReqSent; i++) {
      h.clock.advance(1000);
      if (origLen() > seen) {
        seen = origLen();
        times.push(h.clock.now());
      }
    }
    expect(times).toEqual([0, 3000, 6000, 9000, 12000, 15000, 18000, 21000, 24000, 27000]);
    expect(h.fsm.state).toBe(FsmState.Stopped);
    expect(h.clock.now()).toBe(30000);
    expect(h.proto.log.filter((a) => a === 'tlf')).toHaveLength(1);
    // Retransmissions on timeout keep the Identifier (the contents did not change).
    const ids = new Set(h.sent.filter((p) => p.code === Code.ConfigureRequest).map((p) => p.id));
    expect(ids.size).toBe(1);
    expect(h.fsm.timerRunning).toBe(false);
  });

  it('Max-Terminate: 2 Terminate-Requests, then TO- -> tlf, Closed', () => {
    const h = reach(FsmState.Opened);
    h.fsm.close('admin');
    const terms = () => h.sent.filter((p) => p.code === Code.TerminateRequest);
    expect(terms()).toHaveLength(1);
    expect(new TextDecoder().decode(terms()[0]!.data)).toBe('admin');
    h.clock.advance(2999);
    expect(terms()).toHaveLength(1);
    h.clock.advance(1);
    expect(terms()).toHaveLength(2);
    expect(h.fsm.state).toBe(FsmState.Closing);
    h.clock.advance(3000);
    expect(h.fsm.state).toBe(FsmState.Closed);
    expect(terms()).toHaveLength(2);
    expect(h.proto.log).toEqual(['tld', 'str', 'str', 'tlf']);
  });

  it('peer Terminate-Request in Opened: zrc, wait one Restart interval in Stopping, then tlf', () => {
    const h = reach(FsmState.Opened);
    h.fsm.receive(pkt(Code.TerminateRequest, 9));
    expect(h.fsm.state).toBe(FsmState.Stopping);
    h.clock.advance(2999);
    expect(h.fsm.state).toBe(FsmState.Stopping);
    h.clock.advance(1);
    expect(h.fsm.state).toBe(FsmState.Stopped);
    expect(h.proto.log).toEqual(['tld', 'sta', 'tlf']);
  });

  it('Max-Failure: after 5 Naks the peer option is Rejected, so a Nak loop ends', () => {
    const h = harness();
    h.fsm.open();
    h.fsm.up();
    h.proto.verdict = 'nak';
    const req = encodeOption(1, new Uint8Array([0x05, 0xdc]));
    const replies: number[] = [];
    for (let i = 0; i < 8; i++) {
      const n = h.sent.length;
      h.fsm.receive(pkt(Code.ConfigureRequest, 100 + i, req));
      replies.push(h.sent[n]!.code);
    }
    expect(replies).toEqual([3, 3, 3, 3, 3, 4, 4, 4]);
    expect(h.fsm.counters.maxFailureConversions).toBe(3);
    // The Reject quotes the option verbatim.
    expect(Array.from(h.sent.at(-1)!.data)).toEqual(Array.from(req));
  });

  it('an Ack resets the Max-Failure count', () => {
    const h = harness();
    h.fsm.open();
    h.fsm.up();
    const req = encodeOption(1, new Uint8Array([0x05, 0xdc]));
    h.proto.verdict = 'nak';
    for (let i = 0; i < 4; i++) h.fsm.receive(pkt(Code.ConfigureRequest, i, req));
    h.proto.verdict = 'ack';
    h.fsm.receive(pkt(Code.ConfigureRequest, 10, req));
    h.proto.verdict = 'nak';
    const n = h.sent.length;
    for (let i = 0; i < 5; i++) h.fsm.receive(pkt(Code.ConfigureRequest, 20 + i, req));
    expect(h.sent.slice(n).map((p) => p.code)).toEqual([3, 3, 3, 3, 3]);
  });
});

describe('identifier handling', () => {
  function opened() {
    const h = harness();
    h.fsm.open();
    h.fsm.up();
    return h;
  }

  it('a Configure-Ack with the wrong Identifier is discarded', () => {
    const h = opened();
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureAck, (req.id + 1) & 0xff, req.data));
    expect(h.fsm.state).toBe(FsmState.ReqSent);
    expect(h.fsm.counters.drops['stale-id']).toBe(1);
    h.fsm.receive(pkt(Code.ConfigureAck, req.id, req.data));
    expect(h.fsm.state).toBe(FsmState.AckRcvd);
  });

  it('a duplicate Configure-Ack is discarded (not the crossed-connection scr/6)', () => {
    const h = opened();
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureAck, req.id, req.data));
    expect(h.fsm.state).toBe(FsmState.AckRcvd);
    const n = h.sent.length;
    h.fsm.receive(pkt(Code.ConfigureAck, req.id, req.data));
    expect(h.fsm.state).toBe(FsmState.AckRcvd);
    expect(h.sent.length).toBe(n);
    expect(h.fsm.counters.drops['stale-id']).toBe(1);
  });

  it('a Configure-Ack whose options differ from the request is discarded', () => {
    const h = opened();
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureAck, req.id, encodeOption(1, new Uint8Array([0x05, 0xdd]))));
    expect(h.fsm.state).toBe(FsmState.ReqSent);
    expect(h.fsm.counters.drops['bad-ack']).toBe(1);
  });

  it('a Configure-Nak with a wrong Identifier is discarded; a valid one triggers a new request with a new Identifier', () => {
    const h = opened();
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureNak, (req.id + 7) & 0xff, encodeOption(1, new Uint8Array([5, 0x78]))));
    expect(h.fsm.counters.drops['stale-id']).toBe(1);
    expect(h.lastRequest().id).toBe(req.id);
    h.fsm.receive(pkt(Code.ConfigureNak, req.id, encodeOption(1, new Uint8Array([5, 0x78]))));
    expect(h.lastRequest().id).not.toBe(req.id);
    // A second Nak for the old request is stale now.
    h.fsm.receive(pkt(Code.ConfigureNak, req.id, encodeOption(1, new Uint8Array([5, 0x78]))));
    expect(h.fsm.counters.drops['stale-id']).toBe(2);
  });

  it('a Configure-Reject must quote options of our request verbatim', () => {
    const h = opened();
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureReject, req.id, encodeOption(3, new Uint8Array([1, 2]))));
    expect(h.fsm.counters.drops['bad-reject']).toBe(1);
    expect(h.lastRequest().id).toBe(req.id);
    h.fsm.receive(pkt(Code.ConfigureReject, req.id, req.data));
    expect(h.lastRequest().id).not.toBe(req.id);
  });

  it('a malformed Nak (protocol says so) is discarded without an event', () => {
    const h = opened();
    h.proto.nakValid = false;
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureNak, req.id, encodeOption(1, new Uint8Array([5]))));
    expect(h.fsm.counters.drops['bad-nak']).toBe(1);
    expect(h.lastRequest().id).toBe(req.id);
  });

  it('Configure-Request with malformed options (length 0, 1, past the end) is dropped, not answered', () => {
    for (const data of [
      new Uint8Array([1, 0]),
      new Uint8Array([1, 1, 0, 0]),
      new Uint8Array([1, 255, 0]),
      new Uint8Array([1]),
    ]) {
      const h = opened();
      const n = h.sent.length;
      h.fsm.receive(pkt(Code.ConfigureRequest, 5, data));
      expect(h.sent.length).toBe(n);
      expect(h.fsm.counters.drops['malformed-options']).toBe(1);
    }
  });

  it('Code-Reject of a Configure-Request is catastrophic (RXJ-), of an extended code it is not (RXJ+)', () => {
    const h = opened();
    h.fsm.receive(pkt(Code.CodeReject, 1, new Uint8Array([12, 1, 0, 4])));
    expect(h.fsm.state).toBe(FsmState.ReqSent);
    h.fsm.receive(pkt(Code.CodeReject, 2, new Uint8Array([1, 1, 0, 4])));
    expect(h.fsm.state).toBe(FsmState.Stopped);
    expect(h.proto.log.at(-1)).toBe('tlf');
  });

  it('an unknown code is Code-Rejected with the packet quoted, truncated to the peer MRU', () => {
    const h = opened();
    const big = new Uint8Array(2000).fill(7);
    const raw = encodeControlPacket(0x33, 9, big);
    h.fsm.receive({ code: 0x33, id: 9, data: raw.subarray(4), raw });
    const cj = h.sent.at(-1)!;
    expect(cj.code).toBe(Code.CodeReject);
    expect(cj.raw.length).toBe(1500);
    expect(Array.from(cj.data.subarray(0, 4))).toEqual([0x33, 9, (2004 >> 8) & 0xff, 2004 & 0xff]);
  });

  it('packets before the lower layer is up are dropped and counted', () => {
    const h = harness();
    h.fsm.receive(pkt(Code.ConfigureRequest, 1, new Uint8Array(0)));
    expect(h.fsm.counters.drops['not-up']).toBe(1);
    expect(h.sent).toHaveLength(0);
  });

  it('events raised from inside an action are processed after the current one', () => {
    const h = harness();
    const orig = h.proto.up.bind(h.proto);
    h.proto.up = () => {
      orig();
      h.fsm.close('from-hook');
      // Still Opened while the tlu action runs: the Close is queued.
      expect(h.fsm.state).toBe(FsmState.Opened);
    };
    h.fsm.open();
    h.fsm.up();
    const req = h.lastRequest();
    h.fsm.receive(pkt(Code.ConfigureRequest, 50, encodeOption(1, new Uint8Array([5, 0xdc]))));
    h.fsm.receive(pkt(Code.ConfigureAck, req.id, req.data));
    expect(h.fsm.state).toBe(FsmState.Closing);
    expect(h.proto.log).toEqual(['tls', 'scr', 'sca', 'tlu', 'tld', 'str']);
  });
});
