/**
 * The tunnel benchmarks' peer process (forked by bench/lab.ts): SSTP and
 * PPTP clients, traffic generators and sinks, the raw TLS reference client.
 * It runs apart from the gateway so that the gateway's CPU time and memory
 * are measured alone; it talks over the fork IPC channel:
 *
 *   request  { id, cmd, args }      response { id, ok, result | error }
 *   event    { event: 'mark', tag: 'start' | 'end' }  (measurement window)
 *
 * Clients live in named groups. A "shared" group puts all its clients on one
 * engine without TUN devices (traffic enters and leaves through the engine's
 * rings); a "tun" group gives each client its own engine and a TUN device in
 * the clients' namespace (for ping and HTTP through the kernel).
 *
 * Everything is bounded: connect timeouts, traffic by time, and the process
 * exits when the channel to the bench closes.
 */
import net from 'node:net';
import tls from 'node:tls';
import * as abi from '../assembly/abi.js';
import { DataPlane, type Attachment } from '../src/dataplane/engine.js';
import { native } from '../src/dataplane/native.js';
import { connectSstp, type SstpClient } from '../src/client/sstp.js';
import { connectPptp, type PptpClient } from '../src/client/pptp.js';
import { CallIdAllocator } from '../src/pptp/callid.js';
import { IPPROTO_GRE } from '../src/pptp/gre.js';
import { GRE_SOCKET_BUFFER } from '../src/pptp/datapath.js';
import { IoRing, Pacer, TunRxWriter, discard, runWindowed, writeAsFastAsTaken } from './traffic.js';
import { TunTlsRelay } from './relay.js';

type Client = SstpClient | PptpClient;

interface Group {
  kind: 'sstp' | 'pptp';
  clients: Client[];
  /** The shared engine (shared groups). */
  dp?: DataPlane;
  gre?: { fd: number; attachment: Attachment };
}

const groups = new Map<string, Group>();

/** The namespace a client should enter: none when this process already runs in it (Peer.start's `netns`). */
const clientNetns = (netns: string): string | undefined => (netns === process.env.VPNGW_BENCH_PEER_NETNS ? undefined : netns);

/** Ring sizes of a shared client engine: deep enough that the bench's window never overflows them. */
const SHARED_RINGS: Partial<Record<abi.RingId, number>> = {
  [abi.RingId.TUN_RX]: 2048,
  [abi.RingId.TUN_TX]: 4096,
  [abi.RingId.GRE_RX]: 4096,
  [abi.RingId.GRE_TX]: 2048,
  [abi.RingId.CTRL]: 1024,
  [abi.RingId.INJECT]: 1024,
  [abi.RingId.STREAM_IN]: 512,
  [abi.RingId.STREAM_OUT]: 512,
};

interface ConnectArgs {
  group: string;
  count: number;
  concurrency: number;
  host: string;
  netns: string;
  users: [string, string][];
  /** Shared engine, no TUN (default); or one engine and TUN device per client. */
  tun?: { names: string[]; routes: string[][] };
  connectTimeoutMs?: number;
  // SSTP
  port?: number;
  fingerprint?: string;
  // PPTP
  stateless?: boolean;
}

