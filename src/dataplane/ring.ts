/**
 * TypeScript end of an SPSC ring in the shared memory (protocol in
 * assembly/abi.ts). Used for the rings whose other end is TypeScript: CTRL
 * and STREAM_OUT (we consume), INJECT and STREAM_IN (we produce); and by
 * tests and benchmarks to play a device. Views are built once per memory.
 */
import * as abi from '../../assembly/abi.js';

export interface SlotMeta {
  session: number;
  addr: number;
  aux: number;
}

export class Ring {
  private readonly u32: Uint32Array;
  private readonly dv: DataView;
  private readonly u8: Uint8Array;
  readonly slots: number;
  readonly slotSize: number;
  private readonly mask: number;
  private readonly headIdx: number;
  private readonly tailIdx: number;

  constructor(
    readonly memory: WebAssembly.Memory,
    readonly offset: number,
  ) {
    const buf = memory.buffer as SharedArrayBuffer;
    this.u32 = new Uint32Array(buf);
    this.dv = new DataView(buf);
    this.u8 = new Uint8Array(buf);
    this.slots = this.dv.getUint32(offset + abi.R_SLOTS, true);
    this.slotSize = this.dv.getUint32(offset + abi.R_SLOT_SIZE, true);
    this.mask = this.slots - 1;
    this.headIdx = (offset + abi.R_HEAD) >>> 2;
    this.tailIdx = (offset + abi.R_TAIL) >>> 2;
  }

  get head(): number {
    return Atomics.load(this.u32, this.headIdx);
  }
  get tail(): number {
    return Atomics.load(this.u32, this.tailIdx);
  }
  /** Slots holding unconsumed packets. */
  get occupancy(): number {
    return (this.head - this.tail) >>> 0;
  }

  slotOffset(index: number): number {
    return this.offset + abi.RING_HEADER_SIZE + ((index & this.mask) >>> 0) * this.slotSize;
  }

  // ---- producer -------------------------------------------------------------

  /**
   * Copy `data` into the next slot (payload at SLOT_PAYLOAD_OFFSET) and
   * publish it. Returns false, counting a full event, when the ring is full
   * or the payload does not fit.
   */
  push(data: Uint8Array, meta: Partial<SlotMeta> = {}): boolean {
    const head = this.u32[this.headIdx]!;
    if (((head - this.tail) >>> 0) >= this.slots || data.length > this.slotSize - abi.SLOT_PAYLOAD_OFFSET) {
      this.bump(abi.R_FULL_EVENTS, 1);
      return false;
    }
    const s = this.slotOffset(head);
    this.u8.set(data, s + abi.SLOT_PAYLOAD_OFFSET);
    this.writeMeta(s, abi.SLOT_PAYLOAD_OFFSET, data.length, meta);
    this.bump(abi.R_PRODUCED_PKTS, 1);
    this.bump(abi.R_PRODUCED_BYTES, data.length);
    Atomics.store(this.u32, this.headIdx, (head + 1) >>> 0);
    return true;
  }

  private writeMeta(s: number, off: number, len: number, meta: Partial<SlotMeta>): void {
    const dv = this.dv;
    dv.setUint16(s + abi.S_LEN, len, true);
    dv.setUint16(s + abi.S_OFF, off, true);
    dv.setUint32(s + abi.S_SESSION, meta.session ?? abi.NO_SESSION, true);
    dv.setUint32(s + abi.S_ADDR, meta.addr ?? 0, true);
    dv.setUint16(s + abi.S_AUX, meta.aux ?? 0, true);
    dv.setUint16(s + abi.S_FLAGS, 0, true);
  }

  // ---- consumer -------------------------------------------------------------

  /**
   * Consume up to `max` slots, calling `fn` with a view of each payload that
   * is valid only during the call (copy it to keep it). Returns the count.
   */
  drain(fn: (payload: Uint8Array, meta: SlotMeta) => void, max = Infinity): number {
    let tail = this.u32[this.tailIdx]!;
    const head = Atomics.load(this.u32, this.headIdx);
    let n = 0;
    while (tail !== head && n < max) {
      const s = this.slotOffset(tail);
      const len = this.dv.getUint16(s + abi.S_LEN, true);
      const off = this.dv.getUint16(s + abi.S_OFF, true);
      if (off >= abi.SLOT_HEADER_SIZE && off + len <= this.slotSize) {
        fn(this.u8.subarray(s + off, s + off + len), {
          session: this.dv.getUint32(s + abi.S_SESSION, true),
          addr: this.dv.getUint32(s + abi.S_ADDR, true),
          aux: this.dv.getUint16(s + abi.S_AUX, true),
        });
      }
      tail = (tail + 1) >>> 0;
      n++;
      // Release each slot before the next callback: fn may produce into a
      // ring this one feeds, and must never observe a stale full ring.
      Atomics.store(this.u32, this.tailIdx, tail);
    }
    if (n) this.bump(abi.R_CONSUMED_PKTS, n);
    return n;
  }

  // ---- wake-up flags (see native/src/io.c) --------------------------------

  /** Consumer side: announce sleep; returns true if work arrived meanwhile (flag cleared again). */
  sleepConsumer(): boolean {
    const i = (this.offset + abi.R_CONSUMER_SLEEPING) >>> 2;
    Atomics.store(this.u32, i, 1);
    if (this.occupancy > 0) {
      Atomics.store(this.u32, i, 0);
      return true;
    }
    return false;
  }

  /** Producer side: the consumer announced sleep; claim the wake-up. */
  takeConsumerSleeping(): boolean {
    const i = (this.offset + abi.R_CONSUMER_SLEEPING) >>> 2;
    return Atomics.load(this.u32, i) === 1 && Atomics.compareExchange(this.u32, i, 1, 0) === 1;
  }

  /** Consumer side: the producer waits for room; claim the wake-up. */
  takeProducerWaiting(): boolean {
    const i = (this.offset + abi.R_PRODUCER_WAITING) >>> 2;
    return Atomics.load(this.u32, i) === 1 && Atomics.compareExchange(this.u32, i, 1, 0) === 1;
  }

  // ---- counters ---------------------------------------------------------------

  counter(field: number): bigint {
    return this.dv.getBigUint64(this.offset + field, true);
  }

  /** Add to a u64 counter as two u32 words (no BigInt on the per-packet path; one writer per counter). */
  private bump(field: number, n: number): void {
    const i = (this.offset + field) >>> 2;
    const lo = this.u32[i]! + n;
    if (lo > 0xffffffff) {
      this.u32[i] = lo >>> 0;
      this.u32[i + 1] = (this.u32[i + 1]! + Math.floor(lo / 0x100000000)) >>> 0;
    } else {
      this.u32[i] = lo;
    }
  }
}
