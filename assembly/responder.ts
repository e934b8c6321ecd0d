// Test responder (Mode.RESPONDER): answers ICMP echo requests (RFC 792)
// arriving from the TUN device by writing echo replies back to it, entirely
// inside the data plane. It proves the TUN -> native thread -> ring -> WASM ->
// ring -> native thread -> TUN path without any tunnel protocol.
import { RingId, Drop, Stat } from './abi';
import { ringAddr, ringReady, ringPeek, ringRelease, ringReserve, ringPublish, slotLen, slotData, slotValid, slotSet } from './ring';
import { ipv4HeaderLen, be32, putBe32, checksum } from './ip';
import { count, drop } from './stats';
import { SLOT_PAYLOAD_OFFSET } from './abi';

export function responderRun(budget: u32): u32 {
  const rx = ringAddr(RingId.TUN_RX);
  const tx = ringAddr(RingId.TUN_TX);
  if (rx == 0 || tx == 0) return 0;
  let done: u32 = 0;
  while (done < budget && ringReady(rx) > 0) {
    const s = ringPeek(rx);
    done++;
    if (!slotValid(rx, s)) { drop(Drop.BAD_SLOT); ringRelease(rx); continue; }
    const p = slotData(s);
    const len = slotLen(s);
    count(Stat.TUN_RX_PKTS);
    count(Stat.TUN_RX_BYTES, len);
    const ihl = ipv4HeaderLen(p, len);
    if (ihl == 0) {
      const v = len > 0 ? <u32>load<u8>(p) >> 4 : 0;
      // IPv6 is valid traffic the responder does not answer (router solicitations and the like).
      drop(len == 0 ? Drop.TRUNCATED : v == 6 ? Drop.NOT_ICMP_ECHO : v != 4 ? Drop.BAD_IP_VERSION : Drop.BAD_IP_HEADER);
      ringRelease(rx);
      continue;
    }
    const total = (<u32>load<u8>(p + 2) << 8) | <u32>load<u8>(p + 3);
    // ICMP (1), echo request (type 8, code 0), not a fragment.
    const fragBits = ((<u32>load<u8>(p + 6) << 8) | <u32>load<u8>(p + 7)) & 0x3fff;
    if (load<u8>(p + 9) != 1 || total - ihl < 8 || load<u8>(p + ihl) != 8 || load<u8>(p + ihl + 1) != 0 || fragBits != 0) {
      drop(Drop.NOT_ICMP_ECHO);
      ringRelease(rx);
      continue;
    }
    const out = ringReserve(tx);
    if (out == 0) { drop(Drop.RING_FULL); ringRelease(rx); continue; }
    const q = out + SLOT_PAYLOAD_OFFSET;
    memory.copy(q, p, total);
    // Swap addresses, fresh TTL, type 0; recompute both checksums.
    const src = be32(p + 12);
    putBe32(q + 12, be32(p + 16));
    putBe32(q + 16, src);
    store<u8>(q + 8, 64);
    store<u16>(q + 10, 0);
    const hc = checksum(q, ihl);
    store<u8>(q + 10, <u8>(hc >> 8));
    store<u8>(q + 11, <u8>hc);
    store<u8>(q + ihl, 0);
    store<u16>(q + ihl + 2, 0);
    const ic = checksum(q + ihl, total - ihl);
    store<u8>(q + ihl + 2, <u8>(ic >> 8));
    store<u8>(q + ihl + 3, <u8>ic);
    slotSet(out, SLOT_PAYLOAD_OFFSET, total, 0xffffffff, 0, 0);
    ringPublish(tx, total);
    ringRelease(rx);
    count(Stat.RESPONDER_REPLIES);
    count(Stat.TUN_TX_PKTS);
    count(Stat.TUN_TX_BYTES, total);
  }
  return done;
}
