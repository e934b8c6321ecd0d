/**
 * Small waiting and expectation helpers of the end-to-end tests (every lab
 * and test file used to carry its own copy).
 */
import { expect } from 'vitest';
import { isVpnError } from '../../src/util/errors.js';

/** Poll `cond` every 20 ms until true or `ms` passed. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Expect an async call to reject with a VpnError of `code`; returns it. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect(isVpnError(e), String(e)).toBe(true);
    expect((e as { code: string }).code, (e as Error).message).toBe(code);
    return e as Error;
  }
  throw new Error(`expected a rejection with ${code}`);
}
