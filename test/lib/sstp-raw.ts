/**
 * Hand-driven TLS clients for the SSTP server's edge cases: exactly the
 * bytes a test wants on the wire, nothing of the real client's machinery.
 */
import net from 'node:net';
import tls from 'node:tls';
import { native } from '../../src/dataplane/native.js';
import { callConnectRequestLength, encodeCallConnectRequest, decodePacket, SstpDeframer } from '../../src/sstp/codec.js';
import { SstpHttpResponseParser, sstpHttpRequest } from '../../src/sstp/http.js';
import { SSTP_ENCAPSULATED_PROTOCOL_PPP, MessageType } from '../../src/sstp/constants.js';

export interface RawOptions {
  netns: string;
  host: string;
  port: number;
}

function openTls(o: RawOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const raw = new net.Socket({ fd: native.tcpSocket({ netns: o.netns }) });
    raw.once('error', reject);
    raw.connect(o.port, o.host, () => {
      const s = tls.connect({ socket: raw, rejectUnauthorized: false, minVersion: 'TLSv1.2' });
      s.once('error', reject);
      s.once('secureConnect', () => resolve(s));
    });
  });
}

/** Send `send`, collect everything until the server closes (or `timeoutMs`). */
export async function rawTls(o: RawOptions & { send: string | Uint8Array; timeoutMs?: number }): Promise<{ text: string; closed: boolean }> {
  const s = await openTls(o);
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.write(o.send);
  const closed = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), o.timeoutMs ?? 5_000);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
  s.destroy();
  return { text: Buffer.concat(chunks).toString('latin1'), closed };
}

export interface StalledResult {
  httpStatus: number | undefined;
  /** SSTP control messages received, in order (type, and the Status Info status of an abort). */
  messages: { type: number; status?: number }[];
  /** From the Call Connect Ack to the server closing the connection. */
  closedAfterMs: number;
}

/** HTTP request and a Call Connect Request, then silence: what does the server do? */
export async function stalledClient(o: RawOptions & { timeoutMs: number }): Promise<StalledResult> {
  const s = await openTls(o);
  const parser = new SstpHttpResponseParser();
  const deframer = new SstpDeframer();
  const out: StalledResult = { httpStatus: undefined, messages: [], closedAfterMs: -1 };
  let ackAt = 0;
  const onSstp = (bytes: Uint8Array) =>
    deframer.feed(bytes, (p) => {
      const d = decodePacket(p);
      if (!d.ok || d.value.kind !== 'control') return;
      const m = d.value.message;
      if (m.type === MessageType.CallConnectAck) ackAt = performance.now();
      out.messages.push({ type: m.type, ...(m.type === MessageType.CallAbort && m.statusInfo ? { status: m.statusInfo.status } : {}) });
    });
  let inHttp = true;
  s.on('data', (d: Buffer) => {
    if (!inHttp) return onSstp(d);
    const r = parser.push(d);
    if (r.state === 'incomplete') return;
    inHttp = false;
    out.httpStatus = r.state === 'complete' ? 200 : r.status;
    if (r.state === 'complete' && r.rest.length) onSstp(r.rest);
  });
  const req = new Uint8Array(callConnectRequestLength());
  encodeCallConnectRequest(req, 0, SSTP_ENCAPSULATED_PROTOCOL_PPP);
  s.write(sstpHttpRequest({ host: o.host, correlationId: '{5A11ED00-0000-4000-8000-000000000000}' }));
  s.write(req);
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, o.timeoutMs);
    s.once('close', () => {
      clearTimeout(t);
      out.closedAfterMs = performance.now() - ackAt;
      resolve();
    });
  });
  s.destroy();
  return out;
}
