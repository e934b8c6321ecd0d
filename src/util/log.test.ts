import { describe, it, expect } from 'vitest';
import { VpnError } from './errors.js';
import { createLogger, isSecretField, logTransition, redactSecrets, REDACTED } from './log.js';

function capture(level: 'debug' | 'info' = 'debug') {
  const raw: string[] = [];
  const log = createLogger({ level, destination: { write: (s: string) => void raw.push(s) } });
  return { log, raw, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

// Distinct, greppable secret values: none may appear in any output line.
const S = {
  password: 'hunter2-PASSWORD-VALUE',
  ntHash: '8846f7eaee8fb117ad06bdd830b7586c',
  psk: 'psk-VALUE-sup3r',
  key: 'KEY-VALUE-0123',
  token: 'TOKEN-VALUE-abcdef',
  adminToken: 'ADMIN-TOKEN-VALUE',
  sharedSecret: 'SHARED-SECRET-VALUE',
  masterSendKey: 'MASTER-SEND-KEY-VALUE',
  privateKey: '-----BEGIN PRIVATE KEY-----XYZ',
  authorization: 'Bearer AUTHZ-VALUE',
};

function assertClean(raw: string[]): void {
  const all = raw.join('');
  for (const [name, v] of Object.entries(S)) expect(all, `${name} leaked`).not.toContain(v);
}

describe('secrets never reach a log line', () => {
  it('at the top level, nested 1..6 deep, in arrays, with several secret names', () => {
    const { log, raw, lines } = capture();
    log.info({ user: 'alice', password: S.password, ntHash: S.ntHash }, 'top');
    log.info({ auth: { user: 'alice', password: S.password } }, 'depth 1');
    log.info({ session: { auth: { psk: S.psk, key: S.key } } }, 'depth 2');
    log.info({ a: { b: { c: { token: S.token } } } }, 'depth 3');
    log.info({ a: { b: { c: { d: { e: { ntHash: S.ntHash, password: S.password } } } } } }, 'depth 5');
    log.info({ users: [{ name: 'a', password: S.password }, { name: 'b', ntHash: S.ntHash }] }, 'array');
    log.info({ cfg: { admin: { adminToken: S.adminToken }, radius: [{ sharedSecret: S.sharedSecret }] } }, 'camelCase names');
    log.info({ mppe: { masterSendKey: S.masterSendKey }, tls: { privateKey: S.privateKey } }, 'key material');
    log.info({ headers: { authorization: S.authorization } }, 'http');
    assertClean(raw);
    const l = lines();
    expect(l).toHaveLength(9);
    // The rest of the object survives; secrets are visibly redacted, not silently dropped.
    expect(l[0]).toMatchObject({ user: 'alice', password: REDACTED, ntHash: REDACTED, msg: 'top' });
    expect(l[3]).toMatchObject({ a: { b: { c: { token: REDACTED } } } });
    expect(l[4]).toMatchObject({ a: { b: { c: { d: { e: { ntHash: REDACTED, password: REDACTED } } } } } });
    expect(l[5]).toMatchObject({ users: [{ name: 'a', password: REDACTED }, { name: 'b', ntHash: REDACTED }] });
  });

  it('in errors (VpnError details, causes) and child-logger bindings', () => {
    const { log, raw, lines } = capture();
    const cause = Object.assign(new Error('backend said no'), { psk: S.psk });
    const err = new VpnError('ERR_AUTH_REJECTED', 'rejected', { cause, details: { user: 'alice', credentials: { password: S.password } } });
    log.error({ err }, 'auth failed');
    log.error({ nested: { err } }, 'nested error');
    const child = log.child({ session: 's1', token: S.token, peer: { key: S.key } });
    child.info({ step: 1 }, 'child line');
    child.child({ deeper: { x: { y: { password: S.password } } } }).warn('grandchild line');
    assertClean(raw);
    const l = lines();
    expect(l[0]!.err).toMatchObject({ type: 'VpnError', code: 'ERR_AUTH_REJECTED', details: { user: 'alice', credentials: { password: REDACTED } } });
    expect((l[0]!.err as { message: string }).message).toMatch(/^rejected/);
    expect(l[2]).toMatchObject({ session: 's1', token: REDACTED, step: 1 });
  });

  it('Uint8Array key material under a secret name is redacted too', () => {
    const { log, raw } = capture();
    const k = new Uint8Array(16).fill(0xab);
    log.info({ keys: { sendKey: k }, hlak: k }, 'bytes');
    expect(raw.join('')).not.toMatch(/171,171|abab/);
  });

  it('field-name rule', () => {
    for (const n of ['password', 'Password', 'PSK', 'ntHash', 'nt_hash', 'token', 'adminToken', 'user_password', 'masterReceiveKey', 'passwordHash']) {
      expect(isSecretField(n), n).toBe(true);
    }
    for (const n of ['user', 'username', 'method', 'peer', 'keyword', 'tokens_total', 'reason', 'monkey']) expect(isSecretField(n), n).toBe(false);
  });

  it('redactSecrets copies only what it changes', () => {
    const clean = { a: { b: [1, 2] }, c: 'x' };
    expect(redactSecrets(clean)).toBe(clean);
    const dirty = { a: { password: 'p', b: 1 }, c: { d: 2 } };
    const r = redactSecrets(dirty);
    expect(r).toEqual({ a: { password: REDACTED, b: 1 }, c: { d: 2 } });
    expect(r.c).toBe(dirty.c);
    expect(dirty.a.password).toBe('p');
    const cyclic: Record<string, unknown> = { name: 'x' };
    cyclic.self = cyclic;
    expect(redactSecrets(cyclic)).toBe(cyclic);
  });
});

describe('logTransition', () => {
  it('logs `machine: from -> to (reason)` with structured fields', () => {
    const { log, lines } = capture();
    logTransition(log, 'sstp', 'CONNECT_REQ_PENDING', 'CALL_CONNECTED', 'crypto binding verified');
    logTransition(log, 'gateway', 'running', 'stopping', 'SIGTERM', 'info');
    const [a, b] = lines();
    expect(a).toMatchObject({
      level: 'debug',
      machine: 'sstp',
      from: 'CONNECT_REQ_PENDING',
      to: 'CALL_CONNECTED',
      reason: 'crypto binding verified',
      msg: 'sstp: CONNECT_REQ_PENDING -> CALL_CONNECTED (crypto binding verified)',
    });
    expect(b).toMatchObject({ level: 'info', msg: 'gateway: running -> stopping (SIGTERM)' });
  });

  it('debug transitions are filtered at info level', () => {
    const { log, lines } = capture('info');
    logTransition(log, 'lcp', 'Closed', 'Req-Sent', 'Open');
    expect(lines()).toEqual([]);
  });
});
