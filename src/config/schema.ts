/**
 * The configuration schema: the single source of the configuration types
 * (`Config = z.infer<...>`) and of the embedded default (parsing `{}` gives
 * the working default). Every leaf states what it expects, so a validation
 * issue reads `sstp.port: expected an integer 1..65535, got "abc"`.
 *
 * Durations are a number of seconds or a string with a unit (`500ms`, `30s`,
 * `5m`, `1h`); the parsed value is milliseconds. Relative paths are resolved
 * against the directory of the config file (see load.ts). Objects are strict:
 * an unknown key is an issue (a typo must not silently fall back to a
 * default).
 *
 * Cross-field rules (pools inside the TUN network, admin token when not on
 * loopback, ...) are in {@link crossCheck}, which reports at the path of the
 * field to fix.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { AuthMethod } from '../ppp/auth/types.js';
import { DEFAULT_RING_SLOTS } from '../dataplane/layout.js';
import * as abi from '../../assembly/abi.js';
import {
  formatIpv4,
  intervalSize,
  isLoopback,
  networkOf,
  overlaps,
  parseIpv4,
  parsePoolEntry,
  contains,
  normalize,
  type Ipv4Interval,
} from './ipv4.js';
import type { ConfigIssue } from '../util/errors.js';

// ---------------------------------------------------------------------------
// Our choices (defaults and bounds; none of these come from a spec)

/** Admin/metrics HTTP port: plain HTTP, loopback by default (unassigned by IANA, not a common exporter's). */
export const DEFAULT_ADMIN_PORT = 9477;
export const DEFAULT_STATE_DIR = '/var/lib/vpngw';
export const DEFAULT_TUN_NAME = 'vpngw0';
/** Leaves room for SSTP/PPTP/L2TP+ESP overhead inside a 1500-byte path. */
export const DEFAULT_TUN_MTU = 1400;
/**
 * Packets the gateway's TUN device queues for the reader (Linux's default
 * for TUN is 500: half a millisecond at 1 Mpps, so a reader thread that loses
 * its core for that long drops packets: measured in the sstp bench at 100
 * kpps). 2048 holds about 2 ms at 1 Mpps, 20 ms at 100 kpps.
 */
export const DEFAULT_TUN_TX_QUEUE_LEN = 2048;
export const DEFAULT_GATEWAY = '198.18.128.1';
export const DEFAULT_PREFIX_LENGTH = 24;
export const DEFAULT_POOL = '198.18.128.0/24';
export const MIN_ADMIN_TOKEN_LENGTH = 16;
export const MAX_WORKERS = 64;

// From the specs: IPv4 minimum reassembly size (RFC 791) bounds the MTU from
// below; the data-plane slot bounds it from above.
export const MIN_MTU = 576;
export const MAX_MTU = abi.SLOT_MAX_PAYLOAD;

