import { describe, expect, it } from 'vitest';
import { ByteWriter, hex } from '../util/decode.js';
import {
  CONTROL_MESSAGE_LENGTH,
  ControlDeframer,
  ControlMessageType as T,
  DisconnectResult,
  GeneralError,
  MAX_CONTROL_MESSAGE_LENGTH,
  OutgoingCallResult,
  StartControlResult,
  StopReason,
  StopResult,
  checkControlHeader,
  decodeControlMessage,
  encodeControlMessage,
  encodeControlMessageInto,
  type ControlMessage,
} from './codec.js';

/** Spec-like builder: the common header of RFC 2637 section 1.4. */
function header(w: ByteWriter, length: number, type: number): ByteWriter {
  return w.u16(length).u16(1).u32(0x1a2b3c4d).u16(type).u16(0);
}

/** A NUL-padded text field of `width` octets. */
function text(w: ByteWriter, s: string, width = 64): ByteWriter {
  return w.ascii(s).zeros(width - s.length);
}

// [MS-PTPT] section 4: the correlation GUID Windows puts in the Outgoing-Call-Request subaddress.
const GUID = Uint8Array.from([0xe3, 0x57, 0x2a, 0x57, 0xe0, 0xa2, 0xbd, 0x41, 0xb8, 0x26, 0xf1, 0x45, 0x41, 0x06, 0xf2, 0x61]);
const SUBADDRESS = new Uint8Array(64);
SUBADDRESS.set(GUID);

interface Case {
  name: string;
  message: ControlMessage;
  expected: Uint8Array;
}

/**
 * Every message, with the wire bytes written field by field as in the RFC's
 * diagrams. The first eight use the field values of the [MS-PTPT] section 4
 * example exchange (Windows client and server).
 */
