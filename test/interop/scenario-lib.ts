/**
 * One real-client interop suite (sstp.interop.test.ts, pptp.interop.test.ts)
 * around one qemu guest boot, whatever the protocol:
 *
 *   beforeAll: guest link ─► the protocol's gateway in link.ns  ┐ at once
 *                            our client compiled for the guest  ┘
 *              the plan (scenarios, guest script) ─► one guest boot:
 *              each scenario driven in turn on the host (driveScenario), then the guest's result
 *   tests:     read the records and the guest output, with the checks every protocol shares
 *   afterAll:  timings to stderr, gateway closed, lab cleaned up, client build removed
 *
 * The protocol's test gives its gateway, its scenarios and script, how to
 * drive one scenario (what else to look at on the gateway), and its own
 * checks; {@link defineInteropSuite} does the rest and hands back an
 * {@link InteropSuite} the tests read from.
 */
import { beforeAll, afterAll, expect } from 'vitest';
import { existsSync } from 'node:fs';
import { NetLab, type Facility } from '../lib/netns.js';
import type { SessionInfo } from '../../src/admin/types.js';
import { createGuestLink, guestSupport, PPP_MODULES, startGuest, type GuestHandle, type GuestLink, type GuestResult } from './guest/guest.js';
import { buildGuestClient, guestClientMissing, type GuestClientBuild } from './guest-build.js';
import type { GuestRunBase } from './guest-client-run.js';
import { INTEROP_USERS, type InteropGatewayBase, type SessionLog } from './interop-gateway.js';
import { between, formatTable, marker, markers, ms, PPP_OPTIONS_PATH, pppdNegotiation, section, type DriveRecord, type Marker, type PppdNegotiation } from './interop-script.js';

// ---------------------------------------------------------------- our choices

/** The whole guest run, boot included: TCG on shared cores is slow; a bound, not a claim. */
export const GUEST_BUDGET_MS = 420_000;
/** One scenario from its start marker to the next event. */
export const STEP_MS = 150_000;

// ---------------------------------------------------------------- can it run here?

/** The guest (root, qemu, a kernel with modules), the real client's programs (`bins`, installed by `install`), our client's build. */
export async function interopSupport(bins: readonly string[], install: string): Promise<Facility> {
  const g = await guestSupport();
  if (!g.ok) return g;
  for (const bin of bins) {
    if (!existsSync(bin)) return { ok: false, reason: `${bin} is missing (${install})` };
  }
  const missing = guestClientMissing();
  return missing ? { ok: false, reason: missing } : { ok: true, reason: '' };
}

// ---------------------------------------------------------------- a suite

/** What a scenario is to the harness: the real client's (`kind` its program) or our client's (`kind` 'client'). */
export interface ScenarioBase {
  kind: string;
  name: string;
}

/** What the host recorded of one scenario: the drive, the scenario, the gateway's log of its sessions. */
export interface ScenarioRecordBase<S extends ScenarioBase, L extends SessionLog> extends DriveRecord {
  scenario: S;
  sessions: L[];
}

export interface InteropRun<R> {
  result: GuestResult;
  markers: Marker[];
  records: Map<string, R>;
  build: GuestClientBuild;
}

/** What the guest runs, once the gateway is up. */
export interface InteropPlan<S extends ScenarioBase> {
  /** Every scenario in the order the guest runs them (the real client's, then our client's). */
  scenarios: S[];
  /** Our client's runs (CLIENT_RUNS). */
  runs: GuestRunBase[];
  script: string;
  /** Kernel modules beyond PPP_MODULES and tun. */
  modules?: readonly string[];
  /** Environment beyond SERVER, GW_INNER, CLIENT_JS, CLIENT_RUNS (and CLIENT_LOG). */
  env?: Record<string, string>;
}

/** One column of the timings table beyond the common ones (placed after 'hang-up'). */
export interface TimingColumn<R> {
  header: string;
  value(rec: R, m: (event: string) => Marker | undefined): string;
}

export interface InteropSuiteOptions<G extends InteropGatewayBase, S extends ScenarioBase, R extends ScenarioRecordBase<S, SessionLog>> {
  protocol: 'sstp' | 'pptp';
  /** Our client's program, relative to the repository (test/interop/<x>-guest-client.ts). */
  clientSource: string;
  startGateway(lab: NetLab, link: GuestLink): Promise<G>;
  plan(gw: G, link: GuestLink): InteropPlan<S> | Promise<InteropPlan<S>>;
  /** Follow one scenario (driveScenario with the protocol's looks at the gateway) and record it. */
  drive(g: GuestHandle, gw: G, s: S): Promise<R>;
  timings: TimingsOptions<R>;
}

