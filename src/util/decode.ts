/**
 * Total decoding: every decoder of network input returns a value with the
 * number of bytes consumed, or a typed failure. Decoders never throw on input
 * from the network; a failure names what was wrong so the caller can answer
 * as the protocol says (reject, abort, counted drop).
 */

export type DecodeErrorKind =
  | 'truncated' // need more bytes (for stream protocols: wait for them)
  | 'length' // a length field contradicts the buffer or the spec
  | 'version' // unsupported protocol version
  | 'magic' // magic cookie / fixed field mismatch
  | 'type' // unknown message/code/attribute type
  | 'value' // a field holds a value the spec forbids
  | 'missing'; // a mandatory field/attribute is absent

export interface DecodeFailure {
  ok: false;
  kind: DecodeErrorKind;
  message: string;
  /** Byte offset in the input where the problem was found. */
  offset: number;
}

export interface Decoded<T> {
  ok: true;
  value: T;
  consumed: number;
}

export type DecodeResult<T> = Decoded<T> | DecodeFailure;

export function ok<T>(value: T, consumed: number): Decoded<T> {
  return { ok: true, value, consumed };
}

export function fail(kind: DecodeErrorKind, message: string, offset = 0): DecodeFailure {
  return { ok: false, kind, message, offset };
}

/**
 * Bounds-checked big-endian reader over a byte view. Reads past the end do
 * not throw: they set {@link overrun} and return 0, so a decoder can read a
 * whole fixed header and check once.
 */
export class ByteReader {
  pos: number;
  overrun = false;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return Math.max(0, this.end - this.pos);
  }

  private need(n: number): boolean {
    if (this.pos + n > this.end) {
      this.overrun = true;
      this.pos = this.end;
      return false;
    }
    return true;
  }

  u8(): number {
    if (!this.need(1)) return 0;
    return this.buf[this.pos++]!;
  }

  u16(): number {
    if (!this.need(2)) return 0;
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    if (!this.need(4)) return 0;
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  bytes(n: number): Uint8Array {
    if (n < 0 || !this.need(n)) return new Uint8Array(0);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    if (n < 0 || !this.need(n)) return;
    this.pos += n;
  }
}

/**
 * Growable big-endian writer for control-plane messages (not the data path,
 * which writes into WASM memory). Used by encoders and by tests, where it
 * reads like the spec's packet diagrams.
 */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initial = 64) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.grow(1);
    this.buf[this.length++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.grow(2);
    this.view.setUint16(this.length, v & 0xffff);
    this.length += 2;
    return this;
  }

  u32(v: number): this {
    this.grow(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
    return this;
  }

  bytes(b: Uint8Array | readonly number[]): this {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  ascii(s: string): this {
    this.grow(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.length++] = s.charCodeAt(i) & 0xff;
    return this;
  }

  zeros(n: number): this {
    this.grow(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
    return this;
  }

  /** Overwrite a big-endian u16 at an earlier offset (length fields). */
  patchU16(at: number, v: number): this {
    this.view.setUint16(at, v & 0xffff);
    return this;
  }

  patchU32(at: number, v: number): this {
    this.view.setUint32(at, v >>> 0);
    return this;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex: ${s.slice(0, 40)}`);
  return new Uint8Array(Buffer.from(clean, 'hex'));
}
