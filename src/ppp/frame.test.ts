import { describe, it, expect } from 'vitest';
import { ByteWriter, fromHex, hex } from '../util/decode.js';
import { decodeFrame, encodeFrame, frameHeaderLength, isValidProtocol } from './frame.js';
import { PPP_CCP, PPP_IPCP, PPP_IPV4, PPP_IPV6, PPP_LCP } from './protocols.js';

describe('PPP frame codec (RFC 1661 section 2, RFC 1662 3.1)', () => {
  const info = fromHex('01020304');

  it('encodes uncompressed frames as ff 03 | protocol(2) | info', () => {
    expect(hex(encodeFrame(PPP_LCP, info))).toBe('ff03c02101020304');
    expect(hex(encodeFrame(PPP_IPV4, info))).toBe('ff03002101020304');
  });

  it('omits Address/Control with ACFC, except for LCP (RFC 1661 6.6)', () => {
    expect(hex(encodeFrame(PPP_IPCP, info, { acfc: true, pfc: false }))).toBe('802101020304');
    expect(hex(encodeFrame(PPP_LCP, info, { acfc: true, pfc: true }))).toBe('ff03c02101020304');
  });

  it('sends one protocol octet with PFC only for values below 0x100 (RFC 1661 6.5)', () => {
    expect(hex(encodeFrame(PPP_IPV4, info, { acfc: true, pfc: true }))).toBe('2101020304');
    expect(hex(encodeFrame(PPP_IPV6, info, { acfc: false, pfc: true }))).toBe('ff035701020304');
    expect(hex(encodeFrame(PPP_CCP, info, { acfc: true, pfc: true }))).toBe('80fd01020304');
    expect(frameHeaderLength(PPP_IPV4, { acfc: true, pfc: true })).toBe(1);
    expect(frameHeaderLength(PPP_LCP, { acfc: true, pfc: true })).toBe(4);
  });

  it('refuses to encode an invalid protocol number', () => {
    expect(() => encodeFrame(0x0022, info)).toThrow(RangeError);
    expect(() => encodeFrame(0x0121, info)).toThrow(RangeError);
    expect(isValidProtocol(0xc021)).toBe(true);
    expect(isValidProtocol(0xc121)).toBe(false);
  });

  it('accepts all four forms on receive, whatever was negotiated', () => {
    const forms = ['ff03002101020304', '002101020304', 'ff032101020304', '2101020304'];
    for (const f of forms) {
      const d = decodeFrame(fromHex(f));
      expect(d.ok).toBe(true);
      if (!d.ok) continue;
      expect(d.value.protocol).toBe(PPP_IPV4);
      expect(hex(d.value.info)).toBe('01020304');
      expect(d.value.hadAddressControl).toBe(f.startsWith('ff03'));
      expect(d.value.compressedProtocol).toBe(f.length === 10 || f === 'ff032101020304');
    }
  });

  it('decodes every encoder output back', () => {
    for (const proto of [PPP_LCP, PPP_IPCP, PPP_IPV4, PPP_IPV6, PPP_CCP]) {
      for (const acfc of [false, true]) {
        for (const pfc of [false, true]) {
          const d = decodeFrame(encodeFrame(proto, info, { acfc, pfc }));
          expect(d.ok && d.value.protocol === proto && hex(d.value.info) === '01020304').toBe(true);
        }
      }
    }
  });

  it('rejects malformed frames with a typed failure, never a throw', () => {
    const cases: [string, string][] = [
      ['', 'truncated'],
      ['ff', 'truncated'],
      ['ff03', 'truncated'],
      ['ff04c021', 'magic'],
      ['c0', 'truncated'],
      ['ff03c0', 'truncated'],
      ['c020', 'value'], // even low octet
      ['ff030022', 'value'],
    ];
    for (const [f, kind] of cases) {
      const d = decodeFrame(fromHex(f));
      expect(d.ok, f).toBe(false);
      if (!d.ok) expect(d.kind, f).toBe(kind);
    }
  });

  it('keeps an empty information field', () => {
    const d = decodeFrame(new ByteWriter().u8(0xff).u8(0x03).u16(PPP_LCP).finish());
    expect(d.ok && d.value.info.length === 0).toBe(true);
  });
});
