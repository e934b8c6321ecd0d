/**
 * PPTP against a real client (issue 5, "Real client"): the unmodified `pptp`
 * of Debian's pptp-linux 1.10 under Debian's pppd 2.4.9 in a qemu guest on
 * Debian's kernel (ppp_generic, ppp_async, ppp_mppe), and, in the same guest,
 * our own client (connectPptp, its own raw GRE socket and a TUN device of the
 * guest): two independent clients against one gateway, so that a bug our
 * client and our server share cannot hide.
 *
 *   guest (qemu, TCG)                                     link namespace (host side of the tap)
 *   pppd pty "pptp <gw> --nolaunchpppd" ─► ppp<N> ═══ TCP 1723 + GRE ═══► PptpService (this test process)
 *   node pptp-guest-client.js ─► TUN vpngwp<N> ═══ TCP 1723 + GRE ═══►   raw GRE socket, WASM data plane (MPPE)
 *   ping -I <dev> <gateway inner address>                                 TUN <gateway inner address>/24
 *
 * The gateway: MS-CHAPv2 only, MPPE required at 128 bits (40 bits only for
 * pppd-40bit); stateless MPPE allowed (and then asked for) or not; both set
 * per scenario by a config reload.
 * The guest has no default route: the gateway's inner address is reachable
 * through the tunnel only. One boot runs every scenario in turn; at each
 * "pinged" the test looks at the gateway (session up, user, address, MPPE
 * mode in the session and in the data plane, bytes counted), and then lets
 * the guest hang up or hangs up itself. Scenarios:
 *
 *   pppd-stateless         plain pppd (it refuses stateful MPPE): 128-bit stateless; idle hold with pppd's
 *                          LCP echo every second, the gateway's LCP echo and PPTP Echo-Request; pppd hangs up
 *   pppd-stateful-refused  gateway without stateless, plain pppd: pppd refuses the stateful request, no session
 *   pppd-stateful          gateway without stateless, pppd with mppe-stateful: its H Nak'd away, 128-bit
 *                          stateful; the gateway hangs up (LCP Terminate-Request, Call-Disconnect-Notify)
 *   pppd-wrong-password    MS-CHAPv2 Failure E=691 understood by pppd; nothing left
 *   pppd-40bit             gateway with mppe.strengths [40], pppd with require-mppe-40 (Linux's ppp_mppe does
 *                          40 and 128, not 56): 40-bit stateless in pppd's log, the gateway's session and log
 *   client-stateful        our client (stateful by default) against the stateless-asking gateway: the
 *                          gateway follows the client; the client hangs up
 *   client-stateless       our client asking stateless; idle hold; the gateway hangs up
 *   client-stateful-only   gateway without stateless, our client asking stateless: it takes stateful
 *   client-wrong-password  ERR_AUTH_REJECTED
 *   every connected one:   3 pings and 2 of 1400 octets (the MTU, DF set) through the tunnel
 *
 * Timings (boot, connect, ping, teardown per scenario) are printed; no speed
 * is asserted. Skipped loudly without root, qemu, a kernel with modules,
 * pptp/pppd, or the native addon and WASM module.
 */
import { describe, it, expect } from 'vitest';
import { reportSkip } from '../lib/netns.js';
import type { GuestHandle } from './guest/guest.js';
import { driveScenario, pppdNegotiation, section, type PppdNegotiation } from './interop-script.js';
import { GATEWAY_MPPE_DEFAULT, INTEROP_USERS, startPptpGateway, type PptpInteropGateway } from './pptp-gateway.js';
import { guestScript, pptpSessions, type ClientScenario, type PppdScenario, type PptpSessionLog, type Scenario } from './pptp-scenarios.js';
import { checkIpcp, defineInteropSuite, interopSupport, STEP_MS, type InteropRun, type ScenarioRecordBase } from './scenario-lib.js';
import type { MppeState } from '../../src/dataplane/sessions.js';
import type { MppeBits } from '../../src/ppp/ccp/mppe.js';

const support = await interopSupport(['/usr/sbin/pptp', '/usr/sbin/pppd'], 'apt-get install pptp-linux ppp');
reportSkip('PPTP real-client interop (pptp-linux + pppd and our client in a qemu guest)', support);

