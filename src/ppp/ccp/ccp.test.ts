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
    ['H|S, stateless allowed', MPPE_H | MPPE_S, {}, Code.ConfigureAck, hexOf(mppe(MPPE_H | MPPE_S))],
    ['S, stateful', MPPE_S, {}, Code.ConfigureAck, hexOf(mppe(MPPE_S))],
    ['H|M|S|L: one bit, the strongest allowed', MPPE_H | MPPE_M | MPPE_S | MPPE_L, { strengths: [128, 40] }, Code.ConfigureNak, hexOf(mppe(MPPE_H | MPPE_S))],
    ['S|L with only 40 allowed', MPPE_S | MPPE_L, { strengths: [40] }, Code.ConfigureNak, hexOf(mppe(MPPE_L))],
    ['MPPC (C) is always refused', MPPE_S | 0x01, {}, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['obsolete D and unknown bits are dropped', MPPE_S | 0x10 | 0x00800000, {}, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
    ['H not allowed: Nak without H', MPPE_H | MPPE_S, { statelessAllowed: false }, Code.ConfigureNak, hexOf(mppe(MPPE_S))],
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
    const c = ccp();
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
