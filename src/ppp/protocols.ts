/**
 * PPP protocol numbers and control-packet codes.
 *
 * From the specs: RFC 1661 section 2 (Protocol field) and section 5 (codes
 * 1-11), RFC 1570 (LCP Identification 12, Time-Remaining 13), RFC 1962
 * section 2.1 (CCP, compressed datagram, Reset-Request 14 / Reset-Ack 15),
 * RFC 1332 (IPCP), RFC 5072 (IPV6CP). The authentication protocol numbers
 * live in ./auth/types.ts, owned by the authentication protocols.
 */
export { PPP_PAP, PPP_CHAP, PPP_EAP } from './auth/types.js';

/** Network-layer protocols (carried in the data plane once their NCP is Opened). */
export const PPP_IPV4 = 0x0021;
export const PPP_IPV6 = 0x0057;
/** Compressed (here: MPPE-encrypted) datagram, RFC 1962 section 2.1 / RFC 3078 section 3. */
export const PPP_COMPRESSED = 0x00fd;

/** Control protocols. */
export const PPP_LCP = 0xc021;
export const PPP_IPCP = 0x8021;
export const PPP_IPV6CP = 0x8057;
export const PPP_CCP = 0x80fd;

/** Control-packet codes (RFC 1661 section 5 and the extensions named above). */
export enum Code {
  ConfigureRequest = 1,
  ConfigureAck = 2,
  ConfigureNak = 3,
  ConfigureReject = 4,
  TerminateRequest = 5,
  TerminateAck = 6,
  CodeReject = 7,
  ProtocolReject = 8,
  EchoRequest = 9,
  EchoReply = 10,
  DiscardRequest = 11,
  Identification = 12,
  TimeRemaining = 13,
  ResetRequest = 14,
  ResetAck = 15,
}

/** Human-readable protocol names for logs. */
export function protocolName(protocol: number): string {
  switch (protocol) {
    case PPP_IPV4:
      return 'IPv4';
    case PPP_IPV6:
      return 'IPv6';
    case PPP_COMPRESSED:
      return 'compressed';
    case PPP_LCP:
      return 'LCP';
    case PPP_IPCP:
      return 'IPCP';
    case PPP_IPV6CP:
      return 'IPV6CP';
    case PPP_CCP:
      return 'CCP';
    case 0xc023:
      return 'PAP';
    case 0xc223:
      return 'CHAP';
    case 0xc227:
      return 'EAP';
    default:
      return `0x${protocol.toString(16).padStart(4, '0')}`;
  }
}