// ---------------------------------------------------------------- our choices

/** Keepalives in an idle hold: the gateway's LCP echo every second, its PPTP Echo-Request every 2 s (reply within 2 s). */
const LCP_ECHO = '1s';
const CONTROL_ECHO = '2s';
const HOLD_S = 5;

// ---------------------------------------------------------------- what a run records

interface ScenarioRecord extends ScenarioRecordBase<Scenario, PptpSessionLog> {
  /** At "pinged": the server session's MPPE and the data plane's view of the same session. */
  mppe: { bits: number; stateless: boolean } | undefined;
  dataplaneMppe: MppeState | undefined;
  /** At "held": the control connection's state and counters, and whether PPP was still up. */
  held: { control: string; echoRequestsSent: number; echoRequestsReceived: number; unexpected: number; up: boolean } | undefined;
  /** After the scenario: data-plane sessions in use. */
  dataplaneUsed: number;
}

/** The scenarios: pppd (with pptp) first, then our client; every one as the MS-CHAPv2 user. */
function scenarios(): { pppd: PppdScenario[]; clients: ClientScenario[] } {
  const ms = INTEROP_USERS.ms;
  const pppdRun = (name: string, unit: number, o: Partial<PppdScenario>): PppdScenario => ({
    kind: 'pppd',
    name,
    unit,
    user: ms.name,
    password: ms.password,
    teardown: 'pppd',
    pppd: [],
    expect: 'connect',
    gatewayStateless: true,
    ...o,
  });
  const pppd: PppdScenario[] = [
    // pppd sends an LCP Echo-Request every second while the tunnel idles: the gateway must answer them.
    // A second `debug`: pppd prints LCP echoes after the link is up too.
    pppdRun('pppd-stateless', 0, { stateless: true, holdSeconds: HOLD_S, pppd: ['lcp-echo-interval', '1', 'lcp-echo-failure', '2', 'debug'] }),
    pppdRun('pppd-stateful-refused', 1, { gatewayStateless: false, expect: 'fail' }),
    pppdRun('pppd-stateful', 2, { gatewayStateless: false, stateless: false, teardown: 'server', pppd: ['mppe-stateful'] }),
    pppdRun('pppd-wrong-password', 3, { password: 'not the password', expect: 'fail' }),
    // The 40-bit keys (RFC 3079 3.1) of the kernel's ppp_mppe against ours; the gateway offers 40 bits only.
    pppdRun('pppd-40bit', 4, { gatewayStrengths: [40], mppe: 'require-mppe-40', stateless: true, bits: 40 }),
  ];
  /** `ask`: the client asks for stateless MPPE (connectPptp's mppe.stateless); `stateless`: the mode expected. */
  type ClientOpts = Pick<ClientScenario, 'stateless' | 'holdSeconds'> & Partial<Pick<ClientScenario, 'password' | 'expect' | 'gatewayStateless' | 'teardown'>> & { ask?: boolean };
  const client = (name: string, n: number, o: ClientOpts): ClientScenario => {
    const { ask = false, teardown = 'client', expect: outcome = 'connect', password = ms.password, gatewayStateless = true, ...rest } = o;
    return {
      kind: 'client',
      name,
      user: ms.name,
      password,
      expect: outcome,
      gatewayStateless,
      teardown,
      ...rest,
      run: { name, user: ms.name, password, tun: `vpngwp${n}`, stateless: ask, teardown, expect: outcome, ...(rest.holdSeconds !== undefined ? { holdSeconds: rest.holdSeconds } : {}) },
    };
  };
  const clients: ClientScenario[] = [
    client('client-stateful', 0, { stateless: false }),
    client('client-stateless', 1, { ask: true, stateless: true, teardown: 'server', holdSeconds: HOLD_S }),
    client('client-stateful-only', 2, { ask: true, stateless: false, gatewayStateless: false }),
    client('client-wrong-password', 3, { password: 'not the password', expect: 'fail' }),
  ];
  return { pppd, clients };
}

