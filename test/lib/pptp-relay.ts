/**
 * A userspace PPTP-aware relay for end-to-end tests, run inside the test
 * process in a relay namespace R:
 *
 *   clients ──TCP 1723──► R (listen) ──TCP──► server       (a plain proxy)
 *   clients ──GRE──► R raw socket ──GRE──► server          (re-sent from R)
 *   server  ──GRE──► R raw socket ──GRE──► the client whose call id is the key
 *
 * The server sees every client at R's address (as behind a NAT), so the
 * relay learns which client owns which call id from the control stream it
 * proxies (the client's Outgoing-Call-Request and the server's reply). It is
 * the stand-in for a NAT with a PPTP helper on kernels without
 * nf_nat_pptp, and the lossy link of the loss tests: GRE can be dropped
 * (probability `loss`) and adjacent packets swapped (probability
 * `reorder`), both ways, from a seeded generator. The control connection
 * (TCP) is never touched.
 *
 * GRE moves through the native I/O thread (recvmmsg / sendmmsg) into rings
 * in a memory of its own: no WASM, the relay code reads the rings.
 */
import net from 'node:net';
import * as abi from '../../assembly/abi.js';
import { computeLayout, writeLayout } from '../../src/dataplane/layout.js';
import { createMemory } from '../../src/dataplane/wasm.js';
import { Ring } from '../../src/dataplane/ring.js';
import { native, type IoHandle } from '../../src/dataplane/native.js';
import { ControlDeframer, ControlMessageType } from '../../src/pptp/codec.js';

/** Network-order u32 as in a slot's addr field, from dotted quad. */
export function slotAddr(a: string): number {
  return new DataView(new Uint8Array(a.split('.').map(Number)).buffer).getUint32(0, true);
}
function dotted(slot: number): string {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, slot, true);
  return b.join('.');
}

/** A small deterministic generator (mulberry32), so a failing run can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RelayOptions {
  netns: string;
  /** Where clients connect (an address of R on the clients' side). */
  listen: string;
  port?: number;
  /** The PPTP server (reached from R). */
  server: string;
  serverPort?: number;
  loss?: number;
  reorder?: number;
  seed?: number;
}

export interface RelayStats {
  toServer: number;
  toClient: number;
  dropped: number;
  swapped: number;
  /** GRE from the server whose key names no known client call. */
  unknownCall: number;
}

export class PptpRelay {
  readonly stats: RelayStats = { toServer: 0, toClient: 0, dropped: 0, swapped: 0, unknownCall: 0 };
  /** Client call id (the key of GRE from the server) -> client address. */
  readonly clientByCall = new Map<number, string>();
  loss: number;
  reorder: number;
  private readonly random: () => number;
  private readonly rx: Ring;
  private readonly tx: Ring;
  private readonly handle: IoHandle;
  private readonly fd: number;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** A packet held back to be sent after the next one (reordering), per direction. */
  private readonly held = new Map<number, { gre: Uint8Array; to: number }>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  private constructor(
    private readonly o: RelayOptions,
    server: net.Server,
  ) {
    this.loss = o.loss ?? 0;
    this.reorder = o.reorder ?? 0;
    this.random = seeded(o.seed ?? 1);
    this.server = server;
    // Only the two GRE rings.
    const ringSlots: Partial<Record<abi.RingId, number>> = {};
    for (let id = 0; id < abi.RING_COUNT; id++) ringSlots[id as abi.RingId] = id === abi.RingId.GRE_RX || id === abi.RingId.GRE_TX ? 4096 : 0;
    const layout = computeLayout({ maxSessions: 1, streamBuffers: false, ringSlots });
    const memory = createMemory(layout.pages);
    writeLayout(memory, layout);
    this.rx = new Ring(memory, layout.rings[abi.RingId.GRE_RX]!);
    this.tx = new Ring(memory, layout.rings[abi.RingId.GRE_TX]!);
    this.fd = native.rawSocket(47, { netns: o.netns, rcvbuf: 8 << 20, sndbuf: 8 << 20 });
    this.handle = native.ioStart(new Uint8Array(memory.buffer as SharedArrayBuffer), { fd: this.fd, kind: 'socket', rxRing: this.rx.offset, txRing: this.tx.offset, batch: 64 }, () =>
      setImmediate(this.pump),
    );
    setImmediate(this.pump);
  }

