/**
 * The kernel's per-packet floor beside the PPTP ceiling (issue 5): what one
 * core could reach end to end if the only costs were the WASM cipher and the
 * system calls a packet needs on its way through the gateway.
 *
 * Each row is the CPU time of the one thread doing the work (the native
 * addon's I/O threads, vpngw-io-*, on their own thread clock: user + system,
 * the kernel work of their system calls included; the user/system split and
 * the sleeps come from /proc/self/task/<tid>) divided by the packets it moved
 * in the same window, given as packets/s per core of that thread, with
 * microseconds per packet and packets per wake-up in the note:
 *
 *   TUN read   a UDP socket in namespace A (sendmmsg on an I/O thread) sends
 *              to a prefix routed into a TUN device; the reader thread does
 *              one read() per packet (a TUN device has no batched read).
 *   TUN write  the writer thread does one write() per packet (batch 64 per
 *              ring turn) of IPv4/UDP packets addressed to a UDP sink socket
 *              in A (recvmmsg on an I/O thread): the kernel's receive path,
 *              local delivery and the sink's wake-up run in that write(), as
 *              on the PPTP uplink of bench/pptp.ts.
 *   GRE send   a raw IP-protocol-47 socket in A, sendmmsg of PPTP GRE frames
 *              made by the real WASM data plane (MPPE-128 stateful) from
 *              packets of the row's size, across a veth pair to namespace B;
 *              and once more with B dropping GRE at its veth's ingress hook
 *              (nft netdev), which leaves the sender's own share.
 *   GRE recv   a raw GRE socket in B, recvmmsg of those frames.
 *   RC4        bench/datapath.ts rc4Ceiling (the WASM cipher alone over the
 *              same packet size) on the main thread, per CPU-second, before
 *              and after the I/O rows (the better of the two).
 *
 * Two regimes. Senders are measured with a bounded window in flight
 * (bench/traffic.ts runWindowed, as bench/pptp.ts drives the gateway): they
 * rarely sleep. Receivers woken by every few packets pay a sleep and a
 * wake-up each time, so they are also measured with a held backlog: their
 * ring is freed only every few milliseconds while the sender offers more than
 * they may take, so each turn reads a full ring with full batches. The held
 * figure is the receiver's floor; the windowed one is what bench/pptp.ts sees.
 *
 * Derived rows: the best per-core ratio to the RC4 ceiling a one-core PPTP
 * gateway could reach with these per-packet costs,
 *   downlink rc4 / (rc4 + tunRead + greSend), uplink rc4 / (rc4 + greRecv + tunWrite),
 * and with TUN I/O free (perfect GSO/GRO offload): rc4 / (rc4 + gre).
 *
 * Accounting: this kernel has no IRQ time accounting, so softirq work is
 * charged to the thread it interrupts. On veth the receiving namespace's
 * stack (IP input, raw_rcv, the receiver's wake-up) runs in the sender's
 * sendmmsg; on a NIC it would run on the receiving host. bench/pptp.ts runs
 * on veth too, so the floor rows use the full send cost, and give the ratio
 * with the sender's own share beside it.
 *
 * Topology: namespaces A and B from a NetLab (test/lib/netns.ts: deleted at
 * the end, on failure and by the exit hook; stale ones swept by the next
 * run), a veth pair and the TUN's prefixes from 198.18.0.0/15.
 */
import { readFileSync } from 'node:fs';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { native } from '../src/dataplane/native.js';
import { NetLab, uniqueIfName, type Netns, type Subnet } from '../test/lib/netns.js';
import { BATCH, rc4Ceiling } from './datapath.js';
import { labUnavailable, loadAverage, runPart, threadCpu } from './lab.js';
import { fmt, type BenchContext, type BenchRow, type BenchSuite } from './lib.js';
import { IoRing, runWindowed, udpPacket } from './traffic.js';

