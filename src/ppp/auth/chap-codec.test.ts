import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { fromHex } from '../../util/decode.js';
import { ChapCode, decodeChap, encodeChap } from './chap-codec.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(path.resolve(here, '../../../../shared/vectors/chap_md5.json'), 'utf8')) as {
  vectors: { identifier: number; challenge: string; response_value: string; name_ascii: string; challenge_packet_with_name_gateway: string; response_packet: string }[];
};
const ascii = (s: string) => new TextEncoder().encode(s);

describe('CHAP codec (RFC 1994 section 4)', () => {
  it('encodes the vector packets byte for byte and decodes them back', () => {
    for (const v of vectors.vectors) {
      const challenge = encodeChap({ code: ChapCode.Challenge, identifier: v.identifier, value: fromHex(v.challenge), name: ascii('gateway') });
      expect(Buffer.from(challenge).toString('hex')).toBe(v.challenge_packet_with_name_gateway);
      const response = encodeChap({ code: ChapCode.Response, identifier: v.identifier, value: fromHex(v.response_value), name: ascii(v.name_ascii) });
      expect(Buffer.from(response).toString('hex')).toBe(v.response_packet);
      const d = decodeChap(fromHex(v.response_packet));
      expect(d.ok && d.value).toEqual({ code: ChapCode.Response, identifier: v.identifier, value: fromHex(v.response_value), name: ascii(v.name_ascii) });
    }
  });

  it('round-trips Success and Failure messages, empty ones included', () => {
    for (const code of [ChapCode.Success, ChapCode.Failure] as const) {
      for (const message of [ascii(''), ascii('S=0123 M=hi')]) {
        const d = decodeChap(encodeChap({ code, identifier: 9, message }));
        expect(d.ok && d.value).toEqual({ code, identifier: 9, message });
      }
    }
  });

  it('rejects every truncated prefix of a valid packet', () => {
    const full = fromHex(vectors.vectors[0]!.response_packet);
    for (let n = 0; n < full.length; n++) expect(decodeChap(full.subarray(0, n)).ok).toBe(false);
  });

  it('rejects lying lengths, zero Value-Size, unknown codes; ignores padding', () => {
    const good = fromHex(vectors.vectors[1]!.response_packet);
    const lyingSize = good.slice();
    lyingSize[4] = 200;
    expect(decodeChap(lyingSize)).toMatchObject({ ok: false, kind: 'length' });
    const zero = good.slice();
    zero[4] = 0;
    expect(decodeChap(zero)).toMatchObject({ ok: false, kind: 'value' });
    const short = good.slice();
    short[3] = 3;
    expect(decodeChap(short)).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeChap(Uint8Array.of(5, 0, 0, 4))).toMatchObject({ ok: false, kind: 'type' });
    const padded = new Uint8Array(good.length + 3);
    padded.set(good);
    const d = decodeChap(padded);
    expect(d.ok && d.value).toMatchObject({ name: ascii('alice') });
  });

  it('refuses to encode an empty or oversized Value', () => {
    expect(() => encodeChap({ code: ChapCode.Challenge, identifier: 1, value: new Uint8Array(0), name: ascii('') })).toThrow(RangeError);
    expect(() => encodeChap({ code: ChapCode.Challenge, identifier: 1, value: new Uint8Array(256), name: ascii('') })).toThrow(RangeError);
  });
});