export const PROTOCOLS = ['sstp', 'pptp', 'l2tp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const AUTH_METHODS = ['eap-mschapv2', 'mschapv2', 'chap-md5', 'pap'] as const satisfies readonly AuthMethod[];
/** Methods that derive MPPE keys (RFC 3079 section 3; EAP-MSCHAPv2 exports the same keys). */
export const MPPE_METHODS: readonly AuthMethod[] = ['mschapv2', 'eap-mschapv2'];

/**
 * Per-protocol method defaults, in order of preference. SSTP: what Windows
 * offers first (EAP-MSCHAPv2, then MS-CHAPv2). PPTP and L2TP: MS-CHAPv2 first
 * (Windows' default for both; PPTP needs its MPPE keys).
 */
export const DEFAULT_AUTH: Readonly<Record<Protocol, readonly AuthMethod[]>> = {
  sstp: ['eap-mschapv2', 'mschapv2'],
  pptp: ['mschapv2', 'eap-mschapv2'],
  l2tp: ['mschapv2', 'eap-mschapv2'],
};

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const SSTP_HASHES = ['sha256', 'sha1'] as const;
export const SSTP_TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export const MPPE_STRENGTHS = [128, 56, 40] as const;

/** Config name of each ring -> data-plane ring id. */
export const RING_NAMES = {
  tunRx: abi.RingId.TUN_RX,
  tunTx: abi.RingId.TUN_TX,
  greRx: abi.RingId.GRE_RX,
  greTx: abi.RingId.GRE_TX,
  espRx: abi.RingId.ESP_RX,
  espTx: abi.RingId.ESP_TX,
  ctrl: abi.RingId.CTRL,
  inject: abi.RingId.INJECT,
  streamIn: abi.RingId.STREAM_IN,
  streamOut: abi.RingId.STREAM_OUT,
} as const;
export type RingName = keyof typeof RING_NAMES;

// ---------------------------------------------------------------------------
// Leaf helpers: each carries the human description of what it expects.

/** How a value looks in a message: strings quoted, containers by kind. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

const expecting = (what: string) => ({ error: (iss: { input?: unknown }) => `expected ${what}, got ${showValue(iss.input)}` });

function int(lo: number, hi: number, what = `an integer ${lo}..${hi}`) {
  const e = expecting(what);
  return z.int(e).min(lo, e).max(hi, e);
}

const port = () => int(1, 65535);

const bool = () => z.boolean(expecting('true or false'));

function text(what = 'a non-empty string') {
  const e = expecting(what);
  return z.string(e).min(1, e);
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, expecting(`one of ${values.join(', ')}`));
}

function ipv4(what = 'an IPv4 address like 198.18.128.1') {
  return z.string(expecting(what)).refine((s) => parseIpv4(s) !== undefined, expecting(what));
}

/** Listen address: an IPv4 or IPv6 literal. */
function listenAddress() {
  const what = 'an IP address to listen on, like 0.0.0.0, 127.0.0.1 or ::';
  return z.string(expecting(what)).refine((s) => z.ipv4().safeParse(s).success || z.ipv6().safeParse(s).success, expecting(what));
}

/** An IPv4 or IPv6 CIDR block (a single address is /32 or /128). */
function cidrBlock() {
  const what = 'a CIDR block like 10.0.0.0/24 or fd00::/64';
  return z.string(expecting(what)).refine((s) => z.cidrv4().safeParse(s).success || z.cidrv6().safeParse(s).success, expecting(what));
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parse a duration to milliseconds: seconds as a number, or `<n>ms|s|m|h`. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(v);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

/** A duration between `lo` and `hi` milliseconds; parses to milliseconds. */
function duration(loMs: number, hiMs: number) {
  const fmt = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);
  const what = `a duration ${fmt(loMs)}..${fmt(hiMs)} (seconds, or a string like "500ms", "30s", "5m")`;
  return z
    .union([z.number(), z.string()], expecting(what))
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined || ms < loMs || ms > hiMs) {
        ctx.issues.push({ code: 'custom', input: v, message: `expected ${what}, got ${showValue(v)}` });
        return z.NEVER;
      }
      return ms;
    });
}

/** A filesystem path (resolved against the config file's directory by the loader). */
const filePath = () => text('a file path');

function list<T extends z.ZodType>(item: T, what: string, min = 1) {
  const e = expecting(what);
  return z.array(item, e).min(min, e);
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

function ringSlots(allowZero: boolean) {
  const what = allowZero ? '0 or a power of two 2..65536' : 'a power of two 2..65536';
  const e = expecting(what);
  return z.int(e).refine((n) => (allowZero && n === 0) || (isPow2(n) && n >= 2 && n <= 65536), e);
}

/** A mapping with exactly these keys (unknown keys are issues). */
function section<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, expecting('a mapping'));
}

const authList = () => list(oneOf(AUTH_METHODS), `a list of authentication methods (${AUTH_METHODS.join(', ')})`);

// ---------------------------------------------------------------------------
// Sections

