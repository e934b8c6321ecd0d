/**
 * SSTP tunnels end to end (issue 4, "Benchmarks"): the real gateway in this
 * process (SstpService, TLS by node:tls, the WASM data plane, a TUN device in
 * namespace A) and the real clients (connectSstp, on one shared client
 * engine) in a peer process (bench/peer.ts) in namespace B. See bench/lab.ts.
 *
 * - Goodput and packets/s, 1400- and 64-byte IP packets, downlink (TUN ->
 *   tunnel -> client) and uplink, 1, 10 (and 100 in a full run) sessions.
 *   Downlink packets come from a UDP socket in ns A (sendmmsg on a native
 *   thread) through the kernel into the gateway's TUN; uplink packets enter
 *   the client engine's TUN_RX ring and leave the gateway's TUN for a UDP
 *   sink in ns A. The sender keeps a bounded window in flight (bench/traffic.ts).
 *   Reference, measured in the same run between the same two processes and
 *   namespaces: node:tls to node:tls with the same certificate, one
 *   connection per session, writes of the packet size as fast as the sockets
 *   take them. Target: tunnel goodput >= 80% of it.
 * - Tunnel set-up rate (TCP + TLS + HTTP + SSTP + PPP with EAP-MSCHAPv2 +
 *   crypto binding + IPCP + data-plane install), ECDSA P-256 and RSA-2048
 *   server certificates; clients in the peer process (the gateway's own
 *   cost, target >= 500/s with ECDSA) and clients in this process (one
 *   thread does both ends).
 * - Memory per idle session: this process's RSS and heap before and after N
 *   idle tunnels, divided by N. Target <= 100 KiB.
 * - Added latency: ping through the tunnel vs the same ping over the veth
 *   link, p50/p99, idle and under a paced downlink load of 10% and 50% of
 *   the measured 1-session 1400-byte downlink maximum. Target p99 < 1 ms at 50%.
 * - autocannon (HTTP, request level) to a node:http server behind the
 *   gateway through 1 and 10 tunnels (each client with its own TUN device),
 *   against the same run without tunnels.
 */
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { native } from '../src/dataplane/native.js';
import { connectSstp, type SstpClient } from '../src/client/sstp.js';
import { createSelfSignedCertificate, type CertAlgorithm } from '../src/sstp/cert.js';
import { uniqueIfName, type Subnet } from '../test/lib/netns.js';
import { fmt, type BenchContext, type BenchRow, type BenchSuite } from './lib.js';
import { writeAsFastAsTaken } from './traffic.js';
import { TunTlsRelay } from './relay.js';
import { GATEWAY, Peer, benchWorkers, labUnavailable, busiestThreads, threadCpu, SINK_PORT, USERS, loadAverage, measureTraffic, part, percentile, recoverLab, runPart, sample, sleep, startGatewayLab, waitUntil, type GatewayLab, type Marks } from './lab.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The reference TLS server's port (ns A, the gateway's address). */
const REF_PORT = 4443;
const HTTP_PORT = 8080;

interface Plan {
  warmMs: number;
  ms: number;
  sessions: number[];
  setupCount: number;
  setupConcurrency: number;
  idleSessions: number;
  pings: number;
  httpS: number;
}

function plan(quick: boolean): Plan {
  const p = planDefaults(quick);
  if (process.env.VPNGW_BENCH_MS) p.ms = Number(process.env.VPNGW_BENCH_MS);
  if (process.env.VPNGW_BENCH_SETUP_CONCURRENCY) p.setupConcurrency = Number(process.env.VPNGW_BENCH_SETUP_CONCURRENCY);
  return p;
}

function planDefaults(quick: boolean): Plan {
  return quick
    ? { warmMs: 300, ms: 1000, sessions: process.env.VPNGW_BENCH_SESSIONS ? process.env.VPNGW_BENCH_SESSIONS.split(',').map(Number) : [1, 10], setupCount: 300, setupConcurrency: 32, idleSessions: 500, pings: 300, httpS: 3 }
    : { warmMs: 500, ms: 3000, sessions: [1, 10, 100], setupCount: 1000, setupConcurrency: 64, idleSessions: 1000, pings: 2000, httpS: 10 };
}

/** Packets in flight for the windowed sender: about 700 KB at 1400 bytes (under the 1 MiB TLS backlog bound), deeper for small packets. */
export const windowFor = (len: number) => Number(process.env.VPNGW_BENCH_WINDOW ?? 0) || (len >= 1000 ? 512 : 1024);

const mbit = (bytes: number, s: number) => (bytes * 8) / s / 1e6;

/**
 * The certificate and key the node:tls references serve: the gateway's own;
 * with worker threads (which make theirs themselves, ECDSA P-256) one of the
 * same algorithm made here, once per lab.
 */
const referenceCerts = new WeakMap<GatewayLab, { certPem: string; keyPem: string }>();
function referenceCertificate(L: GatewayLab): { certPem: string; keyPem: string } {
  const own = L.sstp?.certificate;
  if (own) return own;
  let made = referenceCerts.get(L);
  if (!made) {
    made = createSelfSignedCertificate({ commonName: L.serverAddress, algorithm: 'ecdsa-p256' });
    referenceCerts.set(L, made);
  }
  return made;
}

/** The node:tls reference server in this (the gateway's) process. */
async function startTlsReference(L: GatewayLab) {
  const cert = referenceCertificate(L);
  let received = 0;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.2' }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      if (head.length < 3) return;
      s.off('data', onData);
      const [mode, hi, lo] = [head[0]!, head[1]!, head[2]!];
      if (mode === 1) {
        received += head.length - 3;
        s.on('data', (x: Buffer) => (received += x.length));
        return;
      }
      writeAsFastAsTaken(s, Buffer.alloc((hi << 8) | lo, 0xa5), () => false);
    };
    s.on('data', onData);
  });
  const fd = native.tcpListener({ netns: L.a.name, address: L.serverAddress, port: REF_PORT, backlog: 1024 });
  await new Promise<void>((r) => server.listen({ fd }, r));
  return {
    received: () => received,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const cores = (m: Marks | undefined) => (m ? (m.end.cpu - m.start.cpu) / (m.end.t - m.start.t) : NaN);

async function goodput(ctx: BenchContext, L: GatewayLab, peer: Peer, p: Plan, rows: BenchRow[]): Promise<number> {
  const ref = await startTlsReference(L);
  peer.probe = ref.received;
  let maxDownPps = 0;
  try {
    for (const n of p.sessions) {
      const c = await peer.call<{ up: number; failed: number; failures: string[] }>('sstpConnect', {
        group: 'bulk',
        count: n,
        concurrency: 16,
        host: L.serverAddress,
        port: L.sstpPort,
        fingerprint: L.fingerprint,
        netns: L.b.name,
        users: USERS,
      });
      if (c.up !== n) throw new Error(`only ${c.up} of ${n} SSTP tunnels came up: ${c.failures.join('; ')}`);
      for (const len of (process.env.VPNGW_BENCH_LENS ?? '1400,64').split(',').map(Number)) {
        for (const dir of (process.env.VPNGW_BENCH_DIRS ?? 'down,up').split(',') as ('down' | 'up')[]) {
          const t = await measureTraffic(peer, L, { group: 'bulk', dir, len, warmMs: p.warmMs, ms: p.ms, window: windowFor(len) });
          const r = await peer.call<{ bytes: number; seconds: number; peerCpu: number }>('tlsRef', {
            dir,
            conns: n,
            len,
            warmMs: p.warmMs,
            ms: p.ms,
            host: L.serverAddress,
            port: REF_PORT,
            netns: L.b.name,
          });
          const refBytes = dir === 'down' ? r.bytes : r.marks ? r.marks.extraEnd - r.marks.extraStart : 0;
          const refSeconds = dir === 'down' ? r.seconds : r.marks ? r.marks.end.t - r.marks.start.t : r.seconds;
          if (dir === 'down' && len === 1400 && n === 1) maxDownPps = t.pps;
          const refValue = mbit(refBytes, refSeconds);
          const refCores = cores(r.marks);
          const peerCores = (cpu: number, s: number) => cpu / s;
          const dropNote = Object.keys(t.drops).length ? `; client drops ${JSON.stringify(t.drops)}` : '';
          const row: BenchRow = {
            name: `SSTP ${dir === 'down' ? 'downlink' : 'uplink'} ${len}B, ${n} session${n > 1 ? 's' : ''}`,
            value: t.mbps,
            unit: 'Mbit/s',
            reference: { name: `node:tls, ${n} conn, ${len}B writes`, value: refValue },
            target: { op: '>=', value: 0.8, of: 'ratio' },
            note:
              `${fmt(t.pps)} pps (TLS ${fmt(refBytes / len / refSeconds)} writes/s); ` +
              `gateway ${t.gatewayCores.toFixed(2)} cores (main thread ${t.gatewayMainCores.toFixed(2)}) = ${(t.mbps / 1000 / t.gatewayCores).toFixed(2)} Gbit/s per gateway core ` +
              `(TLS ${refCores.toFixed(2)} cores = ${(refValue / 1000 / refCores).toFixed(2)}); peer ${peerCores(t.peerCpu, t.seconds).toFixed(2)} cores (TLS ${peerCores(r.peerCpu, r.seconds).toFixed(2)}); lost ${t.lost}${dropNote}`,
          };
          rows.push(row);
          ctx.log(`${row.name}: ${t.mbps.toFixed(0)} Mbit/s ${fmt(t.pps)} pps vs TLS ${refValue.toFixed(0)} Mbit/s; ${row.note}`);
        }
      }
      await peer.call('close', { group: 'bulk' });
      await waitUntil(() => L.gateway.sessions.size === 0, 20_000, 'the bulk sessions to go');
    }
  } finally {
    peer.probe = () => 0;
    ref.close();
  }
  return maxDownPps;
}

/** Connect `count` clients in this process (gateway and clients on one thread). */
async function connectInProcess(L: GatewayLab, count: number, concurrency: number): Promise<{ clients: SstpClient[]; wallMs: number; dp: DataPlane; failed: number }> {
  const dp = new DataPlane({ maxSessions: count + 8, streamBuffers: true });
  const clients: SstpClient[] = [];
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const [username, password] = USERS[i % USERS.length]!;
        try {
          clients.push(
            await connectSstp({ host: L.serverAddress, port: L.sstpPort, username, password, fingerprint: L.fingerprint, netns: L.b.name, tun: false, dataplane: dp, connectTimeoutMs: 60_000 }),
          );
        } catch {
          failed++;
        }
      }
    }),
  );
  return { clients, wallMs: performance.now() - t0, dp, failed };
}

