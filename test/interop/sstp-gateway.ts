/**
 * The real SSTP gateway for the interop tests, run inside the test process
 * but living in the guest link's namespace: its TUN device and its TLS
 * listener are there, so the qemu guest reaches it on the tap directly, and
 * nothing depends on routing back to the test process's namespace.
 *
 *   guest (sstpc + pppd, or our client)      link.ns (namespace of the tap)
 *   eth <link.guestAddr> ═══ tap ═══════════ <link.hostAddr>:443  TLS listener (native.tcpListener)
 *   ppp0 / TUN <pool address> ◄─ SSTP ─►     TUN <inner.gateway>/24 (the gateway's inner address)
 *
 * The gateway is assembled as `vpngw serve` does it: a config parsed like a
 * file, Gateway, openDataplane (TUN in link.ns), SstpService with its local
 * user store (one user with an NT hash only, one with a cleartext password).
 * Everything it logs at debug level is kept as JSON records, so a test can
 * check what the server saw (crypto binding verified, session up, methods).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/admin/gateway.js';
import { openDataplane, type RunningDataplane } from '../../src/cli/serve.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { snapshotDataplane } from '../../src/metrics/dataplane.js';
import { native } from '../../src/dataplane/native.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { systemClock } from '../../src/util/clock.js';
import { hex } from '../../src/util/decode.js';
import type { AuthMethod } from '../../src/ppp/auth/types.js';
import { ntPasswordHash } from '../../src/ppp/auth/mschapv2-crypto.js';
import { SstpService } from '../../src/sstp/service.js';
import { uniqueIfName, type NetLab, type Subnet } from '../lib/netns.js';
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

export interface InteropGateway {
  service: SstpService;
  gateway: Gateway;
  dataplane: RunningDataplane;
  metrics: GatewayMetrics;
  /** Where the guest connects (link.hostAddr) and the port. */
  address: string;
  port: number;
  /** The gateway's inner address and the inner /24 the pool hands out. */
  inner: { gateway: string; subnet: Subnet };
  /** SHA-256 fingerprint of the certificate (colon-separated hex, as node prints it). */
  fingerprint: string;
  certPem: string;
  /** The certificate file (visible to the guest at the same path). */
  certFile: string;
  /** Every record logged so far (debug and above). */
  logs: LogRecord[];
  /** Records logged from index `from` on whose message matches. */
  logsMatching(re: RegExp, from?: number): LogRecord[];
  close(): Promise<void>;
}

export interface InteropGatewayOptions {
  /** Server methods in order of preference (default: MS-CHAPv2, EAP-MSCHAPv2, PAP). */
  methods?: readonly AuthMethod[];
  /** SSTP Hello interval (config sstp.helloInterval), e.g. '2s'; default the config's. */
  helloInterval?: string;
  /** Also echo the log to stderr (VPNGW_TEST_LOG=1 does too). */
  echoLog?: boolean;
}

/**
 * Start the gateway in `link.ns`, listening on `link.hostAddr:443`, with an
 * inner network of its own from the lab.
 */
export async function startInteropGateway(lab: NetLab, link: GuestLink, opts: InteropGatewayOptions = {}): Promise<InteropGateway> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-sstp-interop-'));
  const logs: LogRecord[] = [];
  const echo = opts.echoLog ?? process.env.VPNGW_TEST_LOG === '1';
  const log: Logger = createLogger({
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
  try {
    const inner = await lab.subnet();
    const users = [
      `  ${INTEROP_USERS.ms.name}: {ntHash: ${hex(ntPasswordHash(INTEROP_USERS.ms.password))}}`,
      `  ${INTEROP_USERS.pap.name}: {password: ${JSON.stringify(INTEROP_USERS.pap.password)}}`,
    ].join('\n');
    writeFileSync(path.join(tmp, 'users.yaml'), `users:\n${users}\n`, { mode: 0o600 });
    const methods = opts.methods ?? ['mschapv2', 'eap-mschapv2', 'pap'];
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: 16
  tun: {name: ${uniqueIfName('tsi')}, netns: ${link.netns}, mtu: 1400}
  gateway: ${inner.host(1)}
  prefixLength: 24
pools:
  default: {ranges: ["${inner.network}/24"]}
users: {file: users.yaml, demoUser: false}
auth: {sstp: [${methods.join(', ')}]}
dns: {primary: ${inner.host(53)}}
sstp: {listen: ${link.hostAddr}, port: 443${opts.helloInterval ? `, helloInterval: ${opts.helloInterval}` : ''}}
limits: {maxSessionsPerUser: 4, maxHalfOpenPerSource: 16, authFailuresPerSourcePerMinute: 100}
admin: {enabled: false}
log: {level: debug}
`,
      { baseDir: tmp },
    );
    const metrics = new GatewayMetrics(undefined, { defaultMetrics: false });
    const dataplane = openDataplane(config, log);
    const gateway = new Gateway({
      config,
      log,
      clock: systemClock,
      metrics,
      dataplane: () => snapshotDataplane(dataplane.engines),
      dataplanes: () => dataplane.engines,
    });
    let service: SstpService;
    try {
      const fd = native.tcpListener({ netns: link.netns, address: link.hostAddr, port: 443, backlog: 64 });
      // The certificate names the address sstpc connects to (it checks the common name).
      service = new SstpService({ listenFd: fd, certNames: [link.hostAddr] });
      await gateway.start([service]);
    } catch (e) {
      dataplane.close();
      throw e;
    }
    const cert = service.certificate!;
    return {
      service,
      gateway,
      dataplane,
      metrics,
      address: link.hostAddr,
      port: 443,
      inner: { gateway: inner.host(1), subnet: inner },
      fingerprint: cert.fingerprint256,
      certPem: cert.certPem,
      certFile: config.sstp.certificate,
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

/** The certificate file's PEM, read back (what the guest will read). */
export function readPem(file: string): string {
  return readFileSync(file, 'utf8');
}
