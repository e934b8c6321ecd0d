// PPTP data path: enhanced GRE (RFC 2637 section 4.1) carrying PPP, with MPPE.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |    Key (HW) Payload Length    |       Key (LW) Call ID        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                  Sequence Number (Optional)                   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |               Acknowledgment Number (Optional)                |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// C, R, s, Recur and Flags are 0; K is 1; Ver is 1; Protocol Type 0x880b.
// The key's low half is the call id of the receiver, so a received packet
// is found by OUR call id, and carries the length of the payload after the
// header. S marks a sequenced data packet, A an acknowledgment of the
// highest sequence number the sender received.
//
// Receive (4.2-4.4): a sequence number not after the last one received is
// a duplicate or late packet and is dropped (PPP tolerates loss; stateful
// MPPE resynchronises). Acknowledgments ride on our next data packet; a
// session that received data but sent none during a batch gets an ack-only
// packet (S = 0, A = 1, no payload) at the end of the batch, so the peer's
// send window keeps opening without a timer.
import {
  RingId, Drop, Stat, SE_STATE, SE_KIND, SE_FLAGS, SE_PEER_ADDR, SE_GRE_MY_CALL, SE_GRE_PEER_CALL, SE_GRE_SEND_SEQ,
  SE_GRE_RECV_SEQ, SE_GRE_FLAGS, SE_GRE_PEER_ACK, SE_MPPE_FLAGS, GreFlag, MppeFlag, SessionState, SessionFlag,
  Tunnel, CtrlKind, SLOT_PAYLOAD_OFFSET, SLOT_SIZE, NO_SESSION, SE_V4,
} from './abi';
import { ringAddr, ringReady, ringPeek, ringRelease, ringReserve, ringPublish, slotLen, slotData, slotValid, slotSession, slotAddr, slotSet } from './ring';
import { be16, be32, putBe16, putBe32, ipv4HeaderLen } from './ip';
import { count, drop } from './stats';
import { sessionAddr } from './session';
import { callIdTable, maxSessions, scratch, scratchSize } from './layout';
import { pppParse, pppProtocol, pppInfoOffset, pppHeaderLen, pppWriteHeader, PPP_IPV4, PPP_IPV6, PPP_MPPE } from './ppp';
import { deliverIpv4, divert, sessionDrop, accountDown, accountUp, ctrlHasRoom } from './forward';
import { mppeDecrypt, mppeEncryptIpv4, MPPE_HEADER } from './mppe';

// From the spec (RFC 2637 4.1).
export const GRE_PROTO_PPP: u32 = 0x880b;
export const GRE_FLAG_K: u32 = 0x20;
export const GRE_FLAG_S: u32 = 0x10;
export const GRE_FLAG_A: u32 = 0x80; // in the second octet
export const GRE_VERSION: u32 = 1;
export const GRE_BASE_HEADER: u32 = 8;

// ---- call id table --------------------------------------------------------

/** Bind a PPTP session's call id (on attach). Returns false when the id is taken. */
export function greBind(idx: u32, se: usize): bool {
  const id = load<u32>(se + SE_GRE_MY_CALL) & 0xffff;
  const e = callIdTable + (<usize>id << 2);
  if (load<u32>(e) != 0) return false;
  store<u32>(e, idx + 1);
  return true;
}

export function greUnbind(idx: u32, se: usize): void {
  const e = callIdTable + (<usize>(load<u32>(se + SE_GRE_MY_CALL) & 0xffff) << 2);
  if (load<u32>(e) == idx + 1) store<u32>(e, 0);
}

// ---- pending acknowledgments (scratch: a list of session indexes) ----------

// The list lives in the upper half of scratch; the lower half is for the control plane.
let ackCount: u32 = 0;

@inline function ackList(): usize {
  return scratch + (<usize>scratchSize >> 1);
}

function markAckPending(idx: u32, se: usize): void {
  const f = load<u32>(se + SE_GRE_FLAGS);
  if (f & GreFlag.ACK_PENDING) return;
  store<u32>(se + SE_GRE_FLAGS, f | GreFlag.ACK_PENDING);
  if (<usize>(ackCount + 1) * 4 <= (<usize>scratchSize >> 1)) {
    store<u32>(ackList() + (<usize>ackCount << 2), idx);
    ackCount++;
  }
}

// ---- send -------------------------------------------------------------------