const REF_SETUP_PORT = 4445;
/**
 * TLS writes an SSTP client makes in a set-up (HTTP request, Call Connect
 * Request, LCP, EAP identity and MS-CHAPv2 answers, Call Connected, IPCP),
 * counted over a run with writes of one event-loop turn taken as one: the
 * set-up reference does as many request/response exchanges.
 */
const SETUP_TLS_ROUNDS = 11;
const SETUP_TLS_LEN = 100;

/** The set-up reference: node:tls connections with SETUP_TLS_ROUNDS exchanges to an echo server on the gateway's certificate. */
async function tlsSetupReference(L: GatewayLab, peer: Peer, p: Plan): Promise<{ rate: number; gatewayMs: number; peerMs: number; failed: number }> {
  const cert = referenceCertificate(L);
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.2' }, (s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => s.write(d));
  });
  const fd = native.tcpListener({ netns: L.a.name, address: L.serverAddress, port: REF_SETUP_PORT, backlog: 4096 });
  await new Promise<void>((r) => server.listen({ fd }, r));
  try {
    const p0 = await peer.call<{ cpu: number }>('cpu', {});
    const s0 = sample();
    const r = await peer.call<{ up: number; failed: number; wallMs: number }>('tlsSetups', {
      count: p.setupCount,
      concurrency: p.setupConcurrency,
      host: L.serverAddress,
      port: REF_SETUP_PORT,
      netns: L.b.name,
      rounds: SETUP_TLS_ROUNDS,
      len: SETUP_TLS_LEN,
    });
    const s1 = sample();
    const p1 = await peer.call<{ cpu: number }>('cpu', {});
    const n = Math.max(1, r.up);
    return { rate: (r.up * 1000) / r.wallMs, gatewayMs: ((s1.cpu - s0.cpu) / n) * 1000, peerMs: ((p1.cpu - p0.cpu) / n) * 1000, failed: r.failed };
  } finally {
    await peer.call('tlsSetupsClose', {});
    for (const s of sockets) s.destroy();
    server.close();
  }
}

