/**
 * The tunnel benchmarks' lab: the real gateway in this process, the clients
 * and traffic in another (bench/peer.ts), so that what this process spends
 * (CPU, memory) is the gateway's alone.
 *
 *   this process (gateway)                          peer process (bench/peer.ts)
 *   ns A: TUN <198.18.128.1/20>, SSTP/PPTP ◄─veth─► ns B: SSTP/PPTP clients (shared engine)
 *         lo <behind.1..N/32>  (far side)            ns A: UDP generator and sink sockets
 *
 * Namespaces, veth and processes belong to a NetLab (test/lib/netns.ts,
 * compiled with the bench because it is imported: every namespace is deleted
 * on the way out, also when the bench fails). Lab links come from
 * 198.18.0.0/15; the inner network is 198.18.128.0/20 (4094 addresses, enough
 * for the idle-session and set-up runs).
 *
 * VPNGW_BENCH_WORKERS=N (N >= 1) runs the gateway's data plane and
 * protocol servers in N worker threads of this process, as `vpngw serve`
 * does (src/workers), instead of on this thread: the set-up part measures
 * it (parts that drive the engine directly need the in-process mode).
 *
 * The peer is driven by request/response messages over the fork IPC channel;
 * while it measures it sends `mark` events at the start and the end of its
 * measurement window, and {@link Peer} samples this process's CPU time (all
 * threads: main, TUN and socket I/O threads) at each mark.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { Gateway, type ProtocolServer } from '../src/admin/gateway.js';
import { openDataplane, type RunningDataplane } from '../src/cli/serve.js';
import { GatewayMetrics } from '../src/metrics/registry.js';
import { snapshotDataplane } from '../src/metrics/dataplane.js';
import { native, nativeAvailable } from '../src/dataplane/native.js';
import type { DataPlane } from '../src/dataplane/engine.js';
import { silentLogger, createLogger, type Logger } from '../src/util/log.js';
import { systemClock } from '../src/util/clock.js';
import { SstpService } from '../src/sstp/service.js';
import { openGatewayVerifier, sessionPolicyVerifier } from '../src/aaa/gateway-verifier.js';
import { WorkerSet } from '../src/workers/supervisor.js';
import { PptpService } from '../src/pptp/service.js';
import type { CertAlgorithm } from '../src/sstp/cert.js';
import { NetLab, uniqueIfName, type Netns, type Subnet } from '../test/lib/netns.js';

export const GATEWAY = '198.18.128.1';
/** Inner network (TUN prefix and pool): 198.18.128.0/20. */
const INNER_FIRST = (198 << 24) | (18 << 16) | (128 << 8);
const INNER_PREFIX = 20;
export const USERS: readonly [string, string][] = [
  ['alice', 'correct horse battery'],
  ['bob', 'bob-pw-123'],
  ['carol', 'carol-pw-123'],
];
/** Far-side port the traffic sinks listen on and generators aim at (discard). */
export const SINK_PORT = 9;

const here = path.dirname(fileURLToPath(import.meta.url));

export interface GatewayLab {
  lab: NetLab;
  a: Netns;
  b: Netns;
  /** A-B link: A is host(1), B host(2). */
  link: Subnet;
  /** Hosts behind the gateway: host(1..behindHosts) on lo in ns A. */
  behind: Subnet;
  serverAddress: string;
  gateway: Gateway;
  /** The in-process data plane (undefined with worker threads). */
  dataplane: RunningDataplane | undefined;
  /** The gateway's (only) data-plane engine (undefined with worker threads). */
  engine: DataPlane | undefined;
  /** The worker threads (VPNGW_BENCH_WORKERS), when the gateway runs in them. */
  workers: WorkerSet | undefined;
  sstp: SstpService | undefined;
  sstpPort: number;
  fingerprint: string;
  pptp: PptpService | undefined;
  log: Logger;
  close(): Promise<void>;
}

function inInner(s: Subnet): boolean {
  const [a, b, c] = s.network.split('.').map(Number) as [number, number, number];
  const n = ((a << 24) | (b << 16) | (c << 8)) >>> 0;
  return n >>> (32 - INNER_PREFIX) === INNER_FIRST >>> (32 - INNER_PREFIX);
}

async function outerSubnet(lab: NetLab): Promise<Subnet> {
  for (;;) {
    const s = await lab.subnet();
    if (!inInner(s)) return s;
  }
}

export interface GatewayLabOptions {
  sstp?: { certAlgorithm?: CertAlgorithm };
  pptp?: boolean;
  maxSessions?: number;
  /** Addresses behind the gateway (on lo in ns A), default 10. */
  behindHosts?: number;
  /** Data-plane worker threads (0: in-process); default VPNGW_BENCH_WORKERS or 0. */
  workers?: number;
}

