/**
 * The program our clients run as inside the qemu guest (sstp-guest-client.ts,
 * pptp-guest-client.ts): one node process runs several connections in turn
 * (node starts slowly under TCG), each with its own data-plane engine and TUN
 * device; the protocol file says only how to connect and what its markers
 * carry.
 *
 * Environment: SERVER (the gateway's outer address), GW_INNER (pinged through
 * the tunnel: the gateway's inner address), CLIENT_GO_DIR (the directory
 * shared with the host), CLIENT_LOG (pino level for stderr, default warn),
 * and CLIENT_RUNS, a JSON array of the protocol's runs ({@link GuestRunBase}).
 *
 * For each run, on stdout (`@@ <name> <event> <data>`, the markers the
 * interop tests read):
 *   @@ <name> start                          ... waits for CLIENT_GO_DIR/ready-<name> (the host set the gateway up)
 *   @@ <name> connected <ms> <json: what the protocol reports (address, gateway, dns, mtu, ..., setupMs)>
 *   @@ <name> pinged <ping status> <ms>      (ping's own output follows)
 *   @@ <name> bigpinged <ping status>        (1400-octet packets, DF)
 *   @@ <name> held <seconds>                 (after idling, for keepalives)
 *   teardown 'client': waits for CLIENT_GO_DIR/go-<name>, then close();
 *   teardown 'server': waits (bounded) for the gateway to end the tunnel
 *   @@ <name> closed <ms> <json: how it ended, as the protocol tells it, and go>
 * or, when the connection fails:
 *   @@ <name> failed <ms> <json: code, message>
 * The exit status is the number of runs whose outcome differs from `expect`.
 */
import type { LevelWithSilent } from 'pino';
import { createLogger, type Logger } from '../../src/util/log.js';
import { env, mark, pingBoth, sleep, waitForGo, waitForReady } from './guest-client-lib.js';

/** What every run of our client in the guest has. */
export interface GuestRunBase {
  name: string;
  user: string;
  password: string;
  tun: string;
  /** Who ends a connected tunnel: our client (when the host says go) or the gateway. */
  teardown: 'client' | 'server';
  /** 'connect' (default): connect, ping, end; 'fail': the connection must be refused. */
  expect?: 'connect' | 'fail';
  /** Seconds the tunnel stays idle after the pings, for keepalives to happen. */
  holdSeconds?: number;
}

/** A connected client, as the runner needs it. */
export interface GuestTunnel<End> {
  /** What the `connected` marker carries. */
  info: Record<string, unknown>;
  ended: Promise<End>;
  close(reason: string): Promise<End>;
}

export interface GuestClientProtocol<Run extends GuestRunBase, End> {
  /** Connect one run (its TUN device `run.tun`); rejects with a VpnError when refused. */
  connect(run: Run, server: string, log: Logger): Promise<GuestTunnel<End>>;
  /** What the `closed` marker carries besides `go`. */
  endInfo(end: End): Record<string, unknown>;
}

// Our choice: how long a tunnel the gateway is to end may take to notice (LCP Terminate, then the call).
const SERVER_END_WAIT_MS = 60_000;

/** One run; true when the outcome is the expected one. */
async function runOne<Run extends GuestRunBase, End>(p: GuestClientProtocol<Run, End>, r: Run, log: Logger): Promise<boolean> {
  mark(r.name, 'start');
  const dir = env('CLIENT_GO_DIR');
  if (!(await waitForReady(dir, r.name))) {
    mark(r.name, 'failed', 0, { code: 'NO_READY', message: 'the host never said ready' });
    return false;
  }
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  let tunnel: GuestTunnel<End>;
  try {
    tunnel = await p.connect(r, env('SERVER'), log.child({ run: r.name }));
  } catch (e) {
    const err = e as { code?: string; message?: string };
    mark(r.name, 'failed', since(), { code: err.code ?? null, message: err.message ?? String(e) });
    return r.expect === 'fail';
  }
  mark(r.name, 'connected', since(), tunnel.info);
  const pinged = await pingBoth(r.name, r.tun, env('GW_INNER'));
  await sleep((r.holdSeconds ?? 0) * 1000);
  mark(r.name, 'held', r.holdSeconds ?? 0);
  let end: End;
  let go = true;
  let c0 = performance.now();
  if (r.teardown === 'client') {
    go = await waitForGo(dir, r.name);
    c0 = performance.now();
    end = await tunnel.close(go ? 'guest client done' : 'no go from the host');
  } else {
    const timeout = sleep(SERVER_END_WAIT_MS).then(() => undefined);
    const ended = await Promise.race([tunnel.ended, timeout]);
    go = ended !== undefined;
    end = ended ?? (await tunnel.close('the gateway did not end the tunnel'));
  }
  mark(r.name, 'closed', Math.round(performance.now() - c0), { ...p.endInfo(end), go });
  return r.expect !== 'fail' && pinged && go;
}

/** The program: every run of CLIENT_RUNS in turn, then exit with the number of unexpected outcomes. */
export function runGuestClient<Run extends GuestRunBase, End>(p: GuestClientProtocol<Run, End>): void {
  const main = async (): Promise<number> => {
    const runs = JSON.parse(env('CLIENT_RUNS')) as Run[];
    const log = createLogger({
      name: 'vpngw-guest-client',
      level: (process.env.CLIENT_LOG ?? 'warn') as LevelWithSilent,
      destination: { write: (s: string) => void process.stderr.write(s) },
    });
    let wrong = 0;
    for (const r of runs) if (!(await runOne(p, r, log))) wrong++;
    return wrong;
  };
  main().then(
    (status) => process.exit(status),
    (e: unknown) => {
      process.stdout.write(`@@ driver error ${JSON.stringify(String((e as Error)?.stack ?? e))}\n`);
      process.exit(100);
    },
  );
}
