/**
 * EAP packets, RFC 3748 section 4 (PPP protocol 0xc227), and the
 * EAP-MSCHAPv2 Type-Data of draft-kamath-pppext-eap-mschapv2 (Type 26).
 *
 * EAP packet (RFC 3748 4):
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Code      |  Identifier   |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |  Type-Data ...            (Request/Response only)
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Success and Failure are the bare 4-octet header (RFC 3748 4.2: they
 * "MUST NOT contain additional data"; as a receiver we ignore any).
 *
 * EAP-MSCHAPv2 Type-Data (draft-kamath section 2):
 *   Challenge / Response:
 *   +--------+-------------+-----------+------------+-------+------+
 *   | OpCode | MS-CHAPv2-ID| MS-Length | Value-Size | Value | Name |
 *   |   1    |      1      |     2     |     1      | 16/49 |  ... |
 *   +--------+-------------+-----------+------------+-------+------+
 *   Success / Failure Request:
 *   +--------+-------------+-----------+---------------------------+
 *   | OpCode | MS-CHAPv2-ID| MS-Length |  Message (RFC 2759 5 / 6) |
 *   +--------+-------------+-----------+---------------------------+
 *   Success / Failure Response: the OpCode alone.
 * MS-Length is the length of the Type-Data from OpCode on (EAP Length - 5).
 */
import { ByteReader, ByteWriter, fail, ok, type DecodeResult } from '../../util/decode.js';

// From the spec (RFC 3748 4, 5; draft-kamath 2).
export const EapCode = { Request: 1, Response: 2, Success: 3, Failure: 4 } as const;
export const EapType = { Identity: 1, Notification: 2, Nak: 3, MsChapV2: 26, Expanded: 254 } as const;
export const MsChapV2OpCode = { Challenge: 1, Response: 2, Success: 3, Failure: 4, ChangePassword: 7 } as const;

const HEADER = 4;

export type EapPacket =
  | { code: typeof EapCode.Request | typeof EapCode.Response; identifier: number; type: number; data: Uint8Array }
  | { code: typeof EapCode.Success | typeof EapCode.Failure; identifier: number };

export function decodeEap(buf: Uint8Array): DecodeResult<EapPacket> {
  if (buf.length < HEADER) return fail('truncated', `EAP packet of ${buf.length} octets is shorter than its 4-octet header`);
  const r = new ByteReader(buf);
  const code = r.u8();
  const identifier = r.u8();
  const length = r.u16();
  if (length < HEADER) return fail('length', `EAP Length ${length} is below the header size`, 2);
  if (length > buf.length) return fail('truncated', `EAP Length ${length} exceeds the ${buf.length} octets received`, 2);
  switch (code) {
    case EapCode.Request:
    case EapCode.Response:
      if (length < HEADER + 1) return fail('length', 'EAP Request/Response without a Type', 2);
      return ok({ code, identifier, type: buf[HEADER]!, data: buf.slice(HEADER + 1, length) }, length);
    case EapCode.Success:
    case EapCode.Failure:
      return ok({ code, identifier }, length);
    default:
      return fail('type', `unknown EAP code ${code}`, 0);
  }
}

export function encodeEap(p: EapPacket): Uint8Array {
  const w = new ByteWriter(64);
  w.u8(p.code).u8(p.identifier).u16(0);
  if (p.code === EapCode.Request || p.code === EapCode.Response) w.u8(p.type).bytes(p.data);
  if (w.length > 0xffff) throw new RangeError('EAP packet over 65535 octets');
  return w.patchU16(2, w.length).finish();
}

export type EapMsChapV2 =
  | { op: typeof MsChapV2OpCode.Challenge | typeof MsChapV2OpCode.Response; msId: number; value: Uint8Array; name: Uint8Array }
  | { op: typeof MsChapV2OpCode.Success | typeof MsChapV2OpCode.Failure; msId: number; message: Uint8Array }
  /** The peer's acknowledgement of a Success or Failure Request: OpCode only. */
  | { op: 'success-ack' | 'failure-ack' };

export function decodeEapMsChapV2(data: Uint8Array): DecodeResult<EapMsChapV2> {
  if (data.length === 0) return fail('truncated', 'EAP-MSCHAPv2 Type-Data is empty');
  const op = data[0]!;
  if (data.length === 1) {
    if (op === MsChapV2OpCode.Success) return ok({ op: 'success-ack' }, 1);
    if (op === MsChapV2OpCode.Failure) return ok({ op: 'failure-ack' }, 1);
  }
  if (data.length < 4) return fail('truncated', `EAP-MSCHAPv2 header needs 4 octets, got ${data.length}`);
  const r = new ByteReader(data, 1);
  const msId = r.u8();
  const msLength = r.u16();
  if (msLength < 4) return fail('length', `MS-Length ${msLength} is below the header size`, 2);
  if (msLength > data.length) return fail('length', `MS-Length ${msLength} exceeds the ${data.length} octets of Type-Data`, 2);
  const body = new ByteReader(data, 4, msLength);
  switch (op) {
    case MsChapV2OpCode.Challenge:
    case MsChapV2OpCode.Response: {
      const size = body.u8();
      const value = body.bytes(size);
      if (body.overrun || size === 0) return fail('length', 'EAP-MSCHAPv2 Value-Size runs past MS-Length or is zero', 4);
      return ok({ op, msId, value: value.slice(), name: body.bytes(body.remaining).slice() }, msLength);
    }
    case MsChapV2OpCode.Success:
    case MsChapV2OpCode.Failure:
      return ok({ op, msId, message: body.bytes(body.remaining).slice() }, msLength);
    default:
      return fail('type', `unsupported EAP-MSCHAPv2 OpCode ${op}`, 0);
  }
}

export function encodeEapMsChapV2(m: EapMsChapV2): Uint8Array {
  if (!('msId' in m)) return Uint8Array.of(m.op === 'success-ack' ? MsChapV2OpCode.Success : MsChapV2OpCode.Failure);
  const w = new ByteWriter(64);
  w.u8(m.op).u8(m.msId).u16(0);
  if ('value' in m) {
    if (m.value.length === 0 || m.value.length > 255) throw new RangeError('EAP-MSCHAPv2 Value is 1..255 octets');
    w.u8(m.value.length).bytes(m.value).bytes(m.name);
  } else {
    w.bytes(m.message);
  }
  return w.patchU16(2, w.length).finish();
}
