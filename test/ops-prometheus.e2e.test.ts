/**
 * A real Prometheus scraping a gateway with live tunnels (root):
 *
 *   gateway (ops lab: SSTP in ns A, admin API with a bearer token on
 *   127.0.0.1) <── Prometheus on 127.0.0.1:<free port>, scrape every 1 s
 *   N SSTP tunnels from ns B (our client), ICMP echo through each
 *
 * Checked through Prometheus's HTTP API: the target is up; the session gauge
 * shows N sessions up for sstp (0 for the other protocols); the set-up
 * histogram and auth results count them; the byte and packet counters by
 * protocol and direction grow by at least what was sent and echoed; after
 * teardown the gauge falls to 0. `promtool check metrics` passes on a scrape
 * taken with the tunnels up.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as abi from '../assembly/abi.js';
import { netnsSupport, reportSkip } from './lib/netns.js';
import { startOpsLab, OPS_GATEWAY, type OpsLab } from './lib/ops-lab.js';
import { prometheusSupport, promtoolCheckMetrics, startPrometheus, type PromSample, type Prometheus } from './lib/prometheus.js';
import { connectSstp, type SstpClient } from '../src/client/sstp.js';
import { DataPlane } from '../src/dataplane/engine.js';
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
/** Tunnels, echo requests per tunnel, ICMP payload octets. */
const N = 6;
const ECHOES = 20;
const PAYLOAD = 1000;
const IP_LEN = 20 + 8 + PAYLOAD;

const byLabel = (r: PromSample[], label: string) => Object.fromEntries(r.map((s) => [s.metric[label] ?? '', s.value]));
const one = (r: PromSample[]) => (r.length === 1 ? r[0]!.value : NaN);

