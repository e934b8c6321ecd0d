/**
 * The HTTP exchange that opens an SSTP connection: MS-SSTP v20240423 3.2.4.1
 * (client), 3.3.7.2 and 4.1 (HTTPS layer establishment), over RFC 9112
 * message syntax.
 *
 *   client -> server   SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1
 *                      Host: <server name>
 *                      Content-Length: 18446744073709551615
 *                      SSTPCORRELATIONID: {<GUID>}
 *                      <empty line>
 *   server -> client   HTTP/1.1 200 OK
 *                      Content-Length: 18446744073709551615
 *                      Server: ...
 *                      Date: <IMF-fixdate>
 *                      <empty line>
 *
 * After the empty line the connection carries SSTP packets both ways: bytes
 * that follow the request head in the same read belong to SSTP. Anything
 * else than the SSTP request gets an HTTP error and the connection closes
 * ("fails the request by sending an HTTP error code containing indication
 * this is to be the last data being sent over the connection", 4.1).
 *
 * Interop notes (sstp-client 1.0.x, the Linux client this gateway must
 * serve): it reads the response with a single TLS read, takes the status
 * code at offset 9, and parses at most about seven header lines into a fixed
 * array, so the response goes out in one write with few headers.
 */
import type { Clock, Timer } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import {
  HTTP_MAX_HEADERS,
  HTTP_MAX_HEADER_BYTES,
  SSTP_HTTP_CONTENT_LENGTH,
  SSTP_HTTP_METHOD,
  SSTP_HTTP_PATH,
} from './constants.js';
import type { SstpTransport } from './call.js';

// ---------------------------------------------------------------------------
// Head accumulation (shared by both directions)
// ---------------------------------------------------------------------------

export interface HttpLimits {
  /** Octets of request/status line plus header lines plus the empty line. */
  maxHeaderBytes: number;
  maxHeaders: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = { maxHeaderBytes: HTTP_MAX_HEADER_BYTES, maxHeaders: HTTP_MAX_HEADERS };

type HeadResult =
  | { state: 'incomplete' }
  | { state: 'complete'; lines: string[]; rest: Uint8Array }
  | { state: 'too-large' }
  | { state: 'bad-octet'; offset: number };

/**
 * Collects octets until the empty line that ends an HTTP head (CRLF CRLF; a
 * bare LF is accepted as a line end, RFC 9112 2.2), bounded by maxHeaderBytes.
 */
class HeadAccumulator {
  private buf: Uint8Array = new Uint8Array(0);
  /** Where to resume the search for the end of the head. */
  private scan = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Uint8Array): HeadResult {
    const all = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
    const limit = Math.min(all.length, this.maxBytes);
    for (let i = this.scan; i < limit; i++) {
      const c = all[i]!;
      if (c === 0x0a) {
        // LF LF or LF CR LF ends the head.
        if (i + 1 < all.length && all[i + 1] === 0x0a && i + 1 < this.maxBytes) return this.done(all, i + 2);
        if (i + 2 < all.length && all[i + 1] === 0x0d && all[i + 2] === 0x0a && i + 2 < this.maxBytes) return this.done(all, i + 3);
        continue;
      }
      // Field values are visible ASCII, SP and HTAB (RFC 9110 5.5; obs-text not accepted); CR only before LF.
      if (c === 0x0d) continue;
      if ((c < 0x20 && c !== 0x09) || c > 0x7e) return { state: 'bad-octet', offset: i };
    }
    if (all.length >= this.maxBytes) return { state: 'too-large' };
    // Keep the tail; the terminator may straddle chunks, so rescan the last two octets.
    this.buf = all === chunk ? chunk.slice() : all;
    this.scan = Math.max(0, all.length - 2);
    return { state: 'incomplete' };
  }

  private done(all: Uint8Array, end: number): HeadResult {
    const text = Buffer.from(all.buffer, all.byteOffset, end).toString('latin1');
    this.buf = new Uint8Array(0);
    // A CR anywhere but right before LF is not allowed (RFC 9112 2.2).
    const stray = /\r(?!\n)/.exec(text);
    if (stray) return { state: 'bad-octet', offset: stray.index };
    const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    // The split leaves the terminating empty line and the empty string after it.
    lines.length = Math.max(0, lines.length - 2);
    return { state: 'complete', lines, rest: all.subarray(end) };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

interface Header {
  name: string;
  value: string;
}

/** RFC 9112 5: field-name ":" OWS field-value OWS. No whitespace before the colon, no obs-fold. */
function parseHeaderLine(line: string): Header | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) return undefined;
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  if (value.includes('\r')) return undefined;
  return { name, value };
}