  static async start(o: RelayOptions): Promise<PptpRelay> {
    const server = net.createServer();
    const fd = native.tcpListener({ netns: o.netns, address: o.listen, port: o.port ?? 1723 });
    await new Promise<void>((r) => server.listen({ fd }, r));
    const relay = new PptpRelay(o, server);
    server.on('connection', (s) => relay.onClient(s));
    return relay;
  }

  private onClient(client: net.Socket): void {
    const clientAddr = (client.remoteAddress ?? '').replace(/^::ffff:/, '');
    const upstream = new net.Socket({ fd: native.tcpSocket({ netns: this.o.netns }) });
    this.sockets.add(client);
    this.sockets.add(upstream);
    client.pause();
    upstream.connect(this.o.serverPort ?? 1723, this.o.server, () => client.resume());
    const fromClient = new ControlDeframer();
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('data', (d: Buffer) => {
      // The client's Outgoing-Call-Request names its call id: GRE from the server keyed with it goes to this
      // client. Learnt before the server can answer, so its first GRE packet already finds the way.
      for (const m of fromClient.push(d).messages) {
        if (m.type === ControlMessageType.OutgoingCallRequest) this.clientByCall.set(m.callId, clientAddr);
      }
      upstream.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  }

  private readonly pump = (): void => {
    if (this.closed) return;
    for (;;) {
      this.rx.drain((p, m) => this.forward(p, m.addr));
      if (this.rx.takeProducerWaiting()) native.ioKick(this.handle);
      if (!this.rx.sleepConsumer()) break;
    }
    if (this.tx.occupancy > 0 && this.tx.takeConsumerSleeping()) native.ioKick(this.handle);
  };

  private forward(ip: Uint8Array, from: number): void {
    const ihl = (ip[0]! & 0x0f) * 4;
    if (ip.length < ihl + 8) return;
    const gre = ip.subarray(ihl);
    const fromServer = dotted(from) === this.o.server;
    let to: number;
    if (fromServer) {
      const client = this.clientByCall.get((gre[6]! << 8) | gre[7]!);
      if (!client) {
        this.stats.unknownCall++;
        return;
      }
      to = slotAddr(client);
    } else {
      to = slotAddr(this.o.server);
    }
    if (this.loss > 0 && this.random() < this.loss) {
      this.stats.dropped++;
      return;
    }
    const dir = fromServer ? 0 : 1;
    const held = this.held.get(dir);
    if (held) {
      // Send this one first, then the one held back: a swap.
      this.held.delete(dir);
      this.send(gre, to, fromServer);
      this.send(held.gre, held.to, fromServer);
      this.stats.swapped++;
      return;
    }
    if (this.reorder > 0 && this.random() < this.reorder) {
      this.held.set(dir, { gre: gre.slice(), to });
      // Never hold one forever: nothing may follow it.
      this.flushTimer ??= setTimeout(() => this.flushHeld(), 5);
      return;
    }
    this.send(gre, to, fromServer);
  }

  private flushHeld(): void {
    this.flushTimer = undefined;
    for (const [dir, h] of this.held) {
      this.held.delete(dir);
      this.send(h.gre, h.to, dir === 0);
    }
    this.pump();
  }

  private send(gre: Uint8Array, to: number, toClient: boolean): void {
    if (!this.tx.push(gre, { addr: to })) return;
    if (toClient) this.stats.toClient++;
    else this.stats.toServer++;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.flushTimer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    native.ioStop(this.handle);
    native.close(this.fd);
  }
}