async function connectMany(a: ConnectArgs, kind: 'sstp' | 'pptp') {
  if (groups.has(a.group)) throw new Error(`group ${a.group} exists`);
  const g: Group = { kind, clients: [] };
  groups.set(a.group, g);
  if (!a.tun) {
    g.dp = new DataPlane({ maxSessions: a.count + 8, ringSlots: kind === 'sstp' ? { ...SHARED_RINGS } : { ...SHARED_RINGS, [abi.RingId.STREAM_IN]: 0, [abi.RingId.STREAM_OUT]: 0 }, streamBuffers: kind === 'sstp' });
    if (kind === 'pptp') {
      const fd = native.rawSocket(IPPROTO_GRE, { netns: a.netns, rcvbuf: GRE_SOCKET_BUFFER, sndbuf: GRE_SOCKET_BUFFER });
      g.gre = { fd, attachment: g.dp.attach('gre', fd, 'socket', abi.RingId.GRE_RX, abi.RingId.GRE_TX) };
    }
  }
  const callIds = new CallIdAllocator();
  const one = (i: number): Promise<Client> => {
    const [username, password] = a.users[i % a.users.length]!;
    const tun = a.tun ? { name: a.tun.names[i]!, routes: a.tun.routes[i] ?? [] } : (false as const);
    const common = { host: a.host, username, password, netns: clientNetns(a.netns), tun, connectTimeoutMs: a.connectTimeoutMs ?? 60_000, ...(g.dp ? { dataplane: g.dp } : {}) };
    return kind === 'sstp'
      ? connectSstp({ ...common, port: a.port ?? 443, fingerprint: a.fingerprint! })
      : connectPptp({ ...common, ...(g.dp ? { callIds } : {}), mppe: { stateless: a.stateless ?? false } });
  };
  const setupMs: number[] = [];
  const failures: string[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < a.count) {
      const i = next++;
      try {
        const c = await one(i);
        g.clients.push(c);
        setupMs.push(c.setupMs);
      } catch (e) {
        failures.push(String((e as Error).message ?? e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(a.concurrency, a.count) }, worker));
  const wallMs = performance.now() - t0;
  return { up: g.clients.length, failures: failures.slice(0, 5), failed: failures.length, wallMs, setupMs, ipv4s: g.clients.map((c) => c.ipv4) };
}

async function closeGroup(a: { group: string }) {
  const g = groups.get(a.group);
  if (!g) return { closed: 0 };
  groups.delete(a.group);
  const t0 = performance.now();
  await Promise.all(g.clients.map((c) => c.close().catch(() => undefined)));
  const ms = performance.now() - t0;
  if (g.gre && g.dp) {
    g.dp.detach(g.gre.attachment);
    native.close(g.gre.fd);
  }
  g.dp?.close();
  return { closed: g.clients.length, ms };
}

/** CPU seconds of this process at the last start and end marks. */
const markCpu = { start: 0, end: 0 };
const mark = (tag: 'start' | 'end') => {
  markCpu[tag] = cpuSeconds();
  process.send?.({ event: 'mark', tag });
};

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface TrafficArgs {
  group: string;
  dir: 'up' | 'down';
  len: number;
  warmMs: number;
  ms: number;
  window: number;
  /** The gateway's namespace: generator (downlink) and sink (uplink) sockets live there. */
  nsA: string;
  /** Address behind the gateway (on lo in ns A): downlink source, uplink destination. */
  far: string;
  port: number;
}

/** Windowed traffic through a shared group's tunnels; the peer measures at the sink. */
async function traffic(a: TrafficArgs) {
  const g = groups.get(a.group);
  if (!g?.dp) throw new Error(`no shared group ${a.group}`);
  const dp = g.dp;
  const drops0 = dp.drops();
  let result;
  if (a.dir === 'down') {
    const gen = IoRing.udp('tx', { netns: a.nsA, address: a.far });
    try {
      gen.prefill(a.len - 28, g.clients.map((c) => c.ipv4), a.port);
      const tunTx = dp.ring(abi.RingId.TUN_TX);
      const u32 = new Uint32Array(dp.memory.buffer as SharedArrayBuffer);
      result = await runWindowed({
        warmMs: a.warmMs,
        ms: a.ms,
        window: a.window,
        publish: (n) => gen.publish(n),
        delivered: () => Number(dp.stat(abi.Stat.TUN_TX_PKTS)),
        drainSink: () => void discard(tunTx, u32),
        mark,
      });
    } finally {
      gen.close();
    }
  } else {
    const sink = IoRing.udp('rx', { netns: a.nsA, address: a.far, port: a.port, slots: 4096 });
    try {
      const w = new TunRxWriter(dp, g.clients, a.far, a.port, a.len);
      result = await runWindowed({
        warmMs: a.warmMs,
        ms: a.ms,
        window: a.window,
        publish: (n) => w.publish(n),
        delivered: () => sink.received,
        drainSink: () => sink.drain(),
        mark,
      });
    } finally {
      sink.close();
    }
  }
  const drops1 = dp.drops();
  const drops = Object.fromEntries(Object.entries(drops1).map(([k, v]) => [k, Number(v - (drops0[k] ?? 0n))]).filter(([, v]) => (v as number) > 0));
  // The peer's CPU over the measurement window (clients, generator, sink).
  return { ...result, peerCpu: markCpu.end - markCpu.start, drops };
}

// ---------------------------------------------------------------- raw TLS reference client

interface TlsRefArgs {
  dir: 'up' | 'down';
  conns: number;
  len: number;
  warmMs: number;
  ms: number;
  host: string;
  port: number;
  netns: string;
}

/**
 * A node:tls connection from this process (entering `netns` unless it runs
 * there) to host:port, resolved once the handshake is done. The gateway's
 * own certificate is not checked: the references measure TLS work, not trust.
 */
function tlsFrom(a: { host: string; port: number; netns: string }, o: { secureContext?: tls.SecureContext; noDelay?: boolean } = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const netns = clientNetns(a.netns);
    const raw = netns !== undefined ? new net.Socket({ fd: native.tcpSocket({ netns }) }) : new net.Socket();
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Error(`TLS connection to ${a.host}:${a.port} not up within 15 s`));
    }, 15_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      raw.destroy();
      reject(e);
    };
    raw.once('error', fail);
    raw.connect(a.port, a.host, () => {
      raw.off('error', fail);
      if (o.noDelay) raw.setNoDelay(true);
      const s = tls.connect({ socket: raw, rejectUnauthorized: false, ...(o.secureContext ? { secureContext: o.secureContext } : { minVersion: 'TLSv1.2' }) });
      s.once('error', fail);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        s.off('error', fail);
        resolve(s);
      });
    });
  });
}

