/**
 * SSTP against real clients (issue 4, "Real client"): the unmodified sstpc
 * (Debian's sstp-client 1.0.18) with Debian's pppd 2.4.9 in a qemu guest on
 * Debian's kernel (ppp_generic, ppp_async, the CCP modules), and, in the same
 * guest, our own client (connectSstp, a TUN device of the guest): two
 * independent clients against one gateway, so that a bug our client and our
 * server share cannot hide.
 *
 *   guest (qemu, TCG)                              link namespace (host side of the tap)
 *   sstpc --ca-cert <our cert> ─► pppd ppp<N> ═══ TLS ═══► SstpService (this test process)
 *   node sstp-guest-client.js ─► TUN vpngwc<N> ═══ TLS ═══►   PPP, pool, WASM data plane, TUN
 *   ping -I <dev> <gateway inner address>                      <gateway inner address>/24 on the TUN
 *
 * The guest has no default route: the gateway's inner address is reachable
 * through the tunnel only. One boot runs every scenario in turn; at each
 * "pinged" the test looks at the gateway (session up, user, address, bytes,
 * crypto binding verified, method) and then lets the guest hang up, or hangs
 * up itself from the server side. Scenarios:
 *
 *   sstpc-mschapv2        gateway offers EAP first, pppd refuses EAP (LCP Nak) -> MS-CHAPv2; HLAK from the
 *                         MPPE keys; pppd's LCP echoes every second answered through an idle hold; pppd hangs up
 *   sstpc-pap             pppd refuses EAP and CHAP -> PAP (zero HLAK); idle hold: the gateway's SSTP Hello
 *                         Echo Requests answered by sstpc; the gateway hangs up (LCP Terminate, Call Disconnect)
 *   sstpc-eap-mschapv2    pppd accepts EAP: EAP-MSCHAPv2 (Debian's pppd 2.4.9 has it as a peer), the user
 *                         named WORKGROUP\ms-user as Windows does; sstpc killed
 *   sstpc-wrong-password  MS-CHAPv2 Failure E=691 understood by pppd; nothing left on the gateway
 *   sstpc-wrong-ca        sstpc verifies against another certificate with the same name: refused
 *   client-*              our client: MS-CHAPv2 (with an idle hold: SSTP echoes), PAP, EAP-MSCHAPv2, each with a
 *                         pinned SHA-256 fingerprint; and a wrong pin
 *   every connected one:  3 pings and 2 of 1400 octets (the MTU, DF set) through the tunnel
 *
 * Timings (boot, connect, ping, teardown per scenario) are printed; no speed
 * is asserted. Skipped loudly without root, qemu, a kernel with modules,
 * sstpc/pppd, or the native addon and WASM module.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reportSkip } from '../lib/netns.js';
import type { GuestHandle, GuestLink } from './guest/guest.js';
import { INTEROP_USERS, startInteropGateway, type InteropGateway } from './sstp-gateway.js';
import { driveScenario, type PppdNegotiation } from './interop-script.js';
import { guestScript, serverSessions, type ClientScenario, type Scenario, type ServerSessionLog, type SstpcScenario } from './sstp-scenarios.js';
import type { SstpGuestRun } from './sstp-guest-client.js';
import { checkIpcp, defineInteropSuite, interopSupport, STEP_MS, type InteropPlan, type ScenarioRecordBase } from './scenario-lib.js';
import { createSelfSignedCertificate, fingerprint256 } from '../../src/sstp/cert.js';

const support = await interopSupport(['/usr/sbin/sstpc', '/usr/sbin/pppd'], 'apt-get install sstp-client ppp');
reportSkip('SSTP real-client interop (sstpc + pppd and our client in a qemu guest)', support);

// ---------------------------------------------------------------- our choices

/** The gateway offers EAP first, as the shipped default does, then MS-CHAPv2, then PAP. */
const SERVER_METHODS = ['eap-mschapv2', 'mschapv2', 'pap'] as const;
/** A short SSTP Hello interval: an idle tunnel gets an SSTP Echo Request within a hold of a few seconds. */
const HELLO = '2s';
const HOLD_S = 4;
const SHA256 = 2; // HashProtocol.Sha256 (MS-SSTP 2.2.7)