// Our choices.
/** Slots per ring; above twice the window so a sink's ring never fills between drains. */
const SLOTS = 2048;
/** Packets in flight per sender. */
const WINDOW = 1024;
/** Packets per sendmmsg / recvmmsg, and per TUN ring turn (the gateway's default). */
const IO_BATCH = 64;
/** Socket buffers, as the gateway's GRE socket (src/pptp/datapath.ts GRE_SOCKET_BUFFER). */
const SOCKET_BUFFER = 8 << 20;
const SINK_PORT = 9;
const CLOCK_TICKS = 100;

interface Plan {
  warmMs: number;
  /** Measurement window per round (1-3 s). */
  ms: number;
  /** Windows per measurement; the lowest cost per packet is the floor. */
  rounds: number;
  rc4Ms: number;
}

const plan = (quick: boolean): Plan => (quick ? { warmMs: 300, ms: 1000, rounds: 1, rc4Ms: 500 } : { warmMs: 500, ms: 2000, rounds: 2, rc4Ms: 1000 });
const LENS = () => (process.env.VPNGW_BENCH_LENS ?? '1400,64').split(',').map(Number);

/** CPU times (clock-tick resolution) and voluntary context switches (sleeps) of one thread of this process; undefined once it is gone. */
function taskTimes(tid: number): { user: number; sys: number; sleeps: number } | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const m = /voluntary_ctxt_switches:\s*(\d+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'));
    return { user: Number(f[11]) / CLOCK_TICKS, sys: Number(f[12]) / CLOCK_TICKS, sleeps: m ? Number(m[1]) : NaN };
  } catch {
    return undefined;
  }
}

/** Thread ids of this process named vpngw-io-* (the addon's I/O threads). */
function ioThreadIds(): Set<number> {
  return new Set([...threadCpu()].filter(([, t]) => t.name.startsWith('vpngw-io-')).map(([tid]) => tid));
}

/** An I/O thread under measurement: its ring, its thread id (for /proc), its packet counter. */
interface Worker {
  label: string;
  io: IoRing;
  tid: number | undefined;
  packets(): number;
}

/** Start an IoRing and find its thread (the one vpngw-io-* thread that was not there before). */
function started(label: string, make: () => IoRing, packets: (io: IoRing) => number): Worker {
  const before = ioThreadIds();
  const io = make();
  const fresh = [...ioThreadIds()].filter((t) => !before.has(t));
  return { label, io, tid: fresh.length === 1 ? fresh[0] : undefined, packets: () => packets(io) };
}

interface ThreadCost {
  label: string;
  /** CPU microseconds per packet this thread moved (its own clock: pthread_getcpuclockid). */
  us: number;
  /** Share of a core the thread used over the window. */
  cores: number;
  /** Share of its CPU time in the kernel (from /proc, clock ticks); NaN when unknown. */
  sys: number;
  /** Packets per voluntary context switch (per sleep in poll and wake-up); Infinity: never slept; NaN when unknown. */
  perWake: number;
  pps: number;
  packets: number;
}

interface Window {
  costs: Map<string, ThreadCost>;
  lost: number;
}

/** Runs traffic for a warm-up and one measurement window, calling `mark` at the window's start and end. */
type Driver = (mark: (tag: 'start' | 'end') => void) => Promise<{ lost: number }>;

/**
 * The senders' regime, as bench/pptp.ts drives the gateway: at most WINDOW
 * packets in flight, the sink's ring freed at every turn (the receiving
 * thread wakes for whatever has arrived).
 */
function windowed(p: Plan, o: { publish(max: number): number; delivered(): number; drainSink(): void }): Driver {
  return async (mark) => {
    const r = await runWindowed({ warmMs: p.warmMs, ms: p.ms, window: WINDOW, ...o, mark });
    return { lost: r.lost };
  };
}

/**
 * The receivers' best case: the receiving thread's ring is freed only every
 * `intervalMs`, while the sender offers 1.25 times what the receiver is let
 * take. The backlog waits in the kernel queue (socket buffer, TUN queue; the
 * excess is dropped on the sender's side), so at each turn the receiver finds
 * a full ring's worth: recvmmsg with full batches, one wake-up per SLOTS
 * packets. What it costs per packet then is the system call's own work.
 */