describe.skipIf(!f.ok)('Prometheus scrapes the gateway: sessions and traffic of live SSTP tunnels', () => {
  let L: OpsLab;
  let P: Prometheus;
  const clients: SstpClient[] = [];
  let dp: DataPlane | undefined;

  beforeAll(async () => {
    L = await startOpsLab({ users: USERS, adminToken: TOKEN, logLevel: 'info' });
    P = await startPrometheus({ job: 'vpngw', targets: [{ address: `127.0.0.1:${L.admin.port}`, bearerToken: TOKEN }], scrapeIntervalS: 1 });
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    dp?.close();
    await P?.stop();
    await L?.close();
  });

  it(`shows ${N} tunnels up by protocol, their bytes and packets, and the fall to 0 after teardown`, async () => {
    // The target is scraped (with the bearer token) and healthy.
    await P.waitFor('up{job="vpngw"}', (r) => one(r) === 1, 20_000, 'the gateway target to be up');
    const [target] = await P.targets();
    expect(target).toMatchObject({ health: 'up', lastError: '', scrapeUrl: `http://127.0.0.1:${L.admin.port}/metrics` });
    // Without the token the same endpoint refuses (so Prometheus really sent it).
    expect((await fetch(`${L.admin.url}/metrics`)).status).toBe(401);

    const baseline = async (dir: 'in' | 'out', what: 'bytes' | 'packets') =>
      one(await P.query(`vpngw_tunnel_${what}_total{job="vpngw",protocol="sstp",direction="${dir}"}`));
    await P.waitFor('sum(vpngw_sessions{job="vpngw"})', (r) => one(r) === 0, 10_000, 'the session gauge at 0');
    const before = { inBytes: await baseline('in', 'bytes'), outBytes: await baseline('out', 'bytes'), inPkts: await baseline('in', 'packets'), outPkts: await baseline('out', 'packets') };
    expect(Object.values(before).every(Number.isFinite)).toBe(true);

    // N tunnels from ns B, one client engine without TUN devices (IP by sendIp, echo replies read from its TUN_TX ring).
    dp = new DataPlane({ maxSessions: N + 2, streamBuffers: true });
    const engine = dp;
    const replies = new Map<number, number>();
    const drain = setInterval(() => {
      engine.ring(abi.RingId.TUN_TX).drain((p, m) => {
        if (p[9] === 1 && p[20] === 0) replies.set(m.session, (replies.get(m.session) ?? 0) + 1);
      });
    }, 5);
    try {
      const names = Object.keys(USERS) as (keyof typeof USERS)[];
      const t0 = performance.now();
      clients.push(
        ...(await Promise.all(
          Array.from({ length: N }, (_, i) => {
            const user = names[i % names.length]!;
            return connectSstp({
              host: L.serverAddress,
              port: L.sstpPort,
              username: user,
              password: USERS[user],
              fingerprint: L.fingerprint,
              netns: L.b.name,
              tun: false,
              dataplane: engine,
              connectTimeoutMs: 60_000,
            });
          }),
        )),
      );
      const setupMs = performance.now() - t0;
      expect(L.gateway.sessions.list().filter((s) => s.state === 'up')).toHaveLength(N);

      // Through Prometheus: N up on sstp, none elsewhere; set-ups and auth successes counted.
      const up = await P.waitFor(
        'sum by (protocol) (vpngw_sessions{job="vpngw",state="up"})',
        (r) => byLabel(r, 'protocol').sstp === N,
        15_000,
        `${N} sstp sessions up in Prometheus`,
      );
      expect(byLabel(up, 'protocol')).toEqual(Object.fromEntries(PROTOCOLS.map((p) => [p, p === 'sstp' ? N : 0])));
      const other = await P.query('sum(vpngw_sessions{job="vpngw",state!="up"})');
      expect(one(other)).toBe(0);
      expect(one(await P.query('vpngw_session_setup_duration_seconds_count{job="vpngw",protocol="sstp"}'))).toBe(N);
      expect(one(await P.query('sum(vpngw_auth_results_total{job="vpngw",outcome="success"})'))).toBe(N);
      expect(one(await P.query('vpngw_pool_addresses_used{job="vpngw",pool="default"}'))).toBe(N);

      // The exposition with live tunnels passes promtool's lint.
      const scrape = await (await fetch(`${L.admin.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      const lint = await promtoolCheckMetrics(scrape);
      expect(lint, lint.output).toEqual({ code: 0, output: '' });

      // Traffic: ECHOES echo requests of IP_LEN octets on every tunnel, each answered by the gateway's kernel.
      for (let seq = 1; seq <= ECHOES; seq++) {
        for (const c of clients) {
          const payload = new Uint8Array(PAYLOAD).fill(seq);
          expect(c.sendIp(ipv4Packet(c.ipv4, OPS_GATEWAY, 1, icmpEcho(8, c.sessionIndex, seq, payload), 64, seq))).toBe(true);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const deadline = Date.now() + 20_000;
      while (!clients.every((c) => (replies.get(c.sessionIndex) ?? 0) >= ECHOES) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const c of clients) expect(replies.get(c.sessionIndex) ?? 0).toBe(ECHOES);
      const sent = N * ECHOES;

      const grown = async (dir: 'in' | 'out', what: 'bytes' | 'packets', base: number, atLeast: number) => {
        const r = await P.waitFor(
          `vpngw_tunnel_${what}_total{job="vpngw",protocol="sstp",direction="${dir}"}`,
          (x) => one(x) - base >= atLeast,
          15_000,
          `sstp ${what} ${dir} to grow by ${atLeast}`,
        );
        return one(r) - base;
      };
      const inBytes = await grown('in', 'bytes', before.inBytes, sent * IP_LEN);
      const outBytes = await grown('out', 'bytes', before.outBytes, sent * IP_LEN);
      const inPkts = await grown('in', 'packets', before.inPkts, sent);
      const outPkts = await grown('out', 'packets', before.outPkts, sent);
      // Only the echo traffic flowed: the growth is exactly it (LCP and SSTP control are not IP).
      expect([inBytes, outBytes, inPkts, outPkts]).toEqual([sent * IP_LEN, sent * IP_LEN, sent, sent]);
      // No other protocol saw a byte.
      const others = await P.query('sum by (protocol) (vpngw_tunnel_bytes_total{job="vpngw",protocol!="sstp"})');
      expect(others.every((s) => s.value === 0)).toBe(true);
      // And the per-session byte counts in /sessions agree with Prometheus.
      const listed = L.gateway.sessions.list();
      expect(listed.reduce((a, s) => a + s.bytesIn, 0)).toBe(sent * IP_LEN);
      expect(listed.reduce((a, s) => a + s.bytesOut, 0)).toBe(sent * IP_LEN);

      // Teardown: the gauge falls to 0, the pool empties.
      await Promise.all(clients.map((c) => c.close()));
      clients.length = 0;
      const t1 = performance.now();
      await P.waitFor('sum(vpngw_sessions{job="vpngw"})', (r) => one(r) === 0, 15_000, 'the session gauge to fall to 0');
      const fallMs = performance.now() - t1;
      expect(one(await P.query('vpngw_pool_addresses_used{job="vpngw",pool="default"}'))).toBe(0);
      // The counters keep their totals (they are counters, not gauges).
      expect(one(await P.query('vpngw_tunnel_bytes_total{job="vpngw",protocol="sstp",direction="in"}')) - before.inBytes).toBe(sent * IP_LEN);

      process.stderr.write(
        `\n  Prometheus ${P.url} scraping ${L.admin.url}/metrics every 1 s: ${N} SSTP tunnels up in ${(setupMs / 1000).toFixed(2)} s; ` +
          `vpngw_sessions{protocol="sstp",state="up"} = ${N}; after ${sent} echoes of ${IP_LEN} octets: ` +
          `tunnel_bytes_total in +${inBytes}, out +${outBytes}; tunnel_packets_total in +${inPkts}, out +${outPkts}; ` +
          `gauge back to 0 ${(fallMs / 1000).toFixed(1)} s after teardown\n`,
      );
    } finally {
      clearInterval(drain);
    }
  }, 120_000);
});
