/**
 * An SSTP gateway in one network namespace and room for clients in
 * another, run inside the test process:
 *
 *   ns A (server)                                 ns B (clients)
 *   TUN <gw 198.18.128.1/24>  veth a <S.1/24> ──── veth b <S.2/24>
 *   lo <behind.1/32>            TLS listener S.1:port (native.tcpListener in A)
 *
 * The gateway is the real one: config (parsed like a file), Gateway,
 * openDataplane (TUN in ns A), SstpService with its local user store; only
 * the listening socket is made in ns A by the native addon and handed over.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/admin/gateway.js';
import { openDataplane, type RunningDataplane } from '../../src/cli/serve.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { snapshotDataplane } from '../../src/metrics/dataplane.js';
import { native } from '../../src/dataplane/native.js';
import { createLogger, silentLogger, type Logger } from '../../src/util/log.js';
import { systemClock } from '../../src/util/clock.js';
import { SstpService, type SstpServiceOptions } from '../../src/sstp/service.js';
import { NetLab, uniqueIfName, type Netns, type Subnet } from './netns.js';

export const GATEWAY = '198.18.128.1';
export const USERS = { alice: 'correct horse battery', bob: 'bob-pw', carol: 'carol-pw' };

export interface SstpLab {
  lab: NetLab;
  a: Netns;
  b: Netns;
  link: Subnet;
  /** A host address behind the gateway (on lo in ns A). */
  behind: Subnet;
  serverAddress: string;
  port: number;
  service: SstpService;
  gateway: Gateway;
  dataplane: RunningDataplane;
  metrics: GatewayMetrics;
  fingerprint: string;
  tmp: string;
  log: Logger;
  close(): Promise<void>;
}

/** A /24 from the lab that is not the inner network. */
async function labSubnet(lab: NetLab): Promise<Subnet> {
  for (;;) {
    const s = await lab.subnet();
    if (s.network !== '198.18.128.0') return s;
  }
}

export async function startSstpLab(opts: { extraConfig?: string; service?: SstpServiceOptions; maxSessions?: number } = {}): Promise<SstpLab> {
  const lab = new NetLab();
  const log = process.env.VPNGW_TEST_LOG ? createLogger({ level: 'debug', destination: process.stderr }) : silentLogger;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-sstp-lab-'));
  try {
    const a = await lab.netns('sstp-srv');
    const b = await lab.netns('sstp-cli');
    const link = await labSubnet(lab);
    const behind = await labSubnet(lab);
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
    // (no dummy module on every kernel: the loopback device holds the address just as well)
    await a.ip('addr', 'add', `${behind.host(1)}/32`, 'dev', 'lo');

    const users = Object.entries(USERS)
      .map(([u, p]) => `  ${u}: {password: ${JSON.stringify(p)}}`)
      .join('\n');
    writeFileSync(path.join(tmp, 'users.yaml'), `users:\n${users}\n`, { mode: 0o600 });
    const tunName = uniqueIfName('tsv');
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: ${opts.maxSessions ?? 256}
  tun: {name: ${tunName}, netns: ${a.name}, mtu: 1400}
users: {file: users.yaml, demoUser: false}
auth: {sstp: [mschapv2, eap-mschapv2, pap, chap-md5]}
dns: {primary: 198.18.128.53}
sstp: {listen: ${link.host(1)}, port: 443}
limits: {maxSessionsPerUser: 200, maxHalfOpenPerSource: 256, authFailuresPerSourcePerMinute: 1000}
admin: {enabled: false}
${opts.extraConfig ?? ''}`,
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
    const fd = native.tcpListener({ netns: a.name, address: link.host(1), port: 443, backlog: 1024 });
    const service = new SstpService({ listenFd: fd, certNames: [link.host(1)], ...opts.service });
    await gateway.start([service]);
    const fingerprint = service.certificate!.fingerprint256;
    return {
      lab,
      a,
      b,
      link,
      behind,
      serverAddress: link.host(1),
      port: 443,
      service,
      gateway,
      dataplane,
      metrics,
      fingerprint,
      tmp,
      log,
      async close() {
        await gateway.shutdown('test over', 3_000).catch(() => undefined);
        dataplane.close();
        await lab.cleanup();
        rmSync(tmp, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await lab.cleanup().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Poll `cond` every 20 ms until true or `ms` passed. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
