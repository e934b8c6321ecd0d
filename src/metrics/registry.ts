/**
 * The gateway's Prometheus metrics, in their own prom-client Registry (never
 * the global default one, so tests and embedders get isolated instances).
 *
 * Naming follows the Prometheus conventions: `vpngw_` prefix, base units
 * (seconds, bytes), `_total` on counters, no per-user or per-session labels
 * (unbounded cardinality); every label's values come from a fixed set.
 *
 * Two kinds of metric:
 *   - events the control plane sees (authentication results, session set-up
 *     time, TLS handshake failures, keepalive timeouts): the control plane
 *     calls the methods of {@link GatewayMetrics};
 *   - state and counters owned elsewhere (sessions by state, pool usage, and
 *     the data plane's u64 counters in WASM memory): read from a
 *     {@link MetricsSource} at scrape time in `collect()`. The data path never
 *     touches a prom-client object.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuthFailureReason, AuthMethod } from '../ppp/auth/types.js';
import { PROTOCOLS, type Protocol } from '../config/schema.js';
import { SESSION_PHASES, type SessionPhase } from '../admin/types.js';
import { PROXY_HEADER_FAILURES } from '../net/proxy-socket.js';

export const METRIC_PREFIX = 'vpngw_';

/** Per tunnel protocol data-plane traffic, as the data plane counts it. */
export interface ProtocolTraffic {
  /** From clients into the gateway (uplink). */
  inPackets: bigint;
  inBytes: bigint;
  /** From the gateway to clients (downlink). */
  outPackets: bigint;
  outBytes: bigint;
}

export interface RingOccupancy {
  worker: number;
  /** Lower-case ring name (`tun_rx`, `ctrl`, ...). */
  ring: string;
  /** Slots holding unconsumed packets. */
  occupancy: number;
  /** Slots in the ring. */
  slots: number;
}

/** A snapshot of the data plane's counters (summed over workers) and rings. */
export interface DataplaneSnapshot {
  /** Drops by reason (lower-case abi.Drop names). */
  drops: Record<string, bigint>;
  perProtocol: Partial<Record<Protocol, ProtocolTraffic>>;
  rings: RingOccupancy[];
}

export interface PoolUsage {
  pool: string;
  /** Addresses the pool can hand out. */
  size: number;
  /** Addresses leased now. */
  used: number;
  /** Refused allocations since start, by reason (exhausted, conflict, invalid). */
  failures?: Readonly<Record<string, number>>;
}

export interface SessionCount {
  protocol: Protocol;
  state: SessionPhase;
  count: number;
}

/** What the metrics read at scrape time. Every method must be cheap and must not throw. */
export interface MetricsSource {
  sessions(): SessionCount[];
  pools(): PoolUsage[];
  /** Undefined while the data plane is not running. */
  dataplane(): DataplaneSnapshot | undefined;
}

export const EMPTY_SOURCE: MetricsSource = { sessions: () => [], pools: () => [], dataplane: () => undefined };

export type AuthOutcome = 'success' | AuthFailureReason;

/** Why a TLS handshake failed (bounded label set). */
export const TLS_FAILURE_REASONS = ['timeout', 'protocol_version', 'no_shared_cipher', 'certificate', 'reset', 'other'] as const;
export type TlsFailureReason = (typeof TLS_FAILURE_REASONS)[number];
/** Why a connection behind sstp.proxyProtocol was closed: its PROXY header (or none), or a source outside sstp.proxyTrusted. */
export const PROXY_REFUSAL_REASONS = [...PROXY_HEADER_FAILURES, 'untrusted'] as const;
export type ProxyRefusalReason = (typeof PROXY_REFUSAL_REASONS)[number];

/** Session set-up: transport accept to PPP network phase up. Our choice of buckets, in seconds. */
export const SETUP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60];

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (CPU, memory, fds, GC, event-loop lag). Default true. */
  defaultMetrics?: boolean;
  /** Reported in vpngw_build_info. */
  version?: string;
}

/**
 * prom-client default metrics that break the naming conventions (gauges
 * named `_total`; `promtool check metrics` flags them). Each is the sum of a
 * conventional gauge prom-client exposes too (`nodejs_active_handles` etc.,
 * by type), so nothing is lost by leaving them out.
 */
export const NONCONVENTIONAL_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

const num = (v: bigint | number): number => (typeof v === 'bigint' ? Number(v) : v);

