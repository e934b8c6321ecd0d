/**
 * The control-packet format shared by LCP, IPCP, IPV6CP and CCP
 * (RFC 1661 section 5) and the Configuration Option format inside
 * Configure-Request/Ack/Nak/Reject (RFC 1661 section 6 / 5.1).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Code      |  Identifier   |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |    Data ...
 *   +-+-+-+-+-+-+-+-+
 *
 *   Configuration Option:
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |    Length     |    Data ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Both decoders are total: a malformed packet is a typed failure, which the
 * caller drops and counts (RFC 1661 section 5: "...packets with a Length
 * larger than received MUST be silently discarded").
 */
import { fail, ok, type DecodeResult } from '../util/decode.js';

/** From the spec: Code + Identifier + Length. */
export const CONTROL_HEADER_LENGTH = 4;
/** From the spec: Type + Length. */
export const OPTION_HEADER_LENGTH = 2;

export interface ControlPacket {
  code: number;
  id: number;
  /** Data field, as bounded by the Length field. */
  data: Uint8Array;
  /** The whole packet as bounded by the Length field (what a Code-Reject quotes). */
  raw: Uint8Array;
}

export function decodeControlPacket(buf: Uint8Array): DecodeResult<ControlPacket> {
  if (buf.length < CONTROL_HEADER_LENGTH) return fail('truncated', `control packet of ${buf.length} octets is shorter than its header`, 0);
  const length = (buf[2]! << 8) | buf[3]!;
  if (length < CONTROL_HEADER_LENGTH) return fail('length', `Length field ${length} is shorter than the header`, 2);
  // RFC 1661 section 5: Length larger than the packet -> silently discard.
  if (length > buf.length) return fail('length', `Length field ${length} exceeds the ${buf.length} octets received`, 2);
  // Octets beyond Length are data-link padding and are ignored (same section).
  const raw = buf.subarray(0, length);
  return ok({ code: buf[0]!, id: buf[1]!, data: raw.subarray(CONTROL_HEADER_LENGTH), raw }, length);
}

export function encodeControlPacket(code: number, id: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const length = CONTROL_HEADER_LENGTH + data.length;
  if (length > 0xffff) throw new RangeError(`control packet of ${length} octets does not fit the Length field`);
  const out = new Uint8Array(length);
  out[0] = code;
  out[1] = id & 0xff;
  out[2] = length >>> 8;
  out[3] = length & 0xff;
  out.set(data, CONTROL_HEADER_LENGTH);
  return out;
}

export interface RawOption {
  type: number;
  /** Option data (after Type and Length). */
  data: Uint8Array;
  /** The whole option, Type and Length included (echoed verbatim in Ack and Reject). */
  raw: Uint8Array;
}

/**
 * Split a Configure-* data field into options. An option Length below 2 or
 * running past the end makes the whole packet malformed: its options cannot
 * be delimited, so it is dropped rather than answered.
 */
export function decodeOptions(buf: Uint8Array): DecodeResult<RawOption[]> {
  const opts: RawOption[] = [];
  let p = 0;
  while (p < buf.length) {
    if (p + OPTION_HEADER_LENGTH > buf.length) return fail('truncated', 'option header cut off', p);
    const len = buf[p + 1]!;
    if (len < OPTION_HEADER_LENGTH) return fail('length', `option type ${buf[p]} has Length ${len} (< 2)`, p + 1);
    if (p + len > buf.length) return fail('length', `option type ${buf[p]} Length ${len} runs past the end of the packet`, p + 1);
    const raw = buf.subarray(p, p + len);
    opts.push({ type: buf[p]!, data: raw.subarray(OPTION_HEADER_LENGTH), raw });
    p += len;
  }
  return ok(opts, buf.length);
}

export function encodeOption(type: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const len = OPTION_HEADER_LENGTH + data.length;
  if (len > 0xff) throw new RangeError(`option ${type} of ${len} octets does not fit its Length field`);
  const out = new Uint8Array(len);
  out[0] = type;
  out[1] = len;
  out.set(data, OPTION_HEADER_LENGTH);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