async function setupRate(ctx: BenchContext, L: GatewayLab, peer: Peer, p: Plan, alg: CertAlgorithm, rows: BenchRow[]): Promise<void> {
  const label = alg === 'ecdsa-p256' ? 'ECDSA P-256' : 'RSA-2048';
  const ref = await tlsSetupReference(L, peer, p);
  ctx.log(`set-up reference ${label}: node:tls + ${SETUP_TLS_ROUNDS} exchanges ${ref.rate.toFixed(0)}/s, server ${ref.gatewayMs.toFixed(2)} ms CPU each, clients ${ref.peerMs.toFixed(2)} ms, ${ref.failed} failed`);
  // Clients in the peer process.
  {
    const p0 = await peer.call<{ cpu: number }>('cpu', {});
    const threads0 = threadCpu();
    const drops0 = L.engine?.drops();
    const s0 = sample();
    const c = await peer.call<{ up: number; failed: number; failures: string[]; wallMs: number; setupMs: number[] }>('sstpConnect', {
      group: 'setup',
      count: p.setupCount,
      concurrency: p.setupConcurrency,
      host: L.serverAddress,
      port: L.sstpPort,
      fingerprint: L.fingerprint,
      netns: L.b.name,
      users: USERS,
    });
    const s1 = sample();
    const threads = busiestThreads(threads0, threadCpu(), Math.max(1, c.up));
    const p1 = await peer.call<{ cpu: number }>('cpu', {});
    const cpuMs = ((s1.cpu - s0.cpu) / Math.max(1, c.up)) * 1000;
    const mainMs = ((s1.main - s0.main) / Math.max(1, c.up)) * 1000;
    const peerMs = ((p1.cpu - p0.cpu) / Math.max(1, c.up)) * 1000;
    const each = [...c.setupMs].sort((a, b) => a - b);
    const rate = (c.up * 1000) / c.wallMs;
    rows.push({
      name: `SSTP set-ups/s, ${label}, clients in another process (${p.setupConcurrency} at a time)`,
      value: rate,
      unit: 'tunnels/s',
      reference: { name: `node:tls connect + ${SETUP_TLS_ROUNDS} exchanges of ${SETUP_TLS_LEN} B (server ${ref.gatewayMs.toFixed(2)} ms CPU each, clients ${ref.peerMs.toFixed(2)} ms)`, value: ref.rate },
      ...(alg === 'ecdsa-p256' ? { target: { op: '>=', value: 500, of: 'value' } as const } : {}),
      note: `${c.up} tunnels${c.failed ? `, ${c.failed} failed (${c.failures[0]})` : ''}; gateway CPU ${cpuMs.toFixed(2)} ms per set-up (main thread ${mainMs.toFixed(2)} ms${L.workers ? `, ${L.workers.workers.length} worker threads` : ''}) = ${(1000 / cpuMs).toFixed(0)} set-ups per gateway CPU-second (the clients: ${peerMs.toFixed(2)} ms each); set-up time p50 ${percentile(each, 50).toFixed(0)} ms, p99 ${percentile(each, 99).toFixed(0)} ms`,
    });
    ctx.log(`set-up ${label} (peer): ${rate.toFixed(0)}/s, gateway ${cpuMs.toFixed(2)} ms CPU each (main thread ${mainMs.toFixed(2)}), ${c.failed} failed`);
    ctx.log(`  busiest gateway threads, ms per set-up: ${threads}`);
    const drops1 = L.engine?.drops();
    const dropped = drops0 && drops1 ? Object.entries(drops1).filter(([k, v]) => v !== drops0[k]).map(([k, v]) => `${k} ${v - drops0[k]!}`) : [];
    if (dropped.length) ctx.log(`  gateway data-plane drops during the set-ups: ${dropped.join(', ')}`);
    const t0 = performance.now();
    await peer.call('close', { group: 'setup' });
    await waitUntil(() => L.gateway.sessions.size === 0, 60_000, 'the set-up sessions to go');
    ctx.log(`teardown of ${c.up}: ${(performance.now() - t0).toFixed(0)} ms`);
  }
  // Clients in this process.
  {
    const r = await connectInProcess(L, p.setupCount, p.setupConcurrency);
    const rate = (r.clients.length * 1000) / r.wallMs;
    rows.push({
      name: `SSTP set-ups/s, ${label}, clients in the gateway's process`,
      value: rate,
      unit: 'tunnels/s',
      note: `${r.clients.length} tunnels${r.failed ? `, ${r.failed} failed` : ''}; one thread runs both ends (client cost included)`,
    });
    ctx.log(`set-up ${label} (in-process): ${rate.toFixed(0)}/s`);
    await Promise.all(r.clients.map((c) => c.close().catch(() => undefined)));
    r.dp.close();
    await waitUntil(() => L.gateway.sessions.size === 0, 60_000, 'the in-process sessions to go');
  }
}

