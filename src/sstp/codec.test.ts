import { describe, expect, it } from 'vitest';
import { ByteWriter, fromHex, hex } from '../util/decode.js';
import {
  SstpDeframer,
  callConnectRequestProblems,
  controlMessageBytes,
  dataPacketBytes,
  decodeControlMessage,
  decodeHeader,
  decodePacket,
  decodeRawPacket,
  encodeCallConnectAck,
  encodeCallConnectRequest,
  encodeDataPacket,
  type ControlMessage,
  type RawControl,
  type SstpPacket,
} from './codec.js';
import { AttribStatus, AttributeId, HashProtocol, MessageType, SSTP_MAX_DATA_PAYLOAD } from './constants.js';
import { isPppControlFrame } from './call.js';

// ---- a builder that reads like MS-SSTP 2.2 ---------------------------------

/** 2.2.1: Version | Reserved|C | R|Length, then the body; Length patched to the whole packet. */
function packet(control: boolean, body: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter();
  w.u8(0x10).u8(control ? 0x01 : 0x00).u16(0);
  body(w);
  w.patchU16(2, w.length);
  return w.finish();
}

/** 2.2.4: Reserved | Attribute ID | R|Length | Value. */
function attribute(id: number, value: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter();
  w.u8(0).u8(id).u16(0);
  value(w);
  w.patchU16(2, w.length);
  return w.finish();
}

/** 2.2.2: Message Type | Num Attributes | Attributes. */
function control(type: number, attrs: Uint8Array[], count = attrs.length): Uint8Array {
  return packet(true, (w) => {
    w.u16(type).u16(count);
    for (const a of attrs) w.bytes(a);
  });
}

const encapsulatedProtocol = (id: number) => attribute(0x01, (w) => w.u16(id));
const statusInfo = (attribId: number, status: number, value: number[] = []) =>
  attribute(0x02, (w) => w.zeros(3).u8(attribId).u32(status).bytes(value));
const cryptoBindingRequest = (mask: number, nonce: Uint8Array) => attribute(0x04, (w) => w.zeros(3).u8(mask).bytes(nonce));
const cryptoBinding = (hash: number, nonce: Uint8Array, certHash: Uint8Array, mac: Uint8Array) =>
  attribute(0x03, (w) =>
    w
      .zeros(3)
      .u8(hash)
      .bytes(nonce)
      .bytes(certHash)
      .zeros(32 - certHash.length)
      .bytes(mac)
      .zeros(32 - mac.length),
  );

const NONCE = new Uint8Array(32).map((_, i) => 0xa0 + i);
const CERT20 = new Uint8Array(20).map((_, i) => i + 1);
const CERT32 = new Uint8Array(32).map((_, i) => 0x40 + i);
const MAC20 = new Uint8Array(20).map((_, i) => 0xf0 - i);
const MAC32 = new Uint8Array(32).map((_, i) => 0x80 + i);

interface Sample {
  name: string;
  msg: ControlMessage;
  bytes: Uint8Array;
}

