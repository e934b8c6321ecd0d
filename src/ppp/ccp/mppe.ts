/**
 * The MPPE option of CCP (RFC 3078 section 2) and the negotiation policy
 * around it.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |    Length     |        Supported Bits         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        Supported Bits         |      Type 18, Length 6
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *   Supported Bits, most significant octet first (bit 31 leftmost):
 *    3                   2                   1
 *    1 0 9 8 7 6 5 4 3 2 1 0 9 8 7 6 5 4 3 2 1 0 9 8 7 6 5 4 3 2 1 0
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   | | | | | | | |H| | | | | | | | | | | | | | | | |M|S|L|D| | | |C|
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   C 0x00000001 MPPC compression (RFC 2118) - always refused here
 *   D 0x00000010 obsolete                    - refused
 *   L 0x00000020 40-bit session keys
 *   S 0x00000040 128-bit session keys
 *   M 0x00000080 56-bit session keys
 *   H 0x01000000 stateless mode (key change on every packet)
 *
 * CCP negotiates each direction separately (RFC 1962 section 1: the options
 * of a Configure-Request describe what its sender will receive). We request
 * every strength we allow (the peer picks one by Nak-ing with a single bit)
 * and, when judging the peer's request, pick the strongest strength we
 * allow among those it offers, Nak-ing with exactly one bit. The session
 * requires both directions to end with the same strength and mode.
 */
import type { MppeMasterKeys } from '../auth/types.js';
import { mppeSessionKeys } from '../auth/mppe-keys.js';

// From the spec (RFC 3078 section 2).
export const CCP_OPT_MPPE = 18;
export const MPPE_C = 0x00000001;
export const MPPE_D = 0x00000010;
export const MPPE_L = 0x00000020;
export const MPPE_S = 0x00000040;
export const MPPE_M = 0x00000080;
export const MPPE_H = 0x01000000;
export const MPPE_STRENGTH_MASK = MPPE_L | MPPE_M | MPPE_S;
/**
 * Octets an encrypted datagram adds to the information field it carries
 * (RFC 3078 section 3): the 2-octet header (A B C D bits, coherency count)
 * and the original Protocol field, now inside the encrypted data. The
 * largest packet a peer with MRU m receives encrypted is m - 4 (pppd's
 * MPPE_PAD: its interface MTU is the peer's MRU less 4).
 */
export const MPPE_OVERHEAD = 4;

export type MppeBits = 40 | 56 | 128;
export type MppePolicyName = 'deny' | 'allow' | 'require';

export interface MppePolicy {
  policy: MppePolicyName;
  /** Strengths we accept. */
  strengths: readonly MppeBits[];
  /** Accept stateless mode when the peer asks for it. */
  statelessAllowed: boolean;
  /** Ask for stateless mode ourselves (implies allowed). */
  statelessPreferred: boolean;
  /**
   * Whose mode wins when the two requests differ in H. CCP negotiates each
   * direction on its own (RFC 1962 section 1), but one link runs one mode
   * both ways here (a mismatch ends the session), so one side settles it,
   * and exactly one: two followers swap modes, and so do two sides that each
   * insist on their own but yield to a Nak. PppSession picks by role unless told.
   *  - 'ours' (the default here; a client's): the mode of our own request. A
   *    request of the other mode is Nak'd with ours, never acknowledged while
   *    we ask for the other; ours changes only when the peer Naks it (and the
   *    policy allows the suggestion).
   *  - 'peer' (a server's: "stateful or stateless as the client asks"): the
   *    mode the peer asks for, when the policy allows it; our own request
   *    follows it from then on, until the peer has acknowledged our request.
   */
  modeChoice?: 'ours' | 'peer';
}

export const DEFAULT_MPPE_POLICY: Readonly<MppePolicy> = Object.freeze({
  policy: 'allow',
  strengths: Object.freeze([128]) as readonly MppeBits[],
  statelessAllowed: true,
  statelessPreferred: false,
});

/** Strongest first. */
const STRENGTH_ORDER: readonly [MppeBits, number][] = [
  [128, MPPE_S],
  [56, MPPE_M],
  [40, MPPE_L],
];

export function strengthBit(bits: MppeBits): number {
  return bits === 128 ? MPPE_S : bits === 56 ? MPPE_M : MPPE_L;
}

export function strengthMask(strengths: readonly MppeBits[]): number {
  return strengths.reduce((m, b) => m | strengthBit(b), 0);
}

/** The strongest strength set in `mask`, if any. */
export function strongest(mask: number): MppeBits | undefined {
  for (const [b, bit] of STRENGTH_ORDER) if (mask & bit) return b;
  return undefined;
}

/** Exactly one strength bit set: that strength. */
export function singleStrength(mask: number): MppeBits | undefined {
  const s = mask & MPPE_STRENGTH_MASK;
  if (s === MPPE_S) return 128;
  if (s === MPPE_M) return 56;
  if (s === MPPE_L) return 40;
  return undefined;
}

export function describeMppeBits(v: number): string {
  const names: string[] = [];
  if (v & MPPE_H) names.push('H(stateless)');
  if (v & MPPE_M) names.push('M(56)');
  if (v & MPPE_S) names.push('S(128)');
  if (v & MPPE_L) names.push('L(40)');
  if (v & MPPE_D) names.push('D');
  if (v & MPPE_C) names.push('C(MPPC)');
  const unknown = v & ~(MPPE_H | MPPE_STRENGTH_MASK | MPPE_D | MPPE_C);
  if (unknown) names.push(`unknown 0x${unknown.toString(16)}`);
  return `0x${v.toString(16).padStart(8, '0')} ${names.join(' ') || '(none)'}`;
}

/** The MPPE parameters of one link once CCP is Opened, as the data plane needs them. */
export interface MppeSession {
  bits: MppeBits;
  stateless: boolean;
  /** Initial session keys (RFC 3079 3.1-3.3), already reduced for 40/56 bits. */
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  /** Start keys the stateless/stateful key changes derive from (RFC 3078 7.3). */
  sendStartKey: Uint8Array;
  recvStartKey: Uint8Array;
}

/** Keys for a negotiated strength, from the master keys of the side holding them. */
export function deriveMppeSession(master: MppeMasterKeys, bits: MppeBits, stateless: boolean): MppeSession {
  const k = mppeSessionKeys(master, bits);
  return {
    bits,
    stateless,
    sendKey: k.send.sessionKey,
    recvKey: k.receive.sessionKey,
    sendStartKey: k.send.startKey,
    recvStartKey: k.receive.startKey,
  };
}
