/**
 * The main thread's read-only view of a worker's data plane reads exactly
 * what the engine itself reports: statistics, drops by reason, ring
 * occupancy, per-session counters (from nothing but the memory and layout).
 */
import { describe, it, expect } from 'vitest';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from '../dataplane/engine.js';
import { ipv4ToInt } from '../dataplane/sessions.js';
import { ipv4Packet } from '../../test/lib/packets.js';
import { snapshotDataplane } from '../metrics/dataplane.js';
import { DataplaneView } from './dataplane-view.js';

describe('DataplaneView', () => {
  it('reads the counters, drops, rings and session counters the engine reports', () => {
    const dp = new DataPlane({ mode: abi.Mode.FORWARD, maxSessions: 4, gatewayV4: ipv4ToInt('198.18.128.1') });
    dp.onControl(() => undefined);
    const idx = dp.sessions.allocate()!;
    dp.sessions.attach(idx, { tunnel: abi.Tunnel.PPTP, gre: { peer: '198.18.1.2', myCallId: 7, peerCallId: 9 } });
    dp.sessions.activate(idx, { ipv4: '198.18.128.10', mtu: 1400 });
    const rx = dp.ring(abi.RingId.TUN_RX);
    // Downlink for the session (3 packets), and 2 for nobody (dropped: no session).
    for (let i = 0; i < 3; i++) rx.push(ipv4Packet('198.18.200.1', '198.18.128.10', 17, new Uint8Array(20 + i)));
    for (let i = 0; i < 2; i++) rx.push(ipv4Packet('198.18.200.1', '198.18.128.99', 17, new Uint8Array(8)));
    dp.wasm.process(256);
    const view = new DataplaneView(dp.memory, dp.layout);

    const c = view.sessionCounters(idx)!;
    expect(c).toEqual(dp.sessions.counters(idx));
    expect(c.downPackets).toBe(3n);
    expect(c.downBytes).toBeGreaterThan(0n);
    for (let s = 0; s < abi.STAT_COUNT; s++) expect(view.stat(s)).toBe(dp.stat(s));
    expect(view.drops()).toEqual(dp.drops());
    expect(view.drops().no_session).toBe(2n);
    for (let id = 0; id < abi.RING_COUNT; id++) {
      expect(view.hasRing(id)).toBe(dp.hasRing(id));
      if (dp.hasRing(id)) expect([view.ring(id).occupancy, view.ring(id).slots]).toEqual([dp.ring(id).occupancy, dp.ring(id).slots]);
    }
    expect(view.ring(abi.RingId.GRE_TX).occupancy).toBe(3);
    expect(snapshotDataplane([view])).toEqual(snapshotDataplane([dp]));
    expect(view.sessionCounters(-1)).toBeUndefined();
    expect(view.sessionCounters(4)).toBeUndefined();
    dp.close();
  });

  it('works on the memory as another thread receives it (structured clone of the shared memory)', async () => {
    const dp = new DataPlane({ maxSessions: 2 });
    const { port1, port2 } = new MessageChannel();
    const got = new Promise<{ memory: WebAssembly.Memory; layout: DataPlane['layout'] }>((r) => port2.once('message', r));
    port1.postMessage({ memory: dp.memory, layout: dp.layout });
    const m = await got;
    port1.close();
    const view = new DataplaneView(m.memory, m.layout);
    dp.ring(abi.RingId.TUN_RX).push(ipv4Packet('198.18.200.1', '198.18.128.99', 17, new Uint8Array(8)));
    expect(view.ring(abi.RingId.TUN_RX).occupancy).toBe(1);
    dp.wasm.process(16);
    expect(view.ring(abi.RingId.TUN_RX).occupancy).toBe(0);
    expect(view.stat(abi.STAT_DROP_BASE + abi.Drop.NO_SESSION)).toBe(dp.stat(abi.STAT_DROP_BASE + abi.Drop.NO_SESSION));
    dp.close();
  });
});