function held(p: Plan, o: { publish(max: number): number; drainSink(): void; intervalMs: number }): Driver {
  return async (mark) => {
    const rate = (1.25 * SLOTS) / (o.intervalMs / 1000);
    const t0 = performance.now();
    const tStart = t0 + p.warmMs;
    const tEnd = tStart + p.ms;
    let inWindow = false;
    let published = 0;
    let lastDrain = t0;
    for (;;) {
      const now = performance.now();
      if (!inWindow && now >= tStart) {
        mark('start');
        inWindow = true;
      } else if (inWindow && now >= tEnd) {
        mark('end');
        break;
      }
      const due = Math.floor(((now - t0) / 1000) * rate) - published;
      // What the sender's ring could not take is not made up for later.
      if (due > 0) published += o.publish(Math.min(due, SLOTS)) + Math.max(0, due - SLOTS);
      if (now - lastDrain >= o.intervalMs) {
        o.drainSink();
        lastDrain = now;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    o.drainSink();
    return { lost: 0 };
  };
}

/** The drain interval of {@link held}: the receiver takes 0.6 of what the sender moved in the windowed run. */
const heldInterval = (senderPps: number) => Math.min(50, Math.max(2, (SLOTS / (0.6 * senderPps)) * 1000));

/** One window: every worker's CPU, packets and sleeps at the window's marks. */
async function measure(workers: Worker[], drive: Driver): Promise<Window> {
  type Mark = { t: number; cpu: number[]; n: number[]; times: ({ user: number; sys: number; sleeps: number } | undefined)[] };
  const snap = (): Mark => ({
    t: performance.now() / 1000,
    cpu: workers.map((w) => w.io.cpuSeconds()),
    n: workers.map((w) => w.packets()),
    times: workers.map((w) => (w.tid !== undefined ? taskTimes(w.tid) : undefined)),
  });
  let a: Mark | undefined;
  let b: Mark | undefined;
  const r = await drive((tag) => {
    if (tag === 'start') a = snap();
    else b = snap();
  });
  if (!a || !b) throw new Error('the measurement window did not complete');
  const dt = b.t - a.t;
  const costs = new Map<string, ThreadCost>();
  workers.forEach((w, i) => {
    const cpu = b!.cpu[i]! - a!.cpu[i]!;
    const n = b!.n[i]! - a!.n[i]!;
    const ta = a!.times[i];
    const tb = b!.times[i];
    const user = ta && tb ? tb.user - ta.user : NaN;
    const sys = ta && tb ? tb.sys - ta.sys : NaN;
    const sleeps = ta && tb ? tb.sleeps - ta.sleeps : NaN;
    costs.set(w.label, {
      label: w.label,
      us: n > 0 ? (cpu / n) * 1e6 : NaN,
      cores: cpu / dt,
      sys: user + sys > 0 ? sys / (user + sys) : NaN,
      perWake: sleeps > 0 ? n / sleeps : sleeps === 0 ? Infinity : NaN,
      pps: n / dt,
      packets: n,
    });
  });
  return { costs, lost: r.lost };
}

/** `rounds` windows; per thread, the window where it cost least per packet. */
async function measureBest(p: Plan, workers: Worker[], drive: Driver): Promise<{ best: Map<string, ThreadCost>; all: Window[] }> {
  const all: Window[] = [];
  for (let i = 0; i < p.rounds; i++) all.push(await measure(workers, drive));
  const best = new Map<string, ThreadCost>();
  for (const w of workers) {
    const pick = all
      .map((x) => x.costs.get(w.label)!)
      .filter((c) => Number.isFinite(c.us))
      .sort((x, y) => x.us - y.us)[0];
    if (!pick) throw new Error(`${w.label}: no packets in the measurement window`);
    best.set(w.label, pick);
  }
  return { best, all };
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : '?');
const wakeText = (c: ThreadCost) =>
  c.perWake === Infinity ? 'never slept' : Number.isFinite(c.perWake) ? `${c.perWake.toFixed(c.perWake < 10 ? 1 : 0)} packets per wake-up` : 'wake-ups unknown';
const usText = (c: ThreadCost) => `${c.us.toFixed(2)} us CPU per packet (${fmt(c.pps)} pps at ${c.cores.toFixed(2)} cores, ${pct(c.sys)} in the kernel, ${wakeText(c)})`;
const windowsText = (all: Window[], label: string) => (all.length > 1 ? ` [windows: ${all.map((w) => w.costs.get(label)!.us.toFixed(2)).join(' / ')} us]` : '');

interface Rc4 {
  us: number;
  wallPps: number;
  cores: number;
}

/** The WASM RC4 ceiling on the main thread: CPU microseconds per `len`-byte packet (process CPU: the suite's I/O threads are stopped). */
function rc4Cost(len: number, ms: number): Rc4 {
  const fn = rc4Ceiling(len);
  const warm = performance.now() + 100;
  while (performance.now() < warm) fn();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let calls = 0;
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 8; i++) fn();
    calls += 8;
    t = performance.now();
  }
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  const pkts = calls * BATCH;
  const secs = (t - t0) / 1000;
  return { us: (cpu / pkts) * 1e6, wallPps: pkts / secs, cores: cpu / secs };
}