/** Follow one scenario: set the gateway's MPPE policy for it, look at the gateway at "pinged" and "held". */
async function drive(g: GuestHandle, gw: PptpInteropGateway, s: Scenario): Promise<ScenarioRecord> {
  let mppe: ScenarioRecord['mppe'];
  let dataplaneMppe: MppeState | undefined;
  let held: ScenarioRecord['held'];
  const live = () => gw.service.liveSessions[0];
  const r = await driveScenario(g, gw, {
    name: s.name,
    teardown: s.teardown,
    stepMs: STEP_MS,
    prepare: () => gw.setMppe({ stateless: s.gatewayStateless, strengths: s.gatewayStrengths ?? GATEWAY_MPPE_DEFAULT.strengths }),
    atPing: () => {
      const l = live();
      mppe = l?.mppe;
      const idx = l?.dataplaneIndex;
      if (idx !== undefined) dataplaneMppe = gw.service.dataplane!.sessions.mppeState(idx);
    },
    atHeld: () => {
      const l = live();
      if (l) held = { control: l.control.state, ...l.control.counters, up: l.isUp };
    },
  });
  return { scenario: s, ...r, sessions: pptpSessions(r.logs), mppe, dataplaneMppe, held, dataplaneUsed: gw.service.dataplane!.sessions.used };
}

