/**
 * Structured logging (pino, JSON lines). Secrets never reach a log line: the
 * redaction list covers every field name the code base uses for one, and code
 * never interpolates a secret into a message string.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** Field names that may hold secrets anywhere in a logged object. */
export const SECRET_FIELDS = [
  'password',
  'secret',
  'psk',
  'ntHash',
  'nt_hash',
  'key',
  'keys',
  'masterKey',
  'sendKey',
  'recvKey',
  'hlak',
  'cmk',
  'token',
  'authorization',
  'privateKey',
] as const;

const redactPaths = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

export interface LogOptions {
  level?: LevelWithSilent;
  /** Destination stream; defaults to stdout. Tests pass a collecting stream. */
  destination?: NodeJS.WritableStream | { write(s: string): void };
  name?: string;
}

export function createLogger(opts: LogOptions = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'vpngw',
      level: opts.level ?? 'info',
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    (opts.destination as pino.DestinationStream | undefined) ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that discards everything (unit tests that do not inspect logs). */
export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * The one way a state machine reports a transition: `from -> to (reason)`,
 * with the machine's name, at debug level (info for session-level machines).
 */
export function logTransition(
  log: Logger,
  machine: string,
  from: string,
  to: string,
  reason: string,
  level: 'debug' | 'info' = 'debug',
): void {
  log[level]({ machine, from, to, reason }, `${machine}: ${from} -> ${to} (${reason})`);
}
