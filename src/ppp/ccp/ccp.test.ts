import { describe, it, expect } from 'vitest';
import { FsmState } from '../fsm.js';
import { Code } from '../protocols.js';
import { RecordingHost, hexOf, opt, packet } from '../testing.js';
import { Ccp, agreeMppe } from './ccp.js';
import { MPPE_H, MPPE_L, MPPE_S, MPPE_M, type MppePolicy } from './mppe.js';

function mppe(bits: number): Uint8Array {
  return opt(18, (bits >>> 24) & 0xff, (bits >>> 16) & 0xff, (bits >>> 8) & 0xff, bits & 0xff);
}

function ccp(policy: Partial<MppePolicy> = {}) {
  const h = new RecordingHost();
  const p = new Ccp({ mppe: { policy: 'require', strengths: [128], statelessAllowed: true, statelessPreferred: false, ...policy } }, h);
  p.fsm.open();
  p.fsm.up();
  return { p, h };
}

function judge(peerBits: number, policy: Partial<MppePolicy> = {}) {
  const c = ccp(policy);
  c.p.fsm.receive(packet(Code.ConfigureRequest, 1, mppe(peerBits)));
  const r = c.h.last()!;
  return { code: r.code, data: hexOf(r.data) };
}

describe('CCP MPPE option (RFC 3078 section 2)', () => {
  it('requests every allowed strength, with H only when stateless is preferred', () => {
    expect(hexOf(ccp({ strengths: [128, 40] }).h.last(Code.ConfigureRequest)?.data)).toBe('120600000060');
    expect(hexOf(ccp({ strengths: [128, 56, 40], statelessPreferred: true }).h.last(Code.ConfigureRequest)?.data)).toBe('1206010000e0');
  });

  it.each([
    // peer request, policy, expected reply
    ['H|S, stateless allowed, the server follows the client', MPPE_H | MPPE_S, { modeChoice: 'peer' }, Code.ConfigureAck, hexOf(mppe(MPPE_H | MPPE_S))],
    ['H|S while we ask without H (ours): Nak without H, never two modes', MPPE_H | MPPE_S, {}, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['S, stateful', MPPE_S, {}, Code.ConfigureAck, hexOf(mppe(MPPE_S))],
    ['S, stateful, the server follows', MPPE_S, { modeChoice: 'peer', statelessPreferred: true }, Code.ConfigureAck, hexOf(mppe(MPPE_S))],
    ['H|M|S|L: one bit, the strongest allowed', MPPE_H | MPPE_M | MPPE_S | MPPE_L, { strengths: [128, 40], modeChoice: 'peer' }, Code.ConfigureNak, hexOf(mppe(MPPE_H | MPPE_S))],
    ['S|L with only 40 allowed', MPPE_S | MPPE_L, { strengths: [40] }, Code.ConfigureNak, hexOf(mppe(MPPE_L))],
    ['MPPC (C) is always refused', MPPE_S | 0x01, {}, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['obsolete D and unknown bits are dropped', MPPE_S | 0x10 | 0x00800000, {}, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['H not allowed: Nak without H', MPPE_H | MPPE_S, { statelessAllowed: false }, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['H not allowed, the server follows what it may: Nak without H', MPPE_H | MPPE_S, { statelessAllowed: false, modeChoice: 'peer' }, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['nothing in common: Nak with what we allow', MPPE_L, { strengths: [128] }, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['compression only (C): Nak with what we allow', 0x01, { strengths: [128, 56] }, Code.ConfigureNak, hexOf(mppe(MPPE_S | MPPE_M))],
    ['we prefer stateless: Nak a stateful request with H', MPPE_S, { statelessPreferred: true }, Code.ConfigureNak, hexOf(mppe(MPPE_H | MPPE_S))],
  ] as const)('%s', (_name, bits, policy, code, data) => {
    expect(judge(bits, policy)).toEqual({ code, data });
  });

  it('rejects other compression algorithms (Stac 17, Deflate 26) and a wrong-length MPPE option', () => {
    const c = ccp();
    c.p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(17, 0, 1, 3), opt(26, 0x78, 0), opt(18, 0, 0, 0x40)));
    expect(c.h.last()?.code).toBe(Code.ConfigureReject);
    expect(hexOf(c.h.last()?.data)).toBe('1105000103' + '1a047800' + '120500' + '0040');
  });

  it('adopts a Nak with one allowed strength (and H if allowed); gives MPPE up when nothing is acceptable', () => {
    const c = ccp({ strengths: [128, 40] });
    let req = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureNak, req.id, mppe(MPPE_H | MPPE_S)));
    req = c.h.last(Code.ConfigureRequest)!;
    expect(hexOf(req.data)).toBe(hexOf(mppe(MPPE_H | MPPE_S)));
    c.p.fsm.receive(packet(Code.ConfigureNak, req.id, mppe(MPPE_M)));
    req = c.h.last(Code.ConfigureRequest)!;
    expect(req.data.length).toBe(0);

    const d = ccp({ strengths: [128], statelessAllowed: false });
    const r = d.h.last(Code.ConfigureRequest)!;
    d.p.fsm.receive(packet(Code.ConfigureNak, r.id, mppe(MPPE_H | MPPE_S)));
    expect(hexOf(d.h.last(Code.ConfigureRequest)?.data)).toBe(hexOf(mppe(MPPE_S)));
  });

  it('a peer that insists on a strength we do not allow: Max-Failure turns the Naks into a Reject', () => {
    const c = ccp({ strengths: [128] });
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) {
      c.p.fsm.receive(packet(Code.ConfigureRequest, 10 + i, mppe(MPPE_L)));
      codes.push(c.h.last()!.code);
    }
    expect(codes).toEqual([3, 3, 3, 3, 3, 4, 4]);
  });

  it('opens with the agreed mode per direction', () => {
    const c = ccp({ modeChoice: 'peer' });
    c.p.fsm.receive(packet(Code.ConfigureRequest, 1, mppe(MPPE_H | MPPE_S)));
    const req = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureNak, req.id, mppe(MPPE_H | MPPE_S)));
    const req2 = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureAck, req2.id, req2.data));
    expect(c.p.fsm.state).toBe(FsmState.Opened);
    expect(c.p.negotiated).toEqual({ send: MPPE_H | MPPE_S, recv: MPPE_H | MPPE_S });
    expect(agreeMppe(c.p.negotiated)).toEqual({ ok: true, mppe: { bits: 128, stateless: true } });
  });
});

