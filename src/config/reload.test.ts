import { describe, it, expect } from 'vitest';
import { parseConfig } from './load.js';
import { diffPaths, planReload } from './reload.js';

const base = `
dataplane: {gateway: 198.18.128.1, prefixLength: 22}
pools:
  default: {ranges: ["198.18.128.0/24"]}
log: {level: info}
`;

const cfg = (extra: string) => parseConfig(`${base}\n${extra}`, { baseDir: '/etc/vpngw' });

describe('planReload', () => {
  it('an identical file changes nothing', () => {
    const p = planReload(cfg(''), cfg(''));
    expect(p.applied).toEqual([]);
    expect(p.needsRestart).toEqual([]);
  });

  it('applies users, policies, limits and log level live', () => {
    const running = cfg('');
    const next = cfg('users: {file: /srv/users.yaml}\nauth: {sstp: [mschapv2]}\nmppe: {policy: require}\nlimits: {maxSessionsPerUser: 2}\ndns: {primary: 198.18.0.53}');
    const p = planReload(running, next);
    expect(p.applied).toEqual(['auth.sstp', 'dns.primary', 'limits.maxSessionsPerUser', 'mppe.policy', 'users.file']);
    expect(p.needsRestart).toEqual([]);
    expect(p.config.auth.sstp).toEqual(['mschapv2']);
    expect(p.config.users.file).toBe('/srv/users.yaml');
    expect(Object.isFrozen(p.config.limits)).toBe(true);
  });

  it('changes of ports and the TUN name need a restart and keep the running value', () => {
    const running = parseConfig('dataplane: {prefixLength: 22}');
    const next = parseConfig('sstp: {port: 8443}\ndataplane: {prefixLength: 22, tun: {name: vpn9}}\nlog: {level: debug}');
    const p = planReload(running, next);
    expect(p.needsRestart.map((r) => r.path).sort()).toEqual(['dataplane.tun.name', 'sstp.port']);
    expect(p.applied).toEqual(['log.level']);
    expect(p.config.sstp.port).toBe(443);
    expect(p.config.dataplane.tun.name).toBe('vpngw0');
    expect(p.config.log.level).toBe('debug');
  });

  it('a growing pool and a new pool apply; a shrinking or removed pool keeps its running definition', () => {
    const running = parseConfig(
      'dataplane: {prefixLength: 22}\npools:\n  default: {ranges: ["198.18.128.0/24"]}\n  staff: {ranges: ["198.18.129.0/28"]}\n  old: {ranges: ["198.18.130.0/28"]}',
    );
    const next = parseConfig(
      'dataplane: {prefixLength: 22}\npools:\n  default: {ranges: ["198.18.128.0/24", "198.18.131.0/24"]}\n  staff: {ranges: ["198.18.129.0/29"]}\n  extra: {ranges: ["198.18.130.128/25"]}',
    );
    const p = planReload(running, next);
    expect(p.applied).toEqual(['pools.default', 'pools.extra']);
    expect(p.needsRestart.map((r) => r.path).sort()).toEqual(['pools.old', 'pools.staff']);
    expect(p.config.pools.default!.ranges).toEqual(['198.18.128.0/24', '198.18.131.0/24']);
    expect(p.config.pools.staff!.ranges).toEqual(['198.18.129.0/28']);
    expect(p.config.pools.old!.ranges).toEqual(['198.18.130.0/28']);
    expect(p.config.pools.extra!.ranges).toEqual(['198.18.130.128/25']);
  });

  it('rewriting a pool as the same addresses in another notation is growth (no-op)', () => {
    const running = parseConfig('pools: {default: {ranges: ["198.18.128.0/24"]}}');
    const next = parseConfig('pools: {default: {ranges: ["198.18.128.1-198.18.128.254"]}}');
    const p = planReload(running, next);
    expect(p.applied).toEqual(['pools.default']);
    expect(p.needsRestart).toEqual([]);
  });

  it('refuses a mix that would not hold together', () => {
    // New pools overlap a kept (shrunk) pool: the merged config is invalid, nothing is applied.
    const running = parseConfig('dataplane: {prefixLength: 22}\npools:\n  default: {ranges: ["198.18.128.0/24"]}\n  b: {ranges: ["198.18.129.0/24"]}');
    const next = parseConfig('dataplane: {prefixLength: 22}\npools:\n  default: {ranges: ["198.18.128.0/24"]}\n  c: {ranges: ["198.18.129.0/24"]}\nlog: {level: warn}');
    const p = planReload(running, next);
    expect(p.config).toBe(running);
    expect(p.applied).toEqual([]);
    expect(p.needsRestart.some((r) => /overlaps/.test(r.reason))).toBe(true);
  });
});

describe('diffPaths', () => {
  it('lists leaf paths, arrays whole', () => {
    expect(diffPaths({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { b: 2, c: [1, 2] }, e: 1 })).toEqual(['a.b', 'd', 'e']);
    expect(diffPaths({ a: [1] }, { a: [1, 2] })).toEqual(['a']);
  });
});
