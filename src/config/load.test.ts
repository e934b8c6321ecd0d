import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, VpnError } from '../util/errors.js';
import { checkConfig, defaultConfig, loadConfig, parseConfig, type LocatedIssue } from './load.js';
import { DEFAULT_ADMIN_PORT, enabledProtocols, poolSize, ringSlotsById, tunNetwork } from './schema.js';
import * as abi from '../../assembly/abi.js';
import { DEFAULT_RING_SLOTS } from '../dataplane/layout.js';

function issues(text: string): LocatedIssue[] {
  const r = checkConfig(text);
  if (r.ok) throw new Error('expected issues, config validated');
  return r.issues;
}

/** The one issue at `p` (fails if there is none or several). */
function issueAt(text: string, p: string): LocatedIssue {
  const all = issues(text);
  const at = all.filter((i) => i.path === p);
  expect(at, `issues: ${JSON.stringify(all)}`).toHaveLength(1);
  return at[0]!;
}

describe('embedded default', () => {
  it('parsing {} gives a working default', () => {
    const c = defaultConfig();
    expect(c.sstp).toMatchObject({ enabled: true, listen: '0.0.0.0', port: 443, helloInterval: 60_000, negotiationTimeout: 60_000, proxyProtocol: false, proxyTrusted: [], tlsMaxVersion: 'TLSv1.3' });
    expect(c.sstp.hashes).toEqual(['sha256', 'sha1']);
    expect(c.pptp).toMatchObject({ enabled: false, port: 1723, allowPap: false, requireMppe: true, echoInterval: 60_000 });
    expect(c.l2tp.enabled).toBe(false);
    expect(c.dataplane.tun).toEqual({ name: 'vpngw0', mtu: 1400, txQueueLen: 2048 });
    expect(c.dataplane.gateway).toBe('198.18.128.1');
    expect(c.dataplane.workers).toBe(Math.min(64, os.availableParallelism()));
    expect(c.pools).toEqual({ default: { ranges: ['198.18.128.0/24'] } });
    // 254 host addresses minus the gateway.
    expect(poolSize(c, c.pools.default!)).toBe(253);
    expect(tunNetwork(c)).toEqual({ first: 0xc6128000, last: 0xc61280ff });
    expect(c.admin).toMatchObject({ enabled: true, listen: '127.0.0.1', port: DEFAULT_ADMIN_PORT, metrics: true });
    expect(c.admin.token).toBeUndefined();
    expect(c.users.demoUser).toBe(true);
    expect(c.users.file).toBe('/var/lib/vpngw/users.yaml');
    expect(c.sstp.certificate).toBe('/var/lib/vpngw/sstp-cert.pem');
    expect(c.auth.sstp).toEqual(['eap-mschapv2', 'mschapv2']);
    expect(c.auth.pptp).toEqual(['mschapv2', 'eap-mschapv2']);
    expect(c.limits.maxSessions).toBe(c.dataplane.workers * 1024);
    expect(c.log.level).toBe('info');
    expect(enabledProtocols(c)).toEqual(['sstp']);
    expect(ringSlotsById(c)[abi.RingId.CTRL]).toBe(DEFAULT_RING_SLOTS[abi.RingId.CTRL]);
  });

  it('an empty file and a comment-only file are the default', () => {
    for (const text of ['', '# nothing here\n', '{}']) {
      const r = checkConfig(text);
      expect(r.ok).toBe(true);
    }
  });

  it('is deeply frozen: mutation throws in strict mode', () => {
    const c = defaultConfig();
    expect(Object.isFrozen(c.sstp)).toBe(true);
    expect(() => {
      (c.sstp as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (c.pools.default!.ranges as string[]).push('198.18.128.0/25');
    }).toThrow(TypeError);
    expect(() => {
      (c as { log: unknown }).log = {};
    }).toThrow(TypeError);
  });
});

describe('per-section issues with exact paths', () => {
  const cases: [string, string, string | RegExp][] = [
    ['stateDir: ""', 'stateDir', 'expected a file path, got ""'],
    ['dataplane: {workers: 0}', 'dataplane.workers', 'expected an integer 1..64, got 0'],
    ['dataplane: {maxSessionsPerWorker: 1.5}', 'dataplane.maxSessionsPerWorker', 'expected an integer 1..65536, got 1.5'],
    ['dataplane: {rings: {tunRx: 1000}}', 'dataplane.rings.tunRx', 'expected a power of two 2..65536, got 1000'],
    ['dataplane: {rings: {bogus: 8}}', 'dataplane.rings.bogus', 'unknown key'],
    ['dataplane: {tun: {name: "this-name-is-too-long"}}', 'dataplane.tun.name', /^expected an interface name/],
    ['dataplane: {tun: {mtu: 9000}}', 'dataplane.tun.mtu', 'expected an integer 576..1920, got 9000'],
    ['dataplane: {tun: {txQueueLen: 8}}', 'dataplane.tun.txQueueLen', 'expected an integer 16..65536, got 8'],
    ['dataplane: {gateway: 198.18.128.300}', 'dataplane.gateway', 'expected an IPv4 address like 198.18.128.1, got "198.18.128.300"'],
    ['pools: {default: {ranges: ["198.18.128.0/33"]}}', 'pools.default.ranges[0]', /^expected a CIDR block/],
    ['pools: {default: {ranges: ["198.18.128.9-198.18.128.2"]}}', 'pools.default.ranges[0]', 'range 198.18.128.9-198.18.128.2 ends before it starts'],
    ['pools: {default: {ranges: ["198.18.128.1/24"]}}', 'pools.default.ranges[0]', /has host bits set/],
    ['pools: {default: {ranges: ["10.0.0.0/24"]}}', 'pools.default.ranges[0]', /outside the TUN network 198\.18\.128\.0\/24/],
    ['pools: {default: {ranges: ["198.18.128.0/24"], ipv6Prefix: "fd00:18::/64"}}', 'pools.default.ipv6Prefix', 'unknown key'],
    ['users: {demoUser: "yes"}', 'users.demoUser', 'expected true or false, got "yes"'],
    ['auth: {sstp: [mschapv3]}', 'auth.sstp[0]', 'expected one of eap-mschapv2, mschapv2, chap-md5, pap, got "mschapv3"'],
    ['auth: {methods: []}', 'auth.methods', /^expected a list of authentication methods/],
    ['mppe: {policy: maybe}', 'mppe.policy', 'expected one of deny, allow, require, got "maybe"'],
    ['mppe: {strengths: [64]}', 'mppe.strengths[0]', 'expected one of 128, 56, 40, got 64'],
    ['dns: {primary: 8.8.8}', 'dns.primary', /got "8\.8\.8"/],
    ['nbns: {secondary: 5}', 'nbns.secondary', /got 5$/],
    ['sstp: {port: abc}', 'sstp.port', 'expected an integer 1..65535, got "abc"'],
    ['sstp: {listen: "300.1.1.1"}', 'sstp.listen', /^expected an IP address to listen on/],
    ['sstp: {hashes: [md5]}', 'sstp.hashes[0]', 'expected one of sha256, sha1, got "md5"'],
    ['sstp: {proxyTrusted: [10.0.0.0/33]}', 'sstp.proxyTrusted[0]', 'expected a CIDR block like 10.0.0.0/24 or fd00::/64, got "10.0.0.0/33"'],
    ['sstp: {tlsMaxVersion: TLSv1.1}', 'sstp.tlsMaxVersion', 'expected one of TLSv1.2, TLSv1.3, got "TLSv1.1"'],
    ['sstp: {helloInterval: 10x}', 'sstp.helloInterval', /^expected a duration 1s\.\.3600s .*, got "10x"/],
    ['sstp: {negotiationTimeout: 0}', 'sstp.negotiationTimeout', /got 0$/],
    ['sstp: {proxyProtocol: 1}', 'sstp.proxyProtocol', 'expected true or false, got 1'],
    ['pptp: {port: 70000}', 'pptp.port', 'expected an integer 1..65535, got 70000'],
    ['pptp: {echoInterval: "2h"}', 'pptp.echoInterval', /got "2h"$/],
    ['pptp: {echoTimeout: "500ms"}', 'pptp.echoTimeout', /^expected a duration 1s\.\.3600s .*, got "500ms"$/],
    ['pptp: {lcpEchoInterval: -1}', 'pptp.lcpEchoInterval', /^expected a duration 0s\.\.3600s .*, got -1$/],
    ['pptp: {lcpEchoFailures: 0}', 'pptp.lcpEchoFailures', 'expected an integer 1..100, got 0'],
    ['l2tp: {enabled: true}', 'l2tp.psk', 'expected a pre-shared key when l2tp.enabled is true, got nothing'],
    ['l2tp: {natTPort: -1}', 'l2tp.natTPort', 'expected an integer 1..65535, got -1'],
    ['limits: {maxSessionsPerUser: 0}', 'limits.maxSessionsPerUser', 'expected an integer 1..65536, got 0'],
    ['limits: {handshakeTimeout: "1h"}', 'limits.handshakeTimeout', /got "1h"$/],
    ['limits: {maxSessions: 100000000}', 'limits.maxSessions', /got 100000000$/],
    ['log: {level: verbose}', 'log.level', 'expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"'],
    ['log: {pretty: true}', 'log.pretty', 'unknown key'],
    ['admin: {port: 0}', 'admin.port', 'expected an integer 1..65535, got 0'],
    ['admin: {listen: 0.0.0.0}', 'admin.token', 'expected a bearer token: admin.listen 0.0.0.0 is not a loopback address'],
    ['admin: {token: short}', 'admin.token', 'expected at least 16 characters, got 5'],
    ['sstpp: {}', 'sstpp', 'unknown key'],
  ];
  for (const [text, p, msg] of cases) {
    it(`${p}: ${text}`, () => {
      const i = issueAt(text, p);
      const bare = i.message.replace(/ \(line \d+, column \d+\)$/, '');
      if (typeof msg === 'string') expect(bare).toBe(msg);
      else expect(bare).toMatch(msg);
    });
  }

  it('cross-field rules point at the field to fix', () => {
    expect(issueAt('sstp: {pool: nosuch}', 'sstp.pool').message).toMatch(/^no pool named "nosuch" \(pools: default\)/);
    expect(issueAt('mppe: {policy: deny}', 'pptp.requireMppe').message).toMatch(/mppe\.policy is deny/);
    expect(issueAt('auth: {pptp: [chap-md5]}', 'auth.pptp').message).toMatch(/needs a method that derives MPPE keys/);
    expect(issueAt('pptp: {requireMppe: false}\nauth: {pptp: [pap]}', 'auth.pptp').message).toMatch(/pptp\.allowPap is false/);
    expect(issueAt('pptp: {enabled: true, port: 443}', 'pptp.port').message).toMatch(/already used by sstp\.port/);
    expect(issueAt('dataplane: {workers: 1, maxSessionsPerWorker: 10}\nlimits: {maxSessions: 11}', 'limits.maxSessions').message).toMatch(
      /exceeds the data plane's capacity 10/,
    );
    expect(
      issueAt('pools:\n  a: {ranges: ["198.18.128.0/25"]}\n  b: {ranges: ["198.18.128.100-198.18.128.200"]}\nsstp: {pool: a}\npptp: {pool: a}\nl2tp: {pool: a}', 'pools.b.ranges[0]')
        .message,
    ).toMatch(/overlaps pools\.a\.ranges\[0\]/);
    expect(issueAt('dataplane: {gateway: 198.18.128.0}', 'dataplane.gateway').message).toMatch(/network or broadcast/);
  });

  it('a disabled admin listener on a public address needs no token; a token on loopback is allowed', () => {
    expect(checkConfig('admin: {enabled: false, listen: 0.0.0.0}').ok).toBe(true);
    expect(checkConfig('admin: {token: "0123456789abcdef"}').ok).toBe(true);
    expect(checkConfig('admin: {listen: 198.18.0.1, token: "0123456789abcdef"}').ok).toBe(true);
  });

  it('parses durations in every unit, and bare numbers as seconds', () => {
    const r = checkConfig('sstp: {helloInterval: 1.5}\npptp: {echoInterval: "2m"}\nlimits: {handshakeTimeout: "1500ms"}');
    expect(r.ok && [r.config.sstp.helloInterval, r.config.pptp.echoInterval, r.config.limits.handshakeTimeout]).toEqual([1500, 120_000, 1500]);
  });

  it('pptp keep-alives: the LCP echo can be turned off (0); defaults 30 s x 3 and 60 s', () => {
    const r = checkConfig('pptp: {lcpEchoInterval: 0, echoTimeout: 5s}');
    expect(r.ok && [r.config.pptp.lcpEchoInterval, r.config.pptp.lcpEchoFailures, r.config.pptp.echoTimeout]).toEqual([0, 3, 5_000]);
    const d = checkConfig('');
    expect(d.ok && [d.config.pptp.lcpEchoInterval, d.config.pptp.echoInterval, d.config.pptp.echoTimeout]).toEqual([30_000, 60_000, 60_000]);
  });

  it('accepts ranges, single addresses and several pools', () => {
    const r = checkConfig(
      'dataplane: {gateway: 198.18.128.1, prefixLength: 20}\npools:\n  default: {ranges: ["198.18.129.0/24", "198.18.130.10-198.18.130.19", "198.18.131.7"]}\n  staff: {ranges: ["198.18.132.0/28"]}',
    );
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(poolSize(r.config, r.config.pools.default!)).toBe(254 + 10 + 1);
      expect(poolSize(r.config, r.config.pools.staff!)).toBe(14);
    }
  });
});