/**
 * Write the GRE header for a packet whose payload (length plen) starts at
 * `payload`, in the headroom in front of it. Returns the header's start.
 */
function greHeader(se: usize, payload: usize, plen: u32, sequenced: bool): usize {
  const f = load<u32>(se + SE_GRE_FLAGS);
  const ack = (f & GreFlag.ACK_PENDING) != 0;
  const hlen = GRE_BASE_HEADER + (sequenced ? 4 : 0) + (ack ? 4 : 0);
  const h = payload - hlen;
  store<u8>(h, <u8>(GRE_FLAG_K | (sequenced ? GRE_FLAG_S : 0)));
  store<u8>(h + 1, <u8>((ack ? GRE_FLAG_A : 0) | GRE_VERSION));
  putBe16(h + 2, GRE_PROTO_PPP);
  putBe16(h + 4, plen);
  putBe16(h + 6, load<u32>(se + SE_GRE_PEER_CALL) & 0xffff);
  let o: usize = 8;
  if (sequenced) {
    const seq = load<u32>(se + SE_GRE_SEND_SEQ);
    putBe32(h + o, seq);
    store<u32>(se + SE_GRE_SEND_SEQ, seq + 1);
    o += 4;
  }
  if (ack) {
    putBe32(h + o, load<u32>(se + SE_GRE_RECV_SEQ));
    store<u32>(se + SE_GRE_FLAGS, f & ~GreFlag.ACK_PENDING);
  }
  return h;
}

function greSend(se: usize, s: usize, h: usize, end: usize): void {
  const tx = ringAddr(RingId.GRE_TX);
  const len = <u32>(end - h);
  slotSet(s, <u32>(h - s), len, NO_SESSION, load<u32>(se + SE_PEER_ADDR), 0);
  ringPublish(tx, len);
}

// Downlink layout in a GRE_TX slot: the encrypted datagram is written at a
// fixed offset; PPP, GRE headers go in front of it (room for the largest:
// GRE 16 + PPP 4 + MPPE 2).
const DATA_AT: usize = SLOT_PAYLOAD_OFFSET + 24;

/** Send an IPv4 packet down a PPTP session (TUN -> GRE). */
export function greDownlink(idx: u32, se: usize, ip: usize, len: u32): void {
  const tx = ringAddr(RingId.GRE_TX);
  if (tx == 0) { sessionDrop(se, Drop.RING_FULL); return; }
  const s = ringReserve(tx);
  if (s == 0) { sessionDrop(se, Drop.RING_FULL); return; }
  const mppe = (load<u32>(se + SE_MPPE_FLAGS) & MppeFlag.ON) != 0;
  let start: usize;
  let end: usize;
  if (mppe) {
    const m = s + DATA_AT - MPPE_HEADER;
    end = m + mppeEncryptIpv4(se, m, ip, len);
    start = m - pppHeaderLen(se, PPP_MPPE);
    pppWriteHeader(se, start, PPP_MPPE);
  } else {
    memory.copy(s + DATA_AT, ip, len);
    end = s + DATA_AT + len;
    start = s + DATA_AT - pppHeaderLen(se, PPP_IPV4);
    pppWriteHeader(se, start, PPP_IPV4);
  }
  const h = greHeader(se, start, <u32>(end - start), true);
  greSend(se, s, h, end);
  accountDown(se, len);
}

/** An ack-only packet for a session whose received data went unacknowledged this batch. */
function greAckOnly(se: usize): void {
  const tx = ringAddr(RingId.GRE_TX);
  const s: usize = tx == 0 ? 0 : ringReserve(tx);
  if (s == 0) { drop(Drop.RING_FULL); return; }
  const end = s + DATA_AT;
  const h = greHeader(se, end, 0, false);
  greSend(se, s, h, end);
}

