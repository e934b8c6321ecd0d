/**
 * The service plumbing that stands on its own: the half-open bound per
 * source, listening (and its errors), the socket transport, peer addresses.
 * The services themselves run in src/sstp/service.test.ts and
 * src/pptp/service.test.ts (bounds, limits, graceful stop).
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { native, nativeAvailable } from '../dataplane/native.js';
import { isVpnError } from '../util/errors.js';
import { HalfOpenBound, LISTEN_BACKLOG, listenOn, normalizePeerAddress, socketTransport } from './service.js';

describe('HalfOpenBound', () => {
  it('counts per source up to the bound; a release counts once', () => {
    const b = new HalfOpenBound();
    const r1 = b.admit('198.18.0.2', 2)!;
    const r2 = b.admit('198.18.0.2', 2)!;
    expect(b.admit('198.18.0.2', 2)).toBeUndefined();
    expect(b.admit('198.18.0.3', 2)).toBeDefined();
    expect(b.of('198.18.0.2')).toBe(2);
    r1();
    r1();
    expect(b.of('198.18.0.2')).toBe(1);
    expect(b.admit('198.18.0.2', 2)).toBeDefined();
    r2();
    expect(b.of('198.18.0.2')).toBe(1);
  });
});

/** The accept backlog of the listener on 127.0.0.1:port, as the kernel has it (ss: Send-Q of a LISTEN socket). */
function kernelBacklog(port: number): number {
  const line = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim().split('\n')[0] ?? '';
  return Number(line.split(/\s+/)[2]);
}

describe('listenOn', () => {
  it('gives the kernel a backlog of LISTEN_BACKLOG (capped by somaxconn), for host:port and for a native listener fd made with another', async () => {
    const want = Math.min(LISTEN_BACKLOG, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')));
    const a = net.createServer();
    await listenOn(a, { label: 'sstp', host: '127.0.0.1', port: 0 });
    try {
      expect(kernelBacklog((a.address() as net.AddressInfo).port)).toBe(want);
    } finally {
      a.close();
    }
    if (!nativeAvailable()) return; // the addon's listener is checked where it is built (CI builds it)
    const fd = native.tcpListener({ address: '127.0.0.1', port: 0, backlog: 16 });
    const b = net.createServer();
    await listenOn(b, { label: 'sstp', host: '127.0.0.1', port: 0, fd });
    try {
      // Node's listen() on the fd would otherwise have replaced 16 by its own 511.
      expect(kernelBacklog((b.address() as net.AddressInfo).port)).toBe(want);
    } finally {
      b.close();
    }
  });


  it('listens, and maps an address in use to ERR_ADDRESS_IN_USE naming the protocol and address', async () => {
    const a = net.createServer();
    await listenOn(a, { label: 'pptp', host: '127.0.0.1', port: 0 });
    const port = (a.address() as net.AddressInfo).port;
    const b = net.createServer();
    try {
      const e = await listenOn(b, { label: 'pptp', host: '127.0.0.1', port }).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(isVpnError(e) && e.code).toBe('ERR_ADDRESS_IN_USE');
      expect((e as Error).message).toBe(`pptp: cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('socketTransport', () => {
  it('writes while the socket is writable, ends with a flush, drops writes after', async () => {
    const got: Buffer[] = [];
    const ended = new Promise<void>((resolve) => {
      const server = net.createServer((s) => {
        s.on('data', (d: Buffer) => got.push(d));
        s.on('end', () => {
          server.close();
          resolve();
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => {
          const t = socketTransport(c);
          t.write(new Uint8Array([1, 2, 3]));
          t.end();
          t.write(new Uint8Array([4]));
        });
      });
    });
    await ended;
    expect([...Buffer.concat(got)]).toEqual([1, 2, 3]);
  });
});

describe('normalizePeerAddress', () => {
  it('unmaps IPv4-mapped IPv6', () => {
    expect(normalizePeerAddress('::ffff:198.18.0.2')).toBe('198.18.0.2');
    expect(normalizePeerAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(normalizePeerAddress(undefined)).toBe('0.0.0.0');
  });
});
