/**
 * What the SSTP and PPTP end-to-end tests (sstp-tunnel.e2e.test.ts,
 * pptp-tunnel.e2e.test.ts) check alike of a tunnel in a lab (gateway-lab.ts):
 *
 *   ns B: our client ─ tunnel ─► ns A: gateway 198.18.128.1, a host behind it
 *
 * a first tunnel up and listed ({@link checkFirstTunnel}), the same tunnel
 * gone after the client's close ({@link checkTunnelGone}), and logins
 * refused ({@link checkRefusedLogins}). What differs by protocol (MPPE, the
 * crypto binding, how each end reports the close) stays in the tests.
 */
import { expect } from 'vitest';
import type { Gateway } from '../../src/admin/gateway.js';
import { GATEWAY, type TunnelLab } from './gateway-lab.js';
import type { ProtocolServer } from '../../src/admin/gateway.js';
import { rejectsWith, waitUntil } from './wait.js';

/** What a client of either protocol reports once connected. */
export interface ConnectedClient {
  ipv4: string;
  gateway: string;
  dns: readonly string[];
  mtu: number;
}

/** Addresses of the default pool leased now. */
export function poolUsed(g: { gateway: Gateway }): number {
  return (g.gateway.ctx.pool('default') as unknown as { used: number }).used;
}

/**
 * A first tunnel (alice's, routing the host behind the gateway): the
 * client's IPCP results (an address of the pool, the gateway, the DNS, MTU
 * 1400); 5 pings of 1028 octets each to the gateway and to the host behind
 * it; nothing dropped as spoofed (the inside source is the assigned
 * address); the one session listed with its protocol, user, address, peer
 * and bytes both ways; one address leased; the authentication and the
 * set-up counted once.
 */
export async function checkFirstTunnel(L: TunnelLab<ProtocolServer>, c: ConnectedClient, protocol: 'sstp' | 'pptp'): Promise<void> {
  expect(c.ipv4).toMatch(/^198\.18\.128\.\d+$/);
  expect(c.gateway).toBe(GATEWAY);
  expect(c.dns).toEqual(['198.18.128.53']);
  expect(c.mtu).toBe(1400);

  for (const dst of [GATEWAY, L.behind.host(1)]) {
    const r = await L.b.exec(['ping', '-c', '5', '-i', '0.2', '-W', '2', '-s', '1000', dst], { allowFail: true, timeoutMs: 20_000 });
    expect(r.stdout, `${dst}\n${r.stdout}${r.stderr}`).toMatch(/5 packets transmitted, 5 received/);
  }
  expect(L.dataplane.engines[0]!.drops().spoofed_source).toBe(0n);

  const list = L.gateway.sessions.list();
  expect(list).toHaveLength(1);
  expect(list[0]).toMatchObject({ protocol, user: 'alice', innerAddress: c.ipv4, state: 'up' });
  expect(list[0]!.peer).toMatch(new RegExp(`^${L.link.host(2).replace(/\./g, '\\.')}:\\d+$`));
  expect(list[0]!.bytesIn).toBeGreaterThanOrEqual(10 * 1028);
  expect(list[0]!.bytesOut).toBeGreaterThanOrEqual(10 * 1028);
  expect(poolUsed(L)).toBe(1);
  const metrics = await L.metrics.text();
  expect(metrics).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="success"\} 1$/m);
  expect(metrics).toMatch(new RegExp(`^vpngw_session_setup_duration_seconds_count\\{protocol="${protocol}"\\} 1$`, 'm'));
}

/**
 * After the client's close(): the gateway's session gone within `ms` (and
 * `alsoGone` true: the service's own sessions), its address back in the
 * pool, the client's TUN device `tun` gone with its fd.
 */
export async function checkTunnelGone(L: TunnelLab<ProtocolServer>, tun: string, ms: number, alsoGone: () => boolean = () => true): Promise<void> {
  await waitUntil(() => L.gateway.sessions.size === 0 && alsoGone(), ms, 'the server session to go');
  expect(poolUsed(L)).toBe(0);
  const gone = await L.b.exec(['ip', 'link', 'show', tun], { allowFail: true });
  expect(gone.code).not.toBe(0);
}

/**
 * Logins refused: a wrong password, then an unknown user (mallory), each
 * ERR_AUTH_REJECTED from `connect`; each refused session gone (`gone`,
 * within 10 s) and the gateway's list empty, no address held; the wrong
 * password counted once as bad credentials.
 */
export async function checkRefusedLogins(
  L: TunnelLab<ProtocolServer>,
  connect: (o: { password?: string; username?: string; tun: false }) => Promise<unknown>,
  gone: () => boolean,
): Promise<void> {
  expect(poolUsed(L)).toBe(0);
  await rejectsWith(connect({ password: 'not the password', tun: false }), 'ERR_AUTH_REJECTED');
  await waitUntil(gone, 10_000, 'the refused session to go');
  expect(L.gateway.sessions.size).toBe(0);
  expect(poolUsed(L)).toBe(0);
  expect(await L.metrics.text()).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="bad-credentials"\} 1$/m);
  await rejectsWith(connect({ username: 'mallory', tun: false }), 'ERR_AUTH_REJECTED');
  await waitUntil(gone, 10_000, 'the refused session to go');
  expect(L.gateway.sessions.size).toBe(0);
}
