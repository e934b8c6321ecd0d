// Forwarding between the TUN device and tunnel sessions (Mode.FORWARD).
//
// Downlink: a packet from the TUN device is classified to its session (by
// destination address on a server; the default session on a client) and
// handed to that session's tunnel encapsulation.
// Uplink: a tunnel hands an IP packet it decapsulated to deliverIp(), which
// checks it against the session (anti-spoofing) and writes it to the TUN.
// Frames that are not data go to TypeScript through the CTRL ring.
import {
  RingId, Drop, Stat, SE_KIND, SE_STATE, SE_V4, SE_FLAGS, SE_UP_PKTS, SE_UP_BYTES, SE_DOWN_PKTS, SE_DOWN_BYTES,
  SE_DROPS, SE_MTU, SessionState, SessionFlag, Tunnel, NO_SESSION, SLOT_PAYLOAD_OFFSET, R_SLOTS, R_HEAD, R_TAIL,
} from './abi';
import { ringAddr, ringReady, ringPeek, ringRelease, ringReserve, ringPublish, slotLen, slotData, slotValid, slotSet, slotCapacity } from './ring';
import { ipv4HeaderLen, be32 } from './ip';
import { count, drop } from './stats';
import { v4Lookup, sessionAddr } from './session';
import { sstpDownlink, sstpStreamIn, sstpFlush } from './sstp';
import { greDownlink, greReceive, greInject, greFlushAcks } from './gre';

/** Client role: the session every TUN packet goes to (NO_SESSION on a server). */
let defaultSession: u32 = NO_SESSION;

export function setDefaultSession(idx: u32): void {
  defaultSession = idx;
}

@inline function add64(p: usize, n: u64): void {
  store<u64>(p, load<u64>(p) + n);
}

/** Count a drop against a session as well as globally. */
export function sessionDrop(se: usize, reason: i32): void {
  add64(se + SE_DROPS, 1);
  drop(reason);
}

/** Stats index of a tunnel's uplink packet counter (bytes = +1, downlink = +2/+3). */
@inline function tunnelStatBase(kind: u32): i32 {
  if (kind == Tunnel.SSTP) return Stat.SSTP_UP_PKTS;
  if (kind == Tunnel.PPTP) return Stat.PPTP_UP_PKTS;
  return Stat.L2TP_UP_PKTS;
}

/**
 * Free CTRL slots an input loop wants before it consumes one more input slot
 * (our choice): one TLS chunk or GRE packet of a tunnel being set up carries
 * a few control frames. An input loop that finds less room stops and leaves
 * its input in place; TypeScript drains CTRL after every process() call and
 * calls again (src/dataplane/engine.ts pump). Without it a storm of set-ups
 * (256 at a time, measured) overflowed CTRL, dropped LCP/EAP/IPCP frames and
 * cost their tunnels PPP's 3 s retransmission each.
 */
export const CTRL_HEADROOM: u32 = 16;

/** Whether CTRL has room for the control frames of one more input slot (true without a CTRL ring: nothing to protect). */
export function ctrlHasRoom(): bool {
  const r = ringAddr(RingId.CTRL);
  if (r == 0) return true;
  return load<u32>(r + R_SLOTS) - (load<u32>(r + R_HEAD) - atomic.load<u32>(r + R_TAIL)) >= CTRL_HEADROOM;
}

/**
 * Divert a control frame to TypeScript. Returns false (counted) when the
 * CTRL ring is full: control traffic is retransmitted by its protocol.
 */
export function divert(idx: u32, kind: u32, p: usize, len: u32): bool {
  const r = ringAddr(RingId.CTRL);
  if (r == 0) { drop(Drop.CTRL_RING_FULL); return false; }
  if (len > slotCapacity(r, SLOT_PAYLOAD_OFFSET)) { drop(Drop.TOO_BIG); return false; }
  const s = ringReserve(r);
  if (s == 0) { drop(Drop.CTRL_RING_FULL); return false; }
  memory.copy(s + SLOT_PAYLOAD_OFFSET, p, len);
  slotSet(s, SLOT_PAYLOAD_OFFSET, len, idx, 0, kind);
  ringPublish(r, len);
  count(Stat.CTRL_DIVERTED);
  return true;
}

/**
 * An IPv4 packet decapsulated from session idx's tunnel: check it and write
 * it to the TUN device. A server accepts only the session's own source
 * address (no spoofing from inside a tunnel); a client only packets for its
 * own address.
 */
