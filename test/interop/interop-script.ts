/**
 * What the real-client interop tests (SSTP, PPTP) share around one qemu guest
 * boot that runs several scenarios in turn:
 *
 *   guest script                           host (test)
 *   @@ <name> start            ──────────► prepares the gateway (if the scenario asks), creates ready-<name>
 *   ... connects, pings ...
 *   @@ <name> pinged <st> <ms> ──────────► looks at the gateway (sessions, bytes, MPPE ...)
 *   @@ <name> held <s>         ──────────► hangs up itself (admin kill) or creates go-<name>
 *   @@ <name> exited|closed|failed ─────► waits for the gateway to hold nothing, keeps its log
 *   == <name> <what> ==  logs of the scenario (pppd's debug log, the client's output)
 *
 * Here: the shell functions every guest script starts with and the script
 * around a protocol's scenarios ({@link composeGuestScript}: then our client,
 * then "all done"), the readers of what comes back (markers, sections, pppd's
 * negotiation), the host side of one scenario ({@link driveScenario}) and the
 * timings table.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { waitUntil } from '../lib/sstp-lab.js';
import type { SessionInfo } from '../../src/admin/types.js';
import type { GuestHandle } from './guest/guest.js';
import type { InteropGatewayBase, LogRecord } from './interop-gateway.js';
import { BIG_PING_PAYLOAD } from './guest-client-lib.js';

export { BIG_PING_PAYLOAD };

/** An empty /etc/ppp/options: the host's (auth, lock, crtscts, lcp-echo ...) stays out of the tests. */
export const PPP_OPTIONS_PATH = '/etc/ppp/options';

/**
 * Shell functions for a guest script (sh, `set -u`). Environment: GW_INNER
 * (the gateway's inner address, pinged through the tunnel) and the harness's
 * GUEST_JOB_DIR.
 *
 *   now / since T        nanoseconds; milliseconds since T
 *   mark WORDS           prints "@@ WORDS" (a marker the host reads)
 *   waitgo NAME          waits (bounded) for $GUEST_JOB_DIR/go-NAME: the host has looked, hang up now
 *   waitready NAME       waits (bounded) for $GUEST_JOB_DIR/ready-NAME: the host has prepared the gateway
 *   ping_both NAME DEV   3 pings of 84 octets and 2 of 1400 (DF set) to GW_INNER through DEV;
 *                        marks "NAME pinged <status> <ms>" and "NAME bigpinged <status>", output after each
 *   wait_up DEV PID      waits (bounded, 90 s) for an IPv4 address on DEV while PID lives; up=1 when it came
 *   up_and_hold NAME DEV T0 HOLD
 *                        marks "NAME connected <ms since T0> <address/prefix> <MTU of DEV>", ping_both, idles
 *                        HOLD seconds (keepalives have to be answered by both sides), marks "NAME held HOLD"
 *   reap PID             waits (bounded, 30 s) for PID to leave on its own, else kills it; forced=1 when
 *                        killed, rc its exit status
 */
export const SCRIPT_PRELUDE = String.raw`set -u
now() { date +%s%N; }
since() { echo $(( ($(now) - $1) / 1000000 )); }
mark() { echo "@@ $*"; }
waitfile() { i=0; while [ ! -e "$GUEST_JOB_DIR/$1" ]; do i=$((i+1)); [ $i -gt 1200 ] && return 1; sleep 0.1; done; return 0; }
waitgo() { waitfile "go-$1"; }
waitready() { waitfile "ready-$1"; }
ping_both() {
  t1=$(now)
  ping -c 3 -i 0.3 -W 3 -I "$2" "$GW_INNER" > "/tmp/ping-$1.log" 2>&1
  st=$?
  mark "$1 pinged $st $(since $t1)"
  cat "/tmp/ping-$1.log"
  ping -c 2 -i 0.3 -W 3 -s ${BIG_PING_PAYLOAD} -M do -I "$2" "$GW_INNER" > "/tmp/bigping-$1.log" 2>&1
  mark "$1 bigpinged $?"
  cat "/tmp/bigping-$1.log"
}
wait_up() {
  up=0; i=0
  while [ $i -lt 900 ]; do
    if ip -4 -o addr show dev "$1" 2>/dev/null | grep -q ' inet '; then up=1; return 0; fi
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.1; i=$((i+1))
  done
}
up_and_hold() {
  mark "$1 connected $(since $3) $(ip -4 -o addr show dev "$2" | awk '{print $4}') $(cat "/sys/class/net/$2/mtu")"
  ping_both "$1" "$2"
  sleep "$4"
  mark "$1 held $4"
}
reap() {
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  forced=0
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; forced=1; fi
  wait "$1"; rc=$?
}
`;

