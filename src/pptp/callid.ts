/**
 * Call ID allocation (RFC 2637 section 3.2.2: each peer picks a Call ID per
 * session, unique within the tunnel; the session is the triple PAC, PNS, Call
 * ID). Ours is stricter: unique per gateway (or per data-plane worker, each
 * given its own range), because the data plane demultiplexes incoming GRE by
 * the Call ID in the key before it looks at the source address.
 *
 * - 0 is never handed out: some peers treat it as "none" (pptp-linux replaces
 *   a computed 0 with a random id).
 * - An id comes back only through {@link release}; after that it is the last
 *   to be reused: allocation walks the range from a cursor, so a released id
 *   waits for a full lap. Late GRE packets of an old session then never land
 *   in a new one that happens to get the same id.
 * - A data-plane worker w of N hands out only ids with id % N == w (a
 *   residue class, {@link CallIdRange.modulus}): its raw GRE socket is
 *   filtered to that class (native.greCallIdFilter), so the kernel gives
 *   each worker only its own calls' GRE.
 * - The cursor starts at a random point so ids are not predictable from one
 *   gateway start to the next (GRE is unauthenticated; guessing a live call id
 *   is the first step of injecting packets into it).
 */
import { randomInt } from 'node:crypto';

export interface CallIdRange {
  /** Lowest id handed out, >= 1. Default 1. */
  min?: number;
  /** Highest id handed out, <= 65535. Default 65535. */
  max?: number;
  /** First id tried (tests); default random within the range. */
  start?: number;
  /** Hand out only ids with id % modulus == remainder (default 1: every id). */
  modulus?: number;
  remainder?: number;
}

export class CallIdAllocator {
  readonly min: number;
  readonly max: number;
  readonly modulus: number;
  readonly remainder: number;
  /** Ids of the residue class within min..max. */
  private readonly members: number;
  private readonly used = new Uint8Array(65536);
  private cursor: number;
  private count = 0;

  constructor(range: CallIdRange = {}) {
    const min = range.min ?? 1;
    const max = range.max ?? 0xffff;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 0xffff || min > max) {
      throw new RangeError(`call id range ${min}..${max} must lie within 1..65535`);
    }
    const modulus = range.modulus ?? 1;
    const remainder = range.remainder ?? 0;
    if (!Number.isInteger(modulus) || !Number.isInteger(remainder) || modulus < 1 || modulus > 0xffff || remainder < 0 || remainder >= modulus) {
      throw new RangeError(`call id residue class ${remainder} mod ${modulus} is not valid`);
    }
    this.min = min;
    this.max = max;
    this.modulus = modulus;
    this.remainder = remainder;
    // Members of the class in min..max: count of k with min <= k*modulus + remainder <= max.
    const upTo = (n: number) => (n < remainder ? 0 : Math.floor((n - remainder) / modulus) + 1);
    this.members = upTo(max) - upTo(min - 1);
    if (this.members === 0) throw new RangeError(`call id range ${min}..${max} has no id with id % ${modulus} == ${remainder}`);
    const start = range.start ?? min + randomInt(max - min + 1);
    this.cursor = start >= min && start <= max ? start : min;
  }

  /** Ids this allocator can hand out. */
  get size(): number {
    return this.members;
  }

  get inUse(): number {
    return this.count;
  }

  isAllocated(id: number): boolean {
    return id >= this.min && id <= this.max && id % this.modulus === this.remainder && this.used[id] === 1;
  }

  /** A free id, or undefined when every id in the range is taken. */
  allocate(): number | undefined {
    if (this.count >= this.size) return undefined;
    for (let i = 0; i < this.max - this.min + 1; i++) {
      const id = this.cursor;
      this.cursor = id === this.max ? this.min : id + 1;
      if (id % this.modulus === this.remainder && this.used[id] === 0) {
        this.used[id] = 1;
        this.count++;
        return id;
      }
    }
    return undefined;
  }

  /** Give `id` back. Releasing an id that is not allocated does nothing. */
  release(id: number): void {
    if (this.isAllocated(id)) {
      this.used[id] = 0;
      this.count--;
    }
  }
}
