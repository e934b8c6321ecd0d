/**
 * CHAP packets, RFC 1994 section 4 (PPP protocol 0xc223), shared by CHAP-MD5
 * (RFC 1994) and MS-CHAPv2 (RFC 2759 sections 3-6, same framing).
 *
 * Challenge (Code 1) and Response (Code 2):
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Code      |  Identifier   |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Value-Size   |  Value ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Name ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Success (Code 3) and Failure (Code 4):
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Code      |  Identifier   |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Message  ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The Name runs to the end of Length. Octets past Length are data-link
 * padding (RFC 1661 section 5) and ignored.
 */
import { ByteReader, ByteWriter, fail, ok, type DecodeResult } from '../../util/decode.js';

// From the spec.
export const ChapCode = {
  Challenge: 1,
  Response: 2,
  Success: 3,
  Failure: 4,
} as const;

const HEADER = 4;

export type ChapPacket =
  | { code: typeof ChapCode.Challenge | typeof ChapCode.Response; identifier: number; value: Uint8Array; name: Uint8Array }
  | { code: typeof ChapCode.Success | typeof ChapCode.Failure; identifier: number; message: Uint8Array };

export function decodeChap(buf: Uint8Array): DecodeResult<ChapPacket> {
  if (buf.length < HEADER) return fail('truncated', `CHAP packet of ${buf.length} octets is shorter than its 4-octet header`);
  const r = new ByteReader(buf);
  const code = r.u8();
  const identifier = r.u8();
  const length = r.u16();
  if (length < HEADER) return fail('length', `CHAP Length ${length} is below the header size`, 2);
  if (length > buf.length) return fail('truncated', `CHAP Length ${length} exceeds the ${buf.length} octets received`, 2);
  const body = new ByteReader(buf, HEADER, length);
  switch (code) {
    case ChapCode.Challenge:
    case ChapCode.Response: {
      const size = body.u8();
      const value = body.bytes(size);
      if (body.overrun) return fail('length', `CHAP ${code === 1 ? 'Challenge' : 'Response'}: Value-Size runs past Length`, HEADER);
      // RFC 1994 4.1: "The Value field is one or more octets".
      if (size === 0) return fail('value', 'CHAP Value-Size is zero', HEADER);
      return ok({ code, identifier, value, name: body.bytes(body.remaining) }, length);
    }
    case ChapCode.Success:
    case ChapCode.Failure:
      return ok({ code, identifier, message: body.bytes(body.remaining) }, length);
    default:
      return fail('type', `unknown CHAP code ${code}`, 0);
  }
}

/** Encode one CHAP packet. A Value over 255 octets or a packet over 65535 is a programming error (RangeError). */
export function encodeChap(p: ChapPacket): Uint8Array {
  const w = new ByteWriter(64);
  w.u8(p.code).u8(p.identifier).u16(0);
  if ('value' in p) {
    if (p.value.length === 0 || p.value.length > 255) throw new RangeError('CHAP Value is 1..255 octets');
    w.u8(p.value.length).bytes(p.value).bytes(p.name);
  } else {
    w.bytes(p.message);
  }
  if (w.length > 0xffff) throw new RangeError('CHAP packet over 65535 octets');
  w.patchU16(2, w.length);
  return w.finish();
}
