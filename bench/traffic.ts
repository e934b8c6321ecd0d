/**
 * Traffic for the tunnel benchmarks, with no JavaScript per packet on the
 * hot path:
 *
 * - {@link IoRing}: a UDP socket driven by the native addon's I/O thread
 *   over a ring in a memory of its own. As a generator its slots are filled
 *   once and re-published (head moves, the bytes stay), the thread sends them
 *   with sendmmsg; as a sink the thread receives with recvmmsg and we only
 *   move the tail.
 * - {@link TunRxWriter}: packets into a client engine's TUN_RX ring, where the
 *   TUN reader would put them (uplink without a TUN device); only the source
 *   address and header checksum are written per packet, for the session the
 *   batch belongs to.
 * - {@link writeAsFastAsTaken}: the raw TLS reference's sender.
 * - {@link runWindowed}: a sender bounded by a window of packets in flight
 *   (sent and not yet seen by the sink), like a transport protocol: it finds
 *   the path's capacity without flooding the queues in front of the
 *   bottleneck (which would measure the drop path, and starve the other
 *   threads on a 2-core box). A window that stops moving for STALL_MS counts
 *   its packets as lost. Bounded in time.
 */
import type { Socket } from 'node:net';
import * as abi from '../assembly/abi.js';
import { native, type IoHandle } from '../src/dataplane/native.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';
import type { DataPlane } from '../src/dataplane/engine.js';

// Our choices.
/** A window that has not moved for this long is declared lost. */
export const STALL_MS = 150;

export const ipv4Bytes = (a: string): number[] => a.split('.').map(Number);
/** A slot's addr field: the address's bytes in network order, read as a little-endian u32. */
export const slotAddr = (a: string): number => new DataView(new Uint8Array(ipv4Bytes(a)).buffer).getUint32(0, true);

/** An IPv4/UDP packet of `total` bytes (UDP checksum 0: not computed, allowed for IPv4). */
export function udpPacket(src: string, dst: string, dport: number, total: number): Uint8Array {
  const p = new Uint8Array(total);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, total);
  p[8] = 64;
  p[9] = 17;
  p.set(ipv4Bytes(src), 12);
  p.set(ipv4Bytes(dst), 16);
  dv.setUint16(10, ipv4Checksum(p));
  dv.setUint16(20, 40000);
  dv.setUint16(22, dport);
  dv.setUint16(24, total - 20);
  for (let i = 28; i < total; i++) p[i] = (i * 7) & 255;
  return p;
}

