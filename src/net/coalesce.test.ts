import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { coalescingWriter } from './coalesce.js';

/** A connected loopback pair; `received` collects what the server side reads. */
async function pair(): Promise<{ client: net.Socket; received: () => Buffer; close(): void; gotBytes(n: number): Promise<void> }> {
  const chunks: Buffer[] = [];
  let waiter: (() => void) | undefined;
  let want = 0;
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      chunks.push(d);
      if (waiter && Buffer.concat(chunks).length >= want) waiter();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  return {
    client,
    received: () => Buffer.concat(chunks),
    gotBytes: (n) =>
      new Promise<void>((resolve) => {
        want = n;
        if (Buffer.concat(chunks).length >= n) resolve();
        else waiter = resolve;
      }),
    close: () => {
      client.destroy();
      server.close();
    },
  };
}

/** Count the stream's hand-overs to its handle: _write (one chunk) and _writev (several). */
function countHandOvers(s: net.Socket): { writes: number; chunks: number[] } {
  const seen = { writes: 0, chunks: [] as number[] };
  const w = s as unknown as { _write: (...a: unknown[]) => void; _writev: (chunks: unknown[], cb: unknown) => void };
  const write = w._write.bind(s);
  const writev = w._writev.bind(s);
  w._write = (...a) => {
    seen.writes++;
    seen.chunks.push(1);
    write(...a);
  };
  w._writev = (chunks, cb) => {
    seen.writes++;
    seen.chunks.push(chunks.length);
    writev(chunks, cb);
  };
  return seen;
}

describe('coalescingWriter', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  it('writes of one turn reach the socket as one hand-over, in order; the next turn is a new one', async () => {
    const p = await pair();
    cleanup = p.close;
    const seen = countHandOvers(p.client);
    const out = coalescingWriter(p.client);
    const done: string[] = [];
    out.write(Buffer.from('ab'), () => done.push('ab'));
    out.write(Buffer.from('cd'), () => done.push('cd'));
    out.write(Buffer.from('ef'));
    expect(seen.writes).toBe(0); // corked until the turn ends
    await new Promise((r) => setImmediate(r));
    expect(seen.chunks).toEqual([3]);
    out.write(Buffer.from('gh'));
    await p.gotBytes(8);
    expect(seen.chunks).toEqual([3, 1]);
    expect(p.received().toString()).toBe('abcdefgh');
    expect(done).toEqual(['ab', 'cd']);
  });

  it('flush() hands the turn over at once, so a destroy() right after does not drop it', async () => {
    const p = await pair();
    cleanup = p.close;
    const out = coalescingWriter(p.client);
    out.write(Buffer.from('last words'));
    out.flush();
    p.client.destroy();
    await p.gotBytes(10);
    expect(p.received().toString()).toBe('last words');
  });

  it('a destroyed socket takes nothing and nothing throws', async () => {
    const p = await pair();
    cleanup = p.close;
    const out = coalescingWriter(p.client);
    p.client.destroy();
    expect(() => out.write(Buffer.from('x'))).not.toThrow();
    out.flush();
  });
});
