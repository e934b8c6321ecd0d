/**
 * A real gateway in one network namespace and room for clients in another,
 * run inside the test process; what the SSTP and PPTP labs (sstp-lab.ts,
 * pptp-lab.ts) share:
 *
 *   ns A (server)                                   ns B (clients)
 *   TUN <gw 198.18.128.1/24>  veth a <S.1/24> ──── veth b <S.2/24>
 *   lo <behind.1/32>          the protocol's listeners (and GRE socket) in A
 *
 * The gateway is assembled as `vpngw serve` does it: config parsed like a
 * file, Gateway, openDataplane (TUN in ns A), the protocol servers the lab
 * makes, the local user store. Also: the lab's helpers for tests (skip
 * without the facility, bulk TCP through a tunnel).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { Gateway, type ProtocolServer } from '../../src/admin/gateway.js';
import { openDataplane, type RunningDataplane } from '../../src/cli/serve.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { snapshotDataplane } from '../../src/metrics/dataplane.js';
import { native } from '../../src/dataplane/native.js';
import type { Verifier } from '../../src/ppp/auth/types.js';
import { createLogger, silentLogger, type Logger } from '../../src/util/log.js';
import { systemClock } from '../../src/util/clock.js';
import { NetLab, netnsSupport, reportSkip, uniqueIfName, type Facility, type Netns, type Subnet } from './netns.js';
import { waitUntil } from './wait.js';

/** The gateway's inner address in every lab (pool 198.18.128.0/24). */
export const GATEWAY = '198.18.128.1';
export const USERS = { alice: 'correct horse battery', bob: 'bob-pw', carol: 'carol-pw' };

/**
 * Can the tunnel labs run here: network namespaces (root) and the native
 * addon built. Reports a skip under `what` when not.
 */
export async function labSupport(what: string): Promise<Facility> {
  const facility = await netnsSupport();
  const built =
    facility.ok &&
    (() => {
      try {
        native.abi();
        return true;
      } catch {
        return false;
      }
    })();
  const f = facility.ok && !built ? { ok: false, reason: 'the native addon is not built (npm ci)' } : facility;
  reportSkip(what, f);
  return f;
}

/** The test log: debug lines on stderr with VPNGW_TEST_LOG set, nothing otherwise. */
export function testLog(): Logger {
  return process.env.VPNGW_TEST_LOG ? createLogger({ level: 'debug', destination: process.stderr }) : silentLogger;
}

/** A /24 from the lab that is not the inner network. */
export async function labSubnet(lab: NetLab): Promise<Subnet> {
  for (;;) {
    const s = await lab.subnet();
    if (s.network !== '198.18.128.0') return s;
  }
}

/** A local user store file (mode 0600): name -> cleartext password. */
export function writeUsersFile(file: string, users: Readonly<Record<string, string>>): void {
  const lines = Object.entries(users)
    .map(([u, p]) => `  ${u}: {password: ${JSON.stringify(p)}}`)
    .join('\n');
  writeFileSync(file, `users:\n${lines}\n`, { mode: 0o600 });
}

export interface RunningGateway {
  gateway: Gateway;
  dataplane: RunningDataplane;
  metrics: GatewayMetrics;
}

/**
 * A gateway as `vpngw serve` assembles it (Gateway over openDataplane),
 * started with the servers `servers` makes; `beforeStart` runs between
 * (an admin server, say). The data plane is closed again when they cannot
 * start.
 */
export async function runGateway<S extends ProtocolServer>(
  config: Readonly<Config>,
  log: Logger,
  servers: () => S[],
  opts: { metrics?: GatewayMetrics; verifier?: Verifier; beforeStart?(g: RunningGateway): Promise<void> } = {},
): Promise<RunningGateway & { servers: S[] }> {
  const metrics = opts.metrics ?? new GatewayMetrics(undefined, { defaultMetrics: false });
  const dataplane = openDataplane(config, log);
  const gateway = new Gateway({
    config,
    log,
    clock: systemClock,
    metrics,
    ...(opts.verifier ? { verifier: opts.verifier } : {}),
    dataplane: () => snapshotDataplane(dataplane.engines),
    dataplanes: () => dataplane.engines,
  });
  try {
    await opts.beforeStart?.({ gateway, dataplane, metrics });
    const made = servers();
    await gateway.start(made);
    return { gateway, dataplane, metrics, servers: made };
  } catch (e) {
    await gateway.shutdown('start failed', 0).catch(() => undefined);
    dataplane.close();
    throw e;
  }
}