/** Control frames from TypeScript (INJECT): a PPP frame to send on a PPTP session, unencrypted. */
export function greInject(budget: u32): u32 {
  const r = ringAddr(RingId.INJECT);
  const tx = ringAddr(RingId.GRE_TX);
  if (r == 0) return 0;
  let done: u32 = 0;
  while (done < budget && ringReady(r) > 0) {
    const s = ringPeek(r);
    done++;
    const idx = slotSession(s);
    const len = slotLen(s);
    if (!slotValid(r, s) || idx >= maxSessions) { drop(Drop.BAD_SLOT); ringRelease(r); continue; }
    const se = sessionAddr(idx);
    if (load<u32>(se + SE_STATE) == SessionState.FREE || load<u32>(se + SE_KIND) != Tunnel.PPTP || tx == 0 || <usize>len + DATA_AT > <usize>SLOT_SIZE) {
      drop(Drop.INJECT_INVALID);
      ringRelease(r);
      continue;
    }
    const o = ringReserve(tx);
    if (o == 0) { sessionDrop(se, Drop.RING_FULL); ringRelease(r); continue; }
    memory.copy(o + DATA_AT, slotData(s), len);
    const h = greHeader(se, o + DATA_AT, len, true);
    greSend(se, o, h, o + DATA_AT + len);
    count(Stat.INJECTED);
    ringRelease(r);
  }
  return done;
}

// ---- receive ------------------------------------------------------------------

/** One GRE packet (IP header included, as a raw socket delivers it). */
function greInput(p: usize, len: u32, from: u32): void {
  const ihl = ipv4HeaderLen(p, len);
  if (ihl == 0 || load<u8>(p + 9) != 47) { drop(Drop.BAD_IP_HEADER); return; }
  const total = be16(p + 2);
  const g = p + ihl;
  const glen = total - ihl;
  if (glen < GRE_BASE_HEADER) { drop(Drop.GRE_HEADER); return; }
  const f0 = <u32>load<u8>(g);
  const f1 = <u32>load<u8>(g + 1);
  // K set; C, R, s, Recur clear; Flags clear; version 1; PPP payload.
  if ((f0 & ~GRE_FLAG_S) != GRE_FLAG_K || (f1 & 0x7f) != GRE_VERSION || be16(g + 2) != GRE_PROTO_PPP) { drop(Drop.GRE_HEADER); return; }
  const plen = be16(g + 4);
  const call = be16(g + 6);
  const hasSeq = (f0 & GRE_FLAG_S) != 0;
  const hasAck = (f1 & GRE_FLAG_A) != 0;
  const hlen = GRE_BASE_HEADER + (hasSeq ? 4 : 0) + (hasAck ? 4 : 0);
  if (glen < hlen || plen > glen - hlen || (plen > 0) != hasSeq) { drop(Drop.GRE_HEADER); return; }
  const e = load<u32>(callIdTable + (<usize>call << 2));
  if (e == 0) { drop(Drop.GRE_UNKNOWN_CALL); return; }
  const idx = e - 1;
  const se = sessionAddr(idx);
  if (load<u32>(se + SE_PEER_ADDR) != from) { sessionDrop(se, Drop.GRE_WRONG_PEER); return; }
  let o = g + GRE_BASE_HEADER;
  if (hasSeq) {
    const seq = be32(o);
    o += 4;
    const f = load<u32>(se + SE_GRE_FLAGS);
    if ((f & GreFlag.RECEIVED) && <i32>(seq - load<u32>(se + SE_GRE_RECV_SEQ)) <= 0) {
      sessionDrop(se, Drop.GRE_SEQUENCE);
      if (hasAck) store<u32>(se + SE_GRE_PEER_ACK, be32(o));
      return;
    }
    store<u32>(se + SE_GRE_RECV_SEQ, seq);
    store<u32>(se + SE_GRE_FLAGS, f | GreFlag.RECEIVED);
    markAckPending(idx, se);
  }
  if (hasAck) {
    store<u32>(se + SE_GRE_PEER_ACK, be32(o));
    o += 4;
  }
  if (plen == 0) return;
  pppFromGre(idx, se, o, plen);
}

