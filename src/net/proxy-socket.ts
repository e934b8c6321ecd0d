/**
 * Reading the PROXY protocol header (./proxy-protocol.ts) off the start of
 * an accepted TCP connection, before the protocol that follows (TLS for
 * SSTP) sees a single octet.
 *
 * The spec (section 2) lets the receiver "apply a short timeout" and says
 * the receiver "MUST NOT start processing the connection before it receives
 * a complete and valid PROXY protocol header": so the header is read under a
 * deadline and a size bound (the decoder refuses a v2 Length above its limit
 * and a v1 line without CRLF in 107 octets), and only then is the socket
 * handed on, paused, with the octets that came after the header put back
 * (unshift) for the next reader.
 */
import type net from 'node:net';
import type { Clock } from '../util/clock.js';
import type { DecodeErrorKind } from '../util/decode.js';
import { decodeProxyHeader, type ProxyHeader } from './proxy-protocol.js';

// From the spec.
/** Section 2: a receiver's timeout should be "at least 3 seconds to cover a TCP retransmit". */
export const PROXY_HEADER_MIN_TIMEOUT_MS = 3_000;

// Our choices.
/**
 * Deadline for the header. A load balancer sends it with the connection's
 * first segment, so a connection still without one after this is not from a
 * load balancer; above the spec's 3 s to cover a retransmission.
 */
export const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5_000;

/** Why a connection gave no usable header (a bounded set: counters and log fields). */
export const PROXY_HEADER_FAILURES = ['signature', 'version', 'length', 'invalid', 'timeout', 'closed'] as const;
export type ProxyHeaderFailure = (typeof PROXY_HEADER_FAILURES)[number];

export type ProxyHeaderOutcome = { ok: true; header: ProxyHeader } | { ok: false; reason: ProxyHeaderFailure; message: string };

export interface ReadProxyHeaderOptions {
  clock: Clock;
  /** Deadline for the whole header, from now. */
  timeoutMs: number;
  /** Largest v2 Length accepted (the decoder's default otherwise). */
  maxV2Length?: number;
}

function failureOf(kind: DecodeErrorKind): ProxyHeaderFailure {
  switch (kind) {
    case 'magic':
      return 'signature';
    case 'version':
      return 'version';
    case 'length':
      return 'length';
    default:
      return 'invalid';
  }
}

/**
 * Read the header at the start of `socket`. On success the socket is paused
 * with whatever followed the header unshifted into it; on failure (bad
 * header, deadline, connection ended first) it is left to the caller to
 * destroy. Never rejects.
 */
export function readProxyHeader(socket: net.Socket, opts: ReadProxyHeaderOptions): Promise<ProxyHeaderOutcome> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (o: ProxyHeaderOutcome) => {
      if (done) return;
      done = true;
      timer.cancel();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      resolve(o);
    };
    const onData = (chunk: Buffer) => {
      // Bounded: the decoder answers 'truncated' only below 16 + its v2 limit or 107 octets.
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = decodeProxyHeader(buf, opts.maxV2Length !== undefined ? { maxV2Length: opts.maxV2Length } : {});
      if (r.ok) {
        socket.pause();
        const rest = buf.subarray(r.consumed);
        if (rest.length) socket.unshift(rest);
        finish({ ok: true, header: r.value });
      } else if (r.kind !== 'truncated') {
        finish({ ok: false, reason: failureOf(r.kind), message: r.message });
      }
    };
    const onEnd = () => finish({ ok: false, reason: 'closed', message: `the connection ended after ${buf.length} octets, before a complete PROXY header` });
    const onError = (e: Error) => finish({ ok: false, reason: 'closed', message: `the connection failed before a complete PROXY header: ${e.message}` });
    const timer = opts.clock.setTimer(opts.timeoutMs, () =>
      finish({ ok: false, reason: 'timeout', message: `no complete PROXY header within ${opts.timeoutMs} ms (${buf.length} octets received)` }),
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}