describe('several errors at once, with locations', () => {
  it('reports every issue in one pass, each with its line and column', () => {
    const text = ['sstp:', '  port: abc', '  listen: nowhere', 'pptp:', '  allowPap: maybe', 'log:', '  level: loud', 'typo: 1', ''].join('\n');
    const all = issues(text);
    const byPath = Object.fromEntries(all.map((i) => [i.path, i]));
    expect(Object.keys(byPath).sort()).toEqual(['log.level', 'pptp.allowPap', 'sstp.listen', 'sstp.port', 'typo']);
    expect(byPath['sstp.port']).toMatchObject({ line: 2, column: 9, message: 'expected an integer 1..65535, got "abc" (line 2, column 9)' });
    expect(byPath['sstp.listen']).toMatchObject({ line: 3, column: 11 });
    expect(byPath['pptp.allowPap']).toMatchObject({ line: 5, column: 13 });
    expect(byPath['log.level']).toMatchObject({ line: 7, column: 10 });
    expect(byPath['typo']).toMatchObject({ line: 8, column: 1, message: 'unknown key (line 8, column 1)' });
  });

  it('throws one ConfigError carrying every issue', () => {
    let err: unknown;
    try {
      parseConfig('sstp: {port: abc}\nadmin: {port: 0}\n', { source: 'test.yaml' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.code).toBe('ERR_CONFIG_INVALID');
    expect(ce.issues.map((i) => i.path)).toEqual(['sstp.port', 'admin.port']);
    expect(ce.message).toContain('test.yaml is invalid (2 problems)');
    expect(ce.message).toContain('  sstp.port: expected an integer 1..65535, got "abc" (line 1, column 14)');
  });
});

describe('YAML syntax errors', () => {
  it('carry line and column', () => {
    const all = issues('sstp:\n  port: 443\n  listen: [unclosed\nlog:\n  level: info\n');
    expect(all.length).toBeGreaterThan(0);
    expect(all[0]!.path).toBe('');
    expect(all[0]!.message).toMatch(/^YAML syntax error: .* \(line \d+, column \d+\)$/);
    expect(all[0]!.line).toBeGreaterThanOrEqual(3);
  });

  it('a duplicate key is an error at its line', () => {
    const all = issues('sstp:\n  port: 443\n  port: 444\n');
    expect(all[0]).toMatchObject({ line: 3, column: 3 });
    expect(all[0]!.message).toMatch(/YAML syntax error: Map keys must be unique/);
  });

  it('a tab-indented file reports the tab line', () => {
    const all = issues('sstp:\n\tport: 443\n');
    expect(all[0]!.line).toBe(2);
  });
});

describe('loadConfig', () => {
  it('reads a file, resolves relative paths against its directory, and freezes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-cfg-'));
    try {
      const file = path.join(dir, 'vpngw.yaml');
      writeFileSync(file, 'stateDir: state\nsstp: {certificate: certs/c.pem, key: /etc/k.pem}\n');
      const c = await loadConfig(file);
      expect(c.stateDir).toBe(path.join(dir, 'state'));
      expect(c.users.file).toBe(path.join(dir, 'state', 'users.yaml'));
      expect(c.sstp.certificate).toBe(path.join(dir, 'certs', 'c.pem'));
      expect(c.sstp.key).toBe('/etc/k.pem');
      expect(Object.isFrozen(c.users)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing file is ERR_CONFIG_READ; an invalid one is ERR_CONFIG_INVALID naming the file', async () => {
    await expect(loadConfig('/nonexistent/vpngw.yaml')).rejects.toMatchObject({ code: 'ERR_CONFIG_READ' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-cfg-'));
    try {
      const file = path.join(dir, 'bad.yaml');
      writeFileSync(file, 'sstp: {port: abc}\n');
      const err = await loadConfig(file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VpnError);
      expect((err as ConfigError).code).toBe('ERR_CONFIG_INVALID');
      expect((err as ConfigError).message).toContain(`${file} is invalid`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without a file, loads the embedded default', async () => {
    expect((await loadConfig()).sstp.port).toBe(443);
  });
});