/**
 * The raw TLS reference: `conns` node:tls connections to the gateway
 * process's reference server. down: the server sends, we count; up: we send
 * `len`-byte writes as fast as the sockets take them, the server counts (it
 * samples its counter at our marks).
 */
async function tlsRef(a: TlsRefArgs) {
  const sockets = await Promise.all(Array.from({ length: a.conns }, () => tlsFrom(a)));
  let bytes = 0;
  let stop = false;
  // The request: who sends (0: the server, 1: we do) and the write size.
  const hello = Buffer.from([a.dir === 'down' ? 0 : 1, a.len >> 8, a.len & 255]);
  for (const s of sockets) {
    s.on('error', () => undefined);
    s.write(hello);
  }
  if (a.dir === 'down') {
    for (const s of sockets) s.on('data', (d: Buffer) => (bytes += d.length));
  } else {
    const chunk = Buffer.alloc(a.len, 0x5a);
    for (const s of sockets) writeAsFastAsTaken(s, chunk, () => stop);
  }
  await new Promise((r) => setTimeout(r, a.warmMs));
  const b0 = bytes;
  const t0 = performance.now();
  mark('start');
  await new Promise((r) => setTimeout(r, a.ms));
  const b1 = bytes;
  const t1 = performance.now();
  mark('end');
  stop = true;
  for (const s of sockets) s.destroy();
  return { bytes: b1 - b0, seconds: (t1 - t0) / 1000, peerCpu: markCpu.end - markCpu.start };
}

let idleTls: tls.TLSSocket[] = [];

/**
 * The memory reference: `conns` node:tls connections to the reference server
 * that exchange 1000 bytes each way (as a tunnel's set-up does, so the TLS
 * buffers exist) and then stay open, idle, until tlsIdleClose.
 */
async function tlsIdle(a: Omit<TlsRefArgs, 'dir' | 'len' | 'warmMs' | 'ms'>) {
  const hello = Buffer.concat([Buffer.from([2, 0, 0]), Buffer.alloc(1000, 0x33)]);
  for (let i = 0; i < a.conns; i += 32) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(32, a.conns - i) }, async () => {
        const s = await tlsFrom(a);
        s.on('error', () => undefined);
        await new Promise<void>((resolve) => {
          let got = 0;
          s.on('data', (d: Buffer) => {
            got += d.length;
            if (got >= 1000) resolve();
          });
          s.write(hello);
        });
        return s;
      }),
    );
    idleTls.push(...batch);
  }
  return { open: idleTls.length };
}

function tlsIdleClose() {
  for (const s of idleTls) s.destroy();
  const n = idleTls.length;
  idleTls = [];
  return { closed: n };
}

// ---------------------------------------------------------------- paced background load

let load: { pacer: Pacer; gen: IoRing; sink: IoRing } | undefined;

function loadStart(a: { pps: number; len: number; nsA: string; far: string; dst: string; port: number; nsB: string }) {
  if (load) throw new Error('a load runs already');
  const gen = IoRing.udp('tx', { netns: a.nsA, address: a.far });
  const sink = IoRing.udp('rx', { netns: a.nsB, address: '0.0.0.0', port: a.port, slots: 4096 });
  gen.prefill(a.len - 28, [a.dst], a.port);
  const pacer = new Pacer(a.pps, (n) => gen.publish(n), () => sink.drain());
  load = { pacer, gen, sink };
  pacer.start();
  return {};
}

async function loadStop() {
  if (!load) return { sent: 0, received: 0, seconds: 0 };
  const l = load;
  load = undefined;
  const r = l.pacer.stop();
  await new Promise((res) => setTimeout(res, 50));
  l.sink.drain();
  const out = { sent: l.gen.sent, received: l.sink.received, seconds: r.seconds };
  l.gen.close();
  l.sink.close();
  return out;
}

