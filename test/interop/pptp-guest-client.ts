/**
 * Our PPTP client (connectPptp) as a program run inside the qemu guest, after
 * pptp-linux + pppd: the same kernel, the same network path, its own raw GRE
 * socket and a TUN device of the guest. Compiled for the guest by
 * guest-build.ts. One process runs several connections in turn (node starts
 * slowly under TCG), each with its own data-plane engine and TUN device.
 *
 * Environment:
 *   PPTP_SERVER, PPTP_PING (an address to ping through the tunnel: the
 *   gateway's inner one), PPTP_GO_DIR (the directory shared with the host),
 *   PPTP_LOG (pino level for stderr, default warn), and PPTP_RUNS, a JSON
 *   array of {@link PptpGuestRun}.
 *
 * For each run, on stdout (`@@ <name> <event> <data>`):
 *   @@ <name> start                          ... waits for PPTP_GO_DIR/ready-<name> (the host set the gateway up)
 *   @@ <name> connected <ms> <json: ipv4, gateway, dns, mtu, mppe, setupMs>
 *   @@ <name> pinged <ping status> <ms>      (ping's own output follows)
 *   @@ <name> bigpinged <ping status>        (1400-octet packets, DF)
 *   @@ <name> held <seconds>                 (after idling, for keepalives)
 *   teardown 'client': waits for PPTP_GO_DIR/go-<name>, then close();
 *   teardown 'server': waits (bounded) for the gateway to end the tunnel
 *   @@ <name> closed <ms> <json: initiator, control, call, ppp, go>
 * or, when the connection fails:
 *   @@ <name> failed <ms> <json: code, message>
 * The exit status is the number of runs whose outcome differs from `expect`.
 */
import { connectPptp, type PptpClientEnd } from '../../src/client/pptp.js';
import type { LevelWithSilent } from 'pino';
import { createLogger, type Logger } from '../../src/util/log.js';
import { CONNECT_TIMEOUT_MS, env, mark, pingBoth, sleep, waitForGo, waitForReady } from './guest-client-lib.js';

export interface PptpGuestRun {
  name: string;
  user: string;
  password: string;
  tun: string;
  /** Ask for stateless MPPE (connectPptp's mppe.stateless; default stateful). */
  stateless?: boolean;
  /** Who ends a connected tunnel. */
  teardown: 'client' | 'server';
  /** 'connect' (default): connect, ping, end; 'fail': the connection must be refused. */
  expect?: 'connect' | 'fail';
  /** Seconds the tunnel stays idle after the pings, for keepalives to happen. */
  holdSeconds?: number;
}

// Our choice: how long a tunnel the gateway is to end may take to notice (LCP Terminate, then the call).
const SERVER_END_WAIT_MS = 60_000;

function endJson(end: PptpClientEnd, go: boolean) {
  return { initiator: end.initiator, control: end.control ?? null, call: end.call ?? null, ppp: end.ppp?.reason ?? null, go };
}

/** One run; true when the outcome is the expected one. */
async function runOne(r: PptpGuestRun, log: Logger): Promise<boolean> {
  mark(r.name, 'start');
  const dir = env('PPTP_GO_DIR');
  if (!(await waitForReady(dir, r.name))) {
    mark(r.name, 'failed', 0, { code: 'NO_READY', message: 'the host never said ready' });
    return false;
  }
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  let client;
  try {
    client = await connectPptp({
      host: env('PPTP_SERVER'),
      username: r.user,
      password: r.password,
      tun: { name: r.tun },
      mppe: { stateless: r.stateless ?? false },
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
    mppe: client.mppe ?? null,
    setupMs: Math.round(client.setupMs),
  });
  const pinged = await pingBoth(r.name, r.tun, env('PPTP_PING'));
  await sleep((r.holdSeconds ?? 0) * 1000);
  mark(r.name, 'held', r.holdSeconds ?? 0);
  const c0 = performance.now();
  let end: PptpClientEnd;
  let go = true;
  if (r.teardown === 'client') {
    go = await waitForGo(dir, r.name);
    end = await client.close(go ? 'guest client done' : 'no go from the host');
  } else {
    const timeout = sleep(SERVER_END_WAIT_MS).then(() => undefined);
    const ended = await Promise.race([client.ended, timeout]);
    go = ended !== undefined;
    end = ended ?? (await client.close('the gateway did not end the tunnel'));
  }
  mark(r.name, 'closed', Math.round(performance.now() - c0), endJson(end, go));
  return r.expect !== 'fail' && pinged && go;
}

async function main(): Promise<number> {
  const runs = JSON.parse(env('PPTP_RUNS')) as PptpGuestRun[];
  const log = createLogger({
    name: 'vpngw-guest-client',
    level: (process.env.PPTP_LOG ?? 'warn') as LevelWithSilent,
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
