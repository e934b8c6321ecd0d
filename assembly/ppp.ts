// PPP frames on the data path (RFC 1661 section 2, RFC 1662 section 3.2):
//
//   +----------+----------+----------+-------------+
//   | Address  | Control  | Protocol | Information |
//   |   0xff   |   0x03   | 8/16 bit |      *      |
//   +----------+----------+----------+-------------+
//
// Address/Control may be absent (ACFC) and Protocol may be one octet (PFC)
// when negotiated; RFC 1661 6.5/6.6 ask receivers to accept both forms at
// all times, so parsing does. Sending uses the session's negotiated flags.
import { SE_FLAGS, SessionFlag } from './abi';

export const PPP_IPV4: u32 = 0x0021;
export const PPP_IPV6: u32 = 0x0057;
export const PPP_MPPE: u32 = 0x00fd;

/** Result of pppParse, in globals (no allocation): protocol and where the information field starts. */
export let pppProtocol: u32 = 0;
export let pppInfoOffset: u32 = 0;

/** Parse a PPP frame header. Returns false when the frame is too short or the protocol field is malformed. */
export function pppParse(p: usize, len: u32): bool {
  let o: u32 = 0;
  if (len >= 2 && load<u8>(p) == 0xff && load<u8>(p + 1) == 0x03) o = 2;
  if (o >= len) return false;
  const b0 = <u32>load<u8>(p + o);
  if (b0 & 1) {
    // One-octet protocol (PFC): only values 0x01..0xff with the low bit set.
    pppProtocol = b0;
    pppInfoOffset = o + 1;
    return true;
  }
  if (o + 2 > len) return false;
  const b1 = <u32>load<u8>(p + o + 1);
  // RFC 1661 2: the least significant octet is odd, the most significant even.
  if ((b1 & 1) == 0) return false;
  pppProtocol = (b0 << 8) | b1;
  pppInfoOffset = o + 2;
  return true;
}

/** Bytes of PPP header this session puts in front of a packet of `protocol`. */
@inline export function pppHeaderLen(se: usize, protocol: u32): u32 {
  const flags = load<u32>(se + SE_FLAGS);
  let n: u32 = (flags & SessionFlag.ACFC) ? 0 : 2;
  n += ((flags & SessionFlag.PFC) && protocol < 0x100) ? 1 : 2;
  return n;
}

/** Write the PPP header for `protocol` at p (pppHeaderLen bytes). */
export function pppWriteHeader(se: usize, p: usize, protocol: u32): void {
  const flags = load<u32>(se + SE_FLAGS);
  let o: usize = 0;
  if ((flags & SessionFlag.ACFC) == 0) {
    store<u8>(p, 0xff);
    store<u8>(p + 1, 0x03);
    o = 2;
  }
  if ((flags & SessionFlag.PFC) && protocol < 0x100) {
    store<u8>(p + o, <u8>protocol);
  } else {
    store<u8>(p + o, <u8>(protocol >> 8));
    store<u8>(p + o + 1, <u8>protocol);
  }
}