/** The protocol's part of the timings table printed after the run. */
export interface TimingsOptions<R> {
  /** The outcome column of a scenario that pinged (default 'pinged'). */
  pinged?: (rec: R) => string;
  columns?: TimingColumn<R>[];
  /** More lines after the table. */
  trailer?: (run: InteropRun<R>) => string[];
}

/**
 * What the tests of a suite read (the gateway, the guest's run and output),
 * and the checks every protocol shares. Filled by {@link defineInteropSuite}'s
 * beforeAll.
 */
export class InteropSuite<G extends InteropGatewayBase, R extends ScenarioRecordBase<ScenarioBase, SessionLog>> {
  private gateway: G | undefined;
  private guestRun: InteropRun<R> | undefined;
  /** The guest's address on the link (the sessions' peer). */
  guestAddr = '';

  constructor(private readonly protocol: 'sstp' | 'pptp') {}

  /** @internal defineInteropSuite: the gateway is up. */
  started(gw: G, guestAddr: string): void {
    this.gateway = gw;
    this.guestAddr = guestAddr;
  }

  /** @internal defineInteropSuite: the guest has run. */
  ran(run: InteropRun<R>): void {
    this.guestRun = run;
  }

  get gw(): G {
    if (!this.gateway) throw new Error('the gateway did not start');
    return this.gateway;
  }

  get run(): InteropRun<R> {
    if (!this.guestRun) throw new Error('the guest did not run');
    return this.guestRun;
  }

  private get output(): string {
    return this.run.result.output;
  }

  rec(name: string): R {
    const r = this.run.records.get(name);
    if (!r) throw new Error(`no record of ${name}`);
    return r;
  }

  /** The marker `@@ <name> <event>`; throws with the end of the guest output when there is none. */
  mk(name: string, event: string): Marker {
    const m = marker(this.run.markers, name, event);
    if (!m) throw new Error(`no "@@ ${name} ${event}" marker in the guest output:\n${this.output.slice(-6000)}`);
    return m;
  }

  /** The section `== <name> <what> ==` of the guest output. */
  section(name: string, what: string): string {
    return section(this.output, name, what);
  }

  /** An address of the pool (the inner /24, not the gateway's own). */
  inInner(a: string | null | undefined): boolean {
    const { inner } = this.gw;
    return !!a && a.startsWith(inner.subnet.network.replace(/\.0$/, '.')) && a !== inner.gateway;
  }

  /**
   * What every connected scenario shares: every ping answered (3 of 84 and
   * 2 of 1400 octets, DF) through the tunnel; at "pinged" one session of this
   * protocol on the gateway, up, this user, an address of the pool, traffic
   * counted; in its log exactly one session up. Returns that record, the
   * live session and the logged one.
   */
  checkConnected(name: string, user: string): { r: R; live: SessionInfo; session: R['sessions'][number] } {
    const r = this.rec(name);
    const { inner } = this.gw;
    const pinged = this.mk(name, 'pinged');
    expect(pinged.args[0], `${name}: ping status\n${this.output.slice(-4000)}`).toBe('0');
    // 1400-octet packets both ways, unfragmented: the tunnel MTU holds end to end.
    expect(this.mk(name, 'bigpinged').args[0], `${name}: large ping status`).toBe('0');
    // Every echo answered (ping's status alone is 0 with a single reply).
    const pings = between(this.output, `@@ ${name} pinged `, `@@ ${name} held `);
    expect(pings).toMatch(/^3 packets transmitted, 3 received, 0% packet loss/m);
    expect(pings).toMatch(/^2 packets transmitted, 2 received, 0% packet loss/m);
    expect(pings.match(new RegExp(`^1380 bytes from ${inner.gateway.replace(/\./g, '\\.')}: icmp_seq=`, 'gm'))).toHaveLength(2);
    // The gateway at that moment: one session of this protocol, up, this user, an address of the pool, traffic counted.
    expect(r.atPing).toHaveLength(1);
    const live = r.atPing![0]!;
    expect(live).toMatchObject({ protocol: this.protocol, user, state: 'up' });
    expect(this.inInner(live.innerAddress), `inner address ${live.innerAddress}`).toBe(true);
    // Three echo requests and three replies of 84 octets went through the data plane (IP bytes).
    expect(live.bytesIn).toBeGreaterThanOrEqual(3 * 84);
    expect(live.bytesOut).toBeGreaterThanOrEqual(3 * 84);
    // Its log: one session came up.
    const up = r.sessions.filter((s) => s.upAddress !== undefined);
    expect(up).toHaveLength(1);
    return { r, live, session: up[0]! };
  }

