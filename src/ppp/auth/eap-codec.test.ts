import { describe, it, expect } from 'vitest';
import { ByteWriter, fromHex, hex } from '../../util/decode.js';
import { decodeEap, decodeEapMsChapV2, EapCode, EapType, encodeEap, encodeEapMsChapV2, MsChapV2OpCode } from './eap-codec.js';
import {
  decodeResponseValue,
  encodeFailureMessage,
  encodeResponseValue,
  encodeSuccessMessage,
  errorCodeFor,
  parseFailureMessage,
  parseSuccessMessage,
  reasonForError,
} from './mschapv2-codec.js';

const ascii = (s: string) => new TextEncoder().encode(s);

/** An EAP-MSCHAPv2 Challenge Request as draft-kamath section 2 draws it. */
function challengeRequest(id: number, msId: number, challenge: Uint8Array, name: string): Uint8Array {
  const w = new ByteWriter();
  const typeDataLen = 1 + 1 + 2 + 1 + challenge.length + name.length;
  w.u8(1).u8(id).u16(5 + typeDataLen).u8(26);
  w.u8(1).u8(msId).u16(typeDataLen).u8(challenge.length).bytes(challenge).ascii(name);
  return w.finish();
}

describe('EAP codec (RFC 3748 4)', () => {
  it('encodes Request/Identity, Success and Failure byte for byte', () => {
    expect(hex(encodeEap({ code: EapCode.Request, identifier: 1, type: EapType.Identity, data: new Uint8Array(0) }))).toBe('0101000501');
    expect(hex(encodeEap({ code: EapCode.Response, identifier: 1, type: EapType.Identity, data: ascii('alice') }))).toBe('0201000a01616c696365');
    expect(hex(encodeEap({ code: EapCode.Success, identifier: 9 }))).toBe('03090004');
    expect(hex(encodeEap({ code: EapCode.Failure, identifier: 9 }))).toBe('04090004');
  });

  it('encodes an EAP-MSCHAPv2 Challenge Request as draft-kamath draws it, and decodes it back', () => {
    const challenge = fromHex('5b5d7c7d7b3f2f3e3c2c602132262628');
    const built = challengeRequest(2, 2, challenge, 'gw');
    const ours = encodeEap({
      code: EapCode.Request,
      identifier: 2,
      type: EapType.MsChapV2,
      data: encodeEapMsChapV2({ op: MsChapV2OpCode.Challenge, msId: 2, value: challenge, name: ascii('gw') }),
    });
    expect(hex(ours)).toBe(hex(built));
    const d = decodeEap(built);
    if (!d.ok || d.value.code !== EapCode.Request) throw new Error('decode');
    expect(d.value.type).toBe(26);
    const m = decodeEapMsChapV2(d.value.data);
    expect(m.ok && m.value).toEqual({ op: MsChapV2OpCode.Challenge, msId: 2, value: challenge, name: ascii('gw') });
    // MS-Length = EAP Length - 5.
    expect((built[7]! << 8) | built[8]!).toBe(built.length - 5);
  });

  it('decodes the OpCode-only acknowledgements and round-trips Success/Failure Requests', () => {
    expect(decodeEapMsChapV2(Uint8Array.of(3))).toMatchObject({ ok: true, value: { op: 'success-ack' } });
    expect(decodeEapMsChapV2(Uint8Array.of(4))).toMatchObject({ ok: true, value: { op: 'failure-ack' } });
    expect(encodeEapMsChapV2({ op: 'success-ack' })).toEqual(Uint8Array.of(3));
    for (const op of [MsChapV2OpCode.Success, MsChapV2OpCode.Failure] as const) {
      const m = { op, msId: 4, message: ascii('S=00 M=x') };
      const d = decodeEapMsChapV2(encodeEapMsChapV2(m));
      expect(d.ok && d.value).toEqual(m);
    }
  });

  it('rejects every truncated prefix, lying lengths and unknown codes, without throwing', () => {
    const full = challengeRequest(2, 2, new Uint8Array(16), 'gw');
    for (let n = 0; n < full.length; n++) {
      const d = decodeEap(full.subarray(0, n));
      if (d.ok && d.value.code === EapCode.Request) expect(decodeEapMsChapV2(d.value.data).ok).toBe(false);
      else expect(d.ok).toBe(false);
    }
    expect(decodeEap(Uint8Array.of(1, 1, 0, 4))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeEap(Uint8Array.of(1, 1, 0, 3, 1))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeEap(Uint8Array.of(1, 1, 0, 9, 1))).toMatchObject({ ok: false, kind: 'truncated' });
    expect(decodeEap(Uint8Array.of(5, 1, 0, 4))).toMatchObject({ ok: false, kind: 'type' });
    const lyingMs = Uint8Array.of(2, 1, 0, 200, 49);
    expect(decodeEapMsChapV2(lyingMs)).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeEapMsChapV2(Uint8Array.of(2, 1, 0, 3))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeEapMsChapV2(Uint8Array.of(2, 1, 0, 6, 49, 0))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeEapMsChapV2(Uint8Array.of(7, 1, 0, 4))).toMatchObject({ ok: false, kind: 'type' });
    expect(decodeEapMsChapV2(new Uint8Array(0))).toMatchObject({ ok: false, kind: 'truncated' });
    // Success with trailing data is accepted; padding past Length ignored.
    expect(decodeEap(Uint8Array.of(3, 1, 0, 4, 0, 0))).toMatchObject({ ok: true, consumed: 4 });
  });
});

