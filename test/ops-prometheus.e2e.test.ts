/**
 * A real Prometheus scraping a gateway with live tunnels (root):
 *
 *   gateway (ops lab: SSTP and PPTP in ns A, admin API with a bearer token
 *   on 127.0.0.1) <── Prometheus on 127.0.0.1:<free port>, scrape every 1 s
 *   SSTP and PPTP tunnels from ns B (our clients), ICMP echo through each
 *
 * Checked through Prometheus's HTTP API: the target is up; the session gauge
 * shows the tunnels up by protocol; the set-up histogram, auth results and
 * pool usage count them; the byte and packet counters by protocol and
 * direction grow by exactly what was sent and echoed; after teardown the
 * gauge falls to 0. `promtool check metrics` passes on a scrape taken with
 * the tunnels up, and every query of the Grafana dashboard
 * (dashboards/vpngw.json) is valid PromQL that returns the live data.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsSupport, reportSkip } from './lib/netns.js';
import { startOpsLab, LabClients, OPS_GATEWAY, type LabTunnel, type OpsLab } from './lib/ops-lab.js';
import { prometheusSupport, promtoolCheckMetrics, startPrometheus, type PromSample, type Prometheus } from './lib/prometheus.js';
import { native } from '../src/dataplane/native.js';
import { PROTOCOLS } from '../src/config/schema.js';
import { icmpEcho, ipv4Packet } from './lib/packets.js';

const facility = await netnsSupport();
const built = (() => {
  try {
    native.abi();
    return true;
  } catch {
    return false;
  }
})();
const prom = prometheusSupport();
const f = !facility.ok ? facility : !built ? { ok: false, reason: 'the native addon is not built (npm ci)' } : prom;
reportSkip('Prometheus scraping a gateway with live tunnels', f);

const USERS = { alice: 'alice prometheus pw', bob: 'bob prometheus pw' };
const TOKEN = 'ops-prometheus-token-0123456789';
/** Tunnels per protocol, echo requests per tunnel, ICMP payload octets. */
const TUNNELS = { sstp: 6, pptp: 3 } as const;
const ECHOES = 20;
const PAYLOAD = 1000;
const IP_LEN = 20 + 8 + PAYLOAD;
type Proto = keyof typeof TUNNELS;
const TUNNEL_PROTOCOLS = Object.keys(TUNNELS) as Proto[];

const dashboard = JSON.parse(readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dashboards/vpngw.json'), 'utf8')) as {
  panels: { title: string; targets?: { expr: string }[] }[];
};

const byLabel = (r: PromSample[], label: string) => Object.fromEntries(r.map((s) => [s.metric[label] ?? '', s.value]));
const one = (r: PromSample[]) => (r.length === 1 ? r[0]!.value : NaN);