async function idleMemory(ctx: BenchContext, L: GatewayLab, peer: Peer, p: Plan, rows: BenchRow[]): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await sleep(100);
    }
    return process.memoryUsage();
  };
  const m0 = await settle();
  const c = await peer.call<{ up: number; failed: number; failures: string[] }>('sstpConnect', {
    group: 'idle',
    count: p.idleSessions,
    concurrency: 32,
    host: L.serverAddress,
    port: L.sstpPort,
    fingerprint: L.fingerprint,
    netns: L.b.name,
    users: USERS,
  });
  await sleep(1000);
  const m1 = await settle();
  const n = c.up;
  const kib = (a: number, b: number) => (b - a) / n / 1024;
  const layout = L.engine?.layout ?? L.workers!.views[0]!.layout;
  const slot = layout.totalBytes / layout.maxSessions / 1024;
  rows.push({
    name: `SSTP memory per idle session (RSS delta / ${n})`,
    value: kib(m0.rss, m1.rss),
    unit: 'KiB',
    target: { op: '<=', value: 100, of: 'value' },
    note: `heap ${kib(m0.heapUsed, m1.heapUsed).toFixed(1)} KiB, external ${kib(m0.external, m1.external).toFixed(1)} KiB (arrayBuffers ${kib(m0.arrayBuffers, m1.arrayBuffers).toFixed(1)}); ${gc ? 'after gc' : 'no gc (run with --expose-gc)'}; besides, the data-plane memory reserved up front is ${slot.toFixed(1)} KiB per session slot (WASM memory / maxSessions)`,
  });
  ctx.log(`idle memory: RSS ${kib(m0.rss, m1.rss).toFixed(1)} KiB, heap ${kib(m0.heapUsed, m1.heapUsed).toFixed(1)} KiB per session (${n})`);
  if (c.failed) ctx.log(`idle sessions: ${c.failed} failed: ${c.failures[0]}`);
  await peer.call('close', { group: 'idle' });
  await waitUntil(() => L.gateway.sessions.size === 0, 60_000, 'the idle sessions to go');

  // Reference: bare node:tls connections, idle after a 1000-byte exchange each way, in a fresh
  // process of their own (this one's allocator has just been through N sessions).
  const ref = await tlsIdleReference(L, peer, n);
  rows[rows.length - 1]!.reference = { name: `node:tls idle connection, fresh process (heap ${ref.heapKiB.toFixed(1)} KiB)`, value: ref.rssKiB };
  ctx.log(`idle memory reference: node:tls ${ref.rssKiB.toFixed(1)} KiB RSS, heap ${ref.heapKiB.toFixed(1)} KiB per connection`);
}

