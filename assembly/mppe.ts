// MPPE on the data path (RFC 3078), over the RC4/SHA-1 kernels in crypto/.
//
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |      PPP Protocol (0x00fd)    |A|B|C|D|    Coherency Count    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |   Encrypted data: the original protocol field and information...
//
// A (0x80) flushed: the sender changed key / reset RC4 before this packet;
// D (0x10) encrypted (always set); B and C belong to MPPC, never used here.
//
// Sender (per packet): count = count + 1 mod 4096 (the first packet is 0);
// in stateless mode, on every "flag" packet (count & 0xff == 0xff) in
// stateful mode, and on the first packet after a CCP Reset-Request, change
// the key (RFC 3078 7.3, which also re-keys RC4) and set A.
// Receiver, stateless (8.1): change the key once per count step up to the
// packet's count (a late packet, more than half the count space behind, is
// dropped). Receiver, stateful (8.2): a count other than last + 1 means loss:
// discard until a flushed packet, asking the peer for a flush with a CCP
// Reset-Request (diverted to TypeScript); on the flushed packet change the
// key once for every flag packet missed; then a flushed packet changes the
// key as the sender did.
//
// A sender that rekeys on every flushed packet (this one, and Linux's
// ppp_mppe) leaves the receiver one change behind for each flushed packet it
// lost (the answer to a Reset-Request lost, then a second request answered):
// counting cannot tell. So in the discard state a flushed packet is tried
// under 1..MPPE_FLUSH_TRIES key changes and accepted under the first that
// decrypts it to an IPv4 header with a valid checksum (a false match needs
// the protocol field, version, length and 16-bit checksum to agree by
// chance); when none does, the receiver keeps discarding.
import {
  SE_FLAGS, SE_MPPE_FLAGS, SE_MPPE_SEND_CCOUNT, SE_MPPE_RECV_CCOUNT, SE_MPPE_SANITY, SE_MPPE_SEND_KEYS,
  SE_MPPE_SEND_RC4, SE_MPPE_RECV_KEYS, SE_MPPE_RECV_RC4, SCRATCH_MPPE_KEYS, MppeFlag, SessionFlag, Drop, CtrlKind,
} from './abi';
import { rc4Crypt } from './crypto/rc4';
import { mppeStart, mppeRekey, MPPE_OK } from './crypto/mppe';
import { MPPE_STATE_SIZE, RC4_STATE_SIZE } from './crypto/sizes';
import { scratch } from './layout';
import { divert, sessionDrop } from './forward';

// From the spec (RFC 3078 section 3).
export const MPPE_BIT_FLUSHED: u32 = 0x80;
export const MPPE_BIT_ENCRYPTED: u32 = 0x10;
export const MPPE_CCOUNT_SPACE: u32 = 4096;
export const MPPE_HEADER: u32 = 2;
// Our choice: malformed MPPE packets tolerated (decaying by half on each good one) before the link is taken down.
export const MPPE_SANITY_MAX: u32 = 1000;
// Our choice: flushed packets of the sender a stateful receiver may have lost in one discard episode.
export const MPPE_FLUSH_TRIES: u32 = 8;
// Working copies for the trial, in the lower half of scratch past the control
// plane's start keys (the control plane writes scratch only outside process()).
const TRIAL_KEYS: usize = 256;
const TRIAL_RC4: usize = TRIAL_KEYS + 256;
const TRIAL_OUT: usize = TRIAL_RC4 + 320;
/** Decrypted octets a trial looks at: the protocol field and the largest IPv4 header. */
const TRIAL_PROBE: u32 = 62;

/** Result codes of mppeInit (mirrored in src/dataplane/sessions.ts). */
export const MPPE_INIT_OK: i32 = 0;
export const MPPE_INIT_BAD_BITS: i32 = 1;

/**
 * Start MPPE on a session: the control plane put the send and receive start
 * keys (16 octets each) at SCRATCH_MPPE_KEYS; derive both initial session
 * keys and RC4 states. bits: 40, 56 or 128.
 */
export function mppeInit(se: usize, bits: u32, stateless: bool): i32 {
  const keys = scratch + SCRATCH_MPPE_KEYS;
  if (mppeStart(se + SE_MPPE_SEND_KEYS, bits, keys, se + SE_MPPE_SEND_RC4) != MPPE_OK) return MPPE_INIT_BAD_BITS;
  if (mppeStart(se + SE_MPPE_RECV_KEYS, bits, keys + 16, se + SE_MPPE_RECV_RC4) != MPPE_OK) return MPPE_INIT_BAD_BITS;
  memory.fill(keys, 0, 32); // the start keys do not linger in scratch
  store<u32>(se + SE_MPPE_SEND_CCOUNT, MPPE_CCOUNT_SPACE - 1);
  store<u32>(se + SE_MPPE_RECV_CCOUNT, MPPE_CCOUNT_SPACE - 1);
  store<u32>(se + SE_MPPE_SANITY, 0);
  store<u32>(se + SE_MPPE_FLAGS, MppeFlag.ON | (stateless ? MppeFlag.STATELESS : 0));
  store<u32>(se + SE_FLAGS, load<u32>(se + SE_FLAGS) | SessionFlag.MPPE);
  return MPPE_INIT_OK;
}