/**
 * PPTP GRE frames (payload of the raw socket: GRE header, PPP, MPPE) that the
 * WASM data plane makes from `count` IPv4 packets of `len` bytes, MPPE-128
 * stateful, one session whose peer is `peer`.
 */
function greFrames(len: number, peer: string, count: number): Uint8Array[] {
  const dp = new DataPlane({ maxSessions: 16, ringSlots: { [abi.RingId.TUN_RX]: 256, [abi.RingId.GRE_TX]: 256 } });
  try {
    const idx = dp.openSession({ control: () => {}, streamOut: () => {} })!;
    dp.sessions.attach(idx, { tunnel: abi.Tunnel.PPTP, gre: { peer, myCallId: 1, peerCallId: 0x8001 } });
    dp.sessions.mppe(idx, { bits: 128, stateless: false, sendStartKey: new Uint8Array(16).fill(0x11), recvStartKey: new Uint8Array(16).fill(0x77) });
    dp.sessions.activate(idx, { ipv4: '198.18.128.10', mtu: 1500 });
    const pkt = udpPacket('198.18.129.1', '198.18.128.10', 40000, len);
    const out: Uint8Array[] = [];
    for (let guard = 0; out.length < count && guard < count; guard++) {
      const rx = dp.ring(abi.RingId.TUN_RX);
      for (let i = 0; i < 128 && rx.push(pkt); i++);
      dp.pump();
      dp.ring(abi.RingId.GRE_TX).drain((p) => {
        if (out.length < count) out.push(p.slice());
      });
    }
    if (out.length < count) throw new Error(`the data plane made ${out.length} of ${count} GRE frames: ${JSON.stringify(Object.entries(dp.drops()).filter(([, v]) => v > 0n).map(([k, v]) => [k, Number(v)]))}`);
    return out;
  } finally {
    dp.close();
  }
}

interface Topology {
  a: Netns;
  b: Netns;
  link: Subnet;
  /** The veth end in B. */
  vethB: string;
  /** TUN device's own /24 (address .1; written packets come from .5). */
  tunNet: Subnet;
  /** Routed into the TUN (the read generator's destinations). */
  routed: Subnet;
}

async function topology(lab: NetLab): Promise<Topology> {
  const a = await lab.netns('floor-a');
  const b = await lab.netns('floor-b');
  const link = await lab.subnet();
  const tunNet = await lab.subnet();
  const routed = await lab.subnet();
  const v = await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
  return { a, b, link, vethB: v.b, tunNet, routed };
}

