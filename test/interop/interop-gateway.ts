/**
 * The real gateway for the interop tests (any protocol), run inside the test
 * process but living in the guest link's namespace: its TUN device and its
 * listeners (and, for PPTP, its raw GRE socket) are there, so the qemu guest
 * reaches it on the tap directly, and nothing depends on routing back to the
 * test process's namespace.
 *
 *   guest (real client, or our client)       link.ns (namespace of the tap)
 *   eth <link.guestAddr> ═══ tap ═══════════ <link.hostAddr>  listeners of the protocol servers
 *   ppp0 / TUN <pool address> ◄─ tunnel ─►   TUN <inner.gateway>/24 (the gateway's inner address)
 *
 * The gateway is assembled as `vpngw serve` does it (runGateway of
 * test/lib/gateway-lab.ts): a config parsed like a file, Gateway,
 * openDataplane (TUN in link.ns), the protocol servers the caller makes,
 * the local user store (one user with an NT hash only, one with a
 * cleartext password). Everything it logs at debug level is kept as JSON
 * records, so a test can check what the server saw.
 *
 * sstp-gateway.ts and pptp-gateway.ts add their protocol's config section and
 * server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { Gateway, ProtocolServer } from '../../src/admin/gateway.js';
import type { RunningDataplane } from '../../src/cli/serve.js';
import type { GatewayMetrics } from '../../src/metrics/registry.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { hex } from '../../src/util/decode.js';
import { ntPasswordHash } from '../../src/ppp/auth/mschapv2-crypto.js';
import { uniqueIfName, type NetLab, type Subnet } from '../lib/netns.js';
import { runGateway } from '../lib/gateway-lab.js';
import type { GuestLink } from './guest/guest.js';

/** Users of the interop gateway: `ms` holds only an NT hash (MS-CHAPv2, EAP-MSCHAPv2), `pap` a cleartext password. */
export const INTEROP_USERS = {
  ms: { name: 'ms-user', password: 'Interop MS-CHAPv2 pw 1!' },
  pap: { name: 'pap-user', password: 'interop-pap-pw-2' },
} as const;

/** One record pino wrote (JSON line), as the test reads it. */
export interface LogRecord {
  level: string;
  msg: string;
  time: string;
  [field: string]: unknown;
}

/** A debug-level logger whose JSON records are kept in `logs` (and echoed to stderr with `echo`). */
export function captureLog(echo: boolean): { log: Logger; logs: LogRecord[] } {
  const logs: LogRecord[] = [];
  const log = createLogger({
    level: 'debug',
    destination: {
      write(s: string) {
        for (const line of s.split('\n')) {
          if (!line) continue;
          try {
            logs.push(JSON.parse(line) as LogRecord);
          } catch {
            logs.push({ level: 'raw', msg: line, time: new Date().toISOString() });
          }
          if (echo) process.stderr.write(`[gateway] ${line}\n`);
        }
      },
    },
  });
  return { log, logs };
}

/** What every interop gateway offers, whatever its protocols. */
export interface InteropGatewayBase {
  gateway: Gateway;
  dataplane: RunningDataplane;
  metrics: GatewayMetrics;
  config: Readonly<Config>;
  /** Where the guest connects (link.hostAddr). */
  address: string;
  /** The gateway's inner address and the inner /24 the pool hands out. */
  inner: { gateway: string; subnet: Subnet };
  /** Every record logged so far (debug and above). */
  logs: LogRecord[];
  /** Records logged from index `from` on whose message matches. */
  logsMatching(re: RegExp, from?: number): LogRecord[];
  close(): Promise<void>;
}

export interface GatewayAssembly<S extends ProtocolServer> {
  /** Config sections beyond the common ones (protocol sections, `auth`, `mppe`), YAML. */
  sections: string;
  /** The protocol servers, made once the config is parsed and the data plane is open. */
  servers(config: Readonly<Config>): S[];
  /** Also echo the log to stderr (VPNGW_TEST_LOG=1 does too). */
  echoLog?: boolean;
}