/** The events a protocol server reports (a worker thread forwards them to main's GatewayMetrics). */
export type TunnelMetrics = Pick<GatewayMetrics, 'authResult' | 'sessionSetup' | 'tlsHandshakeFailure' | 'proxyRefused' | 'keepaliveTimeout'>;

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly authResults: Counter<'method' | 'outcome'>;
  private readonly setupSeconds: Histogram<'protocol'>;
  private readonly tlsFailures: Counter<'reason'>;
  private readonly proxyRefusals: Counter<'reason'>;
  private readonly keepaliveTimeouts: Counter<'protocol'>;

  constructor(
    private source: MetricsSource = EMPTY_SOURCE,
    opts: MetricsOptions = {},
  ) {
    const registers = [this.registry];
    const self = this;

    new Gauge({
      name: `${METRIC_PREFIX}build_info`,
      help: 'Always 1; the version label says which vpngw is running.',
      labelNames: ['version'],
      registers,
    }).set({ version: opts.version ?? 'unknown' }, 1);

    new Gauge({
      name: `${METRIC_PREFIX}sessions`,
      help: 'Sessions by tunnel protocol and phase.',
      labelNames: ['protocol', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of PROTOCOLS) for (const s of SESSION_PHASES) this.set({ protocol: p, state: s }, 0);
        for (const c of self.source.sessions()) this.inc({ protocol: c.protocol, state: c.state }, c.count);
      },
    });

    this.setupSeconds = new Histogram({
      name: `${METRIC_PREFIX}session_setup_duration_seconds`,
      help: 'Time from transport connect to the PPP network phase up, by tunnel protocol.',
      labelNames: ['protocol'],
      buckets: SETUP_BUCKETS,
      registers,
    });
    for (const p of PROTOCOLS) this.setupSeconds.zero({ protocol: p });

    this.authResults = new Counter({
      name: `${METRIC_PREFIX}auth_results_total`,
      help: 'Authentication attempts by method and outcome (success, or the failure reason).',
      labelNames: ['method', 'outcome'],
      registers,
    });

    const traffic = (name: string, help: string, pick: (t: ProtocolTraffic, dir: 'in' | 'out') => bigint) =>
      new Counter({
        name,
        help,
        labelNames: ['protocol', 'direction'],
        registers,
        collect() {
          const snap = self.source.dataplane();
          this.reset();
          for (const p of PROTOCOLS) {
            const t = snap?.perProtocol[p];
            for (const dir of ['in', 'out'] as const) this.inc({ protocol: p, direction: dir }, t ? num(pick(t, dir)) : 0);
          }
        },
      });
    traffic(`${METRIC_PREFIX}tunnel_bytes_total`, 'IP bytes carried by tunnels; direction in = from clients, out = to clients.', (t, d) =>
      d === 'in' ? t.inBytes : t.outBytes,
    );
    traffic(`${METRIC_PREFIX}tunnel_packets_total`, 'IP packets carried by tunnels; direction in = from clients, out = to clients.', (t, d) =>
      d === 'in' ? t.inPackets : t.outPackets,
    );

    new Counter({
      name: `${METRIC_PREFIX}dataplane_drops_total`,
      help: 'Packets the data plane dropped, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        const snap = self.source.dataplane();
        this.reset();
        for (const [reason, n] of Object.entries(snap?.drops ?? {})) this.inc({ reason }, num(n));
      },
    });

    const ringGauge = (name: string, help: string, pick: (r: RingOccupancy) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['worker', 'ring'],
        registers,
        collect() {
          this.reset();
          for (const r of self.source.dataplane()?.rings ?? []) this.set({ worker: String(r.worker), ring: r.ring }, pick(r));
        },
      });
    ringGauge(`${METRIC_PREFIX}ring_occupancy_slots`, 'Slots holding unconsumed packets, by data-plane worker and ring.', (r) => r.occupancy);
    ringGauge(`${METRIC_PREFIX}ring_capacity_slots`, 'Slots in each ring, by data-plane worker and ring.', (r) => r.slots);

    this.tlsFailures = new Counter({
      name: `${METRIC_PREFIX}tls_handshake_failures_total`,
      help: 'TLS handshakes (SSTP) that failed, by reason.',
      labelNames: ['reason'],
      registers,
    });
    for (const r of TLS_FAILURE_REASONS) this.tlsFailures.inc({ reason: r }, 0);

    this.proxyRefusals = new Counter({
      name: `${METRIC_PREFIX}proxy_protocol_refused_total`,
      help: 'Connections closed behind sstp.proxyProtocol, by reason: no valid PROXY header (signature, version, length, invalid, timeout, closed) or a source outside sstp.proxyTrusted (untrusted).',
      labelNames: ['reason'],
      registers,
    });
    for (const r of PROXY_REFUSAL_REASONS) this.proxyRefusals.inc({ reason: r }, 0);

    const poolGauge = (name: string, help: string, pick: (p: PoolUsage) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'],
        registers,
        collect() {
          this.reset();
          for (const p of self.source.pools()) this.set({ pool: p.pool }, pick(p));
        },
      });
    poolGauge(`${METRIC_PREFIX}pool_addresses`, 'Addresses an address pool can hand out.', (p) => p.size);
    poolGauge(`${METRIC_PREFIX}pool_addresses_used`, 'Addresses of a pool leased to sessions now.', (p) => p.used);
    new Counter({
      name: `${METRIC_PREFIX}pool_allocation_failures_total`,
      help: 'Address requests a pool refused, by reason: exhausted (no free address), conflict (static address in use), invalid.',
      labelNames: ['pool', 'reason'],
      registers,
      collect() {
        // The pools count; a scrape copies their totals.
        this.reset();
        for (const p of self.source.pools()) for (const [reason, n] of Object.entries(p.failures ?? {})) this.inc({ pool: p.pool, reason }, n);
      },
    });

    this.keepaliveTimeouts = new Counter({
      name: `${METRIC_PREFIX}keepalive_timeouts_total`,
      help: 'Sessions closed because the peer stopped answering keepalives (SSTP Echo, PPTP Echo, LCP Echo, L2TP Hello, DPD).',
      labelNames: ['protocol'],
      registers,
    });
    for (const p of PROTOCOLS) this.keepaliveTimeouts.inc({ protocol: p }, 0);

    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
      for (const name of NONCONVENTIONAL_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    }
  }

  /** Replace the source (the gateway wires itself in once it exists). */
  setSource(source: MetricsSource): void {
    this.source = source;
  }

  authResult(method: AuthMethod, outcome: AuthOutcome): void {
    this.authResults.inc({ method, outcome });
  }

  sessionSetup(protocol: Protocol, seconds: number): void {
    this.setupSeconds.observe({ protocol }, seconds);
  }

  tlsHandshakeFailure(reason: TlsFailureReason): void {
    this.tlsFailures.inc({ reason });
  }

  proxyRefused(reason: ProxyRefusalReason): void {
    this.proxyRefusals.inc({ reason });
  }

  keepaliveTimeout(protocol: Protocol): void {
    this.keepaliveTimeouts.inc({ protocol });
  }

  /** The exposition text (what GET /metrics serves). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
