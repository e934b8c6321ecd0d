import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, readFile, rm, stat, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hex } from '../util/decode.js';
import { ntPasswordHash } from '../ppp/auth/mschapv2-crypto.js';
import { allowedMethods, UserStore, UserStoreError } from './user-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'vpngw-users-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GOOD = `# operators' comment at the top
version: 1
users:
  alice:
    password: wonderland   # alice's comment
    staticIpv4: 198.18.128.10
    tunnels: [sstp, l2tp]
    mppe: require
    maxSessions: 2
  bob:
    ntHash: 44EBBA8D5312B8D611474411F56989AE
    methods: [mschapv2]
    enabled: false
  carol:
    password: "1234"
    expires: 2020-01-01
`;

async function write(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, text);
  return f;
}

function issuesOf(e: unknown): { path: string; message: string }[] {
  if (!(e instanceof UserStoreError)) throw e;
  return [...e.issues];
}

describe('UserStore loading and validation', () => {
  it('loads every field; derives the NT hash from a password; lists no secret', async () => {
    const store = await UserStore.load(await write('users.yaml', GOOD));
    expect(store.size).toBe(3);
    const alice = store.get('alice')!;
    expect(alice).toMatchObject({ username: 'alice', password: 'wonderland', enabled: true, staticIpv4: '198.18.128.10', tunnels: ['sstp', 'l2tp'], mppe: 'require', maxSessions: 2 });
    expect(hex(alice.ntHash)).toBe(hex(ntPasswordHash('wonderland')));
    const bob = store.get('bob')!;
    expect(bob.password).toBeUndefined();
    expect(hex(bob.ntHash)).toBe('44ebba8d5312b8d611474411f56989ae');
    expect(bob.enabled).toBe(false);
    expect(store.get('carol')!.expiresAt).toBe(Date.UTC(2020, 0, 1));
    expect(allowedMethods(alice)).toEqual(['pap', 'chap-md5', 'mschapv2', 'eap-mschapv2']);
    expect(allowedMethods(bob)).toEqual(['mschapv2']);
    const listed = JSON.stringify(store.list());
    expect(listed).not.toContain('wonderland');
    expect(listed).not.toContain('44EBBA8D');
    expect(store.list().map((u) => [u.username, u.credential])).toEqual([
      ['alice', 'password'],
      ['bob', 'nt-hash'],
      ['carol', 'password'],
    ]);
  });

  it('an NT-hash-only user without a method list gets the MS-CHAPv2 methods only', () => {
    const store = UserStore.fromObject({ users: { h: { ntHash: '00'.repeat(16) } } });
    expect(allowedMethods(store.get('h')!)).toEqual(['mschapv2', 'eap-mschapv2']);
  });

  it('reports every problem with its path', async () => {
    const bad = `version: 2
colour: blue
users:
  alice: { password: a, ntHash: 44ebba8d5312b8d611474411f56989ae }
  bob: { password: b, staticIpv4: 198.18.0.300 }
  carol: { password: c, methods: [mschapv3] }
  dave: { password: d, tunnels: [] }
  eve: { ntHash: 44ebba8d5312b8d611474411f56989ae, methods: [pap, mschapv2] }
  frank: { password: f, colour: red }
  gina: { }
  hank: { password: 1234 }
  ivan: { ntHash: xyz }
  judy: { password: j, maxSessions: 0, expires: tomorrow, enabled: "yes" }
`;
    const e = await UserStore.load(await write('bad.yaml', bad)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserStoreError);
    expect((e as UserStoreError).code).toBe('ERR_USER_STORE');
    const paths = issuesOf(e).map((i) => i.path);
    for (const p of [
      'version',
      'colour',
      'users.alice.ntHash',
      'users.bob.staticIpv4',
      'users.carol.methods[0]',
      'users.dave.tunnels',
      'users.eve.methods',
      'users.frank.colour',
      'users.gina',
      'users.hank.password',
      'users.ivan.ntHash',
      'users.judy.maxSessions',
      'users.judy.expires',
      'users.judy.enabled',
    ]) {
      expect(paths, p).toContain(p);
    }
    const eve = issuesOf(e).find((i) => i.path === 'users.eve.methods')!;
    expect(eve.message).toMatch(/pap need the cleartext password/);
  });

  it('rejects two users with the same static address', () => {
    const e = (() => {
      try {
        UserStore.fromObject({ users: { a: { password: 'x', staticIpv4: '198.18.0.5' }, b: { password: 'y', staticIpv4: '198.18.0.5' } } });
      } catch (x) {
        return x;
      }
    })();
    expect(issuesOf(e)).toEqual([{ path: 'users.b.staticIpv4', message: '198.18.0.5 is also the static address of a' }]);
  });

  it('reports YAML syntax errors and duplicate keys with their line', async () => {
    const e1 = await UserStore.load(await write('syntax.yaml', 'users:\n  alice: [unclosed\n')).catch((x: unknown) => x);
    expect(issuesOf(e1)[0]!.message).toMatch(/YAML .*line/);
    const e2 = await UserStore.load(await write('dup.yaml', 'users:\n  a: {password: x}\n  a: {password: y}\n')).catch((x: unknown) => x);
    expect(issuesOf(e2)[0]!.message).toMatch(/DUPLICATE_KEY/);
  });

  it('reads JSON stores, and reports a missing file', async () => {
    const store = await UserStore.load(await write('users.json', JSON.stringify({ users: { alice: { password: 'x' } } })));
    expect(store.get('alice')?.password).toBe('x');
    const e = await UserStore.load(path.join(dir, 'missing.yaml')).catch((x: unknown) => x);
    expect(issuesOf(e)[0]!.message).toMatch(/cannot read/);
    const j = await UserStore.load(await write('bad.json', '{ users: ')).catch((x: unknown) => x);
    expect(issuesOf(j)[0]!.message).toMatch(/not valid JSON/);
  });

  it('accepts an empty users section', async () => {
    expect((await UserStore.load(await write('empty.yaml', 'users:\n'))).size).toBe(0);
    expect(UserStore.fromObject({}).size).toBe(0);
  });
});