// ---------------------------------------------------------------- TLS set-up reference

interface TlsSetupArgs {
  count: number;
  concurrency: number;
  host: string;
  port: number;
  netns: string;
  /** Request/response exchanges after the handshake, `len` octets each way. */
  rounds: number;
  len: number;
}

let setupTls: tls.TLSSocket[] = [];

/**
 * The set-up rate's reference: `count` node:tls connections (`concurrency`
 * at a time, one TLS context as the SSTP client keeps), each doing `rounds`
 * request/response exchanges of `len` octets with the gateway process's echo
 * server: the TLS work an SSTP set-up does, without SSTP and PPP. The
 * connections stay open (closed by tlsSetupsClose), as the tunnels do.
 */
async function tlsSetups(a: TlsSetupArgs) {
  const secureContext = tls.createSecureContext({ minVersion: 'TLSv1.2' });
  const msg = Buffer.alloc(a.len, 0x5a);
  const one = async () => {
    const s = await tlsFrom(a, { secureContext, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      let left = a.rounds;
      let got = 0;
      s.once('error', reject);
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got < a.len) return;
        got -= a.len;
        if (--left > 0) s.write(msg);
        else {
          s.off('error', reject);
          resolve();
        }
      });
      s.write(msg);
    });
    return s;
  };
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(a.concurrency, a.count) }, async () => {
      while (next < a.count) {
        next++;
        try {
          setupTls.push(await one());
        } catch {
          failed++;
        }
      }
    }),
  );
  return { up: setupTls.length, failed, wallMs: performance.now() - t0 };
}

function tlsSetupsClose() {
  for (const s of setupTls) s.destroy();
  setupTls = [];
  return {};
}

// ---------------------------------------------------------------- latency reference: bare TLS relay

let relay: TunTlsRelay | undefined;

interface RelayArgs {
  host: string;
  port: number;
  netns: string;
  tun: string;
  /** This end's address on the relay's /24. */
  address: string;
}

/** Open a TUN device with `address`/24 and relay it over TLS to the gateway process's relay (bench/relay.ts). */
async function relayStart(a: RelayArgs) {
  if (relay) throw new Error('a relay is running');
  const netns = clientNetns(a.netns);
  const tun = native.openTun(a.tun, netns !== undefined ? { netns } : {});
  native.configureInterface(tun.name, { ...(netns !== undefined ? { netns } : {}), ipv4: a.address, prefixLen: 24, mtu: 1400, up: true });
  const socket = await tlsFrom(a, { noDelay: true });
  socket.on('error', () => undefined);
  relay = new TunTlsRelay(tun.fd, socket);
  return {};
}

function relayStop() {
  const dropped = relay?.dropped ?? 0;
  relay?.close();
  relay = undefined;
  return { dropped };
}

// ---------------------------------------------------------------- dispatch

const commands: Record<string, (args: never) => unknown> = {
  hello: () => ({ pid: process.pid }),
  cpu: () => ({ cpu: cpuSeconds() }),
  sstpConnect: (a: ConnectArgs) => connectMany(a, 'sstp'),
  pptpConnect: (a: ConnectArgs) => connectMany(a, 'pptp'),
  close: closeGroup,
  closeAll: async () => {
    for (const name of [...groups.keys()]) await closeGroup({ group: name });
    tlsIdleClose();
    tlsSetupsClose();
    relayStop();
    if (load) await loadStop();
    return {};
  },
  traffic,
  tlsRef,
  tlsIdle,
  tlsIdleClose,
  tlsSetups,
  tlsSetupsClose,
  relayStart,
  relayStop,
  loadStart,
  loadStop,
  usage: () => {
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    return { cpu: cpuSeconds(), rss: m.rss, heapUsed: m.heapUsed };
  },
  exit: async () => {
    for (const name of [...groups.keys()]) await closeGroup({ group: name });
    if (load) await loadStop();
    process.exit(0);
  },
};

process.on('message', (m: { id: number; cmd: string; args: object }) => {
  const fn = commands[m.cmd];
  if (!fn) {
    process.send?.({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
    return;
  }
  Promise.resolve()
    .then(() => fn(m.args as never))
    .then(
      (result) => process.send?.({ id: m.id, ok: true, result }),
      (e: unknown) => process.send?.({ id: m.id, ok: false, error: (e as Error)?.stack ?? String(e) }),
    );
});
// The bench went away: so do we (its NetLab kills us by PID too).
process.on('disconnect', () => process.exit(0));