/** The peer sent a CCP Reset-Request: flush on the next packet we send (RFC 3078 8.2). */
export function mppeResetSend(se: usize): void {
  store<u32>(se + SE_MPPE_FLAGS, load<u32>(se + SE_MPPE_FLAGS) | MppeFlag.SEND_FLUSH);
}

const PROTO_IPV4 = memory.data<u8>([0x00, 0x21]);

/**
 * Encrypt an IPv4 packet for sending: write the 2-octet MPPE header at out,
 * then RC4(protocol 0x0021 | packet) after it. Returns bytes written.
 */
export function mppeEncryptIpv4(se: usize, out: usize, ip: usize, len: u32): u32 {
  const flags = load<u32>(se + SE_MPPE_FLAGS);
  const count = (load<u32>(se + SE_MPPE_SEND_CCOUNT) + 1) & (MPPE_CCOUNT_SPACE - 1);
  store<u32>(se + SE_MPPE_SEND_CCOUNT, count);
  let bits = MPPE_BIT_ENCRYPTED;
  if ((flags & MppeFlag.STATELESS) || (count & 0xff) == 0xff || (flags & MppeFlag.SEND_FLUSH)) {
    mppeRekey(se + SE_MPPE_SEND_KEYS, se + SE_MPPE_SEND_RC4);
    bits |= MPPE_BIT_FLUSHED;
    if (flags & MppeFlag.SEND_FLUSH) store<u32>(se + SE_MPPE_FLAGS, flags & ~MppeFlag.SEND_FLUSH);
  }
  store<u8>(out, <u8>(bits | (count >> 8)));
  store<u8>(out + 1, <u8>count);
  const rc4 = se + SE_MPPE_SEND_RC4;
  rc4Crypt(rc4, PROTO_IPV4, out + 2, 2);
  rc4Crypt(rc4, ip, out + 4, len);
  return len + 4;
}

function bogus(idx: u32, se: usize, reason: i32): void {
  const n = load<u32>(se + SE_MPPE_SANITY) + 100;
  store<u32>(se + SE_MPPE_SANITY, n);
  sessionDrop(se, reason);
  if (n >= MPPE_SANITY_MAX && n < MPPE_SANITY_MAX + 100) divert(idx, CtrlKind.MPPE_SANITY, 0, 0);
}

/**
 * Decrypt an MPPE packet (p: the 2-octet MPPE header, len: header + data)
 * into out. Returns the decrypted length (protocol field included), or 0 when
 * the packet was dropped (counted).
 */
