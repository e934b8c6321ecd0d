import { describe, it, expect } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { VpnError } from '../util/errors.js';
import { fromHex } from '../util/decode.js';
import { FakeVerifier } from './auth/testing.js';
import type { AuthHost, AuthMethod, AuthProtocol } from './auth/types.js';
import type { AddressAllocator } from '../pool/types.js';
import { decodeFrame, encodeFrame } from './frame.js';
import { decodeControlPacket, encodeControlPacket } from './packet.js';
import { Code, PPP_COMPRESSED, PPP_IPCP, PPP_IPV4, PPP_IPV6, PPP_LCP } from './protocols.js';
import { Phase, PppSession, type AuthFactory, type PppDropReason, type ServerSessionOptions } from './session.js';
import { PppLink, frameLabel, opt, seededRandom } from './testing.js';

const verifier = new FakeVerifier({ alice: { password: 'pw' } });

function allocator(): AddressAllocator & { live: number } {
  let next = 10;
  const a = {
    live: 0,
    allocate: () => {
      a.live++;
      let released = false;
      return {
        ok: true as const,
        lease: {
          address: `198.18.10.${next++}`,
          release: () => {
            if (!released) a.live--;
            released = true;
          },
        },
      };
    },
  };
  return a;
}

function upLink(opts: { mppe?: 'deny' | 'require'; method?: AuthMethod } = {}) {
  const l = new PppLink(
    {
      tunnel: 'test',
      peer: '198.18.0.2',
      auth: { methods: [opts.method ?? 'mschapv2'], verifier, serverName: 'gw' },
      ipcp: { allocator: allocator(), localAddress: '198.18.10.1' },
      mppe: { policy: opts.mppe ?? 'deny', strengths: [128] },
      echo: { intervalMs: 0 },
      random: seededRandom(3),
    },
    {
      tunnel: 'test',
      peer: '198.18.0.1',
      auth: { methods: [opts.method ?? 'mschapv2'], credentials: { username: 'alice', password: 'pw' } },
      mppe: { policy: opts.mppe ?? 'deny', strengths: [128] },
      echo: { intervalMs: 0 },
      random: seededRandom(4),
    },
  );
  return l;
}

const lcp = (code: number, id: number, data: Uint8Array | number[] = []) => encodeFrame(PPP_LCP, encodeControlPacket(code, id, new Uint8Array(data)));

