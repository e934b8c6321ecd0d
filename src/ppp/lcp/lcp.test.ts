import { describe, it, expect } from 'vitest';
import { decodeOptions } from '../packet.js';
import { FsmState } from '../fsm.js';
import { Code } from '../protocols.js';
import { RecordingHost, hexOf, opt, packet } from '../testing.js';
import { Lcp, type LcpConfig } from './lcp.js';

const PEER_MAGIC = [0x11, 0x22, 0x33, 0x44];

function lcp(over: Partial<LcpConfig> = {}) {
  const h = new RecordingHost();
  const cfg: LcpConfig = {
    role: 'server',
    mru: 1500,
    maxMru: 1500,
    authMethods: ['mschapv2', 'chap-md5'],
    requestPfc: false,
    requestAcfc: false,
    echoIntervalMs: 0,
    echoFailures: 3,
    magicLoopLimit: 5,
    ...over,
  };
  const l = new Lcp(cfg, h);
  l.fsm.open();
  l.fsm.up();
  return { l, h };
}

/** Our last Configure-Request's options as [type, hex data]. */
function requested(h: RecordingHost): [number, string][] {
  const d = decodeOptions(h.last(Code.ConfigureRequest)!.data);
  if (!d.ok) throw new Error('bad request');
  return d.value.map((o) => [o.type, hexOf(o.data)]);
}

function magicOf(h: RecordingHost): number {
  const m = requested(h).find(([t]) => t === 5);
  return m ? parseInt(m[1], 16) : 0;
}

function opened(over: Partial<LcpConfig> = {}, peerOptions: Uint8Array[] = [opt(5, ...PEER_MAGIC)]) {
  const r = lcp(over);
  const req = r.h.last(Code.ConfigureRequest)!;
  r.l.fsm.receive(packet(Code.ConfigureAck, req.id, req.data));
  r.l.fsm.receive(packet(Code.ConfigureRequest, 0x40, ...peerOptions));
  expect(r.l.fsm.state).toBe(FsmState.Opened);
  expect(r.h.events).toEqual(['up']);
  return r;
}

describe('LCP Configure-Request we send (RFC 1661 section 6)', () => {
  it('server: Authentication-Protocol first configured method, Magic-Number; no MRU at the default 1500', () => {
    const { h } = lcp();
    const opts = requested(h);
    expect(opts.map(([t]) => t)).toEqual([3, 5]);
    expect(opts[0]![1]).toBe('c22381');
    expect(magicOf(h)).not.toBe(0);
  });

  it('requests a smaller MRU when the tunnel carries less, and PFC/ACFC when configured', () => {
    const { h } = lcp({ mru: 1500, maxMru: 1400, requestPfc: true, requestAcfc: true, role: 'client' });
    expect(requested(h).map(([t, d]) => (t === 5 ? [t] : [t, d]))).toEqual([[1, '0578'], [5], [7, ''], [8, '']]);
  });

  it('method encodings: PAP c023, CHAP-MD5 c223 05, MS-CHAPv2 c223 81, EAP c227', () => {
    for (const [m, hex] of [
      ['pap', 'c023'],
      ['chap-md5', 'c22305'],
      ['mschapv2', 'c22381'],
      ['eap-mschapv2', 'c227'],
    ] as const) {
      const { h } = lcp({ authMethods: [m] });
      expect(requested(h)[0]).toEqual([3, hex]);
    }
  });
});

