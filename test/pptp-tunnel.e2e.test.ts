/**
 * PPTP end to end in network namespaces (root): the real gateway (TCP 1723
 * control connection, raw GRE socket and TUN device in ns A, PPP with the
 * local user store and pool, MS-CHAPv2 and MPPE, the WASM data plane) and
 * the real client (connectPptp: its own WASM data plane, raw GRE socket and
 * TUN device in ns B), over a veth link (198.18.x.0/24).
 *
 *   ping ns B -> tunnel -> 198.18.128.1 (the gateway) and a host behind it
 *   50 MB TCP each way with matching SHA-256, stateful and stateless MPPE
 *   wrong password -> ERR_AUTH_REJECTED, nothing left on the server
 *   the client vanishes (its link goes down, no goodbye) -> the server's LCP
 *   echo finds it dead and cleans up within the configured timers
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { labSupport } from './lib/gateway-lab.js';
import { bulkTransfer, startPptpLab, waitUntil, USERS, GATEWAY, type PptpLab } from './lib/pptp-lab.js';
import { checkFirstTunnel, checkRefusedLogins, checkTunnelGone, poolUsed } from './lib/tunnel-checks.js';
import { connectPptp, type PptpClient, type PptpClientOptions } from '../src/client/pptp.js';
import type { PptpSessionEnd } from '../src/pptp/service.js';

const f = await labSupport('PPTP tunnel end-to-end tests');

const mbit = (bytes: number, ms: number) => ((bytes * 8) / (ms / 1000) / 1e6).toFixed(0);

describe.skipIf(!f.ok)('PPTP gateway and client in namespaces', () => {
  let L: PptpLab;
  const clients: PptpClient[] = [];

  beforeAll(async () => {
    L = await startPptpLab();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await L?.close();
  });

  const connect = (o: Partial<PptpClientOptions> = {}) =>
    connectPptp({ host: L.serverAddress, username: 'alice', password: USERS.alice, netns: L.b.name, log: L.log, ...o });

  const done = async (c: PptpClient) => {
    await c.close();
    clients.splice(clients.indexOf(c), 1);
    await waitUntil(() => L.gateway.sessions.size === 0, 10_000, 'the server session to go');
  };

  it('pings the gateway and a host behind it through the tunnel (MPPE 128 stateful); listed; clean teardown', async () => {
    const c = await connect({ tun: { name: 'tpping0', routes: [`${L.behind.network}/24`] } });
    clients.push(c);
    expect(c.mppe).toEqual({ bits: 128, stateless: false });
    await checkFirstTunnel(L, c, 'pptp');
    const srv = L.dataplane.engines[0]!;
    expect(srv.drops().mppe_required).toBe(0n);

    const end = await c.close();
    clients.splice(clients.indexOf(c), 1);
    expect(end.initiator).toBe('local');
    expect(end.ppp?.reason).toBe('admin');
    expect(end.call).toBe('local');
    await checkTunnelGone(L, 'tpping0', 10_000, () => L.service.liveSessions.length === 0);
    expect(srv.sessions.used).toBe(0);
  }, 60_000);

  for (const stateless of [false, true]) {
    it(`carries 50 MB of TCP each way with matching SHA-256, ${stateless ? 'stateless' : 'stateful'} MPPE`, async () => {
      const c = await connect({ tun: { name: stateless ? 'tpbulk1' : 'tpbulk0', routes: [`${L.behind.network}/24`] }, mppe: { stateless } });
      clients.push(c);
      expect(c.mppe).toEqual({ bits: 128, stateless });
      const SIZE = 50 * 1024 * 1024;
      const t = await bulkTransfer(L, L.b, SIZE, stateless ? 5003 : 5001);
      const srv = L.dataplane.engines[0]!;
      const nonZero = (d: Record<string, bigint>) => JSON.stringify(Object.fromEntries(Object.entries(d).filter(([, v]) => v > 0n).map(([k, v]) => [k, Number(v)])));
      process.stderr.write(
        `\n  PPTP 50 MB through the tunnel, MPPE 128 ${stateless ? 'stateless' : 'stateful'}: uplink ${(t.upMs / 1000).toFixed(2)} s (${mbit(SIZE, t.upMs)} Mbit/s), ` +
          `downlink ${(t.downMs / 1000).toFixed(2)} s (${mbit(SIZE, t.downMs)} Mbit/s); resets: client sent ${c.stats().resetRequestsSent}, ` +
          `server sent ${L.service.liveSessions[0]?.pathStats?.resetRequestsSent ?? '?'}; drops: server ${nonZero(srv.drops())}, client ${nonZero(c.dataplane.drops())}\n`,
      );
      await done(c);
    }, 600_000);
  }

  it('wrong password and unknown user: ERR_AUTH_REJECTED; the server session is gone and holds no address', async () => {
    await checkRefusedLogins(L, connect, () => L.service.liveSessions.length === 0);
    expect(L.dataplane.engines[0]!.sessions.used).toBe(0);
  }, 60_000);
});

/**
 * Connect, then take the client's link down (no GRE, no TCP, no goodbye) and
 * wait for the server to clean up by itself; returns how long it took.
 */