export function deliverIpv4(idx: u32, se: usize, p: usize, len: u32): void {
  if (load<u32>(se + SE_STATE) != SessionState.ACTIVE) { sessionDrop(se, Drop.SESSION_DOWN); return; }
  if (ipv4HeaderLen(p, len) == 0) { sessionDrop(se, Drop.BAD_IP_HEADER); return; }
  const total = (<u32>load<u8>(p + 2) << 8) | <u32>load<u8>(p + 3);
  const client = (load<u32>(se + SE_FLAGS) & SessionFlag.CLIENT) != 0;
  const mine = be32(p + (client ? 16 : 12));
  if (mine != load<u32>(se + SE_V4)) { sessionDrop(se, Drop.SPOOFED_SOURCE); return; }
  const tx = ringAddr(RingId.TUN_TX);
  const s: usize = tx == 0 ? 0 : ringReserve(tx);
  if (s == 0) { sessionDrop(se, Drop.RING_FULL); return; }
  // Trailing bytes after the IP total length (link padding) are not forwarded.
  memory.copy(s + SLOT_PAYLOAD_OFFSET, p, total);
  slotSet(s, SLOT_PAYLOAD_OFFSET, total, idx, 0, 0);
  ringPublish(tx, total);
  accountUp(se, total);
}

/** Account a packet delivered from a session's tunnel to the TUN device. */
export function accountUp(se: usize, len: u32): void {
  count(Stat.TUN_TX_PKTS);
  count(Stat.TUN_TX_BYTES, len);
  const base = tunnelStatBase(load<u32>(se + SE_KIND));
  count(base);
  count(base + 1, len);
  add64(se + SE_UP_PKTS, 1);
  add64(se + SE_UP_BYTES, len);
}

/** Account a packet sent down a session's tunnel. */
export function accountDown(se: usize, len: u32): void {
  const base = tunnelStatBase(load<u32>(se + SE_KIND));
  count(base + 2);
  count(base + 3, len);
  add64(se + SE_DOWN_PKTS, 1);
  add64(se + SE_DOWN_BYTES, len);
}

function downlink(budget: u32): u32 {
  const rx = ringAddr(RingId.TUN_RX);
  if (rx == 0) return 0;
  let done: u32 = 0;
  while (done < budget && ringReady(rx) > 0) {
    const s = ringPeek(rx);
    done++;
    if (!slotValid(rx, s)) { drop(Drop.BAD_SLOT); ringRelease(rx); continue; }
    const p = slotData(s);
    const len = slotLen(s);
    count(Stat.TUN_RX_PKTS);
    count(Stat.TUN_RX_BYTES, len);
    if (len == 0) { drop(Drop.TRUNCATED); ringRelease(rx); continue; }
    const version = <u32>load<u8>(p) >> 4;
    if (version == 6) { drop(Drop.IPV6_NOT_ROUTED); ringRelease(rx); continue; }
    if (version != 4) { drop(Drop.BAD_IP_VERSION); ringRelease(rx); continue; }
    if (ipv4HeaderLen(p, len) == 0) { drop(Drop.BAD_IP_HEADER); ringRelease(rx); continue; }
    const idx = defaultSession != NO_SESSION ? defaultSession : v4Lookup(be32(p + 16));
    if (idx == NO_SESSION) { drop(Drop.NO_SESSION); ringRelease(rx); continue; }
    const se = sessionAddr(idx);
    if (load<u32>(se + SE_STATE) != SessionState.ACTIVE) { drop(Drop.SESSION_DOWN); ringRelease(rx); continue; }
    const total = (<u32>load<u8>(p + 2) << 8) | <u32>load<u8>(p + 3);
    const kind = load<u32>(se + SE_KIND);
    if (total > load<u32>(se + SE_MTU)) sessionDrop(se, Drop.TOO_BIG);
    else if (kind == Tunnel.SSTP) sstpDownlink(idx, se, p, total);
    else if (kind == Tunnel.PPTP) greDownlink(idx, se, p, total);
    else sessionDrop(se, Drop.SESSION_DOWN);
    ringRelease(rx);
  }
  return done;
}

/**
 * One batch: uplink inputs first (stream bytes, GRE packets, injected
 * control frames), then the downlink; then publish what was coalesced and
 * acknowledge what was received.
 */
export function forwardRun(budget: u32): u32 {
  let done = sstpStreamIn(budget);
  if (done < budget) done += greReceive(budget - done);
  if (done < budget) done += greInject(budget - done);
  if (done < budget) done += downlink(budget - done);
  sstpFlush();
  greFlushAcks();
  return done;
}
