/**
 * Ring transfer between threads: a worker thread produces 64-byte packets
 * into an SPSC ring in a shared WebAssembly.Memory, the main thread consumes
 * them; packets/s with one Atomics publish per packet (per-packet) and with
 * a batch of 64 slots filled before each publish (batched, as the native I/O
 * threads do). Reference: postMessage of the same 64-byte payloads between
 * the same two threads (the obvious alternative to shared rings).
 */
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as abi from '../assembly/abi.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';
import type { BenchRow, BenchSuite } from './lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function ring(slots: number) {
  const mem = createMemory(Math.ceil((abi.DP_BASE + abi.RING_HEADER_SIZE + slots * abi.SLOT_SIZE) / abi.WASM_PAGE) + 1);
  const dv = new DataView(mem.buffer as SharedArrayBuffer);
  dv.setUint32(abi.DP_BASE + abi.R_SLOTS, slots, true);
  dv.setUint32(abi.DP_BASE + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
  return { mem, ring: new Ring(mem, abi.DP_BASE) };
}

async function transfer(mode: 'packet' | 'batch' | 'postmessage', ms: number): Promise<number> {
  const { mem, ring: r } = ring(1024);
  const w = new Worker(path.join(here, 'ring-worker.js'), { workerData: { memory: mem, offset: abi.DP_BASE, mode, ms } });
  let received = 0;
  let done = false;
  w.on('message', (m: unknown) => {
    if (m === 'done') done = true;
    else received++;
  });
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const spin = () => {
      if (mode !== 'postmessage') received += r.drain(() => {});
      if (done && r.occupancy === 0) return resolve();
      setImmediate(spin);
    };
    spin();
  });
  const secs = (performance.now() - t0) / 1000;
  await w.terminate();
  return received / secs;
}

export const suite: BenchSuite = {
  name: 'ring',
  async run(ctx) {
    const ms = ctx.quick ? 500 : 1500;
    const post = await transfer('postmessage', ms);
    const rows: BenchRow[] = [];
    for (const mode of ['packet', 'batch'] as const) {
      const pps = await transfer(mode, ms);
      rows.push({ name: `ring 64B worker -> main, ${mode === 'packet' ? 'publish per packet' : 'publish per 64'}`, value: pps, unit: 'pps', reference: { name: 'postMessage', value: post } });
    }
    return rows;
  },
};