describe('LCP judging the peer request', () => {
  function judge(peer: Uint8Array[], over: Partial<LcpConfig> = {}) {
    const r = lcp(over);
    r.l.fsm.receive(packet(Code.ConfigureRequest, 7, ...peer));
    return { ...r, reply: r.h.last() };
  }

  it('acknowledges MRU, ACCM, Magic-Number, PFC and ACFC verbatim', () => {
    const peer = [opt(1, 0x05, 0x78), opt(2, 0, 0, 0, 0), opt(5, ...PEER_MAGIC), opt(7), opt(8)];
    const { reply, l, h } = judge(peer);
    expect(reply?.code).toBe(Code.ConfigureAck);
    expect(reply?.id).toBe(7);
    expect(hexOf(reply?.data)).toBe(peer.map(hexOf).join(''));
    const req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureAck, req.id, req.data));
    expect(l.negotiated).toMatchObject({ peerMru: 1400, mtu: 1400, pfc: true, acfc: true, peerMagic: 0x11223344, auth: 'mschapv2' });
  });

  it('clamps what we send to the tunnel even when the peer can receive more', () => {
    const { l, h } = judge([opt(1, 0x10, 0x00)], { maxMru: 1400 });
    const req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureAck, req.id, req.data));
    expect(l.negotiated.peerMru).toBe(4096);
    expect(l.negotiated.mtu).toBe(1400);
  });

  it('Naks an MRU below the floor with the floor (128)', () => {
    const { reply } = judge([opt(1, 0, 64)]);
    expect(reply?.code).toBe(Code.ConfigureNak);
    expect(hexOf(reply?.data)).toBe('01040080');
  });

  it('rejects a known option with the wrong length, unknown options, and a repeated option', () => {
    const bad = opt(1, 5);
    const callback = opt(13, 6);
    const mrru = opt(17, 0x06, 0x4e);
    const ed = opt(19, 1, 0xaa, 0xbb);
    const { reply } = judge([opt(5, ...PEER_MAGIC), bad, callback, mrru, ed, opt(5, 9, 9, 9, 9)]);
    expect(reply?.code).toBe(Code.ConfigureReject);
    expect(hexOf(reply?.data)).toBe([bad, callback, mrru, ed, opt(5, 9, 9, 9, 9)].map(hexOf).join(''));
  });

  it('server: rejects an Authentication-Protocol (a gateway does not authenticate itself)', () => {
    const { reply } = judge([opt(3, 0xc0, 0x23)]);
    expect(reply?.code).toBe(Code.ConfigureReject);
    expect(hexOf(reply?.data)).toBe('0304c023');
  });

  it('client: Acks a method it accepts, Naks another with its first preference, rejects when it accepts none', () => {
    const client = { role: 'client' as const, authMethods: ['mschapv2', 'pap'] as const };
    expect(judge([opt(3, 0xc0, 0x23)], { ...client, authMethods: ['mschapv2', 'pap'] }).reply?.code).toBe(Code.ConfigureAck);
    const n = judge([opt(3, 0xc2, 0x23, 0x05)], { ...client, authMethods: ['mschapv2', 'pap'] });
    expect(n.reply?.code).toBe(Code.ConfigureNak);
    expect(hexOf(n.reply?.data)).toBe('0305c22381');
    // MS-CHAPv1 (0x80) and SPAP-like protocols are not ours either.
    expect(hexOf(judge([opt(3, 0xc2, 0x23, 0x80)], { ...client, authMethods: ['mschapv2'] }).reply?.data)).toBe('0305c22381');
    expect(judge([opt(3, 0xc0, 0x23)], { ...client, authMethods: [] }).reply?.code).toBe(Code.ConfigureReject);
  });

  it('Magic-Number zero is always Nak\'d with a non-zero value (RFC 1661 6.4)', () => {
    const { reply, h } = judge([opt(5, 0, 0, 0, 0)]);
    expect(reply?.code).toBe(Code.ConfigureNak);
    const suggested = parseInt(hexOf(reply?.data).slice(4), 16);
    expect(suggested).not.toBe(0);
    expect(suggested).not.toBe(magicOf(h));
  });

  it('our own Magic-Number back: Nak with a different one, and give up (loopback) past the bound', () => {
    const { l, h } = lcp({ magicLoopLimit: 2 });
    const mine = magicOf(h);
    const m = [mine >>> 24, (mine >>> 16) & 255, (mine >>> 8) & 255, mine & 255];
    for (let i = 0; i < 3; i++) {
      l.fsm.receive(packet(Code.ConfigureRequest, 20 + i, opt(5, ...m)));
      expect(h.last()?.code).toBe(Code.ConfigureNak);
      expect(parseInt(hexOf(h.last()?.data).slice(4), 16)).not.toBe(mine);
    }
    expect(l.counters.loopSuspicions).toBe(3);
    expect(h.events).toEqual(['fail:loopback']);
  });
});

