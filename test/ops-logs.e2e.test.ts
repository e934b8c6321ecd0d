/**
 * Secret-free logs of real sessions (root): the ops lab gateway (SSTP and
 * PPTP in ns A) at log level debug, every line captured, and our clients in
 * ns B, their logs captured too. One session per authentication method and
 * tunnel:
 *
 *   SSTP: PAP, MS-CHAPv2, EAP-MSCHAPv2        PPTP (MPPE 128): MS-CHAPv2, EAP-MSCHAPv2
 *
 * each carrying ICMP echo, then closed; plus a wrong password per tunnel, and
 * admin requests with the right and a wrong bearer token. The gateway's
 * verifier records each MS-CHAPv2 NT-Response and the master keys it
 * yielded, from which the test derives every key the session held: the NT
 * hash and its hash, the MPPE master key, MasterSend/ReceiveKey, the MPPE
 * start and initial session keys, the SSTP HLAK (= the first half of the EAP
 * MSK) and the CMK (SHA-1 and SHA-256). None of them, in any printable form
 * (test/lib/secrets.ts), may appear in any line, nor may the passwords or
 * the admin tokens; and no secret-named field may carry anything but the
 * redaction marker.
 *
 * The same lines must let an operator follow a session: every line of it has
 * the session id, the protocol and the peer (`ip:port`, the same on the
 * PPTP control connection's lines); every line from the authentication on
 * (PPP, LCP, IPCP, CCP, the SSTP call, the PPTP control connection and call,
 * session up, the close) has the user; every state machine transition reads
 * `machine: from -> to (reason)` with those fields. A refused login's lines
 * (the verifier's too) name the session and the protocol.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { netnsSupport, reportSkip } from './lib/netns.js';
import { captureLogger, startOpsLab, LabClients, OPS_GATEWAY, type OpsLab } from './lib/ops-lab.js';
import { findSecrets, secretForms, unredactedSecretFields, type Secret } from './lib/secrets.js';
import { native } from '../src/dataplane/native.js';
import { isVpnError } from '../src/util/errors.js';
import type { AuthMethod } from '../src/ppp/auth/types.js';
import { hashNtPasswordHash, ntPasswordHash } from '../src/ppp/auth/mschapv2-crypto.js';
import { getMasterKey, mppeSessionKeys, msChapV2Hlak } from '../src/ppp/auth/mppe-keys.js';
import { deriveCmk } from '../src/sstp/binding.js';
import { HashProtocol } from '../src/sstp/constants.js';
import { icmpEcho, ipv4Packet } from './lib/packets.js';

const facility = await netnsSupport();
const built = (() => {
  try {
    native.abi();
    return true;
  } catch {
    return false;
  }
})();
const f = !facility.ok ? facility : !built ? { ok: false, reason: 'the native addon is not built (npm ci)' } : facility;
reportSkip('secret-free logs of real sessions', f);

// Random per run, so a hit cannot be a coincidence with fixed text elsewhere.
const PASSWORDS = { alice: `alice-${randomBytes(9).toString('base64url')}`, bob: `bob-${randomBytes(9).toString('base64url')}` };
const WRONG = `wrong-${randomBytes(9).toString('base64url')}`;
const TOKEN = `admin-${randomBytes(18).toString('base64url')}`;
const WRONG_TOKEN = `nope-${randomBytes(18).toString('base64url')}`;

const CASES: { protocol: 'sstp' | 'pptp'; method: AuthMethod; user: keyof typeof PASSWORDS }[] = [
  { protocol: 'sstp', method: 'pap', user: 'alice' },
  { protocol: 'sstp', method: 'mschapv2', user: 'bob' },
  { protocol: 'sstp', method: 'eap-mschapv2', user: 'alice' },
  { protocol: 'pptp', method: 'mschapv2', user: 'bob' },
  { protocol: 'pptp', method: 'eap-mschapv2', user: 'alice' },
];

const TRANSITION = /^(\S+): (.+) -> (.+) \((.*)\)$/;

describe.skipIf(!f.ok)('logs of real sessions at debug level carry no secret and let an operator follow a session', () => {
  let L: OpsLab;
  let C: LabClients;
  const client = captureLogger('debug');
  const secrets: Secret[] = [];
  const sessionIds = new Map<string, string>();

  beforeAll(async () => {
    L = await startOpsLab({ users: PASSWORDS, sstpMethods: ['mschapv2', 'eap-mschapv2', 'pap'], adminToken: TOKEN, pptp: true, logLevel: 'debug' });
    C = new LabClients(L, { log: client.log });
    for (const [u, pw] of Object.entries(PASSWORDS)) {
      const h = ntPasswordHash(pw);
      secrets.push({ name: `${u}'s password`, value: pw }, { name: `${u}'s NT hash`, value: h }, { name: `${u}'s NT hash hash`, value: hashNtPasswordHash(h) });
    }
    secrets.push({ name: 'the wrong password', value: WRONG }, { name: 'the admin token', value: TOKEN }, { name: 'the wrong admin token', value: WRONG_TOKEN });
  }, 90_000);

  afterAll(async () => {
    await C?.close();
    await L?.close();
  });

  for (const c of CASES) {
    it(`${c.protocol} with ${c.method}: a session up, echo through it, closed`, async () => {
      const from = L.logs.length;
      const recorded = L.msChapV2.length;
      const t = await C.open(c.protocol, c.user, PASSWORDS[c.user], { methods: [c.method] });
      for (let seq = 1; seq <= 3; seq++) expect(t.sendIp(ipv4Packet(t.ipv4, OPS_GATEWAY, 1, icmpEcho(8, t.sessionIndex, seq, new Uint8Array(64)), 64, seq))).toBe(true);
      const until = Date.now() + 10_000;
      while (t.echoReplies() < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(t.echoReplies()).toBe(3);
      const [listed] = L.gateway.sessions.list();
      expect(listed).toMatchObject({ protocol: c.protocol, user: c.user, state: 'up' });
      const id = listed!.id;
      sessionIds.set(`${c.protocol}/${c.method}`, id);
      await t.close();
      const gone = Date.now() + 10_000;
      while (L.gateway.sessions.size > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
      expect(L.gateway.sessions.size).toBe(0);

      // The keys this session held.
      const mine = L.msChapV2.slice(recorded);
      if (c.method === 'pap') expect(mine).toEqual([]);
      else {
        expect(mine.map((m) => [m.username, m.mppe !== undefined])).toEqual([[c.user, true]]);
        const m = mine[0]!;
        const keys = m.mppe!;
        const tag = `${c.protocol}/${c.method}`;
        const master = getMasterKey(hashNtPasswordHash(ntPasswordHash(PASSWORDS[c.user])), m.ntResponse);
        const hlak = msChapV2Hlak(keys, 'server');
        const mppe = mppeSessionKeys(keys, 128);
        secrets.push(
          { name: `${tag} MPPE master key`, value: master },
          { name: `${tag} MasterSendKey`, value: keys.masterSendKey },
          { name: `${tag} MasterReceiveKey`, value: keys.masterReceiveKey },
          { name: `${tag} HLAK / first half of the EAP MSK`, value: hlak },
          { name: `${tag} CMK (SHA-256)`, value: deriveCmk(hlak, HashProtocol.Sha256) },
          { name: `${tag} CMK (SHA-1)`, value: deriveCmk(hlak, HashProtocol.Sha1) },
          { name: `${tag} MPPE send session key`, value: mppe.send.sessionKey },
          { name: `${tag} MPPE receive session key`, value: mppe.receive.sessionKey },
        );
      }

      // Following the session in the gateway's lines.
      const lines = L.logs.slice(from);
      expect(lines.some((l) => l.level === 'debug'), 'debug lines are logged').toBe(true);
      const own = lines.filter((l) => l.session === id);
      expect(own.length).toBeGreaterThan(10);
      const peerHost = L.link.host(2);
      const peers = new Set<string>();
      for (const l of own) {
        expect(l.protocol, String(l.msg)).toBe(c.protocol);
        expect(String(l.peer), String(l.msg)).toMatch(new RegExp(`^${peerHost.replace(/\./g, '\\.')}:\\d+$`));
        peers.add(String(l.peer));
      }
      expect([...peers], 'one peer, named alike on every line').toHaveLength(1);
      if (c.protocol === 'pptp') expect(own.some((l) => l.pptp === 'pptp-pac'), 'control connection lines').toBe(true);
      // The user: on every line from the authentication on, whichever layer wrote it.
      const authAt = own.findIndex((l) => l.msg === `${c.protocol}: PPP authenticated`);
      expect(authAt, 'the authentication line').toBeGreaterThanOrEqual(0);
      const afterAuth = own.slice(authAt);
      expect(afterAuth.length).toBeGreaterThan(10);
      expect(afterAuth.filter((l) => l.user !== c.user).map((l) => String(l.msg)), 'post-authentication lines without the user').toEqual([]);
      const userLines = afterAuth.map((l) => String(l.msg));
      expect(userLines).toEqual(expect.arrayContaining([`${c.protocol}: PPP authenticated`, `${c.protocol}: session up`, 'PPP: Authenticate -> Network (authenticated)']));
      expect(userLines.some((m) => /^(IPCP|LCP): /.test(m)), userLines.join('\n')).toBe(true);
      expect(userLines.some((m) => (c.protocol === 'sstp' ? /^sstp: call closed$/ : /^pptp: (call cleared|control connection closed)$/).test(m)), userLines.join('\n')).toBe(true);
      if (c.protocol === 'pptp') expect(afterAuth.some((l) => l.pptp === 'pptp-pac' || l.callId !== undefined), 'control connection or call lines after the authentication').toBe(true);
      else expect(afterAuth.some((l) => typeof l.machine === 'string' && String(l.machine).startsWith('sstp-server')), 'SSTP call lines after the authentication').toBe(true);
      // Transitions: one line each, `machine: from -> to (reason)` with the fields, through the phases of the method.
      const transitions = own.filter((l) => l.machine !== undefined && l.from !== undefined);
      for (const l of transitions) {
        expect(String(l.msg)).toBe(`${String(l.machine)}: ${String(l.from)} -> ${String(l.to)} (${String(l.reason)})`);
        expect(TRANSITION.test(String(l.msg))).toBe(true);
      }
      const msgs = transitions.map((l) => String(l.msg));
      expect(msgs).toEqual(
        expect.arrayContaining([
          `PPP: Establish -> Authenticate (lcp-opened, ${c.method})`,
          'PPP: Authenticate -> Network (authenticated)',
          ...(c.protocol === 'sstp'
            ? [expect.stringMatching(/^sstp-server: Server_Call_Connected_Pending -> Server_Call_Connected \(crypto binding verified/)]
            : ['pptp-call: idle -> established (OCRQ accepted, OCRP sent)', 'CCP: Ack-Sent -> Opened (RCA)']),
        ]),
      );
      const machines = new Set(transitions.map((l) => String(l.machine)));
      for (const m of ['PPP', 'LCP', 'IPCP', `${c.method === 'eap-mschapv2' ? 'eap' : c.method}-server`]) expect([...machines], m).toContain(m);
    }, 60_000);
  }

  it('refused logins (wrong password) on both tunnels log the refusal, not the password', async () => {
    const from = L.logs.length;
    for (const p of ['sstp', 'pptp'] as const) {
      const e = await C.open(p, 'alice', WRONG).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(isVpnError(e) && e.code, String(e)).toBe('ERR_AUTH_REJECTED');
    }
    // Each refusal is logged with the session, protocol, peer, user and reason: by the session and by the verifier.
    const refusals = L.logs.slice(from).filter((l) => l.reason === 'bad-credentials' && l.session !== undefined);
    const verifier = refusals.filter((l) => l.msg === 'authentication refused');
    const own = refusals.filter((l) => l.msg !== 'authentication refused');
    for (const lines of [own, verifier]) {
      expect(lines.map((l) => [l.protocol, l.user, typeof l.peer])).toEqual(
        expect.arrayContaining([
          ['sstp', 'alice', 'string'],
          ['pptp', 'alice', 'string'],
        ]),
      );
    }
    // The verifier's line names the session whose own lines tell the refusal.
    for (const p of ['sstp', 'pptp']) {
      const session = own.find((l) => l.protocol === p)!.session;
      expect(verifier.filter((l) => l.protocol === p).map((l) => [l.session, l.peer])).toEqual([[session, own.find((l) => l.protocol === p)!.peer]]);
    }
  }, 60_000);

  it('admin requests with a wrong and the right bearer token', async () => {
    const bad = await fetch(`${L.admin.url}/sessions`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } });
    expect(bad.status).toBe(401);
    const good = await fetch(`${L.admin.url}/sessions`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(good.status).toBe(200);
    expect(L.logs.some((l) => l.msg === 'admin: request without a valid bearer token')).toBe(true);
  });

  it('no secret of any session, user or admin appears in any gateway or client line, in any form', async () => {
    // The detector finds what it looks for (every form of every secret, planted in a line).
    for (const s of secrets) {
      for (const form of secretForms(s.value).filter((x) => x.length >= 6)) {
        expect(findSecrets([`{"msg":"planted","v":"${form}"}`], [s]).length, `${s.name} planted`).toBeGreaterThan(0);
      }
    }
    // Every case ran and contributed its keys.
    expect(sessionIds.size).toBe(CASES.length);
    expect(secrets.length).toBe(3 * 2 + 3 + 8 * CASES.filter((c) => c.method !== 'pap').length);

    const gatewayHits = findSecrets(L.rawLogs, secrets);
    expect(gatewayHits.map((h) => `${h.secret} in gateway line ${h.line}: ${h.excerpt}`)).toEqual([]);
    const clientHits = findSecrets(client.raw, secrets);
    expect(clientHits.map((h) => `${h.secret} in client line ${h.line}: ${h.excerpt}`)).toEqual([]);
    expect(unredactedSecretFields(L.logs)).toEqual([]);
    expect(unredactedSecretFields(client.parsed)).toEqual([]);
    process.stderr.write(
      `\n  logs at debug: ${L.rawLogs.length} gateway lines and ${client.raw.length} client lines of ${CASES.length} sessions (+2 refused), ` +
        `${secrets.length} secrets x ${secretForms(new Uint8Array(16)).length} forms: none found\n`,
    );
  });
});
