/**
 * PPP frames as the tunnels carry them: RFC 1661 section 2 encapsulation,
 * optionally preceded by the RFC 1662 section 3.1 Address and Control fields.
 * SSTP, PPTP's GRE and L2TP carry whole frames with their own length and
 * integrity, so there are no flag sequences, no octet stuffing and no FCS.
 *
 *   +----------+----------+----------+-------------+---------+
 *   | Address  | Control  | Protocol | Information | Padding |
 *   |   0xff   |   0x03   | 8/16 bits|      *      |    *    |
 *   +----------+----------+----------+-------------+---------+
 *    absent when Address-and-Control-   one octet when Protocol-Field-
 *    Field-Compression was negotiated   Compression was negotiated and
 *    (RFC 1661 6.6)                     the value fits (RFC 1661 6.5)
 *
 * Receive is liberal: both forms of both fields are accepted whatever was
 * negotiated (RFC 1661 6.5/6.6: an implementation that has negotiated
 * compression must still accept uncompressed frames; we also accept
 * compressed ones that were not negotiated, as pppd does).
 */
import { fail, ok, type DecodeResult } from '../util/decode.js';
import { PPP_LCP } from './protocols.js';

/** From the spec: RFC 1662 section 3.1 All-Stations address and Unnumbered Information control. */
export const PPP_ADDRESS = 0xff;
export const PPP_CONTROL = 0x03;

export interface PppFrame {
  protocol: number;
  /** Information field (and any padding): a view into the input, not a copy. */
  info: Uint8Array;
  /** The frame carried ff 03. */
  hadAddressControl: boolean;
  /** The protocol field was one octet. */
  compressedProtocol: boolean;
}

/** Compression our sends may use: what the peer asked for and we acknowledged. */
export interface FrameFlags {
  /** Address-and-Control-Field-Compression. */
  acfc: boolean;
  /** Protocol-Field-Compression. */
  pfc: boolean;
}

export const NO_COMPRESSION: FrameFlags = Object.freeze({ acfc: false, pfc: false });

/**
 * RFC 1661 section 2: a valid protocol number has the least significant bit
 * of its low octet set and of its high octet clear.
 */
export function isValidProtocol(protocol: number): boolean {
  return protocol >= 0 && protocol <= 0xffff && (protocol & 0x0001) === 1 && (protocol & 0x0100) === 0;
}

export function decodeFrame(buf: Uint8Array): DecodeResult<PppFrame> {
  let p = 0;
  let hadAddressControl = false;
  if (buf.length === 0) return fail('truncated', 'empty frame', 0);
  if (buf[0] === PPP_ADDRESS) {
    // 0xff is never a valid one-octet protocol (0x00ff is reserved), so a
    // leading 0xff is the Address field; RFC 1662 3.1: unknown Control -> discard.
    if (buf.length < 2) return fail('truncated', 'frame ends after the Address field', 1);
    if (buf[1] !== PPP_CONTROL) return fail('magic', `Control field 0x${buf[1]!.toString(16)} is not 0x03`, 1);
    p = 2;
    hadAddressControl = true;
  }
  if (p >= buf.length) return fail('truncated', 'frame has no Protocol field', p);
  const b0 = buf[p]!;
  let protocol: number;
  let compressedProtocol: boolean;
  if (b0 & 1) {
    protocol = b0;
    compressedProtocol = true;
    p += 1;
  } else {
    if (p + 2 > buf.length) return fail('truncated', 'frame ends inside the Protocol field', p);
    const b1 = buf[p + 1]!;
    if ((b1 & 1) === 0) return fail('value', `protocol 0x${((b0 << 8) | b1).toString(16)} has an even low octet (RFC 1661 section 2)`, p);
    protocol = (b0 << 8) | b1;
    compressedProtocol = false;
    p += 2;
  }
  return ok({ protocol, info: buf.subarray(p), hadAddressControl, compressedProtocol }, buf.length);
}

/** Length of the frame header {@link encodeFrame} writes for this protocol and these flags. */
export function frameHeaderLength(protocol: number, flags: FrameFlags = NO_COMPRESSION): number {
  return (addressControlOmitted(protocol, flags) ? 0 : 2) + (protocolCompressed(protocol, flags) ? 1 : 2);
}

function addressControlOmitted(protocol: number, flags: FrameFlags): boolean {
  // RFC 1661 6.6: LCP packets MUST be sent with the Address and Control fields.
  return flags.acfc && protocol !== PPP_LCP;
}

function protocolCompressed(protocol: number, flags: FrameFlags): boolean {
  // RFC 1661 6.5: only values 0x0000-0x00ff can be sent in one octet.
  return flags.pfc && protocol < 0x100;
}

export function encodeFrame(protocol: number, info: Uint8Array, flags: FrameFlags = NO_COMPRESSION): Uint8Array {
  if (!isValidProtocol(protocol)) throw new RangeError(`invalid PPP protocol number 0x${protocol.toString(16)}`);
  const hlen = frameHeaderLength(protocol, flags);
  const out = new Uint8Array(hlen + info.length);
  let p = 0;
  if (!addressControlOmitted(protocol, flags)) {
    out[p++] = PPP_ADDRESS;
    out[p++] = PPP_CONTROL;
  }
  if (protocolCompressed(protocol, flags)) {
    out[p++] = protocol;
  } else {
    out[p++] = protocol >>> 8;
    out[p++] = protocol & 0xff;
  }
  out.set(info, p);
  return out;
}
