/**
 * Our SSTP client (connectSstp) as a program run inside the qemu guest, next
 * to sstpc: the same kernel, the same network path, a TUN device of the
 * guest. Compiled for the guest by guest-build.ts. One process runs
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
import { connectSstp } from '../../src/client/sstp.js';
import type { LevelWithSilent } from 'pino';
import { createLogger, type Logger } from '../../src/util/log.js';
import type { AuthMethod } from '../../src/ppp/auth/types.js';
import { CONNECT_TIMEOUT_MS, env, mark, pingBoth, sleep, waitForGo } from './guest-client-lib.js';

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
  const pinged = await pingBoth(r.name, r.tun, env('SSTP_PING'));
  await sleep((r.holdSeconds ?? 0) * 1000);
  mark(r.name, 'held', r.holdSeconds ?? 0);
  const go = await waitForGo(env('SSTP_GO_DIR'), r.name);
  const c0 = performance.now();
  const end = await client.close(go ? 'guest client done' : 'no go from the host');
  mark(r.name, 'closed', Math.round(performance.now() - c0), { initiator: end.initiator, call: end.call?.reason ?? null, ppp: end.ppp?.reason ?? null, go });
  return r.expect !== 'fail' && pinged && go;
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