const SAMPLES: Sample[] = [
  {
    name: 'Call Connect Request',
    msg: { type: MessageType.CallConnectRequest, protocolId: 1 },
    bytes: control(0x0001, [encapsulatedProtocol(1)]),
  },
  {
    name: 'Call Connect Ack',
    msg: { type: MessageType.CallConnectAck, hashProtocols: 3, nonce: NONCE },
    bytes: control(0x0002, [cryptoBindingRequest(3, NONCE)]),
  },
  {
    name: 'Call Connect Nak (two Status Info)',
    msg: {
      type: MessageType.CallConnectNak,
      statusInfos: [
        { attribId: 1, status: 4, value: new Uint8Array([0, 2]) },
        { attribId: 2, status: 0x0b, value: new Uint8Array(0) },
      ],
    },
    bytes: control(0x0003, [statusInfo(1, 4, [0, 2]), statusInfo(2, 0x0b)]),
  },
  {
    name: 'Call Connected (SHA-256)',
    msg: { type: MessageType.CallConnected, binding: { hashProtocol: 2, nonce: NONCE, certHash: CERT32, compoundMac: MAC32 } },
    bytes: control(0x0004, [cryptoBinding(2, NONCE, CERT32, MAC32)]),
  },
  {
    name: 'Call Connected (SHA-1, padded)',
    msg: {
      type: MessageType.CallConnected,
      binding: {
        hashProtocol: 1,
        nonce: NONCE,
        certHash: new Uint8Array([...CERT20, ...new Uint8Array(12)]),
        compoundMac: new Uint8Array([...MAC20, ...new Uint8Array(12)]),
      },
    },
    bytes: control(0x0004, [cryptoBinding(1, NONCE, CERT20, MAC20)]),
  },
  {
    name: 'Call Abort with Status Info',
    msg: { type: MessageType.CallAbort, statusInfo: { attribId: 3, status: 4, value: new Uint8Array(0) } },
    bytes: control(0x0005, [statusInfo(3, 4)]),
  },
  { name: 'Call Abort bare', msg: { type: MessageType.CallAbort }, bytes: control(0x0005, []) },
  {
    name: 'Call Disconnect with Status Info',
    msg: { type: MessageType.CallDisconnect, statusInfo: { attribId: 0, status: 0, value: new Uint8Array(0) } },
    bytes: control(0x0006, [statusInfo(0, 0)]),
  },
  { name: 'Call Disconnect bare', msg: { type: MessageType.CallDisconnect }, bytes: control(0x0006, []) },
  { name: 'Call Disconnect Ack', msg: { type: MessageType.CallDisconnectAck }, bytes: control(0x0007, []) },
  { name: 'Echo Request', msg: { type: MessageType.EchoRequest }, bytes: control(0x0008, []) },
  { name: 'Echo Response', msg: { type: MessageType.EchoResponse }, bytes: control(0x0009, []) },
];

function plain(m: ControlMessage): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? hex(v) : v)));
}

describe('SSTP codec: messages (MS-SSTP 2.2)', () => {
  it('has the fixed lengths the spec gives', () => {
    const len = (name: string) => SAMPLES.find((s) => s.name === name)!.bytes.length;
    expect(len('Call Connect Request')).toBe(14); // 2.2.9
    expect(len('Call Connect Ack')).toBe(48); // 2.2.10: "MUST be set to a value of 48 (0x030)"
    expect(len('Call Connected (SHA-256)')).toBe(112); // 2.2.11
    expect(len('Call Connected (SHA-1, padded)')).toBe(112);
    expect(len('Call Abort with Status Info')).toBe(20); // 8 + 12
    expect(len('Echo Request')).toBe(8);
  });

  it('reproduces the example bytes of MS-SSTP 4.7', () => {
    // 4.7 "Crypto Binding": the Call Connect Request and the SHA-256-only Call Connect Ack.
    const request = fromHex('10 01 00 0E 00 01 00 01 00 01 00 06 00 01');
    const ack = fromHex(
      '10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 02' +
        '41 2B 48 9A EB D7 EC C7 D0 89 66 F2 6B E7 CD 72 B2 31 A0 E9 21 0D 7C 91 B3 08 86 2B 03 44 C4 35',
    );
    const out = new Uint8Array(48);
    expect(hex(out.subarray(0, encodeCallConnectRequest(out, 0, 1)))).toBe(hex(request));
    expect(hex(out.subarray(0, encodeCallConnectAck(out, 0, HashProtocol.Sha256, ack.subarray(16))))).toBe(hex(ack));
    const d = decodeControlMessage(ack);
    expect(d.ok && d.value.type === MessageType.CallConnectAck && d.value.hashProtocols).toBe(2);
  });

  for (const s of SAMPLES) {
    it(`${s.name}: encodes to the spec bytes and round-trips`, () => {
      const enc = controlMessageBytes(s.msg);
      expect(hex(enc)).toBe(hex(s.bytes));
      const d = decodePacket(s.bytes);
      expect(d.ok).toBe(true);
      if (!d.ok || d.value.kind !== 'control') return;
      expect(d.consumed).toBe(s.bytes.length);
      expect(plain(d.value.message)).toEqual(plain(s.msg));
      expect(hex(controlMessageBytes(d.value.message))).toBe(hex(s.bytes));
    });

    it(`${s.name}: every truncated prefix is rejected as truncated`, () => {
      for (let k = 0; k < s.bytes.length; k++) {
        const d = decodePacket(s.bytes.subarray(0, k));
        expect(d.ok, `prefix ${k}`).toBe(false);
        if (!d.ok) expect(d.kind, `prefix ${k}`).toBe('truncated');
        // The deframer just waits for more.
        const f = new SstpDeframer();
        const got: Uint8Array[] = [];
        expect(f.feed(s.bytes.subarray(0, k), (p) => got.push(p.slice()))).toBeNull();
        expect(got).toHaveLength(0);
        expect(f.buffered).toBe(k);
      }
    });
  }

  it('data packets carry the PPP frame as is, up to 4091 octets', () => {
    const frame = fromHex('ff03c02101010004');
    const bytes = packet(false, (w) => w.bytes(frame));
    expect(hex(dataPacketBytes(frame))).toBe(hex(bytes));
    const d = decodePacket(bytes);
    expect(d.ok && d.value.kind === 'data' && hex(d.value.payload)).toBe(hex(frame));

    const big = new Uint8Array(SSTP_MAX_DATA_PAYLOAD).fill(7);
    const enc = dataPacketBytes(big);
    expect(enc.length).toBe(4095);
    expect(hex(enc.subarray(0, 4))).toBe('10000fff');
    const db = decodePacket(enc);
    expect(db.ok && db.value.kind === 'data' && db.value.payload.length).toBe(4091);
    expect(() => dataPacketBytes(new Uint8Array(SSTP_MAX_DATA_PAYLOAD + 1))).toThrow(RangeError);
    expect(() => encodeDataPacket(new Uint8Array(10), 0, new Uint8Array(7))).toThrow(RangeError);
  });

  it('ignores the reserved bits on receipt (2.2.1 Reserved, R)', () => {
    const bytes = control(0x0008, []);
    bytes[1] = 0xff; // reserved bits set, C = 1
    bytes[2] = 0xf0; // R nibble set: length stays 8, not 0xf008
    const d = decodePacket(bytes);
    expect(d.ok && d.value.kind === 'control' && d.value.message.type).toBe(MessageType.EchoRequest);
    const h = decodeHeader(bytes);
    expect(h.ok && h.value.length).toBe(8);
  });
});

