/**
 * Small waiting, expectation and port helpers of the tests (every lab and
 * test file used to carry its own copy).
 */
import net from 'node:net';
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

/** A TCP port that was free on `host` a moment ago (for a server the test starts next). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
