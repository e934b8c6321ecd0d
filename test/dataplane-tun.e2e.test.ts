/**
 * End to end through a real TUN device in a network namespace:
 *   ping (kernel) -> TUN -> native I/O thread -> TUN_RX ring -> WASM responder
 *   -> TUN_TX ring -> native I/O thread -> TUN -> kernel -> ping
 * and the allocation tripwire: 100k packets through the same path leave the
 * WASM heap region untouched and the JS heap within a small bound.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import v8 from 'node:v8';
import vm from 'node:vm';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { native } from '../src/dataplane/native.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';
import { NetLab, netnsSupport, reportSkip, type Netns } from './lib/netns.js';
import { icmpEcho, ipv4 } from './lib/packets.js';

const facility = await netnsSupport();
reportSkip('dataplane TUN end-to-end tests', facility);

describe.skipIf(!facility.ok)('data plane through a real TUN device', () => {
  const lab = new NetLab();
  let ns: Netns;
  let dp: DataPlane;
  let tunFd = -1;
  const TUN = 'vgtun0';

  beforeAll(async () => {
    ns = await lab.netns('dp');
    dp = new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 16 });
    const tun = native.openTun(TUN, { netns: ns.name });
    tunFd = tun.fd;
    native.configureInterface(TUN, { netns: ns.name, ipv4: '198.18.5.1', prefixLen: 24, mtu: 1500, txQueueLen: 4096, up: true });
    await ns.ip('route', 'add', '198.18.6.0/24', 'dev', TUN);
    dp.attach('tun', tunFd, 'tun', abi.RingId.TUN_RX, abi.RingId.TUN_TX);
  });

  afterAll(async () => {
    dp?.close();
    if (tunFd >= 0) native.close(tunFd);
    await lab.cleanup();
  });

  it('answers ping -c 5 from the namespace, on the connected and on a routed prefix', async () => {
    const before = dp.stat(abi.Stat.RESPONDER_REPLIES);
    for (const dst of ['198.18.5.77', '198.18.6.9']) {
      const r = await ns.exec(['ping', '-c', '5', '-i', '0.2', '-W', '2', '-s', '120', dst], { timeoutMs: 20_000, allowFail: true });
      expect(r.stdout).toMatch(/5 packets transmitted, 5 received/);
    }
    expect(dp.stat(abi.Stat.RESPONDER_REPLIES) - before).toBe(10n);
    const rx = dp.ring(abi.RingId.TUN_RX);
    expect(rx.counter(abi.R_PRODUCED_PKTS)).toBeGreaterThanOrEqual(10n);
    expect(rx.counter(abi.R_IO_ERRORS)).toBe(0n);
    expect(dp.ring(abi.RingId.TUN_TX).counter(abi.R_IO_ERRORS)).toBe(0n);
  });

  it('pushes 100k packets through TUN -> WASM -> TUN without growing the WASM heap or the JS heap', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // Canary the space between AssemblyScript's static data and the data-plane
    // region: the stub allocator would write its block headers there.
    const heapBase = dp.wasm.heapBase();
    dp.u8.fill(0xa5, heapBase, abi.DP_BASE);

    // Generator: an ICMP raw socket in the namespace, driven by its own I/O
    // thread from a ring in a separate memory (so the load generator is not
    // JS-per-packet either).
    const genMem = createMemory(128);
    const genU8 = new Uint8Array(genMem.buffer as SharedArrayBuffer);
    const genDv = new DataView(genMem.buffer as SharedArrayBuffer);
    const TX = abi.DP_BASE;
    const RX = abi.DP_BASE + abi.RING_HEADER_SIZE + 1024 * abi.SLOT_SIZE;
    for (const off of [TX, RX]) {
      genDv.setUint32(off + abi.R_SLOTS, 1024, true);
      genDv.setUint32(off + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
    }
    const tx = new Ring(genMem, TX);
    const rx = new Ring(genMem, RX);
    const icmpFd = native.rawSocket(1, { netns: ns.name, rcvbuf: 8 << 20, sndbuf: 8 << 20 });
    let wakes = 0;
    const gen = native.ioStart(genU8, { fd: icmpFd, kind: 'socket', txRing: TX, rxRing: RX, batch: 64 }, () => {
      wakes++;
    });

    const TOTAL = 100_000;
    const WINDOW = 256;
    const payload = new Uint8Array(32);
    const dstAddr = new Uint8Array(4);
    new DataView(dstAddr.buffer).setUint32(0, ipv4('198.18.6.20'));
    const addrLe = new DataView(dstAddr.buffer).getUint32(0, true);
    let sent = 0;
    let replies = 0;
    let lost = 0;
    const countReplies = () =>
      rx.drain((p) => {
        const ihl = (p[0]! & 15) * 4;
        if (p[9] === 1 && p[ihl] === 0) replies++;
      });

    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const deadline = Date.now() + 90_000;
    let lastProgress = Date.now();
    while (replies < TOTAL && Date.now() < deadline) {
      while (sent - replies - lost < WINDOW) {
        // ICMP message only: the kernel adds the IP header (raw socket without IP_HDRINCL).
        if (!tx.push(icmpEcho(8, 0x77, sent & 0xffff, payload), { addr: addrLe })) break;
        sent++;
      }
      if (tx.takeConsumerSleeping()) native.ioKick(gen);
      await new Promise((r) => setTimeout(r, 1));
      const had = replies;
      countReplies();
      if (replies > had) lastProgress = Date.now();
      else if (Date.now() - lastProgress > 50) {
        // Packets the kernel dropped (queue overflow) never come back: write them off.
        lost = sent - replies;
        lastProgress = Date.now();
      }
    }
    native.ioStop(gen);
    native.close(icmpFd);
    gc();
    const heapAfter = process.memoryUsage().heapUsed;

    expect(replies).toBeGreaterThanOrEqual(TOTAL);
    // WASM heap high-water mark: the highest canary byte that changed.
    let high = heapBase;
    for (let i = abi.DP_BASE - 1; i >= heapBase; i--) {
      if (dp.u8[i] !== 0xa5) {
        high = i + 1;
        break;
      }
    }
    expect(high - heapBase).toBe(0);
    expect(dp.memory.buffer.byteLength).toBe(dp.layout.pages * abi.WASM_PAGE);
    // JS heap: bounded (GC noise and vitest's own bookkeeping stay well under 4 MiB).
    expect(heapAfter - heapBefore).toBeLessThan(4 * 1024 * 1024);
    console.log(
      `tripwire: ${replies} replies (${lost} lost of ${sent} sent), wasm heap high-water +${high - heapBase} B, js heap ${((heapAfter - heapBefore) / 1024).toFixed(0)} KiB, ` +
        `pumps ${dp.pumps}, generator wakes ${wakes}, drops ${JSON.stringify(Object.fromEntries(Object.entries(dp.drops()).filter(([, v]) => v > 0n).map(([k, v]) => [k, Number(v)])))}`,
    );
  }, 120_000);
});
