/**
 * `vpngw serve` with two data-plane workers, as a process (root):
 *
 *   ns A: `vpngw serve` (compiled CLI), dataplane.workers 2: one multi-queue
 *         TUN device (queue per worker, eBPF steering by destination),
 *         SSTP S.1:443 and PPTP S.1:1723 on SO_REUSEPORT listeners in each
 *         worker, a raw GRE socket per worker filtered to its call ids
 *   ns B: our clients: 12 SSTP and 6 PPTP tunnels
 *
 * Both workers own sessions (the admin listing names each session's
 * worker); every tunnel carries an echo to the gateway and back; a flow
 * that starts on the TUN side (ping from ns A to each client's inner
 * address) reaches every client, whichever worker owns it (downlink
 * steering); the metrics count the sessions and both workers' rings; one
 * session killed with `vpngw sessions kill` goes (its client told); SIGTERM
 * tells every other client and the process exits 0.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { uniqueIfName } from './lib/netns.js';
import { GATEWAY } from './lib/gateway-lab.js';
import { type LabClients, type LabTunnel } from './lib/ops-lab.js';
import { ServeLab, serveLabSupport } from './lib/serve-lab.js';
import { waitUntil, type Proc } from './lib/vpngw-cli.js';
import { icmpEcho, ipv4Packet } from './lib/packets.js';
import type { SessionInfo } from '../src/admin/types.js';

const f = await serveLabSupport('vpngw serve with two data-plane workers');

const PASSWORD = `alice-${randomBytes(8).toString('base64url')}`;
const SSTP_TUNNELS = 12;
const PPTP_TUNNELS = 6;

describe.skipIf(!f.ok)('vpngw serve with two data-plane workers', () => {
  let L: ServeLab;
  let server: Proc;
  let clients: LabClients;

  beforeAll(async () => {
    L = await ServeLab.open('wk', 'vpngw-workers-');
    const { link } = L;
    writeFileSync(
      L.cfg,
      `stateDir: state
dataplane: {workers: 2, maxSessionsPerWorker: 64, tun: {name: ${uniqueIfName('twk')}, mtu: 1400}}
users: {demoUser: false}
auth: {sstp: [mschapv2]}
sstp: {listen: ${link.host(1)}, port: 443}
pptp: {enabled: true, listen: ${link.host(1)}, port: 1723}
limits: {maxSessionsPerUser: 64, authFailuresPerSourcePerMinute: 100}
log: {level: info}
admin: {port: 9477}
`,
    );
    await L.addUser('alice', PASSWORD);
    server = await L.serve();
    clients = L.clientsOf(server);
  }, 240_000);

  afterAll(async () => {
    await L?.close();
  }, 60_000);

  it('sessions on both workers; uplink and TUN-side downlink through every tunnel; kill one; SIGTERM exits 0', async () => {
    expect(server.out).toMatch(/"msg":"workers: starting -> running \(2 workers ready\)"/);
    // The certificate was generated once (worker 0), loaded by worker 1.
    expect(server.err.match(/SHA-256 fingerprint/g)).toHaveLength(1);

    const tunnels: LabTunnel[] = [];
    const kinds = [...Array<'sstp'>(SSTP_TUNNELS).fill('sstp'), ...Array<'pptp'>(PPTP_TUNNELS).fill('pptp')];
    for (let i = 0; i < kinds.length; i += 6) {
      tunnels.push(...(await Promise.all(kinds.slice(i, i + 6).map((p) => clients.open(p, 'alice', PASSWORD)))));
    }
    expect(new Set(tunnels.map((t) => t.ipv4)).size).toBe(tunnels.length);

    let list = await L.sessions();
    expect(list).toHaveLength(tunnels.length);
    for (const s of list) expect(s).toMatchObject({ user: 'alice', state: 'up' });
    expect(list.filter((s) => s.protocol === 'sstp')).toHaveLength(SSTP_TUNNELS);
    expect(list.filter((s) => s.protocol === 'pptp')).toHaveLength(PPTP_TUNNELS);
    const byWorker = new Map<number, SessionInfo[]>();
    for (const s of list) byWorker.set(s.worker!, [...(byWorker.get(s.worker!) ?? []), s]);
    expect([...byWorker.keys()].sort()).toEqual([0, 1]);
    expect(new Set(list.map((s) => s.innerAddress))).toEqual(new Set(tunnels.map((t) => t.ipv4)));
    const perWorker = [...byWorker.entries()].map(([w, ss]) => `worker ${w}: ${ss.filter((s) => s.protocol === 'sstp').length} sstp, ${ss.filter((s) => s.protocol === 'pptp').length} pptp`);
    console.log(`\n  sessions by worker: ${perWorker.join('; ')}\n`);

    // Uplink: an echo from every tunnel to the gateway comes back (the reply is itself steered to the owner's queue).
    const before = tunnels.map((t) => t.echoReplies());
    tunnels.forEach((t, i) => t.sendIp(ipv4Packet(t.ipv4, GATEWAY, 1, icmpEcho(8, t.sessionIndex, 200 + i, new Uint8Array(64)), 64, 7)));
    await waitUntil(() => tunnels.every((t, i) => t.echoReplies() > before[i]!), 10_000, 'an echo reply through every tunnel');

    // Downlink from the TUN side: pings from ns A to every client address reach that client (our clients do not answer them).
    const requested = tunnels.map((t) => t.echoRequests());
    await Promise.all(tunnels.map((t) => L.a.exec(['ping', '-c', '2', '-i', '0.2', '-W', '1', t.ipv4], { allowFail: true, timeoutMs: 10_000 })));
    await waitUntil(() => tunnels.every((t, i) => t.echoRequests() >= requested[i]! + 2), 10_000, 'the pings from the gateway side to reach every client');

    // Byte counters (read by main from each worker's memory) and the metrics.
    list = await L.sessions();
    for (const s of list) {
      expect(s.bytesIn, `${s.protocol} ${s.innerAddress} on worker ${s.worker}`).toBeGreaterThan(0);
      expect(s.bytesOut, `${s.protocol} ${s.innerAddress} on worker ${s.worker}`).toBeGreaterThan(0);
    }
    const m = await L.a.exec(['curl', '-s', 'http://127.0.0.1:9477/metrics'], { timeoutMs: 10_000 });
    expect(m.stdout).toContain(`vpngw_sessions{protocol="sstp",state="up"} ${SSTP_TUNNELS}`);
    expect(m.stdout).toContain(`vpngw_sessions{protocol="pptp",state="up"} ${PPTP_TUNNELS}`);
    expect(m.stdout).toMatch(/^vpngw_ring_capacity_slots\{worker="0",ring="tun_rx"\} [1-9]\d*$/m);
    expect(m.stdout).toMatch(/^vpngw_ring_capacity_slots\{worker="1",ring="tun_rx"\} [1-9]\d*$/m);
    const sum = (re: RegExp) => [...m.stdout.matchAll(re)].reduce((n, x) => n + Number(x[1]), 0);
    // Verdicts counted once each, in main, whichever worker asked.
    expect(sum(/^vpngw_auth_results_total\{method="[^"]+",outcome="success"\} (\d+)$/gm)).toBe(tunnels.length);
    for (const p of ['sstp', 'pptp']) {
      for (const d of ['in', 'out']) expect(sum(new RegExp(`^vpngw_tunnel_packets_total\\{protocol="${p}",direction="${d}"\\} (\\d+)$`, 'gm')), `${p} ${d}`).toBeGreaterThan(0);
    }
    expect(m.stdout).toMatch(/^vpngw_pool_addresses_used\{pool="default"\} 18$/m);

    // The operator's table names each session's worker.
    const table = await L.run(L.a, ['sessions', '--config', L.cfg]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID +PROTOCOL +USER +PEER +INNER +STATE +WORKER +SINCE +BYTES IN +BYTES OUT$/);
    for (const s of list) expect(table.stdout).toMatch(new RegExp(`^${s.id} .* ${s.state} +${s.worker} +`, 'm'));

    // Kill one session (on worker 1) with the CLI: the worker runs its teardown, its client is told.
    const victim = byWorker.get(1)![0]!;
    const vt = tunnels.find((t) => t.ipv4 === victim.innerAddress)!;
    const r = await L.run(L.a, ['sessions', 'kill', victim.id, '--config', L.cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect((await vt.ended).initiator).toBe('peer');
    list = await L.sessions();
    expect(list).toHaveLength(tunnels.length - 1);
    expect(list.map((s) => s.id)).not.toContain(victim.id);

    server.child.kill('SIGTERM');
    const exit = await server.exited;
    expect(exit, server.err).toEqual({ code: 0, signal: null });
    const ends = await Promise.all(tunnels.filter((t) => t !== vt).map((t) => t.ended));
    expect(ends.every((e) => e.initiator === 'peer')).toBe(true);
    expect(server.out).toMatch(/"msg":"workers: closing -> closed/);
    for (const line of server.out.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  }, 180_000);
});