describe('LCP applying the peer replies', () => {
  it('server: takes a Nak\'d method it offers, else the next untried, else fails no-common-auth', () => {
    const { l, h } = lcp({ authMethods: ['eap-mschapv2', 'pap', 'mschapv2'] });
    let req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(3, 0xc2, 0x23, 0x81)));
    expect(requested(h)[0]).toEqual([3, 'c22381']);
    req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(3, 0xc2, 0x23, 0x05)));
    expect(requested(h)[0]).toEqual([3, 'c023']);
    req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(3, 0xc2, 0x23, 0x05)));
    expect(h.events).toEqual(['fail:no-common-auth']);
  });

  it('server: a Reject of Authentication-Protocol fails peer-refused-auth', () => {
    const { l, h } = lcp();
    const req = h.last(Code.ConfigureRequest)!;
    const auth = decodeOptions(req.data);
    if (!auth.ok) throw new Error();
    l.fsm.receive(packet(Code.ConfigureReject, req.id, auth.value[0]!.raw));
    expect(h.events).toEqual(['fail:peer-refused-auth']);
  });

  it('MRU: adopts a Nak within what the tunnel carries, ignores one beyond it; a Reject drops the option', () => {
    const { l, h } = lcp({ mru: 1400, maxMru: 1400 });
    let req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(1, 0x04, 0xb0)));
    expect(requested(h)[0]).toEqual([1, '04b0']);
    req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(1, 0x23, 0x28)));
    expect(requested(h)[0]).toEqual([1, '04b0']);
    req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureReject, req.id, opt(1, 0x04, 0xb0)));
    expect(requested(h).map(([t]) => t)).toEqual([3, 5]);
  });

  it('Magic-Number: a Nak carrying the number we suggested means a loop; a new number is chosen either way', () => {
    const { l, h } = lcp();
    l.fsm.receive(packet(Code.ConfigureRequest, 9, opt(5, 0, 0, 0, 0)));
    const suggested = hexOf(h.last(Code.ConfigureNak)?.data).slice(4);
    const before = magicOf(h);
    const req = h.last(Code.ConfigureRequest)!;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(5, ...Buffer.from(suggested, 'hex'))));
    expect(l.counters.loopSuspicions).toBe(1);
    const after = magicOf(h);
    expect(after).not.toBe(before);
    expect(after).not.toBe(parseInt(suggested, 16));
  });

  it('a malformed Nak (known option, wrong length) is discarded', () => {
    const { l, h } = lcp();
    const req = h.last(Code.ConfigureRequest)!;
    const n = h.sent.length;
    l.fsm.receive(packet(Code.ConfigureNak, req.id, opt(5, 1, 2)));
    expect(h.sent.length).toBe(n);
    expect(l.fsm.counters.drops['bad-nak']).toBe(1);
  });
});