const REF_IDLE_PORT = 4444;

/** RSS and heap per idle node:tls connection in a server process of its own (ns A), clients in the peer. */
async function tlsIdleReference(L: GatewayLab, peer: Peer, n: number): Promise<{ rssKiB: number; heapKiB: number }> {
  const cert = referenceCertificate(L);
  const code = `
const tls = require('tls');
const srv = tls.createServer({ cert: process.env.REF_CERT, key: process.env.REF_KEY, minVersion: 'TLSv1.2' }, (s) => {
  s.on('error', () => {});
  let first = true;
  s.on('data', (d) => { if (first) { first = false; d = d.subarray(3); } s.write(d); });
});
const usage = () => { for (let i = 0; i < 3; i++) global.gc(); const m = process.memoryUsage(); return JSON.stringify({ rss: m.rss, heap: m.heapUsed }); };
process.stdin.on('data', () => console.log(usage()));
srv.listen(${REF_IDLE_PORT}, ${JSON.stringify(L.serverAddress)}, () => console.log('ready'));`;
  const child = L.a.spawn([process.execPath, '--expose-gc', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, REF_CERT: cert.certPem, REF_KEY: cert.keyPem } });
  try {
    const lines: string[] = [];
    let wake: (() => void) | undefined;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      lines.push(...d.split('\n').filter(Boolean));
      wake?.();
    });
    const next = async (): Promise<string> => {
      const until = Date.now() + 20_000;
      while (lines.length === 0) {
        if (Date.now() > until || child.exitCode !== null) throw new Error('the node:tls reference server did not answer');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
      }
      return lines.shift()!;
    };
    await next(); // ready
    const usage = async () => {
      child.stdin!.write('\n');
      return JSON.parse(await next()) as { rss: number; heap: number };
    };
    await sleep(200);
    const u0 = await usage();
    await peer.call('tlsIdle', { conns: n, host: L.serverAddress, port: REF_IDLE_PORT, netns: L.b.name });
    await sleep(1000);
    const u1 = await usage();
    await peer.call('tlsIdleClose', {});
    return { rssKiB: (u1.rss - u0.rss) / n / 1024, heapKiB: (u1.heap - u0.heap) / n / 1024 };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
  }
}