type ScenarioRecord = ScenarioRecordBase<Scenario, ServerSessionLog>;

/** The scenarios (sstpc with pppd first, then our client) and the guest around them; `tmp` holds the impostor's certificate. */
function plan(gw: InteropGateway, link: GuestLink, tmp: string): InteropPlan<Scenario> {
  // A certificate with the same name and another key: what a man in the middle would present.
  const impostor = createSelfSignedCertificate({ commonName: link.hostAddr, altNames: [link.hostAddr] });
  const impostorFile = path.join(tmp, 'impostor.pem');
  writeFileSync(impostorFile, impostor.certPem);
  const ms = INTEROP_USERS.ms;
  const pap = INTEROP_USERS.pap;
  const noEap = ['refuse-eap'];
  const onlyMsChapV2 = [...noEap, 'refuse-pap', 'refuse-chap', 'refuse-mschap'];
  const sstpcRun = (name: string, unit: number, who: { name: string; password: string }, o: Partial<SstpcScenario>): SstpcScenario => ({
    kind: 'sstpc',
    name,
    unit,
    user: who.name,
    password: who.password,
    ca: gw.certFile,
    teardown: 'sstpc',
    pppd: onlyMsChapV2,
    expect: 'connect',
    ...o,
  });
  const sstpc: SstpcScenario[] = [
    // pppd sends LCP Echo-Requests every second while the tunnel idles: the gateway must answer them.
    sstpcRun('sstpc-mschapv2', 0, ms, {
      teardown: 'pppd',
      pppd: [...onlyMsChapV2, 'lcp-echo-interval', '1', 'lcp-echo-failure', '2'],
      method: 'mschapv2',
      holdSeconds: HOLD_S,
    }),
    // pppd quiet while idle: the gateway's Hello timer sends SSTP Echo Requests, sstpc must answer.
    sstpcRun('sstpc-pap', 1, pap, {
      teardown: 'server',
      pppd: [...noEap, 'refuse-chap', 'refuse-mschap', 'refuse-mschap-v2'],
      method: 'pap',
      holdSeconds: HOLD_S,
    }),
    sstpcRun('sstpc-eap-mschapv2', 2, { name: `WORKGROUP\\${ms.name}`, password: ms.password }, {
      pppd: ['refuse-pap', 'refuse-chap', 'refuse-mschap', 'refuse-mschap-v2'],
      method: 'eap-mschapv2',
    }),
    sstpcRun('sstpc-wrong-password', 3, { name: ms.name, password: 'not the password' }, { expect: 'fail' }),
    sstpcRun('sstpc-wrong-ca', 4, ms, { ca: impostorFile, expect: 'fail' }),
  ];
  const client = (name: string, method: SstpGuestRun['method'], n: number, extra: Partial<SstpGuestRun> = {}): ClientScenario => ({
    kind: 'client',
    name,
    teardown: 'client',
    run: {
      name,
      method,
      user: method === 'pap' ? pap.name : ms.name,
      password: method === 'pap' ? pap.password : ms.password,
      fingerprint: gw.fingerprint,
      tun: `vpngwc${n}`,
      teardown: 'client',
      expect: 'connect',
      ...extra,
    },
  });
  const clients: ClientScenario[] = [
    client('client-mschapv2', 'mschapv2', 0, { holdSeconds: HOLD_S }),
    client('client-pap', 'pap', 1),
    client('client-eap-mschapv2', 'eap-mschapv2', 2),
    client('client-wrong-pin', 'mschapv2', 3, { fingerprint: fingerprint256(impostor.der), expect: 'fail' }),
  ];
  return {
    scenarios: [...sstpc, ...clients],
    runs: clients.map((c) => c.run),
    script: guestScript(sstpc),
    // ppp_deflate and bsd_comp: pppd then offers CCP, as on a stock system, and meets the gateway's answer.
    modules: ['ppp_deflate', 'bsd_comp', 'sch_netem'],
    env: { CA: gw.certFile },
  };
}

/** Follow one scenario in the guest, look at the gateway at "pinged", hang up or let the guest do it. */
async function drive(g: GuestHandle, gw: InteropGateway, s: Scenario): Promise<ScenarioRecord> {
  const r = await driveScenario(g, gw, { name: s.name, teardown: s.teardown, stepMs: STEP_MS });
  return { scenario: s, ...r, sessions: serverSessions(r.logs) };
}