const CASES: Case[] = [
  {
    name: 'Start-Control-Connection-Request ([MS-PTPT] 4)',
    message: {
      type: T.StartControlConnectionRequest,
      protocolVersion: 0x0100,
      framingCapabilities: 1,
      bearerCapabilities: 1,
      maximumChannels: 0,
      firmwareRevision: 0,
      hostName: '',
      vendorName: 'Microsoft',
    },
    expected: text(text(header(new ByteWriter(), 0x9c, 1).u16(0x0100).u16(0).u32(1).u32(1).u16(0).u16(0), ''), 'Microsoft').finish(),
  },
  {
    name: 'Start-Control-Connection-Reply ([MS-PTPT] 4)',
    message: {
      type: T.StartControlConnectionReply,
      protocolVersion: 0x0100,
      resultCode: StartControlResult.Success,
      errorCode: GeneralError.None,
      framingCapabilities: 1,
      bearerCapabilities: 1,
      maximumChannels: 0,
      firmwareRevision: 0,
      hostName: '',
      vendorName: 'Microsoft',
    },
    expected: text(text(header(new ByteWriter(), 0x9c, 2).u16(0x0100).u8(1).u8(0).u32(1).u32(1).u16(0).u16(0), ''), 'Microsoft').finish(),
  },
  {
    name: 'Outgoing-Call-Request ([MS-PTPT] 4, GUID subaddress)',
    message: {
      type: T.OutgoingCallRequest,
      callId: 64234,
      callSerialNumber: 1,
      minimumBps: 300,
      maximumBps: 100_000_000,
      bearerType: 3,
      framingType: 3,
      receiveWindowSize: 64,
      processingDelay: 0,
      phoneNumberLength: 0,
      phoneNumber: '',
      subaddress: SUBADDRESS,
    },
    expected: header(new ByteWriter(), 0xa8, 7)
      .u16(0xfaea)
      .u16(1)
      .u32(0x12c)
      .u32(0x5f5e100)
      .u32(3)
      .u32(3)
      .u16(0x40)
      .u16(0)
      .u16(0)
      .u16(0)
      .zeros(64)
      .bytes(GUID)
      .zeros(48)
      .finish(),
  },
  {
    name: 'Outgoing-Call-Reply ([MS-PTPT] 4)',
    message: {
      type: T.OutgoingCallReply,
      callId: 58378,
      peerCallId: 64234,
      resultCode: OutgoingCallResult.Connected,
      errorCode: 0,
      causeCode: 0,
      connectSpeed: 5317890,
      receiveWindowSize: 16384,
      processingDelay: 0,
      physicalChannelId: 0,
    },
    expected: header(new ByteWriter(), 0x20, 8).u16(0xe40a).u16(0xfaea).u8(1).u8(0).u16(0).u32(0x512502).u16(0x4000).u16(0).u32(0).finish(),
  },
  {
    name: 'Call-Clear-Request ([MS-PTPT] 4)',
    message: { type: T.CallClearRequest, callId: 64234 },
    expected: header(new ByteWriter(), 0x10, 12).u16(0xfaea).u16(0).finish(),
  },
  {
    name: 'Call-Disconnect-Notify ([MS-PTPT] 4)',
    message: { type: T.CallDisconnectNotify, callId: 58378, resultCode: 0, errorCode: 0, causeCode: 0, callStatistics: '' },
    expected: header(new ByteWriter(), 0x94, 13).u16(0xe40a).u8(0).u8(0).u16(0).u16(0).zeros(128).finish(),
  },
  {
    name: 'Stop-Control-Connection-Request ([MS-PTPT] 4)',
    message: { type: T.StopControlConnectionRequest, reason: StopReason.None },
    expected: header(new ByteWriter(), 0x10, 3).u8(1).u8(0).u16(0).finish(),
  },
  {
    name: 'Stop-Control-Connection-Reply ([MS-PTPT] 4)',
    message: { type: T.StopControlConnectionReply, resultCode: StopResult.Ok, errorCode: 0 },
    expected: header(new ByteWriter(), 0x10, 4).u8(1).u8(0).u16(0).finish(),
  },
  {
    name: 'Echo-Request',
    message: { type: T.EchoRequest, identifier: 0xdeadbeef },
    expected: header(new ByteWriter(), 16, 5).u32(0xdeadbeef).finish(),
  },
  {
    name: 'Echo-Reply',
    message: { type: T.EchoReply, identifier: 7, resultCode: 2, errorCode: GeneralError.NotConnected },
    expected: header(new ByteWriter(), 20, 6).u32(7).u8(2).u8(1).u16(0).finish(),
  },
  {
    name: 'Incoming-Call-Request',
    message: {
      type: T.IncomingCallRequest,
      callId: 0x1234,
      callSerialNumber: 9,
      bearerType: 2,
      physicalChannelId: 0x01020304,
      dialedNumberLength: 4,
      dialingNumberLength: 3,
      dialedNumber: '5551',
      dialingNumber: '123',
      subaddress: Uint8Array.from({ length: 64 }, (_, i) => i),
    },
    expected: text(
      text(header(new ByteWriter(), 220, 9).u16(0x1234).u16(9).u32(2).u32(0x01020304).u16(4).u16(3), '5551'),
      '123',
    )
      .bytes(Uint8Array.from({ length: 64 }, (_, i) => i))
      .finish(),
  },
  {
    name: 'Incoming-Call-Reply',
    message: {
      type: T.IncomingCallReply,
      callId: 0x2222,
      peerCallId: 0x1234,
      resultCode: 3,
      errorCode: 0,
      receiveWindowSize: 16384,
      transmitDelay: 5,
    },
    expected: header(new ByteWriter(), 24, 10).u16(0x2222).u16(0x1234).u8(3).u8(0).u16(16384).u16(5).u16(0).finish(),
  },
  {
    name: 'Incoming-Call-Connected',
    message: {
      type: T.IncomingCallConnected,
      peerCallId: 0x2222,
      connectSpeed: 33600,
      receiveWindowSize: 8,
      transmitDelay: 2,
      framingType: 1,
    },
    expected: header(new ByteWriter(), 28, 11).u16(0x2222).u16(0).u32(33600).u16(8).u16(2).u32(1).finish(),
  },
  {
    name: 'Call-Disconnect-Notify with statistics',
    message: {
      type: T.CallDisconnectNotify,
      callId: 100,
      resultCode: DisconnectResult.Request,
      errorCode: 0,
      causeCode: 16,
      callStatistics: 'rx 10 tx 12',
    },
    expected: text(header(new ByteWriter(), 148, 13).u16(100).u8(4).u8(0).u16(16).u16(0), 'rx 10 tx 12', 128).finish(),
  },
  {
    name: 'WAN-Error-Notify',
    message: {
      type: T.WanErrorNotify,
      peerCallId: 77,
      crcErrors: 1,
      framingErrors: 2,
      hardwareOverruns: 3,
      bufferOverruns: 4,
      timeoutErrors: 5,
      alignmentErrors: 0xffffffff,
    },
    expected: header(new ByteWriter(), 40, 14).u16(77).u16(0).u32(1).u32(2).u32(3).u32(4).u32(5).u32(0xffffffff).finish(),
  },
  {
    name: 'Set-Link-Info',
    message: { type: T.SetLinkInfo, peerCallId: 58378, sendAccm: 0xffffffff, receiveAccm: 0 },
    expected: header(new ByteWriter(), 24, 15).u16(0xe40a).u16(0).u32(0xffffffff).u32(0).finish(),
  },
  {
    name: 'Start-Control-Connection-Request (pptp-linux)',
    message: {
      type: T.StartControlConnectionRequest,
      protocolVersion: 0x0100,
      framingCapabilities: 3,
      bearerCapabilities: 3,
      maximumChannels: 65535,
      firmwareRevision: 1,
      hostName: 'local',
      vendorName: 'cananian',
    },
    expected: text(text(header(new ByteWriter(), 156, 1).u16(0x0100).u16(0).u32(3).u32(3).u16(65535).u16(1), 'local'), 'cananian').finish(),
  },
  // Distinct values in every field, so a swapped or misplaced field cannot pass unnoticed.
  {
    name: 'Start-Control-Connection-Reply, distinct fields',
    message: {
      type: T.StartControlConnectionReply,
      protocolVersion: 0x0102,
      resultCode: 2,
      errorCode: 6,
      framingCapabilities: 0x0a0b0c0d,
      bearerCapabilities: 0x01020304,
      maximumChannels: 0x0506,
      firmwareRevision: 0x0708,
      hostName: 'gw.example',
      vendorName: 'vendor',
    },
    expected: text(
      text(header(new ByteWriter(), 156, 2).u16(0x0102).u8(2).u8(6).u32(0x0a0b0c0d).u32(0x01020304).u16(0x0506).u16(0x0708), 'gw.example'),
      'vendor',
    ).finish(),
  },
  {
    name: 'Outgoing-Call-Request, distinct fields and a phone number',
    message: {
      type: T.OutgoingCallRequest,
      callId: 0x0102,
      callSerialNumber: 0x0304,
      minimumBps: 0x05060708,
      maximumBps: 0x090a0b0c,
      bearerType: 2,
      framingType: 1,
      receiveWindowSize: 0x0d0e,
      processingDelay: 0x0f10,
      phoneNumberLength: 7,
      phoneNumber: '5551234',
      subaddress: new Uint8Array(64).fill(0x55),
    },
    expected: text(
      header(new ByteWriter(), 168, 7)
        .u16(0x0102)
        .u16(0x0304)
        .u32(0x05060708)
        .u32(0x090a0b0c)
        .u32(2)
        .u32(1)
        .u16(0x0d0e)
        .u16(0x0f10)
        .u16(7)
        .u16(0),
      '5551234',
    )
      .bytes(new Uint8Array(64).fill(0x55))
      .finish(),
  },
  {
    name: 'Outgoing-Call-Reply, distinct fields',
    message: {
      type: T.OutgoingCallReply,
      callId: 0x0102,
      peerCallId: 0x0304,
      resultCode: 2,
      errorCode: 4,
      causeCode: 0x0506,
      connectSpeed: 0x0708090a,
      receiveWindowSize: 0x0b0c,
      processingDelay: 0x0d0e,
      physicalChannelId: 0x0f101112,
    },
    expected: header(new ByteWriter(), 32, 8).u16(0x0102).u16(0x0304).u8(2).u8(4).u16(0x0506).u32(0x0708090a).u16(0x0b0c).u16(0x0d0e).u32(0x0f101112).finish(),
  },
  {
    name: 'Stop-Control-Connection-Reply, general error',
    message: { type: T.StopControlConnectionReply, resultCode: StopResult.GeneralError, errorCode: GeneralError.PacError },
    expected: header(new ByteWriter(), 16, 4).u8(2).u8(6).u16(0).finish(),
  },
];

