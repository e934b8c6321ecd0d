/**
 * Our SSTP client (connectSstp) as a program run inside the qemu guest, next
 * to sstpc: the same kernel, the same network path, a TUN device of the
 * guest. Compiled for the guest by sstp-guest-build.ts. One process runs
 * several connections in turn (node starts slowly under TCG), each with its
 * own data-plane engine and TUN device.
 *
 * Environment:
 *   SSTP_SERVER, SSTP_PORT (443), SSTP_PING (an address to ping through the
 *   tunnel: the gateway's inner one), SSTP_GO_DIR (a directory shared with the
 *   host), SSTP_LOG (pino level for stderr, default warn), and SSTP_RUNS, a
 *   JSON array of {@link GuestClientRun}.
 *
 * For each run, on stdout, in the markers the interop test reads
 * (`@@ <name> <event> <data>`):
 *   @@ <name> start
 *   @@ <name> connected <ms> <json: ipv4, gateway, dns, mtu, hashProtocol, setupMs>
 *   @@ <name> pinged <ping status> <ms>     (ping's own output follows)
 *   @@ <name> bigpinged <ping status>        (1400-octet packets, unfragmented)
 *   @@ <name> held <seconds>                 (after idling, for keepalives)
 *   ... waits until the host creates SSTP_GO_DIR/go-<name> ...
 *   @@ <name> closed <ms> <json: initiator, call, ppp>
 * or, when the connection fails:
 *   @@ <name> failed <ms> <json: code, message>
 * The exit status is the number of runs whose outcome differs from `expect`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { connectSstp } from '../../src/client/sstp.js';
import type { LevelWithSilent } from 'pino';
import { createLogger, type Logger } from '../../src/util/log.js';
import type { AuthMethod } from '../../src/ppp/auth/types.js';

export interface GuestClientRun {
  name: string;
  method: AuthMethod;
  user: string;
  password: string;
  /** Pinned SHA-256 fingerprint of the server certificate. */
  fingerprint: string;
  tun: string;
  /** 'connect' (default): connect, ping, close; 'fail': the connection must be refused. */
  expect?: 'connect' | 'fail';
  /** Seconds the tunnel stays idle after the pings, for keepalives to happen. */
  holdSeconds?: number;
}

// Our choices: bounds for a slow emulated guest on shared cores, never speed claims.
const CONNECT_TIMEOUT_MS = 90_000;
const GO_WAIT_MS = 120_000;

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

function mark(name: string, event: string, ...data: unknown[]): void {
  const rest = data.map((d) => (typeof d === 'string' || typeof d === 'number' ? String(d) : JSON.stringify(d))).join(' ');
  process.stdout.write(`@@ ${name} ${event}${rest ? ` ${rest}` : ''}\n`);
}

/** ICMP payload of the large pings: 1372 + 8 + 20 = 1400, the tunnel MTU. */
const BIG_PING_PAYLOAD = 1372;

/** `ping` through the TUN device, without blocking the event loop the data plane runs on. */
function ping(dev: string, address: string, extra: readonly string[] = ['-c', '3']): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile('ping', [...extra, '-i', '0.3', '-W', '3', '-I', dev, address], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve({ status: err ? (typeof code === 'number' ? code : 1) : 0, output: stdout + stderr });
    });
  });
}

async function waitForGo(dir: string, name: string): Promise<boolean> {
  const file = path.join(dir, `go-${name}`);
  const until = Date.now() + GO_WAIT_MS;
  while (!existsSync(file)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** One run; true when the outcome is the expected one. */
async function runOne(r: GuestClientRun, log: Logger): Promise<boolean> {
  mark(r.name, 'start');
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  let client;
  try {
    client = await connectSstp({
      host: env('SSTP_SERVER'),
      port: Number(process.env.SSTP_PORT ?? 443),
      username: r.user,
      password: r.password,
      fingerprint: r.fingerprint,
      methods: [r.method],
      tun: { name: r.tun },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      log: log.child({ run: r.name }),
    });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    mark(r.name, 'failed', since(), { code: err.code ?? null, message: err.message ?? String(e) });
    return r.expect === 'fail';
  }
  mark(r.name, 'connected', since(), {
    ipv4: client.ipv4,
    gateway: client.gateway,
    dns: client.dns,
    mtu: client.mtu,
    hashProtocol: client.hashProtocol,
    setupMs: Math.round(client.setupMs),
  });
  const p0 = performance.now();
  const p = await ping(r.tun, env('SSTP_PING'));
  mark(r.name, 'pinged', p.status, Math.round(performance.now() - p0));
  process.stdout.write(p.output.endsWith('\n') ? p.output : `${p.output}\n`);
  const big = await ping(r.tun, env('SSTP_PING'), ['-c', '2', '-s', String(BIG_PING_PAYLOAD), '-M', 'do']);
  mark(r.name, 'bigpinged', big.status);
  process.stdout.write(big.output.endsWith('\n') ? big.output : `${big.output}\n`);
  await new Promise((res) => setTimeout(res, (r.holdSeconds ?? 0) * 1000));
  mark(r.name, 'held', r.holdSeconds ?? 0);
  const go = await waitForGo(env('SSTP_GO_DIR'), r.name);
  const c0 = performance.now();
  const end = await client.close(go ? 'guest client done' : 'no go from the host');
  mark(r.name, 'closed', Math.round(performance.now() - c0), { initiator: end.initiator, call: end.call?.reason ?? null, ppp: end.ppp?.reason ?? null, go });
  return r.expect !== 'fail' && p.status === 0 && big.status === 0 && go;
}

async function main(): Promise<number> {
  const runs = JSON.parse(env('SSTP_RUNS')) as GuestClientRun[];
  const log = createLogger({
    name: 'vpngw-guest-client',
    level: (process.env.SSTP_LOG ?? 'warn') as LevelWithSilent,
    destination: { write: (s: string) => void process.stderr.write(s) },
  });
  let wrong = 0;
  for (const r of runs) if (!(await runOne(r, log))) wrong++;
  return wrong;
}

main().then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stdout.write(`@@ driver error ${JSON.stringify(String((e as Error)?.stack ?? e))}\n`);
    process.exit(100);
  },
);
