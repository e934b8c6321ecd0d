import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { hex } from '../util/decode.js';
import { silentLogger } from '../util/log.js';
import {
  SstpHttpAcceptor,
  SstpHttpRequestParser,
  SstpHttpResponseParser,
  httpErrorResponse,
  sstpHttpOkResponse,
  sstpHttpRequest,
  type RequestParse,
  type ResponseParse,
} from './http.js';
import { createPipe, joined } from './testing.js';

const enc = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** What sstpc (sstp-client 1.0.x) sends, field for field. */
const SSTPC_REQUEST =
  'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n' +
  'Host: vpn.example.test\r\n' +
  'Content-Length: 18446744073709551615\r\n' +
  'SSTPCORRELATIONID: {3F2504E0-4F89-11D3-9A0C-0305E82C3301}\r\n' +
  '\r\n';

const SSTP_FIRST = new Uint8Array([0x10, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x01]);

function parse(s: string | Uint8Array): RequestParse {
  return new SstpHttpRequestParser().push(typeof s === 'string' ? enc(s) : s);
}

function status(r: RequestParse): number | string {
  return r.state === 'rejected' ? r.status : r.state;
}

const withHeaders = (headers: string, line = 'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1') =>
  `${line}\r\n${headers}\r\n`;
const GOOD_HEADERS = 'Host: h\r\nContent-Length: 18446744073709551615\r\n';

