/**
 * The `vpngw` command line.
 *
 *   vpngw serve [--config FILE]
 *   vpngw connect URL [--user NAME] [--password-file FILE]
 *   vpngw users add|del|list|passwd ...
 *   vpngw sessions [list] | kill ID | kill --user NAME
 *   vpngw config check FILE | show [FILE]
 *   vpngw --help | --version, and --help after any command
 *
 * Results go to stdout, progress and errors to stderr. Errors print as
 * `vpngw: <code>: <message>` with the VpnError code. Exit codes: 0 ok,
 * 1 runtime failure, 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { stringify } from 'yaml';
import { VpnError, isVpnError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { checkConfig, loadConfig } from '../config/load.js';
import { AUTH_METHODS, PROTOCOLS, type Config } from '../config/schema.js';
import type { SessionInfo } from '../admin/types.js';
import { AdminClient } from './admin-client.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, processIo, progress, usage, type CliIo } from './io.js';
import { readPassword, rejectPasswordArgs } from './password.js';
import { CLIENT_SCHEMES, findClient, findUserStore, type ClientScheme } from './plugins.js';
import { serve } from './serve.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface Command {
  /** Words after `vpngw` that select the command, e.g. ['users', 'add']. */
  path: string[];
  usage: string;
  summary: string;
  options: Options;
  /** Help text per option name. */
  help: Record<string, string>;
  /** Positional arguments: [min, max]. */
  args: [number, number];
  run(ctx: { io: CliIo; values: Values; args: string[]; version: string }): Promise<number>;
}

export const ADMIN_TOKEN_ENV = 'VPNGW_ADMIN_TOKEN';

// ---------------------------------------------------------------------------
// Version

