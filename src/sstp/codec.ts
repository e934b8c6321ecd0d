/**
 * SSTP packet codec: MS-SSTP v20240423 section 2.2 (message syntax).
 *
 * Every SSTP packet (2.2.1) starts with a 4-octet header; the Length is 12
 * bits and counts the whole packet, header included:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Version 0x10 |  Reserved   |C|   R   |        Length         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Data (C = 0: a PPP frame) or control message (C = 1) ...     |
 *
 * A control packet (2.2.2) continues with the message type and a count of
 * attributes (2.2.4), each with its own 12-bit length covering its header:
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |         Message Type          |        Num Attributes         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |   Reserved    | Attribute ID  |   R   |        Length         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Value (Length - 4 octets) ...                                |
 *
 * Attributes (sizes fixed by the spec, header included):
 *   Encapsulated Protocol ID (2.2.5)  6: Protocol ID (2)
 *   Status Info (2.2.8)          12 + n: Reserved1 (3) | AttribID (1) | Status (4) | AttribValue (n <= 64)
 *   Crypto Binding (2.2.7)          104: Reserved1 (3) | Hash Protocol (1) | Nonce (32) |
 *                                        Cert Hash (32, SHA-1 zero padded) | Compound MAC (32, idem)
 *   Crypto Binding Request (2.2.6)   40: Reserved1 (3) | Hash Protocol Bitmask (1) | Nonce (32)
 *
 * Messages and the attributes each MUST carry (2.2.9 - 2.2.17):
 *   Call Connect Request  Encapsulated Protocol ID            (14 octets)
 *   Call Connect Ack      Crypto Binding Request              (48)
 *   Call Connect Nak      one or more Status Info, nothing else
 *   Call Connected        Crypto Binding                      (112)
 *   Call Abort            at most one Status Info ("SHOULD have one", "MUST NOT have any other")
 *   Call Disconnect       at most one Status Info (idem)
 *   Call Disconnect Ack, Echo Request, Echo Response: no attribute (8)
 *
 * Reserved fields and the R nibbles are written as zero and ignored on
 * receipt, as the spec says for each of them. Decoders are total: a value
 * with the bytes consumed, or a typed failure; they never throw.
 */
import { fail, ok, type DecodeFailure, type DecodeResult } from '../util/decode.js';
import {
  AttribStatus,
  AttributeId,
  BINDING_FIELD_LEN,
  CRYPTO_BINDING_ATTR_LEN,
  CRYPTO_BINDING_REQUEST_ATTR_LEN,
  ENCAPSULATED_PROTOCOL_ATTR_LEN,
  MESSAGE_NAMES,
  MessageType,
  SSTP_ATTRIBUTE_HEADER_LEN,
  SSTP_CONTROL_HEADER_LEN,
  SSTP_C_BIT,
  SSTP_ENCAPSULATED_PROTOCOL_PPP,
  SSTP_HEADER_LEN,
  SSTP_MAX_DATA_PAYLOAD,
  SSTP_MAX_PACKET_LEN,
  SSTP_NONCE_LEN,
  SSTP_VERSION,
  STATUS_INFO_MAX_VALUE_LEN,
  STATUS_INFO_MIN_LEN,
  isAttributeId,
  isMessageType,
} from './constants.js';

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/** 2.2.8: the status of one attribute (AttribID), with up to 64 octets of its value. */
export interface StatusInfo {
  attribId: number;
  status: number;
  value: Uint8Array;
}

/**
 * 2.2.7: Crypto Binding. `certHash` and `compoundMac` are the 32-octet wire
 * fields; with SHA-1 the digest is the first 20 octets and 12 zero octets follow.
 */
export interface CryptoBinding {
  hashProtocol: number;
  nonce: Uint8Array;
  certHash: Uint8Array;
  compoundMac: Uint8Array;
}