/**
 * Start a gateway in `link.ns` with an inner network of its own from the lab,
 * running the servers `assembly` makes; resolves once they all listen.
 */
export async function startGatewayOnLink<S extends ProtocolServer>(
  lab: NetLab,
  link: GuestLink,
  assembly: GatewayAssembly<S>,
): Promise<InteropGatewayBase & { servers: S[] }> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-interop-'));
  const { log, logs } = captureLog(assembly.echoLog ?? process.env.VPNGW_TEST_LOG === '1');
  try {
    const inner = await lab.subnet();
    const users = [
      `  ${INTEROP_USERS.ms.name}: {ntHash: ${hex(ntPasswordHash(INTEROP_USERS.ms.password))}}`,
      `  ${INTEROP_USERS.pap.name}: {password: ${JSON.stringify(INTEROP_USERS.pap.password)}}`,
    ].join('\n');
    writeFileSync(path.join(tmp, 'users.yaml'), `users:\n${users}\n`, { mode: 0o600 });
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: 16
  tun: {name: ${uniqueIfName('tig')}, netns: ${link.netns}, mtu: 1400}
  gateway: ${inner.host(1)}
  prefixLength: 24
pools:
  default: {ranges: ["${inner.network}/24"]}
users: {file: users.yaml, demoUser: false}
dns: {primary: ${inner.host(53)}}
limits: {maxSessionsPerUser: 4, maxHalfOpenPerSource: 16, authFailuresPerSourcePerMinute: 100}
admin: {enabled: false}
log: {level: debug}
${assembly.sections}
`,
      { baseDir: tmp },
    );
    const { gateway, dataplane, metrics, servers } = await runGateway(config, log, () => assembly.servers(config));
    return {
      servers,
      gateway,
      dataplane,
      metrics,
      config,
      address: link.hostAddr,
      inner: { gateway: inner.host(1), subnet: inner },
      logs,
      logsMatching: (re, from = 0) => logs.slice(from).filter((r) => re.test(r.msg)),
      async close() {
        await gateway.shutdown('test over', 3_000).catch(() => undefined);
        dataplane.close();
        rmSync(tmp, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------- the gateway's view of one session

/** One server session as its log records tell it: what every protocol logs. */
export interface SessionLog {
  id: string;
  records: LogRecord[];
  user: string | undefined;
  method: string | undefined;
  upAddress: string | undefined;
  setupSeconds: number | undefined;
  pppDown: { reason: string; detail: string } | undefined;
}

/**
 * Group the records that carry a `session` field, in order of first
 * appearance, reading what every protocol logs (`<protocol>: PPP
 * authenticated`, `<protocol>: session up`, `PPP: session down ...`);
 * `more` starts a session's protocol fields and `read` reads each record
 * for them.
 */
export function sessionLogs<S extends SessionLog>(
  logs: readonly LogRecord[],
  protocol: 'sstp' | 'pptp',
  more: () => Omit<S, keyof SessionLog>,
  read: (s: S, r: LogRecord) => void,
): S[] {
  const byId = new Map<string, S>();
  for (const r of logs) {
    const id = typeof r.session === 'string' ? r.session : undefined;
    if (!id) continue;
    let s = byId.get(id);
    if (!s) {
      const base: SessionLog = { id, records: [], user: undefined, method: undefined, upAddress: undefined, setupSeconds: undefined, pppDown: undefined };
      s = { ...base, ...more() } as S;
      byId.set(id, s);
    }
    s.records.push(r);
    if (r.msg === `${protocol}: PPP authenticated`) {
      s.user = String(r.user);
      s.method = String(r.method);
    }
    if (r.msg === `${protocol}: session up`) {
      s.upAddress = String(r.address);
      s.setupSeconds = Number(r.setupSeconds);
    }
    if (/^PPP: session down/.test(r.msg)) s.pppDown = { reason: String(r.reason), detail: String(r.detail) };
    read(s, r);
  }
  return [...byId.values()];
}