describe.skipIf(!support.ok)('SSTP interop: sstpc + pppd and our client in a qemu guest, one gateway', () => {
  let tmp: string | undefined;
  const t = defineInteropSuite<InteropGateway, Scenario, ScenarioRecord>({
    protocol: 'sstp',
    clientSource: 'test/interop/sstp-guest-client.ts',
    startGateway: (lab, link) => startInteropGateway(lab, link, { methods: SERVER_METHODS, helloInterval: HELLO }),
    plan: (gw, link) => plan(gw, link, (tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-sstp-interop-test-')))),
    drive,
    timings: { columns: [{ header: 'attempts', value: (rec, m) => (rec.scenario.kind === 'sstpc' ? (m('exited')?.args[3] ?? '-') : '1') }] },
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** What every connected scenario shares: address from the pool, ping through the tunnel, the gateway's view. */
  function checkConnected(name: string, user: string, method: string): { session: ServerSessionLog; address: string } {
    const { r, live, session } = t.checkConnected(name, user);
    // Its log: authenticated with the expected method, crypto binding verified, session up with that address.
    expect(session.user).toBe(user);
    expect(session.method).toBe(method);
    expect(session.binding).toBe('SHA-256');
    expect(session.upAddress).toBe(live.innerAddress);
    // Afterwards: gone, address back in the pool.
    t.checkNothingLeft(r);
    return { session, address: live.innerAddress! };
  }

  function checkSstpc(name: string, user: string, method: string) {
    const { session, address } = checkConnected(name, user, method);
    // pppd took the gateway's MRU as the interface MTU (1400).
    const { pppd } = t.checkPppdUp(name, address);
    const exited = t.mk(name, 'exited');
    expect(exited.args[1], `${name}: sstpc had to be killed`).toBe('0');
    const sstpcLog = t.section(name, 'sstpc');
    expect(sstpcLog).toMatch(/Sending Connected Message/);
    expect(sstpcLog).toMatch(/Connection Established/);
    expect(sstpcLog).not.toMatch(/certificate|verification/i);
    return { session, pppd, sstpcLog, exited };
  }

  it('the certificate the guest trusts is the gateway\'s, by its SHA-256 fingerprint', () => {
    expect(t.mk('cert', 'sha256').args[0]).toBe(t.gw.fingerprint);
  });

  it('sstpc with MS-CHAPv2: LCP Nak from EAP to MS-CHAPv2, crypto binding from the MPPE keys, ping, pppd hangs up', () => {
    const { session, pppd } = checkSstpc('sstpc-mschapv2', INTEROP_USERS.ms.name, 'mschapv2');
    // The gateway offered EAP; pppd (refuse-eap) asked for CHAP with MS-CHAPv2; the gateway took it.
    expect(pppd.packets.join('\n')).toMatch(/rcvd \[LCP ConfReq id=0x[0-9a-f]+ <mru 1400> <auth eap> <magic 0x[0-9a-f]+>\]\nsent \[LCP ConfNak id=0x[0-9a-f]+ <auth chap MS-v2>\]/);
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP ConfAck id=0x[0-9a-f]+ <mru 1400> <auth chap MS-v2> <magic 0x[0-9a-f]+>\]$/));
    expect(pppd.auth).toBe('CHAP authentication succeeded');
    checkCcpAndIpcp(pppd);
    // pppd sent an LCP Echo-Request every second through the idle hold and would have declared the link
    // dead after two unanswered ones ("No response to 2 echo-requests"); it was still up when told to stop.
    // (pppd stops printing echo packets once the link is up, so the log shows only the first pair.)
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP EchoReq id=0x0 magic=0x[0-9a-f]+\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[LCP EchoRep id=0x0 magic=0x[0-9a-f]+\]$/));
    expect(t.section('sstpc-mschapv2', 'pppd')).not.toMatch(/No response to \d+ echo-requests|Serial link appears to be disconnected/);
    expect(t.section('sstpc-mschapv2', 'pppd')).toMatch(/^Terminating on signal 15$/m);
    // pppd's LCP Terminate-Request ended PPP; the gateway closed the call.
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP TermReq/));
    expect(session.pppDown?.reason).toBe('peer-terminated');
  });

  it('sstpc with PAP: LCP Nak to PAP, the zero-HLAK crypto binding, ping; the gateway hangs up and sstpc leaves on its own', () => {
    const { session, pppd, sstpcLog } = checkSstpc('sstpc-pap', INTEROP_USERS.pap.name, 'pap');
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP ConfNak id=0x[0-9a-f]+ <auth pap>\]$/));
    expect(pppd.auth).toBe('PAP authentication succeeded');
    checkCcpAndIpcp(pppd);
    // Idle for the hold, pppd quiet: the gateway's Hello timer sent SSTP Echo Requests and sstpc answered each.
    const echo = sstpEchoes(session);
    expect(echo.requests).toBeGreaterThanOrEqual(1);
    expect(echo.responses).toBe(echo.requests);
    expect(sstpcLog.match(/Sending Echo-Reply Message/g)).toHaveLength(echo.requests);
    // The gateway's LCP Terminate-Request reached pppd, which acknowledged it; then the gateway's
    // SSTP Call Disconnect, which sstpc acknowledged (it then exits with status 255 whatever the status).
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[LCP TermReq id=0x[0-9a-f]+ "admin"\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP TermAck/));
    expect(sstpcLog).toMatch(/Sending Disconnect Ack Message/);
    expect(session.pppDown?.reason).toBe('admin');
    expect(session.callClosed).toMatchObject({ reason: 'disconnected', initiator: 'local' });
  });

  it('sstpc with EAP-MSCHAPv2 (Debian 12 pppd is an EAP-MSCHAPv2 peer) as DOMAIN\\user: the MSK-derived HLAK verifies; sstpc killed', () => {
    const { session, pppd } = checkSstpc('sstpc-eap-mschapv2', INTEROP_USERS.ms.name, 'eap-mschapv2');
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP ConfAck id=0x[0-9a-f]+ <mru 1400> <auth eap> <magic 0x[0-9a-f]+>\]$/));
    const eap = pppd.packets.filter((l) => l.includes('[EAP'));
    expect(eap.map((l) => l.replace(/ id=0x[0-9a-f]+/, '').replace(/<[0-9a-f]{32,}>/g, '<hex>').replace(/S=[0-9A-F]{40}/, 'S=<40 hex>'))).toEqual([
      'rcvd [EAP Request Identity <No message>]',
      // The name as Windows presents it, DOMAIN\user (pppd prints the backslash escaped): the gateway finds the
      // user without the domain and computes the ChallengeHash with the bare name (RFC 2759 8.2), as pppd does.
      `sent [EAP Response Identity <Name "WORKGROUP\\\\${INTEROP_USERS.ms.name}">]`,
      'rcvd [EAP Request MSCHAPv2 Challenge <hex>, <Name "vpngw">]',
      `sent [EAP Response MSCHAPv2 Response <hex>, <Name "WORKGROUP\\\\${INTEROP_USERS.ms.name}">]`,
      'rcvd [EAP Request MSCHAPv2 Success <Message "S=<40 hex> M=Access granted">...]',
      'sent [EAP Response MSCHAPv2 Success]',
      'rcvd [EAP Success]',
    ]);
    // RFC 3748 4.2: EAP-Success carries the Identifier of the Response it answers (pppd's Success ack).
    const ack = /^sent \[EAP Response id=(0x[0-9a-f]+) MSCHAPv2 Success\]$/.exec(eap.at(-2) ?? '');
    expect(eap.at(-1)).toBe(`rcvd [EAP Success id=${ack?.[1]}]`);
    expect(pppd.auth).toBe('EAP authentication succeeded');
    checkCcpAndIpcp(pppd);
    // Killed sstpc closes TLS without an SSTP Call Disconnect: the gateway sees the transport go.
    expect(session.callClosed).toMatchObject({ reason: 'transport-closed', initiator: 'peer' });
  });

  it('sstpc with a wrong password: the MS-CHAPv2 Failure (E=691) is understood by pppd, which hangs up; nothing is left', () => {
    t.checkNothingLeft(t.checkWrongPassword('sstpc-wrong-password'));
  });

  it('sstpc verifying against another certificate of the same name refuses the gateway: no session comes up', () => {
    const r = t.rec('sstpc-wrong-ca');
    expect(t.mk('sstpc-wrong-ca', 'not-connected')).toBeDefined();
    expect(t.mk('sstpc-wrong-ca', 'exited').args[0]).not.toBe('0');
    expect(t.section('sstpc-wrong-ca', 'sstpc')).toMatch(/Verification of server certificate failed/);
    expect(r.sessions.filter((s) => s.upAddress !== undefined || s.user !== undefined)).toEqual([]);
    t.checkNothingLeft(r);
  });

  function checkClient(name: string, user: string, method: string) {
    const { session, address } = checkConnected(name, user, method);
    t.checkClientConnected(name, address, { hashProtocol: SHA256 });
    const closed = t.closed<{ initiator: string; call: string; ppp: string; go: boolean }>(name);
    expect(closed).toEqual({ initiator: 'local', call: 'disconnected', ppp: 'admin', go: true });
    // The gateway saw the proper end: LCP Terminate from the client, then SSTP Call Disconnect.
    expect(session.pppDown?.reason).toBe('peer-terminated');
    expect(session.callClosed?.reason).toBe('disconnected');
  }

  it('our client in the guest with MS-CHAPv2 (pinned SHA-256 fingerprint): connects, pings, answers SSTP echoes, disconnects properly', () => {
    checkClient('client-mschapv2', INTEROP_USERS.ms.name, 'mschapv2');
    const session = t.rec('client-mschapv2').sessions.find((s) => s.upAddress !== undefined)!;
    const echo = sstpEchoes(session);
    expect(echo.requests).toBeGreaterThanOrEqual(1);
    expect(echo.responses).toBe(echo.requests);
  });

  it('our client in the guest with PAP (zero-HLAK binding)', () => {
    checkClient('client-pap', INTEROP_USERS.pap.name, 'pap');
  });

  it('our client in the guest with EAP-MSCHAPv2', () => {
    checkClient('client-eap-mschapv2', INTEROP_USERS.ms.name, 'eap-mschapv2');
  });

  it('our client pinning another certificate refuses the gateway before HTTP', () => {
    const r = t.rec('client-wrong-pin');
    const failed = JSON.parse(t.mk('client-wrong-pin', 'failed').args[1]!) as { code: string; message: string };
    expect(failed.code).toBe('ERR_TLS');
    expect(failed.message).toMatch(/fingerprint .* is not the pinned/);
    expect(r.sessions.filter((s) => s.upAddress !== undefined || s.user !== undefined)).toEqual([]);
    expect(r.gone).toBe(true);
  });

  it('the guest ran every scenario to the end; the gateway holds no session and no address', () => {
    t.checkGuestDone();
  });

  it('the gateway counted each authentication: two successes per method (sstpc and our client), one bad password', async () => {
    const text = await t.gw.metrics.text();
    for (const method of ['mschapv2', 'pap', 'eap-mschapv2']) {
      expect(text).toMatch(new RegExp(`^vpngw_auth_results_total\\{method="${method}",outcome="success"\\} 2$`, 'm'));
    }
    expect(text).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="bad-credentials"\} 1$/m);
  });
});

/** SSTP Echo Requests the gateway sent in a session, and Echo Responses it received. */
function sstpEchoes(s: ServerSessionLog): { requests: number; responses: number } {
  const n = (msg: string, message: string) => s.records.filter((r) => r.msg === msg && r.message === message).length;
  return { requests: n('sstp: send', 'SSTP_MSG_ECHO_REQUEST'), responses: n('sstp: recv', 'SSTP_MSG_ECHO_RESPONSE') };
}

/** CCP and IPCP as the gateway answers pppd (same for every method). */
function checkCcpAndIpcp(p: PppdNegotiation): void {
  // pppd offers Deflate and BSD-Compress; SSTP runs over TLS, the gateway Protocol-Rejects CCP.
  expect(p.packets).toContainEqual(expect.stringMatching(/^sent \[CCP ConfReq id=0x[0-9a-f]+ <deflate 15> <deflate\(old#\) 15> <bsd v1 15>\]$/));
  expect(p.ccp).toBe("Protocol-Reject for 'Compression Control Protocol' (0x80fd) received");
  checkIpcp(p);
}