describe.skipIf(!f.ok)('Prometheus scrapes the gateway: sessions and traffic of live SSTP and PPTP tunnels', () => {
  let L: OpsLab;
  let P: Prometheus;
  let clients: LabClients | undefined;

  beforeAll(async () => {
    L = await startOpsLab({ users: USERS, adminToken: TOKEN, logLevel: 'info', pptp: true });
    P = await startPrometheus({ job: 'vpngw', targets: [{ address: `127.0.0.1:${L.admin.port}`, bearerToken: TOKEN }], scrapeIntervalS: 1 });
  }, 90_000);

  afterAll(async () => {
    await clients?.close();
    await P?.stop();
    await L?.close();
  });

  it('shows the tunnels up by protocol, their bytes and packets, and the fall to 0 after teardown', async () => {
    // The target is scraped (with the bearer token) and healthy.
    await P.waitFor('up{job="vpngw"}', (r) => one(r) === 1, 20_000, 'the gateway target to be up');
    const [target] = await P.targets();
    expect(target).toMatchObject({ health: 'up', lastError: '', scrapeUrl: `http://127.0.0.1:${L.admin.port}/metrics` });
    // Without the token the same endpoint refuses (so Prometheus really sent it).
    expect((await fetch(`${L.admin.url}/metrics`)).status).toBe(401);

    const counter = async (p: Proto, what: 'bytes' | 'packets', dir: 'in' | 'out') =>
      one(await P.query(`vpngw_tunnel_${what}_total{job="vpngw",protocol="${p}",direction="${dir}"}`));
    await P.waitFor('sum(vpngw_sessions{job="vpngw"})', (r) => one(r) === 0, 10_000, 'the session gauge at 0');
    const before: Record<string, number> = {};
    for (const p of TUNNEL_PROTOCOLS) for (const w of ['bytes', 'packets'] as const) for (const d of ['in', 'out'] as const) before[`${p}/${w}/${d}`] = await counter(p, w, d);
    expect(Object.values(before).every(Number.isFinite), JSON.stringify(before)).toBe(true);

    // The tunnels, from ns B, users alternating.
    const C = (clients = new LabClients(L));
    const names = Object.keys(USERS) as (keyof typeof USERS)[];
    const t0 = performance.now();
    const tunnels: LabTunnel[] = await Promise.all(
      TUNNEL_PROTOCOLS.flatMap((p) =>
        Array.from({ length: TUNNELS[p] }, (_, i) => {
          const user = names[i % names.length]!;
          return C.open(p, user, USERS[user]);
        }),
      ),
    );
    const setupMs = performance.now() - t0;
    const total = tunnels.length;
    expect(L.gateway.sessions.list().filter((s) => s.state === 'up')).toHaveLength(total);

    // Through Prometheus: the tunnels up by protocol; set-ups, auth successes and leases counted.
    const up = await P.waitFor(
      'sum by (protocol) (vpngw_sessions{job="vpngw",state="up"})',
      (r) => TUNNEL_PROTOCOLS.every((p) => byLabel(r, 'protocol')[p] === TUNNELS[p]),
      15_000,
      'every tunnel up in Prometheus',
    );
    expect(byLabel(up, 'protocol')).toEqual(Object.fromEntries(PROTOCOLS.map((p) => [p, TUNNELS[p as Proto] ?? 0])));
    expect(one(await P.query('sum(vpngw_sessions{job="vpngw",state!="up"})'))).toBe(0);
    const setups = byLabel(await P.query('vpngw_session_setup_duration_seconds_count{job="vpngw"}'), 'protocol');
    for (const p of TUNNEL_PROTOCOLS) expect(setups[p], p).toBe(TUNNELS[p]);
    expect(one(await P.query('sum(vpngw_auth_results_total{job="vpngw",outcome="success"})'))).toBe(total);
    expect(one(await P.query('vpngw_pool_addresses_used{job="vpngw",pool="default"}'))).toBe(total);

    // The exposition with live tunnels passes promtool's lint.
    const scrape = await (await fetch(`${L.admin.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const lint = await promtoolCheckMetrics(scrape);
    expect(lint, lint.output).toEqual({ code: 0, output: '' });

    // Traffic: ECHOES echo requests of IP_LEN octets on every tunnel, each answered by the gateway's kernel.
    for (let seq = 1; seq <= ECHOES; seq++) {
      for (const t of tunnels) {
        const payload = new Uint8Array(PAYLOAD).fill(seq);
        expect(t.sendIp(ipv4Packet(t.ipv4, OPS_GATEWAY, 1, icmpEcho(8, t.sessionIndex, seq, payload), 64, seq))).toBe(true);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const deadline = Date.now() + 20_000;
    while (!tunnels.every((t) => t.echoReplies() >= ECHOES) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(tunnels.map((t) => `${t.protocol} ${t.ipv4}: ${t.echoReplies()}`)).toEqual(tunnels.map((t) => `${t.protocol} ${t.ipv4}: ${ECHOES}`));

    const growth: Record<string, number> = {};
    for (const p of TUNNEL_PROTOCOLS) {
      const sent = TUNNELS[p] * ECHOES;
      for (const [w, want] of [['bytes', sent * IP_LEN], ['packets', sent]] as const) {
        for (const d of ['in', 'out'] as const) {
          const base = before[`${p}/${w}/${d}`]!;
          const r = await P.waitFor(
            `vpngw_tunnel_${w}_total{job="vpngw",protocol="${p}",direction="${d}"}`,
            (x) => one(x) - base >= want,
            15_000,
            `${p} ${w} ${d} to grow by ${want}`,
          );
          growth[`${p}/${w}/${d}`] = one(r) - base;
          // Only the echo traffic flowed: the growth is exactly it (LCP, CCP and tunnel control are not IP).
          expect(one(r) - base, `${p} ${w} ${d}`).toBe(want);
        }
      }
    }
    // Every dashboard query, as Grafana would send it for this instance, is valid PromQL with live data.
    const instance = target!.labels.instance!;
    expect(instance).toBe(`127.0.0.1:${L.admin.port}`);
    const panels: Record<string, PromSample[][]> = {};
    for (const p of dashboard.panels) {
      for (const t of p.targets ?? []) {
        const expr = t.expr.replaceAll('$instance', instance.replace(/\./g, '\\\\.')).replaceAll('$__rate_interval', '30s');
        (panels[p.title] ??= []).push(await P.query(expr));
      }
    }
    // Auth failures are legitimately empty (there were none); drops may be too, or not: the client
    // kernels' own IPv6 packets (router solicitations, MLD) can land as ipv6_not_routed drops, and a
    // GRE packet racing a call's set-up or teardown as gre_unknown_call.
    const empty = Object.entries(panels).filter(([, rs]) => rs.some((r) => r.length === 0)).map(([t]) => t);
    expect(empty).toContain('Auth failures /s');
    expect(empty.filter((t) => t !== 'Auth failures /s' && t !== 'Drops by reason')).toEqual([]);
    expect(one(panels['Sessions up']![0]!)).toBe(total);
    const throughput = panels.Throughput![0]!;
    for (const p of TUNNEL_PROTOCOLS) {
      for (const d of ['in', 'out']) expect(throughput.find((x) => x.metric.protocol === p && x.metric.direction === d)?.value, `${p} ${d} bit/s`).toBeGreaterThan(0);
    }
    expect(byLabel(panels['Address pools']![0]!, 'pool')).toEqual({ default: total });

    // And the per-session byte counts in /sessions agree with Prometheus.
    const listed = L.gateway.sessions.list();
    for (const p of TUNNEL_PROTOCOLS) {
      expect(listed.filter((s) => s.protocol === p).reduce((a, s) => a + s.bytesIn, 0)).toBe(growth[`${p}/bytes/in`]);
      expect(listed.filter((s) => s.protocol === p).reduce((a, s) => a + s.bytesOut, 0)).toBe(growth[`${p}/bytes/out`]);
    }

    // Teardown: the gauge falls to 0, the pool empties, the counters keep their totals.
    await C.close();
    const t1 = performance.now();
    await P.waitFor('sum(vpngw_sessions{job="vpngw"})', (r) => one(r) === 0, 15_000, 'the session gauge to fall to 0');
    const fallMs = performance.now() - t1;
    expect(one(await P.query('vpngw_pool_addresses_used{job="vpngw",pool="default"}'))).toBe(0);
    for (const p of TUNNEL_PROTOCOLS) expect((await counter(p, 'bytes', 'in')) - before[`${p}/bytes/in`]!).toBe(growth[`${p}/bytes/in`]);

    process.stderr.write(
      `\n  Prometheus ${P.url} scraping ${L.admin.url}/metrics every 1 s: ${TUNNEL_PROTOCOLS.map((p) => `${TUNNELS[p]} ${p}`).join(' + ')} tunnels up in ${(setupMs / 1000).toFixed(2)} s; ` +
        `vpngw_sessions{state="up"} by protocol ${JSON.stringify(byLabel(up, 'protocol'))}; after ${ECHOES} echoes of ${IP_LEN} octets per tunnel: ` +
        `${TUNNEL_PROTOCOLS.map((p) => `${p} bytes in +${growth[`${p}/bytes/in`]} out +${growth[`${p}/bytes/out`]}, packets in +${growth[`${p}/packets/in`]} out +${growth[`${p}/packets/out`]}`).join('; ')}; ` +
        `gauge back to 0 ${(fallMs / 1000).toFixed(1)} s after teardown\n`,
    );
  }, 120_000);
});
