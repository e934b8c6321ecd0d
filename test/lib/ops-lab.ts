/**
 * A gateway as operations see it, run inside the test process (root):
 *
 *   ns A (server)                                   ns B (clients)
 *   TUN <gw 198.18.128.1/24>   veth a <S.1/24> ──── veth b <S.2/24>
 *   SSTP listener S.1:443 (native.tcpListener in A)
 *   PPTP listener S.1:1723 and raw GRE socket in A (optional)
 *
 *   test process (its own namespace): admin API on 127.0.0.1:<free port>
 *   (/metrics, /sessions), reachable by a Prometheus started on loopback.
 *
 * The gateway is the real one (config parsed like a file, Gateway,
 * openDataplane, SstpService and PptpService, the shared local-store verifier, the admin
 * server with the gateway's GatewayMetrics). Every log line is captured at
 * the configured level. The verifier is wrapped to record what the secrets
 * of each MS-CHAPv2 exchange were (NT-Response and the MPPE master keys it
 * yielded), so a test can derive every key the session held and grep the
 * logs for them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/admin/gateway.js';
import { startAdminServer, type AdminServer } from '../../src/admin/server.js';
import { openDataplane, type RunningDataplane } from '../../src/cli/serve.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { snapshotDataplane } from '../../src/metrics/dataplane.js';
import { native } from '../../src/dataplane/native.js';
import { openGatewayVerifier } from '../../src/aaa/gateway-verifier.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { systemClock } from '../../src/util/clock.js';
import type { AuthMethod, MppeMasterKeys, Verifier } from '../../src/ppp/auth/types.js';
import type { LevelWithSilent } from 'pino';
import { SstpService } from '../../src/sstp/service.js';
import { PptpService } from '../../src/pptp/service.js';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from '../../src/dataplane/engine.js';
import { connectSstp } from '../../src/client/sstp.js';
import { connectPptp } from '../../src/client/pptp.js';
import { NetLab, uniqueIfName, type Netns, type Subnet } from './netns.js';

export const OPS_GATEWAY = '198.18.128.1';

/** One MS-CHAPv2 verification the gateway made (copies: the callers may zero theirs). */
export interface RecordedMsChapV2 {
  username: string;
  ntResponse: Uint8Array;
  /** The server's master keys (its orientation); undefined when refused. */
  mppe: MppeMasterKeys | undefined;
}

export interface OpsLab {
  lab: NetLab;
  a: Netns;
  b: Netns;
  link: Subnet;
  serverAddress: string;
  sstpPort: number;
  sstp: SstpService;
  fingerprint: string;
  /** Present when the lab runs PPTP too. */
  pptp: PptpService | undefined;
  pptpPort: number;
  gateway: Gateway;
  dataplane: RunningDataplane;
  metrics: GatewayMetrics;
  admin: AdminServer;
  adminToken: string | undefined;
  /** Every log line the gateway wrote, parsed (in order). */
  logs: Record<string, unknown>[];
  /** The same, as written. */
  rawLogs: string[];
  log: Logger;
  msChapV2: RecordedMsChapV2[];
  tmp: string;
  usersFile: string;
  close(): Promise<void>;
}

export interface OpsLabOptions {
  /** name -> password (plain; the store keeps NT hashes where the methods allow). */
  users: Record<string, string>;
  /** auth.sstp, in order of preference. */
  sstpMethods?: readonly string[];
  /** Run the PPTP server too (auth.pptp: MS-CHAPv2, EAP-MSCHAPv2; MPPE required). */
  pptp?: boolean;
  logLevel?: LevelWithSilent;
  adminToken?: string;
  extraConfig?: string;
  maxSessions?: number;
}

/** A real vpngw logger (createLogger: redaction and all) whose every line is kept, as written and parsed. */
export function captureLogger(level: LevelWithSilent): { log: Logger; raw: string[]; parsed: Record<string, unknown>[] } {
  const raw: string[] = [];
  const parsed: Record<string, unknown>[] = [];
  const log = createLogger({
    level,
    destination: {
      write(s: string) {
        for (const line of s.split('\n')) {
          if (!line) continue;
          raw.push(line);
          parsed.push(JSON.parse(line) as Record<string, unknown>);
        }
      },
    },
  });
  return { log, raw, parsed };
}

/** A /24 from the lab that is not the inner network. */
async function labSubnet(lab: NetLab): Promise<Subnet> {
  for (;;) {
    const s = await lab.subnet();
    if (s.network !== '198.18.128.0') return s;
  }
}

function recordingVerifier(inner: Verifier, record: RecordedMsChapV2[]): Verifier {
  return {
    pap: (ctx, u, pw) => inner.pap(ctx, u, pw),
    chapMd5: (ctx, u, id, ch, r) => inner.chapMd5(ctx, u, id, ch, r),
    async msChapV2(ctx, u, ac, pc, nt) {
      const entry: RecordedMsChapV2 = { username: u, ntResponse: nt.slice(), mppe: undefined };
      record.push(entry);
      const o = await inner.msChapV2(ctx, u, ac, pc, nt);
      if (o.ok) entry.mppe = { masterSendKey: o.mppe.masterSendKey.slice(), masterReceiveKey: o.mppe.masterReceiveKey.slice() };
      return o;
    },
  };
}

