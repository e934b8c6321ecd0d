/**
 * The DER writer against X.690 examples, the self-signed certificate
 * parsed back by node:crypto and by `openssl x509`, and the
 * load-or-generate rules of the state directory.
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { hex } from '../util/decode.js';
import {
  createSelfSignedCertificate,
  derLength,
  derOid,
  derTime,
  derUnsignedInteger,
  fingerprint256,
  loadOrCreateCertificate,
  parseFingerprint,
} from './cert.js';

const openssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!openssl) process.stderr.write('\n*** SKIPPED the openssl x509 cross-check: no openssl binary ***\n\n');

describe('DER encoding (X.690)', () => {
  it('lengths: short form below 128, long form with minimal octets (8.1.3)', () => {
    expect(hex(derLength(0))).toBe('00');
    expect(hex(derLength(127))).toBe('7f');
    expect(hex(derLength(128))).toBe('8180');
    expect(hex(derLength(255))).toBe('81ff');
    expect(hex(derLength(256))).toBe('820100');
    expect(hex(derLength(65536))).toBe('83010000');
  });

  it('integers: minimal, a leading 00 when the top bit is set (8.3)', () => {
    expect(hex(derUnsignedInteger(Uint8Array.of(0)))).toBe('020100');
    expect(hex(derUnsignedInteger(Uint8Array.of(0x7f)))).toBe('02017f');
    expect(hex(derUnsignedInteger(Uint8Array.of(0x80)))).toBe('02020080');
    expect(hex(derUnsignedInteger(Uint8Array.of(0, 0, 1, 0)))).toBe('02020100');
  });

  it('object identifiers (8.19): the X.690 example and the ones certificates use', () => {
    // X.690 8.19.5 example: {2 999 3} -> 06 03 88 37 03
    expect(hex(derOid('2.999.3'))).toBe('0603883703');
    expect(hex(derOid('2.5.4.3'))).toBe('0603550403');
    expect(hex(derOid('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302');
    expect(hex(derOid('1.3.6.1.5.5.7.3.1'))).toBe('06082b06010505070301');
  });

  it('times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)', () => {
    expect(Buffer.from(derTime(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)))).toString('latin1')).toBe('\x17\x0d491231235959Z');
    expect(Buffer.from(derTime(new Date(Date.UTC(2050, 0, 1, 0, 0, 0)))).toString('latin1')).toBe('\x18\x0f20500101000000Z');
  });
});

describe('self-signed certificate', () => {
  for (const algorithm of ['ecdsa-p256', 'rsa-2048'] as const) {
    it(`${algorithm}: parses back, verifies with its own key, carries the names and serverAuth`, () => {
      const now = new Date(Date.UTC(2030, 5, 1, 12, 0, 0));
      const g = createSelfSignedCertificate({ commonName: 'vpn.example.test', altNames: ['198.18.0.1', 'fd00::1'], algorithm, now, validityDays: 30 });
      const x = new X509Certificate(g.certPem);
      expect(new Uint8Array(x.raw)).toEqual(g.der);
      expect(x.subject).toBe('CN=vpn.example.test');
      expect(x.issuer).toBe('CN=vpn.example.test');
      expect(x.subjectAltName).toBe('DNS:vpn.example.test, IP Address:198.18.0.1, IP Address:FD00:0:0:0:0:0:0:1');
      expect(x.verify(x.publicKey)).toBe(true);
      expect(x.checkPrivateKey(createPrivateKey(g.keyPem))).toBe(true);
      expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
      expect(x.ca).toBe(false);
      expect(x.publicKey.asymmetricKeyType).toBe(algorithm === 'ecdsa-p256' ? 'ec' : 'rsa');
      // notBefore one hour back for clock skew, validity as asked.
      expect(new Date(x.validFrom).toISOString()).toBe('2030-06-01T11:00:00.000Z');
      expect(new Date(x.validTo).toISOString()).toBe('2030-07-01T11:00:00.000Z');
      expect(x.fingerprint256).toBe(fingerprint256(g.der));
      expect(g.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    });
  }

  it('certifies a given key; each certificate gets its own positive 16-octet serial', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const a = new X509Certificate(createSelfSignedCertificate({ commonName: 'a', privateKey }).certPem);
    const b = new X509Certificate(createSelfSignedCertificate({ commonName: 'a', privateKey }).certPem);
    expect(a.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
    expect(a.serialNumber).not.toBe(b.serialNumber);
    expect(a.publicKey.export({ type: 'spki', format: 'der' })).toEqual(b.publicKey.export({ type: 'spki', format: 'der' }));
  });

  it.skipIf(!openssl)('openssl x509 reads every field the same way', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-cert-'));
    try {
      const g = createSelfSignedCertificate({ commonName: 'vpn.example.test', altNames: ['198.18.0.1'] });
      const file = path.join(dir, 'c.pem');
      writeFileSync(file, g.certPem);
      const text = execFileSync('openssl', ['x509', '-in', file, '-noout', '-text'], { encoding: 'utf8' });
      expect(text).toMatch(/Version: 3 \(0x2\)/);
      expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
      expect(text).toMatch(/Issuer: CN ?= ?vpn\.example\.test/);
      expect(text).toMatch(/NIST CURVE: P-256/);
      expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
      expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature/);
      expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Server Authentication/);
      expect(text).toMatch(/DNS:vpn\.example\.test, IP Address:198\.18\.0\.1/);
      expect(text).toMatch(/X509v3 Subject Key Identifier:/);
      expect(execFileSync('openssl', ['verify', '-CAfile', file, file], { encoding: 'utf8' })).toMatch(/: OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a TLS client trusting it as its CA accepts the server presenting it', async () => {
    const g = createSelfSignedCertificate({ commonName: 'vpn.example.test', altNames: ['127.0.0.1'] });
    const server = tls.createServer({ cert: g.certPem, key: g.keyPem, minVersion: 'TLSv1.2' }, (s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const got = await new Promise<string>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port, ca: g.certPem }, () => c.once('data', (d) => resolve(String(d))));
        c.once('error', reject);
      });
      expect(got).toBe('ok');
    } finally {
      server.close();
    }
  });
});

describe('fingerprints', () => {
  it('accepts any case and colons or none; refuses anything but 32 octets', () => {
    const fp = 'AB:'.repeat(31) + 'AB';
    expect(parseFingerprint(fp)).toBe(fp);
    expect(parseFingerprint(fp.toLowerCase().replace(/:/g, ''))).toBe(fp);
    expect(parseFingerprint('ab:cd')).toBeUndefined();
    expect(parseFingerprint('zz'.repeat(32))).toBeUndefined();
  });
});

describe('loadOrCreateCertificate', () => {
  it('generates once (key 0600), then loads the same pair', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-cert-'));
    try {
      const files = { certFile: path.join(dir, 'state/sstp-cert.pem'), keyFile: path.join(dir, 'state/sstp-key.pem'), generate: true, commonName: 'gw.test' };
      const first = await loadOrCreateCertificate(files);
      expect(first.generated).toBe(true);
      expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
      const again = await loadOrCreateCertificate(files);
      expect(again.generated).toBe(false);
      expect(again.fingerprint256).toBe(first.fingerprint256);
      expect(again.der).toEqual(first.der);
      expect(readFileSync(files.certFile, 'utf8')).toBe(first.certPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a configured pair that is missing, half there, or mismatched is an error naming the file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-cert-'));
    try {
      const certFile = path.join(dir, 'c.pem');
      const keyFile = path.join(dir, 'k.pem');
      await expect(loadOrCreateCertificate({ certFile, keyFile, generate: false, commonName: 'x' })).rejects.toMatchObject({ code: 'ERR_CONFIG_READ' });
      const a = createSelfSignedCertificate({ commonName: 'a' });
      const b = createSelfSignedCertificate({ commonName: 'b' });
      writeFileSync(certFile, a.certPem);
      await expect(loadOrCreateCertificate({ certFile, keyFile, generate: true, commonName: 'x' })).rejects.toThrow(/k\.pem does not exist/);
      writeFileSync(keyFile, b.keyPem);
      await expect(loadOrCreateCertificate({ certFile, keyFile, generate: false, commonName: 'x' })).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' });
      writeFileSync(certFile, 'not a certificate');
      await expect(loadOrCreateCertificate({ certFile, keyFile, generate: false, commonName: 'x' })).rejects.toThrow(/c\.pem does not hold a PEM certificate/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