  /** The real client's interface (pppd): the address, MTU 1400, the gateway as peer and its DNS, as pppd logged them. */
  checkPppdUp(name: string, address: string): { pppd: PppdNegotiation; log: string } {
    const { inner } = this.gw;
    const connected = this.mk(name, 'connected');
    expect(connected.args[1]).toBe(address);
    // The interface MTU pppd set: the gateway's (SSTP: its MRU; PPTP: its MRU less MPPE's 4 octets).
    expect(connected.args[2]).toBe('1400');
    const log = this.section(name, 'pppd');
    const pppd = pppdNegotiation(log);
    expect(pppd.local).toBe(address);
    expect(pppd.remote).toBe(inner.gateway);
    expect(pppd.dns).toBe(inner.subnet.host(53));
    return { pppd, log };
  }

  /** pppd as the MS-CHAPv2 user with a wrong password: the Failure (E=691, retry allowed) and pppd's reading of it; the gateway's one session never up. */
  checkWrongPassword(name: string): R {
    const r = this.rec(name);
    expect(this.mk(name, 'not-connected')).toBeDefined();
    const log = this.section(name, 'pppd');
    const pppd = pppdNegotiation(log);
    // RFC 2759 6: "E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<msg>"; we allow a retry (R=1).
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CHAP Failure id=0x[0-9a-f]+ "E=691 R=1 C=[0-9A-F]{32} V=3 M=Authentication failed"\]$/));
    expect(log).toMatch(/^MS-CHAP authentication failed: Authentication failed$/m);
    expect(pppd.auth).toBe('CHAP authentication failed');
    const s = r.sessions;
    expect(s).toHaveLength(1);
    expect(s[0]!.upAddress).toBeUndefined();
    expect(s[0]!.records.some((x) => x.msg === 'mschapv2-server: attempt refused, retry allowed' && x.user === INTEROP_USERS.ms.name)).toBe(true);
    expect(s[0]!.pppDown?.reason).toBe('peer-terminated');
    return r;
  }

  /** Our client's `connected` report: the pool's address, the gateway, the DNS, MTU 1400, and `more`. */
  checkClientConnected(name: string, address: string, more: Record<string, unknown>): void {
    const { inner } = this.gw;
    const c = JSON.parse(this.mk(name, 'connected').args[1]!) as Record<string, unknown>;
    expect(c).toMatchObject({ ipv4: address, gateway: inner.gateway, dns: [inner.subnet.host(53)], mtu: 1400, ...more });
  }

  /** Our client's `closed` report. */
  closed<T>(name: string): T {
    return JSON.parse(this.mk(name, 'closed').args[1]!) as T;
  }

  /** Nothing of the scenario is left on the gateway: sessions and addresses. */
  checkNothingLeft(r: R): void {
    expect(r.gone, `${r.scenario.name}: a gateway session stayed`).toBe(true);
    expect(r.poolUsed).toBe(0);
  }

  /** The guest ran every scenario to the end and our client's runs all went as expected; the gateway holds no session, no address. */
  checkGuestDone(): void {
    expect(this.run.result.exitCode).toBe(0);
    expect(this.mk('client', 'exited').args[0], this.section('client', 'stderr').slice(-4000)).toBe('0');
    expect(marker(this.run.markers, 'all', 'done')).toBeDefined();
    expect(this.gw.gateway.sessions.size).toBe(0);
    expect((this.gw.gateway.ctx.pool('default') as unknown as { used: number }).used).toBe(0);
  }
}

/** Register the suite's hooks (call it inside `describe`) and return what its tests read. */
export function defineInteropSuite<G extends InteropGatewayBase, S extends ScenarioBase, R extends ScenarioRecordBase<S, SessionLog>>(
  o: InteropSuiteOptions<G, S, R>,
): InteropSuite<G, R> {
  const suite = new InteropSuite<G, R>(o.protocol);
  const lab = new NetLab();
  let gw: G | undefined;
  let build: GuestClientBuild | undefined;
  let run: InteropRun<R> | undefined;

  beforeAll(async () => {
    const link = await createGuestLink(lab, { tag: o.protocol });
    const [g, b] = await Promise.allSettled([o.startGateway(lab, link), buildGuestClient(o.clientSource)]);
    if (g.status === 'fulfilled') gw = g.value;
    if (b.status === 'fulfilled') build = b.value;
    if (g.status === 'rejected') throw g.reason;
    if (b.status === 'rejected') throw b.reason;
    const gateway = g.value;
    const clientBuild = b.value;
    suite.started(gateway, link.guestAddr);
    const plan = await o.plan(gateway, link);
    const g0 = await startGuest({
      ...link,
      defaultRoute: false,
      timeoutMs: GUEST_BUDGET_MS,
      memoryMb: 768,
      modules: [...PPP_MODULES, 'tun', ...(plan.modules ?? [])],
      files: [{ path: PPP_OPTIONS_PATH, content: '' }],
      env: {
        SERVER: gateway.address,
        GW_INNER: gateway.inner.gateway,
        CLIENT_JS: clientBuild.entry,
        CLIENT_RUNS: JSON.stringify(plan.runs),
        ...(process.env.VPNGW_TEST_LOG ? { CLIENT_LOG: 'debug' } : {}),
        ...plan.env,
      },
      script: plan.script,
    });
    try {
      const records = new Map<string, R>();
      for (const s of plan.scenarios) records.set(s.name, await o.drive(g0, gateway, s));
      const result = await g0.result;
      run = { result, markers: markers(result.output), records, build: clientBuild };
      suite.ran(run);
    } catch (e) {
      g0.kill('the test failed');
      await g0.result.catch(() => undefined);
      throw e;
    }
  }, GUEST_BUDGET_MS + 120_000);

  afterAll(async () => {
    if (run) printTimings(o.protocol.toUpperCase(), run, o.timings);
    await gw?.close();
    await lab.cleanup();
    build?.remove();
  });

  return suite;
}