export async function startOpsLab(opts: OpsLabOptions): Promise<OpsLab> {
  const lab = new NetLab();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-ops-lab-'));
  const { log, raw: rawLogs, parsed: logs } = captureLogger(opts.logLevel ?? 'debug');
  let dataplane: RunningDataplane | undefined;
  let gateway: Gateway | undefined;
  let admin: AdminServer | undefined;
  try {
    const a = await lab.netns('ops-srv');
    const b = await lab.netns('ops-cli');
    const link = await labSubnet(lab);
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });

    const usersFile = path.join(tmp, 'users.yaml');
    const users = Object.entries(opts.users)
      .map(([u, p]) => `  ${u}: {password: ${JSON.stringify(p)}}`)
      .join('\n');
    writeFileSync(usersFile, `users:\n${users}\n`, { mode: 0o600 });
    const tunName = uniqueIfName('tops');
    const config = parseConfig(
      `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: ${opts.maxSessions ?? 64}
  tun: {name: ${tunName}, netns: ${a.name}, mtu: 1400}
users: {file: users.yaml, demoUser: false}
auth: {sstp: [${(opts.sstpMethods ?? ['mschapv2', 'eap-mschapv2', 'pap']).join(', ')}]}
sstp: {listen: ${link.host(1)}, port: 443}
pptp: {enabled: ${opts.pptp ? 'true' : 'false'}, listen: ${link.host(1)}, port: 1723}
limits: {maxSessionsPerUser: 32, maxHalfOpenPerSource: 64, authFailuresPerSourcePerMinute: 1000}
log: {level: ${opts.logLevel ?? 'debug'}}
admin: {enabled: true, listen: 127.0.0.1, port: 9477${opts.adminToken !== undefined ? `, token: ${JSON.stringify(opts.adminToken)}` : ''}}
${opts.extraConfig ?? ''}`,
      { baseDir: tmp },
    );
    const metrics = new GatewayMetrics(undefined, { version: 'ops-test' });
    const msChapV2: RecordedMsChapV2[] = [];
    const users0 = await openGatewayVerifier({ usersFile: config.users.file, clock: systemClock, log, failuresPerMinute: config.limits.authFailuresPerSourcePerMinute });
    dataplane = openDataplane(config, log);
    const dp = dataplane;
    gateway = new Gateway({
      config,
      log,
      clock: systemClock,
      metrics,
      verifier: recordingVerifier(users0.verifier, msChapV2),
      dataplane: () => snapshotDataplane(dp.engines),
      dataplanes: () => dp.engines,
    });
    admin = await startAdminServer({
      listen: '127.0.0.1',
      port: 0,
      token: config.admin.token,
      metrics,
      gateway: gateway.control,
      log,
    });
    const fd = native.tcpListener({ netns: a.name, address: link.host(1), port: 443, backlog: 1024 });
    const sstp = new SstpService({ listenFd: fd, certNames: [link.host(1)] });
    const pptp = opts.pptp ? new PptpService({ netns: a.name }) : undefined;
    await gateway.start(pptp ? [sstp, pptp] : [sstp]);
    const gw = gateway;
    const ad = admin;
    return {
      lab,
      a,
      b,
      link,
      serverAddress: link.host(1),
      sstpPort: 443,
      sstp,
      fingerprint: sstp.certificate!.fingerprint256,
      pptp,
      pptpPort: 1723,
      gateway: gw,
      dataplane: dp,
      metrics,
      admin: ad,
      adminToken: config.admin.token,
      logs,
      rawLogs,
      log,
      msChapV2,
      tmp,
      usersFile,
      async close() {
        await gw.shutdown('test over', 3_000).catch(() => undefined);
        await ad.close();
        dp.close();
        await lab.cleanup();
        rmSync(tmp, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await gateway?.shutdown('start failed', 0).catch(() => undefined);
    await admin?.close();
    dataplane?.close();
    await lab.cleanup().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------- tunnels

/** A client tunnel of either protocol, from ns B, without a TUN device: IP by sendIp, echo replies counted. */
export interface LabTunnel {
  protocol: 'sstp' | 'pptp';
  user: string;
  ipv4: string;
  /** The client's data-plane session index (the ICMP echo identifier the tests use). */
  sessionIndex: number;
  sendIp(packet: Uint8Array): boolean;
  /** ICMP echo replies that came back through the tunnel. */
  echoReplies(): number;
  /** ICMP echo requests that came down the tunnel (a flow started on the gateway's side). */
  echoRequests(): number;
  /** How the client saw the tunnel end (resolves when it is gone). */
  ended: Promise<{ initiator: 'local' | 'peer' | 'failure'; detail: string }>;
  close(): Promise<void>;
}

/** Where LabClients connect to (an OpsLab, or a `vpngw serve` process in a namespace). */
export interface ClientTarget {
  serverAddress: string;
  sstpPort: number;
  pptpPort: number;
  /** SHA-256 fingerprint of the SSTP certificate. */
  fingerprint: string;
  /** The clients' namespace. */
  b: { name: string };
}

/**
 * Client engines: SSTP tunnels share one (replies told apart by session
 * index), each PPTP tunnel has its own (with its own raw GRE socket in ns B).
 */
export class LabClients {
  private sstpEngine: DataPlane | undefined;
  private readonly engines = new Set<DataPlane>();
  private readonly replies = new Map<DataPlane, Map<number, number>>();
  private readonly requests = new Map<DataPlane, Map<number, number>>();
  private readonly drain: ReturnType<typeof setInterval>;
  readonly tunnels: LabTunnel[] = [];

  private readonly maxSstp: number;
  private readonly log: Logger | undefined;

  constructor(
    private readonly L: ClientTarget,
    opts: { maxSstp?: number; log?: Logger } = {},
  ) {
    this.maxSstp = opts.maxSstp ?? 64;
    this.log = opts.log;
    this.drain = setInterval(() => {
      for (const dp of this.engines) {
        const m = this.replies.get(dp)!;
        const q = this.requests.get(dp)!;
        try {
          dp.ring(abi.RingId.TUN_TX).drain((p, meta) => {
            if (p[9] === 1 && p[20] === 0) m.set(meta.session, (m.get(meta.session) ?? 0) + 1);
            if (p[9] === 1 && p[20] === 8) q.set(meta.session, (q.get(meta.session) ?? 0) + 1);
          });
        } catch {
          // A PPTP client's own engine closed with it.
          this.engines.delete(dp);
        }
      }
    }, 5);
  }

  private track(dp: DataPlane): Map<number, number> {
    this.engines.add(dp);
    if (!this.requests.has(dp)) this.requests.set(dp, new Map());
    let m = this.replies.get(dp);
    if (!m) this.replies.set(dp, (m = new Map()));
    return m;
  }

  private requestsOf(dp: DataPlane, idx: number): number {
    return this.requests.get(dp)?.get(idx) ?? 0;
  }

  async open(protocol: 'sstp' | 'pptp', user: string, password: string, extra: { methods?: readonly AuthMethod[] } = {}): Promise<LabTunnel> {
    const L = this.L;
    if (protocol === 'sstp') {
      this.sstpEngine ??= new DataPlane({ maxSessions: this.maxSstp, streamBuffers: true });
      const dp = this.sstpEngine;
      const m = this.track(dp);
      const c = await connectSstp({
        host: L.serverAddress,
        port: L.sstpPort,
        username: user,
        password,
        fingerprint: L.fingerprint,
        netns: L.b.name,
        tun: false,
        dataplane: dp,
        connectTimeoutMs: 60_000,
        ...(extra.methods ? { methods: extra.methods } : {}),
        ...(this.log ? { log: this.log } : {}),
      });
      // The shared engine reuses the indexes of closed tunnels.
      m.set(c.sessionIndex, 0);
      this.requests.get(dp)!.set(c.sessionIndex, 0);
      const t: LabTunnel = {
        protocol,
        user,
        ipv4: c.ipv4,
        sessionIndex: c.sessionIndex,
        sendIp: (p) => c.sendIp(p),
        echoReplies: () => m.get(c.sessionIndex) ?? 0,
      echoRequests: () => this.requestsOf(dp, c.sessionIndex),
        ended: c.ended.then((e) => ({ initiator: e.initiator, detail: e.call ? `call ${e.call.reason} (${e.call.initiator})` : (e.error?.message ?? '') })),
        close: async () => {
          await c.close();
        },
      };
      this.tunnels.push(t);
      return t;
    }
    const c = await connectPptp({
      host: L.serverAddress,
      port: L.pptpPort,
      username: user,
      password,
      netns: L.b.name,
      tun: false,
      connectTimeoutMs: 60_000,
      ...(extra.methods ? { methods: extra.methods } : {}),
      ...(this.log ? { log: this.log } : {}),
    });
    const dp = c.dataplane;
    const m = this.track(dp);
    void c.ended.then(() => {
      // Its own engine closes with it.
      this.engines.delete(dp);
      this.replies.delete(dp);
      this.requests.delete(dp);
    });
    const t: LabTunnel = {
      protocol,
      user,
      ipv4: c.ipv4,
      sessionIndex: c.sessionIndex,
      sendIp: (p) => c.sendIp(p),
      echoReplies: () => m.get(c.sessionIndex) ?? 0,
      echoRequests: () => this.requestsOf(dp, c.sessionIndex),
      ended: c.ended.then((e) => ({ initiator: e.initiator, detail: `control ${e.control ?? '-'}, call ${e.call ?? '-'}` })),
      close: async () => {
        await c.close();
      },
    };
    this.tunnels.push(t);
    return t;
  }

  /** Close every tunnel still open, then the shared engine. */
  async close(): Promise<void> {
    await Promise.all(this.tunnels.splice(0).map((t) => t.close().catch(() => undefined)));
    clearInterval(this.drain);
    this.sstpEngine?.close();
    this.sstpEngine = undefined;
  }
}