const dataplaneSchema = section({
  /** Data-plane workers; default: one per core. */
  workers: int(1, MAX_WORKERS).default(() => Math.min(MAX_WORKERS, Math.max(1, os.availableParallelism()))),
  maxSessionsPerWorker: int(1, 65536).default(1024),
  rings: section({
    tunRx: ringSlots(false).default(DEFAULT_RING_SLOTS[abi.RingId.TUN_RX]),
    tunTx: ringSlots(false).default(DEFAULT_RING_SLOTS[abi.RingId.TUN_TX]),
    greRx: ringSlots(true).default(DEFAULT_RING_SLOTS[abi.RingId.GRE_RX]),
    greTx: ringSlots(true).default(DEFAULT_RING_SLOTS[abi.RingId.GRE_TX]),
    espRx: ringSlots(true).default(DEFAULT_RING_SLOTS[abi.RingId.ESP_RX]),
    espTx: ringSlots(true).default(DEFAULT_RING_SLOTS[abi.RingId.ESP_TX]),
    ctrl: ringSlots(false).default(DEFAULT_RING_SLOTS[abi.RingId.CTRL]),
    inject: ringSlots(false).default(DEFAULT_RING_SLOTS[abi.RingId.INJECT]),
    streamIn: ringSlots(false).default(DEFAULT_RING_SLOTS[abi.RingId.STREAM_IN]),
    streamOut: ringSlots(false).default(DEFAULT_RING_SLOTS[abi.RingId.STREAM_OUT]),
  }).prefault({}),
  tun: section({
    name: z
      .string(expecting('an interface name of 1..15 characters [A-Za-z0-9_.-]'))
      .regex(/^[A-Za-z0-9_.-]{1,15}$/, expecting('an interface name of 1..15 characters [A-Za-z0-9_.-]'))
      .default(DEFAULT_TUN_NAME),
    mtu: int(MIN_MTU, MAX_MTU).default(DEFAULT_TUN_MTU),
    /** The device's queue towards the gateway's reader, in packets (txqueuelen). */
    txQueueLen: int(16, 1 << 16).default(DEFAULT_TUN_TX_QUEUE_LEN),
    /**
     * Create and configure the TUN device inside this network namespace (a
     * name under /var/run/netns, or a path) instead of the gateway's own:
     * isolates the inner network from the host's routing. Default: none.
     */
    netns: text('a network namespace name or path').optional(),
  }).prefault({}),
  /** The gateway's own inner address (on the TUN device); clients use it as their peer address. */
  gateway: ipv4().default(DEFAULT_GATEWAY),
  /** Prefix length of the inner network routed to the TUN device; pools must lie inside it. */
  prefixLength: int(8, 30).default(DEFAULT_PREFIX_LENGTH),
});

const poolSchema = section({
  /** CIDR blocks (host addresses only) or inclusive `first-last` ranges. */
  ranges: list(
    z.string(expecting('a CIDR block or a first-last range')).refine((s) => typeof parsePoolEntry(s) !== 'string', {
      error: (iss) => parsePoolEntry(String(iss.input)) as string,
    }),
    'a list of CIDR blocks or first-last ranges',
  ),
  // No IPv6 prefix: IPV6CP gives each session its link-local address only
  // (interface identifiers); global IPv6 per session (RA / DHCPv6-PD) is not
  // implemented, so a key for it would be a promise the gateway does not keep.
});

const poolNameRe = /^[A-Za-z0-9_-]{1,32}$/;

const usersSchema = section({
  /** The local user store (format owned by src/aaa); default `<stateDir>/users.yaml`. */
  file: filePath().optional(),
  /**
   * On first start (users file missing), create user `demo` with a generated
   * password, printed once on stderr and never logged.
   */
  demoUser: bool().default(true),
});

const authOverride = () => authList().optional();
const authSchema = section({
  /** Server methods in order of preference, for protocols without an override. */
  methods: authList().optional(),
  sstp: authOverride(),
  pptp: authOverride(),
  l2tp: authOverride(),
});

const mppeSchema = section({
  /** Encryption of PPP payloads (PPTP; SSTP and L2TP/IPsec are encrypted by TLS and ESP). */
  policy: oneOf(['deny', 'allow', 'require']).default('allow'),
  strengths: list(
    z.union([z.literal(128), z.literal(56), z.literal(40)], expecting('one of 128, 56, 40')),
    'a list of key strengths (128, 56, 40)',
  ).default([128]),
  /**
   * RFC 3078 stateless mode (key change every packet). true: the gateway asks
   * for stateless and a client that wants stateful gets it by Nak'ing (what
   * Windows and pppd expect); false: stateful only (plain pppd refuses to
   * connect; pppd with `mppe-stateful` does).
   */
  stateless: bool().default(true),
});

const dnsSchema = section({
  primary: ipv4().optional(),
  secondary: ipv4().optional(),
});

