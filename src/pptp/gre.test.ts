import { describe, expect, it } from 'vitest';
import { ByteWriter, hex } from '../util/decode.js';
import {
  GRE_FIRST_SEQUENCE,
  GreSequenceState,
  decodeGre,
  encodeGre,
  encodeGreHeaderInto,
  greHeaderLength,
  seqAfter,
} from './gre.js';

/** Spec-like builder for the enhanced GRE header of RFC 2637 section 4.1. */
function gre(o: { c?: 1; r?: 1; k?: 0 | 1; s?: 0 | 1; ssr?: 1; recur?: number; a?: 0 | 1; flags?: number; ver?: number; proto?: number; len: number; callId: number }): ByteWriter {
  const b0 = ((o.c ?? 0) << 7) | ((o.r ?? 0) << 6) | ((o.k ?? 1) << 5) | ((o.s ?? 0) << 4) | ((o.ssr ?? 0) << 3) | (o.recur ?? 0);
  const b1 = ((o.a ?? 0) << 7) | ((o.flags ?? 0) << 3) | (o.ver ?? 1);
  return new ByteWriter().u8(b0).u8(b1).u16(o.proto ?? 0x880b).u16(o.len).u16(o.callId);
}

// LCP Configure-Request-ish payload of 12 octets (the [MS-PTPT] 4 example's payload length).
const PAYLOAD = Uint8Array.from([0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x08, 0x01, 0x04, 0x05, 0xdc]);

describe('enhanced GRE header (RFC 2637 4.1): byte-exact', () => {
  it('data packet with sequence number: S=1 A=0, 12-octet header', () => {
    const bytes = encodeGre({ callId: 0xfaea, sequence: 15 }, PAYLOAD);
    const expected = gre({ s: 1, len: 12, callId: 0xfaea }).u32(15).bytes(PAYLOAD).finish();
    expect(hex(bytes)).toBe(hex(expected));
    expect(hex(bytes.subarray(0, 12))).toBe('3001880b000cfaea0000000f');
  });

  it('acknowledgment-only packet: S=0 A=1, the acknowledgment where the sequence would be', () => {
    const bytes = encodeGre({ callId: 0xfaea, acknowledgment: 15 });
    expect(hex(bytes)).toBe(hex(gre({ a: 1, len: 0, callId: 0xfaea }).u32(15).finish()));
    expect(hex(bytes)).toBe('2081880b0000faea0000000f');
  });

  it('data packet with sequence and acknowledgment: the [MS-PTPT] section 4 example (flags 0x3081)', () => {
    const bytes = encodeGre({ callId: 0xfaea, sequence: 15, acknowledgment: 15 }, PAYLOAD);
    expect(hex(bytes.subarray(0, 16))).toBe('3081880b000cfaea0000000f0000000f');
    expect(hex(bytes)).toBe(hex(gre({ s: 1, a: 1, len: 12, callId: 0xfaea }).u32(15).u32(15).bytes(PAYLOAD).finish()));
  });

  it('decodes each form back, payload as a view of the input', () => {
    const cases = [
      { h: { callId: 0xfaea, sequence: 15 }, p: PAYLOAD },
      { h: { callId: 1, acknowledgment: 0xffffffff }, p: undefined },
      { h: { callId: 0xffff, sequence: 0x80000000, acknowledgment: 7 }, p: PAYLOAD },
    ];
    for (const c of cases) {
      const bytes = encodeGre(c.h, c.p);
      const r = decodeGre(bytes);
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.consumed).toBe(bytes.length);
      expect(r.value.header).toEqual({ payloadLength: c.p?.length ?? 0, sequence: undefined, acknowledgment: undefined, ...c.h });
      expect(hex(r.value.payload)).toBe(hex(c.p ?? new Uint8Array(0)));
      expect(r.value.payload.buffer).toBe(bytes.buffer);
    }
  });

  it('header lengths 8/12/16 and writing into a slot at an offset', () => {
    expect(greHeaderLength({})).toBe(8);
    expect(greHeaderLength({ sequence: 1 })).toBe(12);
    expect(greHeaderLength({ acknowledgment: 1 })).toBe(12);
    expect(greHeaderLength({ sequence: 1, acknowledgment: 1 })).toBe(16);
    const slot = new Uint8Array(32);
    expect(encodeGreHeaderInto({ callId: 2, payloadLength: 100, sequence: 3, acknowledgment: 4 }, slot, 4)).toBe(16);
    expect(hex(slot.subarray(4, 20))).toBe('3081880b006400020000000300000004');
  });

  it('refuses to build impossible packets (caller bugs)', () => {
    expect(() => encodeGre({ callId: 1 }, PAYLOAD)).toThrow(RangeError); // payload without S
    expect(() => encodeGre({ callId: 1 })).toThrow(RangeError); // neither S nor A
    expect(() => encodeGreHeaderInto({ callId: 1, payloadLength: 1, sequence: 1 }, new Uint8Array(11))).toThrow(RangeError);
  });

  it('ignores octets after the payload (IP padding)', () => {
    const bytes = new Uint8Array([...encodeGre({ callId: 9, sequence: 1 }, PAYLOAD), 0, 0, 0]);
    const r = decodeGre(bytes);
    expect(r.ok && r.consumed).toBe(24);
    expect(r.ok && r.value.payload.length).toBe(12);
  });

  it('S must be set exactly when a payload is present (section 4.1)', () => {
    // Acknowledgment-only packet whose length field claims a payload.
    expect(decodeGre(gre({ a: 1, len: 5, callId: 3 }).u32(9).bytes([1, 2, 3, 4, 5]).finish())).toMatchObject({ ok: false, kind: 'value' });
    // Sequenced packet with an empty payload.
    expect(decodeGre(gre({ s: 1, len: 0, callId: 3 }).u32(9).finish())).toMatchObject({ ok: false, kind: 'value' });
    expect(() => encodeGre({ callId: 1, sequence: 1 }, new Uint8Array(0))).toThrow(RangeError);
  });
});