/**
 * Debian 12's pppd 2.4.9 (pptp-linux, require-mppe-128) against the PPTP
 * server's policy, its CCP packets as its debug log printed them. The server
 * used to ask for stateful mode (S, no H) while allowing stateless:
 *  - plain pppd (refuse-mppe-stateful, its default) Configure-Rejected that
 *    request ("Refusing MPPE stateful mode offered by peer") and hung up;
 *  - pppd with mppe-stateful acknowledged it, asked H|S for itself, and the
 *    server acknowledged that: two modes, the session ended 'mppe-mismatch'.
 */
describe('CCP against pppd 2.4.9 (RFC 3078 section 2, H bit)', () => {
  // sent [CCP ConfReq id=0x1 <mppe +H -M +S -L -D -C>]: what pppd asks, with or without mppe-stateful.
  const PPPD_REQUEST = '0101000a' + '120601000040';

  function serverCcp(stateless: boolean) {
    // src/pptp/service.ts pptpMppePolicy: stateless asked for iff allowed, the client's mode wins.
    return ccp({ statelessAllowed: stateless, statelessPreferred: stateless, modeChoice: 'peer' });
  }

  it('stateless allowed: the server asks H|S itself, so plain pppd acknowledges; both ways stateless', () => {
    const c = serverCcp(true);
    const ours = c.h.last(Code.ConfigureRequest)!;
    expect(hexOf(ours.data)).toBe('120601000040');
    c.p.fsm.receive(packet(Code.ConfigureRequest, 1, mppe(MPPE_H | MPPE_S)));
    expect(hexOf(c.h.last()!.data)).toBe(PPPD_REQUEST.slice(8));
    expect(c.h.last()!.code).toBe(Code.ConfigureAck);
    c.p.fsm.receive(packet(Code.ConfigureAck, ours.id, ours.data));
    expect(c.p.fsm.state).toBe(FsmState.Opened);
    expect(agreeMppe(c.p.negotiated)).toEqual({ ok: true, mppe: { bits: 128, stateless: true } });
  });

  it('stateless not allowed: pppd (mppe-stateful) acknowledges our S, its H|S is Nak\'d to S, its S acknowledged; both ways stateful', () => {
    const c = serverCcp(false);
    const ours = c.h.last(Code.ConfigureRequest)!;
    expect(hexOf(ours.data)).toBe('120600000040');
    c.p.fsm.receive(packet(Code.ConfigureAck, ours.id, ours.data));
    c.p.fsm.receive(packet(Code.ConfigureRequest, 1, mppe(MPPE_H | MPPE_S)));
    expect(c.h.last()).toMatchObject({ code: Code.ConfigureNak, id: 1 });
    expect(hexOf(c.h.last()!.data)).toBe('120600000040');
    c.p.fsm.receive(packet(Code.ConfigureRequest, 2, mppe(MPPE_S)));
    expect(c.h.last()).toMatchObject({ code: Code.ConfigureAck, id: 2 });
    expect(c.p.fsm.state).toBe(FsmState.Opened);
    expect(agreeMppe(c.p.negotiated)).toEqual({ ok: true, mppe: { bits: 128, stateless: false } });
  });

  it('a client asking stateful gets it from a server that asked stateless: the server follows, its next request has no H', () => {
    const c = serverCcp(true);
    const first = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureRequest, 7, mppe(MPPE_S)));
    expect(c.h.last()).toMatchObject({ code: Code.ConfigureAck, id: 7 });
    // The client (our own, 'ours') Naks the H of our first request away.
    c.p.fsm.receive(packet(Code.ConfigureNak, first.id, mppe(MPPE_S)));
    const second = c.h.last(Code.ConfigureRequest)!;
    expect(second.id).not.toBe(first.id);
    expect(hexOf(second.data)).toBe('120600000040');
    c.p.fsm.receive(packet(Code.ConfigureAck, second.id, second.data));
    expect(agreeMppe(c.p.negotiated)).toEqual({ ok: true, mppe: { bits: 128, stateless: false } });
  });

  it('once our request is acknowledged the server stops following: a later other mode is Nak\'d to the acknowledged one', () => {
    const c = serverCcp(true);
    const ours = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureAck, ours.id, ours.data));
    c.p.fsm.receive(packet(Code.ConfigureRequest, 3, mppe(MPPE_S)));
    expect(c.h.last()).toMatchObject({ code: Code.ConfigureNak, id: 3 });
    expect(hexOf(c.h.last()!.data)).toBe('120601000040');
  });
});