describe('UserStore reload', () => {
  it('swaps in a good file, keeps the old store on a bad or missing one', async () => {
    const f = await write('users.yaml', GOOD);
    const store = await UserStore.load(f);
    const before = store.get('alice');
    await writeFile(f, GOOD.replace('  carol:', '  dave:\n    password: d\n  carol:'));
    expect(await store.reload()).toEqual({ ok: true, users: 4 });
    expect(store.get('dave')?.password).toBe('d');
    // A record handed out before the reload is untouched (sessions keep theirs).
    expect(before?.password).toBe('wonderland');

    await writeFile(f, 'users:\n  alice: { password: x, staticIpv4: nope }\n  bob: {}\n');
    const r = await store.reload();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toEqual(['users.alice.staticIpv4', 'users.bob']);
    expect(store.size).toBe(4);
    expect(store.get('dave')).toBeDefined();

    await unlink(f);
    expect((await store.reload()).ok).toBe(false);
    expect(store.size).toBe(4);
  });
});

describe('UserStore edits (add, del, passwd, update)', () => {
  it('add stores an NT hash when the methods allow it, the password otherwise; keeps comments; mode 0600', async () => {
    const f = await write('users.yaml', GOOD);
    const store = await UserStore.load(f);
    await store.add('dora', { password: 'explorer', methods: ['mschapv2', 'eap-mschapv2'], tunnels: ['sstp'] });
    await store.add('erin', { password: 'plain', staticIpv4: '198.18.128.11' });
    const text = await readFile(f, 'utf8');
    expect(text).toContain("# operators' comment at the top");
    expect(text).toContain("# alice's comment");
    expect(text).not.toContain('explorer');
    expect(text).toContain(hex(ntPasswordHash('explorer')));
    expect(text).toContain('plain');
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(store.get('dora')?.password).toBeUndefined();
    expect(hex(store.get('dora')!.ntHash)).toBe(hex(ntPasswordHash('explorer')));
    expect(store.get('erin')?.password).toBe('plain');
    // What is on disk reloads to the same thing.
    const again = await UserStore.load(f);
    expect(again.list()).toEqual(store.list());
  });

  it('refuses an existing user, a missing one, or an edit that would not validate, changing nothing', async () => {
    const f = await write('users.yaml', GOOD);
    const store = await UserStore.load(f);
    const before = await readFile(f, 'utf8');
    expect(issuesOf(await store.add('alice', { password: 'x' }).catch((e: unknown) => e))[0]!.message).toBe('user exists');
    expect(issuesOf(await store.del('zed').catch((e: unknown) => e))[0]!.message).toBe('no such user');
    expect(issuesOf(await store.passwd('zed', 'x').catch((e: unknown) => e))[0]!.message).toBe('no such user');
    const dup = await store.add('fred', { password: 'x', staticIpv4: '198.18.128.10' }).catch((e: unknown) => e);
    expect(issuesOf(dup)[0]!.path).toBe('users.fred.staticIpv4');
    const bad = await store.add('gus', { password: 'x', methods: [] }).catch((e: unknown) => e);
    expect(issuesOf(bad)[0]!.path).toBe('users.gus.methods');
    expect(await readFile(f, 'utf8')).toBe(before);
    expect(store.size).toBe(3);
  });

  it('passwd replaces the credential in the stored form; del removes; update changes settings', async () => {
    const f = await write('users.yaml', GOOD);
    const store = await UserStore.load(f);
    await store.passwd('bob', 'newpass');
    expect(hex(store.get('bob')!.ntHash)).toBe(hex(ntPasswordHash('newpass')));
    expect(store.get('bob')!.password).toBeUndefined();
    await store.passwd('alice', 'rabbit');
    expect(store.get('alice')!.password).toBe('rabbit');
    await store.update('bob', { enabled: true, maxSessions: 3 });
    await store.update('alice', { staticIpv4: undefined });
    expect(store.get('bob')).toMatchObject({ enabled: true, maxSessions: 3 });
    expect(store.get('alice')!.staticIpv4).toBeUndefined();
    await store.del('carol');
    expect(store.get('carol')).toBeUndefined();
    const text = await readFile(f, 'utf8');
    expect(text).not.toContain('carol');
    expect(text).not.toContain('newpass');
    expect(text).toContain('rabbit');
    expect((await UserStore.load(f)).list()).toEqual(store.list());
  });

  it('serializes concurrent edits', async () => {
    const f = await write('users.yaml', 'users: {}\n');
    const store = await UserStore.load(f);
    await Promise.all(Array.from({ length: 8 }, (_, i) => store.add(`u${i}`, { password: `p${i}` })));
    expect(store.size).toBe(8);
    expect((await UserStore.load(f)).size).toBe(8);
  });

  it('edits a JSON store as JSON and an in-memory store in memory', async () => {
    const f = await write('users.json', JSON.stringify({ users: {} }));
    const store = await UserStore.load(f);
    await store.add('alice', { password: 'x' });
    expect(JSON.parse(await readFile(f, 'utf8'))).toEqual({ users: { alice: { password: 'x' } } });
    const mem = UserStore.fromObject({ users: {} });
    await mem.add('bob', { password: 'y', methods: ['mschapv2'] });
    expect(mem.get('bob')?.password).toBeUndefined();
  });

  it('ensure() creates a store with a demo user once, and loads an existing one', async () => {
    const f = path.join(dir, 'state', '..', 'first.yaml');
    const first = await UserStore.ensure(f, { demoUser: true });
    expect(first.created).toBe(true);
    expect(first.demoPassword).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(first.store.get('demo')?.password).toBe(first.demoPassword);
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    const second = await UserStore.ensure(f, { demoUser: true });
    expect(second.created).toBe(false);
    expect(second.demoPassword).toBeUndefined();
    expect(second.store.get('demo')?.password).toBe(first.demoPassword);
    const none = await UserStore.ensure(path.join(dir, 'none.yaml'));
    expect(none.store.size).toBe(0);
  });
});
