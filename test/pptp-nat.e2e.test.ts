/**
 * Two PPTP clients behind one NAT address, both tunnels up and carrying
 * traffic at once (root):
 *
 *   ns A (gateway) ── S.1/24 ─── S.2/24 ── ns N (NAT) ── C1.1 ── C1.2 ns C1 (client 1)
 *                                                    └── C2.1 ── C2.2 ns C2 (client 2)
 *
 * The gateway sees both at N's address S.2: their sessions are told apart by
 * call id only (ours, unique per data plane), never by the peer address.
 *
 * Two NATs, same property:
 *  - the kernel's: nftables masquerade with the PPTP conntrack/NAT helper
 *    (nf_conntrack_pptp + nf_nat_pptp, assigned with `ct helper`; they rewrite
 *    the clients' call ids and key the GRE mapping on them). This kernel has
 *    them built in (CONFIG_NF_CONNTRACK_PPTP, CONFIG_NF_NAT_PPTP); where a
 *    kernel lacks them the case is skipped loudly and the relay case below
 *    still proves the property;
 *  - a userspace PPTP-aware relay in N (test/lib/pptp-relay.ts: TCP proxy for
 *    1723, GRE re-sent from N's raw socket, mapped by the clients' call ids).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { reportSkip, run, type Netns } from './lib/netns.js';
import { labSupport } from './lib/gateway-lab.js';
import { startPptpLab, waitUntil, USERS, GATEWAY, type PptpLab } from './lib/pptp-lab.js';
import { PptpRelay } from './lib/pptp-relay.js';
import { connectPptp, type PptpClient } from '../src/client/pptp.js';

const f = await labSupport('PPTP behind NAT end-to-end tests');

/** Does this kernel have the PPTP conntrack helper (nft can create a `ct helper` of type "pptp")? */
async function kernelPptpHelper(): Promise<{ ok: boolean; reason: string }> {
  if (!f.ok) return { ok: false, reason: f.reason };
  const nft = await run('nft', ['--version']);
  if (nft.code !== 0) return { ok: false, reason: 'nftables (nft) is not installed' };
  const probe = await run('unshare', ['--net', 'nft', '-f', '-'], { input: 'table ip probe {\n  ct helper p { type "pptp" protocol tcp; l3proto ip; }\n}\n' });
  return probe.code === 0
    ? { ok: true, reason: '' }
    : { ok: false, reason: `no PPTP conntrack helper in this kernel (nf_conntrack_pptp / nf_nat_pptp): ${probe.stderr.trim()}; the userspace relay case covers two clients behind one address` };
}
const helper = await kernelPptpHelper();
if (f.ok) reportSkip('PPTP behind the kernel NAT (nf_nat_pptp)', helper);

interface NatLab {
  L: PptpLab;
  n: Netns;
  clients: { ns: Netns; nat: string }[];
}

/** ns N = the lab's ns B; two client namespaces behind it, routed through N. */
async function natLab(): Promise<NatLab> {
  const L = await startPptpLab();
  const n = L.b;
  await n.sysctl('net.ipv4.ip_forward', '1');
  const clients: { ns: Netns; nat: string; subnet: string }[] = [];
  for (const tag of ['pptp-c1', 'pptp-c2']) {
    const ns = await L.lab.netns(tag);
    const l = await L.link2(n, ns);
    await ns.ip('route', 'add', 'default', 'via', l.subnet.host(1));
    clients.push({ ns, nat: l.subnet.host(1), subnet: `${l.subnet.network}/24` });
  }
  return { L, n, clients };
}

async function bothAtOnce(L: PptpLab, cs: PptpClient[], nss: Netns[], natAddress: string): Promise<void> {
  expect(new Set(cs.map((c) => c.ipv4)).size).toBe(2);
  const sessions = L.gateway.sessions.list();
  expect(sessions.map((s) => s.user).sort()).toEqual(['alice', 'bob']);
  expect(sessions.every((s) => s.state === 'up')).toBe(true);
  // Both come from the one NAT address.
  expect(new Set(sessions.map((s) => s.peer.split(':')[0]))).toEqual(new Set([natAddress]));
  const ids = L.service.liveSessions.map((s) => s.callIds!.local);
  expect(new Set(ids).size).toBe(2);
  // Both tunnels carry traffic at the same time.
  const pings = await Promise.all(nss.map((ns) => ns.exec(['ping', '-c', '20', '-i', '0.05', '-W', '2', '-s', '1200', GATEWAY], { allowFail: true, timeoutMs: 30_000 })));
  for (const p of pings) expect(p.stdout, p.stdout + p.stderr).toMatch(/20 packets transmitted, 20 received/);
  for (const s of L.gateway.sessions.list()) expect(s.bytesIn).toBeGreaterThanOrEqual(20 * 1228);
  expect(L.dataplane.engines[0]!.drops().gre_wrong_peer).toBe(0n);
}

