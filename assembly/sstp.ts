// SSTP data framing (MS-SSTP 2.2.1, 2.2.2) on the data path.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |    Version    |  Reserved   |C|  R    |     LengthPacket      |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |               Data (PPP frame) or control message             |
//
// Version is 0x10 (1.0); C = 1 marks a control packet; LengthPacket (12
// bits) counts the whole packet including this header, so a packet is 4 to
// 4095 bytes.
//
// Uplink: TypeScript copies the TLS plaintext of a session into STREAM_IN
// slots in order. sstpStreamIn() deframes it (packets split across slots are
// reassembled in the session's stream buffer), forwards IP and diverts
// everything else (SSTP control, LCP, auth, NCPs) to the CTRL ring.
// Downlink: sstpDownlink() frames an IP packet and appends it to the open
// STREAM_OUT slot of its session, so a burst for one session leaves as one
// TLS write; sstpFlush() publishes the open slot at the end of a batch.
import {
  RingId, Drop, Stat, SE_STATE, SE_KIND, SE_FLAGS, SE_STREAM_PARTIAL, SessionState, SessionFlag, Tunnel, CtrlKind,
  SLOT_PAYLOAD_OFFSET, NO_SESSION, STREAM_BUF_SIZE,
} from './abi';
import { ringAddr, ringReady, ringPeek, ringRelease, ringReserve, ringPublish, slotLen, slotData, slotValid, slotSession, slotSet, slotCapacity } from './ring';
import { count, drop } from './stats';
import { sessionAddr } from './session';
import { maxSessions, streamBuf, streamBufSize } from './layout';
import { pppParse, pppProtocol, pppInfoOffset, pppHeaderLen, pppWriteHeader, PPP_IPV4, PPP_IPV6 } from './ppp';
import { deliverIpv4, divert, sessionDrop, accountDown, ctrlHasRoom } from './forward';

// From the spec (MS-SSTP 2.2.1).
export const SSTP_VERSION: u32 = 0x10;
export const SSTP_HEADER: u32 = 4;
export const SSTP_MAX_PACKET: u32 = 4095;

@inline function sstpLength(p: usize): u32 {
  return ((<u32>load<u8>(p + 2) & 0x0f) << 8) | <u32>load<u8>(p + 3);
}

/** A header is acceptable when the version is 1.0 and the length can hold the header. */
@inline function sstpHeaderOk(p: usize): bool {
  return <u32>load<u8>(p) == SSTP_VERSION && sstpLength(p) >= SSTP_HEADER;
}

/** One whole SSTP packet from session idx's stream. */
function sstpPacket(idx: u32, se: usize, p: usize, len: u32): void {
  if (load<u8>(p + 1) & 1) {
    divert(idx, CtrlKind.SSTP_CONTROL, p, len);
    return;
  }
  const f = p + SSTP_HEADER;
  const flen = len - SSTP_HEADER;
  if (!pppParse(f, flen)) { sessionDrop(se, Drop.PPP_PROTOCOL); return; }
  const proto = pppProtocol;
  if (proto == PPP_IPV4) {
    deliverIpv4(idx, se, f + pppInfoOffset, flen - pppInfoOffset);
  } else if (proto == PPP_IPV6) {
    sessionDrop(se, Drop.IPV6_NOT_ROUTED);
  } else if (proto >= 0x8000 || proto == 0x00fd || proto == 0x00fb) {
    // Control protocols (0x8000-0xffff: NCPs, LCP, auth) and unexpected
    // compressed/encrypted datagrams: the PPP engine answers (or rejects) them.
    divert(idx, CtrlKind.PPP_FRAME, f, flen);
  } else {
    // Another network protocol: PPP answers with an LCP Protocol-Reject.
    divert(idx, CtrlKind.PPP_FRAME, f, flen);
  }
}

/** The stream framing of a session broke: stop parsing it and tell TypeScript. */
function streamBroken(idx: u32, se: usize): void {
  store<u32>(se + SE_FLAGS, load<u32>(se + SE_FLAGS) | SessionFlag.STREAM_BROKEN);
  store<u32>(se + SE_STREAM_PARTIAL, 0);
  sessionDrop(se, Drop.SSTP_HEADER);
  divert(idx, CtrlKind.STREAM_ERROR, 0, 0);
}