describe('SSTP codec: malformed input gives typed failures, never exceptions', () => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['wrong version 0x11', (() => { const b = control(0x0008, []); b[0] = 0x11; return b; })(), 'version'],
    ['wrong version 0x00', (() => { const b = control(0x0008, []); b[0] = 0x00; return b; })(), 'version'],
    ['length < 4', fromHex('10010003'), 'length'],
    ['length 0', fromHex('10000000'), 'length'],
    ['control packet shorter than its header', fromHex('1001000600080000'), 'length'],
    ['attribute length runs past the packet', control(0x0001, [fromHex('00010009 0001')]), 'length'],
    ['attribute length < 4', control(0x0001, [fromHex('00010002'), fromHex('0001')]), 'length'],
    ['octets after the last attribute', packet(true, (w) => w.u16(1).u16(1).bytes(encapsulatedProtocol(1)).u8(0)), 'length'],
    ['Num Attributes larger than what follows', control(0x0001, [encapsulatedProtocol(1)], 2), 'length'],
    ['Num Attributes smaller than what follows', control(0x0005, [statusInfo(0, 0)], 0), 'length'],
    ['unknown message type 0x000a', control(0x000a, []), 'type'],
    ['unknown message type 0x0000', control(0x0000, []), 'type'],
    ['unknown attribute 0x05', control(0x0005, [attribute(0x05, (w) => w.u32(0))]), 'type'],
    ['duplicate Encapsulated Protocol ID', control(0x0001, [encapsulatedProtocol(1), encapsulatedProtocol(1)]), 'value'],
    ['duplicate Status Info in Call Abort', control(0x0005, [statusInfo(0, 0), statusInfo(0, 0)]), 'value'],
    ['duplicate Crypto Binding', control(0x0004, [cryptoBinding(2, NONCE, CERT32, MAC32), cryptoBinding(2, NONCE, CERT32, MAC32)]), 'value'],
    ['attribute not allowed in the message', control(0x0008, [statusInfo(0, 0)]), 'value'],
    ['Status Info in Call Connect Request', control(0x0001, [encapsulatedProtocol(1), statusInfo(0, 0)]), 'value'],
    ['Call Connect Request without its attribute', control(0x0001, []), 'missing'],
    ['Call Connect Nak without Status Info', control(0x0003, []), 'missing'],
    ['Call Connected without Crypto Binding', control(0x0004, []), 'missing'],
    ['Encapsulated Protocol ID of length 8', control(0x0001, [attribute(0x01, (w) => w.u16(1).u16(0))]), 'length'],
    ['Crypto Binding Request of length 36', control(0x0002, [attribute(0x04, (w) => w.zeros(32))]), 'length'],
    ['Crypto Binding of length 100', control(0x0004, [attribute(0x03, (w) => w.zeros(96))]), 'length'],
    ['Status Info shorter than 12', control(0x0005, [attribute(0x02, (w) => w.zeros(4))]), 'length'],
    ['Status Info with 65 octets of value', control(0x0005, [statusInfo(0, 0, new Array<number>(65).fill(1))]), 'length'],
  ];

  for (const [name, bytes, kind] of cases) {
    it(name, () => {
      const d = decodePacket(bytes);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.kind).toBe(kind);
    });
  }

  it('the deframer stops at an undelineable header and reports its stream offset', () => {
    const good = control(0x0008, []);
    const stream = new Uint8Array([...good, ...good, 0x20, 0x01, 0x00, 0x08, ...good]);
    const f = new SstpDeframer();
    const got: number[] = [];
    const r = f.feed(stream, (p) => got.push(p.length));
    expect(got).toEqual([8, 8]);
    expect(r?.kind).toBe('version');
    expect(r?.offset).toBe(16);
    // It stays failed.
    expect(f.feed(good, () => got.push(-1))?.kind).toBe('version');
    expect(got).toEqual([8, 8]);

    const f2 = new SstpDeframer();
    f2.feed(new Uint8Array([...good, 0x10]), () => {});
    const r2 = f2.feed(fromHex('000002'), () => {});
    expect(r2?.kind).toBe('length');
    expect(r2?.offset).toBe(10);
  });

  it('random input never throws (decoders and deframer)', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 3000; i++) {
      const n = rnd() % 140;
      const b = new Uint8Array(n).map(rnd);
      if (n > 0) b[0] = i % 3 === 0 ? b[0]! : 0x10; // mostly past the version check
      if (n > 3) b[2] = b[2]! & 0x00; // plausible lengths
      expect(() => {
        decodePacket(b);
        decodeRawPacket(b);
        decodeControlMessage(b);
        new SstpDeframer().feed(b, (p) => decodePacket(p));
      }).not.toThrow();
    }
  });
});