describe('MPPE agreement across directions', () => {
  it('needs the same strength and mode both ways', () => {
    expect(agreeMppe({ send: undefined, recv: undefined })).toEqual({ ok: true, mppe: undefined });
    expect(agreeMppe({ send: MPPE_S, recv: MPPE_S })).toEqual({ ok: true, mppe: { bits: 128, stateless: false } });
    expect(agreeMppe({ send: MPPE_L, recv: MPPE_L })).toEqual({ ok: true, mppe: { bits: 40, stateless: false } });
    expect(agreeMppe({ send: MPPE_S, recv: undefined }).ok).toBe(false);
    expect(agreeMppe({ send: MPPE_S, recv: MPPE_L }).ok).toBe(false);
    expect(agreeMppe({ send: MPPE_S | MPPE_H, recv: MPPE_S }).ok).toBe(false);
  });
});

describe('CCP Reset-Request / Reset-Ack (RFC 1962 2.2)', () => {
  it('are discarded outside Opened and reported in Opened; we send them only in Opened', () => {
    const c = ccp();
    c.p.fsm.receive(packet(Code.ResetRequest, 4));
    expect(c.p.counters.discardedResets).toBe(1);
    expect(c.p.sendResetRequest()).toBe(false);
    c.p.fsm.receive(packet(Code.ConfigureRequest, 1, mppe(MPPE_S)));
    const req = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureNak, req.id, mppe(MPPE_S)));
    const req2 = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureAck, req2.id, req2.data));
    expect(c.p.fsm.state).toBe(FsmState.Opened);
    c.p.fsm.receive(packet(Code.ResetRequest, 5));
    c.p.fsm.receive(packet(Code.ResetAck, 6));
    expect(c.h.events).toEqual(['up', 'reset-request:5', 'reset-ack:6']);
    expect(c.p.sendResetRequest()).toBe(true);
    expect(c.h.last()?.code).toBe(Code.ResetRequest);
    expect(c.p.sendResetAck(5)).toBe(true);
    expect(c.h.last()).toMatchObject({ code: Code.ResetAck, id: 5 });
  });
});