describe('PPTP control codec: byte-exact encoding', () => {
  it('covers all fifteen control message types', () => {
    expect(new Set(CASES.map((c) => c.message.type)).size).toBe(15);
  });

  for (const c of CASES) {
    it(`${c.name} encodes to the spec bytes and decodes back`, () => {
      const bytes = encodeControlMessage(c.message);
      expect(hex(bytes)).toBe(hex(c.expected));
      expect(bytes.length).toBe(CONTROL_MESSAGE_LENGTH[c.message.type]);
      const r = decodeControlMessage(c.expected);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.consumed).toBe(c.expected.length);
      expect(r.value).toEqual(c.message);
    });
  }

  it('writes into a caller buffer at an offset and refuses a buffer that is too small', () => {
    const m = CASES[4]!.message;
    const out = new Uint8Array(40).fill(0xee);
    expect(encodeControlMessageInto(m, out, 8)).toBe(16);
    expect(hex(out.subarray(8, 24))).toBe(hex(CASES[4]!.expected));
    expect(out[7]).toBe(0xee);
    expect(out[24]).toBe(0xee);
    expect(() => encodeControlMessageInto(m, out, 30)).toThrow(RangeError);
  });

  it('pads text fields with NULs, truncates at 64 octets, maps non-latin1 to ?', () => {
    const long = 'h'.repeat(70);
    const bytes = encodeControlMessage({ ...(CASES[0]!.message as Extract<ControlMessage, { type: T.StartControlConnectionRequest }>), hostName: long, vendorName: 'v€' });
    expect(bytes.subarray(28, 92).every((b) => b === 0x68)).toBe(true);
    expect(Array.from(bytes.subarray(92, 95))).toEqual([0x76, 0x3f, 0]);
    const r = decodeControlMessage(bytes);
    expect(r.ok && r.value.type === T.StartControlConnectionRequest && r.value.hostName).toBe('h'.repeat(64));
  });

  it('reads text up to the first NUL even when junk follows (Win95 does not zero-fill), and ignores reserved fields', () => {
    const bytes = encodeControlMessage(CASES[16]!.message);
    bytes[28 + 6] = 0x41; // junk after "local\0"
    bytes[10] = 0xff; // Reserved0
    bytes[14] = 0x12; // Reserved1
    const r = decodeControlMessage(bytes);
    expect(r.ok).toBe(true);
    if (r.ok && r.value.type === T.StartControlConnectionRequest) {
      expect(r.value.hostName).toBe('local');
      expect(r.value.protocolVersion).toBe(0x0100);
    }
  });

  it('decoded octet fields do not alias the input buffer', () => {
    const bytes = encodeControlMessage(CASES[2]!.message);
    const r = decodeControlMessage(bytes);
    bytes.fill(0);
    expect(r.ok && r.value.type === T.OutgoingCallRequest && Array.from(r.value.subaddress.subarray(0, 16))).toEqual(Array.from(GUID));
  });
});

