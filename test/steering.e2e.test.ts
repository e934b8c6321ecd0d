/**
 * In-kernel steering for multi-worker data planes: the eBPF program that
 * picks a multi-queue TUN device's queue by destination address, and the
 * classic BPF filter that gives each worker's raw GRE socket only the calls
 * whose id belongs to it.
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as abi from '../assembly/abi.js';
import { native } from '../src/dataplane/native.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';
import { ipv4ToInt } from '../src/dataplane/sessions.js';
import { NetLab, netnsSupport, reportSkip } from './lib/netns.js';

const facility = await netnsSupport();
reportSkip('TUN/GRE steering tests', facility);

function rxRing(slots = 64) {
  const mem = createMemory(64);
  const dv = new DataView(mem.buffer as SharedArrayBuffer);
  dv.setUint32(abi.DP_BASE + abi.R_SLOTS, slots, true);
  dv.setUint32(abi.DP_BASE + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
  return { u8: new Uint8Array(mem.buffer as SharedArrayBuffer), ring: new Ring(mem, abi.DP_BASE) };
}

const dsts = (r: Ring) => {
  const out: string[] = [];
  r.drain((p) => out.push(Array.from(p.subarray(16, 20)).join('.')));
  return out;
};

async function settle(ms = 300): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe.skipIf(!facility.ok)('in-kernel steering', () => {
  const lab = new NetLab();
  afterAll(async () => {
    await lab.cleanup();
  });

  it('a multi-queue TUN device delivers each destination to the queue the map names', async () => {
    const ns = await lab.netns('steer');
    const q0 = native.openTun('vgmq0', { netns: ns.name, multiQueue: true });
    const q1 = native.openTun('vgmq0', { netns: ns.name, multiQueue: true });
    const map = native.tunSteering(q0.fd, 1024);
    const r0 = rxRing();
    const r1 = rxRing();
    const h0 = native.ioStart(r0.u8, { fd: q0.fd, kind: 'tun', rxRing: abi.DP_BASE }, () => {});
    const h1 = native.ioStart(r1.u8, { fd: q1.fd, kind: 'tun', rxRing: abi.DP_BASE }, () => {});
    try {
      native.configureInterface('vgmq0', { netns: ns.name, ipv4: '198.18.20.1', prefixLen: 24, up: true });
      native.steerSet(map, ipv4ToInt('198.18.20.5'), 1);
      native.steerSet(map, ipv4ToInt('198.18.20.6'), 0);
      for (const dst of ['198.18.20.5', '198.18.20.6', '198.18.20.5']) {
        await ns.exec(['ping', '-c', '2', '-i', '0.05', '-W', '1', dst], { allowFail: true, timeoutMs: 5000 });
      }
      await settle();
      const got0 = dsts(r0.ring);
      const got1 = dsts(r1.ring);
      expect(got1.filter((d) => d === '198.18.20.5')).toHaveLength(4);
      expect(got0.filter((d) => d === '198.18.20.6')).toHaveLength(2);
      expect(got0).not.toContain('198.18.20.5');
      expect(got1).not.toContain('198.18.20.6');
      // Re-steer: .5 moves to queue 0.
      native.steerSet(map, ipv4ToInt('198.18.20.5'), 0);
      await ns.exec(['ping', '-c', '2', '-i', '0.05', '-W', '1', '198.18.20.5'], { allowFail: true, timeoutMs: 5000 });
      await settle();
      expect(dsts(r0.ring).filter((d) => d === '198.18.20.5')).toHaveLength(2);
      expect(dsts(r1.ring)).toHaveLength(0);
      native.steerDelete(map, ipv4ToInt('198.18.20.5'));
      native.steerDelete(map, ipv4ToInt('198.18.20.5')); // absent: fine
    } finally {
      native.ioStop(h0);
      native.ioStop(h1);
      native.close(q0.fd);
      native.close(q1.fd);
      native.close(map);
    }
  });

  it('raw GRE sockets with call-id filters each receive only their own calls', async () => {
    const a = await lab.netns('grea');
    const b = await lab.netns('greb');
    await lab.veth(a, b, { aAddr: '198.18.21.1/24', bAddr: '198.18.21.2/24' });
    const send = native.rawSocket(47, { netns: a.name });
    const s0 = native.rawSocket(47, { netns: b.name });
    const s1 = native.rawSocket(47, { netns: b.name });
    native.greCallIdFilter(s0, 2, 0);
    native.greCallIdFilter(s1, 2, 1);
    const tx = rxRing();
    const dvTx = new DataView(tx.u8.buffer);
    dvTx.setUint32(abi.DP_BASE + abi.R_SLOTS, 64, true);
    const r0 = rxRing();
    const r1 = rxRing();
    const hs = native.ioStart(tx.u8, { fd: send, kind: 'socket', txRing: abi.DP_BASE }, () => {});
    const h0 = native.ioStart(r0.u8, { fd: s0, kind: 'socket', rxRing: abi.DP_BASE }, () => {});
    const h1 = native.ioStart(r1.u8, { fd: s1, kind: 'socket', rxRing: abi.DP_BASE }, () => {});
    const to = new DataView(new Uint8Array([198, 18, 21, 2]).buffer).getUint32(0, true);
    const gre = (call: number, proto = 0x880b) => new Uint8Array([0x30, 0x01, proto >> 8, proto & 255, 0, 4, call >> 8, call & 255, 0, 0, 0, 1, 1, 2, 3, 4]);
    try {
      for (const [call, proto] of [[4, 0x880b], [5, 0x880b], [7, 0x880b], [6, 0x0800]] as const) tx.ring.push(gre(call, proto), { addr: to });
      if (tx.ring.takeConsumerSleeping()) native.ioKick(hs);
      await settle();
      const calls = (r: Ring) => {
        const out: number[] = [];
        r.drain((p) => {
          const ihl = (p[0]! & 15) * 4;
          out.push((p[ihl + 6]! << 8) | p[ihl + 7]!);
        });
        return out;
      };
      expect(calls(r0.ring)).toEqual([4]);
      expect(calls(r1.ring)).toEqual([5, 7]);
      expect(() => native.greCallIdFilter(s0, 0, 0)).toThrow(/out of range/);
    } finally {
      for (const h of [hs, h0, h1]) native.ioStop(h);
      for (const fd of [send, s0, s1]) native.close(fd);
    }
  });
});