describe('enhanced GRE header: malformed input', () => {
  const seqOnly = (o: Partial<Parameters<typeof gre>[0]> = {}) => gre({ s: 1, len: 12, callId: 5, ...o }).u32(1).bytes(PAYLOAD).finish();

  it('version 0 (plain GRE) and other versions -> "version"', () => {
    for (const ver of [0, 2, 7]) expect(decodeGre(seqOnly({ ver })), `ver ${ver}`).toMatchObject({ ok: false, kind: 'version' });
  });

  it('wrong protocol type -> "type"', () => {
    for (const proto of [0x0800, 0x86dd, 0x880a, 0]) expect(decodeGre(seqOnly({ proto }))).toMatchObject({ ok: false, kind: 'type' });
  });

  it('K bit clear, C, R, s, Recur or Flags set -> "value"', () => {
    expect(decodeGre(seqOnly({ k: 0 }))).toMatchObject({ ok: false, kind: 'value' });
    expect(decodeGre(seqOnly({ c: 1 }))).toMatchObject({ ok: false, kind: 'value' });
    expect(decodeGre(seqOnly({ r: 1 }))).toMatchObject({ ok: false, kind: 'value' });
    expect(decodeGre(seqOnly({ ssr: 1 }))).toMatchObject({ ok: false, kind: 'value' });
    expect(decodeGre(seqOnly({ recur: 3 }))).toMatchObject({ ok: false, kind: 'value' });
    expect(decodeGre(seqOnly({ flags: 1 }))).toMatchObject({ ok: false, kind: 'value' });
  });

  it('neither S nor A -> "missing"', () => {
    expect(decodeGre(gre({ len: 0, callId: 5 }).finish())).toMatchObject({ ok: false, kind: 'missing' });
  });

  it('every truncated prefix of the header -> "truncated"', () => {
    const full = encodeGre({ callId: 5, sequence: 1, acknowledgment: 2 }, PAYLOAD);
    for (let k = 0; k < 16; k++) expect(decodeGre(full.subarray(0, k)), `prefix ${k}`).toMatchObject({ ok: false, kind: 'truncated' });
    const ack = encodeGre({ callId: 5, acknowledgment: 2 });
    for (let k = 0; k < 12; k++) expect(decodeGre(ack.subarray(0, k))).toMatchObject({ ok: false, kind: 'truncated' });
  });

  it('payload length beyond the packet -> "length", for every short payload', () => {
    const full = encodeGre({ callId: 5, sequence: 1 }, PAYLOAD);
    for (let k = 12; k < full.length; k++) expect(decodeGre(full.subarray(0, k)), `length ${k}`).toMatchObject({ ok: false, kind: 'length' });
  });

  it('never throws on arbitrary bytes', () => {
    let seed = 99;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed >>> 24;
    };
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from({ length: rnd() % 40 }, rnd);
      if (i % 3 === 0 && b.length >= 4) {
        b[1] = (b[1]! & 0x80) | 1;
        b[2] = 0x88;
        b[3] = 0x0b;
      }
      expect(() => decodeGre(b)).not.toThrow();
    }
  });
});