const sstpSchema = section({
  enabled: bool().default(true),
  listen: listenAddress().default('0.0.0.0'),
  port: port().default(443),
  pool: text('a pool name').default('default'),
  /** PEM files; default: a self-signed pair generated in stateDir on first start. */
  certificate: filePath().optional(),
  key: filePath().optional(),
  /** Crypto-binding hash algorithms offered (MS-SSTP 2.2.7), in order of preference. */
  hashes: list(oneOf(SSTP_HASHES), 'a list of hash algorithms (sha256, sha1)').default(['sha256', 'sha1']),
  /** Echo (Hello) interval on an idle connection (MS-SSTP 3.1.2: recommended 60 s). */
  helloInterval: duration(1_000, 3_600_000).default(60_000),
  /** From TCP accept to Call Connected (MS-SSTP 3.3.2 Negotiation timer: 60 s). */
  negotiationTimeout: duration(1_000, 600_000).default(60_000),
  /** Every connection opens with a PROXY protocol header, v2 or v1 (behind an L4 load balancer); its source is the peer. */
  proxyProtocol: bool().default(false),
  /**
   * With proxyProtocol: the addresses (CIDR blocks) the PROXY header is
   * accepted from, i.e. the load balancers (the spec, section 2: receivers
   * SHOULD accept it only from trusted proxies). Connections from elsewhere
   * are closed before a byte is read. Empty: any source (then firewall the port).
   */
  proxyTrusted: list(cidrBlock(), 'a list of CIDR blocks like 10.0.0.0/24 or fd00::/64', 0).default([]),
  /**
   * Highest TLS version offered (the lowest is always TLS 1.2). TLS 1.3 by
   * default; 'TLSv1.2' works around clients that race the server's first
   * bytes after a TLS 1.3 handshake (sstpc 1.0.x on a fast link, see README).
   */
  tlsMaxVersion: oneOf(SSTP_TLS_VERSIONS).default('TLSv1.3'),
});

const pptpSchema = section({
  enabled: bool().default(false),
  listen: listenAddress().default('0.0.0.0'),
  port: port().default(1723),
  pool: text('a pool name').default('default'),
  allowPap: bool().default(false),
  requireMppe: bool().default(true),
  /** Echo-Request interval on the control connection (RFC 2637 section 2.8: 60 s). */
  echoInterval: duration(1_000, 3_600_000).default(60_000),
  /** How long an Echo-Request waits for its Echo-Reply before the control connection is closed (RFC 2637 3.1.4: 60 s). */
  echoTimeout: duration(1_000, 3_600_000).default(60_000),
  /**
   * LCP Echo-Request interval inside the tunnel (0 disables): finds a client
   * that vanished (no GRE, TCP half-dead) sooner than the control echo.
   */
  lcpEchoInterval: duration(0, 3_600_000).default(30_000),
  /** Unanswered LCP Echo-Requests in a row that take the session down. */
  lcpEchoFailures: int(1, 100).default(3),
});

const l2tpSchema = section({
  enabled: bool().default(false),
  /** IKEv1 pre-shared key (never logged). Required when enabled. */
  psk: text('a pre-shared key').optional(),
  ikePort: port().default(500),
  natTPort: port().default(4500),
  l2tpPort: port().default(1701),
  pool: text('a pool name').default('default'),
});

const limitsSchema = section({
  /** Total sessions; default: the data plane's capacity (workers x maxSessionsPerWorker). */
  maxSessions: int(1, 16_777_216).optional(),
  maxSessionsPerUser: int(1, 65536).default(4),
  /**
   * Connections from one source address that have not finished their handshake,
   * counted per data-plane worker thread (each has its own listeners).
   */
  maxHalfOpenPerSource: int(1, 65536).default(16),
  /** Transport handshake (TLS, PPTP control, IKE main mode) to established. */
  handshakeTimeout: duration(1_000, 600_000).default(30_000),
  authFailuresPerSourcePerMinute: int(1, 100_000).default(10),
});

const logSchema = section({
  level: oneOf(LOG_LEVELS).default('info'),
});

const adminSchema = section({
  enabled: bool().default(true),
  listen: listenAddress().default('127.0.0.1'),
  port: port().default(DEFAULT_ADMIN_PORT),
  /** Bearer token; required when listen is not a loopback address. */
  token: text('a bearer token').optional(),
  metrics: bool().default(true),
});

