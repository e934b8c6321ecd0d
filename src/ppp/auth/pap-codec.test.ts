import { describe, it, expect } from 'vitest';
import { ByteWriter } from '../../util/decode.js';
import { decodePap, encodePap, PapCode } from './pap-codec.js';

const ascii = (s: string) => new TextEncoder().encode(s);

/** Authenticate-Request as RFC 1334 2.2.1 draws it. */
function request(id: number, peerId: string, password: string): Uint8Array {
  const w = new ByteWriter();
  w.u8(1).u8(id).u16(0).u8(peerId.length).ascii(peerId).u8(password.length).ascii(password);
  return w.patchU16(2, w.length).finish();
}

describe('PAP codec (RFC 1334 2.2)', () => {
  it('encodes an Authenticate-Request byte for byte', () => {
    const p = encodePap({ code: PapCode.AuthenticateRequest, identifier: 7, peerId: ascii('alice'), password: ascii('pw') });
    expect(Buffer.from(p).toString('hex')).toBe('0107000d05616c69636502' + '7077');
    expect(p).toEqual(request(7, 'alice', 'pw'));
  });

  it('round-trips every code', () => {
    for (const pkt of [
      { code: PapCode.AuthenticateRequest, identifier: 0, peerId: ascii(''), password: ascii('') },
      { code: PapCode.AuthenticateAck, identifier: 255, message: ascii('welcome') },
      { code: PapCode.AuthenticateNak, identifier: 3, message: ascii('') },
    ] as const) {
      const d = decodePap(encodePap(pkt));
      expect(d.ok && d.value).toEqual(pkt);
    }
  });

  it('rejects every truncated prefix of a valid request', () => {
    const full = request(1, 'bob', 'secret');
    for (let n = 0; n < full.length; n++) {
      const d = decodePap(full.subarray(0, n));
      expect(d.ok).toBe(false);
    }
    expect(decodePap(full).ok).toBe(true);
  });

  it('rejects lying lengths and ignores padding past Length', () => {
    const good = request(1, 'bob', 'secret');
    const longer = good.slice();
    longer[3] = good.length + 1;
    expect(decodePap(longer)).toMatchObject({ ok: false, kind: 'truncated' });
    const tiny = good.slice();
    tiny[2] = 0;
    tiny[3] = 3;
    expect(decodePap(tiny)).toMatchObject({ ok: false, kind: 'length' });
    // Peer-ID Length says 200 but Length ends the packet earlier.
    const lyingId = good.slice();
    lyingId[4] = 200;
    expect(decodePap(lyingId)).toMatchObject({ ok: false, kind: 'length' });
    // Passwd-Length one too many.
    const lyingPw = good.slice();
    lyingPw[4 + 1 + 3] = 7;
    expect(decodePap(lyingPw)).toMatchObject({ ok: false, kind: 'length' });
    const padded = new Uint8Array(good.length + 5);
    padded.set(good);
    const d = decodePap(padded);
    expect(d.ok && d.consumed).toBe(good.length);
  });

  it('rejects unknown codes, accepts an Ack without Msg-Length', () => {
    expect(decodePap(Uint8Array.of(9, 1, 0, 4))).toMatchObject({ ok: false, kind: 'type' });
    expect(decodePap(Uint8Array.of(2, 1, 0, 4))).toMatchObject({ ok: true, value: { code: 2, identifier: 1 } });
  });

  it('refuses to encode fields over 255 octets', () => {
    expect(() => encodePap({ code: PapCode.AuthenticateRequest, identifier: 0, peerId: new Uint8Array(256), password: ascii('') })).toThrow(RangeError);
  });
});
