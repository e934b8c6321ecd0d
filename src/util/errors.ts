/**
 * One error hierarchy for the whole gateway, with stable string codes.
 *
 * Codes are part of the operator-facing contract (logs, CLI exit messages,
 * admin API): never rename one, only add. Parsers of network input do not
 * throw these; they return a {@link DecodeFailure} (see ./decode.ts). These are
 * for operations that fail as a whole: a config that does not validate, a TUN
 * device that cannot be opened, a WASM module of the wrong ABI.
 */
export const ERROR_CODES = [
  // configuration and start-up
  'ERR_CONFIG_INVALID',
  'ERR_CONFIG_READ',
  'ERR_USAGE',
  'ERR_STATE_DIR',
  // environment and privileges
  'ERR_NOT_ROOT',
  'ERR_NO_TUN',
  'ERR_PERMISSION',
  'ERR_DEVICE_BUSY',
  'ERR_NATIVE',
  'ERR_ADDRESS_IN_USE',
  // data plane
  'ERR_WASM_ABI',
  'ERR_WASM_LOAD',
  'ERR_LAYOUT',
  'ERR_SESSION_TABLE_FULL',
  // AAA and pools
  'ERR_AUTH_REJECTED',
  'ERR_AUTH_UNKNOWN_USER',
  'ERR_AUTH_DISABLED',
  'ERR_AUTH_METHOD',
  'ERR_AUTH_RATE_LIMITED',
  'ERR_USER_STORE',
  'ERR_POOL_EXHAUSTED',
  'ERR_POOL_CONFLICT',
  // protocols
  'ERR_PROTOCOL',
  'ERR_TIMEOUT',
  'ERR_PEER_CLOSED',
  'ERR_TLS',
  'ERR_CRYPTO_BINDING',
  'ERR_POLICY',
  'ERR_LIMIT',
  // admin / client
  'ERR_ADMIN',
  'ERR_CONNECT',
  // a bug: an exception that is not a VpnError reached the top (CLI)
  'ERR_INTERNAL',
  // bin/vpngw.js: the compiled CLI (dist/) is missing
  'ERR_NOT_BUILT',
  // a data-plane worker thread failed, exited, or did not answer in time
  'ERR_WORKER',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface VpnErrorOptions {
  cause?: unknown;
  /** Structured context for logs; must never carry secrets. */
  details?: Record<string, unknown>;
}

export class VpnError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: VpnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** One problem found while validating configuration, with the path it sits at. */
export interface ConfigIssue {
  path: string;
  message: string;
}

export class ConfigError extends VpnError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], source = 'configuration') {
    const lines = issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n');
    super('ERR_CONFIG_INVALID', `${source} is invalid (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines}`, {
      details: { issues },
    });
    this.issues = issues;
  }
}

/** Errors from the native addon (TUN, raw sockets, I/O threads). */
export class NativeError extends VpnError {
  readonly errno: number | undefined;
  readonly syscall: string | undefined;
  constructor(code: ErrorCode, message: string, errno?: number, syscall?: string) {
    super(code, message, { details: { errno, syscall } });
    this.errno = errno;
    this.syscall = syscall;
  }
}

export function isVpnError(e: unknown): e is VpnError {
  return e instanceof VpnError;
}