export const configSchema = z
  .strictObject({
    stateDir: filePath().default(DEFAULT_STATE_DIR),
    dataplane: dataplaneSchema.prefault({}),
    pools: z
      .record(z.string().regex(poolNameRe, expecting('a pool name of 1..32 characters [A-Za-z0-9_-]')), poolSchema, expecting('a mapping of pool names to pools'))
      .default({ default: { ranges: [DEFAULT_POOL] } }),
    users: usersSchema.prefault({}),
    auth: authSchema.prefault({}),
    mppe: mppeSchema.prefault({}),
    dns: dnsSchema.prefault({}),
    nbns: dnsSchema.prefault({}),
    sstp: sstpSchema.prefault({}),
    pptp: pptpSchema.prefault({}),
    l2tp: l2tpSchema.prefault({}),
    limits: limitsSchema.prefault({}),
    log: logSchema.prefault({}),
    admin: adminSchema.prefault({}),
  }, expecting('a mapping (the top level of the config)'))
  .transform((c) => ({
    ...c,
    users: { ...c.users, file: c.users.file ?? path.join(c.stateDir, 'users.yaml') },
    auth: {
      methods: c.auth.methods,
      sstp: c.auth.sstp ?? c.auth.methods ?? [...DEFAULT_AUTH.sstp],
      pptp: c.auth.pptp ?? c.auth.methods ?? [...DEFAULT_AUTH.pptp],
      l2tp: c.auth.l2tp ?? c.auth.methods ?? [...DEFAULT_AUTH.l2tp],
    },
    sstp: {
      ...c.sstp,
      certificate: c.sstp.certificate ?? path.join(c.stateDir, 'sstp-cert.pem'),
      key: c.sstp.key ?? path.join(c.stateDir, 'sstp-key.pem'),
    },
    limits: { ...c.limits, maxSessions: c.limits.maxSessions ?? c.dataplane.workers * c.dataplane.maxSessionsPerWorker },
  }));

/** The validated configuration (deeply frozen once loaded). */
export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type DataplaneConfig = Config['dataplane'];
export type PoolConfig = Config['pools'][string];
export type SstpConfig = Config['sstp'];
export type PptpConfig = Config['pptp'];
export type L2tpConfig = Config['l2tp'];
export type LimitsConfig = Config['limits'];
export type AdminConfig = Config['admin'];
export type AuthConfig = Config['auth'];
export type MppeConfig = Config['mppe'];

// ---------------------------------------------------------------------------
// Derived views

/** The inner network routed to the TUN device. */
export function tunNetwork(c: Pick<Config, 'dataplane'>): Ipv4Interval {
  return networkOf(parseIpv4(c.dataplane.gateway)!, c.dataplane.prefixLength);
}

/** A pool's addresses as intervals (the gateway address excluded). */
export function poolIntervals(c: Pick<Config, 'dataplane'>, pool: PoolConfig): Ipv4Interval[] {
  const entries = pool.ranges.map(parsePoolEntry).filter((i): i is Ipv4Interval => typeof i !== 'string');
  return normalize(entries, [parseIpv4(c.dataplane.gateway)!]);
}

export function poolSize(c: Pick<Config, 'dataplane'>, pool: PoolConfig): number {
  return poolIntervals(c, pool).reduce((n, i) => n + intervalSize(i), 0);
}

/** Data-plane ring sizes by ring id, for LayoutOptions.ringSlots. */
export function ringSlotsById(c: Pick<Config, 'dataplane'>): Partial<Record<abi.RingId, number>> {
  const out: Partial<Record<abi.RingId, number>> = {};
  for (const [name, id] of Object.entries(RING_NAMES)) out[id] = c.dataplane.rings[name as RingName];
  return out;
}

/** Protocols with `enabled: true`, in a stable order. */
export function enabledProtocols(c: Pick<Config, Protocol>): Protocol[] {
  return PROTOCOLS.filter((p) => c[p].enabled);
}

// ---------------------------------------------------------------------------
// Cross-field rules, each reported at the field to fix.

