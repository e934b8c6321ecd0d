import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  CommandError,
  MARKER_DIR,
  NetLab,
  netnsSupport,
  reportSkip,
  run,
  sweepStaleNamespaces,
  uniqueIfName,
  withNetLab,
} from './netns.js';

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('uniqueIfName', () => {
  it('gives distinct names that fit IFNAMSIZ', () => {
    const names = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const n = uniqueIfName('veth');
      expect(n.length).toBeLessThanOrEqual(15);
      expect(n).toMatch(/^veth[a-z0-9]+$/);
      names.add(n);
    }
    expect(names.size).toBe(2000);
  });

  it('refuses prefixes that would not leave room or are not interface-safe', () => {
    expect(() => uniqueIfName('toolong')).toThrow(/prefix/);
    expect(() => uniqueIfName('a-b')).toThrow(/prefix/);
    expect(() => uniqueIfName('')).toThrow(/prefix/);
  });
});

describe('run', () => {
  it('reports exit status, stderr and timeouts without throwing', async () => {
    const r = await run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3, signal: null });
    const t = await run('sleep', ['10'], { timeoutMs: 200 });
    expect(t.code).toBe(-1);
    expect(t.error).toMatch(/timed out after 200 ms/);
    const missing = await run('/nonexistent/binary', []);
    expect(missing.error).toMatch(/cannot run .*ENOENT/);
  });
});

const support = await netnsSupport();
reportSkip('network namespace helper tests', support);

describe.skipIf(!support.ok)('NetLab (root, ip netns)', () => {
  let lab: NetLab;
  beforeAll(() => {
    lab = new NetLab();
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('connects two namespaces with a veth pair and runs commands in them', async () => {
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    expect(namespaces()).toEqual(expect.arrayContaining([a.name, b.name]));
    const net = await lab.subnet();
    const pair = await lab.veth(a, b, { aAddr: net.cidr(1), bAddr: net.cidr(2) });
    expect(await a.ip('-br', 'link', 'show', pair.a)).toMatch(new RegExp(`^${pair.a}@`));
    expect(await b.ip('-4', '-o', 'addr', 'show', 'dev', pair.b)).toContain(`inet ${net.cidr(2)}`);
    const ping = await a.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', net.host(2)], { timeoutMs: 10_000 });
    expect(ping.stdout).toMatch(/2 packets transmitted, 2 received/);
    // The interface does not exist in the root namespace.
    expect((await run('ip', ['link', 'show', pair.a])).code).not.toBe(0);
  });

  it('throws CommandError with the command and its stderr, or returns the result with allowFail', async () => {
    const a = await lab.netns('err');
    const err = await a.exec(['sh', '-c', 'echo nope >&2; exit 7']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).result.code).toBe(7);
    expect((err as CommandError).message).toMatch(/ip netns exec vpngw-err-.* sh -c .*exit status 7: nope/);
    const r = await a.exec(['sh', '-c', 'exit 5'], { allowFail: true });
    expect(r.code).toBe(5);
    await expect(a.ip('link', 'set', 'nosuchdev0', 'up')).rejects.toThrow(/Cannot find device|does not exist/);
  });

  it('creates an addressed tap device inside a namespace', async () => {
    const ns = await lab.netns('tap');
    const tap = await ns.tap({ addr: '198.18.200.1/24' });
    const link = await ns.ip('-d', 'link', 'show', tap);
    expect(link).toMatch(/tun type tap/);
    expect(await ns.ip('-4', '-o', 'addr', 'show', 'dev', tap)).toContain('inet 198.18.200.1/24');
  });

  it('links the root namespace to a namespace, with a subnet nobody else uses', async () => {
    const ns = await lab.netns('root');
    const net = await lab.subnet();
    const other = await lab.subnet();
    expect(other.network).not.toBe(net.network);
    expect(net.network).toMatch(/^198\.1[89]\.\d+\.0$/);
    const pair = await lab.veth(null, ns, { aAddr: net.cidr(1), bAddr: net.cidr(2) });
    const r = await run('ping', ['-c', '1', '-W', '2', net.host(2)]);
    expect(r.stdout).toMatch(/1 received/);
    await ns.destroy();
    // Deleting the namespace took the root-side end with it.
    expect((await run('ip', ['link', 'show', pair.a])).code).not.toBe(0);
    expect(namespaces()).not.toContain(ns.name);
  });

  it('sets sysctls in the namespace only', async () => {
    const ns = await lab.netns('sysctl');
    await ns.sysctl('net.ipv4.ip_forward', '1');
    expect((await ns.exec(['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');
    const ns2 = await lab.netns('sysctl');
    expect((await ns2.exec(['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('0');
  });

  it('kills spawned processes by PID and deletes everything at cleanup, also after a failure', async () => {
    let nsName = '';
    let pid = 0;
    const failure = await withNetLab(async (l) => {
      const ns = await l.netns('fail');
      nsName = ns.name;
      const child = ns.spawn(['sleep', '600'], { stdio: 'ignore' });
      pid = child.pid!;
      await new Promise((r) => setTimeout(r, 100));
      expect(alive(pid)).toBe(true);
      throw new Error('test body failed');
    }).catch((e: unknown) => e);
    expect((failure as Error).message).toBe('test body failed');
    expect(namespaces()).not.toContain(nsName);
    expect(alive(pid)).toBe(false);
    expect(existsSync(path.join(MARKER_DIR, nsName))).toBe(false);
  });

  it('cleanup is idempotent', async () => {
    const l = new NetLab();
    const ns = await l.netns('idem');
    await Promise.all([l.cleanup(), l.cleanup()]);
    await l.cleanup();
    expect(namespaces()).not.toContain(ns.name);
  });

  it('sweeps namespaces whose owner died, and only those of our PID namespace', async () => {
    const dead = spawnSync('true').pid!; // a PID that has exited
    const pidns = statSync('/proc/self/ns/pid').ino;
    const stale = `vpngw-stale-${process.pid.toString(36)}-x`;
    const foreign = `vpngw-foreign-${process.pid.toString(36)}-x`;
    try {
      mkdirSync(MARKER_DIR, { recursive: true });
      for (const [name, ns] of [
        [stale, pidns],
        [foreign, pidns + 1],
      ] as const) {
        execFileSync('ip', ['netns', 'add', name]);
        writeFileSync(path.join(MARKER_DIR, name), JSON.stringify({ pid: dead, pidns: ns, created: new Date().toISOString() }));
      }
      const deleted = await sweepStaleNamespaces();
      expect(deleted).toContain(stale);
      expect(deleted).not.toContain(foreign);
      expect(namespaces()).not.toContain(stale);
      expect(namespaces()).toContain(foreign);
    } finally {
      for (const name of [stale, foreign]) {
        spawnSync('ip', ['netns', 'del', name]);
        spawnSync('rm', ['-f', path.join(MARKER_DIR, name)]);
      }
    }
  });
});