describe.skipIf(!support.ok)('PPTP interop: pptp-linux + pppd and our client in a qemu guest, one gateway', () => {
  const t = defineInteropSuite<PptpInteropGateway, Scenario, ScenarioRecord>({
    protocol: 'pptp',
    clientSource: 'test/interop/pptp-guest-client.ts',
    startGateway: (lab, link) => startPptpGateway(lab, link, { lcpEchoInterval: LCP_ECHO, echoInterval: CONTROL_ECHO, echoTimeout: CONTROL_ECHO }),
    plan: () => {
      const { pppd, clients } = scenarios();
      return { scenarios: [...pppd, ...clients], runs: clients.map((c) => c.run), script: guestScript(pppd) };
    },
    drive,
    timings: {
      pinged: (rec) => `pinged, ${rec.mppe ? `MPPE ${rec.mppe.bits} ${rec.mppe.stateless ? 'stateless' : 'stateful'}` : 'no MPPE'}`,
      trailer: (run) => (process.env.VPNGW_INTEROP_NEGOTIATION ? negotiations(run) : []),
    },
  });

  /** Nothing of the scenario is left on the gateway: sessions, addresses, data-plane entries. */
  function checkNothingLeft(r: ScenarioRecord): void {
    t.checkNothingLeft(r);
    expect(r.dataplaneUsed).toBe(0);
  }

  /** What every connected scenario shares: address from the pool, pings through the tunnel, the gateway's view. */
  function checkConnected(name: string, stateless: boolean, bits: MppeBits = 128): { session: PptpSessionLog; address: string } {
    const { r, live, session } = t.checkConnected(name, INTEROP_USERS.ms.name);
    expect(live.peer).toMatch(new RegExp(`^${t.guestAddr.replace(/\./g, '\\.')}:\\d+$`));
    // MPPE at the strength and in the mode asked for, in the session and in the data plane's entry.
    expect(r.mppe).toEqual({ bits, stateless });
    expect(r.dataplaneMppe).toMatchObject({ on: true, stateless });
    // Its log: authenticated with MS-CHAPv2, up with that address, MTU and MPPE.
    expect(session).toMatchObject({ user: INTEROP_USERS.ms.name, method: 'mschapv2', upAddress: live.innerAddress, mppe: `${bits}-bit ${stateless ? 'stateless' : 'stateful'}` });
    expect(session.control.slice(0, 4)).toEqual(['in SCCRQ', 'out SCCRP', 'in OCRQ', 'out OCRP']);
    checkNothingLeft(r);
    return { session, address: live.innerAddress! };
  }

  function checkPppd(name: string, stateless: boolean, bits: MppeBits = 128) {
    const { session, address } = checkConnected(name, stateless, bits);
    // pppd's interface MTU (1400) is our MRU (1404) less MPPE's 4 octets: the gateway's TUN MTU.
    const { pppd, log } = t.checkPppdUp(name, address);
    // LCP: the gateway's MRU and MS-CHAPv2; pppd's own request (asyncmap, magic, PFC, ACFC) acknowledged.
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[LCP ConfReq id=0x[0-9a-f]+ <mru 1404> <auth chap MS-v2> <magic 0x[0-9a-f]+>\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP ConfAck id=0x[0-9a-f]+ <mru 1404> <auth chap MS-v2> <magic 0x[0-9a-f]+>\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[LCP ConfAck id=0x1 <asyncmap 0x0> <magic 0x[0-9a-f]+> <pcomp> <accomp>\]$/));
    // MS-CHAPv2 (RFC 2759): the challenge names the gateway; the Success carries the authenticator response.
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CHAP Challenge id=0x[0-9a-f]+ <[0-9a-f]{32}>, name = "vpngw"\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CHAP Success id=0x[0-9a-f]+ "S=[0-9A-F]{40} M=Access granted"\]$/));
    expect(pppd.auth).toBe('CHAP authentication succeeded');
    // CCP: only MPPE, at one strength and in one mode both ways.
    expect(log).toMatch(new RegExp(`^MPPE ${bits}-bit ${stateless ? 'stateless' : 'stateful'} compression enabled$`, 'm'));
    // IPCP after CCP (MPPE required): no early request for pppd to Terminate-Ack; VJ and the second DNS rejected.
    expect(pppd.packets.filter((l) => /^sent \[IPCP TermAck/.test(l))).toEqual([]);
    const ccpUp = log.indexOf('compression enabled');
    expect(log.indexOf('rcvd [IPCP ConfReq')).toBeGreaterThan(ccpUp);
    checkIpcp(pppd);
    // pptp's call manager and the ppp interface went away with pppd.
    const exited = t.mk(name, 'exited');
    expect(exited.args[1], `${name}: pppd had to be killed`).toBe('0');
    expect(exited.args.slice(3)).toEqual(['0', '0']);
    return { session, pppd, log, exited };
  }

  it('pppd (plain: it refuses stateful MPPE) gets 128-bit stateless, pings, answers keepalives through an idle hold, hangs up', () => {
    const { session, pppd, log, exited } = checkPppd('pppd-stateless', true);
    // The gateway asks for stateless itself, so pppd acknowledges it; pppd's own H|S is acknowledged.
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[CCP ConfReq id=0x1 <mppe \+H -M \+S -L -D -C>\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CCP ConfReq id=0x[0-9a-f]+ <mppe \+H -M \+S -L -D -C>\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[CCP ConfAck id=0x[0-9a-f]+ <mppe \+H -M \+S -L -D -C>\]$/));
    expect(pppd.packets).toContainEqual('rcvd [CCP ConfAck id=0x1 <mppe +H -M +S -L -D -C>]');
    // Keepalives through the idle hold (pppd at debug level 2 prints them all): pppd's Echo-Request every second,
    // each answered (it would end the link after 2 misses); the gateway's every second, each answered by pppd;
    // the gateway's PPTP Echo-Requests every 2 s, answered by pptp (else the control connection would have closed).
    const count = (re: RegExp) => pppd.packets.filter((l) => re.test(l)).length;
    const sentReq = count(/^sent \[LCP EchoReq /);
    expect(sentReq).toBeGreaterThanOrEqual(HOLD_S);
    expect(count(/^rcvd \[LCP EchoRep /)).toBeGreaterThanOrEqual(sentReq - 1);
    const gwReq = count(/^rcvd \[LCP EchoReq /);
    expect(gwReq).toBeGreaterThanOrEqual(HOLD_S - 1);
    // Every one answered while LCP is Opened; one that crosses pppd's Terminate-Request on the way in is not
    // (RFC 1661 5.8: Echo-Request is answered in the Opened state only), so the last may go unanswered.
    const gwRep = count(/^sent \[LCP EchoRep /);
    expect(gwRep).toBeLessThanOrEqual(gwReq);
    expect(gwRep).toBeGreaterThanOrEqual(gwReq - 1);
    expect(log).not.toMatch(/No response to \d+ echo-requests|Serial link appears to be disconnected/);
    const held = t.rec('pppd-stateless').held!;
    expect(held).toMatchObject({ control: 'established', up: true, unexpected: 0 });
    expect(held.echoRequestsSent).toBeGreaterThanOrEqual(1);
    // SIGTERM: pppd sends LCP Terminate-Request, its pptp clears the call (CCRQ) and stops the control connection.
    expect(log).toMatch(/^Terminating on signal 15/m);
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP TermReq/));
    expect(session.pppDown?.reason).toBe('peer-terminated');
    expect(session.callCleared).toBe('peer-clear');
    expect(session.control).toContain('in CCRQ');
    expect(session.control).toContain('out CDN');
    expect(exited.args[0]).toBe('5'); // pppd: EXIT_USER_REQUEST
  });

  it('a gateway without stateless MPPE asks stateful: plain pppd refuses it and hangs up; no session is left', () => {
    const r = t.rec('pppd-stateful-refused');
    expect(t.mk('pppd-stateful-refused', 'not-connected')).toBeDefined();
    const log = t.section('pppd-stateful-refused', 'pppd');
    const pppd = pppdNegotiation(log);
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CCP ConfReq id=0x[0-9a-f]+ <mppe -H -M \+S -L -D -C>\]$/));
    expect(log).toMatch(/^Refusing MPPE stateful mode offered by peer$/m);
    expect(log).toMatch(/^MPPE required but peer negotiation failed$/m);
    const s = r.sessions;
    expect(s).toHaveLength(1);
    expect(s[0]!.upAddress).toBeUndefined();
    expect(s[0]!.user).toBe(INTEROP_USERS.ms.name); // authenticated; CCP is what failed
    expect(s[0]!.pppDown?.reason).toBe('peer-terminated');
    expect(t.mk('pppd-stateful-refused', 'exited').args.slice(3)).toEqual(['0', '0']);
    checkNothingLeft(r);
  });

  it('pppd with mppe-stateful against a gateway without stateless: its H Nak\'d away, 128-bit stateful; the gateway hangs up and pppd leaves', () => {
    const { session, pppd, exited } = checkPppd('pppd-stateful', false);
    expect(pppd.packets).toContainEqual('sent [CCP ConfReq id=0x1 <mppe +H -M +S -L -D -C>]');
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CCP ConfReq id=0x[0-9a-f]+ <mppe -H -M \+S -L -D -C>\]$/));
    expect(pppd.packets).toContainEqual('rcvd [CCP ConfNak id=0x1 <mppe -H -M +S -L -D -C>]');
    expect(pppd.packets).toContainEqual('sent [CCP ConfReq id=0x2 <mppe -H -M +S -L -D -C>]');
    expect(pppd.packets).toContainEqual('rcvd [CCP ConfAck id=0x2 <mppe -H -M +S -L -D -C>]');
    // The gateway's LCP Terminate-Request reached pppd, which acknowledged it; then the call was cleared.
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[LCP TermReq id=0x[0-9a-f]+ "admin"\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[LCP TermAck/));
    expect(session.pppDown?.reason).toBe('admin');
    expect(session.control).toContain('out CDN');
    expect(['16', '5']).toContain(exited.args[0]);
  });

  it('pppd with a wrong password: the MS-CHAPv2 Failure (E=691) is understood by pppd, which hangs up; nothing is left', () => {
    const r = t.checkWrongPassword('pppd-wrong-password');
    expect(t.mk('pppd-wrong-password', 'exited').args[0]).toBe('19'); // pppd: EXIT_AUTH_TOPEER_FAILED
    checkNothingLeft(r);
  });

  it('pppd with require-mppe-40 against a gateway offering 40 bits only: 40-bit stateless both ways (L alone), pings, hangs up', () => {
    const { session, pppd, log, exited } = checkPppd('pppd-40bit', true, 40);
    // RFC 3078 2.1 option bits: L (40-bit) alone, H (stateless) on both sides' requests, each acknowledged as sent.
    expect(pppd.packets).toContainEqual('sent [CCP ConfReq id=0x1 <mppe +H -M -S +L -D -C>]');
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^rcvd \[CCP ConfReq id=0x[0-9a-f]+ <mppe \+H -M -S \+L -D -C>\]$/));
    expect(pppd.packets).toContainEqual(expect.stringMatching(/^sent \[CCP ConfAck id=0x[0-9a-f]+ <mppe \+H -M -S \+L -D -C>\]$/));
    expect(pppd.packets).toContainEqual('rcvd [CCP ConfAck id=0x1 <mppe +H -M -S +L -D -C>]');
    expect(log).not.toMatch(/128-bit|56-bit/);
    // The gateway logged the session up at 40 bits (checkConnected: `40-bit stateless`), and the hang-up was pppd's.
    expect(session.pppDown?.reason).toBe('peer-terminated');
    expect(session.callCleared).toBe('peer-clear');
    expect(exited.args[0]).toBe('5'); // pppd: EXIT_USER_REQUEST
  });

  function checkClient(name: string, stateless: boolean) {
    const { session, address } = checkConnected(name, stateless);
    t.checkClientConnected(name, address, { mppe: { bits: 128, stateless } });
    return { session, closed: t.closed<{ initiator: string; control: string | null; call: string | null; ppp: string | null; go: boolean }>(name) };
  }

  it('our client (stateful by default) against the stateless-asking gateway: the gateway follows it; the client hangs up properly', () => {
    const { session, closed } = checkClient('client-stateful', false);
    expect(closed).toMatchObject({ initiator: 'local', go: true });
    // The gateway saw LCP Terminate from the client, then the call cleared by the client (CCRQ).
    expect(session.pppDown?.reason).toBe('peer-terminated');
    expect(session.callCleared).toBe('peer-clear');
  });

  it('our client asking stateless gets it; answers keepalives through an idle hold; the gateway hangs up and the client sees it', () => {
    const { session, closed } = checkClient('client-stateless', true);
    const held = t.rec('client-stateless').held!;
    expect(held).toMatchObject({ control: 'established', up: true, unexpected: 0 });
    expect(held.echoRequestsSent).toBeGreaterThanOrEqual(1);
    expect(closed).toMatchObject({ initiator: 'peer', ppp: 'peer-terminated', go: true });
    expect(session.pppDown?.reason).toBe('admin');
  });

  it('our client asking stateless from a gateway without it: takes the gateway\'s Nak and runs stateful', () => {
    const { closed } = checkClient('client-stateful-only', false);
    expect(closed).toMatchObject({ initiator: 'local', go: true });
  });

  it('our client with a wrong password: ERR_AUTH_REJECTED; nothing is left', () => {
    const r = t.rec('client-wrong-password');
    const failed = JSON.parse(t.mk('client-wrong-password', 'failed').args[1]!) as { code: string; message: string };
    expect(failed.code).toBe('ERR_AUTH_REJECTED');
    expect(r.sessions.filter((s) => s.upAddress !== undefined)).toEqual([]);
    expect(r.sessions).toHaveLength(1);
    expect(r.sessions[0]!.records.some((x) => x.msg === 'mschapv2-server: attempt refused, retry allowed' && x.user === INTEROP_USERS.ms.name)).toBe(true);
    // The client gives up at the first Failure: LCP Terminate-Request, then it clears the call.
    expect(r.sessions[0]!.pppDown?.reason).toBe('peer-terminated');
    checkNothingLeft(r);
  });

  it('the guest ran every scenario to the end; the gateway holds no session, address or data-plane entry', () => {
    t.checkGuestDone();
    expect(t.gw.service.liveSessions).toEqual([]);
    expect(t.gw.service.dataplane!.sessions.used).toBe(0);
  });

  it('the gateway counted each authentication: seven MS-CHAPv2 successes, two bad passwords', async () => {
    const text = await t.gw.metrics.text();
    // pppd: stateless, stateful-refused (authenticated, then CCP failed), stateful, 40bit; our client: three.
    expect(text).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="success"\} 7$/m);
    expect(text).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="bad-credentials"\} 2$/m);
  });
});

/** What pppd negotiated, for the report: LCP, authentication, CCP/MPPE and IPCP packet lines. */
function negotiationSummary(p: PppdNegotiation): string[] {
  return p.packets.filter((l) => !/Echo/.test(l)).map((l) => l.replace(/<[0-9a-f]{32,}>/g, '<hex>'));
}

/** pppd's negotiation in the scenarios that connected, for the report (VPNGW_INTEROP_NEGOTIATION=1). */
function negotiations(run: InteropRun<ScenarioRecord>): string[] {
  return ['pppd-stateless', 'pppd-stateful', 'pppd-40bit'].flatMap((n) => [
    `    pppd in ${n}:`,
    ...negotiationSummary(pppdNegotiation(section(run.result.output, n, 'pppd'))).map((l) => `      ${l}`),
  ]);
}
