/**
 * Reading a password for `users add|passwd` and `connect`: never from argv
 * (it would show in `ps` and shell history). On a TTY: prompted with echo
 * off (twice when setting one). Otherwise: the first line of
 * `--password-file`, or the VPNGW_PASSWORD environment variable.
 */
import { readFile } from 'node:fs/promises';
import { VpnError } from '../util/errors.js';
import { usage, type CliIo, type Input, type Output } from './io.js';

export const PASSWORD_ENV = 'VPNGW_PASSWORD';
/** Our choice: the longest password accepted (MS-CHAPv2 allows 256 Unicode characters). */
export const MAX_PASSWORD_LENGTH = 256;

/** Refuse any attempt to pass a password as an argument. */
export function rejectPasswordArgs(argv: readonly string[]): void {
  if (argv.some((a) => a === '--password' || a.startsWith('--password=') || a === '-p')) {
    throw usage(`passwords are never read from the command line (they show in ps and shell history): use --password-file FILE or ${PASSWORD_ENV}, or run on a terminal to be prompted`);
  }
}

/** Read a line from a TTY with echo off. Ctrl-C or Ctrl-D abort. */
export function promptHidden(input: Input, output: Output, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    output.write(prompt);
    let value = '';
    const finish = (err?: Error) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.setRawMode?.(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onEnd = () => finish(new VpnError('ERR_USAGE', 'no password entered (end of input)'));
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new VpnError('ERR_USAGE', 'interrupted'));
        if (ch === '\u0004') return value ? finish() : onEnd();
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    input.setRawMode?.(true);
    input.on('data', onData);
    input.on('end', onEnd);
    input.resume();
  });
}

function check(pw: string, from: string): string {
  if (pw.length === 0) throw new VpnError('ERR_USAGE', `the password from ${from} is empty`);
  if (pw.length > MAX_PASSWORD_LENGTH) throw new VpnError('ERR_USAGE', `the password from ${from} is longer than ${MAX_PASSWORD_LENGTH} characters`);
  return pw;
}

export interface PasswordOptions {
  passwordFile?: string | undefined;
  /** Ask twice on a TTY (setting a password). */
  confirm: boolean;
  prompt?: string;
}

export async function readPassword(io: CliIo, opts: PasswordOptions): Promise<string> {
  if (opts.passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.passwordFile, 'utf8');
    } catch (e) {
      throw new VpnError('ERR_USAGE', `cannot read --password-file ${opts.passwordFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    return check(text.split(/\r?\n/)[0] ?? '', opts.passwordFile);
  }
  const env = io.env[PASSWORD_ENV];
  if (env !== undefined) return check(env, PASSWORD_ENV);
  if (!io.stdin.isTTY) {
    throw usage(`no password: stdin is not a terminal, so give --password-file FILE or set ${PASSWORD_ENV}`);
  }
  const first = check(await promptHidden(io.stdin, io.stderr, opts.prompt ?? 'Password: '), 'the prompt');
  if (opts.confirm) {
    const again = await promptHidden(io.stdin, io.stderr, 'Again: ');
    if (again !== first) throw new VpnError('ERR_USAGE', 'the passwords do not match');
  }
  return first;
}