export type ControlMessage =
  | { type: typeof MessageType.CallConnectRequest; protocolId: number }
  | { type: typeof MessageType.CallConnectAck; hashProtocols: number; nonce: Uint8Array }
  | { type: typeof MessageType.CallConnectNak; statusInfos: StatusInfo[] }
  | { type: typeof MessageType.CallConnected; binding: CryptoBinding }
  | { type: typeof MessageType.CallAbort; statusInfo?: StatusInfo }
  | { type: typeof MessageType.CallDisconnect; statusInfo?: StatusInfo }
  | { type: typeof MessageType.CallDisconnectAck }
  | { type: typeof MessageType.EchoRequest }
  | { type: typeof MessageType.EchoResponse };

export type SstpPacket = { kind: 'data'; payload: Uint8Array } | { kind: 'control'; message: ControlMessage };

/** The 2.2.1 header. */
export interface SstpHeader {
  control: boolean;
  /** Whole packet length, header included (4..4095). */
  length: number;
}

/** An attribute as it sits on the wire, before any per-message rule is applied. */
export interface RawAttribute {
  id: number;
  /** Attribute length field (header included). */
  length: number;
  /** The Value field (length - 4 octets), a view into the packet. */
  value: Uint8Array;
  /** Offset of the attribute in the packet. */
  offset: number;
}

/** A control packet whose framing is sound (lengths agree) but whose content is not yet checked. */
export interface RawControl {
  messageType: number;
  attributes: RawAttribute[];
}

export type RawPacket = { kind: 'data'; payload: Uint8Array } | ({ kind: 'control' } & RawControl);

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/** 2.2.1: read and check the packet header at `off`. consumed = 4. */
export function decodeHeader(buf: Uint8Array, off = 0): DecodeResult<SstpHeader> {
  if (buf.length - off < SSTP_HEADER_LEN) return fail('truncated', 'SSTP header needs 4 octets', off);
  // 2.2.1: "the 8-bit value of the Version field MUST be 0x10".
  if (buf[off] !== SSTP_VERSION) return fail('version', `unsupported SSTP version 0x${buf[off]!.toString(16)}`, off);
  // 2.2.1: Reserved (7 bits) and R (4 bits) are ignored on receipt.
  const control = (buf[off + 1]! & SSTP_C_BIT) !== 0;
  const length = ((buf[off + 2]! & 0x0f) << 8) | buf[off + 3]!;
  // 2.2.1: Length includes the 4-octet header, so anything shorter cannot be delineated.
  if (length < SSTP_HEADER_LEN) return fail('length', `SSTP length ${length} is shorter than its header`, off + 2);
  return ok({ control, length }, SSTP_HEADER_LEN);
}

/** Delineate and split one packet: data payload, or control header and attributes. consumed = packet length. */
export function decodeRawPacket(buf: Uint8Array): DecodeResult<RawPacket> {
  const h = decodeHeader(buf);
  if (!h.ok) return h;
  const len = h.value.length;
  if (buf.length < len) return fail('truncated', `SSTP packet needs ${len} octets, have ${buf.length}`, buf.length);
  if (!h.value.control) return ok({ kind: 'data', payload: buf.subarray(SSTP_HEADER_LEN, len) }, len);

  if (len < SSTP_CONTROL_HEADER_LEN) return fail('length', `control packet length ${len} < 8`, 2);
  const messageType = (buf[4]! << 8) | buf[5]!;
  const count = (buf[6]! << 8) | buf[7]!;
  const attributes: RawAttribute[] = [];
  let pos = SSTP_CONTROL_HEADER_LEN;
  for (let i = 0; i < count; i++) {
    if (len - pos < SSTP_ATTRIBUTE_HEADER_LEN) {
      return fail('length', `attribute ${i + 1} of ${count} does not fit in the packet`, pos);
    }
    const id = buf[pos + 1]!;
    const alen = ((buf[pos + 2]! & 0x0f) << 8) | buf[pos + 3]!;
    // 2.2.4: Length covers the 4-octet attribute header.
    if (alen < SSTP_ATTRIBUTE_HEADER_LEN) return fail('length', `attribute length ${alen} < 4`, pos + 2);
    if (pos + alen > len) return fail('length', `attribute length ${alen} runs past the packet end`, pos + 2);
    attributes.push({ id, length: alen, value: buf.subarray(pos + SSTP_ATTRIBUTE_HEADER_LEN, pos + alen), offset: pos });
    pos += alen;
  }
  if (pos !== len) return fail('length', `${len - pos} octets after the last of ${count} attributes`, pos);
  return ok({ kind: 'control', messageType, attributes }, len);
}