// Decrypted datagrams are written straight into a TUN_TX slot, with the IP
// packet landing at SLOT_PAYLOAD_OFFSET (the protocol field just before it).
function pppFromGre(idx: u32, se: usize, f: usize, flen: u32): void {
  if (!pppParse(f, flen)) { sessionDrop(se, Drop.PPP_PROTOCOL); return; }
  const proto = pppProtocol;
  const info = f + pppInfoOffset;
  const ilen = flen - pppInfoOffset;
  const mppeOn = (load<u32>(se + SE_MPPE_FLAGS) & MppeFlag.ON) != 0;
  if (proto == PPP_MPPE) {
    if (!mppeOn) { divert(idx, CtrlKind.PPP_FRAME, f, flen); return; }
    if (load<u32>(se + SE_STATE) != SessionState.ACTIVE) { sessionDrop(se, Drop.SESSION_DOWN); return; }
    const tx = ringAddr(RingId.TUN_TX);
    const s: usize = tx == 0 ? 0 : ringReserve(tx);
    if (s == 0 || ilen > <u32>(SLOT_SIZE - SLOT_PAYLOAD_OFFSET)) {
      // Nowhere to put it: decrypt in place all the same, so a stateful
      // receiver stays in step with the sender (a local drop must not cost
      // an RFC 3078 8.2 resynchronisation), then drop it.
      if (mppeDecrypt(idx, se, info, ilen, info + MPPE_HEADER) != 0) sessionDrop(se, s == 0 ? Drop.RING_FULL : Drop.TOO_BIG);
      return;
    }
    const out = s + SLOT_PAYLOAD_OFFSET - 2;
    const n = mppeDecrypt(idx, se, info, ilen, out);
    if (n == 0) return;
    // The decrypted protocol field: 2 octets, or 1 when the peer compressed it.
    let ip = out + 2;
    let iplen = n - 2;
    let inner = (<u32>load<u8>(out) << 8) | <u32>load<u8>(out + 1);
    if (load<u8>(out) & 1) {
      inner = <u32>load<u8>(out);
      ip = out + 1;
      iplen = n - 1;
    }
    if (inner == PPP_IPV4) deliverIpv4Slot(idx, se, s, ip, iplen);
    else if (inner == PPP_IPV6) sessionDrop(se, Drop.IPV6_NOT_ROUTED);
    else sessionDrop(se, Drop.PPP_PROTOCOL);
    return;
  }
  if (proto == PPP_IPV4) {
    if (mppeOn) { sessionDrop(se, Drop.MPPE_REQUIRED); return; }
    deliverIpv4(idx, se, info, ilen);
    return;
  }
  if (proto == PPP_IPV6) { sessionDrop(se, Drop.IPV6_NOT_ROUTED); return; }
  divert(idx, CtrlKind.PPP_FRAME, f, flen);
}

/** Like deliverIpv4, for a packet already sitting in a reserved TUN_TX slot. */
function deliverIpv4Slot(idx: u32, se: usize, s: usize, ip: usize, len: u32): void {
  // deliverIpv4 copies into a fresh slot; the packet is already in one, so
  // publish the reserved slot after the same checks instead.
  if (ipv4HeaderLen(ip, len) == 0) { sessionDrop(se, Drop.BAD_IP_HEADER); return; }
  const client = (load<u32>(se + SE_FLAGS) & SessionFlag.CLIENT) != 0;
  if (be32(ip + (client ? 16 : 12)) != load<u32>(se + SE_V4)) { sessionDrop(se, Drop.SPOOFED_SOURCE); return; }
  const total = be16(ip + 2);
  slotSet(s, <u32>(ip - s), total, idx, 0, 0);
  ringPublish(ringAddr(RingId.TUN_TX), total);
  accountUp(se, total);
}

/** Consume GRE_RX. */
export function greReceive(budget: u32): u32 {
  const r = ringAddr(RingId.GRE_RX);
  if (r == 0) return 0;
  let done: u32 = 0;
  while (done < budget && ringReady(r) > 0 && ctrlHasRoom()) {
    const s = ringPeek(r);
    done++;
    if (!slotValid(r, s)) { drop(Drop.BAD_SLOT); ringRelease(r); continue; }
    greInput(slotData(s), slotLen(s), slotAddr(s));
    ringRelease(r);
  }
  return done;
}

/**
 * End of batch: acknowledge what was received and not acknowledged on a
 * data packet. Not while the peer's call id is unknown (0: a client attached
 * at its Outgoing-Call-Request, before the reply): the acknowledgment stays
 * pending and rides on the first packet we send.
 */
export function greFlushAcks(): void {
  const list = ackList();
  for (let i: u32 = 0; i < ackCount; i++) {
    const idx = load<u32>(list + (<usize>i << 2));
    if (idx >= maxSessions) continue;
    const se = sessionAddr(idx);
    if (load<u32>(se + SE_KIND) == Tunnel.PPTP && (load<u32>(se + SE_GRE_FLAGS) & GreFlag.ACK_PENDING) && load<u32>(se + SE_GRE_PEER_CALL) != 0) greAckOnly(se);
  }
  ackCount = 0;
}
