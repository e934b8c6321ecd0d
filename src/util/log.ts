/**
 * Structured logging (pino, JSON lines). Secrets never reach a log line: the
 * redaction list covers every field name the code base uses for one (at any
 * depth, in errors and child bindings too, see {@link redactSecrets}), and
 * code never interpolates a secret into a message string.
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

const SECRET_EXACT = new Set<string>([...SECRET_FIELDS.map((f) => f.toLowerCase()), 'passwordhash', 'pass', 'passwd']);
/** camelCase or snake_case names ending in a secret word: adminToken, sharedSecret, masterSendKey, user_password. */
const SECRET_SUFFIX = /(?:Password|Secret|Psk|Token|Key|Keys|Hash)$|_(?:password|secret|psk|token|key|keys|hash)$/;

/** Is a field of this name treated as a secret (redacted at any depth)? */
export function isSecretField(name: string): boolean {
  return SECRET_EXACT.has(name.toLowerCase()) || SECRET_SUFFIX.test(name);
}

export const REDACTED = '[redacted]';
/** Deeper than this, a logged value is replaced wholesale (nothing below is inspected). */
const MAX_REDACT_DEPTH = 12;

/**
 * A copy of `value` with every secret-named field replaced, at any depth, in
 * objects, arrays, what toJSON() returns, and Error objects (whose enumerable
 * fields, e.g. VpnError.details, pino's error serializer would print).
 * Objects without a secret are returned as they are; byte arrays are left to
 * the field-name rule; cycles are left to pino's safe stringifier.
 */
export function redactSecrets<T>(value: T): T {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || seen.has(v)) return v;
    if (depth > MAX_REDACT_DEPTH) return '[too deep]';
    seen.add(v);
    if (Array.isArray(v)) {
      let changed = false;
      const out = v.map((x) => {
        const y = walk(x, depth + 1);
        if (y !== x) changed = true;
        return y;
      });
      return changed ? out : v;
    }
    const rec = v as Record<string, unknown>;
    const isError = v instanceof Error;
    // What JSON.stringify would print for an object with toJSON (VpnError, Date, ...).
    if (!isError && typeof rec.toJSON === 'function') {
      const j = (rec.toJSON as () => unknown)();
      const r = walk(j, depth + 1);
      return r === j ? v : r;
    }
    let out: Record<string, unknown> | undefined;
    for (const k of Object.keys(rec)) {
      const x = rec[k];
      const y = isSecretField(k) && x !== undefined ? REDACTED : walk(x, depth + 1);
      if (y !== x) {
        out ??= { ...rec };
        out[k] = y;
      }
    }
    let cause = rec.cause;
    if (isError && cause !== undefined) {
      cause = walk(rec.cause, depth + 1);
      if (cause !== rec.cause) out ??= { ...rec };
    }
    if (!out) return v;
    if (isError) {
      // A copy that is still an Error of the same class, so pino's error
      // serializer prints it as usual (type, message, stack, cause, fields).
      const e = v as unknown as Error;
      const copy = Object.assign(Object.create(Object.getPrototypeOf(e) as object) as Error, out);
      for (const [k, val] of [['message', e.message], ['stack', e.stack], ['cause', cause]] as const) {
        if (val !== undefined) Object.defineProperty(copy, k, { value: val, enumerable: false, writable: true, configurable: true });
      }
      return copy;
    }
    return out;
  };
  return walk(value, 0) as T;
}

export interface LogOptions {
  level?: LevelWithSilent;
  /** Destination stream; defaults to stdout. Tests pass a collecting stream. */
  destination?: NodeJS.WritableStream | { write(s: string): void };
  name?: string;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const root = pino(
    {
      name: opts.name ?? 'vpngw',
      level: opts.level ?? 'info',
      redact: { paths: redactPaths, censor: REDACTED },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        // Secret-named fields deeper than the redact paths reach, and in errors.
        log: (obj) => redactSecrets(obj),
      },
    },
    (opts.destination as pino.DestinationStream | undefined) ?? pino.destination({ dest: 1, sync: false }),
  );
  // pino applies no formatter to child bindings; children inherit this wrapper
  // (they are created from their parent's prototype), so every generation's
  // bindings pass through redactSecrets.
  const child = root.child;
  root.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings), options);
  } as typeof root.child;
  return root;
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