describe('malformed and unexpected input: counted drop or the RFC reject, never an exception', () => {
  type Expect = { drop: PppDropReason } | { fsmDrop: string } | { reply: string } | { none: true };
  const cases: [string, Uint8Array, Expect][] = [
    ['empty frame', new Uint8Array(0), { drop: 'frame-malformed' }],
    ['only ff 03', fromHex('ff03'), { drop: 'frame-malformed' }],
    ['only ff', fromHex('ff'), { drop: 'frame-malformed' }],
    ['ff with a bad Control octet', fromHex('ff05c02101010004'), { drop: 'frame-malformed' }],
    ['protocol with an even low octet', fromHex('ff03c02001010004'), { drop: 'frame-malformed' }],
    ['protocol cut in half', fromHex('ff03c0'), { drop: 'frame-malformed' }],
    ['LCP packet shorter than its header', fromHex('ff03c021010100'), { drop: 'packet-malformed' }],
    ['LCP Length longer than the frame', fromHex('ff03c02109010010aabbccdd'), { drop: 'packet-malformed' }],
    ['LCP Length below the header size', fromHex('ff03c0210901000200'), { drop: 'packet-malformed' }],
    ['LCP Echo-Request, Length excludes padding', fromHex('ff03c021090100081122334400000000'), { reply: 'LCP 10' }],
    ['LCP unknown code', lcp(0x30, 1, [1, 2]), { reply: 'LCP 7' }],
    ['LCP Configure-Request, option Length 0', lcp(Code.ConfigureRequest, 1, [1, 0, 5, 0xdc]), { fsmDrop: 'malformed-options' }],
    ['LCP Configure-Request, option Length 1', lcp(Code.ConfigureRequest, 1, [1, 1, 5, 0xdc]), { fsmDrop: 'malformed-options' }],
    ['LCP Configure-Request, option Length 255 past the end', lcp(Code.ConfigureRequest, 1, [0x63, 0xff, 1, 2, 3]), { fsmDrop: 'malformed-options' }],
    ['LCP Configure-Ack with a stale Identifier', lcp(Code.ConfigureAck, 0x99, [5, 6, 1, 2, 3, 4]), { fsmDrop: 'stale-id' }],
    ['LCP Code-Reject without data', lcp(Code.CodeReject, 1), { fsmDrop: 'bad-code-reject' }],
    ['LCP Protocol-Reject without a protocol', lcp(Code.ProtocolReject, 1, [0x80]), { none: true }],
    ['unknown protocol 0x4021', encodeFrame(0x4021, new Uint8Array([1, 2, 3])), { reply: 'LCP 8' }],
    ['IPX (0x002b), not configured', encodeFrame(0x002b, new Uint8Array([1])), { reply: 'LCP 8' }],
    ['IPCP packet cut short', fromHex('ff038021010100'), { drop: 'packet-malformed' }],
    ['IPCP unknown code', encodeFrame(PPP_IPCP, encodeControlPacket(0x0e, 1)), { reply: 'IPCP 7' }],
    ['IPV6CP while IPV6CP is not enabled', encodeFrame(0x8057, encodeControlPacket(1, 1)), { reply: 'LCP 8' }],
    ['CCP while MPPE is denied', encodeFrame(0x80fd, encodeControlPacket(1, 1)), { reply: 'LCP 8' }],
    ['compressed datagram without CCP', encodeFrame(PPP_COMPRESSED, new Uint8Array([0x90, 0x01])), { reply: 'LCP 8' }],
    ['IPv6 datagram without IPV6CP', encodeFrame(PPP_IPV6, new Uint8Array([0x60])), { reply: 'LCP 8' }],
  ];

  for (const [name, frame, want] of cases) {
    it(name, async () => {
      const l = upLink();
      await l.connect();
      expect(l.rec.server.up).toBeDefined();
      const before = l.trace.length;
      const drops = { ...l.server.counters.drops };
      const fsmDrops = { ...l.server.snapshot().LCP!.drops };
      l.inject('toServer', frame);
      await l.settle();
      const replies = l.trace.slice(before).filter((t) => t.dir === 'toClient').map((t) => frameLabel(t.frame));
      if ('drop' in want) {
        expect(l.server.counters.drops[want.drop]).toBe(drops[want.drop] + 1);
        expect(replies).toEqual([]);
      } else if ('fsmDrop' in want) {
        const after = l.server.snapshot().LCP!.drops;
        expect(after[want.fsmDrop]).toBe((fsmDrops[want.fsmDrop] ?? 0) + 1);
        expect(replies).toEqual([]);
      } else if ('reply' in want) {
        expect(replies).toEqual([want.reply]);
      } else {
        expect(replies).toEqual([]);
      }
      // The session survives all of it.
      expect(l.rec.server.down).toBeUndefined();
      expect(l.server.phase).toBe(Phase.Network);
    });
  }

  it('a Protocol-Reject quotes the rejected protocol and information', async () => {
    const l = upLink();
    await l.connect();
    l.inject('toServer', encodeFrame(0x4021, new Uint8Array([0xde, 0xad])));
    await l.settle();
    const f = decodeFrame(l.trace.at(-1)!.frame);
    const p = f.ok ? decodeControlPacket(f.value.info) : undefined;
    expect(p?.ok && Buffer.from(p.value.data).toString('hex')).toBe('4021dead');
  });

  it('every truncated prefix of every frame of a real session is handled without throwing', async () => {
    const l = upLink();
    await l.connect();
    const frames = l.trace.filter((t) => t.dir === 'toServer').map((t) => t.frame);
    const victim = upLink();
    victim.client.open();
    victim.server.open();
    for (const f of frames) for (let n = 0; n <= f.length; n++) expect(() => victim.server.input(f.subarray(0, n))).not.toThrow();
    expect(victim.server.counters.drops['internal-error']).toBe(0);
  });

  it('random frames (seeded, bounded) never throw and never crash the session', async () => {
    const l = upLink();
    await l.connect();
    const rnd = seededRandom(99);
    const prefixes = [[], [0xff, 0x03], [0xc0, 0x21], [0xff, 0x03, 0xc0, 0x21], [0x80, 0x21], [0xff, 0x03, 0x80, 0x21], [0x21]];
    for (let i = 0; i < 3000; i++) {
      const len = rnd(1)[0]! % 40;
      const body = rnd(len);
      const pre = prefixes[i % prefixes.length]!;
      const f = new Uint8Array(pre.length + body.length);
      f.set(pre);
      f.set(body, pre.length);
      expect(() => l.server.input(f)).not.toThrow();
    }
    expect(l.server.counters.drops['internal-error']).toBe(0);
  });
});