describe.skipIf(!f.ok || !helper.ok)('PPTP: two clients behind the kernel NAT (nftables masquerade + PPTP helper)', () => {
  let N: NatLab;
  const cs: PptpClient[] = [];
  beforeAll(async () => {
    N = await natLab();
    const subnets = N.clients.map((c) => c.nat.replace(/\.1$/, '.0/24')).join(', ');
    await N.n.exec(['nft', '-f', '-'], {
      input: `table ip pptpnat {
  ct helper pptp { type "pptp" protocol tcp; l3proto ip; }
  chain pre { type filter hook prerouting priority filter; policy accept; tcp dport 1723 ct helper set "pptp"; }
  chain post { type nat hook postrouting priority srcnat; policy accept; ip saddr { ${subnets} } masquerade; }
}
`,
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(cs.map((c) => c.close().catch(() => undefined)));
    await N?.L.close();
  });

  it('both connect through the masquerade and work at once; the NAT helper tracked the calls', async () => {
    const { L } = N;
    cs.push(
      ...(await Promise.all(
        N.clients.map((c, i) =>
          connectPptp({
            host: L.serverAddress,
            username: i ? 'bob' : 'alice',
            password: i ? USERS.bob : USERS.alice,
            netns: c.ns.name,
            log: L.log,
            tun: { name: `tpnat${i}` },
          }),
        ),
      )),
    );
    await bothAtOnce(L, cs, N.clients.map((c) => c.ns), L.link.host(2));
    // The helper's expectations became GRE conntrack entries keyed by call id (srckey/dstkey), one per tunnel.
    const ct = await N.n.exec(['cat', '/proc/net/nf_conntrack'], { allowFail: true });
    expect(ct.code).toBe(0);
    const gre = ct.stdout.split('\n').filter((l) => /\bgre\b/.test(l) && /srckey=0x[0-9a-f]+ dstkey=0x[0-9a-f]+/.test(l));
    expect(gre, ct.stdout).toHaveLength(2);
    await Promise.all(cs.splice(0).map((c) => c.close()));
    await waitUntil(() => L.gateway.sessions.size === 0, 10_000, 'both sessions to go');
  }, 60_000);
});

describe.skipIf(!f.ok)('PPTP: two clients behind a userspace PPTP-aware relay (one address)', () => {
  let N: NatLab;
  let relay: PptpRelay;
  const cs: PptpClient[] = [];
  beforeAll(async () => {
    N = await natLab();
    // No forwarding through N: the relay is the only way to the gateway.
    await N.n.sysctl('net.ipv4.ip_forward', '0');
    relay = await PptpRelay.start({ netns: N.n.name, listen: '0.0.0.0', server: N.L.serverAddress });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(cs.map((c) => c.close().catch(() => undefined)));
    await relay?.close();
    await N?.L.close();
  });

  it('both connect through the relay and work at once; GRE is mapped by call id', async () => {
    const { L } = N;
    cs.push(
      ...(await Promise.all(
        N.clients.map((c, i) =>
          connectPptp({
            host: c.nat,
            username: i ? 'bob' : 'alice',
            password: i ? USERS.bob : USERS.alice,
            netns: c.ns.name,
            log: L.log,
            tun: { name: `tprel${i}` },
          }),
        ),
      )),
    );
    await bothAtOnce(L, cs, N.clients.map((c) => c.ns), L.link.host(2));
    expect(relay.clientByCall.size).toBe(2);
    expect(relay.stats.unknownCall).toBe(0);
    expect(relay.stats.toClient).toBeGreaterThan(40);
    expect(relay.stats.toServer).toBeGreaterThan(40);
    await Promise.all(cs.splice(0).map((c) => c.close()));
    await waitUntil(() => L.gateway.sessions.size === 0, 10_000, 'both sessions to go');
  }, 60_000);
});