/** Feed `len` stream bytes at p to session idx. */
function streamBytes(idx: u32, se: usize, p: usize, len: u32): void {
  const buf = streamBuf + <usize>idx * <usize>streamBufSize;
  let off: u32 = 0;
  while (off < len) {
    if (load<u32>(se + SE_FLAGS) & SessionFlag.STREAM_BROKEN) return;
    let have = load<u32>(se + SE_STREAM_PARTIAL);
    if (have > 0) {
      // Complete the header first, then the packet, from the stream buffer.
      if (have < SSTP_HEADER) {
        const take = min(SSTP_HEADER - have, len - off);
        memory.copy(buf + have, p + off, take);
        have += take;
        off += take;
        store<u32>(se + SE_STREAM_PARTIAL, have);
        if (have < SSTP_HEADER) return;
        if (!sstpHeaderOk(buf)) { streamBroken(idx, se); return; }
      }
      const need = sstpLength(buf) - have;
      const take = min(need, len - off);
      memory.copy(buf + have, p + off, take);
      have += take;
      off += take;
      if (have < sstpLength(buf)) {
        store<u32>(se + SE_STREAM_PARTIAL, have);
        return;
      }
      store<u32>(se + SE_STREAM_PARTIAL, 0);
      sstpPacket(idx, se, buf, have);
      continue;
    }
    const rest = len - off;
    const q = p + off;
    if (rest >= SSTP_HEADER) {
      if (!sstpHeaderOk(q)) { streamBroken(idx, se); return; }
      const plen = sstpLength(q);
      if (plen <= rest) {
        sstpPacket(idx, se, q, plen);
        off += plen;
        continue;
      }
    }
    // An incomplete packet: keep it (at most 4094 bytes, well inside the buffer).
    memory.copy(buf, q, rest);
    store<u32>(se + SE_STREAM_PARTIAL, rest);
    return;
  }
}

/** Consume STREAM_IN slots: each carries stream bytes for the session in its slot header. */
export function sstpStreamIn(budget: u32): u32 {
  const r = ringAddr(RingId.STREAM_IN);
  if (r == 0 || streamBufSize < <u32>STREAM_BUF_SIZE) return 0;
  let done: u32 = 0;
  while (done < budget && ringReady(r) > 0 && ctrlHasRoom()) {
    const s = ringPeek(r);
    done++;
    const idx = slotSession(s);
    if (!slotValid(r, s) || idx >= maxSessions) { drop(Drop.BAD_SLOT); ringRelease(r); continue; }
    const se = sessionAddr(idx);
    const state = load<u32>(se + SE_STATE);
    if (state == SessionState.FREE || load<u32>(se + SE_KIND) != Tunnel.SSTP) { drop(Drop.STREAM_NO_SESSION); ringRelease(r); continue; }
    const len = slotLen(s);
    count(Stat.STREAM_IN_BYTES, len);
    streamBytes(idx, se, slotData(s), len);
    ringRelease(r);
  }
  return done;
}

// The open STREAM_OUT slot: frames for one session are appended until the
// session changes, the slot is full, or the batch ends.
let outSlot: usize = 0;
let outSession: u32 = NO_SESSION;
let outLen: u32 = 0;

/** Publish the open STREAM_OUT slot, if any. */
export function sstpFlush(): void {
  if (outSlot == 0) return;
  const r = ringAddr(RingId.STREAM_OUT);
  slotSet(outSlot, SLOT_PAYLOAD_OFFSET, outLen, outSession, 0, 0);
  ringPublish(r, outLen);
  count(Stat.STREAM_OUT_BYTES, outLen);
  outSlot = 0;
  outSession = NO_SESSION;
  outLen = 0;
}

/** Frame an IPv4 packet for session idx and queue it on STREAM_OUT. */
export function sstpDownlink(idx: u32, se: usize, p: usize, len: u32): void {
  const hdr = SSTP_HEADER + pppHeaderLen(se, PPP_IPV4);
  const total = hdr + len;
  if (total > SSTP_MAX_PACKET) { sessionDrop(se, Drop.TOO_BIG); return; }
  const r = ringAddr(RingId.STREAM_OUT);
  if (r == 0) { sessionDrop(se, Drop.RING_FULL); return; }
  const cap = slotCapacity(r, SLOT_PAYLOAD_OFFSET);
  if (outSlot != 0 && (outSession != idx || outLen + total > cap)) sstpFlush();
  if (outSlot == 0) {
    const s = ringReserve(r);
    if (s == 0) { sessionDrop(se, Drop.RING_FULL); return; }
    outSlot = s;
    outSession = idx;
    outLen = 0;
  }
  const q = outSlot + SLOT_PAYLOAD_OFFSET + outLen;
  store<u8>(q, <u8>SSTP_VERSION);
  store<u8>(q + 1, 0);
  store<u8>(q + 2, <u8>(total >> 8));
  store<u8>(q + 3, <u8>total);
  pppWriteHeader(se, q + SSTP_HEADER, PPP_IPV4);
  memory.copy(q + hdr, p, len);
  outLen += total;
  accountDown(se, len);
}
