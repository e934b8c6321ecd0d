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
}

export class CallIdAllocator {
  readonly min: number;
  readonly max: number;
  private readonly used = new Uint8Array(65536);
  private cursor: number;
  private count = 0;

  constructor(range: CallIdRange = {}) {
    const min = range.min ?? 1;
    const max = range.max ?? 0xffff;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 0xffff || min > max) {
      throw new RangeError(`call id range ${min}..${max} must lie within 1..65535`);
    }
    this.min = min;
    this.max = max;
    const start = range.start ?? min + randomInt(max - min + 1);
    this.cursor = start >= min && start <= max ? start : min;
  }

  /** Ids in the range. */
  get size(): number {
    return this.max - this.min + 1;
  }

  get inUse(): number {
    return this.count;
  }

  isAllocated(id: number): boolean {
    return id >= this.min && id <= this.max && this.used[id] === 1;
  }

  /** A free id, or undefined when every id in the range is taken. */
  allocate(): number | undefined {
    if (this.count >= this.size) return undefined;
    for (let i = 0; i < this.size; i++) {
      const id = this.cursor;
      this.cursor = id === this.max ? this.min : id + 1;
      if (this.used[id] === 0) {
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
