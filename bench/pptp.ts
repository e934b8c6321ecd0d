/**
 * PPTP tunnels end to end (issue 5, "Benchmarks"): the real gateway in this
 * process (PptpService: TCP 1723 control, the raw GRE socket and the TUN
 * device on the WASM data plane, MPPE-128 in WASM) and the real clients
 * (connectPptp, all on one client engine with one raw GRE socket) in the
 * peer process (bench/peer.ts, bench/lab.ts).
 *
 * Goodput and packets/s at 1400 and 64 bytes, downlink (UDP generator in
 * ns A -> gateway TUN -> MPPE + GRE -> client) and uplink (client engine ->
 * GRE -> gateway -> TUN -> UDP sink in ns A), stateful and stateless MPPE,
 * 1 and 10 sessions (and 100 in a full run). The sender keeps a bounded
 * window of packets in flight (bench/traffic.ts).
 *
 * Reference: the WASM RC4 ceiling (bench/datapath.ts rc4Ceiling: the cipher
 * alone over the same packet size, one core), measured in this process in the
 * same run, before and after the traffic (the better of the two).
 *
 * "Per core": the gateway is this process; its CPU time (every thread: the
 * main thread running WASM, the TUN and GRE socket I/O threads, and the
 * kernel work done in their system calls) is sampled with process.cpuUsage()
 * at the start and end of the peer's measurement window. Goodput divided by
 * those CPU-seconds per second is Gbit/s per gateway core, the honest figure
 * on a 2-core box where the clients and traffic generators share the machine.
 * Targets (stateful, 1400 bytes, one way): >= 1.2 Gbit/s per core and >= 70%
 * of the RC4 ceiling.
 */
import { fmt, rate, type BenchContext, type BenchRow, type BenchSuite } from './lib.js';
import { BATCH, rc4Ceiling } from './datapath.js';
import { Peer, USERS, labUnavailable, loadAverage, measureTraffic, recoverLab, runPart, startGatewayLab, waitUntil, type GatewayLab } from './lab.js';

interface Plan {
  warmMs: number;
  ms: number;
  sessions: number[];
  ceilingMs: number;
}

function plan(quick: boolean): Plan {
  const p: Plan = quick ? { warmMs: 300, ms: 1000, sessions: [1, 10], ceilingMs: 300 } : { warmMs: 500, ms: 3000, sessions: [1, 10, 100], ceilingMs: 1000 };
  if (process.env.VPNGW_BENCH_MS) p.ms = Number(process.env.VPNGW_BENCH_MS);
  if (process.env.VPNGW_BENCH_SESSIONS) p.sessions = process.env.VPNGW_BENCH_SESSIONS.split(',').map(Number);
  return p;
}

const LENS = () => (process.env.VPNGW_BENCH_LENS ?? '1400,64').split(',').map(Number);
const DIRS = () => (process.env.VPNGW_BENCH_DIRS ?? 'down,up').split(',') as ('down' | 'up')[];
const MODES = () => (process.env.VPNGW_BENCH_MODES ?? 'stateful,stateless').split(',') as ('stateful' | 'stateless')[];

/** Packets in flight: below the gateway's 1024-slot rings, so the window alone never overflows them. */
const windowFor = (len: number) => Number(process.env.VPNGW_BENCH_WINDOW ?? 0) || (len >= 1000 ? 512 : 768);

/** WASM RC4 over `len`-byte packets, one core: bits per second. */
function ceilingBits(len: number, ms: number): number {
  return rate(rc4Ceiling(len), BATCH, ms) * len * 8;
}

