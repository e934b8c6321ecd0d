// SPSC rings in shared memory (geometry and protocol in abi.ts). This side is
// either the consumer of a ring a native thread or TypeScript fills, or the
// producer of a ring they drain. The index the other side owns is read with
// an atomic load; ours is published with an atomic store, after the slot
// contents are written (wasm atomics are sequentially consistent).
import {
  RING_HEADER_SIZE, R_HEAD, R_TAIL, R_SLOTS, R_SLOT_SIZE, R_PRODUCED_PKTS, R_PRODUCED_BYTES,
  R_FULL_EVENTS, R_CONSUMED_PKTS, S_LEN, S_OFF, S_SESSION, S_ADDR, S_AUX, S_FLAGS,
  SLOT_HEADER_SIZE,
} from './abi';
import { ringDir } from './layout';

/** Address of ring `id`'s header, or 0 when the layout has no such ring. */
@inline export function ringAddr(id: i32): usize {
  return <usize>load<u32>(ringDir + (<usize>id << 2));
}

@inline export function slotAt(r: usize, index: u32): usize {
  const mask = load<u32>(r + R_SLOTS) - 1;
  return r + RING_HEADER_SIZE + <usize>(index & mask) * <usize>load<u32>(r + R_SLOT_SIZE);
}

// ---- consumer side --------------------------------------------------------

/** Slots ready to consume. */
@inline export function ringReady(r: usize): u32 {
  return atomic.load<u32>(r + R_HEAD) - load<u32>(r + R_TAIL);
}

/** The next slot to consume (only valid when ringReady() > 0). */
@inline export function ringPeek(r: usize): usize {
  return slotAt(r, load<u32>(r + R_TAIL));
}

/** Release the slot returned by ringPeek to the producer. */
@inline export function ringRelease(r: usize): void {
  atomic.store<u32>(r + R_TAIL, load<u32>(r + R_TAIL) + 1);
  store<u64>(r + R_CONSUMED_PKTS, load<u64>(r + R_CONSUMED_PKTS) + 1);
}

// ---- producer side --------------------------------------------------------

/**
 * A free slot to fill, or 0 when the ring is full (the full event is counted
 * in the ring header; the caller counts its own drop reason).
 */
export function ringReserve(r: usize): usize {
  const head = load<u32>(r + R_HEAD);
  const slots = load<u32>(r + R_SLOTS);
  if (head - atomic.load<u32>(r + R_TAIL) >= slots) {
    store<u64>(r + R_FULL_EVENTS, load<u64>(r + R_FULL_EVENTS) + 1);
    return 0;
  }
  return slotAt(r, head);
}

/** Publish the slot returned by ringReserve. */
@inline export function ringPublish(r: usize, len: u32): void {
  store<u64>(r + R_PRODUCED_PKTS, load<u64>(r + R_PRODUCED_PKTS) + 1);
  store<u64>(r + R_PRODUCED_BYTES, load<u64>(r + R_PRODUCED_BYTES) + <u64>len);
  atomic.store<u32>(r + R_HEAD, load<u32>(r + R_HEAD) + 1);
}

/** Largest payload a slot of ring r can hold at offset `off`. */
@inline export function slotCapacity(r: usize, off: u32): u32 {
  return load<u32>(r + R_SLOT_SIZE) - off;
}

// ---- slot fields ------------------------------------------------------------

@inline export function slotLen(s: usize): u32 { return <u32>load<u16>(s + S_LEN); }
@inline export function slotOff(s: usize): u32 { return <u32>load<u16>(s + S_OFF); }
@inline export function slotData(s: usize): usize { return s + <usize>load<u16>(s + S_OFF); }
@inline export function slotSession(s: usize): u32 { return load<u32>(s + S_SESSION); }
@inline export function slotAddr(s: usize): u32 { return load<u32>(s + S_ADDR); }
@inline export function slotAux(s: usize): u32 { return <u32>load<u16>(s + S_AUX); }

@inline export function slotSet(s: usize, off: u32, len: u32, session: u32, addr: u32, aux: u32): void {
  store<u16>(s + S_LEN, <u16>len);
  store<u16>(s + S_OFF, <u16>off);
  store<u32>(s + S_SESSION, session);
  store<u32>(s + S_ADDR, addr);
  store<u16>(s + S_AUX, <u16>aux);
  store<u16>(s + S_FLAGS, 0);
}

/** Is a consumed slot's (off, len) inside the slot? Producers outside WASM are not trusted blindly. */
@inline export function slotValid(r: usize, s: usize): bool {
  const off = slotOff(s);
  return off >= <u32>SLOT_HEADER_SIZE && off + slotLen(s) <= load<u32>(r + R_SLOT_SIZE);
}