describe('session behaviour', () => {
  it('a server without authentication methods is a configuration error', () => {
    expect(
      () =>
        new PppSession({ role: 'server', tunnel: 'test', peer: 'x', send: () => {}, auth: { methods: [], verifier, serverName: 'gw' } } as ServerSessionOptions),
    ).toThrow(VpnError);
  });

  it('NCP packets before the Network phase are silently discarded (RFC 1661 3.4)', () => {
    const sent: Uint8Array[] = [];
    const s = new PppSession({ role: 'server', tunnel: 'test', peer: 'x', send: (f) => sent.push(f), clock: new VirtualClock(), auth: { methods: ['pap'], verifier, serverName: 'gw' } });
    s.open();
    const n = sent.length;
    s.input(encodeFrame(PPP_IPCP, encodeControlPacket(1, 1, opt(3, 0, 0, 0, 0))));
    s.input(encodeFrame(PPP_IPV4, new Uint8Array([0x45])));
    s.input(encodeFrame(0x4021, new Uint8Array([1])));
    expect(sent.length).toBe(n);
    expect(s.counters.drops['wrong-phase']).toBe(3);
  });

  it('Nak loops end: a peer insisting on an MRU below the floor is Nak\'d 5 times, then Rejected', () => {
    const sent: Uint8Array[] = [];
    const s = new PppSession({ role: 'server', tunnel: 'test', peer: 'x', send: (f) => sent.push(f), clock: new VirtualClock(), auth: { methods: ['pap'], verifier, serverName: 'gw' } });
    s.open();
    const replies: number[] = [];
    for (let i = 0; i < 8; i++) {
      sent.length = 0;
      s.input(lcp(Code.ConfigureRequest, i, [1, 4, 0, 32]));
      replies.push(sent.map((f) => frameLabel(f)).filter((x) => x !== 'LCP 1').map((x) => Number(x.split(' ')[1]))[0]!);
    }
    expect(replies).toEqual([3, 3, 3, 3, 3, 4, 4, 4]);
  });

  it('a looped-back link (our frames come straight back) is detected and given up', async () => {
    const clock = new VirtualClock();
    let s: PppSession;
    const downs: string[] = [];
    s = new PppSession({
      role: 'client',
      tunnel: 'test',
      peer: 'loop',
      clock,
      random: seededRandom(5),
      send: (f) => s.input(f),
      auth: { methods: ['pap'], credentials: { username: 'a', password: 'b' } },
    });
    s.on('down', (d) => downs.push(d.reason));
    s.open();
    for (let i = 0; i < 100 && downs.length === 0; i++) clock.advance(1000);
    expect(downs).toEqual(['loopback']);
  });

  it('authentication that never completes ends in auth-timeout', async () => {
    const silent: AuthFactory = {
      server: (method: AuthMethod, host: AuthHost): AuthProtocol => ({ protocol: 0xc023, method, start: () => {}, input: () => {}, stop: () => {} }),
      client: (method: AuthMethod): AuthProtocol => ({ protocol: 0xc023, method, start: () => {}, input: () => {}, stop: () => {} }),
    };
    const l = new PppLink(
      { tunnel: 'test', peer: 'a', auth: { methods: ['pap'], verifier, serverName: 'gw' }, authFactory: silent, authTimeoutMs: 5_000, echo: { intervalMs: 0 } },
      { tunnel: 'test', peer: 'b', auth: { methods: ['pap'], credentials: { username: 'a', password: 'b' } }, authFactory: silent, echo: { intervalMs: 0 } },
    );
    await l.connect();
    expect(l.server.phase).toBe(Phase.Authenticate);
    await l.run(5_000);
    expect(l.rec.server.down?.reason ?? l.server.downReason?.reason).toBe('auth-timeout');
  });

  it('an LCP renegotiation on an open link ends the session (lcp-renegotiation) and releases the lease', async () => {
    const l = upLink();
    await l.connect();
    l.inject('toServer', lcp(Code.ConfigureRequest, 0x77, [5, 6, 9, 9, 9, 9]));
    await l.run(7_000);
    expect(l.rec.server.down?.reason).toBe('lcp-renegotiation');
    expect(l.rec.server.down?.wasUp).toBe(true);
  });

  it('with MPPE in force, plain IP frames are dropped (unencrypted) and compressed ones delivered', async () => {
    const l = upLink({ mppe: 'require' });
    await l.connect();
    expect(l.rec.server.up?.mppe?.bits).toBe(128);
    l.inject('toServer', encodeFrame(PPP_IPV4, new Uint8Array([0x45, 0])));
    l.inject('toServer', encodeFrame(PPP_COMPRESSED, new Uint8Array([0x90, 0x00, 1, 2])));
    await l.settle();
    expect(l.server.counters.drops.unencrypted).toBe(1);
    expect(l.rec.server.data.map((d) => d.protocol)).toEqual([PPP_COMPRESSED]);
    expect(l.server.sendData(PPP_IPV4, new Uint8Array([0x45]))).toBe(false);
  });

  it('with MPPE required, IPCP starts once CCP has opened (pppd Terminate-Acks an earlier IPCP Configure-Request)', async () => {
    const l = upLink({ mppe: 'require' });
    await l.connect();
    expect(l.rec.server.up?.mppe).toBeDefined();
    const trace = l.trace.map((t) => `${t.dir === 'toClient' ? 'server' : 'client'} ${frameLabel(t.frame)}`);
    const firstIpcp = trace.findIndex((x) => x.endsWith(' IPCP 1'));
    // Both CCP Configure-Acks went out before either side's first IPCP Configure-Request.
    expect(trace.indexOf('server CCP 2')).toBeGreaterThanOrEqual(0);
    expect(trace.indexOf('client CCP 2')).toBeGreaterThanOrEqual(0);
    expect(firstIpcp).toBeGreaterThan(Math.max(trace.indexOf('server CCP 2'), trace.indexOf('client CCP 2')));
    expect(trace.filter((x) => / IPCP 6$/.test(x))).toEqual([]);
  });

  it('with MPPE required, a peer that starts IPCP while CCP negotiates starts ours at once (no restart interval lost)', async () => {
    // The client holds nothing back (MPPE allowed, not required): its IPCP request reaches the server before
    // the client's CCP Configure-Ack does, while the server holds its IPCP for CCP.
    const l = new PppLink(
      { tunnel: 'test', peer: 'c', auth: { methods: ['mschapv2'], verifier, serverName: 'gw' }, ipcp: { allocator: allocator(), localAddress: '198.18.10.1' }, mppe: { policy: 'require', strengths: [128] }, echo: { intervalMs: 0 }, random: seededRandom(3) },
      { tunnel: 'test', peer: 's', auth: { methods: ['mschapv2'], credentials: { username: 'alice', password: 'pw' } }, mppe: { policy: 'allow', strengths: [128] }, echo: { intervalMs: 0 }, random: seededRandom(4) },
    );
    await l.connect();
    const trace = l.trace.map((t) => `${t.dir === 'toClient' ? 'server' : 'client'} ${frameLabel(t.frame)}`);
    expect(trace.indexOf('client IPCP 1')).toBeLessThan(trace.indexOf('client CCP 2'));
    // Up without any time passing: the client's first IPCP request was not dropped (it would be retransmitted only after the restart timer).
    expect(l.rec.server.up?.mppe?.bits).toBe(128);
    expect(l.rec.server.upAt).toBe(0);
    expect(l.rec.client.upAt).toBe(0);
  });

  it('with MPPE on, the MTU we send with is the peer\'s MRU less the MPPE expansion (RFC 3078 section 3)', async () => {
    const plain = upLink();
    await plain.connect();
    expect(plain.rec.server.up?.mtu).toBe(1500);
    const enc = upLink({ mppe: 'require' });
    await enc.connect();
    expect(enc.rec.server.up?.mtu).toBe(1496);
    expect(enc.rec.client.up?.mtu).toBe(1496);
  });

  it('a listener that throws does not escape input(): counted, logged, the session closes cleanly', async () => {
    const l = upLink();
    await l.connect();
    l.server.on('data', () => {
      throw new Error('listener bug');
    });
    l.inject('toServer', encodeFrame(PPP_IPV4, new Uint8Array([0x45, 0])));
    await expect(l.settle()).resolves.toBeUndefined();
    expect(l.server.counters.drops['internal-error']).toBe(1);
    expect(l.server.downReason).toEqual({ reason: 'internal-error', detail: 'listener bug' });
    await l.run(3_000);
    expect(l.rec.server.down?.reason).toBe('internal-error');
  });

  it('emits phase transitions in RFC order and down exactly once', async () => {
    const l = upLink();
    await l.connect();
    l.server.close('admin');
    l.server.close('admin');
    l.server.lowerDown();
    await l.run(5_000);
    expect(l.rec.server.phases).toEqual([Phase.Establish, Phase.Authenticate, Phase.Network, Phase.Terminate, Phase.Dead]);
    const downs: unknown[] = [];
    l.server.on('down', (d) => downs.push(d));
    l.server.close('admin');
    l.server.lowerDown();
    expect(downs).toEqual([]);
    const dead = l.server.counters.drops.dead;
    l.server.input(lcp(Code.EchoRequest, 1, [0, 0, 0, 0]));
    expect(l.server.counters.drops.dead).toBe(dead + 1);
  });
});