describe('LCP codes 8-13 and the keepalive', () => {
  it('Echo-Request is answered in Opened only, with our Magic-Number and the same data', () => {
    const { l, h } = lcp();
    l.fsm.receive(packet(Code.EchoRequest, 3, PEER_MAGIC, [0x61, 0x62]));
    expect(h.last()?.code).toBe(Code.ConfigureRequest); // Req-Sent: no reply
    const o = opened();
    o.l.fsm.receive(packet(Code.EchoRequest, 3, PEER_MAGIC, [0x61, 0x62]));
    const reply = o.h.last();
    expect(reply?.code).toBe(Code.EchoReply);
    expect(reply?.id).toBe(3);
    const mine = o.l.negotiated.localMagic;
    expect(hexOf(reply?.data)).toBe(mine.toString(16).padStart(8, '0') + '6162');
  });

  it('an Echo-Reply is truncated to the peer MRU', () => {
    const o = opened({}, [opt(1, 0x00, 0x80), opt(5, ...PEER_MAGIC)]);
    o.l.fsm.receive(packet(Code.EchoRequest, 4, PEER_MAGIC, new Uint8Array(1000)));
    expect(o.h.last()?.raw.length).toBe(128);
  });

  it('Echo/Discard without a Magic-Number field are dropped and counted', () => {
    const o = opened();
    const n = o.h.sent.length;
    o.l.fsm.receive(packet(Code.EchoRequest, 5, [1, 2]));
    expect(o.h.sent.length).toBe(n);
    expect(o.l.counters.malformed).toBe(1);
  });

  it('keepalive: `failures` unanswered Echo-Requests one interval apart, then echo-timeout; a reply resets the count', () => {
    const o = opened({ echoIntervalMs: 1000, echoFailures: 2 });
    o.h.clock.advance(1000);
    expect(o.h.last()?.code).toBe(Code.EchoRequest);
    const mine = o.l.negotiated.localMagic;
    expect(hexOf(o.h.last()?.data)).toBe(mine.toString(16).padStart(8, '0'));
    o.h.clock.advance(1000);
    o.l.fsm.receive(packet(Code.EchoReply, o.h.last()!.id, PEER_MAGIC));
    expect(o.l.counters.echoRepliesReceived).toBe(1);
    o.h.clock.advance(2000);
    expect(o.h.events).toEqual(['up']);
    o.h.clock.advance(1000);
    expect(o.h.events).toEqual(['up', 'echo-timeout']);
    expect(o.l.counters.echoRequestsSent).toBe(4);
  });

  it('an Echo-Reply carrying our own Magic-Number does not count as an answer', () => {
    const o = opened({ echoIntervalMs: 1000, echoFailures: 1 });
    o.h.clock.advance(1000);
    const mine = o.l.negotiated.localMagic;
    o.l.fsm.receive(packet(Code.EchoReply, o.h.last()!.id, [mine >>> 24, (mine >>> 16) & 255, (mine >>> 8) & 255, mine & 255]));
    expect(o.l.counters.echoRepliesReceived).toBe(0);
    o.h.clock.advance(1000);
    expect(o.h.events).toContain('echo-timeout');
  });

  it('Protocol-Reject: in Opened the upper layer hears of it; of LCP itself it is catastrophic; otherwise discarded', () => {
    const early = lcp();
    early.l.fsm.receive(packet(Code.ProtocolReject, 1, [0x80, 0x57]));
    expect(early.h.events).toEqual([]);
    const o = opened();
    o.l.fsm.receive(packet(Code.ProtocolReject, 2, [0x80, 0x57, 1, 2, 3]));
    expect(o.h.events).toEqual(['up', 'protocol-rejected:8057']);
    expect(o.l.fsm.state).toBe(FsmState.Opened);
    o.l.fsm.receive(packet(Code.ProtocolReject, 3, [0xc0, 0x21]));
    expect(o.l.fsm.state).toBe(FsmState.Stopping);
    expect(o.h.last()?.code).toBe(Code.TerminateRequest);
  });

  it('sendProtocolReject only in Opened, quoting the protocol and the information truncated to the peer MRU', () => {
    const early = lcp();
    expect(early.l.sendProtocolReject(0x1234, new Uint8Array(4))).toBe(false);
    const o = opened({}, [opt(1, 0x01, 0x00), opt(5, ...PEER_MAGIC)]);
    expect(o.l.sendProtocolReject(0x1235, new Uint8Array(1000).fill(0xab))).toBe(true);
    const pr = o.h.last()!;
    expect(pr.code).toBe(Code.ProtocolReject);
    expect(pr.raw.length).toBe(256);
    expect(hexOf(pr.data.subarray(0, 4))).toBe('1235abab');
  });

  it('Discard-Request is counted; Identification and Time-Remaining are ignored; an unknown code is Code-Rejected', () => {
    const o = opened();
    const n = o.h.sent.length;
    o.l.fsm.receive(packet(Code.DiscardRequest, 6, PEER_MAGIC));
    o.l.fsm.receive(packet(Code.Identification, 7, PEER_MAGIC, [0x57, 0x69, 0x6e]));
    o.l.fsm.receive(packet(Code.TimeRemaining, 8, PEER_MAGIC, [0, 0, 0, 60]));
    expect(o.h.sent.length).toBe(n);
    expect(o.l.counters.discardRequests).toBe(1);
    expect(o.l.counters.ignoredCodes).toBe(2);
    o.l.fsm.receive(packet(0x42, 9, [1, 2, 3]));
    expect(o.h.last()?.code).toBe(Code.CodeReject);
    expect(hexOf(o.h.last()?.data)).toBe('42090007010203');
  });
});