/** ping from ns B; RTTs in ms, sorted. */
async function ping(L: GatewayLab, dst: string, count: number): Promise<{ rtts: number[]; lost: number }> {
  const r = await L.b.exec(['ping', '-n', '-i', '0.005', '-c', String(count), '-W', '1', dst], { allowFail: true, timeoutMs: count * 20 + 20_000 });
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return { rtts, lost: count - rtts.length };
}

const REF_RELAY_PORT = 4446;

/**
 * The latency reference: a bare TLS relay (bench/relay.ts) between a TUN
 * device in namespace A (this process, the gateway's certificate) and one in
 * namespace B (the peer), on a /24 of its own: the tunnel's threads and
 * hand-overs without its protocols.
 */
async function startRelayReference(L: GatewayLab, peer: Peer): Promise<{ net: Subnet; close(): Promise<number> }> {
  const net = await L.lab.subnet();
  const cert = referenceCertificate(L);
  const tunA = native.openTun(uniqueIfName('rla'), { netns: L.a.name });
  native.configureInterface(tunA.name, { netns: L.a.name, ipv4: net.host(1), prefixLen: 24, mtu: 1400, up: true });
  let relay: TunTlsRelay | undefined;
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.2' }, (s) => {
    s.on('error', () => undefined);
    if (relay) s.destroy();
    else relay = new TunTlsRelay(tunA.fd, s);
  });
  const fd = native.tcpListener({ netns: L.a.name, address: L.serverAddress, port: REF_RELAY_PORT, backlog: 16 });
  await new Promise<void>((r) => server.listen({ fd }, r));
  try {
    await peer.call('relayStart', { host: L.serverAddress, port: REF_RELAY_PORT, netns: L.b.name, tun: uniqueIfName('rlb'), address: net.host(2) });
    await waitUntil(() => relay !== undefined, 10_000, 'the relay connection');
  } catch (e) {
    server.close();
    native.close(tunA.fd);
    throw e;
  }
  return {
    net,
    close: async () => {
      const r = await peer.call<{ dropped: number }>('relayStop', {});
      relay!.close();
      server.close();
      return r.dropped + relay!.dropped;
    },
  };
}

/**
 * Where the gateway loses downlink packets: its TUN device's kernel queue
 * (the reader stops reading while the TUN_RX ring is full; the queue then
 * overflows: ip -s link, TX dropped), the ring's full events, the engine's
 * drop counters. Undefined parts when the gateway runs in worker threads.
 */
async function gatewayLoss(L: GatewayLab): Promise<{ tunQueue: number; ringFull: number; engine: Record<string, bigint> }> {
  const tun = L.gateway.config.dataplane.tun.name;
  const r = await L.a.exec(['ip', '-j', '-s', 'link', 'show', 'dev', tun], { allowFail: true });
  let tunQueue = NaN;
  try {
    tunQueue = Number((JSON.parse(r.stdout) as { stats64: { tx: { dropped: number } } }[])[0]!.stats64.tx.dropped);
  } catch {
    // no such device or no JSON: left NaN
  }
  const e = L.engine;
  return {
    tunQueue,
    ringFull: e ? Number(e.ring(abi.RingId.TUN_RX).counter(abi.R_FULL_EVENTS)) : NaN,
    engine: e ? e.drops() : {},
  };
}