export interface TunnelLab<S extends ProtocolServer> extends RunningGateway {
  lab: NetLab;
  a: Netns;
  b: Netns;
  /** The A-B link: A is host(1), B host(2). */
  link: Subnet;
  /** A host address behind the gateway (on lo in ns A). */
  behind: Subnet;
  serverAddress: string;
  servers: S[];
  tmp: string;
  log: Logger;
  /** A new link between two namespaces on a fresh /24 (x: host(1), y: host(2)), both up. */
  link2(x: Netns, y: Netns): Promise<{ subnet: Subnet; x: string; y: string }>;
  close(): Promise<void>;
}

export interface TunnelLabOptions<S extends ProtocolServer> {
  /** Names the namespaces (`<name>-srv`, `<name>-cli`) and the temporary directory. */
  name: string;
  /** Prefix of the gateway's TUN device name. */
  tunPrefix: string;
  maxSessions: number;
  /** Config sections after the common ones (protocols, auth, limits, ...), YAML; `link` is the A-B link. */
  sections(link: Subnet): string;
  /** The protocol servers, in ns A. */
  servers(a: Netns, link: Subnet): S[];
}

/** Start a gateway in a fresh namespace A, with B for clients (see the file comment). */
export async function startTunnelLab<S extends ProtocolServer>(opts: TunnelLabOptions<S>): Promise<TunnelLab<S>> {
  const lab = new NetLab();
  const log = testLog();
  const tmp = mkdtempSync(path.join(os.tmpdir(), `vpngw-${opts.name}-lab-`));
  try {
    const a = await lab.netns(`${opts.name}-srv`);
    const b = await lab.netns(`${opts.name}-cli`);
    const link = await labSubnet(lab);
    const behind = await labSubnet(lab);
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
    // (no dummy module on every kernel: the loopback device holds the address just as well)
    await a.ip('addr', 'add', `${behind.host(1)}/32`, 'dev', 'lo');
    writeUsersFile(path.join(tmp, 'users.yaml'), USERS);
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: ${opts.maxSessions}
  tun: {name: ${uniqueIfName(opts.tunPrefix)}, netns: ${a.name}, mtu: 1400}
users: {file: users.yaml, demoUser: false}
dns: {primary: 198.18.128.53}
admin: {enabled: false}
${opts.sections(link)}`,
      { baseDir: tmp },
    );
    const g = await runGateway(config, log, () => opts.servers(a, link));
    return {
      ...g,
      lab,
      a,
      b,
      link,
      behind,
      serverAddress: link.host(1),
      tmp,
      log,
      async link2(x, y) {
        const subnet = await labSubnet(lab);
        const v = await lab.veth(x, y, { aAddr: subnet.cidr(1), bAddr: subnet.cidr(2) });
        return { subnet, x: v.a, y: v.b };
      },
      async close() {
        await g.gateway.shutdown('test over', 3_000).catch(() => undefined);
        g.dataplane.close();
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

/**
 * `size` bytes over TCP through the tunnel: uplink (the client's namespace ->
 * a host behind the gateway, within `uplinkMs`), then downlink; SHA-256
 * checked both ways (with vitest's expect). Returns the times.
 */
export async function bulkTransfer(
  L: { a: Netns; behind: Subnet },
  client: Netns,
  size: number,
  port: number,
  uplinkMs = 240_000,
): Promise<{ upMs: number; downMs: number }> {
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
    await waitUntil(() => received.length > 0, uplinkMs, 'the uplink transfer');
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
