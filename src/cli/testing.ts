/**
 * In-memory CliIo for tests: captured stdout/stderr, a scriptable stdin
 * (optionally a TTY), an environment, and signals the test can raise.
 */
import { EventEmitter } from 'node:events';
import type { CliIo, Input, SignalName } from './io.js';

export class FakeStdin extends EventEmitter implements Input {
  rawMode = false;
  rawModeChanges: boolean[] = [];
  constructor(readonly isTTY: boolean) {
    super();
  }
  setRawMode(mode: boolean) {
    this.rawMode = mode;
    this.rawModeChanges.push(mode);
    return this;
  }
  resume() {
    return this;
  }
  pause() {
    return this;
  }
  /** Type characters (delivered on the next tick, as a terminal would). */
  type(text: string): void {
    setImmediate(() => this.emit('data', Buffer.from(text, 'utf8')));
  }
}

export class FakeSignals extends EventEmitter {
  raise(sig: SignalName): void {
    this.emit(sig);
  }
}

export interface FakeIo extends CliIo {
  out(): string;
  err(): string;
  stdin: FakeStdin;
  signals: FakeSignals;
}

export function fakeIo(opts: { env?: Record<string, string>; tty?: boolean; cwd?: string } = {}): FakeIo {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin: new FakeStdin(opts.tty ?? false),
    env: { ...opts.env },
    signals: new FakeSignals(),
    cwd: opts.cwd ?? process.cwd(),
    out: () => out,
    err: () => err,
  };
}