function headerValues(headers: readonly Header[], name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value);
}

// ---------------------------------------------------------------------------
// Server side: parse the client's request
// ---------------------------------------------------------------------------

export interface SstpHttpRequest {
  method: string;
  /** Request target as sent (path and optional query). */
  target: string;
  host: string;
  /** SSTPCORRELATIONID, for logs (3.2.4.1); absent with clients that do not send it. */
  correlationId?: string;
  /** The optional `tenantid` query variable (3.2.4.1). */
  tenantId?: string;
  headers: ReadonlyArray<Readonly<Header>>;
}

export type HttpRejectStatus = 400 | 404 | 405 | 408 | 431 | 503 | 505;

export type RequestParse =
  | { state: 'incomplete' }
  | { state: 'complete'; request: SstpHttpRequest; rest: Uint8Array }
  | { state: 'rejected'; status: HttpRejectStatus; reason: string };

const REQUEST_LINE = /^([^ ]+) ([^ ]+) (HTTP\/[0-9]\.[0-9])$/;

/** Incremental, bounded parser of the SSTP_DUPLEX_POST request head. Never throws. */
export class SstpHttpRequestParser {
  private readonly head: HeadAccumulator;
  private readonly limits: HttpLimits;
  private result: RequestParse = { state: 'incomplete' };

  constructor(limits: Partial<HttpLimits> = {}) {
    this.limits = { ...DEFAULT_HTTP_LIMITS, ...limits };
    this.head = new HeadAccumulator(this.limits.maxHeaderBytes);
  }

  /** Feed octets; once complete or rejected, further input is not looked at. */
  push(chunk: Uint8Array): RequestParse {
    if (this.result.state !== 'incomplete') return this.result;
    const h = this.head.push(chunk);
    switch (h.state) {
      case 'incomplete':
        return this.result;
      case 'too-large':
        return (this.result = { state: 'rejected', status: 431, reason: `request head exceeds ${this.limits.maxHeaderBytes} octets` });
      case 'bad-octet':
        return (this.result = { state: 'rejected', status: 400, reason: `invalid octet in request head at ${h.offset}` });
      case 'complete':
        return (this.result = this.interpret(h.lines, h.rest));
    }
  }

  private interpret(lines: string[], rest: Uint8Array): RequestParse {
    const reject = (status: HttpRejectStatus, reason: string): RequestParse => ({ state: 'rejected', status, reason });
    const m = REQUEST_LINE.exec(lines[0] ?? '');
    if (!m) return reject(400, 'malformed request line');
    const [, method, target, version] = m as unknown as [string, string, string, string];
    if (!TOKEN.test(method)) return reject(400, 'malformed method');
    // 4.1: the server "validates the method to be SSTP_DUPLEX_POST and the HTTP version to be 1.1".
    if (version !== 'HTTP/1.1') return reject(505, `HTTP version ${version} not supported`);

    const headerLines = lines.slice(1);
    if (headerLines.length > this.limits.maxHeaders) return reject(431, `more than ${this.limits.maxHeaders} header fields`);
    const headers: Header[] = [];
    for (const line of headerLines) {
      // RFC 9112 5.2: obs-fold (a line starting with whitespace) is rejected with 400.
      const h = line.startsWith(' ') || line.startsWith('\t') ? undefined : parseHeaderLine(line);
      if (!h) return reject(400, 'malformed header field');
      headers.push(h);
    }

    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    // The GUID path is compared without regard to case, as Windows servers do.
    if (path.toLowerCase() !== SSTP_HTTP_PATH.toLowerCase()) return reject(404, 'not the SSTP resource');
    if (method !== SSTP_HTTP_METHOD) return reject(405, `method ${method} not allowed`);

    // RFC 9112 6.1: a request with Transfer-Encoding and Content-Length is a smuggling vector.
    if (headerValues(headers, 'transfer-encoding').length > 0) return reject(400, 'Transfer-Encoding not accepted');
    const lengths = headerValues(headers, 'content-length');
    // 3.2.4.1: "The content-length header field ... MUST be specified with the content length of ULONGLONG_MAX".
    if (lengths.length !== 1 || lengths[0] !== SSTP_HTTP_CONTENT_LENGTH) {
      return reject(400, `Content-Length must be ${SSTP_HTTP_CONTENT_LENGTH}`);
    }
    // RFC 9112 3.2: exactly one Host field in an HTTP/1.1 request.
    const hosts = headerValues(headers, 'host');
    if (hosts.length !== 1 || hosts[0] === '') return reject(400, 'exactly one non-empty Host field required');
    const correlation = headerValues(headers, 'sstpcorrelationid');
    if (correlation.length > 1) return reject(400, 'duplicate SSTPCORRELATIONID');

    const request: SstpHttpRequest = { method, target, host: hosts[0]!, headers };
    if (correlation[0] !== undefined) request.correlationId = correlation[0];
    if (q >= 0) {
      const tenant = new URLSearchParams(target.slice(q + 1)).get('tenantid');
      if (tenant !== null) request.tenantId = tenant;
    }
    return { state: 'complete', request, rest };
  }
}

