/**
 * What a CLI command may touch of the outside world, injected so commands run
 * in-process under test: output streams, stdin (for password prompts), the
 * environment, signals, and the working directory.
 */
import { VpnError } from '../util/errors.js';

export interface Output {
  write(s: string): unknown;
}

/** The slice of a TTY read stream the password prompt uses. */
export interface Input {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: 'data', fn: (chunk: Buffer | string) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  off(event: 'data', fn: (chunk: Buffer | string) => void): unknown;
  off(event: 'end', fn: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

export type SignalName = 'SIGHUP' | 'SIGTERM' | 'SIGINT';

export interface Signals {
  on(sig: SignalName, fn: () => void): unknown;
  off(sig: SignalName, fn: () => void): unknown;
}

export interface CliIo {
  stdout: Output;
  stderr: Output;
  stdin: Input;
  env: Record<string, string | undefined>;
  signals: Signals;
  cwd: string;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signals: process,
    cwd: process.cwd(),
  };
}

/** Exit codes: 0 ok, 1 runtime failure, 2 usage error. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function usage(message: string): VpnError {
  return new VpnError('ERR_USAGE', message);
}

/** Progress for long commands: on stderr, never on stdout (which carries results). */
export function progress(io: CliIo, message: string): void {
  io.stderr.write(`vpngw: ${message}\n`);
}