/**
 * Our client in the guest after the real client's scenarios: one node
 * process (CLIENT_JS, guest-client-run.ts) runs every run of CLIENT_RUNS;
 * marks "client exited <status> 0 <ms>" and prints its stderr as the section
 * `client stderr`.
 */
const OUR_CLIENT = String.raw`
mark "client start"
t0=$(now)
CLIENT_GO_DIR="$GUEST_JOB_DIR" node "$CLIENT_JS" 2> /tmp/client.err
rc=$?
mark "client exited $rc 0 $(since $t0)"
echo "== client stderr =="; tail -c 30000 /tmp/client.err
echo "== client end =="`;

/**
 * A whole guest script: the prelude, `scenarios` (the real client's shell
 * function and its calls), our client, then "all done". Environment: GW_INNER,
 * and for our client SERVER, CLIENT_JS and CLIENT_RUNS.
 */
export function composeGuestScript(scenarios: readonly string[]): string {
  return [SCRIPT_PRELUDE, ...scenarios, OUR_CLIENT, 'mark "all done"'].join('\n') + '\n';
}

// ---------------------------------------------------------------- reading the output

export interface Marker {
  name: string;
  event: string;
  args: string[];
}

/** Every `@@ <name> <event> <args...>` line of the output. */
export function markers(output: string): Marker[] {
  const out: Marker[] = [];
  for (const m of output.matchAll(/^@@ (\S+) (\S+)(?: (.*))?$/gm)) out.push({ name: m[1]!, event: m[2]!, args: m[3] ? splitArgs(m[3]) : [] });
  return out;
}

/** Split marker arguments on spaces, keeping a trailing JSON value whole. */
function splitArgs(s: string): string[] {
  const brace = s.indexOf('{');
  const head = brace >= 0 ? s.slice(0, brace) : s;
  const parts = head.trim() ? head.trim().split(/\s+/) : [];
  if (brace >= 0) parts.push(s.slice(brace));
  return parts;
}

export function marker(all: readonly Marker[], name: string, event: string): Marker | undefined {
  return all.find((m) => m.name === name && m.event === event);
}

/** The text between `== <name> <what> ==` and the next `== ... ==` line. */
export function section(output: string, name: string, what: string): string {
  const re = new RegExp(`^== ${name.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')} ${what} ==\\n([\\s\\S]*?)(?=^== )`, 'm');
  return re.exec(output)?.[1] ?? '';
}

/** The output from the line starting with `from` to the line starting with `to`. */
export function between(output: string, from: string, to: string): string {
  const a = output.indexOf(`\n${from}`);
  const b = a < 0 ? -1 : output.indexOf(`\n${to}`, a + 1);
  return a < 0 || b < 0 ? '' : output.slice(a + 1, b + 1);
}

/**
 * What pppd negotiated, from its `debug` log: the packets of LCP, the
 * authentication protocol, CCP, IPCP and IPV6CP as pppd printed them, and the
 * outcome lines. For the report and the assertions.
 */
export interface PppdNegotiation {
  /** Every `sent [...]` / `rcvd [...]` control packet line, in order. */
  packets: string[];
  auth: string | undefined;
  ccp: string | undefined;
  ipv6cp: string | undefined;
  local: string | undefined;
  remote: string | undefined;
  dns: string | undefined;
}