describe('SSTP HTTP request (server side, 3.2.4.1 / 4.1)', () => {
  it('accepts the request sstpc sends and records the correlation ID', () => {
    const r = parse(SSTPC_REQUEST);
    expect(r.state).toBe('complete');
    if (r.state !== 'complete') return;
    expect(r.request.method).toBe('SSTP_DUPLEX_POST');
    expect(r.request.host).toBe('vpn.example.test');
    expect(r.request.correlationId).toBe('{3F2504E0-4F89-11D3-9A0C-0305E82C3301}');
    expect(r.request.tenantId).toBeUndefined();
    expect(r.rest.length).toBe(0);
  });

  it('hands the octets after the head to SSTP', () => {
    const r = parse(new Uint8Array([...enc(SSTPC_REQUEST), ...SSTP_FIRST]));
    expect(r.state === 'complete' && hex(r.rest)).toBe(hex(SSTP_FIRST));
  });

  it('gives the same result whatever the chunking', () => {
    const all = new Uint8Array([...enc(SSTPC_REQUEST), ...SSTP_FIRST]);
    for (let i = 0; i <= all.length; i++) {
      const p = new SstpHttpRequestParser();
      const first = p.push(all.subarray(0, i));
      const r = first.state === 'incomplete' ? p.push(all.subarray(i)) : first;
      expect(r.state, `split at ${i}`).toBe('complete');
      if (r.state !== 'complete') continue;
      // When the split falls inside the head, rest is all SSTP; when after it, the first piece already completed.
      const rest = first.state === 'complete' ? new Uint8Array([...first.rest, ...all.subarray(i)]) : r.rest;
      expect(hex(rest)).toBe(hex(SSTP_FIRST));
    }
    // One octet at a time.
    const p = new SstpHttpRequestParser();
    let last: RequestParse = { state: 'incomplete' };
    for (const b of enc(SSTPC_REQUEST)) {
      expect(last.state).toBe('incomplete');
      last = p.push(new Uint8Array([b]));
    }
    expect(last.state).toBe('complete');
  });

  it('accepts bare LF line ends, header names in any case, a query with tenantid, the GUID in any case', () => {
    expect(status(parse(SSTPC_REQUEST.replace(/\r\n/g, '\n')))).toBe('complete');
    expect(status(parse(withHeaders('HOST: h\r\ncontent-length: 18446744073709551615\r\n')))).toBe('complete');
    const t = parse(withHeaders(GOOD_HEADERS, 'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/?tenantid=contoso HTTP/1.1'));
    expect(t.state === 'complete' && t.request.tenantId).toBe('contoso');
    expect(status(parse(withHeaders(GOOD_HEADERS, 'SSTP_DUPLEX_POST /sra_{ba195980-cd49-458b-9e23-c84ee0adcd75}/ HTTP/1.1')))).toBe('complete');
    // No SSTPCORRELATIONID: fine, nothing recorded.
    const n = parse(withHeaders(GOOD_HEADERS));
    expect(n.state === 'complete' && n.request.correlationId).toBeUndefined();
  });

  const rejections: Array<[string, string, number]> = [
    ['another path', withHeaders(GOOD_HEADERS, 'SSTP_DUPLEX_POST / HTTP/1.1'), 404],
    ['a GET of the SSTP path', withHeaders(GOOD_HEADERS, 'GET /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1'), 405],
    ['a GET of another path', withHeaders('Host: h\r\n', 'GET /index.html HTTP/1.1'), 404],
    ['a lower-case method', withHeaders(GOOD_HEADERS, 'sstp_duplex_post /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1'), 405],
    ['HTTP/1.0', withHeaders(GOOD_HEADERS, 'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.0'), 505],
    ['a malformed request line', withHeaders(GOOD_HEADERS, 'SSTP_DUPLEX_POST  /sra_x/ HTTP/1.1'), 400],
    ['a request line without version', withHeaders(GOOD_HEADERS, 'SSTP_DUPLEX_POST /sra_x/'), 400],
    ['TLS garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 400],
    ['no Content-Length', withHeaders('Host: h\r\n'), 400],
    ['a finite Content-Length', withHeaders('Host: h\r\nContent-Length: 0\r\n'), 400],
    ['two Content-Length', withHeaders(`${GOOD_HEADERS}Content-Length: 18446744073709551615\r\n`), 400],
    ['Transfer-Encoding', withHeaders(`${GOOD_HEADERS}Transfer-Encoding: chunked\r\n`), 400],
    ['no Host', withHeaders('Content-Length: 18446744073709551615\r\n'), 400],
    ['two Host', withHeaders(`${GOOD_HEADERS}Host: other\r\n`), 400],
    ['an empty Host', withHeaders('Host:\r\nContent-Length: 18446744073709551615\r\n'), 400],
    ['whitespace before the colon', withHeaders(`${GOOD_HEADERS}Foo : bar\r\n`), 400],
    ['a line folded (obs-fold)', withHeaders(`${GOOD_HEADERS}Foo: bar\r\n baz\r\n`), 400],
    ['a header without colon', withHeaders(`${GOOD_HEADERS}Foo\r\n`), 400],
    ['a NUL octet', withHeaders(`${GOOD_HEADERS}Foo: b\x00r\r\n`), 400],
    ['a non-ASCII octet', withHeaders(`${GOOD_HEADERS}Foo: b\xe9r\r\n`), 400],
    ['a stray CR', withHeaders(`${GOOD_HEADERS}Foo: b\rar\r\n`), 400],
    ['two SSTPCORRELATIONID', withHeaders(`${GOOD_HEADERS}SSTPCORRELATIONID: a\r\nSSTPCORRELATIONID: b\r\n`), 400],
    ['too many header fields', withHeaders(GOOD_HEADERS + 'X: y\r\n'.repeat(40)), 431],
  ];
  for (const [name, req, code] of rejections) {
    it(`answers ${code} to ${name}`, () => expect(status(parse(req))).toBe(code));
  }

  it('answers 431 to a head over 8 KiB, whether it comes at once or in small pieces', () => {
    const big = withHeaders(GOOD_HEADERS + `X-Pad: ${'a'.repeat(9000)}\r\n`);
    expect(status(parse(big))).toBe(431);
    const p = new SstpHttpRequestParser();
    let r: RequestParse = { state: 'incomplete' };
    const bytes = enc(big);
    let fed = 0;
    for (let i = 0; i < bytes.length && r.state === 'incomplete'; i += 100) {
      r = p.push(bytes.subarray(i, i + 100));
      fed = i + 100;
    }
    expect(status(r)).toBe(431);
    expect(fed).toBeLessThanOrEqual(8192 + 100);
    // A head without end never grows past the bound either.
    const q = new SstpHttpRequestParser({ maxHeaderBytes: 64 });
    expect(status(q.push(enc('SSTP_DUPLEX_POST /x HTTP/1.1\r\nHost: ' + 'h'.repeat(80))))).toBe(431);
  });

  it('stays rejected once rejected', () => {
    const p = new SstpHttpRequestParser();
    expect(status(p.push(enc('GET / HTTP/1.1\r\nHost: h\r\n\r\n')))).toBe(404);
    expect(status(p.push(enc(SSTPC_REQUEST)))).toBe(404);
  });
});

describe('SSTP HTTP responses', () => {
  const date = new Date(Date.UTC(2006, 10, 9, 0, 51, 9));

  it('200: Content-Length ULONGLONG_MAX, Server, Date, in one piece', () => {
    expect(text(sstpHttpOkResponse({ date }))).toBe(
      'HTTP/1.1 200 OK\r\n' +
        'Content-Length: 18446744073709551615\r\n' +
        'Server: vpngw\r\n' +
        'Date: Thu, 09 Nov 2006 00:51:09 GMT\r\n' +
        '\r\n',
    );
    // sstpc reads the status code at offset 9.
    expect(text(sstpHttpOkResponse({ date })).slice(9, 12)).toBe('200');
  });

  it('errors close the connection; 405 names the allowed method', () => {
    expect(text(httpErrorResponse(405, { date, server: 'x' }))).toBe(
      'HTTP/1.1 405 Method Not Allowed\r\n' +
        'Allow: SSTP_DUPLEX_POST\r\n' +
        'Content-Length: 0\r\n' +
        'Connection: close\r\n' +
        'Server: x\r\n' +
        'Date: Thu, 09 Nov 2006 00:51:09 GMT\r\n' +
        '\r\n',
    );
    expect(text(httpErrorResponse(408, { date })).split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(text(httpErrorResponse(431, { date })).split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
  });
});

describe('SstpHttpAcceptor (server exchange with its read deadline)', () => {
  function setup(admit?: () => boolean) {
    const clock = new VirtualClock();
    const pipe = createPipe();
    const events: string[] = [];
    let rest = new Uint8Array(0);
    const acc = new SstpHttpAcceptor({
      transport: pipe.a,
      clock,
      log: silentLogger,
      timeoutMs: 30_000,
      now: () => new Date(Date.UTC(2024, 0, 1)),
      ...(admit ? { admit } : {}),
      onAccepted: (req, r) => {
        events.push(`accepted ${req.correlationId}`);
        rest = r.slice();
      },
      onRejected: (s, reason) => events.push(`rejected ${s} ${reason}`),
    });
    acc.start();
    return { clock, pipe, events, acc, rest: () => rest };
  }

  it('answers 200 and passes on the first SSTP octets', () => {
    const s = setup();
    s.acc.input(new Uint8Array([...enc(SSTPC_REQUEST), ...SSTP_FIRST]));
    expect(s.events).toEqual(['accepted {3F2504E0-4F89-11D3-9A0C-0305E82C3301}']);
    expect(text(joined(s.pipe.a.written))).toBe(text(sstpHttpOkResponse({ date: new Date(Date.UTC(2024, 0, 1)) })));
    expect(s.pipe.a.written).toHaveLength(1);
    expect(hex(s.rest())).toBe(hex(SSTP_FIRST));
    expect(s.pipe.a.closed).toBe(false);
    // The deadline is off.
    s.clock.advance(60_000);
    expect(s.pipe.a.written).toHaveLength(1);
  });

  it('answers 408 and closes when the head does not complete in time', () => {
    const s = setup();
    s.acc.input(enc('SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\nHost: h\r\n'));
    s.clock.advance(29_999);
    expect(s.pipe.a.written).toHaveLength(0);
    s.clock.advance(1);
    expect(text(joined(s.pipe.a.written)).split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(s.pipe.a.closed).toBe(true);
    expect(s.events).toEqual(['rejected 408 no complete request within 30000 ms']);
    s.acc.input(enc('Content-Length: 18446744073709551615\r\n\r\n'));
    expect(s.pipe.a.written).toHaveLength(1);
  });

  it('answers the HTTP error and closes on a bad request', () => {
    const s = setup();
    s.acc.input(enc('GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
    expect(text(joined(s.pipe.a.written)).split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
    expect(s.pipe.a.closed).toBe(true);
    expect(s.events).toEqual(['rejected 404 not the SSTP resource']);
  });

  it('answers 503 when admission control says no', () => {
    const s = setup(() => false);
    s.acc.input(enc(SSTPC_REQUEST));
    expect(text(joined(s.pipe.a.written)).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(s.pipe.a.closed).toBe(true);
  });
});

describe('SSTP HTTP client side', () => {
  it('builds the request sstpc sends', () => {
    const req = sstpHttpRequest({ host: 'vpn.example.test', correlationId: '{3F2504E0-4F89-11D3-9A0C-0305E82C3301}' });
    expect(text(req)).toBe(
      'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n' +
        'Host: vpn.example.test\r\n' +
        'Content-Length: 18446744073709551615\r\n' +
        'SSTPCORRELATIONID: {3F2504E0-4F89-11D3-9A0C-0305E82C3301}\r\n' +
        '\r\n',
    );
    // And our server takes it.
    expect(status(parse(req))).toBe('complete');
    expect(() => sstpHttpRequest({ host: 'a\r\nX: y' })).toThrow(RangeError);
  });

  function resp(s: string | Uint8Array): ResponseParse {
    return new SstpHttpResponseParser().push(typeof s === 'string' ? enc(s) : s);
  }

  it('accepts our 200, the spec example and a bare "HTTP/1.1 200"', () => {
    expect(resp(sstpHttpOkResponse()).state).toBe('complete');
    const spec =
      'HTTP/1.1 200\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\nDate: Thu, 09 Nov 2006 00:51:09 GMT\r\n\r\n';
    const r = resp(new Uint8Array([...enc(spec), 0x10, 0x01]));
    expect(r.state).toBe('complete');
    if (r.state === 'complete') {
      expect(r.response.status).toBe(200);
      expect(hex(r.rest)).toBe('1001');
    }
  });

  it('reports anything else as a typed failure with the status', () => {
    const f = (s: string) => {
      const r = resp(s);
      return r.state === 'rejected' ? [r.failure, r.status] : [r.state];
    };
    expect(f('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')).toEqual(['status', 403]);
    expect(f('HTTP/1.1 404 Not Found\r\n\r\n')).toEqual(['status', 404]);
    expect(f('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')).toEqual(['content-length', 200]);
    expect(f('HTTP/1.1 2000 OK\r\n\r\n')).toEqual(['malformed', undefined]);
    expect(f('SSH-2.0-OpenSSH\r\n\r\n')).toEqual(['malformed', undefined]);
    expect(f(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(9000)}\r\n\r\n`)).toEqual(['too-large', undefined]);
  });

  it('gives the same result whatever the chunking', () => {
    const all = new Uint8Array([...sstpHttpOkResponse(), ...SSTP_FIRST]);
    for (let i = 0; i <= all.length; i++) {
      const p = new SstpHttpResponseParser();
      const first = p.push(all.subarray(0, i));
      const r = first.state === 'incomplete' ? p.push(all.subarray(i)) : first;
      expect(r.state).toBe('complete');
      const rest = first.state === 'complete' ? new Uint8Array([...first.rest, ...all.subarray(i)]) : r.state === 'complete' ? r.rest : undefined;
      expect(hex(rest!)).toBe(hex(SSTP_FIRST));
    }
  });
});