async function vanish(L: PptpLab, tunName: string): Promise<{ ms: number; end: PptpSessionEnd }> {
  const c = await connectPptp({ host: L.serverAddress, username: 'bob', password: USERS.bob, netns: L.b.name, log: L.log, tun: { name: tunName }, lcpEchoIntervalMs: 0 });
  try {
    const ping = await L.b.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', GATEWAY], { allowFail: true, timeoutMs: 20_000 });
    expect(ping.stdout).toMatch(/2 packets transmitted, 2 received/);
    expect(L.gateway.sessions.list()).toMatchObject([{ user: 'bob', state: 'up' }]);
    const [session] = L.service.liveSessions;
    const t0 = performance.now();
    const links = (await L.b.ip('-o', 'link', 'show')).split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((n): n is string => !!n && n !== 'lo' && n !== tunName);
    for (const l of links) await L.b.ip('link', 'set', l, 'down');
    await waitUntil(() => L.gateway.sessions.size === 0 && L.service.liveSessions.length === 0, 30_000, 'the server to clean up');
    const ms = performance.now() - t0;
    expect(poolUsed(L)).toBe(0);
    expect(L.dataplane.engines[0]!.sessions.used).toBe(0);
    expect(await L.metrics.text()).toMatch(/^vpngw_keepalive_timeouts_total\{protocol="pptp"\} 1$/m);
    for (const l of links) await L.b.ip('link', 'set', l, 'up');
    return { ms, end: session!.endInfo };
  } finally {
    // The client gives up on its own (bounded) and frees its TUN device.
    const end = await c.close();
    expect(end.initiator).toBe('local');
    const gone = await L.b.exec(['ip', 'link', 'show', tunName], { allowFail: true });
    expect(gone.code).not.toBe(0);
  }
}

describe.skipIf(!f.ok)('PPTP: a client that vanishes, found by LCP echo', () => {
  let L: PptpLab;
  beforeAll(async () => {
    // Short LCP keep-alive for the test: every second, three misses (the control echo stays at 60 s).
    L = await startPptpLab({ pptp: 'lcpEchoInterval: 1s, lcpEchoFailures: 3' });
  }, 60_000);
  afterAll(async () => {
    await L?.close();
  });

  it('its link goes down without a goodbye: LCP echo times out, the server hangs up and cleans everything up', async () => {
    const { ms, end } = await vanish(L, 'tpgone0');
    expect(end.ppp?.reason).toBe('echo-timeout');
    // Three echoes 1 s apart, then Call-Disconnect-Notify and Stop-Control-Connection that nobody answers (5 s).
    expect(ms).toBeGreaterThan(2_000);
    expect(ms).toBeLessThan(15_000);
    process.stderr.write(`\n  PPTP vanished client: LCP echo (1 s x 3) + stop wait (5 s): the server cleaned up after ${(ms / 1000).toFixed(1)} s\n`);
  }, 60_000);
});

describe.skipIf(!f.ok)('PPTP: a client that vanishes, found by the control connection echo', () => {
  let L: PptpLab;
  beforeAll(async () => {
    // No LCP echo: the control connection's Echo-Request after 2 s idle, 2 s for its reply (RFC 2637 3.1.4, shortened).
    L = await startPptpLab({ pptp: 'lcpEchoInterval: 0, echoInterval: 2s, echoTimeout: 2s' });
  }, 60_000);
  afterAll(async () => {
    await L?.close();
  });

  it('its link goes down without a goodbye: the PPTP Echo-Reply does not come, the server closes and cleans up', async () => {
    const { ms, end } = await vanish(L, 'tpgone1');
    expect(end.control).toBe('echo-timeout');
    expect(end.ppp?.reason).toBe('lower-layer-down');
    expect(ms).toBeLessThan(10_000);
    process.stderr.write(`\n  PPTP vanished client: control echo (2 s idle + 2 s): the server cleaned up after ${(ms / 1000).toFixed(1)} s\n`);
  }, 60_000);
});