/** An IoRing over a socket `fd`; the fd is closed if the thread does not start (afterwards IoRing.close closes it). */
function onThread(role: 'tx' | 'rx', fd: number, kind: 'socket' | 'tun' = 'socket'): IoRing {
  try {
    return new IoRing(role, fd, SLOTS, IO_BATCH, kind);
  } catch (e) {
    native.close(fd);
    throw e;
  }
}

/** A fresh TUN device in A with its address, and the routed prefix pointed into it. Closed with its IoRing. */
async function openTun(T: Topology): Promise<{ name: string; fd: number }> {
  const name = uniqueIfName('vgf');
  const tun = native.openTun(name, { netns: T.a.name });
  try {
    native.configureInterface(name, { netns: T.a.name, ipv4: T.tunNet.host(1), prefixLen: 24, mtu: 1500, txQueueLen: 4096, up: true });
    await T.a.ip('route', 'replace', `${T.routed.network}/24`, 'dev', name);
  } catch (e) {
    native.close(tun.fd);
    throw e;
  }
  return { name, fd: tun.fd };
}

/** Results per packet size, filled by the parts; the derived rows need all of them. */
interface Costs {
  /** Receivers: best case (held backlog) and as a window drives them. */
  tunRead?: ThreadCost;
  tunReadWindowed?: ThreadCost;
  tunWrite?: ThreadCost;
  greSend?: ThreadCost;
  greRecv?: ThreadCost;
  greRecvWindowed?: ThreadCost;
  /** GRE send with B dropping GRE at its veth's ingress hook (undefined without nft). */
  greSendOwn?: ThreadCost;
}

type Part = (ctx: BenchContext, p: Plan, T: Topology, len: number, costs: Costs, rows: BenchRow[]) => Promise<void>;

/** A row of packets/s per core of one thread; the reference (the RC4 ceiling) is set by the suite when both RC4 runs are done. */
function threadRow(name: string, c: ThreadCost, note: string): BenchRow {
  return { name, value: 1e6 / c.us, unit: 'pps', reference: { name: 'WASM RC4 ceiling, same inner bytes, per core', value: NaN }, note };
}

const tunRead: Part = async (ctx, p, T, len, costs, rows) => {
  const open: IoRing[] = [];
  try {
    const tun = await openTun(T);
    const reader = started('reader', () => onThread('rx', tun.fd, 'tun'), (io) => io.received);
    open.push(reader.io);
    const gen = started('generator', () => IoRing.udp('tx', { netns: T.a.name, address: T.link.host(1), slots: SLOTS }), (io) => io.sent);
    open.push(gen.io);
    gen.io.prefill(len - 28, [T.routed.host(1), T.routed.host(2), T.routed.host(3), T.routed.host(4)], SINK_PORT);
    const publish = (n: number) => gen.io.publish(n);
    const drainSink = () => reader.io.drain();
    const w = await measureBest(p, [reader, gen], windowed(p, { publish, drainSink, delivered: () => reader.io.received }));
    const g = w.best.get('generator')!;
    const interval = heldInterval(g.pps);
    const h = await measureBest(p, [reader], held(p, { publish, drainSink, intervalMs: interval }));
    const r = h.best.get('reader')!;
    const rw = w.best.get('reader')!;
    costs.tunRead = r;
    costs.tunReadWindowed = rw;
    ctx.log(`TUN read ${len}B: reader ${usText(r)} held, ${usText(rw)} windowed; generator ${usText(g)}`);
    rows.push(
      threadRow(
        `TUN read ${len}B, per core of the reader thread`,
        r,
        `${usText(r)}${windowsText(h.all, 'reader')}: one read() per packet, backlog held in the TUN queue (ring freed every ${interval.toFixed(0)} ms). ` +
          `Driven by a window of ${WINDOW} (as bench/pptp.ts): ${usText(rw)}${windowsText(w.all, 'reader')}. ` +
          `Generator (UDP sendmmsg routed into the TUN, its own thread): ${g.us.toFixed(2)} us per packet. The PPTP and SSTP downlinks pay this read per packet`,
      ),
    );
  } finally {
    for (const io of open.reverse()) io.close();
  }
};

