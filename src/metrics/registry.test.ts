import { describe, it, expect } from 'vitest';
import { register as globalRegistry } from 'prom-client';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from '../dataplane/engine.js';
import { ipv4Packet } from '../../test/lib/packets.js';
import { snapshotDataplane } from './dataplane.js';
import { GatewayMetrics, NONCONVENTIONAL_DEFAULT_METRICS, type MetricsSource, type DataplaneSnapshot } from './registry.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser of the text exposition format (enough for these assertions). */
function parse(text: string) {
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m = /^# HELP (\S+) (.+)$/.exec(line);
    if (m) {
      help.set(m[1]!, m[2]!);
      continue;
    }
    m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      type.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  const value = (name: string, labels: Record<string, string> = {}) => {
    const s = samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
    if (s.length !== 1) throw new Error(`${s.length} samples for ${name} ${JSON.stringify(labels)}`);
    return s[0]!.value;
  };
  return { help, type, samples, value };
}

const FAMILIES: [string, string, string[]][] = [
  ['vpngw_build_info', 'gauge', ['version']],
  ['vpngw_sessions', 'gauge', ['protocol', 'state']],
  ['vpngw_session_setup_duration_seconds', 'histogram', ['protocol']],
  ['vpngw_auth_results_total', 'counter', ['method', 'outcome']],
  ['vpngw_tunnel_bytes_total', 'counter', ['protocol', 'direction']],
  ['vpngw_tunnel_packets_total', 'counter', ['protocol', 'direction']],
  ['vpngw_dataplane_drops_total', 'counter', ['reason']],
  ['vpngw_ring_occupancy_slots', 'gauge', ['worker', 'ring']],
  ['vpngw_ring_capacity_slots', 'gauge', ['worker', 'ring']],
  ['vpngw_tls_handshake_failures_total', 'counter', ['reason']],
  ['vpngw_proxy_protocol_refused_total', 'counter', ['reason']],
  ['vpngw_pool_addresses', 'gauge', ['pool']],
  ['vpngw_pool_addresses_used', 'gauge', ['pool']],
  ['vpngw_pool_allocation_failures_total', 'counter', ['pool', 'reason']],
  ['vpngw_keepalive_timeouts_total', 'counter', ['protocol']],
];

function fakeSource(): MetricsSource & { snap: DataplaneSnapshot } {
  const snap: DataplaneSnapshot = {
    drops: { ring_full: 3n, no_session: 2n ** 60n },
    perProtocol: {
      sstp: { inPackets: 10n, inBytes: 1400n, outPackets: 20n, outBytes: 28_000n },
      pptp: { inPackets: 1n, inBytes: 100n, outPackets: 2n, outBytes: 200n },
    },
    rings: [
      { worker: 0, ring: 'tun_rx', occupancy: 5, slots: 1024 },
      { worker: 1, ring: 'ctrl', occupancy: 0, slots: 256 },
    ],
  };
  return {
    snap,
    sessions: () => [
      { protocol: 'sstp', state: 'up', count: 7 },
      { protocol: 'pptp', state: 'authenticating', count: 1 },
    ],
    pools: () => [{ pool: 'default', size: 253, used: 8, failures: { exhausted: 4, conflict: 1, invalid: 0 } }],
    dataplane: () => snap,
  };
}