/** The version in package.json (found from src/cli or dist/src/cli). */
export function packageVersion(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(path.resolve(here, rel), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vpngw' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return 'unknown';
}

// ---------------------------------------------------------------------------
// Shared option sets

const configOption: Options = { config: { type: 'string', short: 'c' } };
const configHelp = { config: 'config file (YAML); default: the embedded default' };

const adminOptions: Options = {
  ...configOption,
  url: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
};
const adminHelp = {
  ...configHelp,
  url: 'admin API base URL (default: from the config, http://127.0.0.1:9477)',
  'token-file': `file holding the admin bearer token (default: admin.token from the config, or ${ADMIN_TOKEN_ENV})`,
  json: 'print JSON instead of a table',
};

async function adminClient(io: CliIo, values: Values): Promise<AdminClient> {
  const config = await loadConfig(values.config !== undefined ? path.resolve(io.cwd, values.config as string) : undefined);
  let url = values.url as string | undefined;
  if (url === undefined) {
    const listen = config.admin.listen;
    const host = listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '[::1]' : listen.includes(':') ? `[${listen}]` : listen;
    url = `http://${host}:${config.admin.port}`;
  }
  try {
    new URL(url);
  } catch {
    throw usage(`--url ${url} is not a URL`);
  }
  let token: string | undefined = config.admin.token ?? io.env[ADMIN_TOKEN_ENV];
  if (values['token-file'] !== undefined) {
    const f = path.resolve(io.cwd, values['token-file'] as string);
    try {
      token = (await readFile(f, 'utf8')).trim();
    } catch (e) {
      throw usage(`cannot read --token-file ${f}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  return new AdminClient(url, token);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function sessionsTable(list: SessionInfo[]): string {
  if (!list.length) return 'no sessions\n';
  // The owning data-plane worker, when the gateway runs worker threads.
  const w = list.some((s) => s.worker !== undefined);
  return table([
    ['ID', 'PROTOCOL', 'USER', 'PEER', 'INNER', 'STATE', ...(w ? ['WORKER'] : []), 'SINCE', 'BYTES IN', 'BYTES OUT'],
    ...list.map((s) => [
      s.id,
      s.protocol,
      s.user ?? '-',
      s.peer,
      s.innerAddress ?? '-',
      s.state,
      ...(w ? [s.worker !== undefined ? String(s.worker) : '-'] : []),
      s.since,
      String(s.bytesIn),
      String(s.bytesOut),
    ]),
  ]);
}

/** A config for display: secrets replaced. */
function displayConfig(c: Readonly<Config>): unknown {
  return {
    ...c,
    admin: { ...c.admin, ...(c.admin.token !== undefined ? { token: '[redacted]' } : {}) },
    l2tp: { ...c.l2tp, ...(c.l2tp.psk !== undefined ? { psk: '[redacted]' } : {}) },
  };
}

async function userStore(io: CliIo, values: Values) {
  const config = await loadConfig(values.config !== undefined ? path.resolve(io.cwd, values.config as string) : undefined);
  const file = values.file !== undefined ? path.resolve(io.cwd, values.file as string) : config.users.file;
  const open = await findUserStore();
  if (!open) throw new VpnError('ERR_USER_STORE', 'the local user store (src/aaa) is not available in this build yet');
  return { store: await open(file), file };
}

const usersOptions: Options = { ...configOption, file: { type: 'string' } };
const usersHelp = { ...configHelp, file: 'users file (default: users.file from the config)' };
const passwordOptions: Options = { ...usersOptions, 'password-file': { type: 'string' } };
const passwordHelp = {
  ...usersHelp,
  'password-file': 'read the password from the first line of FILE (else VPNGW_PASSWORD, else a prompt on a terminal)',
};

/**
 * A comma-separated option value checked against the names it may hold
 * (order kept, duplicates dropped); anything else is a usage error naming
 * the bad entries and the valid ones.
 */
function nameList<T extends string>(option: string, value: string, names: readonly T[], what: string): T[] {
  const items = value.split(',').map((s) => s.trim());
  const bad = items.filter((s) => !(names as readonly string[]).includes(s));
  if (bad.length > 0) {
    const shown = bad.map((s) => (s === '' ? '(empty)' : JSON.stringify(s))).join(', ');
    throw usage(`--${option} ${value}: ${shown} ${bad.length === 1 ? 'is not' : 'are not'} ${what} (expected a comma-separated list of ${names.join(', ')})`);
  }
  return [...new Set(items as T[])];
}

function validUsername(name: string): string {
  // Printable, no control characters; the store decides anything stricter.
  if (!name || name.length > 256 || /[\u0000-\u001f\u007f]/.test(name)) throw usage(`invalid user name ${JSON.stringify(name)}`);
  return name;
}

// ---------------------------------------------------------------------------
// Commands

export const COMMANDS: Command[] = [
  {
    path: ['serve'],
    usage: 'vpngw serve [--config FILE]',
    summary: 'run the gateway (needs root for the TUN device); SIGHUP reloads, SIGTERM stops',
    options: configOption,
    help: configHelp,
    args: [0, 0],
    run: ({ io, values, version }) => serve(io, { configFile: values.config as string | undefined, version }),
  },
  {
    path: ['connect'],
    usage: 'vpngw connect URL [--user NAME] [--password-file FILE] [--fingerprint SHA256 | --ca FILE] [--tun NAME] [--route PREFIX]...',
    summary: `connect to a VPN server as a client (URL schemes: ${CLIENT_SCHEMES.map((s) => `${s}://`).join(', ')})`,
    options: {
      user: { type: 'string', short: 'u' },
      'password-file': { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
      fingerprint: { type: 'string' },
      ca: { type: 'string' },
      tun: { type: 'string' },
      route: { type: 'string', multiple: true },
    },
    help: {
      user: 'user name (default: the URL user part)',
      'password-file': passwordHelp['password-file'],
      fingerprint: "the server certificate's SHA-256 fingerprint (as vpngw serve prints it): pin it",
      ca: 'PEM file of the CA the server certificate must chain to (its name must match the URL host)',
      tun: 'TUN device name for the tunnel',
      route: 'route this prefix (e.g. 10.0.0.0/8) through the tunnel; repeatable',
      verbose: 'log protocol detail (debug level) to stdout',
    },
    args: [1, 1],
    async run({ io, values, args }) {
      let url: URL;
      try {
        url = new URL(args[0]!);
      } catch {
        throw usage(`${args[0]} is not a URL (expected e.g. sstp://vpn.example.com)`);
      }
      const scheme = url.protocol.replace(/:$/, '');
      if (!(CLIENT_SCHEMES as readonly string[]).includes(scheme)) {
        throw usage(`unsupported URL scheme ${scheme}:// (supported: ${CLIENT_SCHEMES.map((s) => `${s}://`).join(', ')})`);
      }
      if (url.password) throw usage('passwords are never read from the URL: use --password-file, VPNGW_PASSWORD or the prompt');
      const connect = await findClient(scheme as ClientScheme);
      if (!connect) throw new VpnError('ERR_CONNECT', `protocol ${scheme} client not available yet`);
      const username = (values.user as string | undefined) ?? decodeURIComponent(url.username);
      if (!username) throw usage('no user name: give --user NAME or put it in the URL (sstp://NAME@host)');
      const password = await readPassword(io, { passwordFile: values['password-file'] as string | undefined, confirm: false });
      const log = createLogger({ level: values.verbose ? 'debug' : 'info' });
      const ac = new AbortController();
      const stop = () => ac.abort();
      io.signals.on('SIGINT', stop);
      io.signals.on('SIGTERM', stop);
      try {
        progress(io, `connecting to ${url.host} (${scheme})`);
        const routes = values.route as unknown as string[] | undefined;
        await connect({
          url,
          username,
          password,
          log,
          signal: ac.signal,
          progress: (m) => progress(io, m),
          ...(values.ca !== undefined ? { ca: path.resolve(io.cwd, values.ca as string) } : {}),
          ...(values.fingerprint !== undefined ? { fingerprint: values.fingerprint as string } : {}),
          ...(values.tun !== undefined ? { tun: values.tun as string } : {}),
          ...(routes?.length ? { routes } : {}),
        });
        progress(io, 'disconnected');
        return EXIT_OK;
      } finally {
        io.signals.off('SIGINT', stop);
        io.signals.off('SIGTERM', stop);
      }
    },
  },
  {
    path: ['users', 'list'],
    usage: 'vpngw users list [--config FILE] [--file USERS]',
    summary: 'list local users',
    options: { ...usersOptions, json: { type: 'boolean' } },
    help: { ...usersHelp, json: 'print JSON' },
    args: [0, 0],
    async run({ io, values }) {
      const { store } = await userStore(io, values);
      const users = await store.list();
      if (values.json) io.stdout.write(`${JSON.stringify(users)}\n`);
      else if (!users.length) io.stdout.write('no users\n');
      else io.stdout.write(table([['USER', 'STATUS', 'STATIC ADDRESS'], ...users.map((u) => [u.username, u.disabled ? 'disabled' : 'enabled', u.attributes?.staticIpv4 ?? '-'])]));
      return EXIT_OK;
    },
  },
  {
    path: ['users', 'add'],
    usage: 'vpngw users add NAME [--password-file FILE] [--static-ip ADDR] [--methods M1,M2] [--tunnels T1,T2]',
    summary: 'add a local user (password prompted without echo on a terminal)',
    options: { ...passwordOptions, 'static-ip': { type: 'string' }, methods: { type: 'string' }, tunnels: { type: 'string' } },
    help: {
      ...passwordHelp,
      'static-ip': 'always give this user this inner IPv4 address',
      methods: `authentication methods this user may use (${AUTH_METHODS.join(', ')}; default all); without pap and chap-md5 only the NT hash of the password is stored`,
      tunnels: `tunnel protocols this user may use (${PROTOCOLS.join(', ')}; default all)`,
    },
    args: [1, 1],
    async run({ io, values, args }) {
      const name = validUsername(args[0]!);
      const staticIp = values['static-ip'] as string | undefined;
      if (staticIp !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(staticIp)) throw usage(`--static-ip ${staticIp} is not an IPv4 address`);
      const methods = values.methods !== undefined ? nameList('methods', values.methods as string, AUTH_METHODS, 'an authentication method') : undefined;
      const tunnels = values.tunnels !== undefined ? nameList('tunnels', values.tunnels as string, PROTOCOLS, 'a tunnel protocol') : undefined;
      const { store, file } = await userStore(io, values);
      const password = await readPassword(io, { passwordFile: values['password-file'] as string | undefined, confirm: true, prompt: `Password for ${name}: ` });
      const access = { ...(methods ? { methods } : {}), ...(tunnels ? { tunnels } : {}) };
      await store.add(name, password, staticIp !== undefined ? { staticIpv4: staticIp } : undefined, methods || tunnels ? access : undefined);
      io.stdout.write(`added user ${name} to ${file}\n`);
      return EXIT_OK;
    },
  },
  {
    path: ['users', 'del'],
    usage: 'vpngw users del NAME',
    summary: 'delete a local user (running sessions stay until killed: vpngw sessions kill --user NAME)',
    options: usersOptions,
    help: usersHelp,
    args: [1, 1],
    async run({ io, values, args }) {
      const name = validUsername(args[0]!);
      const { store } = await userStore(io, values);
      if (!(await store.remove(name))) throw new VpnError('ERR_AUTH_UNKNOWN_USER', `no user ${name}`);
      io.stdout.write(`deleted user ${name}\n`);
      return EXIT_OK;
    },
  },
  {
    path: ['users', 'passwd'],
    usage: 'vpngw users passwd NAME [--password-file FILE]',
    summary: "change a local user's password (stored as before: only its NT hash when the user's methods need no cleartext)",
    options: passwordOptions,
    help: passwordHelp,
    args: [1, 1],
    async run({ io, values, args }) {
      const name = validUsername(args[0]!);
      const { store } = await userStore(io, values);
      const password = await readPassword(io, { passwordFile: values['password-file'] as string | undefined, confirm: true, prompt: `New password for ${name}: ` });
      await store.setPassword(name, password);
      io.stdout.write(`changed the password of ${name}\n`);
      return EXIT_OK;
    },
  },
  {
    path: ['sessions', 'list'],
    usage: 'vpngw sessions [list] [--config FILE | --url URL] [--json]',
    summary: 'list sessions (through the admin API)',
    options: adminOptions,
    help: adminHelp,
    args: [0, 0],
    async run({ io, values }) {
      const list = await (await adminClient(io, values)).sessions();
      io.stdout.write(values.json ? `${JSON.stringify(list)}\n` : sessionsTable(list));
      return EXIT_OK;
    },
  },
  {
    path: ['sessions', 'kill'],
    usage: 'vpngw sessions kill ID | --user NAME [--config FILE | --url URL]',
    summary: 'disconnect a session, or every session of a user, with the protocol teardown',
    options: { ...adminOptions, user: { type: 'string', short: 'u' } },
    help: { ...adminHelp, user: 'disconnect every session of this user' },
    args: [0, 1],
    async run({ io, values, args }) {
      const user = values.user as string | undefined;
      if ((user === undefined) === (args.length === 0)) throw usage('give either a session ID or --user NAME');
      const client = await adminClient(io, values);
      if (user !== undefined) {
        const n = await client.killUser(user);
        io.stdout.write(values.json ? `${JSON.stringify({ user, killed: n })}\n` : `disconnected ${n} session${n === 1 ? '' : 's'} of ${user}\n`);
        return EXIT_OK;
      }
      const id = args[0]!;
      if (!(await client.kill(id))) throw new VpnError('ERR_ADMIN', `no session ${id}`);
      io.stdout.write(values.json ? `${JSON.stringify({ id, killed: true })}\n` : `disconnected session ${id}\n`);
      return EXIT_OK;
    },
  },
  {
    path: ['config', 'check'],
    usage: 'vpngw config check FILE',
    summary: 'validate a config file: print every problem with its path and line, exit 1 if any',
    options: {},
    help: {},
    args: [1, 1],
    async run({ io, args }) {
      const file = path.resolve(io.cwd, args[0]!);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        throw new VpnError('ERR_CONFIG_READ', `cannot read config file ${args[0]}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
      const r = checkConfig(text);
      if (r.ok) {
        io.stdout.write(`${args[0]}: ok\n`);
        return EXIT_OK;
      }
      io.stderr.write(`vpngw: ERR_CONFIG_INVALID: ${args[0]} is invalid (${r.issues.length} problem${r.issues.length === 1 ? '' : 's'}):\n`);
      for (const i of r.issues) {
        const where = i.line !== undefined ? `${args[0]}:${i.line}:${i.column}: ` : `${args[0]}: `;
        const msg = i.message.replace(/ \(line \d+, column \d+\)$/, '');
        io.stderr.write(`  ${where}${i.path ? `${i.path}: ` : ''}${msg}\n`);
      }
      return EXIT_FAILURE;
    },
  },
  {
    path: ['config', 'show'],
    usage: 'vpngw config show [FILE]',
    summary: 'print the effective configuration (defaults filled in, secrets redacted; no FILE: the embedded default)',
    options: {},
    help: {},
    args: [0, 1],
    async run({ io, args }) {
      const c = await loadConfig(args[0] !== undefined ? path.resolve(io.cwd, args[0]) : undefined);
      io.stdout.write(stringify(displayConfig(c)));
      return EXIT_OK;
    },
  },
];

// ---------------------------------------------------------------------------
// Help

function commandHelp(c: Command): string {
  const lines = [`Usage: ${c.usage}`, '', c.summary, ''];
  const rows = Object.keys(c.options).map((n) => {
    const o = c.options[n]!;
    return [`${o.short ? `-${o.short}, ` : '    '}--${n}${o.type === 'string' ? ' VALUE' : ''}`, c.help[n] ?? ''];
  });
  rows.push(['-h, --help', 'show this help']);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  lines.push('Options:', ...rows.map(([f, h]) => `  ${f!.padEnd(w)}  ${h}`));
  return `${lines.join('\n')}\n`;
}

function groupHelp(prefix: string[]): string {
  const cmds = COMMANDS.filter((c) => prefix.every((p, i) => c.path[i] === p));
  const w = Math.max(...cmds.map((c) => c.usage.length));
  const lines = [
    prefix.length ? `Usage: vpngw ${prefix.join(' ')} <command> [options]` : 'Usage: vpngw <command> [options]',
    '',
    ...(prefix.length ? [] : ['Userspace SSTP / PPTP / L2TP-IPsec VPN concentrator.', '']),
    'Commands:',
    ...cmds.map((c) => `  ${c.usage.padEnd(w)}  ${c.summary}`),
    '',
    `Run "vpngw <command> --help" for a command's options.${prefix.length ? '' : ' "vpngw --version" prints the version.'}`,
    'Exit codes: 0 ok, 1 failure, 2 usage error.',
  ];
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------
// Dispatch

function select(argv: string[]): { command: Command; rest: string[] } | { group: string[] } {
  // `vpngw sessions` alone means `vpngw sessions list`.
  if (argv[0] === 'sessions' && (argv.length === 1 || argv[1]!.startsWith('-') || (argv[1] !== 'list' && argv[1] !== 'kill'))) {
    if (!(argv[1] === '--help' || argv[1] === '-h')) argv = ['sessions', 'list', ...argv.slice(1)];
  }
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.path.every((p, i) => argv[i] === p) && (!best || c.path.length > best.path.length)) best = c;
  }
  if (best) return { command: best, rest: argv.slice(best.path.length) };
  const groups = [...new Set(COMMANDS.filter((c) => c.path.length > 1).map((c) => c.path[0]!))];
  if (argv[0] !== undefined && groups.includes(argv[0])) return { group: [argv[0]] };
  return { group: [] };
}

function printError(io: CliIo, e: unknown): number {
  if (isVpnError(e)) {
    io.stderr.write(`vpngw: ${e.code}: ${e.message}\n`);
    return e.code === 'ERR_USAGE' ? EXIT_USAGE : EXIT_FAILURE;
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' || err?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    io.stderr.write(`vpngw: ERR_USAGE: ${err.message.split('\n')[0]}\n`);
    return EXIT_USAGE;
  }
  io.stderr.write(`vpngw: ERR_INTERNAL: ${err instanceof Error ? (err.stack ?? err.message) : String(e)}\n`);
  return EXIT_FAILURE;
}

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const version = packageVersion();
  try {
    if (argv.length === 0) {
      io.stderr.write(groupHelp([]));
      return EXIT_USAGE;
    }
    if (argv[0] === '--version' || argv[0] === '-V') {
      io.stdout.write(`vpngw ${version}\n`);
      return EXIT_OK;
    }
    if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      io.stdout.write(groupHelp([]));
      return EXIT_OK;
    }
    const sel = select(argv);
    if ('group' in sel) {
      const wantsHelp = argv.includes('--help') || argv.includes('-h');
      if (wantsHelp && sel.group.length) {
        io.stdout.write(groupHelp(sel.group));
        return EXIT_OK;
      }
      io.stderr.write(`vpngw: ERR_USAGE: unknown command "${argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}"\n\n${groupHelp(sel.group)}`);
      return EXIT_USAGE;
    }
    const { command, rest } = sel;
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(commandHelp(command));
      return EXIT_OK;
    }
    rejectPasswordArgs(rest);
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    const [min, max] = command.args;
    if (positionals.length < min || positionals.length > max) {
      throw usage(`${command.path.join(' ')}: expected ${min === max ? min : `${min}..${max}`} argument${max === 1 ? '' : 's'}, got ${positionals.length} (usage: ${command.usage})`);
    }
    return await command.run({ io, values: values as Values, args: positionals, version });
  } catch (e) {
    return printError(io, e);
  }
}

/** Process entry (bin/vpngw.js). */
export async function run(): Promise<void> {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // Nothing should hold the loop open after a command; if something does
  // (a native thread, a stray socket), do not hang the shell.
  setTimeout(() => process.exit(code), 2_000).unref();
}