const tunWrite: Part = async (ctx, p, T, len, costs, rows) => {
  const open: IoRing[] = [];
  try {
    const sink = started('sink', () => IoRing.udp('rx', { netns: T.a.name, address: T.link.host(1), port: SINK_PORT, slots: SLOTS }), (io) => io.received);
    open.push(sink.io);
    const tun = await openTun(T);
    const writer = started('writer', () => onThread('tx', tun.fd, 'tun'), (io) => io.sent);
    open.push(writer.io);
    writer.io.prefillPackets([udpPacket(T.tunNet.host(5), T.link.host(1), SINK_PORT, len)]);
    const { best, all } = await measureBest(p, [writer, sink], windowed(p, { publish: (n) => writer.io.publish(n), delivered: () => sink.io.received, drainSink: () => sink.io.drain() }));
    const w = best.get('writer')!;
    const s = best.get('sink')!;
    costs.tunWrite = w;
    ctx.log(`TUN write ${len}B: writer ${usText(w)}; sink ${usText(s)}`);
    rows.push(
      threadRow(
        `TUN write ${len}B, batch ${IO_BATCH}, per core of the writer thread`,
        w,
        `${usText(w)}${windowsText(all, 'writer')}: one write() per packet, which runs the kernel's receive path, local UDP delivery and the sink's wake-up; window of ${WINDOW}. ` +
          `Sink (recvmmsg): ${s.us.toFixed(2)} us per packet; lost ${all.reduce((x, y) => x + y.lost, 0)}. The PPTP and SSTP uplinks pay this write per packet`,
      ),
    );
  } finally {
    for (const io of open.reverse()) io.close();
  }
};

const gre: Part = async (ctx, p, T, len, costs, rows) => {
  const frames = greFrames(len, T.link.host(2), 64);
  const greLen = frames[0]!.length;
  const open: IoRing[] = [];
  const rawFd = (ns: Netns, address: string) => native.rawSocket(47, { netns: ns.name, address, rcvbuf: SOCKET_BUFFER, sndbuf: SOCKET_BUFFER });
  try {
    const receiver = started('receiver', () => onThread('rx', rawFd(T.b, T.link.host(2))), (io) => io.received);
    open.push(receiver.io);
    const sender = started('sender', () => onThread('tx', rawFd(T.a, T.link.host(1))), (io) => io.sent);
    open.push(sender.io);
    sender.io.prefillPackets(frames, T.link.host(2));
    const publish = (n: number) => sender.io.publish(n);
    const drainSink = () => receiver.io.drain();
    const w = await measureBest(p, [sender, receiver], windowed(p, { publish, drainSink, delivered: () => receiver.io.received }));
    const s = w.best.get('sender')!;
    const interval = heldInterval(s.pps);
    const h = await measureBest(p, [receiver], held(p, { publish, drainSink, intervalMs: interval }));
    const r = h.best.get('receiver')!;
    const rw = w.best.get('receiver')!;
    costs.greSend = s;
    costs.greRecv = r;
    costs.greRecvWindowed = rw;
    ctx.log(`GRE ${greLen}B: sender ${usText(s)}; receiver ${usText(r)} held, ${usText(rw)} windowed`);
    // The sender's own share: B drops GRE at its veth's ingress hook, before IP input.
    let own = 'not measured (no nft)';
    const undo = await dropGreAtIngress(T);
    if (undo) {
      try {
        const o = await measureBest(p, [sender], held(p, { publish, drainSink: () => {}, intervalMs: 2 }));
        costs.greSendOwn = o.best.get('sender')!;
        own = `${usText(costs.greSendOwn)}${windowsText(o.all, 'sender')}`;
        ctx.log(`GRE ${greLen}B: sender, B dropping at ingress: ${own}`);
      } finally {
        await undo();
      }
    }
    const what = `raw GRE ${greLen}B (PPTP frame of a ${len}B packet, IP ${greLen + 20}B)`;
    rows.push(
      threadRow(
        `${what} sendmmsg, per core of the sender thread`,
        s,
        `${usText(s)}${windowsText(w.all, 'sender')}: batches of ${IO_BATCH}, window of ${WINDOW}, across a veth pair; lost ${w.all.reduce((x, y) => x + y.lost, 0)}. ` +
          `On veth the receiving namespace's softirq (IP input, raw_rcv, the receiver's wake-up) runs in the sender's sendmmsg and is charged to it (no IRQ time accounting); on a NIC the sender would pay IP output and the driver's transmit only. ` +
          `With B dropping GRE at its veth's ingress hook (nft netdev, before IP input; sender flooding): ${own}`,
      ),
      threadRow(
        `${what} recvmmsg, per core of the receiver thread`,
        r,
        `${usText(r)}${windowsText(h.all, 'receiver')}: batches of ${IO_BATCH}, backlog held in the socket buffer (ring freed every ${interval.toFixed(0)} ms). ` +
          `Driven by a window of ${WINDOW} (as bench/pptp.ts): ${usText(rw)}${windowsText(w.all, 'receiver')}. The IP input before the socket is on the sender's side (above)`,
      ),
    );
  } finally {
    for (const io of open.reverse()) io.close();
  }
};