/** VPNGW_BENCH_WORKERS, or 0 (the gateway on the bench's own thread). */
export function benchWorkers(): number {
  const n = Number(process.env.VPNGW_BENCH_WORKERS ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export async function startGatewayLab(o: GatewayLabOptions): Promise<GatewayLab> {
  const lab = new NetLab();
  // VPNGW_BENCH_LOG=silent: the production logger (redaction and all) writing nothing, as worker threads have; any other value: debug on stderr.
  const env = process.env.VPNGW_BENCH_LOG;
  const log = env === 'silent' ? createLogger({ level: 'silent' }) : env ? createLogger({ level: 'debug', destination: process.stderr }) : silentLogger;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-bench-'));
  let dataplane: RunningDataplane | undefined;
  let workers: WorkerSet | undefined;
  const nWorkers = o.workers ?? benchWorkers();
  try {
    const a = await lab.netns('bench-gw');
    const b = await lab.netns('bench-cli');
    const link = await outerSubnet(lab);
    const behind = await outerSubnet(lab);
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
    for (let i = 1; i <= (o.behindHosts ?? 10); i++) await a.ip('addr', 'add', `${behind.host(i)}/32`, 'dev', 'lo');
    // The clients' namespace reaches the far side directly too (the "no tunnel" references).
    await b.ip('route', 'add', `${behind.network}/24`, 'via', link.host(1));

    const users = USERS.map(([u, p]) => `  ${u}: {password: ${JSON.stringify(p)}}`).join('\n');
    writeFileSync(path.join(tmp, 'users.yaml'), `users:\n${users}\n`, { mode: 0o600 });
    const maxSessions = o.maxSessions ?? 1024;
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: ${Math.max(1, nWorkers)}
  maxSessionsPerWorker: ${maxSessions}
  gateway: ${GATEWAY}
  prefixLength: ${INNER_PREFIX}
  tun: {name: ${uniqueIfName('bgw')}, netns: ${a.name}, mtu: 1400}
pools: {default: {ranges: [198.18.128.0/${INNER_PREFIX}]}}
users: {file: users.yaml, demoUser: false}
dns: {primary: 198.18.128.53}
sstp: {enabled: ${o.sstp ? 'true' : 'false'}, listen: ${link.host(1)}, port: 443}
pptp: {enabled: ${o.pptp ? 'true' : 'false'}, listen: 0.0.0.0, port: 1723}
limits: {maxSessionsPerUser: ${maxSessions}, maxHalfOpenPerSource: 4096, authFailuresPerSourcePerMinute: 100000}
admin: {enabled: false}
log: {level: silent}
`,
      { baseDir: tmp },
    );
    const metrics = new GatewayMetrics(undefined, { defaultMetrics: false });
    // What the lab is, however the gateway runs (in this thread or in worker threads).
    const base = { lab, a, b, link, behind, serverAddress: link.host(1), sstpPort: 443, log };
    if (nWorkers > 0) {
      let ws: WorkerSet | undefined;
      const gateway = new Gateway({ config, log, clock: systemClock, metrics, dataplane: () => (ws ? snapshotDataplane(ws.views) : undefined) });
      const users = await openGatewayVerifier({ usersFile: config.users.file, clock: systemClock, log, failuresPerMinute: config.limits.authFailuresPerSourcePerMinute });
      let fingerprint = '';
      ws = await WorkerSet.start({
        config,
        log,
        clock: systemClock,
        metrics,
        registry: gateway.sessions,
        pools: (name) => gateway.ctx.pool(name),
        verifier: sessionPolicyVerifier(users.verifier, { sessionsOf: (u) => gateway.sessions.countOfUser(u), maxPerUser: () => config.limits.maxSessionsPerUser }),
        netns: a.name,
        progress: (m) => void (fingerprint = /SHA-256 fingerprint ([0-9A-F:]{95})/.exec(m)?.[1] ?? fingerprint),
      });
      workers = ws;
      await gateway.start([...(o.sstp ? [ws.server('sstp')] : []), ...(o.pptp ? [ws.server('pptp')] : [])]);
      const w = ws;
      return {
        ...base,
        gateway,
        dataplane: undefined,
        engine: undefined,
        workers: w,
        sstp: undefined,
        fingerprint,
        pptp: undefined,
        async close() {
          await gateway.shutdown('bench over', 5_000).catch(() => undefined);
          await w.close();
          await lab.cleanup();
          rmSync(tmp, { recursive: true, force: true });
        },
      };
    }
    const dp = openDataplane(config, log);
    dataplane = dp;
    const gateway = new Gateway({
      config,
      log,
      clock: systemClock,
      metrics,
      dataplane: () => snapshotDataplane(dp.engines),
      dataplanes: () => dp.engines,
    });
    const services: ProtocolServer[] = [];
    let sstp: SstpService | undefined;
    let pptp: PptpService | undefined;
    if (o.sstp) {
      const fd = native.tcpListener({ netns: a.name, address: link.host(1), port: 443, backlog: 4096 });
      sstp = new SstpService({ listenFd: fd, certNames: [link.host(1)], ...(o.sstp.certAlgorithm ? { certAlgorithm: o.sstp.certAlgorithm } : {}) });
      services.push(sstp);
    }
    if (o.pptp) {
      pptp = new PptpService({ netns: a.name });
      services.push(pptp);
    }
    await gateway.start(services);
    return {
      ...base,
      gateway,
      dataplane: dp,
      engine: dp.engines[0]!,
      workers: undefined,
      sstp,
      fingerprint: sstp?.certificate?.fingerprint256 ?? '',
      pptp,
      async close() {
        await gateway.shutdown('bench over', 5_000).catch(() => undefined);
        dp.close();
        await lab.cleanup();
        rmSync(tmp, { recursive: true, force: true });
      },
    };
  } catch (e) {
    dataplane?.close();
    await workers?.close().catch(() => undefined);
    await lab.cleanup().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------- the peer process

/** CPU time of this process (all its threads), seconds, and a monotonic clock in seconds. */
export interface Sample {
  t: number;
  cpu: number;
  /** The main thread's CPU seconds (JavaScript and WASM; /proc, clock-tick resolution), NaN where unknown. */
  main: number;
}

const CLOCK_TICKS = 100;

/** utime + stime of /proc/self/task/<pid>/stat (the main thread), seconds. */
function mainThreadCpu(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Why a suite that needs root, /dev/net/tun and the addon (for `needs`) cannot run here; undefined when it can. */
export function labUnavailable(needs: string): string | undefined {
  if (process.getuid?.() !== 0) return `needs root (${needs})`;
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  if (!nativeAvailable()) return 'the native addon is not built (npm ci)';
  return undefined;
}

/** CPU seconds of every thread of this process, by thread id (with its name). */
export function threadCpu(): Map<number, { name: string; cpu: number }> {
  const out = new Map<number, { name: string; cpu: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { name, cpu: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS });
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** The busiest threads between two threadCpu() tables: "name(tid) ms" per `per` units, at most `top`. */
export function busiestThreads(a: Map<number, { name: string; cpu: number }>, b: Map<number, { name: string; cpu: number }>, per: number, top = 6): string {
  return [...b.entries()]
    .map(([tid, t]) => ({ tid, name: t.name, d: t.cpu - (a.get(tid)?.cpu ?? 0) }))
    .filter((t) => t.d > 0)
    .sort((x, y) => y.d - x.d)
    .slice(0, top)
    .map((t) => `${t.name}(${t.tid === process.pid ? 'main' : t.tid}) ${((t.d / per) * 1000).toFixed(2)}`)
    .join(', ');
}

export function sample(): Sample {
  const u = process.cpuUsage();
  return { t: performance.now() / 1000, cpu: (u.user + u.system) / 1e6, main: mainThreadCpu() };
}

export interface Marks {
  start: Sample;
  end: Sample;
  /** Extra values sampled at each mark by {@link Peer.onMark}'s probe. */
  extraStart: number;
  extraEnd: number;
}

type Pending = { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout };

/**
 * The peer process (bench/peer.ts) and its request/response channel. Each
 * call may produce one pair of marks (start, end of the measurement window);
 * {@link Peer.call} returns them with the result.
 */
export class Peer {
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private marks: Partial<Marks> = {};
  /** Sampled at each mark besides CPU (e.g. bytes received by a reference server in this process). */
  probe: () => number = () => 0;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id?: number; ok?: boolean; result?: unknown; error?: string; event?: string; tag?: string }) => {
      if (m.event === 'mark') {
        if (m.tag === 'start') {
          this.marks.start = sample();
          this.marks.extraStart = this.probe();
        } else {
          this.marks.end = sample();
          this.marks.extraEnd = this.probe();
        }
        return;
      }
      const p = m.id !== undefined ? this.pending.get(m.id) : undefined;
      if (!p) return;
      this.pending.delete(m.id!);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`peer: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`the peer process exited (${signal ?? code})`));
      }
      this.pending.clear();
    });
  }

  /**
   * Fork bench/peer.ts; inside `netns` when given (`ip netns exec`), so that
   * the clients' sockets there need no namespace switch each (the addon
   * enters a namespace on a thread of its own: tens of microseconds per
   * socket, load-generator cost that is not the gateway's).
   */
  static async start(lab: NetLab, netns?: string): Promise<Peer> {
    // VPNGW_BENCH_PEER_NODE_ARGS: extra node flags for the peer, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
    const extra = process.env.VPNGW_BENCH_PEER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const execArgv = ['--expose-gc', ...extra];
    const child = fork(path.join(here, 'peer.js'), [], {
      ...(netns !== undefined ? { execPath: 'ip', execArgv: ['netns', 'exec', netns, process.execPath, ...execArgv] } : { execArgv }),
      env: { ...process.env, ...(netns !== undefined ? { VPNGW_BENCH_PEER_NETNS: netns } : {}) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    lab.track(child);
    const peer = new Peer(child);
    await peer.call('hello', {}, 20_000);
    return peer;
  }

  /** Send a command; resolves to its result and the marks it produced (if any). */
  async call<T extends object>(cmd: string, args: object, timeoutMs = 120_000): Promise<T & { marks?: Marks }> {
    const id = this.next++;
    this.marks = {};
    const r = await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`peer: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, cmd, args });
    });
    const m = this.marks;
    return (m.start && m.end ? { ...r, marks: m as Marks } : r) as T & { marks?: Marks };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    try {
      this.child.send({ id: 0, cmd: 'exit', args: {} });
    } catch {
      /* channel already closed */
    }
    const t = setTimeout(() => {
      if (this.child.pid !== undefined) {
        try {
          process.kill(this.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }, 10_000);
    await gone;
    clearTimeout(t);
  }
}

/** Poll `cond` every 20 ms until true or `ms` passed. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Percentile of a sorted list (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** Parts of a suite to run: VPNGW_BENCH_PARTS (comma-separated names), default all. */
export function part(name: string): boolean {
  const only = process.env.VPNGW_BENCH_PARTS;
  return !only || only.split(',').includes(name);
}

export interface TrafficResult {
  /** Packets the sink saw in the measurement window, and the window's length. */
  packets: number;
  seconds: number;
  /** Packets declared lost (a stalled window) over the run, warm-up included. */
  lost: number;
  sent: number;
  /** The peer's CPU seconds over the measurement window (clients, generator, sink). */
  peerCpu: number;
  /** Client-engine drops by reason during the run. */
  drops: Record<string, number>;
  marks?: Marks;
  pps: number;
  mbps: number;
  /** This (the gateway's) process's CPU time per wall second in the window: cores busy. */
  gatewayCores: number;
  /** The same for its main thread alone (JavaScript and the WASM data plane); the rest is the I/O threads' system calls and GC helpers. */
  gatewayMainCores: number;
}

/**
 * Windowed traffic through the peer's shared group `group`: `down` from a
 * UDP generator in ns A through the gateway's TUN to the clients, `up` from
 * the clients' engine through the gateway to a UDP sink in ns A.
 */
export async function measureTraffic(peer: Peer, L: GatewayLab, o: { group: string; dir: 'up' | 'down'; len: number; warmMs: number; ms: number; window: number }): Promise<TrafficResult> {
  const t = await peer.call<Omit<TrafficResult, 'pps' | 'mbps' | 'gatewayCores'>>('traffic', {
    ...o,
    nsA: L.a.name,
    far: L.behind.host(1),
    port: SINK_PORT,
  });
  const m = t.marks;
  return {
    ...t,
    pps: t.packets / t.seconds,
    mbps: (t.packets * o.len * 8) / t.seconds / 1e6,
    gatewayCores: m ? (m.end.cpu - m.start.cpu) / (m.end.t - m.start.t) : NaN,
    gatewayMainCores: m ? (m.end.main - m.start.main) / (m.end.t - m.start.t) : NaN,
  };
}

/**
 * Run one part of a suite; a failure is logged and recorded as a row (so the
 * other parts still run and the table says what is missing).
 */
export async function runPart(
  ctx: { log(line: string): void },
  rows: { name: string; value: number; unit: string; note?: string }[],
  name: string,
  fn: () => Promise<void>,
  /** After a failure: put the lab back in a known state (close the peer's tunnels). */
  recover?: () => Promise<void>,
): Promise<boolean> {
  if (!part(name)) return false;
  try {
    await fn();
    return true;
  } catch (e) {
    const msg = String((e as Error)?.message ?? e).split('\n')[0]!;
    ctx.log(`${name} FAILED: ${msg}`);
    rows.push({ name: `${name}: FAILED`, value: NaN, unit: '', note: msg });
    await recover?.().catch((r: unknown) => ctx.log(`${name}: recovery failed too: ${String(r)}`));
    return false;
  }
}

/** Close every tunnel the peer holds and wait for the gateway to see them go. */
export async function recoverLab(peer: Peer, L: GatewayLab): Promise<void> {
  await peer.call('closeAll', {});
  await waitUntil(() => L.gateway.sessions.size === 0, 60_000, 'the sessions to go after a failure');
}