async function goodput(ctx: BenchContext, L: GatewayLab, peer: Peer, p: Plan, rows: BenchRow[]): Promise<void> {
  const ceiling = new Map<number, number>();
  const measureCeilings = () => {
    for (const len of LENS()) ceiling.set(len, Math.max(ceiling.get(len) ?? 0, ceilingBits(len, p.ceilingMs)));
  };
  measureCeilings();
  const results: { n: number; mode: string; len: number; dir: 'up' | 'down'; t: Awaited<ReturnType<typeof measureTraffic>> }[] = [];
  for (const n of p.sessions) {
    for (const mode of MODES()) {
      const c = await peer.call<{ up: number; failures: string[] }>('pptpConnect', {
        group: 'bulk',
        count: n,
        concurrency: 16,
        host: L.serverAddress,
        netns: L.b.name,
        users: USERS,
        stateless: mode === 'stateless',
      });
      if (c.up !== n) throw new Error(`only ${c.up} of ${n} PPTP tunnels came up: ${c.failures.join('; ')}`);
      for (const len of LENS()) {
        for (const dir of DIRS()) {
          const t = await measureTraffic(peer, L, { group: 'bulk', dir, len, warmMs: p.warmMs, ms: p.ms, window: windowFor(len) });
          results.push({ n, mode, len, dir, t });
          const drops = Object.keys(t.drops).length ? `, client drops ${JSON.stringify(t.drops)}` : '';
          ctx.log(
            `PPTP ${dir} ${len}B ${mode} ${n}: ${t.mbps.toFixed(0)} Mbit/s ${fmt(t.pps)} pps; gateway ${t.gatewayCores.toFixed(2)} cores (main thread ${t.gatewayMainCores.toFixed(2)}) = ${(t.mbps / 1000 / t.gatewayCores).toFixed(2)} Gbit/s per core; lost ${t.lost}${drops}`,
          );
        }
      }
      await peer.call('close', { group: 'bulk' });
      await waitUntil(() => L.gateway.sessions.size === 0, 30_000, 'the PPTP sessions to go');
    }
  }
  measureCeilings();
  for (const { n, mode, len, dir, t } of results) {
    const ref = ceiling.get(len)! / 1e6;
    const drops = Object.keys(t.drops).length ? `; client drops ${JSON.stringify(t.drops)}` : '';
    const what = `PPTP ${dir === 'down' ? 'downlink' : 'uplink'} ${len}B MPPE-128 ${mode}, ${n} session${n > 1 ? 's' : ''}`;
    rows.push({
      name: what,
      value: t.mbps,
      unit: 'Mbit/s',
      reference: { name: 'WASM RC4 ceiling, 1 core', value: ref },
      note: `${fmt(t.pps)} pps; gateway CPU ${t.gatewayCores.toFixed(2)} cores (main thread ${t.gatewayMainCores.toFixed(2)}); peer ${(t.peerCpu / t.seconds).toFixed(2)} cores; lost ${t.lost}${drops}`,
    });
    if (len === 1400 && mode === 'stateful') {
      const perCore = t.mbps / 1000 / t.gatewayCores;
      const ratio = (perCore * 1000) / ref;
      const perMain = t.mbps / 1000 / t.gatewayMainCores;
      rows.push({
        name: `${what}: per gateway core`,
        value: perCore,
        unit: 'Gbit/s',
        reference: { name: 'WASM RC4 ceiling, 1 core', value: ref / 1000 },
        target: { op: '>=', value: 1.2, of: 'value' },
        note:
          `goodput / gateway CPU-seconds per second (${t.gatewayCores.toFixed(2)}, all threads); ${ratio >= 0.7 ? 'met' : 'MISSED'} (>= 0.7 of the RC4 ceiling). ` +
          `Main thread (WASM data plane and JS) alone ${t.gatewayMainCores.toFixed(2)} cores = ${perMain.toFixed(2)} Gbit/s per core (${((perMain * 1000) / ref).toFixed(2)} of the ceiling); ` +
          `the rest is the TUN and raw-socket I/O threads in their system calls`,
      });
    }
  }
  for (const [len, bits] of ceiling) ctx.log(`WASM RC4 ceiling ${len}B: ${(bits / 1e9).toFixed(2)} Gbit/s`);
}

export const suite: BenchSuite = {
  name: 'pptp',
  // VPNGW_BENCH_{SESSIONS,LENS,DIRS,MODES,MS,WINDOW} narrow or tune a run (see bench/RESULTS.md).
  unavailable: () => labUnavailable('network namespaces, TUN device, raw GRE sockets'),
  async run(ctx) {
    const p = plan(ctx.quick);
    const rows: BenchRow[] = [];
    ctx.log(`load average at start: ${loadAverage()}`);
    const L = await startGatewayLab({ pptp: true, maxSessions: 1024 });
    const peer = await Peer.start(L.lab);
    try {
      await runPart(ctx, rows, 'goodput', () => goodput(ctx, L, peer, p, rows), () => recoverLab(peer, L));
    } finally {
      await peer.close();
      await L.close();
    }
    ctx.log(`load average at end: ${loadAverage()}`);
    return rows;
  },
};