describe('GatewayMetrics', () => {
  it('exposes every family with HELP and TYPE, and the expected label names', async () => {
    const m = new GatewayMetrics(fakeSource(), { version: '0.1.0' });
    m.authResult('mschapv2', 'success');
    const p = parse(await m.text());
    for (const [name, type, labels] of FAMILIES) {
      expect(p.type.get(name), name).toBe(type);
      expect(p.help.get(name)?.length, name).toBeGreaterThan(10);
      const samples = p.samples.filter((s) => s.name === name || s.name.startsWith(`${name}_`));
      expect(samples.length, name).toBeGreaterThan(0);
      for (const s of samples) {
        const names = Object.keys(s.labels).filter((l) => l !== 'le');
        expect(names.sort(), `${s.name}`).toEqual([...labels].sort());
      }
    }
    // prom-client's process metrics and event-loop lag are in the same registry.
    expect(p.type.get('process_cpu_seconds_total')).toBe('counter');
    expect(p.type.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(p.value('vpngw_build_info', { version: '0.1.0' })).toBe(1);
    // No per-user labels anywhere.
    expect(p.samples.some((s) => 'user' in s.labels || 'username' in s.labels || 'session' in s.labels)).toBe(false);
  });

  it('follows the naming conventions promtool checks: _total exactly on counters, base units, no per-user labels', async () => {
    const p = parse(await new GatewayMetrics(fakeSource()).text());
    expect(p.type.size).toBeGreaterThan(FAMILIES.length);
    for (const [name, type] of p.type) {
      expect(name, name).toMatch(/^[a-z_][a-z0-9_]*$/);
      // Counters end in _total, nothing else does (prom-client's nodejs_active_*_total gauges are left out).
      expect(name.endsWith('_total'), `${name} (${type})`).toBe(type === 'counter');
      // Units are base units: seconds and bytes, never milliseconds or kilobytes.
      expect(name, name).not.toMatch(/_(milliseconds|ms|microseconds|kilobytes|megabytes|kb|mb)(_|$)/);
    }
    for (const n of NONCONVENTIONAL_DEFAULT_METRICS) expect(p.type.has(n), n).toBe(false);
    // Their conventional counterparts stay.
    expect(p.type.get('nodejs_active_handles')).toBe('gauge');
  });

  it('does not touch the global default registry', async () => {
    const before = (await globalRegistry.getMetricsAsJSON()).length;
    new GatewayMetrics(fakeSource());
    expect((await globalRegistry.getMetricsAsJSON()).length).toBe(before);
  });

  it('reads state and data-plane counters from the source at scrape time', async () => {
    const src = fakeSource();
    const m = new GatewayMetrics(src, { defaultMetrics: false });
    let p = parse(await m.text());
    expect(p.value('vpngw_sessions', { protocol: 'sstp', state: 'up' })).toBe(7);
    expect(p.value('vpngw_sessions', { protocol: 'pptp', state: 'authenticating' })).toBe(1);
    expect(p.value('vpngw_sessions', { protocol: 'l2tp', state: 'up' })).toBe(0);
    expect(p.value('vpngw_tunnel_bytes_total', { protocol: 'sstp', direction: 'in' })).toBe(1400);
    expect(p.value('vpngw_tunnel_bytes_total', { protocol: 'sstp', direction: 'out' })).toBe(28_000);
    expect(p.value('vpngw_tunnel_packets_total', { protocol: 'pptp', direction: 'out' })).toBe(2);
    expect(p.value('vpngw_tunnel_packets_total', { protocol: 'l2tp', direction: 'in' })).toBe(0);
    expect(p.value('vpngw_dataplane_drops_total', { reason: 'ring_full' })).toBe(3);
    expect(p.value('vpngw_dataplane_drops_total', { reason: 'no_session' })).toBe(2 ** 60);
    expect(p.value('vpngw_ring_occupancy_slots', { worker: '0', ring: 'tun_rx' })).toBe(5);
    expect(p.value('vpngw_ring_capacity_slots', { worker: '1', ring: 'ctrl' })).toBe(256);
    expect(p.value('vpngw_pool_addresses', { pool: 'default' })).toBe(253);
    expect(p.value('vpngw_pool_addresses_used', { pool: 'default' })).toBe(8);
    expect(p.value('vpngw_pool_allocation_failures_total', { pool: 'default', reason: 'exhausted' })).toBe(4);
    expect(p.value('vpngw_pool_allocation_failures_total', { pool: 'default', reason: 'conflict' })).toBe(1);

    // Counters mirror the source: a second scrape shows the new totals, not a sum of scrapes.
    src.snap.drops.ring_full = 10n;
    src.snap.perProtocol.sstp!.inBytes = 2800n;
    p = parse(await m.text());
    expect(p.value('vpngw_dataplane_drops_total', { reason: 'ring_full' })).toBe(10);
    expect(p.value('vpngw_tunnel_bytes_total', { protocol: 'sstp', direction: 'in' })).toBe(2800);
  });

  it('counts control-plane events with bounded labels', async () => {
    const m = new GatewayMetrics(undefined, { defaultMetrics: false });
    m.authResult('mschapv2', 'success');
    m.authResult('mschapv2', 'success');
    m.authResult('eap-mschapv2', 'bad-credentials');
    m.sessionSetup('sstp', 0.3);
    m.sessionSetup('sstp', 4);
    m.tlsHandshakeFailure('timeout');
    m.keepaliveTimeout('pptp');
    const p = parse(await m.text());
    expect(p.value('vpngw_auth_results_total', { method: 'mschapv2', outcome: 'success' })).toBe(2);
    expect(p.value('vpngw_auth_results_total', { method: 'eap-mschapv2', outcome: 'bad-credentials' })).toBe(1);
    expect(p.value('vpngw_session_setup_duration_seconds_count', { protocol: 'sstp' })).toBe(2);
    expect(p.value('vpngw_session_setup_duration_seconds_sum', { protocol: 'sstp' })).toBeCloseTo(4.3);
    expect(p.value('vpngw_session_setup_duration_seconds_bucket', { protocol: 'sstp', le: '0.5' })).toBe(1);
    expect(p.value('vpngw_session_setup_duration_seconds_bucket', { protocol: 'sstp', le: '+Inf' })).toBe(2);
    expect(p.value('vpngw_session_setup_duration_seconds_count', { protocol: 'pptp' })).toBe(0);
    expect(p.value('vpngw_tls_handshake_failures_total', { reason: 'timeout' })).toBe(1);
    expect(p.value('vpngw_tls_handshake_failures_total', { reason: 'certificate' })).toBe(0);
    expect(p.value('vpngw_keepalive_timeouts_total', { protocol: 'pptp' })).toBe(1);
    expect(p.value('vpngw_keepalive_timeouts_total', { protocol: 'sstp' })).toBe(0);
    // Without a data plane the mirrored counters read zero, drops are absent.
    expect(p.value('vpngw_tunnel_bytes_total', { protocol: 'sstp', direction: 'in' })).toBe(0);
    expect(p.samples.filter((s) => s.name === 'vpngw_dataplane_drops_total')).toEqual([]);
  });
});

describe('snapshotDataplane', () => {
  it('reads drop counters and ring occupancy out of real WASM memory, summed over workers', async () => {
    const w0 = new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 4 });
    const w1 = new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 4 });
    w0.ring(abi.RingId.TUN_RX).push(ipv4Packet('198.18.1.2', '198.18.1.1', 17, new Uint8Array(8)));
    w1.ring(abi.RingId.TUN_RX).push(ipv4Packet('198.18.1.2', '198.18.1.1', 17, new Uint8Array(8)));
    w1.ring(abi.RingId.TUN_RX).push(new Uint8Array([0x45]));
    w0.pump();
    w1.pump();
    w1.ring(abi.RingId.INJECT).push(new Uint8Array(4)); // left unconsumed: occupancy 1
    const snap = snapshotDataplane([w0, w1]);
    expect(snap.drops.not_icmp_echo).toBe(2n);
    expect(snap.drops.bad_ip_header! + snap.drops.truncated!).toBe(1n);
    expect(Object.keys(snap.drops)).toHaveLength(abi.DROP_COUNT);
    expect(snap.rings.find((r) => r.worker === 1 && r.ring === 'inject')).toEqual({ worker: 1, ring: 'inject', occupancy: 1, slots: w1.ring(abi.RingId.INJECT).slots });
    expect(snap.rings.find((r) => r.worker === 0 && r.ring === 'tun_rx')?.slots).toBe(w0.ring(abi.RingId.TUN_RX).slots);
    expect(snap.perProtocol.sstp).toEqual({ inPackets: 0n, inBytes: 0n, outPackets: 0n, outBytes: 0n });

    const m = new GatewayMetrics({ sessions: () => [], pools: () => [], dataplane: () => snapshotDataplane([w0, w1]) }, { defaultMetrics: false });
    const p = parse(await m.text());
    expect(p.value('vpngw_dataplane_drops_total', { reason: 'not_icmp_echo' })).toBe(2);
    expect(p.value('vpngw_ring_occupancy_slots', { worker: '1', ring: 'inject' })).toBe(1);
    w0.close();
    w1.close();
  });
});
