import { describe, expect, it } from 'vitest';
import { CallIdAllocator } from './callid.js';

describe('PPTP Call ID allocation', () => {
  it('never hands out 0 and never the same id twice while allocated', () => {
    const a = new CallIdAllocator({ start: 65530 });
    const ids: (number | undefined)[] = [];
    for (let i = 0; i < 65535; i++) ids.push(a.allocate());
    expect(ids.slice(0, 7)).toEqual([65530, 65531, 65532, 65533, 65534, 65535, 1]);
    expect(ids.every((id) => id !== undefined && id >= 1 && id <= 65535)).toBe(true);
    expect(new Set(ids).size).toBe(65535);
    expect(a.allocate()).toBeUndefined();
    expect(a.inUse).toBe(65535);
  });

  it('reuses a released id only after a full lap of the range', () => {
    const a = new CallIdAllocator({ min: 10, max: 14, start: 10 });
    expect([a.allocate(), a.allocate()]).toEqual([10, 11]);
    a.release(10);
    expect([a.allocate(), a.allocate(), a.allocate()]).toEqual([12, 13, 14]);
    expect(a.allocate()).toBe(10); // the lap wrapped; 11 is still taken
    expect(a.allocate()).toBeUndefined();
    a.release(13);
    expect(a.allocate()).toBe(13);
  });

  it('ignores releases of ids it did not hand out', () => {
    const a = new CallIdAllocator({ min: 1, max: 3, start: 1 });
    a.release(2);
    a.release(0);
    a.release(70000);
    expect(a.inUse).toBe(0);
    expect(a.allocate()).toBe(1);
    a.release(1);
    a.release(1);
    expect(a.inUse).toBe(0);
  });

  it('starts at a random point by default, inside the range', () => {
    for (let i = 0; i < 20; i++) {
      const id = new CallIdAllocator({ min: 100, max: 199 }).allocate()!;
      expect(id).toBeGreaterThanOrEqual(100);
      expect(id).toBeLessThanOrEqual(199);
    }
  });

  it('rejects ranges that include 0 or exceed 16 bits', () => {
    expect(() => new CallIdAllocator({ min: 0 })).toThrow(RangeError);
    expect(() => new CallIdAllocator({ max: 65536 })).toThrow(RangeError);
    expect(() => new CallIdAllocator({ min: 9, max: 8 })).toThrow(RangeError);
  });

  it('hands out only its residue class (a worker of N), every member once, then none', () => {
    const a = new CallIdAllocator({ min: 1, max: 20, modulus: 3, remainder: 2, start: 7 });
    expect(a.size).toBe(7); // 2, 5, 8, 11, 14, 17, 20
    const got: number[] = [];
    for (let id = a.allocate(); id !== undefined; id = a.allocate()) got.push(id);
    expect(got).toEqual([8, 11, 14, 17, 20, 2, 5]);
    expect(a.isAllocated(8)).toBe(true);
    expect(a.isAllocated(9)).toBe(false);
    a.release(9); // not a member: ignored
    expect(a.inUse).toBe(7);
    a.release(11);
    expect(a.allocate()).toBe(11);
    // Class 0 mod 2 over the whole range never yields 0.
    const even = new CallIdAllocator({ modulus: 2, remainder: 0, start: 65534 });
    expect(even.size).toBe(32767);
    expect([even.allocate(), even.allocate()]).toEqual([65534, 2]);
    expect(() => new CallIdAllocator({ modulus: 2, remainder: 2 })).toThrow(RangeError);
    expect(() => new CallIdAllocator({ min: 4, max: 4, modulus: 3, remainder: 0 })).toThrow(/no id/);
  });
});