async function latency(ctx: BenchContext, L: GatewayLab, peer: Peer, p: Plan, maxPps: number, rows: BenchRow[]): Promise<void> {
  const tun = uniqueIfName('bl');
  const c = await peer.call<{ up: number; ipv4s: string[]; failures: string[] }>('sstpConnect', {
    group: 'lat',
    count: 1,
    concurrency: 1,
    host: L.serverAddress,
    port: L.sstpPort,
    fingerprint: L.fingerprint,
    netns: L.b.name,
    users: USERS,
    tun: { names: [tun], routes: [[]] },
  });
  if (c.up !== 1) throw new Error(`latency tunnel failed: ${c.failures.join('; ')}`);
  const client = c.ipv4s[0]!;
  const relay = await startRelayReference(L, peer);
  // Where each path's ping goes and where its load is sent (from namespace A, to the sink in B).
  const paths = {
    tunnel: { ping: GATEWAY, load: client },
    relay: { ping: relay.net.host(1), load: relay.net.host(2) },
    direct: { ping: L.serverAddress, load: L.link.host(2) },
  } as const;
  try {
    for (const frac of [0, 0.1, 0.5]) {
      const pps = Math.round(frac * maxPps);
      const res = {} as Record<keyof typeof paths, { rtts: number[]; lost: number; load: number }>;
      let gwLoss = '';
      for (const via of ['tunnel', 'relay', 'direct'] as const) {
        if (pps > 0) {
          await peer.call('loadStart', { pps, len: 1400, nsA: L.a.name, far: L.behind.host(1), dst: paths[via].load, port: SINK_PORT, nsB: L.b.name });
          await sleep(200);
        }
        const loss0 = via === 'tunnel' ? await gatewayLoss(L) : undefined;
        const r = await ping(L, paths[via].ping, p.pings);
        const l = pps > 0 ? await peer.call<{ sent: number; received: number; seconds: number }>('loadStop', {}) : { received: 0, seconds: 1 };
        res[via] = { ...r, load: l.received / l.seconds };
        if (loss0) {
          const loss1 = await gatewayLoss(L);
          const engine = Object.entries(loss1.engine)
            .filter(([k, v]) => v !== loss0.engine[k])
            .map(([k, v]) => `${k} ${v - (loss0.engine[k] ?? 0n)}`);
          gwLoss = `; the gateway lost ${loss1.tunQueue - loss0.tunQueue} in its TUN queue (TUN_RX ring full ${loss1.ringFull - loss0.ringFull} times), in its data path: ${engine.join(', ') || 'none'}`;
        }
      }
      const { tunnel: t, relay: r, direct: d } = res;
      const what = frac === 0 ? 'idle' : `${frac * 100}% load (${fmt(pps)} pps of 1400B downlink)`;
      for (const q of [50, 99]) {
        const added = percentile(t.rtts, q) - percentile(d.rtts, q);
        const relayAdded = percentile(r.rtts, q) - percentile(d.rtts, q);
        rows.push({
          name: `SSTP added latency p${q}, ${what}`,
          value: added,
          unit: 'ms',
          reference: { name: 'bare TLS relay, same threads and load', value: relayAdded },
          ...(q === 99 && frac === 0.5 ? { target: { op: '<=', value: 1, of: 'value' } as const } : {}),
          note: `ping RTT p${q} through the tunnel ${percentile(t.rtts, q).toFixed(3)} ms, the relay ${percentile(r.rtts, q).toFixed(3)} ms, direct ${percentile(d.rtts, q).toFixed(3)} ms; ${p.pings} pings, lost ${t.lost}/${r.lost}/${d.lost}${pps ? `; load delivered ${fmt(t.load)}/${fmt(r.load)}/${fmt(d.load)} pps${gwLoss}` : ''}`,
        });
      }
      ctx.log(
        `latency ${what}: tunnel p50 ${percentile(t.rtts, 50).toFixed(3)} p99 ${percentile(t.rtts, 99).toFixed(3)}; relay p50 ${percentile(r.rtts, 50).toFixed(3)} p99 ${percentile(r.rtts, 99).toFixed(3)}; direct p50 ${percentile(d.rtts, 50).toFixed(3)} p99 ${percentile(d.rtts, 99).toFixed(3)} ms`,
      );
    }
  } finally {
    const dropped = await relay.close();
    if (dropped) ctx.log(`  the relay dropped ${dropped} packets (ring full)`);
    await peer.call('close', { group: 'lat' });
  }
}

interface Cannon {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}

