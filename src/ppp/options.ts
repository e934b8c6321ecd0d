/**
 * Configuration Options as data (RFC 1661 section 6 and the option sections
 * of each NCP): one table per control protocol, one row per option type,
 * with its name, length rule, value codec and negotiation behaviour. The
 * {@link OptionTable} turns a table into the request / judge / apply
 * operations the automaton ({@link ControlProtocol}) needs, so protocol
 * files hold policy only.
 *
 * Rules applied here for every protocol:
 * - An option type without a row (or without a `judge`) is Configure-Rejected.
 * - An option of a known type whose Length breaks the row's rule, or whose
 *   value does not decode, is Configure-Rejected; so is a second instance of
 *   a type in one request.
 * - In a Configure-Nak, a known option that does not decode makes the Nak
 *   malformed (discarded); unknown types in a Nak are ignored hints.
 */
import type { ConfigureJudgement, RawVerdict } from './fsm.js';
import { encodeOption, type RawOption } from './packet.js';

export type Verdict<V> = { kind: 'ack' } | { kind: 'nak'; value: V } | { kind: 'reject' };

export const ACK = Object.freeze({ kind: 'ack' }) as { kind: 'ack' };
export const REJECT = Object.freeze({ kind: 'reject' }) as { kind: 'reject' };
export function nak<V>(value: V): Verdict<V> {
  return { kind: 'nak', value };
}

export interface OptionCodec<V> {
  /** Value from option data, or undefined when the data is not a valid value. */
  decode(data: Uint8Array): V | undefined;
  encode(value: V): Uint8Array;
}

/**
 * One row of an option table. `C` is the protocol instance the callbacks
 * read and update (its wanted and negotiated values), `V` the option value.
 */
export interface OptionSpec<C, V> {
  readonly type: number;
  readonly name: string;
  /** Allowed total length (Type and Length octets included), inclusive bounds. */
  readonly length: readonly [min: number, max: number];
  readonly codec: OptionCodec<V>;
  /** The value to put in our Configure-Request, or undefined to leave the option out. */
  request?(ctx: C): V | undefined;
  /** Judge the value the peer requested. Absent: the option is rejected. */
  judge?(ctx: C, value: V): Verdict<V>;
  /** The peer acknowledged our request holding this value. */
  acked?(ctx: C, value: V): void;
  /** The peer Nak'd this option with `value` (requested = it was in our request; else a hint). */
  naked?(ctx: C, value: V, requested: boolean): void;
  /** The peer rejected this option: stop requesting it. */
  rejected?(ctx: C): void;
}

/** Erase the value type so rows of different value types share a table. */
export function option<C, V>(spec: OptionSpec<C, V>): OptionSpec<C, unknown> {
  return spec as unknown as OptionSpec<C, unknown>;
}

export class OptionTable<C> {
  private readonly byType = new Map<number, OptionSpec<C, unknown>>();

  constructor(readonly rows: readonly OptionSpec<C, unknown>[]) {
    for (const r of rows) {
      if (this.byType.has(r.type)) throw new Error(`option table has two rows for type ${r.type}`);
      this.byType.set(r.type, r);
    }
  }

  spec(type: number): OptionSpec<C, unknown> | undefined {
    return this.byType.get(type);
  }

  nameOf(type: number): string {
    return this.byType.get(type)?.name ?? `option-${type}`;
  }

  /** Options of our next Configure-Request, in table order. */
  buildRequest(ctx: C): Uint8Array {
    const parts: Uint8Array[] = [];
    for (const r of this.rows) {
      const v = r.request?.(ctx);
      if (v !== undefined) parts.push(encodeOption(r.type, r.codec.encode(v)));
    }
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  private decodeValue(r: OptionSpec<C, unknown>, o: RawOption): unknown {
    const [min, max] = r.length;
    if (o.raw.length < min || o.raw.length > max) return undefined;
    return r.codec.decode(o.data);
  }

  judge(ctx: C, opts: readonly RawOption[], hints?: (present: ReadonlySet<number>) => Uint8Array[]): ConfigureJudgement {
    const seen = new Set<number>();
    const verdicts: RawVerdict[] = opts.map((o) => {
      const r = this.byType.get(o.type);
      if (!r?.judge || seen.has(o.type)) return REJECT;
      seen.add(o.type);
      const v = this.decodeValue(r, o);
      if (v === undefined) return REJECT;
      const verdict = r.judge(ctx, v);
      if (verdict.kind === 'nak') return { kind: 'nak', data: r.codec.encode(verdict.value) };
      return verdict;
    });
    return hints ? { verdicts, hints: hints(seen) } : { verdicts };
  }

  acked(ctx: C, opts: readonly RawOption[]): void {
    for (const o of opts) {
      const r = this.byType.get(o.type);
      if (!r) continue;
      const v = this.decodeValue(r, o);
      if (v !== undefined) r.acked?.(ctx, v);
    }
  }

  /** Apply a Configure-Nak; false when a known option in it is malformed. */
  naked(ctx: C, opts: readonly RawOption[], lastRequest: readonly RawOption[]): boolean {
    const values: [OptionSpec<C, unknown>, unknown][] = [];
    for (const o of opts) {
      const r = this.byType.get(o.type);
      if (!r) continue; // a hint about an option we do not know: ignored
      const v = this.decodeValue(r, o);
      if (v === undefined) return false;
      values.push([r, v]);
    }
    for (const [r, v] of values) r.naked?.(ctx, v, lastRequest.some((s) => s.type === r.type));
    return true;
  }

  /** Apply a Configure-Reject whose options the automaton checked against our request. */
  rejected(ctx: C, opts: readonly RawOption[]): boolean {
    for (const o of opts) this.byType.get(o.type)?.rejected?.(ctx);
    return true;
  }
}

// ---------------------------------------------------------------- value codecs

export const emptyCodec: OptionCodec<true> = {
  decode: (d) => (d.length === 0 ? true : undefined),
  encode: () => new Uint8Array(0),
};

export const u16Codec: OptionCodec<number> = {
  decode: (d) => (d.length === 2 ? (d[0]! << 8) | d[1]! : undefined),
  encode: (v) => new Uint8Array([(v >>> 8) & 0xff, v & 0xff]),
};

export const u32Codec: OptionCodec<number> = {
  decode: (d) => (d.length === 4 ? ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0 : undefined),
  encode: (v) => new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]),
};

/** IPv4 address as a dotted quad. */
export const ipv4Codec: OptionCodec<string> = {
  decode: (d) => (d.length === 4 ? `${d[0]}.${d[1]}.${d[2]}.${d[3]}` : undefined),
  encode: (v) => ipv4Bytes(v),
};

/** Any data, kept as bytes (copied: the packet buffer is not ours). */
export const bytesCodec: OptionCodec<Uint8Array> = {
  decode: (d) => d.slice(),
  encode: (v) => v,
};

export function ipv4Bytes(s: string): Uint8Array {
  const p = s.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RangeError(`not an IPv4 address: ${s}`);
  return new Uint8Array(p);
}

export const IPV4_ZERO = '0.0.0.0';
