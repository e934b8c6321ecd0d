/**
 * The PPTP interop scenarios run in one qemu guest boot: the guest script
 * (the unmodified pptp-linux under pppd, then our client, pptp-guest-client.ts)
 * and the reader of the gateway's log for one session.
 *
 * pppd runs pptp as its pty, the way pptp-linux documents it:
 *
 *   pppd pty "pptp <gateway> --nolaunchpppd" nodetach unit N name <user> password <pw> \
 *     require-mppe-128|require-mppe-40 refuse-eap refuse-pap refuse-chap refuse-mschap noauth nodefaultroute \
 *     noipdefault usepeerdns debug logfile ... [mppe-stateful] [lcp-echo-interval 1 ...]
 *
 * pptp-linux keeps one call manager per server address, a detached process
 * that lingers a little after its last call and that a new `pptp` joins when
 * it is still there; each scenario waits (bounded) for it to be gone, so
 * every scenario has its own control connection.
 *
 * Each scenario first prints "start" and waits for the host's ready-<name>:
 * the host sets the gateway's MPPE policy for it (mppe.stateless and
 * mppe.strengths, reloaded as SIGHUP would) before the client dials.
 */
import { shq } from './guest/guest.js';
import { composeGuestScript } from './interop-script.js';
import { sessionLogs, type LogRecord, type SessionLog } from './interop-gateway.js';
import type { MppeBits } from '../../src/ppp/ccp/mppe.js';
import type { PptpGuestRun } from './pptp-guest-client.js';

interface Common {
  name: string;
  user: string;
  password: string;
  expect: 'connect' | 'fail';
  /** The gateway's mppe.stateless (stateless allowed, and then asked for) while this scenario runs. */
  gatewayStateless: boolean;
  /** The gateway's mppe.strengths while this scenario runs; default [128]. */
  gatewayStrengths?: readonly MppeBits[];
  /** The MPPE mode the tunnel should end up in. */
  stateless?: boolean;
  /** The MPPE strength the tunnel should end up with; default 128. */
  bits?: MppeBits;
  /** Seconds the tunnel stays idle after the pings, for keepalives to happen. */
  holdSeconds?: number;
}

export interface PppdScenario extends Common {
  kind: 'pppd';
  /** pppd unit: the interface is ppp<unit>. */
  unit: number;
  /** 'pppd': SIGTERM to pppd (it sends LCP Terminate-Request, its pptp clears the call); 'server': the gateway's admin kill. */
  teardown: 'pppd' | 'server';
  /** pppd's MPPE option, before the common ones: {@link PPPD_MPPE_DEFAULT} unless set (`require-mppe-40` ...). */
  mppe?: string;
  /** pppd options after the common ones (each one argument). */
  pppd: readonly string[];
}

export interface ClientScenario extends Common {
  kind: 'client';
  run: PptpGuestRun;
  teardown: PptpGuestRun['teardown'];
}

export type Scenario = PppdScenario | ClientScenario;

/** pppd's MPPE option when a scenario names none: 128-bit MPPE required. */
export const PPPD_MPPE_DEFAULT = 'require-mppe-128';

/** pppd options every pppd scenario has, the task's: MS-CHAPv2 only, no routes (MPPE: the scenario's option). */
export const PPPD_COMMON = ['refuse-eap', 'refuse-pap', 'refuse-chap', 'refuse-mschap', 'noauth', 'nodefaultroute', 'noipdefault', 'usepeerdns'] as const;

/**
 * The guest script: pppd with pptp for each scenario, then our client
 * (interop-script.ts). Environment: SERVER (the gateway's outer address),
 * GW_INNER, and for our client CLIENT_JS and CLIENT_RUNS.
 */
export function guestScript(pppd: readonly PppdScenario[]): string {
  const L: string[] = [];
  L.push(String.raw`
# pppd_run NAME UNIT USER PASSWORD TEARDOWN HOLD MPPE [pppd options...]
pppd_run() {
  name=$1; unit=$2; user=$3; pass=$4; teardown=$5; hold=$6; mppe=$7; shift 7
  dev=ppp$unit
  mark "$name start"
  waitready "$name" || mark "$name no-ready"
  t0=$(now); t2=$t0
  pppd pty "pptp $SERVER --nolaunchpppd --loglevel 1" nodetach unit "$unit" name "$user" password "$pass" \
    "$mppe" ${PPPD_COMMON.join(' ')} debug logfile "/tmp/pppd-$name.log" "$@" > "/tmp/pppd-$name.out" 2>&1 &
  pid=$!
  wait_up "$dev" $pid
  if [ $up = 1 ]; then
    # Idle for the hold: keepalives (LCP echo both ways, PPTP control Echo-Request) have to be answered.
    up_and_hold "$name" "$dev" $t0 "$hold"
    case $teardown in
      pppd) waitgo "$name"; t2=$(now); kill -TERM $pid ;;
      server) t2=$(now) ;;
    esac
  else
    mark "$name not-connected $(since $t0)"
  fi
  # pppd leaves on its own (after the teardown, or after failing); bounded.
  reap $pid
  ms=$(since $t2)
  # pptp-linux's call manager lingers after its last call: the next scenario must not join it.
  i=0
  while pgrep -x pptp > /dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  mark "$name exited $rc $forced $ms $(pgrep -x pptp | wc -l) $(ls -d /sys/class/net/ppp* 2>/dev/null | wc -l)"
  echo "== $name pppd =="; cat "/tmp/pppd-$name.log" 2>/dev/null
  echo "== $name out =="; cat "/tmp/pppd-$name.out" 2>/dev/null
  echo "== $name end =="
}
`);
  for (const s of pppd) {
    L.push(['pppd_run', s.name, String(s.unit), s.user, s.password, s.teardown, String(s.holdSeconds ?? 0), s.mppe ?? PPPD_MPPE_DEFAULT, ...s.pppd].map(shq).join(' '));
  }
  return composeGuestScript(L);
}

// ---------------------------------------------------------------- the gateway's view

/** One PPTP server session as its log records tell it. */
export interface PptpSessionLog extends SessionLog {
  authFailed: { user: string; reason: string } | undefined;
  /** As the gateway logs it: `128-bit stateless`, `40-bit stateful` ... */
  mppe: string | undefined;
  mtu: number | undefined;
  callCleared: string | undefined;
  controlClosed: string | undefined;
  /** Control messages in order, as `<dir> <name>` (`in SCCRQ`, `out SCCRP` ...). */
  control: string[];
}

/** The PPTP sessions of a scenario's log, in order of first appearance. */
export function pptpSessions(logs: readonly LogRecord[]): PptpSessionLog[] {
  return sessionLogs<PptpSessionLog>(
    logs,
    'pptp',
    () => ({ authFailed: undefined, mppe: undefined, mtu: undefined, callCleared: undefined, controlClosed: undefined, control: [] }),
    (s, r) => {
      if (r.msg === 'pptp: PPP authentication failed') s.authFailed = { user: String(r.user), reason: String(r.reason) };
      if (r.msg === 'pptp: session up') {
        s.mppe = String(r.mppe);
        s.mtu = Number(r.mtu);
      }
      if (r.msg === 'pptp: call cleared') s.callCleared = String(r.reason);
      if (r.msg === 'pptp: control connection closed') s.controlClosed = String(r.reason);
      if (r.msg === 'PPTP receive' || r.msg === 'PPTP send') s.control.push(`${r.msg === 'PPTP send' ? 'out' : 'in'} ${String(r.message)}`);
    },
  );
}