describe('SSTP deframer', () => {
  const frameA = fromHex('ff03c021010100040000');
  const frameB = new Uint8Array(1500).map((_, i) => i & 0xff);
  const stream = [
    ...SAMPLES.map((s) => s.bytes),
    dataPacketBytes(frameA),
    dataPacketBytes(frameB),
    dataPacketBytes(new Uint8Array(0)),
  ];
  const all = new Uint8Array(stream.reduce((n, b) => n + b.length, 0));
  stream.reduce((off, b) => (all.set(b, off), off + b.length), 0);
  const expected = stream.map(hex);

  function run(chunks: Uint8Array[]): string[] {
    const f = new SstpDeframer();
    const out: string[] = [];
    for (const c of chunks) expect(f.feed(c, (p) => out.push(hex(p)))).toBeNull();
    expect(f.buffered).toBe(0);
    return out;
  }

  it('yields the same packets when the stream is split at every byte offset', () => {
    expect(run([all])).toEqual(expected);
    for (let i = 0; i <= all.length; i++) {
      expect(run([all.subarray(0, i), all.subarray(i)])).toEqual(expected);
    }
  });

  it('yields the same packets when fed one octet at a time, and in three uneven pieces', () => {
    expect(run(Array.from(all, (b) => new Uint8Array([b])))).toEqual(expected);
    for (let i = 0; i < all.length; i += 7) {
      const j = Math.min(all.length, i + 1 + ((i * 13) % 200));
      expect(run([all.subarray(0, i), all.subarray(i, j), all.subarray(j)])).toEqual(expected);
    }
  });

  it('every packet it yields decodes to the original message', () => {
    const f = new SstpDeframer();
    const got: SstpPacket[] = [];
    f.feed(all, (p) => {
      const d = decodePacket(p);
      if (d.ok) got.push(d.value);
    });
    expect(got).toHaveLength(stream.length);
    SAMPLES.forEach((s, i) => {
      const g = got[i]!;
      expect(g.kind === 'control' && plain(g.message)).toEqual(plain(s.msg));
    });
  });
});

