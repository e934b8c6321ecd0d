/**
 * A PPTP gateway in one network namespace and room for clients in others,
 * run inside the test process:
 *
 *   ns A (server)                                     ns B (clients)
 *   TUN <gw 198.18.128.1/24>  veth a <S.1/24> ──────── veth b <S.2/24>
 *   lo <behind.1/32>   TCP 1723 on 0.0.0.0 and the raw GRE socket, both in A
 *
 * The gateway is the real one: config (parsed like a file), Gateway,
 * openDataplane (TUN in ns A), PptpService with its local user store; the
 * service opens its listener and raw GRE socket in ns A (`netns` option).
 * Tests add namespaces (NAT, relay) with {@link PptpLab.link}.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/admin/gateway.js';
import { openDataplane, type RunningDataplane } from '../../src/cli/serve.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { snapshotDataplane } from '../../src/metrics/dataplane.js';
import { createLogger, silentLogger, type Logger } from '../../src/util/log.js';
import { systemClock } from '../../src/util/clock.js';
import { PptpService, type PptpServiceOptions } from '../../src/pptp/service.js';
import { native } from '../../src/dataplane/native.js';
import { expect } from 'vitest';
import { NetLab, uniqueIfName, type Netns, type Subnet } from './netns.js';

export const GATEWAY = '198.18.128.1';
export const USERS = { alice: 'correct horse battery', bob: 'bob-pw', carol: 'carol-pw' };

export interface PptpLab {
  lab: NetLab;
  a: Netns;
  b: Netns;
  /** The A-B link: A is host(1), B host(2). */
  link: Subnet;
  /** A host address behind the gateway (on lo in ns A). */
  behind: Subnet;
  serverAddress: string;
  service: PptpService;
  gateway: Gateway;
  dataplane: RunningDataplane;
  metrics: GatewayMetrics;
  tmp: string;
  log: Logger;
  /** A new link between two namespaces on a fresh /24 (x: host(1), y: host(2)), both up. */
  link2(x: Netns, y: Netns): Promise<{ subnet: Subnet; x: string; y: string }>;
  close(): Promise<void>;
}

/** A /24 from the lab that is not the inner network. */
export async function labSubnet(lab: NetLab): Promise<Subnet> {
  for (;;) {
    const s = await lab.subnet();
    if (s.network !== '198.18.128.0') return s;
  }
}

export async function startPptpLab(
  opts: { extraConfig?: string; /** More keys of the `pptp` section, e.g. `lcpEchoInterval: 1s`. */ pptp?: string; service?: PptpServiceOptions; maxSessions?: number } = {},
): Promise<PptpLab> {
  const lab = new NetLab();
  const log = process.env.VPNGW_TEST_LOG ? createLogger({ level: 'debug', destination: process.stderr }) : silentLogger;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-pptp-lab-'));
  try {
    const a = await lab.netns('pptp-srv');
    const b = await lab.netns('pptp-cli');
    const link = await labSubnet(lab);
    const behind = await labSubnet(lab);
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
    await a.ip('addr', 'add', `${behind.host(1)}/32`, 'dev', 'lo');

    const users = Object.entries(USERS)
      .map(([u, p]) => `  ${u}: {password: ${JSON.stringify(p)}}`)
      .join('\n');
    writeFileSync(path.join(tmp, 'users.yaml'), `users:\n${users}\n`, { mode: 0o600 });
    const tunName = uniqueIfName('tpv');
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: ${opts.maxSessions ?? 64}
  tun: {name: ${tunName}, netns: ${a.name}, mtu: 1400}
users: {file: users.yaml, demoUser: false}
dns: {primary: 198.18.128.53}
sstp: {enabled: false}
pptp: {enabled: true, listen: 0.0.0.0, port: 1723${opts.pptp ? `, ${opts.pptp}` : ''}}
limits: {maxSessionsPerUser: 16, maxHalfOpenPerSource: 64, authFailuresPerSourcePerMinute: 1000}
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
    const service = new PptpService({ netns: a.name, ...opts.service });
    try {
      await gateway.start([service]);
    } catch (e) {
      dataplane.close();
      throw e;
    }
    return {
      lab,
      a,
      b,
      link,
      behind,
      serverAddress: link.host(1),
      service,
      gateway,
      dataplane,
      metrics,
      tmp,
      log,
      async link2(x, y) {
        const subnet = await labSubnet(lab);
        const v = await lab.veth(x, y, { aAddr: subnet.cidr(1), bAddr: subnet.cidr(2) });
        return { subnet, x: v.a, y: v.b };
      },
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

/**
 * `size` bytes over TCP through the tunnel: uplink (the client's namespace ->
 * a host behind the gateway), then downlink; SHA-256 checked both ways (with
 * vitest's expect). Returns the times.
 */
export async function bulkTransfer(L: PptpLab, client: Netns, size: number, port: number): Promise<{ upMs: number; downMs: number }> {
  const data = randomBytes(size);
  const want = createHash('sha256').update(data).digest('hex');
  const lfd = native.tcpListener({ netns: L.a.name, address: L.behind.host(1), port });
  const received: { hash: string; bytes: number }[] = [];
  const server = net.createServer((s) => {
    const h = createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.on('end', () => {
      received.push({ hash: h.digest('hex'), bytes });
      s.end();
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen({ fd: lfd }, r));
  const lfd2 = native.tcpListener({ netns: L.a.name, address: L.behind.host(1), port: port + 1 });
  const sender = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end(data);
  });
  await new Promise<void>((r) => sender.listen({ fd: lfd2 }, r));
  try {
    const sock = new net.Socket({ fd: native.tcpSocket({ netns: client.name }) });
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(port, L.behind.host(1), resolve);
    });
    sock.end(data);
    sock.resume();
    await waitUntil(() => received.length > 0, 240_000, 'the uplink transfer');
    const upMs = performance.now() - t0;
    sock.destroy();
    expect(received[0]!.bytes).toBe(size);
    expect(received[0]!.hash).toBe(want);

    const down = new net.Socket({ fd: native.tcpSocket({ netns: client.name }) });
    const t1 = performance.now();
    const h = createHash('sha256');
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      down.once('error', reject);
      down.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      down.on('end', resolve);
      down.connect(port + 1, L.behind.host(1));
    });
    const downMs = performance.now() - t1;
    down.destroy();
    expect(bytes).toBe(size);
    expect(h.digest('hex')).toBe(want);
    return { upMs, downMs };
  } finally {
    server.close();
    sender.close();
  }
}

