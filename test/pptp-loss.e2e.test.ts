/**
 * Stateful MPPE over a lossy, reordering GRE path (root). This kernel has
 * no tc netem, so the path is a userspace relay in its own namespace
 * (test/lib/pptp-relay.ts): the control connection is proxied untouched,
 * GRE is read from a raw socket and re-sent with 10% of the packets dropped
 * and 5% swapped with their successor, both ways, from a seeded generator.
 *
 *   ns A (gateway) ── S.1 ─── S.2 ── ns R (relay) ── R.1 ─── R.2 ── ns C (client)
 *
 * Every loss (and every late packet, which enhanced GRE drops, RFC 2637
 * 4.3) makes the stateful receiver discard until a flushed packet: it asks
 * for one with a CCP Reset-Request (RFC 3078 8.2), repeated only if the
 * request or the flushed answer is lost too. The property: TCP transfers
 * complete with matching SHA-256 both ways, each desynchronisation costs one
 * Reset-Request (plus repeats when that was lost), and once the path is clean
 * the tunnel carries traffic with no further resets.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Netns } from './lib/netns.js';
import { labSupport } from './lib/gateway-lab.js';
import { bulkTransfer, startPptpLab, waitUntil, USERS, GATEWAY, type PptpLab } from './lib/pptp-lab.js';
import { PptpRelay } from './lib/pptp-relay.js';
import { expectedSha256, udpTransfer } from './lib/udp-arq.js';
import { connectPptp, type PptpClient } from '../src/client/pptp.js';

const f = await labSupport('PPTP over a lossy GRE path end-to-end test');

const LOSS = 0.1;
const REORDER = 0.05;
const SIZE = 1 << 20;

describe.skipIf(!f.ok)('PPTP: stateful MPPE over a GRE path with 10% loss and reordering', () => {
  let L: PptpLab;
  let relay: PptpRelay;
  let c: PptpClient | undefined;
  let client: Netns;

  beforeAll(async () => {
    L = await startPptpLab();
    client = await L.lab.netns('pptp-lossy');
    const l = await L.link2(L.b, client);
    relay = await PptpRelay.start({ netns: L.b.name, listen: l.subnet.host(1), server: L.serverAddress, seed: 20240601 });
    c = await connectPptp({
      host: l.subnet.host(1),
      username: 'carol',
      password: USERS.carol,
      netns: client.name,
      log: L.log,
      tun: { name: 'tploss0', routes: [`${L.behind.network}/24`] },
    });
  }, 60_000);

  afterAll(async () => {
    await c?.close().catch(() => undefined);
    await relay?.close();
    await L?.close();
  });

  it('1 MB each way arrives intact through it; each loss costs a Reset-Request (twice sent, repeated if lost); clean afterwards', async () => {
    expect(c!.mppe).toEqual({ bits: 128, stateless: false });
    const [server] = L.service.liveSessions;
    const srvDp = L.dataplane.engines[0]!;
    relay.loss = LOSS;
    relay.reorder = REORDER;
    const up = await udpTransfer(client, L.a, L.behind.host(1), 6001, SIZE, 'up', 240_000);
    const down = await udpTransfer(L.a, client, c!.ipv4, 6002, SIZE, 'down', 240_000);
    relay.loss = 0;
    relay.reorder = 0;
    expect(up.bytes).toBe(SIZE);
    expect(up.sha256).toBe(expectedSha256(SIZE, 'up'));
    expect(down.bytes).toBe(SIZE);
    expect(down.sha256).toBe(expectedSha256(SIZE, 'down'));
    const cs = c!.stats();
    const ss = server!.pathStats!;
    const cd = c!.dataplane.drops();
    const sd = srvDp.drops();
    const kb = (r: { ms: number }) => ((SIZE / 1024) / (r.ms / 1000)).toFixed(0);
    process.stderr.write(
      `\n  PPTP stateful MPPE, ${LOSS * 100}% GRE loss + ${REORDER * 100}% swaps each way (relay dropped ${relay.stats.dropped}, swapped ${relay.stats.swapped} ` +
        `of ${relay.stats.toServer + relay.stats.toClient + relay.stats.dropped} GRE packets): ${SIZE >> 10} KB each way over UDP with retransmission: ` +
        `uplink ${(up.ms / 1000).toFixed(1)} s (${kb(up)} KB/s, ${up.retransmits} resent), downlink ${(down.ms / 1000).toFixed(1)} s (${kb(down)} KB/s, ${down.retransmits} resent).\n` +
        `  Reset-Requests: client sent ${cs.resetRequestsSent} (${cs.resetRequestsRepeated} second copies and repeats) for ${cd.mppe_coherency} desyncs; ` +
        `server sent ${ss.resetRequestsSent} (${ss.resetRequestsRepeated}) for ${sd.mppe_coherency} desyncs; late packets dropped by GRE: client ${cd.gre_sequence}, server ${sd.gre_sequence}; ` +
        `discarded while resyncing: client ${cd.mppe_discard}, server ${sd.mppe_discard}; wrongly decrypted: ${cd.ppp_protocol! + cd.bad_ip_header! + sd.ppp_protocol! + sd.bad_ip_header!}\n`,
    );
    // Losses happened in both directions and were resynchronised.
    expect(cd.mppe_coherency).toBeGreaterThan(10n);
    expect(sd.mppe_coherency).toBeGreaterThan(10n);
    // One first Reset-Request per desynchronisation; the rest are second copies and repeats.
    expect(BigInt(cs.resetRequestsSent - cs.resetRequestsRepeated)).toBe(cd.mppe_coherency);
    expect(BigInt(ss.resetRequestsSent - ss.resetRequestsRepeated)).toBe(sd.mppe_coherency);
    expect(ss.resetRequestsReceived).toBeGreaterThan(0);
    expect(cs.resetRequestsReceived).toBeGreaterThan(0);
    // Never a packet decrypted under the wrong key (it would fail the IP checks).
    expect([cd.ppp_protocol, cd.bad_ip_header, cd.spoofed_source, sd.ppp_protocol, sd.bad_ip_header, sd.spoofed_source]).toEqual([0n, 0n, 0n, 0n, 0n, 0n]);
    expect(server!.isUp).toBe(true);

    // A clean path again: in sync, TCP at full speed, no new Reset-Request.
    await waitUntil(() => !c!.dataplane.sessions.mppeState(c!.sessionIndex).receiveDiscarding, 5_000, 'the client to be in sync');
    const before = { c: c!.stats().resetRequestsSent, s: server!.pathStats!.resetRequestsSent };
    const t = await bulkTransfer(L, client, 4 << 20, 5101);
    expect(c!.stats().resetRequestsSent).toBe(before.c);
    expect(server!.pathStats!.resetRequestsSent).toBe(before.s);
    process.stderr.write(`  then 4 MB of TCP each way on the clean path: ${(t.upMs / 1000).toFixed(2)} s up, ${(t.downMs / 1000).toFixed(2)} s down, no Reset-Request\n`);
  }, 600_000);
});