describe('Call Connect Request acceptability (3.3.5.2.2)', () => {
  function raw(bytes: Uint8Array): RawControl {
    const r = decodeRawPacket(bytes);
    if (!r.ok || r.value.kind !== 'control') throw new Error('test bytes must frame');
    return r.value;
  }

  it('accepts the PPP request', () => {
    expect(callConnectRequestProblems(raw(control(1, [encapsulatedProtocol(1)])))).toEqual([]);
  });

  it('names every unacceptable attribute with the status the spec gives', () => {
    const problems = callConnectRequestProblems(
      raw(
        control(1, [
          encapsulatedProtocol(2),
          statusInfo(0, 5),
          attribute(0x09, (w) => w.u16(0xbeef)),
          encapsulatedProtocol(1),
          cryptoBindingRequest(3, NONCE),
        ]),
      ),
    );
    expect(problems.map((p) => [p.attribId, p.status, hex(p.value)])).toEqual([
      [AttributeId.EncapsulatedProtocolId, AttribStatus.ValueNotSupported, '0002'],
      [AttributeId.StatusInfo, AttribStatus.StatusInfoNotSupportedInMsg, '0000000000000005'],
      [0x09, AttribStatus.UnrecognizedAttribute, 'beef'],
      [AttributeId.EncapsulatedProtocolId, AttribStatus.DuplicateAttribute, '0001'],
      [AttributeId.CryptoBindingRequest, AttribStatus.AttribNotSupportedInMsg, hex(new Uint8Array([0, 0, 0, 3, ...NONCE]))],
    ]);
  });

  it('reports a missing or malformed Encapsulated Protocol ID', () => {
    expect(callConnectRequestProblems(raw(control(1, [])))).toEqual([
      { attribId: 1, status: AttribStatus.RequiredAttributeMissing, value: new Uint8Array(0) },
    ]);
    const bad = callConnectRequestProblems(raw(control(1, [attribute(1, (w) => w.u32(1))])));
    expect(bad.map((p) => [p.attribId, p.status])).toEqual([[1, AttribStatus.InvalidAttribValueLength]]);
    // A Status Info saying "no error" is acceptable.
    expect(callConnectRequestProblems(raw(control(1, [encapsulatedProtocol(1), statusInfo(0, 0)])))).toEqual([]);
  });
});

describe('PPP frame type (3.1.7.1 Check PPP frame type)', () => {
  it('classifies control and data frames, with and without address/control and PFC', () => {
    expect(isPppControlFrame(fromHex('ff03c0210101'))).toBe(true); // LCP
    expect(isPppControlFrame(fromHex('c0210101'))).toBe(true); // LCP without ACF
    expect(isPppControlFrame(fromHex('ff03c2230101'))).toBe(true); // CHAP
    expect(isPppControlFrame(fromHex('ff0380210101'))).toBe(true); // IPCP
    expect(isPppControlFrame(fromHex('80fd0101'))).toBe(true); // CCP
    expect(isPppControlFrame(fromHex('ff03002145'))).toBe(false); // IPv4
    expect(isPppControlFrame(fromHex('002145'))).toBe(false);
    expect(isPppControlFrame(fromHex('2145'))).toBe(false); // PFC IPv4
    expect(isPppControlFrame(fromHex('00fd90'))).toBe(false); // MPPE compressed datagram
    expect(isPppControlFrame(new Uint8Array(0))).toBe(false);
    expect(isPppControlFrame(fromHex('ff03'))).toBe(false);
    expect(isPppControlFrame(fromHex('c0'))).toBe(false);
  });
});