describe('PPTP control codec: truncation and malformed input', () => {
  it('rejects every truncated prefix of every message as "truncated"', () => {
    for (const c of CASES) {
      for (let k = 0; k < c.expected.length; k++) {
        const r = decodeControlMessage(c.expected.subarray(0, k));
        expect(r.ok, `${c.name} prefix ${k}`).toBe(false);
        if (!r.ok) expect(r.kind, `${c.name} prefix ${k}`).toBe('truncated');
      }
    }
  });

  it('decodes one message from a longer buffer, consuming only its length', () => {
    const two = new Uint8Array([...CASES[8]!.expected, ...CASES[9]!.expected]);
    const r = decodeControlMessage(two);
    expect(r.ok && r.consumed).toBe(16);
    const r2 = decodeControlMessage(two, 16);
    expect(r2.ok && r2.value.type).toBe(T.EchoReply);
  });

  const bad = (mutate: (b: Uint8Array, v: DataView) => void, base = CASES[8]!.expected): Uint8Array => {
    const b = base.slice();
    mutate(b, new DataView(b.buffer));
    return b;
  };

  it('bad magic cookie -> "magic"', () => {
    const r = decodeControlMessage(bad((_, v) => v.setUint32(4, 0x1a2b3c4e)));
    expect(r).toMatchObject({ ok: false, kind: 'magic', offset: 4 });
  });

  it('length that does not match the type -> "length" (shorter, longer, zero)', () => {
    for (const len of [0, 12, 15, 17, 20, 156, 0xffff]) {
      const r = decodeControlMessage(bad((_, v) => v.setUint16(0, len)));
      expect(r, `length ${len}`).toMatchObject({ ok: false, kind: 'length' });
    }
    // A Start-Control-Connection-Request claiming to be one octet longer.
    const r = decodeControlMessage(bad((_, v) => v.setUint16(0, 157), CASES[0]!.expected));
    expect(r).toMatchObject({ ok: false, kind: 'length' });
  });

  it('unknown control message types 0, 16 and 0xffff -> "type"', () => {
    for (const t of [0, 16, 0xffff]) {
      expect(decodeControlMessage(bad((_, v) => v.setUint16(8, t))), `type ${t}`).toMatchObject({ ok: false, kind: 'type', offset: 8 });
    }
  });

  it('PPTP message type 2 (management) and 3 -> "type"', () => {
    const m = decodeControlMessage(bad((_, v) => v.setUint16(2, 2)));
    expect(m).toMatchObject({ ok: false, kind: 'type', offset: 2 });
    if (!m.ok) expect(m.message).toMatch(/management/);
    expect(decodeControlMessage(bad((_, v) => v.setUint16(2, 3)))).toMatchObject({ ok: false, kind: 'type' });
  });

  it('checks the header as soon as its 12 octets are in', () => {
    const b = bad((_, v) => v.setUint16(0, 9999), CASES[0]!.expected);
    expect(checkControlHeader(b.subarray(0, 12))).toMatchObject({ ok: false, kind: 'length' });
    expect(checkControlHeader(CASES[0]!.expected.subarray(0, 12))).toMatchObject({ ok: true, value: T.StartControlConnectionRequest });
  });

  it('never throws on arbitrary bytes', () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    };
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from({ length: rnd() }, rnd);
      // Half the time make the header plausible so the body readers run.
      if (i % 2 === 0 && b.length >= 12) {
        const type = 1 + (i % 15);
        const v = new DataView(b.buffer);
        v.setUint16(0, CONTROL_MESSAGE_LENGTH[type as T]);
        v.setUint16(2, 1);
        v.setUint32(4, 0x1a2b3c4d);
        v.setUint16(8, type);
      }
      expect(() => decodeControlMessage(b)).not.toThrow();
      expect(() => new ControlDeframer().push(b)).not.toThrow();
    }
  });
});