/**
 * Make namespace B drop IPv4 GRE at its veth's ingress hook (nft, netdev
 * family): what the sender's sendmmsg then carries is IP output, the veth
 * transmit and the receive softirq up to the hook. Returns the undo, or
 * undefined when nft is not there.
 */
async function dropGreAtIngress(T: Topology): Promise<(() => Promise<void>) | undefined> {
  const nft = (...args: string[]) => T.b.exec(['nft', ...args]);
  try {
    await nft('add', 'table', 'netdev', 'vgf');
  } catch {
    return undefined;
  }
  const undo = async () => {
    await nft('delete', 'table', 'netdev', 'vgf');
  };
  try {
    await nft('add', 'chain', 'netdev', 'vgf', 'c', `{ type filter hook ingress device ${T.vethB} priority 0 ; }`);
    await nft('add', 'rule', 'netdev', 'vgf', 'c', 'meta', 'protocol', 'ip', 'ip', 'protocol', 'gre', 'drop');
  } catch (e) {
    await undo();
    throw e;
  }
  return undo;
}

/** The floor rows of one packet size: best ratio to the RC4 ceiling with per-packet I/O, and with TUN I/O free. */
function floorRows(len: number, rc4: Rc4, c: Required<Omit<Costs, 'greSendOwn'>> & Pick<Costs, 'greSendOwn'>): BenchRow[] {
  const gbit = (us: number) => (len * 8) / (us * 1000);
  const ceiling = gbit(rc4.us);
  const row = (dir: 'downlink' | 'uplink', tun: ThreadCost, tunWindowed: ThreadCost, tunWhat: string, g: ThreadCost, gWindowed: ThreadCost, greWhat: string): BenchRow => {
    const sum = rc4.us + tun.us + g.us;
    const sumWindowed = rc4.us + tunWindowed.us + gWindowed.us;
    const offload = rc4.us / (rc4.us + g.us);
    const own = dir === 'downlink' && c.greSendOwn ? rc4.us + tun.us + c.greSendOwn.us : undefined;
    return {
      name: `PPTP ${dir} ${len}B floor: one core doing RC4 + ${tunWhat} + ${greWhat} per packet`,
      value: gbit(sum),
      unit: 'Gbit/s',
      reference: { name: 'WASM RC4 ceiling, 1 core', value: ceiling },
      ...(len === 1400 ? { target: { op: '>=', value: 0.7, of: 'ratio' } as const } : {}),
      note:
        `best ratio = rc4 / (rc4 + ${tunWhat} + ${greWhat}) = ${rc4.us.toFixed(2)} / (${rc4.us.toFixed(2)} + ${tun.us.toFixed(2)} + ${g.us.toFixed(2)}) us = ${(rc4.us / sum).toFixed(2)} (${fmt(1e6 / sum)} pps per core); ` +
        `with the receiving thread's wake-ups as a window drives it (bench/pptp.ts): ${(rc4.us / sumWindowed).toFixed(2)}; ` +
        (own !== undefined ? `with the GRE send's own share only (B dropping at its ingress hook: ${c.greSendOwn!.us.toFixed(2)} us): ${(rc4.us / own).toFixed(2)}; ` : '') +
        `with TUN I/O free (perfect GSO/GRO offload): rc4 / (rc4 + ${greWhat}) = ${offload.toFixed(2)} (${gbit(rc4.us + g.us).toFixed(2)} Gbit/s). ` +
        `The bare cipher stands for the whole WASM data path (PPP, MPPE framing, GRE sequencing, the JS around it cost more: the real floor is lower still)`,
    };
  };
  return [
    row('downlink', c.tunRead, c.tunReadWindowed, 'TUN read', c.greSend, c.greSend, 'GRE send'),
    row('uplink', c.tunWrite, c.tunWrite, 'TUN write', c.greRecv, c.greRecvWindowed, 'GRE recv'),
  ];
}