const REASONS: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

export interface HttpResponseOptions {
  /** For the Date field; defaults to now. */
  date?: Date;
  /** Server field value. */
  server?: string;
}

export const DEFAULT_SERVER_HEADER = 'vpngw';

function ascii(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

/** 4.1: the success response: status 200, Content-Length ULONGLONG_MAX, Server, Date. One write. */
export function sstpHttpOkResponse(opts: HttpResponseOptions = {}): Uint8Array {
  const date = (opts.date ?? new Date()).toUTCString();
  return ascii(
    'HTTP/1.1 200 OK\r\n' +
      `Content-Length: ${SSTP_HTTP_CONTENT_LENGTH}\r\n` +
      `Server: ${opts.server ?? DEFAULT_SERVER_HEADER}\r\n` +
      `Date: ${date}\r\n` +
      '\r\n',
  );
}

/** An error response after which the server closes the connection (empty body). */
export function httpErrorResponse(status: HttpRejectStatus, opts: HttpResponseOptions = {}): Uint8Array {
  const date = (opts.date ?? new Date()).toUTCString();
  return ascii(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
      (status === 405 ? `Allow: ${SSTP_HTTP_METHOD}\r\n` : '') +
      'Content-Length: 0\r\n' +
      'Connection: close\r\n' +
      `Server: ${opts.server ?? DEFAULT_SERVER_HEADER}\r\n` +
      `Date: ${date}\r\n` +
      '\r\n',
  );
}

export interface SstpHttpAcceptorOptions {
  transport: SstpTransport;
  clock: Clock;
  log: Logger;
  /** Read deadline for the whole request head. */
  timeoutMs: number;
  limits?: Partial<HttpLimits>;
  response?: Omit<HttpResponseOptions, 'date'>;
  /** Wall clock for the Date field (the injected Clock is monotonic). */
  now?: () => Date;
  /** Admission control ("sufficient ports on the server", 4.1): false answers 503. */
  admit?: (request: SstpHttpRequest) => boolean;
  /** The request was accepted and 200 sent; `rest` is the first SSTP octets, if any. */
  onAccepted(request: SstpHttpRequest, rest: Uint8Array): void;
  /** The request was refused (response sent, transport closed). */
  onRejected?(status: HttpRejectStatus, reason: string): void;
}

/**
 * Server side of the exchange over a transport, with its read deadline:
 * feed it octets until it calls onAccepted or onRejected.
 */
export class SstpHttpAcceptor {
  private readonly parser: SstpHttpRequestParser;
  private timer: Timer | undefined;
  private done = false;

  constructor(private readonly opts: SstpHttpAcceptorOptions) {
    this.parser = new SstpHttpRequestParser(opts.limits);
  }

  /** Arm the read deadline (call when the TLS handshake completes). */
  start(): void {
    if (this.done || this.timer) return;
    this.timer = this.opts.clock.setTimer(this.opts.timeoutMs, () => {
      this.timer = undefined;
      this.reject(408, `no complete request within ${this.opts.timeoutMs} ms`);
    });
  }

  get finished(): boolean {
    return this.done;
  }

  input(chunk: Uint8Array): void {
    if (this.done) return;
    const r = this.parser.push(chunk);
    if (r.state === 'incomplete') return;
    if (r.state === 'rejected') return this.reject(r.status, r.reason);
    if (this.opts.admit && !this.opts.admit(r.request)) return this.reject(503, 'not admitted');
    this.finish();
    this.opts.log.info(
      { correlationId: r.request.correlationId, host: r.request.host, tenantId: r.request.tenantId },
      'sstp: HTTP request accepted',
    );
    this.opts.transport.write(sstpHttpOkResponse({ ...this.opts.response, date: this.now() }));
    this.opts.onAccepted(r.request, r.rest);
  }

  /** The transport went away before the request completed. */
  transportClosed(): void {
    this.finish();
  }

  private reject(status: HttpRejectStatus, reason: string): void {
    if (this.done) return;
    this.finish();
    this.opts.log.info({ status, reason }, 'sstp: HTTP request refused');
    this.opts.transport.write(httpErrorResponse(status, { ...this.opts.response, date: this.now() }));
    this.opts.transport.close();
    this.opts.onRejected?.(status, reason);
  }

  private finish(): void {
    this.done = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private now(): Date {
    return this.opts.now ? this.opts.now() : new Date();
  }
}

// ---------------------------------------------------------------------------
// Client side: build the request, parse the response
// ---------------------------------------------------------------------------

export interface SstpHttpRequestOptions {
  /** Host field: the server name (with :port when not 443). */
  host: string;
  /** SSTPCORRELATIONID value, conventionally a braced GUID. */
  correlationId?: string;
  /** Optional `tenantid` query variable (3.2.4.1). */
  tenantId?: string;
}

/** 3.2.4.1: the request head. */
export function sstpHttpRequest(opts: SstpHttpRequestOptions): Uint8Array {
  if (/[\r\n]/.test(opts.host) || (opts.correlationId && /[\r\n]/.test(opts.correlationId))) {
    throw new RangeError('header values must not contain CR or LF');
  }
  const target = opts.tenantId === undefined ? SSTP_HTTP_PATH : `${SSTP_HTTP_PATH}?tenantid=${encodeURIComponent(opts.tenantId)}`;
  return ascii(
    `${SSTP_HTTP_METHOD} ${target} HTTP/1.1\r\n` +
      `Host: ${opts.host}\r\n` +
      `Content-Length: ${SSTP_HTTP_CONTENT_LENGTH}\r\n` +
      (opts.correlationId !== undefined ? `SSTPCORRELATIONID: ${opts.correlationId}\r\n` : '') +
      '\r\n',
  );
}

export interface SstpHttpResponse {
  status: number;
  reason: string;
  headers: ReadonlyArray<Readonly<Header>>;
}

export type ResponseFailure = 'malformed' | 'too-large' | 'status' | 'content-length';

export type ResponseParse =
  | { state: 'incomplete' }
  | { state: 'complete'; response: SstpHttpResponse; rest: Uint8Array }
  | { state: 'rejected'; failure: ResponseFailure; status?: number; message: string };

const STATUS_LINE = /^HTTP\/1\.[01] ([0-9]{3})(?: (.*))?$/;

/** Incremental, bounded parser of the server's response head. Anything but 200 is a typed failure. */
export class SstpHttpResponseParser {
  private readonly head: HeadAccumulator;
  private readonly limits: HttpLimits;
  private result: ResponseParse = { state: 'incomplete' };

  constructor(limits: Partial<HttpLimits> = {}) {
    this.limits = { ...DEFAULT_HTTP_LIMITS, ...limits };
    this.head = new HeadAccumulator(this.limits.maxHeaderBytes);
  }

  push(chunk: Uint8Array): ResponseParse {
    if (this.result.state !== 'incomplete') return this.result;
    const h = this.head.push(chunk);
    switch (h.state) {
      case 'incomplete':
        return this.result;
      case 'too-large':
        return (this.result = { state: 'rejected', failure: 'too-large', message: `response head exceeds ${this.limits.maxHeaderBytes} octets` });
      case 'bad-octet':
        return (this.result = { state: 'rejected', failure: 'malformed', message: `invalid octet in response head at ${h.offset}` });
      case 'complete':
        return (this.result = this.interpret(h.lines, h.rest));
    }
  }

  private interpret(lines: string[], rest: Uint8Array): ResponseParse {
    const m = STATUS_LINE.exec(lines[0] ?? '');
    if (!m) return { state: 'rejected', failure: 'malformed', message: 'malformed status line' };
    const status = Number(m[1]);
    const headers: Header[] = [];
    if (lines.length - 1 > this.limits.maxHeaders) {
      return { state: 'rejected', failure: 'too-large', status, message: `more than ${this.limits.maxHeaders} header fields` };
    }
    for (const line of lines.slice(1)) {
      const h = parseHeaderLine(line);
      if (!h) return { state: 'rejected', failure: 'malformed', status, message: 'malformed header field' };
      headers.push(h);
    }
    if (status !== 200) return { state: 'rejected', failure: 'status', status, message: `server answered ${status} ${m[2] ?? ''}`.trim() };
    const lengths = headerValues(headers, 'content-length');
    if (lengths.length > 1 || (lengths.length === 1 && lengths[0] !== SSTP_HTTP_CONTENT_LENGTH)) {
      return { state: 'rejected', failure: 'content-length', status, message: `Content-Length ${lengths.join(',')} is not ${SSTP_HTTP_CONTENT_LENGTH}` };
    }
    return { state: 'complete', response: { status, reason: m[2] ?? '', headers }, rest };
  }
}