// ---------------------------------------------------------------- what pppd shares across protocols

/** IPCP and IPV6CP as the gateway answers pppd (same for every protocol and method). */
export function checkIpcp(p: PppdNegotiation): void {
  // IPCP: VJ compression and a second DNS server rejected, address and DNS Nak'd with the pool's and the configured ones.
  expect(p.packets).toContainEqual(expect.stringMatching(/^rcvd \[IPCP ConfRej id=0x[0-9a-f]+ <compress VJ 0f 01> <ms-dns2 0\.0\.0\.0>\]$/));
  expect(p.packets).toContainEqual(expect.stringMatching(/^rcvd \[IPCP ConfNak id=0x[0-9a-f]+ <addr [\d.]+> <ms-dns1 [\d.]+>\]$/));
  expect(p.packets).toContainEqual(expect.stringMatching(/^rcvd \[IPCP ConfAck id=0x[0-9a-f]+ <addr [\d.]+> <ms-dns1 [\d.]+>\]$/));
  // IPV6CP is not offered by this gateway configuration: Protocol-Reject.
  expect(p.ipv6cp).toBe("Protocol-Reject for 'IPv6 Control Protocol' (0x8057) received");
}

// ---------------------------------------------------------------- timings

function printTimings<R extends ScenarioRecordBase<ScenarioBase, SessionLog>>(title: string, run: InteropRun<R>, t: TimingsOptions<R>): void {
  const r = run.result;
  const columns = t.columns ?? [];
  const rows: string[][] = [['scenario', 'outcome', 'connect', 'ping', 'hang-up', ...columns.map((c) => c.header), 'gw set-up', 'host: start->pinged', 'hang-up->gone']];
  for (const [name, rec] of run.records) {
    const m = (ev: string) => marker(run.markers, name, ev);
    const refused = m('failed')?.args[0] ?? m('not-connected')?.args[0];
    // The real client's program: from the hang-up to its exit; ours: its close().
    const end = rec.scenario.kind === 'client' ? m('closed')?.args[0] : m('exited')?.args[2];
    const setup = rec.sessions.find((s) => s.setupSeconds !== undefined)?.setupSeconds;
    rows.push([
      name,
      refused !== undefined ? 'refused' : m('pinged')?.args[0] === '0' ? (t.pinged?.(rec) ?? 'pinged') : 'no ping',
      refused !== undefined ? ms(refused) : ms(m('connected')?.args[0]),
      ms(m('pinged')?.args[1]),
      ms(end),
      ...columns.map((c) => c.value(rec, m)),
      ms(setup === undefined ? undefined : setup * 1000),
      ms(rec.hostConnectMs),
      ms(rec.hostTeardownMs),
    ]);
  }
  const client = marker(run.markers, 'client', 'exited')?.args[2];
  process.stderr.write(
    [
      '',
      `  ${title} interop timings (TCG guest on 2 shared cores; guest clock unless marked host; no speed is asserted):`,
      `    guest boot-to-command ${r.bootMs.toFixed(0)} ms (${r.pvh ? 'PVH vmlinux' : 'bzImage'}), whole guest run ${(r.totalMs / 1000).toFixed(1)} s`,
      `    our client compiled for the guest in ${run.build.ms.toFixed(0)} ms; its node process ran ${client ?? '?'} ms for all its runs`,
      ...formatTable(rows).map((l) => `    ${l}`),
      ...(t.trailer?.(run) ?? []),
      '',
    ].join('\n'),
  );
}
