/**
 * PAP packets, RFC 1334 section 2.2 (PPP protocol 0xc023).
 *
 * Authenticate-Request (Code 1):
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Code      |  Identifier   |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | Peer-ID Length|  Peer-Id ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | Passwd-Length |  Password ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Authenticate-Ack (Code 2) / Authenticate-Nak (Code 3):
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Code      |  Identifier   |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Msg-Length   |  Message  ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Octets past Length are data-link padding and ignored (RFC 1334 2.2).
 */
import { ByteReader, ByteWriter, fail, ok, type DecodeResult } from '../../util/decode.js';

// From the spec.
export const PapCode = {
  AuthenticateRequest: 1,
  AuthenticateAck: 2,
  AuthenticateNak: 3,
} as const;

const HEADER = 4;

export type PapPacket =
  | { code: typeof PapCode.AuthenticateRequest; identifier: number; peerId: Uint8Array; password: Uint8Array }
  | { code: typeof PapCode.AuthenticateAck | typeof PapCode.AuthenticateNak; identifier: number; message: Uint8Array };

export function decodePap(buf: Uint8Array): DecodeResult<PapPacket> {
  if (buf.length < HEADER) return fail('truncated', `PAP packet of ${buf.length} octets is shorter than its 4-octet header`);
  const r = new ByteReader(buf);
  const code = r.u8();
  const identifier = r.u8();
  const length = r.u16();
  if (length < HEADER) return fail('length', `PAP Length ${length} is below the header size`, 2);
  if (length > buf.length) return fail('truncated', `PAP Length ${length} exceeds the ${buf.length} octets received`, 2);
  const body = new ByteReader(buf, HEADER, length);
  switch (code) {
    case PapCode.AuthenticateRequest: {
      const idLen = body.u8();
      const peerId = body.bytes(idLen);
      const pwLen = body.u8();
      const password = body.bytes(pwLen);
      if (body.overrun) return fail('length', 'PAP Authenticate-Request: Peer-ID or Passwd-Length runs past Length', HEADER);
      return ok({ code, identifier, peerId, password }, length);
    }
    case PapCode.AuthenticateAck:
    case PapCode.AuthenticateNak: {
      // Some peers send no Msg-Length at all; treat that as an empty message.
      if (body.remaining === 0) return ok({ code, identifier, message: new Uint8Array(0) }, length);
      const msgLen = body.u8();
      const message = body.bytes(msgLen);
      if (body.overrun) return fail('length', 'PAP Ack/Nak: Msg-Length runs past Length', HEADER);
      return ok({ code, identifier, message }, length);
    }
    default:
      return fail('type', `unknown PAP code ${code}`, 0);
  }
}

/** Encode one PAP packet. Field lengths are one octet: longer fields are a programming error (RangeError). */
export function encodePap(p: PapPacket): Uint8Array {
  const fields = p.code === PapCode.AuthenticateRequest ? [p.peerId, p.password] : [p.message];
  if (fields.some((f) => f.length > 255)) throw new RangeError('PAP fields are at most 255 octets');
  const w = new ByteWriter(16);
  w.u8(p.code).u8(p.identifier).u16(0);
  if (p.code === PapCode.AuthenticateRequest) {
    w.u8(p.peerId.length).bytes(p.peerId).u8(p.password.length).bytes(p.password);
  } else {
    w.u8(p.message.length).bytes(p.message);
  }
  w.patchU16(2, w.length);
  return w.finish();
}