export function pppdNegotiation(log: string): PppdNegotiation {
  const lines = log.split('\n');
  const packets = lines.filter((l) => /^(sent|rcvd) \[(LCP|CHAP|PAP|EAP|CCP|IPCP|IPV6CP)/.test(l));
  const find = (re: RegExp) => lines.find((l) => re.test(l))?.trim();
  const value = (re: RegExp) => {
    const l = find(re);
    return l ? re.exec(l)![1] : undefined;
  };
  return {
    packets,
    auth: find(/^(CHAP|PAP|EAP) authentication (succeeded|failed)/),
    ccp: find(/Compression Control Protocol|^CCP|compression enabled/i),
    ipv6cp: find(/IPv6 Control Protocol|local  LL address/),
    local: value(/^local\s+IP address (\S+)/),
    remote: value(/^remote IP address (\S+)/),
    dns: value(/^primary\s+DNS address (\S+)/),
  };
}

// ---------------------------------------------------------------- the host side of a scenario

/** What the host saw of one scenario. */
export interface DriveRecord {
  /** Gateway sessions when the guest said "pinged". */
  atPing: SessionInfo[] | undefined;
  /** Log records of the gateway from the scenario's start to its end. */
  logs: LogRecord[];
  /** Whether every gateway session was gone (and the pool empty) after the scenario. */
  gone: boolean;
  poolUsed: number;
  /** Host clock: from "start" to "pinged"/"failed", and from the hang-up to the session gone. */
  hostConnectMs: number | undefined;
  hostTeardownMs: number | undefined;
}

export interface DriveOptions {
  name: string;
  /** 'server': the gateway hangs up (admin kill) at "held"; anything else: the guest does, told by go-<name>. */
  teardown: string;
  /** The guest may wait for ready-<name> after "start": prepare the gateway, then it is created. */
  prepare?: () => void | Promise<void>;
  /** At "pinged", after the session list was taken: more host-side looks. */
  atPing?: () => void;
  /** At "held", before the hang-up. */
  atHeld?: () => void;
  /** Bound on each step (start -> pinged -> held -> end). */
  stepMs: number;
}

/** Follow one scenario in the guest: look at the gateway at "pinged", hang up or let the guest do it, wait for nothing left. */
export async function driveScenario(g: GuestHandle, gw: InteropGatewayBase, o: DriveOptions): Promise<DriveRecord> {
  const pool = () => (gw.gateway.ctx.pool('default') as unknown as { used: number }).used;
  const from = gw.logs.length;
  const esc = o.name.replace(/[-]/g, '\\-');
  await g.waitForOutput(new RegExp(`^@@ ${esc} start$`, 'm'), o.stepMs);
  await o.prepare?.();
  writeFileSync(path.join(g.shareDir, `ready-${o.name}`), '');
  const t0 = performance.now();
  const first = await g.waitForOutput(new RegExp(`^@@ ${esc} (pinged|not-connected|failed|exited)\\b`, 'm'), o.stepMs);
  const hostConnectMs = performance.now() - t0;
  let atPing: SessionInfo[] | undefined;
  let t1 = performance.now();
  let kill: Promise<boolean> | undefined;
  if (first[1] === 'pinged') {
    atPing = gw.gateway.sessions.list();
    o.atPing?.();
    await g.waitForOutput(new RegExp(`^@@ ${esc} held\\b`, 'm'), o.stepMs);
    o.atHeld?.();
    t1 = performance.now();
    if (o.teardown === 'server') kill = gw.gateway.sessions.kill(atPing[0]?.id ?? '', 'interop: the gateway hangs up');
    else writeFileSync(path.join(g.shareDir, `go-${o.name}`), '');
  }
  await g.waitForOutput(new RegExp(`^@@ ${esc} (exited|closed|failed)\\b`, 'm'), o.stepMs);
  let gone = true;
  await waitUntil(() => gw.gateway.sessions.size === 0, 30_000, `the gateway sessions of ${o.name} to go`).catch(() => (gone = false));
  const hostTeardownMs = first[1] === 'pinged' ? performance.now() - t1 : undefined;
  await kill;
  return { atPing, logs: gw.logs.slice(from), gone, poolUsed: pool(), hostConnectMs, hostTeardownMs };
}

// ---------------------------------------------------------------- timings

/** A table to stderr: the first `leftColumns` columns left-aligned, the rest right-aligned. */
export function formatTable(rows: readonly string[][], leftColumns = 2): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) => row.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

/** `123 ms`, or `-`. */
export function ms(v: string | number | undefined): string {
  return v === undefined ? '-' : `${typeof v === 'number' ? v.toFixed(0) : v} ms`;
}