describe('GRE sequencing reference (gre.ts rules 2, 5-8)', () => {
  it('serial-number comparison wraps at 2^32', () => {
    expect(seqAfter(1, 0)).toBe(true);
    expect(seqAfter(0, 1)).toBe(false);
    expect(seqAfter(5, 5)).toBe(false);
    expect(seqAfter(0, 0xffffffff)).toBe(true);
    expect(seqAfter(0xffffffff, 0)).toBe(false);
    expect(seqAfter(0x7fffffff, 0)).toBe(true);
    expect(seqAfter(0x80000000, 0)).toBe(false);
  });

  it('accepts any first number, then only later ones; duplicates and overtaken packets are stale', () => {
    const s = new GreSequenceState();
    expect(s.receive(1000)).toBe('deliver');
    expect(s.receive(1001)).toBe('deliver');
    expect(s.receive(1001)).toBe('stale');
    expect(s.receive(1004)).toBe('deliver'); // gap: 1002, 1003 lost or late
    expect(s.receive(1003)).toBe('stale'); // arrived after 1004
    expect(s.receive(999)).toBe('stale');
    expect(s.highestReceived).toBe(1004);
  });

  it('keeps going across the 2^32 wrap', () => {
    const s = new GreSequenceState();
    expect(s.receive(0xfffffffe)).toBe('deliver');
    expect(s.receive(0xffffffff)).toBe('deliver');
    expect(s.receive(0)).toBe('deliver');
    expect(s.receive(0xffffffff)).toBe('stale');
    expect(s.receive(1)).toBe('deliver');
  });

  it('numbers data packets from 1 and piggybacks each new acknowledgment once', () => {
    const s = new GreSequenceState();
    expect(s.nextData()).toEqual({ sequence: GRE_FIRST_SEQUENCE, acknowledgment: undefined });
    s.receive(1);
    s.receive(2);
    expect(s.ackDue).toBe(true);
    expect(s.nextData()).toEqual({ sequence: 2, acknowledgment: 2 });
    expect(s.ackDue).toBe(false);
    expect(s.nextData()).toEqual({ sequence: 3, acknowledgment: undefined });
    expect(s.nextAckOnly()).toBeUndefined(); // nothing new: never an empty acknowledgment
    s.receive(3);
    expect(s.nextAckOnly()).toBe(3);
    expect(s.ackDue).toBe(false);
    s.receive(3); // duplicate: nothing new to acknowledge
    expect(s.ackDue).toBe(false);
  });

  it('tracks the highest acknowledgment and what is unacknowledged (statistics only)', () => {
    const s = new GreSequenceState();
    expect(s.unacknowledged).toBe(0);
    for (let i = 0; i < 5; i++) s.nextData();
    expect(s.unacknowledged).toBe(5);
    s.acknowledged(3);
    expect(s.unacknowledged).toBe(2);
    s.acknowledged(2); // older: ignored
    expect(s.highestAcknowledged).toBe(3);
    s.acknowledged(5);
    expect(s.unacknowledged).toBe(0);
  });
});
