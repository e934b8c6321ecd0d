/**
 * Grepping logs for secrets in every form a careless log call could print
 * them: a string as itself, JSON-escaped, hex or base64 of its UTF-8 (and
 * hex of its UTF-16LE for passwords, as MS-CHAP hashes them); bytes as hex
 * (either case, with or without separators), base64 (standard and URL), a
 * JSON array or Buffer's `{"type":"Buffer","data":[...]}` (a decimal list),
 * and a typed array serialized as an object (`{"0":..,"1":..}`).
 */
import { isSecretField, REDACTED } from '../../src/util/log.js';

export interface Secret {
  /** What it is, for the failure message (never the value). */
  name: string;
  value: string | Uint8Array;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** The printable forms of a secret to search for. */
export function secretForms(value: string | Uint8Array): string[] {
  if (typeof value === 'string') {
    const utf8 = Buffer.from(value, 'utf8');
    return [value, JSON.stringify(value).slice(1, -1), ...bytesForms(utf8), hex(Buffer.from(value, 'utf16le')), hex(Buffer.from(value, 'utf16le')).toUpperCase()];
  }
  return bytesForms(value);
}

function bytesForms(b: Uint8Array): string[] {
  const h = hex(b);
  const pairs = h.match(/../g) ?? [];
  const buf = Buffer.from(b);
  const head = [...b.subarray(0, Math.min(b.length, 12))];
  return [
    h,
    h.toUpperCase(),
    pairs.join(':'),
    pairs.join(':').toUpperCase(),
    pairs.join(' '),
    buf.toString('base64').replace(/=+$/, ''),
    buf.toString('base64url'),
    // A JSON array of numbers, or Buffer.toJSON's data (first 12 octets: unique enough).
    head.join(','),
    // A Uint8Array as JSON.stringify prints it.
    head.map((v, i) => `"${i}":${v}`).join(','),
  ];
}

export interface SecretHit {
  secret: string;
  form: number;
  line: number;
  /** Where in the line (the value itself is not reported). */
  excerpt: string;
}

/** Every occurrence of any form of any secret in `lines`. */
export function findSecrets(lines: readonly string[], secrets: readonly Secret[]): SecretHit[] {
  const hits: SecretHit[] = [];
  const forms = secrets.map((s) => ({ name: s.name, forms: secretForms(s.value).filter((f) => f.length >= 6) }));
  lines.forEach((line, i) => {
    for (const s of forms) {
      s.forms.forEach((f, form) => {
        const at = line.indexOf(f);
        if (at >= 0) hits.push({ secret: s.name, form, line: i, excerpt: `${line.slice(Math.max(0, at - 60), at)}<${s.name}>${line.slice(at + f.length, at + f.length + 20)}` });
      });
    }
  });
  return hits;
}

/** Paths of secret-named fields (src/util/log.ts isSecretField) whose value is not the redaction marker. */
export function unredactedSecretFields(parsed: readonly Record<string, unknown>[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown, p: string) => {
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const at = p ? `${p}.${k}` : k;
      if (isSecretField(k) && x !== REDACTED && x !== undefined) out.push(at);
      else walk(x, at);
    }
  };
  parsed.forEach((o, i) => walk(o, `line ${i}`));
  return out;
}