async function httpLoad(ctx: BenchContext, L: GatewayLab, peer: Peer, p: Plan, rows: BenchRow[]): Promise<void> {
  const code = `require('http').createServer((q, s) => s.end('hello from behind the gateway\\n')).listen(${HTTP_PORT}, '0.0.0.0', () => console.log('ready'))`;
  const server = L.a.spawn([process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the HTTP server did not start')), 10_000);
      server.stdout!.once('data', () => {
        clearTimeout(t);
        resolve();
      });
      server.once('exit', (c) => reject(new Error(`the HTTP server exited (${c})`)));
    });
    const runner = path.join(here, 'autocannon-run.js');
    const cannon = async (urls: string[], connections: number): Promise<Cannon> => {
      const r = await L.b.exec([process.execPath, runner, JSON.stringify({ urls, connections, durationS: p.httpS })], { timeoutMs: p.httpS * 1000 + 30_000 });
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Cannon;
    };
    const urls = (n: number) => Array.from({ length: n }, (_, i) => `http://${L.behind.host(i + 1)}:${HTTP_PORT}/`);
    for (const n of [1, 10]) {
      const conns = n === 1 ? 10 : 20;
      const direct = await cannon(urls(n), conns);
      const names = Array.from({ length: n }, () => uniqueIfName('bh'));
      const c = await peer.call<{ up: number; failures: string[] }>('sstpConnect', {
        group: 'http',
        count: n,
        concurrency: n,
        host: L.serverAddress,
        port: L.sstpPort,
        fingerprint: L.fingerprint,
        netns: L.b.name,
        users: USERS,
        tun: { names, routes: names.map((_, i) => [`${L.behind.host(i + 1)}/32`]) },
      });
      if (c.up !== n) throw new Error(`HTTP tunnels failed: ${c.failures.join('; ')}`);
      const s0 = sample();
      const t = await cannon(urls(n), conns);
      const s1 = sample();
      await peer.call('close', { group: 'http' });
      await waitUntil(() => L.gateway.sessions.size === 0, 20_000, 'the HTTP tunnels to go');
      const errs = (x: Cannon) => x.errors + x.timeouts + x.non2xx;
      rows.push({
        name: `HTTP through ${n} SSTP tunnel${n > 1 ? 's' : ''} (autocannon, ${conns} connections)`,
        value: t.reqPerSec,
        unit: 'req/s',
        reference: { name: 'same, no tunnel', value: direct.reqPerSec },
        note: `latency p50/p99 ${t.p50}/${t.p99} ms vs ${direct.p50}/${direct.p99} ms direct; gateway CPU ${((s1.cpu - s0.cpu) / (s1.t - s0.t)).toFixed(2)} cores; errors ${errs(t)}/${errs(direct)}`,
      });
      ctx.log(`HTTP ${n} tunnel(s): ${t.reqPerSec.toFixed(0)} req/s (p99 ${t.p99} ms) vs direct ${direct.reqPerSec.toFixed(0)} req/s (p99 ${direct.p99} ms)`);
    }
  } finally {
    if (server.pid !== undefined && server.exitCode === null) server.kill('SIGTERM');
  }
}

export const suite: BenchSuite = {
  name: 'sstp',
  // VPNGW_BENCH_PARTS=goodput,setup,memory,latency,http runs only those parts (default: all).
  unavailable: () => labUnavailable('network namespaces, TUN devices'),
  async run(ctx) {
    const p = plan(ctx.quick);
    const rows: BenchRow[] = [];
    ctx.log(`load average at start: ${loadAverage()}`);
    {
      const L = await startGatewayLab({ sstp: { certAlgorithm: 'ecdsa-p256' }, maxSessions: Math.max(2048, p.idleSessions + 64) });
      const peer = await Peer.start(L.lab, L.b.name);
      try {
        const recover = () => recoverLab(peer, L);
        // Memory first: later parts leave the allocator's high-water mark behind.
        await runPart(ctx, rows, 'memory', () => idleMemory(ctx, L, peer, p, rows), recover);
        // Without a measured maximum, the latency loads are a guess (10% and 50% of 100 kpps).
        let maxPps = 100_000;
        await runPart(ctx, rows, 'goodput', async () => void (maxPps = (await goodput(ctx, L, peer, p, rows)) || maxPps), recover);
        await runPart(ctx, rows, 'setup', () => setupRate(ctx, L, peer, p, 'ecdsa-p256', rows), recover);
        await runPart(ctx, rows, 'latency', () => latency(ctx, L, peer, p, maxPps, rows), recover);
        await runPart(ctx, rows, 'http', () => httpLoad(ctx, L, peer, p, rows), recover);
      } finally {
        await peer.close();
        await L.close();
      }
    }
    // Worker threads generate the certificate themselves (ECDSA P-256): no RSA run with them.
    if (part('setup') && benchWorkers() === 0) {
      const L = await startGatewayLab({ sstp: { certAlgorithm: 'rsa-2048' }, maxSessions: 2048 });
      const peer = await Peer.start(L.lab, L.b.name);
      try {
        await runPart(ctx, rows, 'setup', () => setupRate(ctx, L, peer, p, 'rsa-2048', rows));
      } finally {
        await peer.close();
        await L.close();
      }
    }
    ctx.log(`load average at end: ${loadAverage()}`);
    return rows;
  },
};
