/**
 * The SSTP server certificate: load the configured PEM pair, or, with none
 * configured, generate a self-signed one on first start and keep it in the
 * state directory. Node can sign but has no X.509 writer, so this file
 * carries a minimal DER encoder (ITU-T X.690) for exactly one structure,
 * the self-signed certificate of RFC 5280 section 4.1:
 *
 *   Certificate ::= SEQUENCE {
 *     tbsCertificate       TBSCertificate,
 *     signatureAlgorithm   AlgorithmIdentifier,
 *     signatureValue       BIT STRING }
 *
 *   TBSCertificate ::= SEQUENCE {
 *     version         [0] EXPLICIT INTEGER v3(2),
 *     serialNumber        INTEGER (positive, <= 20 octets, 4.1.2.2),
 *     signature           AlgorithmIdentifier (= signatureAlgorithm, 4.1.2.3),
 *     issuer              Name (= subject: self-signed),
 *     validity            SEQUENCE { notBefore Time, notAfter Time },
 *     subject             Name,
 *     subjectPublicKeyInfo (node:crypto exports it as DER),
 *     extensions      [3] EXPLICIT SEQUENCE OF Extension }
 *
 * Extensions: basicConstraints (critical, cA FALSE), keyUsage (critical,
 * digitalSignature; RSA adds keyEncipherment), extKeyUsage serverAuth (what
 * Windows' SSTP client requires of a server certificate), subjectAltName
 * (DNS names and IP addresses: what TLS clients match the host against,
 * RFC 6125), subjectKeyIdentifier (RFC 5280 4.2.1.2 method 1).
 *
 * Times (4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050.
 * ECDSA P-256 is the default: its handshake costs a fraction of RSA's, which
 * is what bounds the tunnel set-up rate.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { VpnError } from '../util/errors.js';

// ---------------------------------------------------------------------------
// DER (X.690 section 10: definite lengths, minimal encodings)

/** Universal and context tags used here. */
export const Tag = {
  Boolean: 0x01,
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Utf8String: 0x0c,
  Sequence: 0x30,
  Set: 0x31,
  UtcTime: 0x17,
  GeneralizedTime: 0x18,
} as const;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** X.690 8.1.3: short form below 128, else long form with the minimal number of length octets. */
export function derLength(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`bad DER length ${n}`);
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, content: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(tag), derLength(content.length), content]);
}

export const seq = (...items: Uint8Array[]) => tlv(Tag.Sequence, concat(items));
export const set = (...items: Uint8Array[]) => tlv(Tag.Set, concat(items));
/** [n] EXPLICIT: constructed context-specific tag around a whole TLV. */
export const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner);

/** X.690 8.3: two's complement, minimal; a non-negative value whose top bit is set gets a 0x00 in front. */
export function derUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(i);
  return tlv(Tag.Integer, m[0]! & 0x80 ? concat([Uint8Array.of(0), m]) : m);
}

export const derSmallInteger = (v: number) => derUnsignedInteger(Uint8Array.of(v));

/** X.690 8.19: first two arcs in one octet (40 * a + b), then base-128 with continuation bits. */
export function derOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((s) => {
    if (!/^\d+$/.test(s)) throw new RangeError(`bad OID ${dotted}`);
    return Number(s);
  });
  if (arcs.length < 2 || arcs[0]! > 2) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  const push = (v: number) => {
    const groups = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) groups.unshift(0x80 | (v & 0x7f));
    out.push(...groups);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(Tag.Oid, Uint8Array.from(out));
}

/** X.690 8.6: a BIT STRING whose length is a whole number of octets (no unused bits). */
export const derBitString = (bytes: Uint8Array) => tlv(Tag.BitString, concat([Uint8Array.of(0), bytes]));
export const derOctetString = (bytes: Uint8Array) => tlv(Tag.OctetString, bytes);
export const derUtf8 = (s: string) => tlv(Tag.Utf8String, new Uint8Array(Buffer.from(s, 'utf8')));
export const derBoolean = (v: boolean) => tlv(Tag.Boolean, Uint8Array.of(v ? 0xff : 0x00));
export const derNull = () => Uint8Array.of(Tag.Null, 0);

/** RFC 5280 4.1.2.5: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) after. */
export function derTime(d: Date): Uint8Array {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y <= 2049) return tlv(Tag.UtcTime, new Uint8Array(Buffer.from(`${p(y % 100)}${rest}`, 'latin1')));
  return tlv(Tag.GeneralizedTime, new Uint8Array(Buffer.from(`${p(y, 4)}${rest}`, 'latin1')));
}

// ---------------------------------------------------------------------------
// From the specs: object identifiers