interface AttributeRule {
  allowed: number;
  min: number;
  max: number;
}

/** 2.2.9 - 2.2.17: which attribute each message carries, and how many. */
const MESSAGE_RULES: Readonly<Record<MessageType, AttributeRule | null>> = {
  [MessageType.CallConnectRequest]: { allowed: AttributeId.EncapsulatedProtocolId, min: 1, max: 1 },
  [MessageType.CallConnectAck]: { allowed: AttributeId.CryptoBindingRequest, min: 1, max: 1 },
  [MessageType.CallConnectNak]: { allowed: AttributeId.StatusInfo, min: 1, max: Infinity },
  [MessageType.CallConnected]: { allowed: AttributeId.CryptoBinding, min: 1, max: 1 },
  [MessageType.CallAbort]: { allowed: AttributeId.StatusInfo, min: 0, max: 1 },
  [MessageType.CallDisconnect]: { allowed: AttributeId.StatusInfo, min: 0, max: 1 },
  [MessageType.CallDisconnectAck]: null,
  [MessageType.EchoRequest]: null,
  [MessageType.EchoResponse]: null,
};

/** Check an attribute's length against what the spec fixes for its ID. */
export function checkAttributeLength(a: RawAttribute): DecodeFailure | null {
  switch (a.id) {
    case AttributeId.EncapsulatedProtocolId:
      // 2.2.5: "This field MUST be set to 0x006."
      return a.length === ENCAPSULATED_PROTOCOL_ATTR_LEN
        ? null
        : fail('length', `Encapsulated Protocol ID length ${a.length} != 6`, a.offset + 2);
    case AttributeId.CryptoBindingRequest:
      // 2.2.6: "Its value MUST be 40 (that is, 0x028)."
      return a.length === CRYPTO_BINDING_REQUEST_ATTR_LEN
        ? null
        : fail('length', `Crypto Binding Request length ${a.length} != 40`, a.offset + 2);
    case AttributeId.CryptoBinding:
      // 2.2.7: "Its value MUST be 104 (that is, 0x068)."
      return a.length === CRYPTO_BINDING_ATTR_LEN
        ? null
        : fail('length', `Crypto Binding length ${a.length} != 104`, a.offset + 2);
    case AttributeId.StatusInfo:
      // 2.2.8: "MUST be the length of the AttribValue field plus 12"; AttribValue is at most 64 octets.
      return a.length >= STATUS_INFO_MIN_LEN && a.length <= STATUS_INFO_MIN_LEN + STATUS_INFO_MAX_VALUE_LEN
        ? null
        : fail('length', `Status Info length ${a.length} outside 12..76`, a.offset + 2);
    default:
      return fail('type', `unknown attribute ID ${a.id}`, a.offset + 1);
  }
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function statusInfoOf(v: Uint8Array): StatusInfo {
  return { attribId: v[3]!, status: u32(v, 4), value: v.subarray(8) };
}

/** Apply the per-message rules to a sound control packet. */
export function decodeControlFromRaw(raw: RawControl, consumed: number): DecodeResult<ControlMessage> {
  const { messageType: type, attributes } = raw;
  if (!isMessageType(type)) return fail('type', `unknown message type 0x${type.toString(16).padStart(4, '0')}`, 4);
  const rule = MESSAGE_RULES[type];
  const name = MESSAGE_NAMES[type];
  const seen = new Set<number>();
  for (const a of attributes) {
    if (!isAttributeId(a.id)) return fail('type', `unknown attribute ID ${a.id} in ${name}`, a.offset + 1);
    const bad = checkAttributeLength(a);
    if (bad) return bad;
    if (!rule || a.id !== rule.allowed) return fail('value', `attribute ${a.id} is not allowed in ${name}`, a.offset + 1);
    if (rule.max === 1 && seen.has(a.id)) return fail('value', `duplicate attribute ${a.id} in ${name}`, a.offset + 1);
    seen.add(a.id);
  }
  if (rule && attributes.length < rule.min) return fail('missing', `${name} lacks its ${rule.allowed === AttributeId.StatusInfo ? 'Status Info' : `attribute ${rule.allowed}`}`, 6);
  if (rule && attributes.length > rule.max) return fail('value', `${name} carries ${attributes.length} attributes`, 6);

  const first = attributes[0]?.value;
  let msg: ControlMessage;
  switch (type) {
    case MessageType.CallConnectRequest:
      msg = { type, protocolId: (first![0]! << 8) | first![1]! };
      break;
    case MessageType.CallConnectAck:
      msg = { type, hashProtocols: first![3]!, nonce: first!.subarray(4, 4 + SSTP_NONCE_LEN) };
      break;
    case MessageType.CallConnectNak:
      msg = { type, statusInfos: attributes.map((a) => statusInfoOf(a.value)) };
      break;
    case MessageType.CallConnected:
      msg = {
        type,
        binding: {
          hashProtocol: first![3]!,
          nonce: first!.subarray(4, 36),
          certHash: first!.subarray(36, 36 + BINDING_FIELD_LEN),
          compoundMac: first!.subarray(68, 68 + BINDING_FIELD_LEN),
        },
      };
      break;
    case MessageType.CallAbort:
    case MessageType.CallDisconnect:
      msg = first ? { type, statusInfo: statusInfoOf(first) } : { type };
      break;
    case MessageType.CallDisconnectAck:
    case MessageType.EchoRequest:
    case MessageType.EchoResponse:
      msg = { type };
      break;
  }
  return ok(msg, consumed);
}

/** Most Status Info attributes one Call Connect Nak carries (our bound; keeps it far below 4095 octets). */
export const MAX_NAK_STATUS_INFOS = 16;

/**
 * 3.3.5.2.2: what the server finds unacceptable in a Call Connect Request, as
 * the Status Info attributes its Call Connect Nak MUST carry ("for all
 * attributes that are not acceptable to the server"). Empty when acceptable.
 * Works on the raw attribute list so that unknown, duplicate and misplaced
 * attributes get their own status instead of a generic decode failure.
 */
export function callConnectRequestProblems(raw: RawControl): StatusInfo[] {
  const problems: StatusInfo[] = [];
  const seen = new Set<number>();
  const value = (a: RawAttribute): Uint8Array => a.value.slice(0, STATUS_INFO_MAX_VALUE_LEN);
  for (const a of raw.attributes) {
    if (!isAttributeId(a.id)) {
      problems.push({ attribId: a.id, status: AttribStatus.UnrecognizedAttribute, value: value(a) });
      continue;
    }
    if (seen.has(a.id)) {
      problems.push({ attribId: a.id, status: AttribStatus.DuplicateAttribute, value: value(a) });
      continue;
    }
    seen.add(a.id);
    switch (a.id) {
      case AttributeId.EncapsulatedProtocolId:
        if (a.length !== ENCAPSULATED_PROTOCOL_ATTR_LEN) {
          problems.push({ attribId: a.id, status: AttribStatus.InvalidAttribValueLength, value: value(a) });
        } else if (((a.value[0]! << 8) | a.value[1]!) !== SSTP_ENCAPSULATED_PROTOCOL_PPP) {
          // 3.3.5.2.2: "MUST contain an Encapsulated Protocol ID attribute with Protocol ID = PPP".
          problems.push({ attribId: a.id, status: AttribStatus.ValueNotSupported, value: value(a) });
        }
        break;
      case AttributeId.StatusInfo:
        // 3.3.5.2.2 (1): a Status Info whose status is not ATTRIB_STATUS_NO_ERROR.
        if (a.length < STATUS_INFO_MIN_LEN || u32(a.value, 4) !== AttribStatus.NoError) {
          problems.push({ attribId: a.id, status: AttribStatus.StatusInfoNotSupportedInMsg, value: value(a) });
        }
        break;
      case AttributeId.CryptoBinding:
      case AttributeId.CryptoBindingRequest:
        problems.push({ attribId: a.id, status: AttribStatus.AttribNotSupportedInMsg, value: value(a) });
        break;
    }
  }
  if (!seen.has(AttributeId.EncapsulatedProtocolId)) {
    problems.push({ attribId: AttributeId.EncapsulatedProtocolId, status: AttribStatus.RequiredAttributeMissing, value: new Uint8Array(0) });
  }
  return problems.slice(0, MAX_NAK_STATUS_INFOS);
}

/** Decode one control packet at the start of `buf`. */
export function decodeControlMessage(buf: Uint8Array): DecodeResult<ControlMessage> {
  const r = decodeRawPacket(buf);
  if (!r.ok) return r;
  if (r.value.kind !== 'control') return fail('value', 'not a control packet (C = 0)', 1);
  return decodeControlFromRaw(r.value, r.consumed);
}

/** Decode one packet at the start of `buf`: a data packet, or a control message with every rule applied. */
export function decodePacket(buf: Uint8Array): DecodeResult<SstpPacket> {
  const r = decodeRawPacket(buf);
  if (!r.ok) return r;
  if (r.value.kind === 'data') return ok({ kind: 'data', payload: r.value.payload }, r.consumed);
  const c = decodeControlFromRaw(r.value, r.consumed);
  if (!c.ok) return c;
  return ok({ kind: 'control', message: c.value }, c.consumed);
}

// ---------------------------------------------------------------------------
// Encoding: one pure encoder per message writing into the caller's buffer,
// returning the octets written, with its length function beside it.
// Encoders are not fed by the network: a buffer too small or a value out of
// range is a programming error and throws RangeError.
// ---------------------------------------------------------------------------

function room(buf: Uint8Array, off: number, len: number): void {
  if (off < 0 || buf.length - off < len) throw new RangeError(`SSTP encoder needs ${len} octets at ${off}, buffer has ${buf.length}`);
}

function putHeader(buf: Uint8Array, off: number, control: boolean, len: number): void {
  buf[off] = SSTP_VERSION;
  buf[off + 1] = control ? SSTP_C_BIT : 0;
  buf[off + 2] = (len >> 8) & 0x0f;
  buf[off + 3] = len & 0xff;
}

function putControlHeader(buf: Uint8Array, off: number, type: MessageType, len: number, count: number): void {
  putHeader(buf, off, true, len);
  buf[off + 4] = type >> 8;
  buf[off + 5] = type & 0xff;
  buf[off + 6] = count >> 8;
  buf[off + 7] = count & 0xff;
}

function putAttributeHeader(buf: Uint8Array, off: number, id: number, len: number): void {
  buf[off] = 0;
  buf[off + 1] = id;
  buf[off + 2] = (len >> 8) & 0x0f;
  buf[off + 3] = len & 0xff;
}

function putU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

function putField(buf: Uint8Array, off: number, field: Uint8Array, size: number, what: string): void {
  if (field.length > size) throw new RangeError(`${what} is ${field.length} octets, the field holds ${size}`);
  buf.set(field, off);
  buf.fill(0, off + field.length, off + size);
}

/** 2.2.3: data packet carrying one PPP frame. */
export function dataPacketLength(payloadLen: number): number {
  return SSTP_HEADER_LEN + payloadLen;
}

export function encodeDataPacket(buf: Uint8Array, off: number, payload: Uint8Array): number {
  if (payload.length > SSTP_MAX_DATA_PAYLOAD) {
    throw new RangeError(`PPP frame of ${payload.length} octets exceeds the SSTP maximum of ${SSTP_MAX_DATA_PAYLOAD}`);
  }
  const len = dataPacketLength(payload.length);
  room(buf, off, len);
  putHeader(buf, off, false, len);
  buf.set(payload, off + SSTP_HEADER_LEN);
  return len;
}

/** 2.2.9: 14 octets. */
export function callConnectRequestLength(): number {
  return SSTP_CONTROL_HEADER_LEN + ENCAPSULATED_PROTOCOL_ATTR_LEN;
}

export function encodeCallConnectRequest(buf: Uint8Array, off: number, protocolId: number): number {
  const len = callConnectRequestLength();
  room(buf, off, len);
  putControlHeader(buf, off, MessageType.CallConnectRequest, len, 1);
  putAttributeHeader(buf, off + 8, AttributeId.EncapsulatedProtocolId, ENCAPSULATED_PROTOCOL_ATTR_LEN);
  buf[off + 12] = (protocolId >> 8) & 0xff;
  buf[off + 13] = protocolId & 0xff;
  return len;
}

/** 2.2.10: 48 octets. */
export function callConnectAckLength(): number {
  return SSTP_CONTROL_HEADER_LEN + CRYPTO_BINDING_REQUEST_ATTR_LEN;
}

export function encodeCallConnectAck(buf: Uint8Array, off: number, hashProtocols: number, nonce: Uint8Array): number {
  if (nonce.length !== SSTP_NONCE_LEN) throw new RangeError(`nonce must be ${SSTP_NONCE_LEN} octets`);
  const len = callConnectAckLength();
  room(buf, off, len);
  putControlHeader(buf, off, MessageType.CallConnectAck, len, 1);
  putAttributeHeader(buf, off + 8, AttributeId.CryptoBindingRequest, CRYPTO_BINDING_REQUEST_ATTR_LEN);
  buf.fill(0, off + 12, off + 15);
  buf[off + 15] = hashProtocols & 0xff;
  buf.set(nonce, off + 16);
  return len;
}

function statusInfoLength(s: StatusInfo): number {
  return STATUS_INFO_MIN_LEN + s.value.length;
}

function putStatusInfo(buf: Uint8Array, off: number, s: StatusInfo): number {
  if (s.value.length > STATUS_INFO_MAX_VALUE_LEN) throw new RangeError(`AttribValue of ${s.value.length} octets exceeds 64`);
  const len = statusInfoLength(s);
  putAttributeHeader(buf, off, AttributeId.StatusInfo, len);
  buf.fill(0, off + 4, off + 7);
  buf[off + 7] = s.attribId & 0xff;
  putU32(buf, off + 8, s.status);
  buf.set(s.value, off + 12);
  return len;
}

/** 2.2.12: 8 + sum of Status Info lengths. */
export function callConnectNakLength(statusInfos: readonly StatusInfo[]): number {
  return statusInfos.reduce((n, s) => n + statusInfoLength(s), SSTP_CONTROL_HEADER_LEN);
}

export function encodeCallConnectNak(buf: Uint8Array, off: number, statusInfos: readonly StatusInfo[]): number {
  // 2.2.12: "This message MUST have one or more Status Info attributes."
  if (statusInfos.length === 0) throw new RangeError('Call Connect Nak needs at least one Status Info');
  const len = callConnectNakLength(statusInfos);
  if (len > SSTP_MAX_PACKET_LEN) throw new RangeError(`Call Connect Nak of ${len} octets exceeds 4095`);
  room(buf, off, len);
  putControlHeader(buf, off, MessageType.CallConnectNak, len, statusInfos.length);
  let pos = off + SSTP_CONTROL_HEADER_LEN;
  for (const s of statusInfos) pos += putStatusInfo(buf, pos, s);
  return len;
}

/** 2.2.11: 112 octets. */
export function callConnectedLength(): number {
  return SSTP_CONTROL_HEADER_LEN + CRYPTO_BINDING_ATTR_LEN;
}

/** Offset of the Compound MAC field within a Call Connected message (zeroed for the MAC computation). */
export const CALL_CONNECTED_MAC_OFFSET = SSTP_CONTROL_HEADER_LEN + 4 + 4 + SSTP_NONCE_LEN + BINDING_FIELD_LEN;

/**
 * Cert Hash and Compound MAC may be given as the digest (20 or 32 octets)
 * or as the whole 32-octet field; shorter values are zero-padded (2.2.7).
 */
export function encodeCallConnected(buf: Uint8Array, off: number, binding: CryptoBinding): number {
  if (binding.nonce.length !== SSTP_NONCE_LEN) throw new RangeError(`nonce must be ${SSTP_NONCE_LEN} octets`);
  const len = callConnectedLength();
  room(buf, off, len);
  putControlHeader(buf, off, MessageType.CallConnected, len, 1);
  putAttributeHeader(buf, off + 8, AttributeId.CryptoBinding, CRYPTO_BINDING_ATTR_LEN);
  buf.fill(0, off + 12, off + 15);
  buf[off + 15] = binding.hashProtocol & 0xff;
  buf.set(binding.nonce, off + 16);
  putField(buf, off + 48, binding.certHash, BINDING_FIELD_LEN, 'Cert Hash');
  putField(buf, off + CALL_CONNECTED_MAC_OFFSET, binding.compoundMac, BINDING_FIELD_LEN, 'Compound MAC');
  return len;
}

/** 2.2.13 / 2.2.14: Call Abort and Call Disconnect, 8 octets or 8 + Status Info. */
export function callAbortLength(statusInfo?: StatusInfo): number {
  return SSTP_CONTROL_HEADER_LEN + (statusInfo ? statusInfoLength(statusInfo) : 0);
}

function encodeWithOptionalStatus(buf: Uint8Array, off: number, type: MessageType, statusInfo?: StatusInfo): number {
  const len = callAbortLength(statusInfo);
  room(buf, off, len);
  putControlHeader(buf, off, type, len, statusInfo ? 1 : 0);
  if (statusInfo) putStatusInfo(buf, off + SSTP_CONTROL_HEADER_LEN, statusInfo);
  return len;
}

export function encodeCallAbort(buf: Uint8Array, off: number, statusInfo?: StatusInfo): number {
  return encodeWithOptionalStatus(buf, off, MessageType.CallAbort, statusInfo);
}

export const callDisconnectLength = callAbortLength;

export function encodeCallDisconnect(buf: Uint8Array, off: number, statusInfo?: StatusInfo): number {
  return encodeWithOptionalStatus(buf, off, MessageType.CallDisconnect, statusInfo);
}

/** 2.2.15 - 2.2.17: Call Disconnect Ack, Echo Request, Echo Response: 8 octets, no attribute. */
export function emptyControlLength(): number {
  return SSTP_CONTROL_HEADER_LEN;
}

export function encodeCallDisconnectAck(buf: Uint8Array, off: number): number {
  room(buf, off, SSTP_CONTROL_HEADER_LEN);
  putControlHeader(buf, off, MessageType.CallDisconnectAck, SSTP_CONTROL_HEADER_LEN, 0);
  return SSTP_CONTROL_HEADER_LEN;
}

export function encodeEchoRequest(buf: Uint8Array, off: number): number {
  room(buf, off, SSTP_CONTROL_HEADER_LEN);
  putControlHeader(buf, off, MessageType.EchoRequest, SSTP_CONTROL_HEADER_LEN, 0);
  return SSTP_CONTROL_HEADER_LEN;
}

export function encodeEchoResponse(buf: Uint8Array, off: number): number {
  room(buf, off, SSTP_CONTROL_HEADER_LEN);
  putControlHeader(buf, off, MessageType.EchoResponse, SSTP_CONTROL_HEADER_LEN, 0);
  return SSTP_CONTROL_HEADER_LEN;
}

/** Length of any control message. */
export function controlMessageLength(msg: ControlMessage): number {
  switch (msg.type) {
    case MessageType.CallConnectRequest:
      return callConnectRequestLength();
    case MessageType.CallConnectAck:
      return callConnectAckLength();
    case MessageType.CallConnectNak:
      return callConnectNakLength(msg.statusInfos);
    case MessageType.CallConnected:
      return callConnectedLength();
    case MessageType.CallAbort:
    case MessageType.CallDisconnect:
      return callAbortLength(msg.statusInfo);
    case MessageType.CallDisconnectAck:
    case MessageType.EchoRequest:
    case MessageType.EchoResponse:
      return emptyControlLength();
  }
}

/** Encode any control message into the caller's buffer. */
export function encodeControlMessage(buf: Uint8Array, off: number, msg: ControlMessage): number {
  switch (msg.type) {
    case MessageType.CallConnectRequest:
      return encodeCallConnectRequest(buf, off, msg.protocolId);
    case MessageType.CallConnectAck:
      return encodeCallConnectAck(buf, off, msg.hashProtocols, msg.nonce);
    case MessageType.CallConnectNak:
      return encodeCallConnectNak(buf, off, msg.statusInfos);
    case MessageType.CallConnected:
      return encodeCallConnected(buf, off, msg.binding);
    case MessageType.CallAbort:
      return encodeCallAbort(buf, off, msg.statusInfo);
    case MessageType.CallDisconnect:
      return encodeCallDisconnect(buf, off, msg.statusInfo);
    case MessageType.CallDisconnectAck:
      return encodeCallDisconnectAck(buf, off);
    case MessageType.EchoRequest:
      return encodeEchoRequest(buf, off);
    case MessageType.EchoResponse:
      return encodeEchoResponse(buf, off);
  }
}

/** Allocate and encode a control message. */
export function controlMessageBytes(msg: ControlMessage): Uint8Array {
  const out = new Uint8Array(controlMessageLength(msg));
  encodeControlMessage(out, 0, msg);
  return out;
}

/** Allocate and encode a data packet. */
export function dataPacketBytes(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(dataPacketLength(payload.length));
  encodeDataPacket(out, 0, payload);
  return out;
}

// ---------------------------------------------------------------------------
// Stream deframer
// ---------------------------------------------------------------------------

/**
 * Cuts the TLS byte stream into whole SSTP packets, whatever the chunking.
 * Memory is bounded by one packet (4095 octets): whole packets inside a
 * chunk are handed out as views of that chunk, only a packet split across
 * chunks is assembled in the internal buffer. A header that cannot be
 * delineated (wrong version, length < 4) is fatal: 3.1.5.1 says the
 * connection "MUST be forcefully aborted without sending a message", so the
 * deframer stops and keeps returning that failure.
 */
export class SstpDeframer {
  private readonly partial = new Uint8Array(SSTP_MAX_PACKET_LEN);
  private have = 0;
  private failure: DecodeFailure | null = null;
  /** Stream offset of the first octet not yet handed out (for failure offsets). */
  private streamPos = 0;

  /** Octets held of a packet not yet complete. */
  get buffered(): number {
    return this.have;
  }

  get failed(): DecodeFailure | null {
    return this.failure;
  }

  /**
   * Feed one chunk; `onPacket` is called for every whole packet, in order,
   * with a view that is valid only until it returns. Returns the delineation
   * failure, if any (packets before it were delivered).
   */
  feed(chunk: Uint8Array, onPacket: (packet: Uint8Array) => void): DecodeFailure | null {
    if (this.failure) return this.failure;
    let pos = 0;
    const n = chunk.length;

    if (this.have > 0) {
      if (this.have < SSTP_HEADER_LEN) {
        const take = Math.min(SSTP_HEADER_LEN - this.have, n);
        this.partial.set(chunk.subarray(0, take), this.have);
        this.have += take;
        pos = take;
        if (this.have < SSTP_HEADER_LEN) return null;
      }
      const h = decodeHeader(this.partial.subarray(0, this.have));
      if (!h.ok) return this.fatal(h, this.streamPos);
      const need = h.value.length - this.have;
      const take = Math.min(need, n - pos);
      this.partial.set(chunk.subarray(pos, pos + take), this.have);
      this.have += take;
      pos += take;
      if (this.have < h.value.length) return null;
      const len = this.have;
      this.have = 0;
      this.streamPos += len;
      onPacket(this.partial.subarray(0, len));
    }

    while (pos < n) {
      if (n - pos < SSTP_HEADER_LEN) break;
      const h = decodeHeader(chunk, pos);
      if (!h.ok) return this.fatal(h, this.streamPos - pos);
      const len = h.value.length;
      if (n - pos < len) break;
      this.streamPos += len;
      onPacket(chunk.subarray(pos, pos + len));
      pos += len;
    }
    if (pos < n) {
      this.partial.set(chunk.subarray(pos), 0);
      this.have = n - pos;
    }
    return null;
  }

  private fatal(f: DecodeFailure, base: number): DecodeFailure {
    this.failure = { ...f, offset: base + f.offset };
    this.have = 0;
    return this.failure;
  }
}