export const suite: BenchSuite = {
  name: 'floor',
  // VPNGW_BENCH_LENS (default 1400,64), VPNGW_BENCH_PARTS (tun-read, tun-write, gre) narrow a run.
  unavailable: () => labUnavailable('network namespaces, TUN device, raw GRE sockets'),
  async run(ctx) {
    const p = plan(ctx.quick);
    const rows: BenchRow[] = [];
    ctx.log(`load average at start: ${loadAverage()}`);
    const lab = new NetLab();
    try {
      const T = await topology(lab);
      for (const len of LENS()) {
        const before = rc4Cost(len, p.rc4Ms);
        const costs: Costs = {};
        const parts: [string, Part][] = [
          ['tun-read', tunRead],
          ['tun-write', tunWrite],
          ['gre', gre],
        ];
        const partRows: BenchRow[] = [];
        for (const [name, fn] of parts) {
          const n = partRows.length;
          // A failed part leaves one row "<name>: FAILED"; say which size.
          if (!(await runPart(ctx, partRows, name, () => fn(ctx, p, T, len, costs, partRows))) && partRows.length > n) partRows[partRows.length - 1]!.name = `${name} ${len}B: FAILED`;
        }
        const after = rc4Cost(len, p.rc4Ms);
        const rc4 = before.us <= after.us ? before : after;
        ctx.log(`WASM RC4 ${len}B: ${before.us.toFixed(3)} / ${after.us.toFixed(3)} us per packet (before / after)`);
        for (const r of partRows) if (r.reference) r.reference.value = 1e6 / rc4.us;
        rows.push({
          name: `WASM RC4 ceiling ${len}B, per core of the main thread`,
          value: 1e6 / rc4.us,
          unit: 'pps',
          note:
            `${rc4.us.toFixed(3)} us CPU per packet = ${((len * 8) / (rc4.us * 1000)).toFixed(2)} Gbit/s per core; the better of before (${before.us.toFixed(3)}) and after (${after.us.toFixed(3)}) the I/O rows; ` +
            `wall rate ${fmt(rc4.wallPps)} pps at ${rc4.cores.toFixed(2)} cores (bench/datapath.ts rc4Ceiling, batches of ${BATCH})`,
        });
        rows.push(...partRows);
        const { tunRead: a1, tunReadWindowed: a2, tunWrite: a3, greSend: a4, greRecv: a5, greRecvWindowed: a6, greSendOwn } = costs;
        if (a1 && a2 && a3 && a4 && a5 && a6) rows.push(...floorRows(len, rc4, { tunRead: a1, tunReadWindowed: a2, tunWrite: a3, greSend: a4, greRecv: a5, greRecvWindowed: a6, greSendOwn }));
      }
    } finally {
      await lab.cleanup();
    }
    ctx.log(`load average at end: ${loadAverage()}`);
    return rows;
  },
};