export function mppeDecrypt(idx: u32, se: usize, p: usize, len: u32, out: usize): u32 {
  if (len <= MPPE_HEADER) { sessionDrop(se, Drop.TRUNCATED); return 0; }
  const b0 = <u32>load<u8>(p);
  const count = ((b0 & 0x0f) << 8) | <u32>load<u8>(p + 1);
  const flushed = (b0 & MPPE_BIT_FLUSHED) != 0;
  let flags = load<u32>(se + SE_MPPE_FLAGS);
  const stateless = (flags & MppeFlag.STATELESS) != 0;
  // Sanity (RFC 3078 3): D must be set; every stateless packet and every stateful flag packet is flushed; no MPPC.
  if ((b0 & MPPE_BIT_ENCRYPTED) == 0 || (b0 & 0x60) != 0 || (stateless && !flushed) || (!stateless && (count & 0xff) == 0xff && !flushed)) {
    bogus(idx, se, Drop.MPPE_FLAGS);
    return 0;
  }
  const keys = se + SE_MPPE_RECV_KEYS;
  const rc4 = se + SE_MPPE_RECV_RC4;
  let last = load<u32>(se + SE_MPPE_RECV_CCOUNT);
  if (stateless) {
    const ahead = (count - last) & (MPPE_CCOUNT_SPACE - 1);
    if (ahead == 0 || ahead > MPPE_CCOUNT_SPACE / 2) { sessionDrop(se, Drop.MPPE_COHERENCY); return 0; }
    for (let i: u32 = 0; i < ahead; i++) mppeRekey(keys, rc4);
    store<u32>(se + SE_MPPE_RECV_CCOUNT, count);
  } else {
    if ((flags & MppeFlag.RECV_DISCARD) == 0) {
      const expect = (last + 1) & (MPPE_CCOUNT_SPACE - 1);
      if (count != expect) {
        store<u32>(se + SE_MPPE_FLAGS, flags | MppeFlag.RECV_DISCARD);
        sessionDrop(se, Drop.MPPE_COHERENCY);
        divert(idx, CtrlKind.MPPE_RESET_NEEDED, 0, 0);
        return 0;
      }
    } else {
      if (!flushed) { sessionDrop(se, Drop.MPPE_DISCARD); return 0; }
      // One key change for every flag packet (count & 0xff == 0xff) we missed: those after the
      // last packet accepted and before this one. Counting starts after it: when it was a flag
      // packet itself it changed the key already (ppp_mppe counts from the expected count too).
      let next = (last + 1) & (MPPE_CCOUNT_SPACE - 1);
      while ((count & ~0xff) != (next & ~0xff)) {
        mppeRekey(keys, rc4);
        next = (next + 256) & (MPPE_CCOUNT_SPACE - 1);
      }
      // Then this packet's own change, and one per flushed packet of the sender we lost.
      if (!resyncOnFlushed(keys, rc4, p + MPPE_HEADER, len - MPPE_HEADER)) {
        store<u32>(se + SE_MPPE_RECV_CCOUNT, (next - 1) & (MPPE_CCOUNT_SPACE - 1));
        sessionDrop(se, Drop.MPPE_DISCARD);
        return 0;
      }
      flags &= ~MppeFlag.RECV_DISCARD;
      store<u32>(se + SE_MPPE_FLAGS, flags);
      store<u32>(se + SE_MPPE_RECV_CCOUNT, count);
      rc4Crypt(rc4, p + MPPE_HEADER, out, len - MPPE_HEADER);
      store<u32>(se + SE_MPPE_SANITY, load<u32>(se + SE_MPPE_SANITY) >> 1);
      return len - MPPE_HEADER;
    }
    store<u32>(se + SE_MPPE_RECV_CCOUNT, count);
    if (flushed) mppeRekey(keys, rc4);
  }
  rc4Crypt(rc4, p + MPPE_HEADER, out, len - MPPE_HEADER);
  store<u32>(se + SE_MPPE_SANITY, load<u32>(se + SE_MPPE_SANITY) >> 1);
  return len - MPPE_HEADER;
}

/**
 * Stateful discard state, a flushed packet (data, len: after the MPPE
 * header): change the key 1..MPPE_FLUSH_TRIES times, and keep the first key
 * under which the packet starts with a plausible IPv4 datagram. On success
 * the direction's key and RC4 state are ready to decrypt the packet; on
 * failure they are as they were.
 */
function resyncOnFlushed(keys: usize, rc4: usize, data: usize, len: u32): bool {
  const saved = scratch + TRIAL_KEYS;
  const probe = scratch + TRIAL_RC4;
  const out = scratch + TRIAL_OUT;
  const n = len < TRIAL_PROBE ? len : TRIAL_PROBE;
  memory.copy(saved, keys, MPPE_STATE_SIZE);
  for (let t: u32 = 0; t < MPPE_FLUSH_TRIES; t++) {
    mppeRekey(keys, rc4);
    memory.copy(probe, rc4, RC4_STATE_SIZE);
    rc4Crypt(probe, data, out, n);
    if (plausibleIpv4(out, n)) return true;
  }
  // None fits (or not IPv4): back to where we were; the RC4 state is re-keyed before its next use.
  memory.copy(keys, saved, MPPE_STATE_SIZE);
  return false;
}

/** Decrypted protocol field (0x0021, or 0x21 compressed) and an IPv4 header whose checksum verifies (RFC 791). */
function plausibleIpv4(d: usize, n: u32): bool {
  let ip = d;
  if (n < 1) return false;
  if (load<u8>(d) & 1) {
    if (load<u8>(d) != 0x21) return false;
    ip = d + 1;
  } else {
    if (n < 2 || load<u8>(d) != 0x00 || load<u8>(d + 1) != 0x21) return false;
    ip = d + 2;
  }
  const avail = n - <u32>(ip - d);
  if (avail < 20) return false;
  const vihl = <u32>load<u8>(ip);
  const ihl = (vihl & 0x0f) << 2;
  if ((vihl >> 4) != 4 || ihl < 20 || ihl > avail) return false;
  let sum: u32 = 0;
  for (let i: u32 = 0; i < ihl; i += 2) sum += (<u32>load<u8>(ip + i) << 8) | <u32>load<u8>(ip + i + 1);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}