/** RFC 791 header checksum of p[0..20) with the checksum field taken as 0. */
export function ipv4Checksum(p: Uint8Array, at = 0): number {
  let s = 0;
  for (let i = 0; i < 20; i += 2) if (i !== 10) s += (p[at + i]! << 8) | p[at + i + 1]!;
  while (s >> 16) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Tail = head: everything in the ring consumed unread (the bench's application drops what it got). */
export function discard(r: Ring, u32: Uint32Array): number {
  const head = Atomics.load(u32, (r.offset + abi.R_HEAD) >>> 2);
  const tailIdx = (r.offset + abi.R_TAIL) >>> 2;
  const n = (head - u32[tailIdx]!) >>> 0;
  if (n) Atomics.store(u32, tailIdx, head);
  return n;
}

/** A UDP socket (in a namespace) on an I/O thread, with one ring: tx (generator) or rx (sink); or any socket or TUN fd (`kind`). */
export class IoRing {
  readonly ring: Ring;
  readonly u32: Uint32Array;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly handle: IoHandle;
  private closed = false;

  constructor(
    readonly role: 'tx' | 'rx',
    readonly fd: number,
    slots: number,
    batch = 64,
    /** 'tun': the fd is a TUN device (one read() / write() per packet, slots hold whole IP packets). */
    readonly kind: 'socket' | 'tun' = 'socket',
  ) {
    const off = abi.DP_BASE;
    const mem = createMemory(Math.ceil((off + abi.RING_HEADER_SIZE + slots * abi.SLOT_SIZE) / abi.WASM_PAGE) + 1);
    const buf = mem.buffer as SharedArrayBuffer;
    this.u8 = new Uint8Array(buf);
    this.u32 = new Uint32Array(buf);
    this.dv = new DataView(buf);
    this.dv.setUint32(off + abi.R_SLOTS, slots, true);
    this.dv.setUint32(off + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
    this.ring = new Ring(mem, off);
    this.handle = native.ioStart(this.u8, { fd, kind, ...(role === 'tx' ? { txRing: off } : { rxRing: off }), batch }, () => {});
  }

  static udp(role: 'tx' | 'rx', o: { netns: string; address: string; port?: number; slots?: number }): IoRing {
    const fd = native.udpSocket({ netns: o.netns, address: o.address, port: o.port ?? 0, sndbuf: 8 << 20, rcvbuf: 8 << 20 });
    return new IoRing(role, fd, o.slots ?? 2048);
  }

  /** Generator: fill every slot with a UDP payload of `payload` bytes for the destinations, round robin. */
  prefill(payload: number, dsts: readonly string[], port: number): void {
    const r = this.ring;
    for (let i = 0; i < r.slots; i++) {
      const s = r.slotOffset(i);
      for (let j = 0; j < payload; j++) this.u8[s + abi.SLOT_PAYLOAD_OFFSET + j] = (j * 13 + i) & 255;
      this.dv.setUint16(s + abi.S_LEN, payload, true);
      this.dv.setUint16(s + abi.S_OFF, abi.SLOT_PAYLOAD_OFFSET, true);
      this.dv.setUint32(s + abi.S_SESSION, abi.NO_SESSION, true);
      this.dv.setUint32(s + abi.S_ADDR, slotAddr(dsts[i % dsts.length]!), true);
      this.dv.setUint16(s + abi.S_AUX, port, true);
      this.dv.setUint16(s + abi.S_FLAGS, 0, true);
    }
  }

  /**
   * Generator: fill every slot with one of `packets` (round robin), sent to
   * `addr` (sockets; ignored by a TUN device) and port `port`: whole IP
   * packets for a TUN device, payloads (e.g. GRE frames) for a socket.
   */
  prefillPackets(packets: readonly Uint8Array[], addr = '0.0.0.0', port = 0): void {
    const r = this.ring;
    for (let i = 0; i < r.slots; i++) {
      const s = r.slotOffset(i);
      const p = packets[i % packets.length]!;
      this.u8.set(p, s + abi.SLOT_PAYLOAD_OFFSET);
      this.dv.setUint16(s + abi.S_LEN, p.length, true);
      this.dv.setUint16(s + abi.S_OFF, abi.SLOT_PAYLOAD_OFFSET, true);
      this.dv.setUint32(s + abi.S_SESSION, abi.NO_SESSION, true);
      this.dv.setUint32(s + abi.S_ADDR, slotAddr(addr), true);
      this.dv.setUint16(s + abi.S_AUX, port, true);
      this.dv.setUint16(s + abi.S_FLAGS, 0, true);
    }
  }

  /** CPU seconds (user + system, its system calls' kernel work included) of this ring's I/O thread so far. */
  cpuSeconds(): number {
    return native.ioCpuSeconds(this.handle);
  }

  /** Generator: publish up to `max` prefilled slots; returns how many. */
  publish(max: number): number {
    const r = this.ring;
    const headIdx = (r.offset + abi.R_HEAD) >>> 2;
    const head = this.u32[headIdx]!;
    const room = r.slots - ((head - r.tail) >>> 0);
    const n = Math.min(room, max);
    if (n <= 0) return 0;
    Atomics.store(this.u32, headIdx, (head + n) >>> 0);
    if (r.takeConsumerSleeping()) native.ioKick(this.handle);
    return n;
  }

  /** Generator: packets the thread handed to the kernel. */
  get sent(): number {
    return Number(this.ring.counter(abi.R_CONSUMED_PKTS));
  }

  /** Sink: packets received so far (consumed unread). */
  get received(): number {
    return Number(this.ring.counter(abi.R_PRODUCED_PKTS));
  }

  /** Sink: free the ring; wake the thread if it waits for room. */
  drain(): void {
    discard(this.ring, this.u32);
    if (this.ring.takeProducerWaiting()) native.ioKick(this.handle);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.ioStop(this.handle);
    native.close(this.fd);
  }
}

/**
 * Uplink packets into a client engine's TUN_RX ring: the TUN reader's place,
 * for clients without a TUN device. Each batch goes to one session (the
 * engine's default session, which the client role uses for TUN input).
 */
export class TunRxWriter {
  private readonly ring: Ring;
  private readonly u8: Uint8Array;
  private readonly u32: Uint32Array;
  private readonly headIdx: number;
  private readonly sessions: { idx: number; src: number[]; csum: number }[];
  private next = 0;

  constructor(
    private readonly dp: DataPlane,
    clients: readonly { sessionIndex: number; ipv4: string }[],
    dst: string,
    dport: number,
    readonly len: number,
    /** Packets per session turn. */
    private readonly batch = 64,
  ) {
    this.ring = dp.ring(abi.RingId.TUN_RX);
    this.u8 = dp.u8;
    this.u32 = new Uint32Array(dp.memory.buffer as SharedArrayBuffer);
    this.headIdx = (this.ring.offset + abi.R_HEAD) >>> 2;
    const template = udpPacket('0.0.0.0', dst, dport, len);
    this.sessions = clients.map((c) => {
      const t = template.slice(0, 20);
      t.set(ipv4Bytes(c.ipv4), 12);
      return { idx: c.sessionIndex, src: ipv4Bytes(c.ipv4), csum: ipv4Checksum(t) };
    });
    const dv = dp.dv;
    for (let i = 0; i < this.ring.slots; i++) {
      const s = this.ring.slotOffset(i);
      this.u8.set(template, s + abi.SLOT_PAYLOAD_OFFSET);
      dv.setUint16(s + abi.S_LEN, len, true);
      dv.setUint16(s + abi.S_OFF, abi.SLOT_PAYLOAD_OFFSET, true);
      dv.setUint32(s + abi.S_SESSION, abi.NO_SESSION, true);
      dv.setUint32(s + abi.S_ADDR, 0, true);
      dv.setUint16(s + abi.S_AUX, 0, true);
      dv.setUint16(s + abi.S_FLAGS, 0, true);
    }
  }

  /** Publish up to `max` packets, session by session, running the engine after each batch. */
  publish(max: number): number {
    let done = 0;
    while (done < max) {
      const head = this.u32[this.headIdx]!;
      const room = this.ring.slots - ((head - this.ring.tail) >>> 0);
      const n = Math.min(room, max - done, this.batch);
      if (n <= 0) break;
      const se = this.sessions[this.next]!;
      this.next = (this.next + 1) % this.sessions.length;
      for (let i = 0; i < n; i++) {
        const p = this.ring.slotOffset(head + i) + abi.SLOT_PAYLOAD_OFFSET;
        this.u8[p + 10] = se.csum >> 8;
        this.u8[p + 11] = se.csum & 255;
        this.u8[p + 12] = se.src[0]!;
        this.u8[p + 13] = se.src[1]!;
        this.u8[p + 14] = se.src[2]!;
        this.u8[p + 15] = se.src[3]!;
      }
      Atomics.store(this.u32, this.headIdx, (head + n) >>> 0);
      this.dp.wasm.setDefaultSession(se.idx);
      this.dp.pump();
      done += n;
    }
    this.dp.wasm.setDefaultSession(abi.NO_SESSION);
    return done;
  }
}

export interface WindowedResult {
  /** Packets the sink saw inside the measurement window, and its length in seconds. */
  packets: number;
  seconds: number;
  /** Packets declared lost (stalled window) over the whole run. */
  lost: number;
  sent: number;
}

/**
 * Send for `warmMs + ms` with at most `window` packets in flight; measure what
 * the sink saw during the last `ms`. `mark` is called at the measurement
 * window's start and end.
 */
export async function runWindowed(o: {
  warmMs: number;
  ms: number;
  window: number;
  publish(max: number): number;
  /** Packets the sink has seen (monotonic). */
  delivered(): number;
  /** Free the sink's ring(s). */
  drainSink(): void;
  mark(tag: 'start' | 'end'): void;
}): Promise<WindowedResult> {
  const d0 = o.delivered();
  let sent = 0;
  let lost = 0;
  let lastDelivered = d0;
  let lastProgress = performance.now();
  const t0 = performance.now();
  const tStart = t0 + o.warmMs;
  const tEnd = tStart + o.ms;
  let mStart: { t: number; d: number } | undefined;
  let mEnd: { t: number; d: number } | undefined;
  let spins = 0;
  while (!mEnd) {
    o.drainSink();
    const now = performance.now();
    const d = o.delivered();
    if (!mStart && now >= tStart) {
      mStart = { t: now, d };
      o.mark('start');
    } else if (mStart && now >= tEnd) {
      mEnd = { t: now, d };
      o.mark('end');
      break;
    }
    if (d !== lastDelivered) {
      lastDelivered = d;
      lastProgress = now;
    }
    let inflight = sent - (d - d0) - lost;
    if (inflight < 0) {
      // Packets declared lost arrived after all (a long scheduling pause, not a loss).
      lost += inflight;
      inflight = 0;
    }
    if (inflight > 0 && now - lastProgress > STALL_MS) {
      lost += inflight;
      inflight = 0;
      lastProgress = now;
    }
    if (inflight < o.window) sent += o.publish(o.window - inflight);
    // Yield to the event loop (socket and engine callbacks run there); every
    // so often through a timer so that an idle wait does not spin a core.
    if (++spins % 64 === 0 && inflight >= o.window) await new Promise((r) => setTimeout(r, 0));
    else await new Promise((r) => setImmediate(r));
  }
  // Let what is in flight land (bounded) so the next run starts from quiet queues.
  const until = performance.now() + 300;
  while (performance.now() < until && sent - (o.delivered() - d0) - lost > 0) {
    o.drainSink();
    await new Promise((r) => setTimeout(r, 2));
  }
  return { packets: mEnd.d - mStart!.d, seconds: (mEnd.t - mStart!.t) / 1000, lost, sent };
}

/**
 * A paced sender: `pps` packets per second for `ms`, published every
 * millisecond or so (the background load of the latency runs).
 */
export class Pacer {
  private timer: NodeJS.Timeout | undefined;
  private sent = 0;
  private t0 = 0;

  constructor(
    private readonly pps: number,
    private readonly publish: (n: number) => number,
    private readonly tick: () => void = () => {},
  ) {}

  start(): void {
    this.t0 = performance.now();
    const step = () => {
      this.tick();
      const due = Math.floor(((performance.now() - this.t0) / 1000) * this.pps) - this.sent;
      // Never more than 20 ms worth at once: a stall is not made up for with a burst.
      if (due > 0) this.sent += this.publish(Math.min(due, Math.max(1, Math.ceil(this.pps / 50))));
      const behind = Math.floor(((performance.now() - this.t0) / 1000) * this.pps) - this.sent;
      if (behind > Math.ceil(this.pps / 50)) this.sent += behind - Math.ceil(this.pps / 50);
      this.timer = setTimeout(step, 1);
    };
    step();
  }

  stop(): { sent: number; seconds: number } {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    return { sent: this.sent, seconds: (performance.now() - this.t0) / 1000 };
  }
}

/**
 * Keep writing `chunk` while the socket takes it, yielding between turns.
 * Writes that complete at once keep write() returning true, and 'drain' may
 * be emitted inside write(): writing from the 'drain' handler itself nested
 * and never let the event loop turn (timers came seconds late). Here 'drain'
 * only schedules the next turn.
 */
export function writeAsFastAsTaken(s: Socket, chunk: Uint8Array, stopped: () => boolean): void {
  let scheduled = false;
  const schedule = () => {
    if (scheduled || stopped() || s.destroyed) return;
    scheduled = true;
    setImmediate(turn);
  };
  const turn = () => {
    scheduled = false;
    let n = 0;
    while (n < 256 && !stopped() && !s.destroyed && s.write(chunk)) n++;
    if (n === 256) schedule();
  };
  s.on('drain', schedule);
  schedule();
}