export const OID = {
  commonName: '2.5.4.3', // X.520
  ecdsaWithSha256: '1.2.840.10045.4.3.2', // RFC 5758 3.2 (parameters absent)
  sha256WithRsa: '1.2.840.113549.1.1.11', // RFC 4055 5 (parameters NULL)
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** RFC 5280 4.2.1.3 KeyUsage bits (bit 0 is the most significant bit of the first octet). */
const KU_DIGITAL_SIGNATURE = 0x80;
const KU_KEY_ENCIPHERMENT = 0x20;

// ---------------------------------------------------------------------------
// Our choices

export type CertAlgorithm = 'ecdsa-p256' | 'rsa-2048';
export const DEFAULT_CERT_ALGORITHM: CertAlgorithm = 'ecdsa-p256';
/** Ten years: a self-signed certificate is pinned or installed by hand; renewing it means touching every client. */
export const DEFAULT_VALIDITY_DAYS = 3650;
/** Back-date notBefore so a client whose clock runs a little behind still accepts it. */
const CLOCK_SKEW_MS = 60 * 60 * 1000;

function extension(oid: string, critical: boolean, value: Uint8Array): Uint8Array {
  return seq(derOid(oid), ...(critical ? [derBoolean(true)] : []), derOctetString(value));
}

function name(commonName: string): Uint8Array {
  return seq(set(seq(derOid(OID.commonName), derUtf8(commonName))));
}

function subjectAltName(names: readonly string[]): Uint8Array {
  const entries = names.map((n) => {
    const v = isIP(n);
    if (v === 4) return tlv(0x87, Uint8Array.from(n.split('.').map(Number)));
    if (v === 6) return tlv(0x87, ipv6Bytes(n));
    // dNSName [2] IMPLICIT IA5String
    if (!/^[A-Za-z0-9*]([A-Za-z0-9.*-]{0,252})$/.test(n)) throw new VpnError('ERR_USAGE', `certificate name ${JSON.stringify(n)} is not a DNS name or IP address`);
    return tlv(0x82, new Uint8Array(Buffer.from(n, 'latin1')));
  });
  return seq(...entries);
}

function ipv6Bytes(a: string): Uint8Array {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export interface SelfSignedOptions {
  /** Subject CN and the first subjectAltName. */
  commonName: string;
  /** subjectAltName entries (DNS names, IPv4/IPv6 addresses); the CN is added when missing. */
  altNames?: readonly string[];
  algorithm?: CertAlgorithm;
  validityDays?: number;
  /** Signing time (tests). */
  now?: Date;
  /** An existing key pair to certify (tests); generated otherwise. */
  privateKey?: KeyObject;
}

export interface GeneratedCertificate {
  /** The certificate, DER. */
  der: Uint8Array;
  certPem: string;
  keyPem: string;
}

/** Build and sign a self-signed X.509 v3 certificate. */
export function createSelfSignedCertificate(opts: SelfSignedOptions): GeneratedCertificate {
  const algorithm = opts.algorithm ?? DEFAULT_CERT_ALGORITHM;
  const privateKey =
    opts.privateKey ??
    (algorithm === 'ecdsa-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
      : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
  const isEc = privateKey.asymmetricKeyType === 'ec';
  if (!isEc && privateKey.asymmetricKeyType !== 'rsa') throw new VpnError('ERR_USAGE', `unsupported key type ${privateKey.asymmetricKeyType}`);
  const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  // RFC 5280 4.2.1.2 (1): SHA-1 of the subjectPublicKey BIT STRING value (without tag, length, unused-bits octet).
  const keyBits = spkiKeyBits(spki);
  const ski = new Uint8Array(createHash('sha1').update(keyBits).digest());

  const sigAlg = isEc ? seq(derOid(OID.ecdsaWithSha256)) : seq(derOid(OID.sha256WithRsa), derNull());
  const now = opts.now ?? new Date();
  const notBefore = new Date(Math.floor((now.getTime() - CLOCK_SKEW_MS) / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + (opts.validityDays ?? DEFAULT_VALIDITY_DAYS) * 86_400_000);
  const serial = new Uint8Array(randomBytes(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive and 16 octets long (RFC 5280 4.1.2.2)

  const names = [opts.commonName, ...(opts.altNames ?? []).filter((n) => n !== opts.commonName)];
  const extensions = seq(
    extension(OID.basicConstraints, true, seq()),
    extension(OID.keyUsage, true, tlv(Tag.BitString, isEc ? Uint8Array.of(7, KU_DIGITAL_SIGNATURE) : Uint8Array.of(5, KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT))),
    extension(OID.extKeyUsage, false, seq(derOid(OID.serverAuth))),
    extension(OID.subjectAltName, false, subjectAltName(names)),
    extension(OID.subjectKeyIdentifier, false, derOctetString(ski)),
  );
  const subject = name(opts.commonName);
  const tbs = seq(
    explicit(0, derSmallInteger(2)),
    derUnsignedInteger(serial),
    sigAlg,
    subject,
    seq(derTime(notBefore), derTime(notAfter)),
    subject,
    spki,
    explicit(3, extensions),
  );
  // ECDSA: node gives the DER Ecdsa-Sig-Value that RFC 5480 / 3279 2.2.3 puts in the BIT STRING.
  const signature = new Uint8Array(sign('sha256', tbs, isEc ? { key: privateKey, dsaEncoding: 'der' } : privateKey));
  const der = seq(tbs, sigAlg, derBitString(signature));
  return {
    der,
    certPem: toPem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** The subjectPublicKey bits of a DER SubjectPublicKeyInfo (SEQUENCE { AlgorithmIdentifier, BIT STRING }). */
function spkiKeyBits(spki: Uint8Array): Uint8Array {
  const readLen = (at: number): [number, number] => {
    const b = spki[at]!;
    if (b < 0x80) return [b, at + 1];
    let n = 0;
    const k = b & 0x7f;
    for (let i = 1; i <= k; i++) n = n * 256 + spki[at + i]!;
    return [n, at + 1 + k];
  };
  let [, at] = readLen(1); // outer SEQUENCE content
  const [algLen, algAt] = readLen(at + 1);
  at = algAt + algLen; // BIT STRING tag
  const [bitsLen, bitsAt] = readLen(at + 1);
  return spki.subarray(bitsAt + 1, bitsAt + bitsLen);
}

export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/** SHA-256 fingerprint as X509Certificate.fingerprint256 prints it (AA:BB:...). */
export function fingerprint256(der: Uint8Array): string {
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/** Normalise a fingerprint given by a user (any case, with or without colons); undefined if it is not 32 octets of hex. */
export function parseFingerprint(s: string): string | undefined {
  const h = s.replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(h)) return undefined;
  return h.replace(/(..)(?!$)/g, '$1:');
}

// ---------------------------------------------------------------------------
// Load or generate

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
  /** The leaf certificate, DER (what the SSTP crypto binding hashes). */
  der: Uint8Array;
  fingerprint256: string;
  subject: string;
  validTo: string;
  /** Generated on this start. */
  generated: boolean;
}

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  /** Generate a self-signed pair when both files are missing (the config names no certificate of its own). */
  generate: boolean;
  commonName: string;
  altNames?: readonly string[];
  algorithm?: CertAlgorithm;
}

/**
 * The configured pair, or a self-signed one generated now (key file mode
 * 0600, written before the certificate so a crash never leaves a
 * certificate without its key).
 */
export async function loadOrCreateCertificate(f: CertificateFiles): Promise<ServerCertificate> {
  const haveCert = existsSync(f.certFile);
  const haveKey = existsSync(f.keyFile);
  let generated = false;
  if (!haveCert && !haveKey && f.generate) {
    const g = createSelfSignedCertificate({ commonName: f.commonName, ...(f.altNames ? { altNames: f.altNames } : {}), ...(f.algorithm ? { algorithm: f.algorithm } : {}) });
    await mkdir(path.dirname(f.keyFile), { recursive: true, mode: 0o700 });
    await mkdir(path.dirname(f.certFile), { recursive: true, mode: 0o700 });
    await writeFile(f.keyFile, g.keyPem, { mode: 0o600 });
    await chmod(f.keyFile, 0o600);
    await writeFile(f.certFile, g.certPem, { mode: 0o644 });
    generated = true;
  } else if (!haveCert || !haveKey) {
    const missing = !haveCert ? f.certFile : f.keyFile;
    throw new VpnError('ERR_CONFIG_READ', `SSTP certificate: ${missing} does not exist (give both sstp.certificate and sstp.key, or neither to use a generated one)`);
  }
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(f.certFile, 'utf8'), readFile(f.keyFile, 'utf8')]);
  } catch (e) {
    throw new VpnError('ERR_CONFIG_READ', `cannot read the SSTP certificate or key: ${(e as Error).message}`, { cause: e });
  }
  let x: X509Certificate;
  try {
    x = new X509Certificate(certPem);
  } catch (e) {
    throw new VpnError('ERR_CONFIG_INVALID', `${f.certFile} does not hold a PEM certificate: ${(e as Error).message}`, { cause: e });
  }
  try {
    if (!x.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the key does not belong to the certificate');
  } catch (e) {
    throw new VpnError('ERR_CONFIG_INVALID', `${f.keyFile}: ${(e as Error).message}`, { cause: e });
  }
  const der = new Uint8Array(x.raw);
  return { certPem, keyPem, der, fingerprint256: fingerprint256(der), subject: x.subject, validTo: x.validTo, generated };
}