export function crossCheck(c: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (p: string, message: string) => issues.push({ path: p, message });
  const net = tunNetwork(c);
  const netText = `${formatIpv4(net.first)}/${c.dataplane.prefixLength}`;
  const gw = parseIpv4(c.dataplane.gateway)!;
  if (gw === net.first || gw === net.last) add('dataplane.gateway', `${c.dataplane.gateway} is the network or broadcast address of ${netText}`);

  const seen: { name: string; i: Ipv4Interval; at: string }[] = [];
  for (const [name, pool] of Object.entries(c.pools)) {
    pool.ranges.forEach((r, k) => {
      const i = parsePoolEntry(r);
      if (typeof i === 'string') return;
      const at = `pools.${name}.ranges[${k}]`;
      if (!contains(net, i)) add(at, `${r} is outside the TUN network ${netText} (dataplane.gateway/prefixLength)`);
      const clash = seen.find((s) => overlaps(s.i, i));
      if (clash) add(at, `${r} overlaps ${clash.at}`);
      seen.push({ name, i, at });
    });
    if (poolSize(c, pool) === 0) add(`pools.${name}.ranges`, 'the pool has no usable address');
  }

  for (const p of PROTOCOLS) {
    if (!(c[p].pool in c.pools)) {
      const names = Object.keys(c.pools);
      add(`${p}.pool`, `no pool named ${JSON.stringify(c[p].pool)} (pools: ${names.length ? names.join(', ') : 'none'})`);
    }
  }

  if (c.l2tp.enabled && !c.l2tp.psk) add('l2tp.psk', 'expected a pre-shared key when l2tp.enabled is true, got nothing');

  if (c.pptp.requireMppe && c.mppe.policy === 'deny') add('pptp.requireMppe', 'requires MPPE, but mppe.policy is deny');
  if (c.pptp.requireMppe && !c.auth.pptp.some((m) => MPPE_METHODS.includes(m))) {
    add('auth.pptp', `pptp.requireMppe needs a method that derives MPPE keys (${MPPE_METHODS.join(', ')})`);
  }
  if (!c.pptp.allowPap && c.auth.pptp.includes('pap')) add('auth.pptp', 'lists pap, but pptp.allowPap is false');

  // TCP listeners must not collide (same port on the same or a wildcard address).
  const tcp: { at: string; listen: string; port: number; on: boolean }[] = [
    { at: 'sstp.port', listen: c.sstp.listen, port: c.sstp.port, on: c.sstp.enabled },
    { at: 'pptp.port', listen: c.pptp.listen, port: c.pptp.port, on: c.pptp.enabled },
    { at: 'admin.port', listen: c.admin.listen, port: c.admin.port, on: c.admin.enabled },
  ];
  const wildcard = (a: string) => a === '0.0.0.0' || a === '::';
  for (let i = 0; i < tcp.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = tcp[i]!;
      const b = tcp[j]!;
      if (a.on && b.on && a.port === b.port && (a.listen === b.listen || wildcard(a.listen) || wildcard(b.listen))) {
        add(a.at, `TCP port ${a.port} is already used by ${b.at}`);
      }
    }
  }
  const udp = [c.l2tp.ikePort, c.l2tp.natTPort, c.l2tp.l2tpPort];
  if (c.l2tp.enabled && new Set(udp).size !== udp.length) add('l2tp', 'ikePort, natTPort and l2tpPort must differ');

  if (c.admin.enabled && !isLoopback(c.admin.listen) && !c.admin.token) {
    add('admin.token', `expected a bearer token: admin.listen ${c.admin.listen} is not a loopback address`);
  }
  if (c.admin.token !== undefined && c.admin.token.length < MIN_ADMIN_TOKEN_LENGTH) {
    add('admin.token', `expected at least ${MIN_ADMIN_TOKEN_LENGTH} characters, got ${c.admin.token.length}`);
  }

  const capacity = c.dataplane.workers * c.dataplane.maxSessionsPerWorker;
  if (c.limits.maxSessions > capacity) {
    add('limits.maxSessions', `${c.limits.maxSessions} exceeds the data plane's capacity ${capacity} (dataplane.workers x maxSessionsPerWorker)`);
  }
  if (c.limits.maxSessionsPerUser > c.limits.maxSessions) add('limits.maxSessionsPerUser', `exceeds limits.maxSessions (${c.limits.maxSessions})`);
  return issues;
}
