/**
 * SSTP end to end in network namespaces (root): the real gateway (TLS,
 * HTTP, SSTP call, PPP with the local user store, pool, WASM data plane,
 * TUN device in ns A) and the real client (connectSstp: TLS with a pinned
 * fingerprint, crypto binding, its own WASM data plane and TUN in ns B),
 * with a veth link (198.18.x.0/24) between the namespaces.
 *
 *   ping ns B -> tunnel -> 198.18.128.1 (the gateway) and a host behind it
 *   50 MB TCP each way through the tunnel, SHA-256 compared
 *   wrong password -> ERR_AUTH_REJECTED, server session gone, no lease held
 *   tampered Compound MAC -> Call Abort (ERR_CRYPTO_BINDING), nothing left
 *   100 tunnels at once from one client engine, each pinging the gateway
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as abi from '../assembly/abi.js';
import { startSstpLab, waitUntil, USERS, GATEWAY, type SstpLab } from './lib/sstp-lab.js';
import { bulkTransfer, labSupport } from './lib/gateway-lab.js';
import { checkFirstTunnel, checkRefusedLogins, checkTunnelGone, poolUsed } from './lib/tunnel-checks.js';
import { connectSstp, type SstpClient } from '../src/client/sstp.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { MessageType } from '../src/sstp/constants.js';
import { CALL_CONNECTED_MAC_OFFSET } from '../src/sstp/codec.js';
import { icmpEcho, ipv4Packet } from './lib/packets.js';
import { rejectsWith } from './lib/wait.js';

const f = await labSupport('SSTP tunnel end-to-end tests');

describe.skipIf(!f.ok)('SSTP gateway and client in namespaces', () => {
  let L: SstpLab;
  const clients: SstpClient[] = [];

  beforeAll(async () => {
    L = await startSstpLab();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await L?.close();
  });

  const connect = (o: Partial<Parameters<typeof connectSstp>[0]> = {}) =>
    connectSstp({
      host: L.serverAddress,
      port: L.port,
      username: 'alice',
      password: USERS.alice,
      fingerprint: L.fingerprint,
      netns: L.b.name,
      log: L.log,
      ...o,
    });

  it('pings the gateway and a host behind it through the tunnel; the session is listed; clean teardown', async () => {
    const c = await connect({ tun: { name: 'tcping0', routes: [`${L.behind.network}/24`] } });
    clients.push(c);
    expect(c.hashProtocol).toBe(2); // SHA-256 offered and chosen
    await checkFirstTunnel(L, c, 'sstp');

    const end = await c.close();
    clients.splice(clients.indexOf(c), 1);
    expect(end.initiator).toBe('local');
    expect(end.call).toMatchObject({ reason: 'disconnected', initiator: 'local' });
    expect(end.ppp?.reason).toBe('admin');
    await checkTunnelGone(L, 'tcping0', 5_000);
  }, 60_000);

  it('carries 50 MB of TCP each way with matching SHA-256', async () => {
    const c = await connect({ tun: { name: 'tcbulk0', routes: [`${L.behind.network}/24`] } });
    clients.push(c);
    const SIZE = 50 * 1024 * 1024;
    // A TCP server on the host behind the gateway (ns A), a TCP client in ns B: the path is the tunnel.
    const { upMs, downMs } = await bulkTransfer(L, L.b, SIZE, 5001, 90_000);
    const dropped = L.service.liveSessions[0]?.downlinkDropped ?? 0;
    const rate = (ms: number) => ((SIZE * 8) / (ms / 1000) / 1e6).toFixed(0);
    process.stderr.write(
      `\n  SSTP 50 MB through the tunnel: uplink ${(upMs / 1000).toFixed(2)} s (${rate(upMs)} Mbit/s), downlink ${(downMs / 1000).toFixed(2)} s (${rate(downMs)} Mbit/s, ${dropped} downlink writes dropped at the TLS backlog bound)\n`,
    );
    await c.close();
    clients.splice(clients.indexOf(c), 1);
    await waitUntil(() => L.gateway.sessions.size === 0, 5_000, 'the server session to go');
  }, 180_000);

  it('wrong password: the client fails with ERR_AUTH_REJECTED; the server session is gone and holds no address', async () => {
    await checkRefusedLogins(L, connect, () => L.gateway.sessions.size === 0);
  }, 60_000);

  it('tampered Compound MAC: the server answers Call Abort (ERR_CRYPTO_BINDING) and cleans up', async () => {
    const flip = (b: Uint8Array) => {
      // The Call Connected message (MS-SSTP 2.2.11): control packet, type 0x0004, 112 octets.
      if (b.length === 112 && b[1] === 1 && ((b[4]! << 8) | b[5]!) === MessageType.CallConnected) {
        const t = b.slice();
        t[CALL_CONNECTED_MAC_OFFSET + 3]! ^= 0x40;
        return t;
      }
      return b;
    };
    const e = await rejectsWith(connect({ tamper: flip, tun: false }), 'ERR_CRYPTO_BINDING');
    expect(e.message).toMatch(/crypto binding/);
    await waitUntil(() => L.gateway.sessions.size === 0, 10_000, 'the aborted session to go');
    expect(poolUsed(L)).toBe(0);
    // And a correct client right after still gets in.
    const ok = await connect({ tun: false });
    await ok.close();
    await waitUntil(() => L.gateway.sessions.size === 0, 10_000, 'the session to go');
  }, 60_000);

  it('100 tunnels at once from one client engine, each pinging the gateway', async () => {
    const N = 100;
    const dp = new DataPlane({ maxSessions: 128, streamBuffers: true });
    const replies = new Map<number, number>();
    const drain = setInterval(() => {
      dp.ring(abi.RingId.TUN_TX).drain((p, m) => {
        // An ICMP echo reply (type 0) for this session's address.
        if (p[9] === 1 && p[20] === 0) replies.set(m.session, (replies.get(m.session) ?? 0) + 1);
      });
    }, 5);
    const t0 = performance.now();
    try {
      const settled = await Promise.allSettled(
        Array.from({ length: N }, (_, i) =>
          connect({ username: i % 2 ? 'bob' : 'carol', password: i % 2 ? USERS.bob : USERS.carol, tun: false, dataplane: dp, connectTimeoutMs: 60_000 }),
        ),
      );
      const setupMs = performance.now() - t0;
      const failed = settled.filter((s) => s.status === 'rejected');
      expect(failed.map((s) => String((s as PromiseRejectedResult).reason))).toEqual([]);
      const cs = settled.map((s) => (s as PromiseFulfilledResult<SstpClient>).value);
      clients.push(...cs);
      expect(new Set(cs.map((c) => c.ipv4)).size).toBe(N);
      expect(L.gateway.sessions.list().filter((s) => s.state === 'up')).toHaveLength(N);
      const each = cs.map((c) => c.setupMs).sort((a, b) => a - b);
      process.stderr.write(
        `\n  SSTP 100 concurrent tunnels: all up in ${(setupMs / 1000).toFixed(2)} s (${((N * 1000) / setupMs).toFixed(0)} tunnels/s); ` +
          `per tunnel p50 ${each[N / 2]!.toFixed(0)} ms, max ${each[N - 1]!.toFixed(0)} ms\n`,
      );
      // Each tunnel sends three echo requests from its own address to the gateway.
      for (let seq = 1; seq <= 3; seq++) {
        for (const c of cs) {
          const payload = new Uint8Array(56).fill(seq);
          expect(c.sendIp(ipv4Packet(c.ipv4, GATEWAY, 1, icmpEcho(8, c.sessionIndex, seq, payload), 64, seq))).toBe(true);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => cs.every((c) => (replies.get(c.sessionIndex) ?? 0) >= 3), 20_000, 'three echo replies on every tunnel');
      for (const c of cs) expect(replies.get(c.sessionIndex)).toBe(3);
      await Promise.all(cs.map((c) => c.close()));
      clients.length = 0;
      await waitUntil(() => L.gateway.sessions.size === 0, 20_000, 'all sessions to go');
      expect(poolUsed(L)).toBe(0);
    } finally {
      clearInterval(drain);
      dp.close();
    }
  }, 180_000);
});

describe.skipIf(!f.ok)('SSTP server timers and bounds', () => {
  let L: SstpLab;
  beforeAll(async () => {
    L = await startSstpLab({ service: { timers: { negotiationMs: 1_000, connectRequestMs: 1_000, abortT1Ms: 500 } } });
  }, 60_000);
  afterAll(async () => {
    await L?.close();
  });

  it('a client that stops after Call Connect Request is aborted by the negotiation timer and cleaned up', async () => {
    const { stalledClient } = await import('./lib/sstp-raw.js');
    const r = await stalledClient({ netns: L.b.name, host: L.serverAddress, port: L.port, timeoutMs: 10_000 });
    expect(r.httpStatus).toBe(200);
    // Server: Call Connect Ack, then (negotiation timer) Call Abort with Status Info NEGOTIATION_TIMEOUT, then close.
    expect(r.messages.map((m) => m.type)).toEqual([MessageType.CallConnectAck, MessageType.CallAbort]);
    expect(r.messages[1]!.status).toBe(0x08);
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(1_000);
    expect(r.closedAfterMs).toBeLessThan(5_000);
    await waitUntil(() => L.gateway.sessions.size === 0, 5_000, 'the session to go');
    expect(L.dataplane.engines[0]!.sessions.used).toBe(0);
  }, 30_000);

  it('refuses what is not the SSTP request with an HTTP error and closes', async () => {
    const { rawTls } = await import('./lib/sstp-raw.js');
    const res = await rawTls({ netns: L.b.name, host: L.serverAddress, port: L.port, send: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' });
    expect(res.text).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    expect(res.closed).toBe(true);
    expect(L.gateway.sessions.size).toBe(0);
  }, 30_000);
});
