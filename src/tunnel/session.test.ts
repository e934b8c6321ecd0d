/**
 * The pieces of the tunnel session glue that stand on their own: a
 * session's loggers learning the user after the fact (pino children copy
 * their bindings when made), the LCP step of a teardown, the peer's form.
 * The glue as a whole runs in src/sstp/server-session.test.ts,
 * src/pptp/service.test.ts and, with real logs, test/ops-logs.e2e.test.ts.
 */
import { describe, it, expect } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { createLogger } from '../util/log.js';
import { Code, PPP_LCP, PppSession, Phase, decodeFrame } from '../ppp/index.js';
import { SessionLog, TEARDOWN_LCP_WAIT_MS, formatPeer, terminatePpp } from './session.js';

function collecting() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { log, lines };
}

describe('SessionLog', () => {
  it('binds a later binding on the session logger and on every logger made from it, before or after, at any depth', () => {
    const { log, lines } = collecting();
    const service = log.child({ protocol: 'pptp' });
    const s = new SessionLog(service, { session: 'S1', peer: '198.18.0.2:1723' });
    const control = s.log.child({ pptp: 'pptp-pac' });
    const call = control.child({ callId: 7 });
    const ppp = s.log.child({ ppp: 'S1' });
    s.log.info('before');
    call.info('call before');
    s.bind({ user: 'alice' });
    const later = ppp.child({ machine: 'IPCP' });
    for (const [l, m] of [[s.log, 'session'], [control, 'control'], [call, 'call'], [ppp, 'ppp'], [later, 'later']] as const) l.info(m);
    service.info('service');
    expect(lines.map((l) => [l.msg, l.user])).toEqual([
      ['before', undefined],
      ['call before', undefined],
      ['session', 'alice'],
      ['control', 'alice'],
      ['call', 'alice'],
      ['ppp', 'alice'],
      ['later', 'alice'],
      // The service's own lines are not the session's.
      ['service', undefined],
    ]);
    expect(lines[4]).toMatchObject({ session: 'S1', peer: '198.18.0.2:1723', pptp: 'pptp-pac', callId: 7, protocol: 'pptp' });
  });

  it('binds a key once: the same value again adds nothing to the line', () => {
    const raw: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (s: string) => void raw.push(s) } });
    const s = new SessionLog(log, { session: 'S2' });
    const child = s.log.child({ ppp: 'S2' });
    s.bind({ user: 'bob' });
    s.bind({ user: 'bob' });
    child.info('x');
    expect(raw[0]!.match(/"user":"bob"/g)).toHaveLength(1);
  });

  it('still redacts secret-named bindings of the session loggers', () => {
    const { log, lines } = collecting();
    const s = new SessionLog(log, { session: 'S3' });
    s.log.child({ sharedSecret: 'hunter2' }).info('x');
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('chains a parent logger\'s own onChild hook', () => {
    const { log } = collecting();
    const seen: unknown[] = [];
    const parent = log.child({ a: 1 });
    parent.onChild = (c) => void seen.push(c);
    const s = new SessionLog(parent, { session: 'S4' });
    const c = s.log.child({ b: 2 });
    expect(seen).toEqual([s.log, c]);
  });
});

describe('terminatePpp', () => {
  function ppp(clock: VirtualClock, sent: Uint8Array[]) {
    return new PppSession({
      role: 'client',
      send: (f) => void sent.push(f),
      clock,
      tunnel: 'test',
      peer: 'x',
      auth: { methods: ['pap'], credentials: { username: 'u', password: 'p' } },
      echo: { intervalMs: 0 },
    });
  }

  it('hangs up at once when PPP is not running', () => {
    const clock = new VirtualClock();
    let hung = 0;
    expect(terminatePpp(undefined, 'bye', clock, () => hung++)).toBeUndefined();
    const p = ppp(clock, []);
    expect(p.phase).toBe(Phase.Dead);
    expect(terminatePpp(p, 'bye', clock, () => hung++)).toBeUndefined();
    expect(hung).toBe(2);
  });

  it('sends LCP Terminate-Request and hangs up after the wait when the peer does not answer', () => {
    const clock = new VirtualClock();
    const sent: Uint8Array[] = [];
    const p = ppp(clock, sent);
    p.open();
    let hung = 0;
    sent.length = 0;
    const wait = terminatePpp(p, 'bye', clock, () => hung++);
    expect(wait).toBeDefined();
    // LCP (RFC 1661 5.5): Terminate-Request, code 5.
    const lcp = sent.map((f) => decodeFrame(f)).flatMap((r) => (r.ok && r.value.protocol === PPP_LCP ? [r.value.info[0]] : []));
    expect(lcp).toEqual([Code.TerminateRequest]);
    clock.advance(TEARDOWN_LCP_WAIT_MS - 1);
    expect(hung).toBe(0);
    clock.advance(1);
    expect(hung).toBe(1);
  });
});

describe('formatPeer', () => {
  it('is ip:port, IPv6 in brackets', () => {
    expect(formatPeer({ address: '198.18.0.2', port: 1723 })).toBe('198.18.0.2:1723');
    expect(formatPeer({ address: '2001:db8::1', port: 443 })).toBe('[2001:db8::1]:443');
  });
});