describe('PPTP control stream deframer', () => {
  const stream = new Uint8Array(CASES.flatMap((c) => Array.from(c.expected)));
  const all = CASES.map((c) => c.message);

  it('parses a stream split at every byte offset the same way', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new ControlDeframer();
      const a = d.push(stream.subarray(0, cut));
      const b = d.push(stream.subarray(cut));
      expect(a.error ?? b.error, `cut ${cut}`).toBeUndefined();
      expect([...a.messages, ...b.messages], `cut ${cut}`).toEqual(all);
      expect(d.buffered).toBe(0);
    }
  });

  it('parses a stream fed one byte at a time, and in uneven chunks', () => {
    for (const size of [1, 2, 3, 7, 11, 12, 13, 100, 1000]) {
      const d = new ControlDeframer();
      const out: ControlMessage[] = [];
      for (let i = 0; i < stream.length; i += size) {
        const r = d.push(stream.subarray(i, i + size));
        expect(r.error).toBeUndefined();
        out.push(...r.messages);
        expect(d.buffered).toBeLessThanOrEqual(MAX_CONTROL_MESSAGE_LENGTH);
      }
      expect(out, `chunk ${size}`).toEqual(all);
    }
  });

  it('holds a partial message until it completes ("need more")', () => {
    const d = new ControlDeframer();
    const m = CASES[2]!.expected;
    expect(d.push(m.subarray(0, 5))).toEqual({ messages: [] });
    expect(d.push(m.subarray(5, 100))).toEqual({ messages: [] });
    expect(d.buffered).toBe(100);
    expect(d.push(m.subarray(100)).messages).toHaveLength(1);
  });

  it('delivers the messages before a bad one, then stays failed, with the stream offset of the failure', () => {
    const d = new ControlDeframer();
    const good = CASES[8]!.expected;
    const broken = good.slice();
    broken[4] = 0; // cookie
    const r = d.push(new Uint8Array([...good, ...good, ...broken]));
    expect(r.messages).toHaveLength(2);
    expect(r.error).toMatchObject({ kind: 'magic', offset: 36 });
    expect(d.push(good)).toMatchObject({ messages: [], error: { kind: 'magic' } });
    expect(d.failed?.kind).toBe('magic');
  });

  it('fails on a bad length as soon as the header is complete, without waiting for the claimed length', () => {
    const d = new ControlDeframer();
    const b = CASES[8]!.expected.slice();
    new DataView(b.buffer).setUint16(0, 4000);
    expect(d.push(b.subarray(0, 11)).error).toBeUndefined();
    expect(d.push(b.subarray(11, 12)).error).toMatchObject({ kind: 'length' });
  });

  it('fails on a management message', () => {
    const b = CASES[8]!.expected.slice();
    b[3] = 2;
    expect(new ControlDeframer().push(b).error).toMatchObject({ kind: 'type' });
  });
});
