/**
 * The native addon against the real kernel: ABI agreement with
 * assembly/abi.ts, raw GRE (47) and ESP (50) sockets moving packets across a
 * veth pair between two namespaces through rings, and the typed errors a
 * user sees (no /dev/net/tun, no privilege, name taken, bad namespace).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as abi from '../assembly/abi.js';
import { native, nativeAvailable } from '../src/dataplane/native.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';
import { NativeError } from '../src/util/errors.js';
import { NetLab, netnsSupport, reportSkip, type Netns } from './lib/netns.js';

const pexec = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const addonFile = path.resolve(here, '../native/build/Release/vpngw_native.node');
const facility = await netnsSupport();
reportSkip('native addon end-to-end tests (raw sockets, namespaces, privileges)', facility);

describe('native addon ABI', () => {
  it('agrees with assembly/abi.ts on every ring and slot offset', () => {
    expect(nativeAvailable()).toBe(true);
    const n = native.abi();
    const a = abi as unknown as Record<string, number>;
    for (const k of Object.keys(n)) expect([k, n[k]]).toEqual([k, a[k]]);
    expect(Object.keys(n).length).toBeGreaterThan(15);
  });

  it('rejects rings whose geometry does not fit the memory', () => {
    const mem = createMemory(32);
    const u8 = new Uint8Array(mem.buffer as SharedArrayBuffer);
    const dv = new DataView(mem.buffer as SharedArrayBuffer);
    dv.setUint32(abi.DP_BASE + abi.R_SLOTS, 3, true); // not a power of two
    dv.setUint32(abi.DP_BASE + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
    expect(() => native.ioStart(u8, { fd: 0, kind: 'tun', rxRing: abi.DP_BASE }, () => {})).toThrow(/bad geometry/);
    expect(() => native.ioStart(u8, { fd: 0, kind: 'tun', rxRing: 1 << 30 }, () => {})).toThrow(/outside the memory/);
    expect(() => native.ioStart(u8, { fd: 0, kind: 'tun' }, () => {})).toThrow(/rxRing, txRing or both/);
  });
});

function ringPair(slots = 64) {
  const mem = createMemory(64);
  const dv = new DataView(mem.buffer as SharedArrayBuffer);
  const tx = abi.DP_BASE;
  const rx = abi.DP_BASE + abi.RING_HEADER_SIZE + slots * abi.SLOT_SIZE;
  for (const off of [tx, rx]) {
    dv.setUint32(off + abi.R_SLOTS, slots, true);
    dv.setUint32(off + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
  }
  return { mem, u8: new Uint8Array(mem.buffer as SharedArrayBuffer), tx: new Ring(mem, tx), rx: new Ring(mem, rx), txOff: tx, rxOff: rx };
}

/** Network-order IPv4 address as the slot's little-endian u32 field holds it. */
function slotAddr(a: string): number {
  const b = new Uint8Array(a.split('.').map(Number));
  return new DataView(b.buffer).getUint32(0, true);
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

describe.skipIf(!facility.ok)('raw IP sockets across a veth pair', () => {
  const lab = new NetLab();
  let a: Netns;
  let b: Netns;
  beforeAll(async () => {
    a = await lab.netns('a');
    b = await lab.netns('b');
    await lab.veth(a, b, { aAddr: '198.18.7.1/24', bAddr: '198.18.7.2/24' });
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  for (const [proto, label] of [
    [47, 'GRE'],
    [50, 'ESP'],
  ] as const) {
    it(`sends ${label} packets from ring to ring (A -> B) with addresses in the slot`, async () => {
      const fdA = native.rawSocket(proto, { netns: a.name });
      const fdB = native.rawSocket(proto, { netns: b.name });
      const A = ringPair();
      const B = ringPair();
      let wokeB = 0;
      const hA = native.ioStart(A.u8, { fd: fdA, kind: 'socket', txRing: A.txOff, rxRing: A.rxOff }, () => {});
      const hB = native.ioStart(B.u8, { fd: fdB, kind: 'socket', txRing: B.txOff, rxRing: B.rxOff }, () => {
        wokeB++;
      });
      try {
        B.rx.sleepConsumer();
        // Enhanced GRE (RFC 2637 4.1): flags K+S, version 1, proto 880b, key = len|call id, seq.
        const payloads: Uint8Array[] = [];
        for (let i = 0; i < 20; i++) {
          const p = new Uint8Array(16 + i * 37);
          if (proto === 47) p.set([0x30, 0x01, 0x88, 0x0b, 0, p.length - 12, 0x12, 0x34, 0, 0, 0, i]);
          else p.set([0, 0, 0x10, 0x01, 0, 0, 0, i + 1]);
          for (let j = 12; j < p.length; j++) p[j] = (j * 7 + i) & 255;
          payloads.push(p);
          expect(A.tx.push(p, { addr: slotAddr('198.18.7.2') })).toBe(true);
        }
        if (A.tx.takeConsumerSleeping()) native.ioKick(hA);
        expect(await waitFor(() => B.rx.occupancy >= 20, 5000)).toBe(true);
        // The wake-up (thread-safe function) may run a tick after the slots are visible.
        expect(await waitFor(() => wokeB >= 1, 2000)).toBe(true);
        const got: { data: Uint8Array; addr: number }[] = [];
        B.rx.drain((p, m) => got.push({ data: p.slice(), addr: m.addr }));
        expect(got).toHaveLength(20);
        got.forEach((g, i) => {
          const ihl = (g.data[0]! & 15) * 4;
          expect(g.data[9]).toBe(proto); // IP header included on receive
          expect(g.addr).toBe(slotAddr('198.18.7.1'));
          expect(Array.from(g.data.subarray(ihl))).toEqual(Array.from(payloads[i]!));
        });
        expect(B.rx.counter(abi.R_IO_ERRORS)).toBe(0n);
        // The threads are named for top -H / perf, and account their own CPU time (the bench's pps per core).
        const names = readdirSync('/proc/self/task').map((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim());
        expect(names.filter((n) => n === 'vpngw-io-sock').length).toBeGreaterThanOrEqual(2);
        const cpu = native.ioCpuSeconds(hB);
        expect(cpu).toBeGreaterThan(0);
        expect(cpu).toBeLessThan(process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6);
      } finally {
        native.ioStop(hA);
        native.ioStop(hB);
        expect(native.ioCpuSeconds(hB)).toBeNaN();
        native.close(fdA);
        native.close(fdB);
      }
    });
  }

  it('counts an unsendable packet as an I/O error and keeps going', async () => {
    const fd = native.rawSocket(47, { netns: a.name });
    const A = ringPair();
    const h = native.ioStart(A.u8, { fd, kind: 'socket', txRing: A.txOff }, () => {});
    try {
      A.tx.push(new Uint8Array(16), { addr: slotAddr('203.0.113.1') }); // no route in the namespace
      A.tx.push(new Uint8Array(16), { addr: slotAddr('198.18.7.2') });
      if (A.tx.takeConsumerSleeping()) native.ioKick(h);
      expect(await waitFor(() => A.tx.occupancy === 0, 3000)).toBe(true);
      expect(A.tx.counter(abi.R_IO_ERRORS)).toBe(1n);
      expect(A.tx.counter(abi.R_CONSUMED_PKTS)).toBe(2n);
    } finally {
      native.ioStop(h);
      native.close(fd);
    }
  });
});

describe.skipIf(!facility.ok)('TCP listeners (SO_REUSEPORT, as worker threads use them)', () => {
  const lab = new NetLab();
  afterAll(async () => {
    await lab.cleanup();
  });

  it('IPv6 "::" takes IPv6 and IPv4 clients on every SO_REUSEPORT listener of one port; a raw socket refuses an IPv6 address', async () => {
    const ns = await lab.netns('tcp6');
    const port = 4400 + (process.pid % 500);
    const fds = [0, 1].map(() => native.tcpListener({ netns: ns.name, address: '::', port, reusePort: true }));
    let accepted = 0;
    const servers = fds.map((fd) => {
      const srv = net.createServer((c) => {
        accepted++;
        c.end('ok');
      });
      srv.listen({ fd });
      return srv;
    });
    try {
      const reply = (fd: number, host: string) =>
        new Promise<string>((resolve, reject) => {
          const c = new net.Socket({ fd });
          let got = '';
          c.on('data', (d: Buffer) => (got += d.toString()));
          c.once('error', reject);
          c.once('end', () => resolve(got));
          c.connect(port, host);
        });
      expect(await reply(native.tcpSocket({ netns: ns.name, address: '::' }), '::1')).toBe('ok');
      expect(await reply(native.tcpSocket({ netns: ns.name }), '127.0.0.1')).toBe('ok');
      expect(accepted).toBe(2);
      // The same port again without SO_REUSEPORT is taken.
      expect(() => native.tcpListener({ netns: ns.name, address: '::', port })).toThrow(/ERR_ADDRESS_IN_USE|cannot bind/);
      expect(() => native.tcpListener({ address: 'fe80::zz', port })).toThrow(/not an IPv4 or IPv6 address/);
      expect(() => native.rawSocket(47, { netns: ns.name, address: '::1' })).toThrow(/raw sockets are IPv4/);
    } finally {
      for (const srv of servers) srv.close();
    }
  });
});

describe.skipIf(!facility.ok)('TUN device configuration', () => {
  const lab = new NetLab();
  afterAll(async () => {
    await lab.cleanup();
  });

  it('sets MTU, queue length, IPv4 and IPv6 addresses and brings the device up; closing the fd removes it', async () => {
    const ns = await lab.netns('tuncfg');
    const tun = native.openTun('vgcfg0', { netns: ns.name });
    try {
      native.configureInterface('vgcfg0', {
        netns: ns.name,
        mtu: 1400,
        txQueueLen: 2048,
        ipv4: '198.18.8.1',
        prefixLen: 24,
        ipv6: 'fd00:198:18:8::1',
        prefixLen6: 64,
        up: true,
      });
      const link = await ns.ip('link', 'show', 'vgcfg0');
      expect(link).toMatch(/mtu 1400/);
      expect(link).toMatch(/qlen 2048/);
      expect(link).toMatch(/<[^>]*\bUP\b[^>]*>/);
      expect(await ns.ip('-4', 'addr', 'show', 'dev', 'vgcfg0')).toMatch(/inet 198\.18\.8\.1\/24/);
      expect(await ns.ip('-6', 'addr', 'show', 'dev', 'vgcfg0')).toMatch(/inet6 fd00:198:18:8::1\/64/);
      expect(native.interfaceIndex('vgcfg0', { netns: ns.name })).toBeGreaterThan(0);
      expect(native.interfaceIndex('vgcfg0')).toBe(0); // not in this process's namespace
      expect(() => native.configureInterface('vgcfg0', { netns: ns.name, ipv6: 'not-an-address' })).toThrow(/not an IPv6 address/);
      expect(() => native.configureInterface('vgcfg0', { netns: ns.name, mtu: 10 })).toThrow(/mtu 10 is out of range/);
    } finally {
      native.close(tun.fd);
    }
    expect(native.interfaceIndex('vgcfg0', { netns: ns.name })).toBe(0);
  });
});

describe.skipIf(!facility.ok)('typed errors a user understands', () => {
  const child = (script: string, wrapper: string[] = []) =>
    pexec(wrapper[0] ?? process.execPath, [...wrapper.slice(1), ...(wrapper.length ? [process.execPath] : []), '-e', script], {
      timeout: 10_000,
    })
      .then((r) => r.stdout.trim())
      .catch((e: { stdout?: string }) => String(e.stdout ?? '').trim());
  const probe = (call: string) =>
    `const a=require(${JSON.stringify(addonFile)});try{${call};console.log('ok')}catch(e){console.log(e.code+'|'+e.message)}`;

  it('a name that is taken (an existing non-TUN device) -> ERR_DEVICE_BUSY', () => {
    let err: unknown;
    try {
      native.openTun('lo');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    expect((err as NativeError).code).toBe('ERR_DEVICE_BUSY');
    expect((err as NativeError).message).toMatch(/'lo' exists and is not a TUN device/);
  });

  it('an unknown namespace -> ERR_USAGE naming it', () => {
    expect(() => native.openTun('x0', { netns: 'no-such-ns-vpngw' })).toThrow(/network namespace 'no-such-ns-vpngw' is not available/);
  });

  it('without privileges -> ERR_PERMISSION saying what is needed', async () => {
    const out = await child(probe("a.openTun('vgperm0',{})"), ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(out).toMatch(/^ERR_PERMISSION\|.*(CAP_NET_ADMIN|run as root)/);
    const raw = await child(probe('a.rawSocket(47,{})'), ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(raw).toMatch(/^ERR_PERMISSION\|.*CAP_NET_RAW/);
  });

  it('without /dev/net/tun -> ERR_NO_TUN with the fix', async () => {
    // A private mount namespace where /dev/net is an empty tmpfs.
    const out = await child(probe("a.openTun('vgnotun0',{})"), ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$0" "$@"']);
    expect(out).toMatch(/^ERR_NO_TUN\|\/dev\/net\/tun is missing/);
  });
});
