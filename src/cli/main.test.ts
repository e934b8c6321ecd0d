import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { VpnError } from '../util/errors.js';
import { startAdminServer, type AdminServer } from '../admin/server.js';
import type { GatewayControl, SessionInfo } from '../admin/types.js';
import { COMMANDS, main } from './main.js';
import { needsRoot } from './serve.js';
import { registerClient, registerUserStore, type ClientOptions, type UserAccess, type UserRecord, type UserStoreAdmin } from './plugins.js';
import { fakeIo } from './testing.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(path.resolve(here, '../../package.json'), 'utf8')) as { version: string };
/** RFC 2759 NtPasswordHash known answers (published and derived), for what `users add --methods` stores. */
const ntVectors = new Map(
  (JSON.parse(readFileSync(path.resolve(here, '../../../shared/vectors/mschapv2.json'), 'utf8')) as { vectors: { id: string; password_text?: string; password_hash?: string }[] }).vectors.map(
    (v) => [v.id, v] as const,
  ),
);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function run(argv: string[], opts: Parameters<typeof fakeIo>[0] = {}) {
  const io = fakeIo({ cwd: dir, ...opts });
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err(), io };
}

describe('top level', () => {
  it('--version prints the package.json version', async () => {
    const r = await run(['--version']);
    expect(r).toMatchObject({ code: 0, out: `vpngw ${pkg.version}\n` });
  });

  it('--help lists every command', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toContain(c.usage);
    expect(r.out).toContain('Exit codes: 0 ok, 1 failure, 2 usage error.');
  });

  it('no arguments: help on stderr, exit 2', async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Usage: vpngw <command>');
  });

  it('unknown commands, options and argument counts are usage errors (exit 2)', async () => {
    let r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^vpngw: ERR_USAGE: unknown command "frobnicate"/);
    r = await run(['users', 'frob']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Usage: vpngw users <command>');
    r = await run(['config', 'check', '--bogus', 'x.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^vpngw: ERR_USAGE: Unknown option '--bogus'/);
    r = await run(['config', 'check']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^vpngw: ERR_USAGE: config check: expected 1 argument, got 0/);
    r = await run(['serve', 'extra']);
    expect(r.code).toBe(2);
  });

  it('--help works for every command and every group, exit 0', async () => {
    for (const c of COMMANDS) {
      const r = await run([...c.path, '--help']);
      expect(r.code, c.path.join(' ')).toBe(0);
      expect(r.out).toContain(`Usage: ${c.usage}`);
      expect(r.out).toContain(c.summary);
      for (const name of Object.keys(c.options)) expect(r.out, `${c.path.join(' ')} --${name}`).toContain(`--${name}`);
      expect(r.out).toContain('-h, --help');
    }
    for (const g of ['users', 'config', 'sessions']) {
      const r = await run([g, '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`vpngw ${g}`);
    }
  });

  it('never takes a password from argv', async () => {
    for (const argv of [
      ['users', 'add', 'bob', '--password', 'x'],
      ['users', 'passwd', 'bob', '--password=x'],
      ['connect', 'sstp://h', '--password', 'x'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^vpngw: ERR_USAGE: passwords are never read from the command line/);
    }
  });
});

describe('config check / show', () => {
  it('a valid file: exit 0, "ok" on stdout', async () => {
    const f = file('good.yaml', 'sstp: {port: 8443}\n');
    const r = await run(['config', 'check', f]);
    expect(r).toMatchObject({ code: 0, out: `${f}: ok\n`, err: '' });
  });

  it('an invalid file: every problem with file:line:col and path on stderr, exit 1', async () => {
    file('bad.yaml', 'sstp:\n  port: abc\nadmin:\n  listen: 0.0.0.0\nlog: {level: loud}\n');
    const r = await run(['config', 'check', 'bad.yaml']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toEqual([
      'vpngw: ERR_CONFIG_INVALID: bad.yaml is invalid (2 problems):',
      '  bad.yaml:2:9: sstp.port: expected an integer 1..65535, got "abc"',
      '  bad.yaml:5:14: log.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      '',
    ]);
  });

  it('cross-field problems are reported once the schema passes', async () => {
    file('cross.yaml', 'admin:\n  listen: 0.0.0.0\n');
    const r = await run(['config', 'check', 'cross.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('  cross.yaml:2:3: admin.token: expected a bearer token: admin.listen 0.0.0.0 is not a loopback address');
  });

  it('a YAML syntax error has its line', async () => {
    file('syntax.yaml', 'sstp:\n  port: [443\n');
    const r = await run(['config', 'check', 'syntax.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/ {2}syntax\.yaml:\d+:\d+: YAML syntax error: /);
  });

  it('a missing file: exit 1, ERR_CONFIG_READ', async () => {
    const r = await run(['config', 'check', 'nope.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('vpngw: ERR_CONFIG_READ: cannot read config file nope.yaml: ENOENT\n');
  });

  it('show prints the effective config with secrets redacted', async () => {
    const f = file('secret.yaml', 'admin: {token: "0123456789abcdef-secret"}\nl2tp: {psk: "the-psk-value"}\n');
    const r = await run(['config', 'show', f]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('port: 443');
    expect(r.out).toContain('token: "[redacted]"');
    expect(r.out).not.toContain('0123456789abcdef-secret');
    expect(r.out).not.toContain('the-psk-value');
    const d = await run(['config', 'show']);
    expect(d.out).toContain('name: vpngw0');
  });
});

// ---------------------------------------------------------------------------

function info(id: string, user: string | null): SessionInfo {
  return { id, protocol: 'sstp', user, peer: '198.18.0.2:40000', innerAddress: '198.18.128.2', state: 'up', since: '2026-01-01T00:00:00.000Z', bytesIn: 1, bytesOut: 2 };
}

describe('sessions (against a fake admin server)', () => {
  const TOKEN = 'cli-test-token-0123456789';
  let server: AdminServer;
  let gw: GatewayControl & { list: SessionInfo[]; kills: string[] };
  beforeAll(async () => {
    gw = {
      list: [info('a1', 'alice'), info('b1', 'bob'), info('a2', 'alice')],
      kills: [],
      ready: () => true,
      sessions() {
        return this.list;
      },
      async kill(id) {
        const before = this.list.length;
        this.list = this.list.filter((s) => s.id !== id);
        this.kills.push(id);
        return this.list.length < before;
      },
      async killUser(user) {
        const n = this.list.filter((s) => s.user === user).length;
        this.list = this.list.filter((s) => s.user !== user);
        this.kills.push(`user:${user}`);
        return n;
      },
    };
    server = await startAdminServer({ listen: '127.0.0.1', port: 0, token: TOKEN, gateway: gw });
  });
  afterAll(() => server.close());

  const tokenFile = () => file('token', `${TOKEN}\n`);

  it('list: a table by default, JSON with --json', async () => {
    let r = await run(['sessions', '--url', server.url, '--token-file', tokenFile()]);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +PROTOCOL +USER +PEER +INNER +STATE +SINCE +BYTES IN +BYTES OUT$/);
    expect(lines.slice(1).map((l) => l.split(/ +/)[0])).toEqual(['a1', 'b1', 'a2']);
    r = await run(['sessions', 'list', '--json', '--url', server.url], { env: { VPNGW_ADMIN_TOKEN: TOKEN } });
    expect(JSON.parse(r.out)).toEqual(gw.list);
  });

  it('address and token from the config file', async () => {
    const port = Number(new URL(server.url).port);
    const cfg = file('admin.yaml', `admin: {port: ${port}, token: "${TOKEN}"}\n`);
    const r = await run(['sessions', '--config', cfg, '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as SessionInfo[]).length).toBe(gw.list.length);
  });

  it('a wrong token: exit 1 with ERR_ADMIN', async () => {
    const r = await run(['sessions', '--url', server.url], { env: { VPNGW_ADMIN_TOKEN: 'wrong-token-xxxxxxxxxxxx' } });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^vpngw: ERR_ADMIN: the admin API refused the bearer token/);
  });

  it('kill ID, kill --user, and unknown IDs', async () => {
    const env = { VPNGW_ADMIN_TOKEN: TOKEN };
    let r = await run(['sessions', 'kill', 'b1', '--url', server.url], { env });
    expect(r).toMatchObject({ code: 0, out: 'disconnected session b1\n' });
    r = await run(['sessions', 'kill', 'b1', '--url', server.url], { env });
    expect(r.code).toBe(1);
    expect(r.err).toBe('vpngw: ERR_ADMIN: no session b1\n');
    r = await run(['sessions', 'kill', '--user', 'alice', '--url', server.url], { env });
    expect(r).toMatchObject({ code: 0, out: 'disconnected 2 sessions of alice\n' });
    expect(gw.kills).toEqual(['b1', 'b1', 'user:alice']);
    r = await run(['sessions', 'kill', '--url', server.url], { env });
    expect(r.code).toBe(2);
    r = await run(['sessions', 'kill', 'x', '--user', 'y', '--url', server.url], { env });
    expect(r.code).toBe(2);
  });

  it('no server listening: exit 1 with a hint', async () => {
    const r = await run(['sessions', '--url', 'http://127.0.0.1:1']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^vpngw: ERR_ADMIN: cannot reach the admin API at http:\/\/127\.0\.0\.1:1 .*is vpngw serve running\?/);
  });
});

// ---------------------------------------------------------------------------

describe('connect', () => {
  afterEach(() => registerClient('sstp', undefined));

  it('sstp:// without --fingerprint or --ca: refused before connecting (exit 2)', async () => {
    const r = await run(['connect', 'sstp://vpn.example.test', '--user', 'u'], { env: { VPNGW_PASSWORD: 'pw' } });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^vpngw: ERR_USAGE: refusing to connect without a way to verify the server certificate: give a CA file \(--ca\) or its SHA-256 fingerprint \(--fingerprint\)$/m);
  });

  // Schemes whose client module (src/client/<scheme>.ts) does not exist yet.
  const clientless = ['sstp', 'pptp', 'l2tp'].filter((scheme) => !existsSync(path.resolve(here, `../client/${scheme}.ts`)));

  it.skipIf(clientless.length === 0)('schemes without a client yet: exit 1, "protocol X client not available yet"', async () => {
    for (const scheme of clientless) {
      const r = await run(['connect', `${scheme}://vpn.example.test`, '--user', 'u'], { env: { VPNGW_PASSWORD: 'pw' } });
      expect(r.code, scheme).toBe(1);
      expect(r.err).toBe(`vpngw: ERR_CONNECT: protocol ${scheme} client not available yet\n`);
    }
  });

  it('unknown schemes and non-URLs are usage errors', async () => {
    let r = await run(['connect', 'https://vpn.example.test']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unsupported URL scheme https:\/\/ \(supported: sstp:\/\/, pptp:\/\/, l2tp:\/\/\)/);
    r = await run(['connect', 'not a url']);
    expect(r.code).toBe(2);
  });

  it('a registered client gets the URL, user and password, and is aborted by SIGINT', async () => {
    let got: ClientOptions | undefined;
    registerClient('sstp', async (opts) => {
      got = opts;
      opts.progress('connected');
      await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve()));
    });
    const io = fakeIo({ env: { VPNGW_PASSWORD: 's3cret' } });
    const p = main(['connect', 'sstp://alice@vpn.example.test:8443'], io);
    await new Promise((r) => setTimeout(r, 20));
    expect(got?.url.host).toBe('vpn.example.test:8443');
    expect(got?.username).toBe('alice');
    expect(got?.password).toBe('s3cret');
    io.signals.raise('SIGINT');
    expect(await p).toBe(0);
    expect(io.err()).toContain('vpngw: connected');
    expect(io.err()).toContain('vpngw: disconnected');
    expect(io.err()).not.toContain('s3cret');
    expect(io.signals.listenerCount('SIGINT')).toBe(0);
  });

  it('client failures print their VpnError code, exit 1', async () => {
    registerClient('sstp', async () => {
      throw new VpnError('ERR_TLS', 'certificate verify failed');
    });
    const r = await run(['connect', 'sstp://vpn.example.test', '-u', 'bob'], { env: { VPNGW_PASSWORD: 'x' } });
    expect(r.code).toBe(1);
    expect(r.err).toContain('vpngw: ERR_TLS: certificate verify failed\n');
  });

  it('a password in the URL is refused', async () => {
    const r = await run(['connect', 'sstp://bob:pw@vpn.example.test']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^vpngw: ERR_USAGE: passwords are never read from the URL/);
  });
});

// ---------------------------------------------------------------------------

class FakeStore implements UserStoreAdmin {
  users = new Map<string, { password: string; rec: UserRecord }>();
  async list() {
    return [...this.users.values()].map((u) => u.rec);
  }
  async add(username: string, password: string, attributes?: UserRecord['attributes'], access?: UserAccess) {
    if (this.users.has(username)) throw new VpnError('ERR_USER_STORE', `user ${username} exists`);
    const rest = { ...(access?.methods ? { methods: [...access.methods] } : {}), ...(access?.tunnels ? { tunnels: [...access.tunnels] } : {}) };
    this.users.set(username, { password, rec: { username, ...(attributes ? { attributes } : {}), ...rest } });
  }
  async remove(username: string) {
    return this.users.delete(username);
  }
  async setPassword(username: string, password: string) {
    const u = this.users.get(username);
    if (!u) throw new VpnError('ERR_AUTH_UNKNOWN_USER', `no user ${username}`);
    u.password = password;
  }
}

describe('users', () => {
  afterEach(() => registerUserStore(undefined));

  it('add/list/passwd/del on a real users file (listing never creates it)', async () => {
    const users = path.join(dir, 'real-users.yaml');
    const pw = file('real-pw.txt', 'real-pass-1\n');
    let r = await run(['users', 'list', '--file', users]);
    expect(r).toMatchObject({ code: 0, out: 'no users\n' });
    expect(existsSync(users)).toBe(false);
    r = await run(['users', 'add', 'erin', '--file', users, '--password-file', pw, '--static-ip', '198.18.128.77']);
    expect(r.code, r.err).toBe(0);
    expect(statSync(users).mode & 0o777).toBe(0o600);
    r = await run(['users', 'list', '--file', users]);
    expect(r.out).toMatch(/erin +enabled +198\.18\.128\.77/);
    r = await run(['users', 'passwd', 'erin', '--file', users], { env: { VPNGW_PASSWORD: 'real-pass-2' } });
    expect(r.code, r.err).toBe(0);
    r = await run(['users', 'passwd', 'nobody', '--file', users], { env: { VPNGW_PASSWORD: 'x' } });
    expect(r).toMatchObject({ code: 1, err: 'vpngw: ERR_AUTH_UNKNOWN_USER: no user nobody\n' });
    r = await run(['users', 'del', 'erin', '--file', users]);
    expect(r.code).toBe(0);
    r = await run(['users', 'del', 'erin', '--file', users]);
    expect(r.code).toBe(1);
    expect(readFileSync(users, 'utf8')).not.toContain('real-pass');
  });

  it('the first add creates the state directory (users add before the first serve)', async () => {
    const cfg = file('fresh-cfg.yaml', 'stateDir: fresh-state\n');
    const pw = file('fresh-pw.txt', 'fresh-pass\n');
    const users = path.join(dir, 'fresh-state', 'users.yaml');
    expect(existsSync(path.dirname(users))).toBe(false);
    let r = await run(['users', 'add', 'frank', '--config', cfg, '--password-file', pw]);
    expect(r).toMatchObject({ code: 0, out: `added user frank to ${users}\n`, err: '' });
    expect(statSync(path.dirname(users)).mode & 0o777).toBe(0o700);
    expect(statSync(users).mode & 0o777).toBe(0o600);
    r = await run(['users', 'list', '--config', cfg]);
    expect(r.out).toMatch(/^frank +enabled/m);
    // Where the directory cannot be made, the operator is told what to do (not ERR_INTERNAL).
    const blocker = file('not-a-dir', 'x');
    r = await run(['users', 'add', 'gina', '--file', path.join(blocker, 'sub', 'users.yaml'), '--password-file', pw]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`vpngw: ERR_USER_STORE: cannot create ${path.join(blocker, 'sub')} for the users file: ENOTDIR\n`);
  });

  it('add/list/passwd/del through the store, with the file from the config or --file', async () => {
    const store = new FakeStore();
    const opened: string[] = [];
    registerUserStore(async (f) => {
      opened.push(f);
      return store;
    });
    const cfg = file('users-cfg.yaml', 'stateDir: st\n');
    const pw = file('pw.txt', 'first-pass\nignored second line\n');
    let r = await run(['users', 'add', 'alice', '--config', cfg, '--password-file', pw, '--static-ip', '198.18.128.50']);
    expect(r).toMatchObject({ code: 0, out: `added user alice to ${path.join(dir, 'st', 'users.yaml')}\n` });
    expect(store.users.get('alice')).toEqual({ password: 'first-pass', rec: { username: 'alice', attributes: { staticIpv4: '198.18.128.50' } } });
    r = await run(['users', 'add', 'bob', '--file', 'other.yaml'], { env: { VPNGW_PASSWORD: 'env-pass' } });
    expect(r.code).toBe(0);
    expect(opened[1]).toBe(path.join(dir, 'other.yaml'));
    expect(store.users.get('bob')?.password).toBe('env-pass');
    expect(store.users.get('bob')?.rec).toEqual({ username: 'bob' });
    r = await run(['users', 'add', 'cole', '--methods', 'eap-mschapv2', '--tunnels', 'sstp'], { env: { VPNGW_PASSWORD: 'cole-pass' } });
    expect(r.code, r.err).toBe(0);
    expect(store.users.get('cole')?.rec).toEqual({ username: 'cole', methods: ['eap-mschapv2'], tunnels: ['sstp'] });
    r = await run(['users', 'del', 'cole']);
    r = await run(['users', 'add', 'bob'], { env: { VPNGW_PASSWORD: 'again' } });
    expect(r).toMatchObject({ code: 1, err: 'vpngw: ERR_USER_STORE: user bob exists\n' });
    r = await run(['users', 'list']);
    expect(r.out.split('\n')[0]).toMatch(/^USER +STATUS +STATIC ADDRESS$/);
    expect(r.out).toMatch(/alice +enabled +198\.18\.128\.50/);
    r = await run(['users', 'list', '--json']);
    expect((JSON.parse(r.out) as UserRecord[]).map((u) => u.username)).toEqual(['alice', 'bob']);
    r = await run(['users', 'passwd', 'alice'], { env: { VPNGW_PASSWORD: 'new-pass' } });
    expect(r.code).toBe(0);
    expect(store.users.get('alice')?.password).toBe('new-pass');
    r = await run(['users', 'passwd', 'nobody'], { env: { VPNGW_PASSWORD: 'x' } });
    expect(r).toMatchObject({ code: 1, err: 'vpngw: ERR_AUTH_UNKNOWN_USER: no user nobody\n' });
    r = await run(['users', 'del', 'bob']);
    expect(r).toMatchObject({ code: 0, out: 'deleted user bob\n' });
    r = await run(['users', 'del', 'bob']);
    expect(r.code).toBe(1);
    // Nothing printed ever carries a password.
    expect(r.out + r.err).not.toMatch(/first-pass|env-pass|new-pass/);
  });

  it('without a TTY, no password file and no env: usage error', async () => {
    registerUserStore(async () => new FakeStore());
    const r = await run(['users', 'add', 'carol']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no password: stdin is not a terminal, so give --password-file FILE or set VPNGW_PASSWORD/);
  });

  it('on a TTY: prompts twice with echo off, and refuses a mismatch', async () => {
    const store = new FakeStore();
    registerUserStore(async () => store);
    let io = fakeIo({ tty: true });
    let p = main(['users', 'add', 'dave'], io);
    await new Promise((r) => setTimeout(r, 20));
    io.stdin.type('pa');
    io.stdin.type('ss\u007fss-1\r');
    await new Promise((r) => setTimeout(r, 20));
    io.stdin.type('passs-1\n');
    expect(await p).toBe(0);
    expect(store.users.get('dave')?.password).toBe('passs-1');
    expect(io.err()).toContain('Password for dave: ');
    expect(io.err()).toContain('Again: ');
    expect(io.err()).not.toContain('pass');
    expect(io.stdin.rawModeChanges).toEqual([true, false, true, false]);

    io = fakeIo({ tty: true });
    p = main(['users', 'passwd', 'dave'], io);
    await new Promise((r) => setTimeout(r, 20));
    io.stdin.type('one\r');
    await new Promise((r) => setTimeout(r, 20));
    io.stdin.type('two\r');
    expect(await p).toBe(2);
    expect(io.err()).toContain('vpngw: ERR_USAGE: the passwords do not match');
    expect(store.users.get('dave')?.password).toBe('passs-1');
  });

  it('add --methods mschapv2 stores only the NT hash; passwd keeps it that way (RFC 2759 8.3 NtPasswordHash vectors)', async () => {
    const users = path.join(dir, 'methods-users.yaml');
    const rfc = ntVectors.get('rfc2759-9.2')!;
    const unicode = ntVectors.get('derived-unicode-password')!;
    let r = await run(['users', 'add', 'hank', '--file', users, '--methods', 'mschapv2,eap-mschapv2', '--tunnels', 'sstp,pptp'], { env: { VPNGW_PASSWORD: rfc.password_text! } });
    expect(r.code, r.err).toBe(0);
    const stored = () => (parseYaml(readFileSync(users, 'utf8')) as { users: Record<string, Record<string, unknown>> }).users.hank!;
    expect(stored()).toEqual({ ntHash: rfc.password_hash, methods: ['mschapv2', 'eap-mschapv2'], tunnels: ['sstp', 'pptp'] });
    expect(readFileSync(users, 'utf8')).not.toContain(rfc.password_text!);
    r = await run(['users', 'list', '--file', users, '--json']);
    expect(JSON.parse(r.out)).toEqual([{ username: 'hank', methods: ['mschapv2', 'eap-mschapv2'], tunnels: ['sstp', 'pptp'], credential: 'nt-hash' }]);
    // A new password (non-ASCII: UTF-16LE before MD4) is stored the same way; methods and tunnels stay.
    const pw = file('unicode-pw.txt', `${unicode.password_text}\n`);
    r = await run(['users', 'passwd', 'hank', '--file', users, '--password-file', pw]);
    expect(r.code, r.err).toBe(0);
    expect(stored()).toEqual({ ntHash: unicode.password_hash, methods: ['mschapv2', 'eap-mschapv2'], tunnels: ['sstp', 'pptp'] });
  });

  it('add --methods with pap (or chap-md5) or without --methods stores the cleartext password, which those methods need', async () => {
    const users = path.join(dir, 'pap-users.yaml');
    let r = await run(['users', 'add', 'ivy', '--file', users, '--methods', 'pap,mschapv2,pap'], { env: { VPNGW_PASSWORD: 'ivy-pass' } });
    expect(r.code, r.err).toBe(0);
    r = await run(['users', 'add', 'jack', '--file', users, '--methods', ' chap-md5 '], { env: { VPNGW_PASSWORD: 'jack-pass' } });
    expect(r.code, r.err).toBe(0);
    r = await run(['users', 'add', 'kate', '--file', users, '--tunnels', 'l2tp'], { env: { VPNGW_PASSWORD: 'kate-pass' } });
    expect(r.code, r.err).toBe(0);
    const all = (parseYaml(readFileSync(users, 'utf8')) as { users: Record<string, unknown> }).users;
    expect(all).toEqual({
      ivy: { password: 'ivy-pass', methods: ['pap', 'mschapv2'] },
      jack: { password: 'jack-pass', methods: ['chap-md5'] },
      kate: { password: 'kate-pass', tunnels: ['l2tp'] },
    });
    r = await run(['users', 'passwd', 'ivy', '--file', users], { env: { VPNGW_PASSWORD: 'ivy-pass-2' } });
    expect(r.code, r.err).toBe(0);
    expect((parseYaml(readFileSync(users, 'utf8')) as { users: Record<string, unknown> }).users.ivy).toEqual({ password: 'ivy-pass-2', methods: ['pap', 'mschapv2'] });
  });

  it('an unknown method or tunnel is a usage error naming it and the valid names; nothing is written', async () => {
    const users = path.join(dir, 'bad-method-users.yaml');
    let r = await run(['users', 'add', 'leo', '--file', users, '--methods', 'mschapv2,ntlm'], { env: { VPNGW_PASSWORD: 'leo-pass' } });
    expect(r).toMatchObject({
      code: 2,
      out: '',
      err: 'vpngw: ERR_USAGE: --methods mschapv2,ntlm: "ntlm" is not an authentication method (expected a comma-separated list of eap-mschapv2, mschapv2, chap-md5, pap)\n',
    });
    r = await run(['users', 'add', 'leo', '--file', users, '--methods', 'MSCHAPV2,'], { env: { VPNGW_PASSWORD: 'leo-pass' } });
    expect(r.code).toBe(2);
    expect(r.err).toContain('"MSCHAPV2", (empty) are not an authentication method');
    r = await run(['users', 'add', 'leo', '--file', users, '--tunnels', 'sstp,ipsec'], { env: { VPNGW_PASSWORD: 'leo-pass' } });
    expect(r).toMatchObject({ code: 2, err: 'vpngw: ERR_USAGE: --tunnels sstp,ipsec: "ipsec" is not a tunnel protocol (expected a comma-separated list of sstp, pptp, l2tp)\n' });
    expect(existsSync(users)).toBe(false);
  });

  it('users add --help documents --methods and --tunnels', async () => {
    const r = await run(['users', 'add', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('vpngw users add NAME [--password-file FILE] [--static-ip ADDR] [--methods M1,M2] [--tunnels T1,T2]');
    expect(r.out).toMatch(/--methods .*eap-mschapv2, mschapv2, chap-md5, pap.*only the NT hash/);
    expect(r.out).toMatch(/--tunnels .*sstp, pptp, l2tp/);
  });

  it('rejects user names with control characters', async () => {
    registerUserStore(async () => new FakeStore());
    const r = await run(['users', 'del', 'a\u0001b']);
    expect(r.code).toBe(2);
  });
});

describe('serve (without starting anything)', () => {
  it('an invalid config fails before any device is opened: exit 1 with every problem', async () => {
    file('serve-bad.yaml', 'sstp: {port: 0}\ndataplane: {tun: {mtu: 10}}\n');
    const r = await run(['serve', '--config', 'serve-bad.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('vpngw: ERR_CONFIG_INVALID: ');
    expect(r.err).toContain('sstp.port: expected an integer 1..65535, got 0');
    expect(r.err).toContain('dataplane.tun.mtu: expected an integer 576..1920, got 10');
    expect(r.err).not.toContain('opening TUN device');
  });

  it('a missing config file: exit 1, ERR_CONFIG_READ', async () => {
    const r = await run(['serve', '-c', 'missing.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/vpngw: ERR_CONFIG_READ: cannot read config file .*missing\.yaml: ENOENT/);
  });

  it('a TUN permission failure says it needs root', () => {
    const e = needsRoot(new VpnError('ERR_PERMISSION', 'open /dev/net/tun: Operation not permitted'), 'cannot open TUN device vpngw0') as VpnError;
    expect(e.code).toBe('ERR_PERMISSION');
    expect(e.message).toBe('cannot open TUN device vpngw0: open /dev/net/tun: Operation not permitted. vpngw serve needs root (or CAP_NET_ADMIN) to create its TUN device');
    const other = new VpnError('ERR_NO_TUN', 'x');
    expect(needsRoot(other, 'y')).toBe(other);
  });
});
