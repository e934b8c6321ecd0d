/**
 * The added-latency reference: a bare relay of IP packets between a TUN
 * device and a TLS connection, with the same threads and hand-overs as the
 * tunnel (the addon's TUN I/O thread and its rings, the process's main thread,
 * node:tls) and nothing else: no HTTP, SSTP, PPP or WASM data plane.
 *
 *   TUN ─read()─► rx ring ─wake─► main thread: frames (2-octet length, packet) ─► TLS
 *   TLS ─► main thread: frames ─► tx ring ─kick─► TUN write()
 *
 * One relay in the gateway's process and one in the peer, joined by one TLS
 * connection, so a ping crosses as many thread wake-ups as through the
 * tunnel; what is left between the two is what vpngw's protocol stack adds.
 */
import type tls from 'node:tls';
import * as abi from '../assembly/abi.js';
import { native, type IoHandle } from '../src/dataplane/native.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';

// Our choices: the tunnel's own TUN ring depth (DEFAULT_RING_SLOTS) and batch.
const SLOTS = 1024;
const BATCH = 64;
const FRAME_HEADER = 2;

export class TunTlsRelay {
  private readonly rx: Ring;
  private readonly tx: Ring;
  private readonly dv: DataView;
  private readonly handle: IoHandle;
  private carry: Buffer = Buffer.alloc(0);
  private scheduled = false;
  private closed = false;
  /** Packets the relay could not hand on (tx ring full). */
  dropped = 0;

  constructor(
    private readonly tunFd: number,
    private readonly socket: tls.TLSSocket,
  ) {
    const ringBytes = abi.RING_HEADER_SIZE + SLOTS * abi.SLOT_SIZE;
    const rxOff = abi.DP_BASE;
    const txOff = rxOff + ringBytes;
    const mem = createMemory(Math.ceil((txOff + ringBytes) / abi.WASM_PAGE) + 1);
    const buf = mem.buffer as SharedArrayBuffer;
    this.dv = new DataView(buf);
    for (const off of [rxOff, txOff]) {
      this.dv.setUint32(off + abi.R_SLOTS, SLOTS, true);
      this.dv.setUint32(off + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
    }
    this.rx = new Ring(mem, rxOff);
    this.tx = new Ring(mem, txOff);
    this.handle = native.ioStart(new Uint8Array(buf), { fd: tunFd, kind: 'tun', rxRing: rxOff, txRing: txOff, batch: BATCH }, () => this.schedule());
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.fromTls(d));
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(this.pump);
  }

  /** TUN -> TLS: everything in the rx ring, framed, in one write. */
  private readonly pump = (): void => {
    this.scheduled = false;
    if (this.closed) return;
    const n = this.rx.occupancy;
    if (n > 0) {
      let bytes = 0;
      const tail = this.rx.tail;
      for (let i = 0; i < n; i++) bytes += FRAME_HEADER + this.dv.getUint16(this.rx.slotOffset(tail + i) + abi.S_LEN, true);
      const out = Buffer.allocUnsafe(bytes);
      let at = 0;
      this.rx.drain((p) => {
        out.writeUInt16BE(p.length, at);
        out.set(p, at + FRAME_HEADER);
        at += FRAME_HEADER + p.length;
      }, n);
      this.socket.write(out);
      if (this.rx.takeProducerWaiting()) native.ioKick(this.handle);
    }
    if (this.rx.sleepConsumer()) this.schedule();
  };

  /** TLS -> TUN: whole frames into the tx ring, the rest kept for the next read. */
  private fromTls(d: Buffer): void {
    const data = this.carry.length ? Buffer.concat([this.carry, d]) : d;
    let at = 0;
    let pushed = false;
    while (data.length - at >= FRAME_HEADER) {
      const len = data.readUInt16BE(at);
      if (data.length - at < FRAME_HEADER + len) break;
      if (this.tx.push(data.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len))) pushed = true;
      else this.dropped++;
      at += FRAME_HEADER + len;
    }
    this.carry = at < data.length ? Buffer.from(data.subarray(at)) : Buffer.alloc(0);
    if (pushed && this.tx.takeConsumerSleeping()) native.ioKick(this.handle);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.ioStop(this.handle);
    native.close(this.tunFd);
    this.socket.destroy();
  }
}
