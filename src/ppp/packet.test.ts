import { describe, it, expect } from 'vitest';
import { ByteWriter, fromHex, hex } from '../util/decode.js';
import { decodeControlPacket, decodeOptions, encodeControlPacket, encodeOption } from './packet.js';

describe('control packet codec (RFC 1661 section 5)', () => {
  it('encodes Code | Identifier | Length | Data', () => {
    expect(hex(encodeControlPacket(1, 0x2a, fromHex('010405dc')))).toBe('012a00080104' + '05dc');
    expect(hex(encodeControlPacket(6, 7))).toBe('06070004');
  });

  it('decodes and bounds data by the Length field, ignoring padding beyond it', () => {
    const d = decodeControlPacket(fromHex('0907000801020304eeeeee'));
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value).toMatchObject({ code: 9, id: 7 });
    expect(hex(d.value.data)).toBe('01020304');
    expect(hex(d.value.raw)).toBe('0907000801020304');
  });

  it('rejects every truncated prefix and every lying length', () => {
    const good = encodeControlPacket(1, 1, fromHex('0506a1b2c3d4'));
    for (let n = 0; n < good.length; n++) expect(decodeControlPacket(good.subarray(0, n)).ok, `prefix ${n}`).toBe(false);
    expect(decodeControlPacket(good).ok).toBe(true);
    const longer = good.slice();
    longer[3] = good.length + 1;
    const d = decodeControlPacket(longer);
    expect(!d.ok && d.kind === 'length').toBe(true);
    for (const len of [0, 1, 2, 3]) {
      const short = good.slice();
      short[3] = len;
      const s = decodeControlPacket(short);
      expect(!s.ok && s.kind === 'length').toBe(true);
    }
  });
});

describe('configuration option list (RFC 1661 section 6)', () => {
  it('splits Type | Length | Data options and keeps each raw option', () => {
    const buf = new ByteWriter().bytes(encodeOption(1, fromHex('05dc'))).bytes(encodeOption(7)).bytes(encodeOption(5, fromHex('01020304'))).finish();
    const d = decodeOptions(buf);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value.map((o) => [o.type, hex(o.data), hex(o.raw)])).toEqual([
      [1, '05dc', '010405dc'],
      [7, '', '0702'],
      [5, '01020304', '050601020304'],
    ]);
  });

  it('an empty list is valid', () => {
    const d = decodeOptions(new Uint8Array(0));
    expect(d.ok && d.value.length === 0).toBe(true);
  });

  it('option Length 0 or 1, a header cut off, or a Length past the end make the list malformed', () => {
    for (const h of ['0100', '0101', '01', '0104 05', '01ff0000', '0702 01']) {
      const d = decodeOptions(fromHex(h));
      expect(d.ok, h).toBe(false);
    }
  });

  it('an option of Length 255 that fits is fine', () => {
    const d = decodeOptions(encodeOption(99, new Uint8Array(253)));
    expect(d.ok && d.value[0]!.raw.length === 255).toBe(true);
    expect(() => encodeOption(99, new Uint8Array(254))).toThrow(RangeError);
  });
});