describe('MS-CHAPv2 message fields (RFC 2759 4-6)', () => {
  it('Response Value: 16 | 8 zero | 24 | flags 0', () => {
    const v = encodeResponseValue({ peerChallenge: new Uint8Array(16).fill(1), ntResponse: new Uint8Array(24).fill(2) });
    expect(hex(v)).toBe('01'.repeat(16) + '00'.repeat(8) + '02'.repeat(24) + '00');
    expect(decodeResponseValue(v)).toEqual({ peerChallenge: new Uint8Array(16).fill(1), ntResponse: new Uint8Array(24).fill(2) });
    expect(decodeResponseValue(v.subarray(0, 48))).toBeUndefined();
  });

  it('Success message: S= and M=', () => {
    const s = encodeSuccessMessage('S=' + 'A'.repeat(40), 'hello there');
    expect(s).toBe(`S=${'A'.repeat(40)} M=hello there`);
    expect(parseSuccessMessage(s)).toEqual({ authenticatorResponse: 'S=' + 'A'.repeat(40), text: 'hello there' });
    expect(parseSuccessMessage('S=' + 'A'.repeat(40))).toEqual({ authenticatorResponse: 'S=' + 'A'.repeat(40), text: '' });
    expect(parseSuccessMessage('M=hi')).toBeUndefined();
  });

  it('Failure message: the RFC format, and tolerant parsing', () => {
    const c = fromHex('000102030405060708090a0b0c0d0e0f');
    const f = encodeFailureMessage({ error: 691, retry: true, challenge: c, text: 'Authentication failed' });
    expect(f).toBe('E=691 R=1 C=000102030405060708090A0B0C0D0E0F V=3 M=Authentication failed');
    expect(parseFailureMessage(f)).toEqual({ error: 691, retry: true, challenge: c, version: 3, text: 'Authentication failed' });
    expect(parseFailureMessage('E=648 R=0 V=3')).toEqual({ error: 648, retry: false, challenge: undefined, version: 3, text: '' });
    expect(parseFailureMessage('E=691 R=1 C=xyz')).toMatchObject({ error: 691, challenge: undefined });
    expect(parseFailureMessage('R=1')).toBeUndefined();
    expect(parseFailureMessage('')).toBeUndefined();
    expect(() => encodeFailureMessage({ error: 691, retry: false, challenge: new Uint8Array(8), text: '' })).toThrow(RangeError);
  });

  it('maps refusals to E= codes and back', () => {
    expect(errorCodeFor('bad-credentials')).toBe(691);
    expect(errorCodeFor('unknown-user')).toBe(691);
    expect(errorCodeFor('rate-limited')).toBe(691);
    expect(errorCodeFor('expired')).toBe(648);
    expect(errorCodeFor('disabled')).toBe(649);
    expect(reasonForError(691)).toBe('bad-credentials');
    expect(reasonForError(648)).toBe('expired');
    expect(reasonForError(649)).toBe('disabled');
    expect(reasonForError(647)).toBe('disabled');
  });
});
