/** Producer side of bench/ring.ts (runs in a worker thread). */
import { parentPort, workerData } from 'node:worker_threads';
import * as abi from '../assembly/abi.js';
import { Ring } from '../src/dataplane/ring.js';

const { memory, offset, mode, ms } = workerData as { memory: WebAssembly.Memory; offset: number; mode: string; ms: number };
const pkt = new Uint8Array(64).fill(7);
const end = performance.now() + ms;
if (mode === 'postmessage') {
  while (performance.now() < end) for (let i = 0; i < 64; i++) parentPort!.postMessage(pkt);
} else {
  const r = new Ring(memory, offset);
  const u8 = new Uint8Array(memory.buffer as SharedArrayBuffer);
  const dv = new DataView(memory.buffer as SharedArrayBuffer);
  const u32 = new Uint32Array(memory.buffer as SharedArrayBuffer);
  const headIdx = (offset + abi.R_HEAD) >>> 2;
  while (performance.now() < end) {
    if (mode === 'packet') {
      for (let i = 0; i < 64; i++) r.push(pkt);
    } else {
      // Fill up to 64 free slots, then publish once.
      const head = u32[headIdx]!;
      const free = r.slots - ((head - r.tail) >>> 0);
      const n = Math.min(64, free);
      for (let i = 0; i < n; i++) {
        const s = r.slotOffset(head + i);
        u8.set(pkt, s + abi.SLOT_PAYLOAD_OFFSET);
        dv.setUint16(s + abi.S_LEN, pkt.length, true);
        dv.setUint16(s + abi.S_OFF, abi.SLOT_PAYLOAD_OFFSET, true);
      }
      if (n) Atomics.store(u32, headIdx, (head + n) >>> 0);
    }
  }
}
parentPort!.postMessage('done');
