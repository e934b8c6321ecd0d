/**
 * PPTP control messages: RFC 2637 section 2 (formats), 2.16 (general error
 * codes), 1.4 (message format), with the Windows profile [MS-PTPT] where it
 * matters on the wire.
 *
 * The control connection is a TCP stream (port 1723) of messages, each with
 * this common header (RFC 2637 section 1.4, all fields big-endian):
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |            Length             |       PPTP Message Type       |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                         Magic Cookie                          |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |     Control Message Type      |           Reserved0           |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                     message body ...                          |
 *
 * Length counts the whole message, header included. PPTP Message Type is 1
 * (control); 2 (management) is named by the RFC but never defined, so it is
 * refused. Magic Cookie is always 0x1A2B3C4D. Every control message has a
 * fixed size, listed in {@link CONTROL_MESSAGE_LENGTH}; each message's body
 * layout is documented on its interface below as `offset size field`
 * (offsets from the start of the message, so the body starts at 12).
 *
 * Text fields (host name, vendor, phone numbers, call statistics) are
 * fixed-width octet fields, NUL-padded when shorter (section 2.1); they are
 * decoded up to the first NUL as latin1, so any octets decode. Subaddress is
 * kept as raw octets: Windows puts a binary GUID there ([MS-PTPT] 6, <10>).
 *
 * Reserved fields are written as zero and ignored when read ([MS-PTPT] 2.2:
 * "MUST be set to 0 when sending ... MUST be ignored for incoming").
 *
 * Decoding is total: a message, or a typed failure. A length that differs
 * from the type's fixed size, a bad cookie, an unknown type or a management
 * message is a failure; on a TCP stream it cannot be skipped safely, and
 * RFC 2637 section 3 says an invalid or malformed message closes the control
 * connection (the caller's job, see control.ts).
 */
import { fail, ok, type DecodeFailure, type DecodeResult } from '../util/decode.js';

// ---------------------------------------------------------------------------
// From the spec

export const PPTP_TCP_PORT = 1723;
/** RFC 2637 section 1.4: PPTP Message Type. */
export const PPTP_MESSAGE_CONTROL = 1;
export const PPTP_MESSAGE_MANAGEMENT = 2;
export const PPTP_MAGIC_COOKIE = 0x1a2b3c4d;
/** Version 1, revision 0 (RFC 2637 section 2.1). */
export const PPTP_PROTOCOL_VERSION = 0x0100;
export const CONTROL_HEADER_LENGTH = 12;
/** Width of host name, vendor, phone number and subaddress fields. */
export const TEXT_FIELD_LENGTH = 64;
/** Width of the Call-Disconnect-Notify Call Statistics field. */
export const CALL_STATISTICS_LENGTH = 128;
/** RFC 2637 section 2.15: default ACCM until a Set-Link-Info says otherwise. */
export const DEFAULT_ACCM = 0xffffffff;

export enum ControlMessageType {
  StartControlConnectionRequest = 1,
  StartControlConnectionReply = 2,
  StopControlConnectionRequest = 3,
  StopControlConnectionReply = 4,
  EchoRequest = 5,
  EchoReply = 6,
  OutgoingCallRequest = 7,
  OutgoingCallReply = 8,
  IncomingCallRequest = 9,
  IncomingCallReply = 10,
  IncomingCallConnected = 11,
  CallClearRequest = 12,
  CallDisconnectNotify = 13,
  WanErrorNotify = 14,
  SetLinkInfo = 15,
}

/** Fixed total length (header included) of each control message, RFC 2637 section 2. */
export const CONTROL_MESSAGE_LENGTH: Readonly<Record<ControlMessageType, number>> = {
  [ControlMessageType.StartControlConnectionRequest]: 156,
  [ControlMessageType.StartControlConnectionReply]: 156,
  [ControlMessageType.StopControlConnectionRequest]: 16,
  [ControlMessageType.StopControlConnectionReply]: 16,
  [ControlMessageType.EchoRequest]: 16,
  [ControlMessageType.EchoReply]: 20,
  [ControlMessageType.OutgoingCallRequest]: 168,
  [ControlMessageType.OutgoingCallReply]: 32,
  [ControlMessageType.IncomingCallRequest]: 220,
  [ControlMessageType.IncomingCallReply]: 24,
  [ControlMessageType.IncomingCallConnected]: 28,
  [ControlMessageType.CallClearRequest]: 16,
  [ControlMessageType.CallDisconnectNotify]: 148,
  [ControlMessageType.WanErrorNotify]: 40,
  [ControlMessageType.SetLinkInfo]: 24,
};

/** The largest control message (Incoming-Call-Request): bounds the deframer's buffer. */
export const MAX_CONTROL_MESSAGE_LENGTH = 220;

export function controlMessageLength(type: ControlMessageType): number {
  return CONTROL_MESSAGE_LENGTH[type];
}

export function isControlMessageType(n: number): n is ControlMessageType {
  return Number.isInteger(n) && n >= 1 && n <= 15;
}

/** Framing Capabilities bits (section 2.1) and Framing Type values (section 2.7). */
export const FRAMING_ASYNC = 1;
export const FRAMING_SYNC = 2;
/** Framing Type 3: either (section 2.7). As a capability: both bits. */
export const FRAMING_ANY = 3;
/** Bearer Capabilities bits (section 2.1) and Bearer Type values (section 2.7). */
export const BEARER_ANALOG = 1;
export const BEARER_DIGITAL = 2;
export const BEARER_ANY = 3;

/** Section 2.2: Start-Control-Connection-Reply Result Code. */
export enum StartControlResult {
  Success = 1,
  GeneralError = 2,
  /** Command channel already exists. */
  AlreadyExists = 3,
  /** Requester is not authorized to establish a command channel. */
  NotAuthorized = 4,
  /** The protocol version of the requester is not supported. */
  UnsupportedVersion = 5,
}

/** Section 2.3: Stop-Control-Connection-Request Reason. */
export enum StopReason {
  /** General request to clear the control connection. */
  None = 1,
  /** Can't support the peer's version of the protocol. */
  StopProtocol = 2,
  /** Requester is being shut down. */
  StopLocalShutdown = 3,
}

/** Section 2.4: Stop-Control-Connection-Reply Result Code. */
export enum StopResult {
  Ok = 1,
  GeneralError = 2,
}

/** Section 2.6: Echo-Reply Result Code. */
export enum EchoResult {
  Ok = 1,
  GeneralError = 2,
}

/** Section 2.8: Outgoing-Call-Reply Result Code. */
export enum OutgoingCallResult {
  Connected = 1,
  GeneralError = 2,
  NoCarrier = 3,
  Busy = 4,
  NoDialTone = 5,
  TimeOut = 6,
  /** The call was not accepted by the PAC. */
  DoNotAccept = 7,
}

/** Section 2.10: Incoming-Call-Reply Result Code. */
export enum IncomingCallResult {
  Connect = 1,
  GeneralError = 2,
  DoNotAccept = 3,
}

/**
 * Section 2.13: Call-Disconnect-Notify Result Code. [MS-PTPT] 3.2.5.5: a
 * Windows PAC always sends 0 and a PNS MUST ignore the field.
 */
export enum DisconnectResult {
  LostCarrier = 1,
  GeneralError = 2,
  AdminShutdown = 3,
  /** Disconnected because a Call-Clear-Request was received. */
  Request = 4,
}

/** Section 2.16: General Error Codes (the Error Code field when Result Code is General Error). */
export enum GeneralError {
  None = 0,
  /** No control connection exists yet for this PAC-PNS pair. */
  NotConnected = 1,
  /** Length is wrong or Magic Cookie value is incorrect. */
  BadFormat = 2,
  /** A field value was out of range or a reserved field was non-zero. */
  BadValue = 3,
  /** Insufficient resources to handle this command now. */
  NoResource = 4,
  /** The Call ID is invalid in this context. */
  BadCallId = 5,
  /** A generic vendor-specific error occurred in the PAC. */
  PacError = 6,
}

// ---------------------------------------------------------------------------
// Messages

/**
 * 2.1 Start-Control-Connection-Request (156 octets). `12 2 Protocol Version,
 * 14 2 Reserved1, 16 4 Framing Capabilities, 20 4 Bearer Capabilities, 24 2
 * Maximum Channels, 26 2 Firmware Revision, 28 64 Host Name, 92 64 Vendor`.
 */
export interface StartControlConnectionRequest {
  type: ControlMessageType.StartControlConnectionRequest;
  protocolVersion: number;
  framingCapabilities: number;
  bearerCapabilities: number;
  /** SHOULD be 0 from a PNS; a PAC ignores it. */
  maximumChannels: number;
  firmwareRevision: number;
  hostName: string;
  vendorName: string;
}

/**
 * 2.2 Start-Control-Connection-Reply (156 octets). `12 2 Protocol Version,
 * 14 1 Result Code, 15 1 Error Code, 16 4 Framing Capabilities, 20 4 Bearer
 * Capabilities, 24 2 Maximum Channels, 26 2 Firmware Revision, 28 64 Host
 * Name, 92 64 Vendor`.
 */
export interface StartControlConnectionReply {
  type: ControlMessageType.StartControlConnectionReply;
  protocolVersion: number;
  resultCode: number;
  errorCode: number;
  framingCapabilities: number;
  bearerCapabilities: number;
  maximumChannels: number;
  firmwareRevision: number;
  hostName: string;
  vendorName: string;
}

/** 2.3 Stop-Control-Connection-Request (16 octets). `12 1 Reason, 13 1 Reserved1, 14 2 Reserved2`. */
export interface StopControlConnectionRequest {
  type: ControlMessageType.StopControlConnectionRequest;
  reason: number;
}

/** 2.4 Stop-Control-Connection-Reply (16 octets). `12 1 Result Code, 13 1 Error Code, 14 2 Reserved1`. */
export interface StopControlConnectionReply {
  type: ControlMessageType.StopControlConnectionReply;
  resultCode: number;
  errorCode: number;
}

/** 2.5 Echo-Request (16 octets). `12 4 Identifier`. */
export interface EchoRequest {
  type: ControlMessageType.EchoRequest;
  identifier: number;
}

/** 2.6 Echo-Reply (20 octets). `12 4 Identifier, 16 1 Result Code, 17 1 Error Code, 18 2 Reserved1`. */
export interface EchoReply {
  type: ControlMessageType.EchoReply;
  identifier: number;
  resultCode: number;
  errorCode: number;
}

/**
 * 2.7 Outgoing-Call-Request (168 octets), PNS -> PAC. `12 2 Call ID, 14 2
 * Call Serial Number, 16 4 Minimum BPS, 20 4 Maximum BPS, 24 4 Bearer Type,
 * 28 4 Framing Type, 32 2 Packet Recv. Window Size, 34 2 Packet Processing
 * Delay, 36 2 Phone Number Length, 38 2 Reserved1, 40 64 Phone Number, 104
 * 64 Subaddress`.
 */
export interface OutgoingCallRequest {
  type: ControlMessageType.OutgoingCallRequest;
  /** The PNS's Call ID: the key the PAC puts in GRE packets it sends. */
  callId: number;
  callSerialNumber: number;
  minimumBps: number;
  maximumBps: number;
  bearerType: number;
  framingType: number;
  receiveWindowSize: number;
  /** In 1/10 seconds. */
  processingDelay: number;
  phoneNumberLength: number;
  phoneNumber: string;
  /** 64 raw octets (Windows: a 16-octet correlation GUID, then zeros). */
  subaddress: Uint8Array;
}

/**
 * 2.8 Outgoing-Call-Reply (32 octets), PAC -> PNS. `12 2 Call ID, 14 2
 * Peer's Call ID, 16 1 Result Code, 17 1 Error Code, 18 2 Cause Code, 20 4
 * Connect Speed, 24 2 Packet Recv. Window Size, 26 2 Packet Processing
 * Delay, 28 4 Physical Channel ID`.
 */
export interface OutgoingCallReply {
  type: ControlMessageType.OutgoingCallReply;
  /** The PAC's Call ID: the key the PNS puts in GRE packets it sends. */
  callId: number;
  /** The Call ID from the Outgoing-Call-Request. */
  peerCallId: number;
  resultCode: number;
  errorCode: number;
  causeCode: number;
  connectSpeed: number;
  receiveWindowSize: number;
  processingDelay: number;
  physicalChannelId: number;
}

/**
 * 2.9 Incoming-Call-Request (220 octets), PAC -> PNS. `12 2 Call ID, 14 2
 * Call Serial Number, 16 4 Call Bearer Type, 20 4 Physical Channel ID, 24 2
 * Dialed Number Length, 26 2 Dialing Number Length, 28 64 Dialed Number, 92
 * 64 Dialing Number, 156 64 Subaddress`.
 */
export interface IncomingCallRequest {
  type: ControlMessageType.IncomingCallRequest;
  callId: number;
  callSerialNumber: number;
  bearerType: number;
  physicalChannelId: number;
  dialedNumberLength: number;
  dialingNumberLength: number;
  dialedNumber: string;
  dialingNumber: string;
  subaddress: Uint8Array;
}

/**
 * 2.10 Incoming-Call-Reply (24 octets), PNS -> PAC. `12 2 Call ID, 14 2
 * Peer's Call ID, 16 1 Result Code, 17 1 Error Code, 18 2 Packet Recv.
 * Window Size, 20 2 Packet Transmit Delay, 22 2 Reserved1`.
 */
export interface IncomingCallReply {
  type: ControlMessageType.IncomingCallReply;
  callId: number;
  peerCallId: number;
  resultCode: number;
  errorCode: number;
  receiveWindowSize: number;
  transmitDelay: number;
}

/**
 * 2.11 Incoming-Call-Connected (28 octets), PAC -> PNS. `12 2 Peer's Call
 * ID, 14 2 Reserved1, 16 4 Connect Speed, 20 2 Packet Recv. Window Size, 22
 * 2 Packet Transmit Delay, 24 4 Framing Type`.
 */
export interface IncomingCallConnected {
  type: ControlMessageType.IncomingCallConnected;
  peerCallId: number;
  connectSpeed: number;
  receiveWindowSize: number;
  transmitDelay: number;
  framingType: number;
}

/**
 * 2.12 Call-Clear-Request (16 octets), PNS -> PAC. `12 2 Call ID, 14 2
 * Reserved1`. The Call ID is the PNS's own: the PAC's may not be known yet
 * when a call is aborted during set-up.
 */
export interface CallClearRequest {
  type: ControlMessageType.CallClearRequest;
  callId: number;
}

/**
 * 2.13 Call-Disconnect-Notify (148 octets), PAC -> PNS. `12 2 Call ID, 14 1
 * Result Code, 15 1 Error Code, 16 2 Cause Code, 18 2 Reserved1, 20 128
 * Call Statistics`. The Call ID is the PAC's own (for the same reason as in
 * Call-Clear-Request); [MS-PTPT] section 4 shows it so.
 */
export interface CallDisconnectNotify {
  type: ControlMessageType.CallDisconnectNotify;
  callId: number;
  resultCode: number;
  errorCode: number;
  causeCode: number;
  /** Vendor-specific text, NUL-padded to 128 octets. */
  callStatistics: string;
}

/**
 * 2.14 WAN-Error-Notify (40 octets), PAC -> PNS. `12 2 Peer's Call ID, 14 2
 * Reserved1, 16 4 CRC Errors, 20 4 Framing Errors, 24 4 Hardware Overruns,
 * 28 4 Buffer Overruns, 32 4 Time-out Errors, 36 4 Alignment Errors`.
 */
export interface WanErrorNotify {
  type: ControlMessageType.WanErrorNotify;
  peerCallId: number;
  crcErrors: number;
  framingErrors: number;
  hardwareOverruns: number;
  bufferOverruns: number;
  timeoutErrors: number;
  alignmentErrors: number;
}

/**
 * 2.15 Set-Link-Info (24 octets), PNS -> PAC. `12 2 Peer's Call ID, 14 2
 * Reserved1, 16 4 Send ACCM, 20 4 Receive ACCM`. Peer's Call ID is the PAC's.
 */
export interface SetLinkInfo {
  type: ControlMessageType.SetLinkInfo;
  peerCallId: number;
  sendAccm: number;
  receiveAccm: number;
}

export type ControlMessage =
  | StartControlConnectionRequest
  | StartControlConnectionReply
  | StopControlConnectionRequest
  | StopControlConnectionReply
  | EchoRequest
  | EchoReply
  | OutgoingCallRequest
  | OutgoingCallReply
  | IncomingCallRequest
  | IncomingCallReply
  | IncomingCallConnected
  | CallClearRequest
  | CallDisconnectNotify
  | WanErrorNotify
  | SetLinkInfo;

/** RFC-style short names, for logs. */
export const CONTROL_MESSAGE_NAME: Readonly<Record<ControlMessageType, string>> = {
  [ControlMessageType.StartControlConnectionRequest]: 'SCCRQ',
  [ControlMessageType.StartControlConnectionReply]: 'SCCRP',
  [ControlMessageType.StopControlConnectionRequest]: 'StopCCRQ',
  [ControlMessageType.StopControlConnectionReply]: 'StopCCRP',
  [ControlMessageType.EchoRequest]: 'ECHORQ',
  [ControlMessageType.EchoReply]: 'ECHORP',
  [ControlMessageType.OutgoingCallRequest]: 'OCRQ',
  [ControlMessageType.OutgoingCallReply]: 'OCRP',
  [ControlMessageType.IncomingCallRequest]: 'ICRQ',
  [ControlMessageType.IncomingCallReply]: 'ICRP',
  [ControlMessageType.IncomingCallConnected]: 'ICCN',
  [ControlMessageType.CallClearRequest]: 'CCRQ',
  [ControlMessageType.CallDisconnectNotify]: 'CDN',
  [ControlMessageType.WanErrorNotify]: 'WEN',
  [ControlMessageType.SetLinkInfo]: 'SLI',
};

// ---------------------------------------------------------------------------
// Encoding: one body writer per message, all behind encodeControlMessage.

/** Fixed-offset big-endian writer into a caller's buffer (no growth, no allocation). */
class FieldWriter {
  private readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  u8(v: number): void {
    this.view.setUint8(this.pos, v & 0xff);
    this.pos += 1;
  }
  u16(v: number): void {
    this.view.setUint16(this.pos, v & 0xffff);
    this.pos += 2;
  }
  u32(v: number): void {
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
  }
  zeros(n: number): void {
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }
  /** Latin1 text, truncated to `width` octets, NUL-padded (section 2.1). */
  text(s: string, width: number): void {
    const n = Math.min(s.length, width);
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      this.buf[this.pos + i] = c <= 0xff ? c : 0x3f; // '?' for what latin1 cannot carry
    }
    this.buf.fill(0, this.pos + n, this.pos + width);
    this.pos += width;
  }
  /** Raw octets, truncated or zero-padded to `width`. */
  octets(b: Uint8Array | undefined, width: number): void {
    const n = b ? Math.min(b.length, width) : 0;
    if (b && n > 0) this.buf.set(b.subarray(0, n), this.pos);
    this.buf.fill(0, this.pos + n, this.pos + width);
    this.pos += width;
  }
}

type BodyWriter<M> = (w: FieldWriter, m: M) => void;

function writeStartRequest(w: FieldWriter, m: StartControlConnectionRequest): void {
  w.u16(m.protocolVersion);
  w.u16(0); // Reserved1
  w.u32(m.framingCapabilities);
  w.u32(m.bearerCapabilities);
  w.u16(m.maximumChannels);
  w.u16(m.firmwareRevision);
  w.text(m.hostName, TEXT_FIELD_LENGTH);
  w.text(m.vendorName, TEXT_FIELD_LENGTH);
}

function writeStartReply(w: FieldWriter, m: StartControlConnectionReply): void {
  w.u16(m.protocolVersion);
  w.u8(m.resultCode);
  w.u8(m.errorCode);
  w.u32(m.framingCapabilities);
  w.u32(m.bearerCapabilities);
  w.u16(m.maximumChannels);
  w.u16(m.firmwareRevision);
  w.text(m.hostName, TEXT_FIELD_LENGTH);
  w.text(m.vendorName, TEXT_FIELD_LENGTH);
}

function writeStopRequest(w: FieldWriter, m: StopControlConnectionRequest): void {
  w.u8(m.reason);
  w.zeros(3); // Reserved1, Reserved2
}

function writeStopReply(w: FieldWriter, m: StopControlConnectionReply): void {
  w.u8(m.resultCode);
  w.u8(m.errorCode);
  w.zeros(2);
}

function writeEchoRequest(w: FieldWriter, m: EchoRequest): void {
  w.u32(m.identifier);
}

function writeEchoReply(w: FieldWriter, m: EchoReply): void {
  w.u32(m.identifier);
  w.u8(m.resultCode);
  w.u8(m.errorCode);
  w.zeros(2);
}

function writeOutgoingRequest(w: FieldWriter, m: OutgoingCallRequest): void {
  w.u16(m.callId);
  w.u16(m.callSerialNumber);
  w.u32(m.minimumBps);
  w.u32(m.maximumBps);
  w.u32(m.bearerType);
  w.u32(m.framingType);
  w.u16(m.receiveWindowSize);
  w.u16(m.processingDelay);
  w.u16(m.phoneNumberLength);
  w.zeros(2);
  w.text(m.phoneNumber, TEXT_FIELD_LENGTH);
  w.octets(m.subaddress, TEXT_FIELD_LENGTH);
}

function writeOutgoingReply(w: FieldWriter, m: OutgoingCallReply): void {
  w.u16(m.callId);
  w.u16(m.peerCallId);
  w.u8(m.resultCode);
  w.u8(m.errorCode);
  w.u16(m.causeCode);
  w.u32(m.connectSpeed);
  w.u16(m.receiveWindowSize);
  w.u16(m.processingDelay);
  w.u32(m.physicalChannelId);
}

function writeIncomingRequest(w: FieldWriter, m: IncomingCallRequest): void {
  w.u16(m.callId);
  w.u16(m.callSerialNumber);
  w.u32(m.bearerType);
  w.u32(m.physicalChannelId);
  w.u16(m.dialedNumberLength);
  w.u16(m.dialingNumberLength);
  w.text(m.dialedNumber, TEXT_FIELD_LENGTH);
  w.text(m.dialingNumber, TEXT_FIELD_LENGTH);
  w.octets(m.subaddress, TEXT_FIELD_LENGTH);
}

function writeIncomingReply(w: FieldWriter, m: IncomingCallReply): void {
  w.u16(m.callId);
  w.u16(m.peerCallId);
  w.u8(m.resultCode);
  w.u8(m.errorCode);
  w.u16(m.receiveWindowSize);
  w.u16(m.transmitDelay);
  w.zeros(2);
}

function writeIncomingConnected(w: FieldWriter, m: IncomingCallConnected): void {
  w.u16(m.peerCallId);
  w.zeros(2);
  w.u32(m.connectSpeed);
  w.u16(m.receiveWindowSize);
  w.u16(m.transmitDelay);
  w.u32(m.framingType);
}

function writeCallClear(w: FieldWriter, m: CallClearRequest): void {
  w.u16(m.callId);
  w.zeros(2);
}

function writeDisconnectNotify(w: FieldWriter, m: CallDisconnectNotify): void {
  w.u16(m.callId);
  w.u8(m.resultCode);
  w.u8(m.errorCode);
  w.u16(m.causeCode);
  w.zeros(2);
  w.text(m.callStatistics, CALL_STATISTICS_LENGTH);
}

function writeWanError(w: FieldWriter, m: WanErrorNotify): void {
  w.u16(m.peerCallId);
  w.zeros(2);
  w.u32(m.crcErrors);
  w.u32(m.framingErrors);
  w.u32(m.hardwareOverruns);
  w.u32(m.bufferOverruns);
  w.u32(m.timeoutErrors);
  w.u32(m.alignmentErrors);
}

function writeSetLinkInfo(w: FieldWriter, m: SetLinkInfo): void {
  w.u16(m.peerCallId);
  w.zeros(2);
  w.u32(m.sendAccm);
  w.u32(m.receiveAccm);
}

type MessageOf<T extends ControlMessageType> = Extract<ControlMessage, { type: T }>;

const BODY_WRITERS: { [T in ControlMessageType]: BodyWriter<MessageOf<T>> } = {
  [ControlMessageType.StartControlConnectionRequest]: writeStartRequest,
  [ControlMessageType.StartControlConnectionReply]: writeStartReply,
  [ControlMessageType.StopControlConnectionRequest]: writeStopRequest,
  [ControlMessageType.StopControlConnectionReply]: writeStopReply,
  [ControlMessageType.EchoRequest]: writeEchoRequest,
  [ControlMessageType.EchoReply]: writeEchoReply,
  [ControlMessageType.OutgoingCallRequest]: writeOutgoingRequest,
  [ControlMessageType.OutgoingCallReply]: writeOutgoingReply,
  [ControlMessageType.IncomingCallRequest]: writeIncomingRequest,
  [ControlMessageType.IncomingCallReply]: writeIncomingReply,
  [ControlMessageType.IncomingCallConnected]: writeIncomingConnected,
  [ControlMessageType.CallClearRequest]: writeCallClear,
  [ControlMessageType.CallDisconnectNotify]: writeDisconnectNotify,
  [ControlMessageType.WanErrorNotify]: writeWanError,
  [ControlMessageType.SetLinkInfo]: writeSetLinkInfo,
};

/**
 * Write `m` (header included) into `out` at `offset`; returns the number of
 * octets written, always {@link controlMessageLength}(m.type). Throws
 * RangeError if `out` is too small (a caller bug, not network input).
 */
export function encodeControlMessageInto(m: ControlMessage, out: Uint8Array, offset = 0): number {
  const length = CONTROL_MESSAGE_LENGTH[m.type];
  if (offset < 0 || offset + length > out.length) {
    throw new RangeError(`PPTP ${CONTROL_MESSAGE_NAME[m.type]} needs ${length} octets at offset ${offset}, buffer has ${out.length}`);
  }
  const w = new FieldWriter(out, offset);
  w.u16(length);
  w.u16(PPTP_MESSAGE_CONTROL);
  w.u32(PPTP_MAGIC_COOKIE);
  w.u16(m.type);
  w.u16(0); // Reserved0
  (BODY_WRITERS[m.type] as BodyWriter<ControlMessage>)(w, m);
  return length;
}

/** Encode `m` into a new buffer of exactly its length. */
export function encodeControlMessage(m: ControlMessage): Uint8Array {
  const out = new Uint8Array(CONTROL_MESSAGE_LENGTH[m.type]);
  encodeControlMessageInto(m, out, 0);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

/** Reads fixed fields of a message already known to be complete (no bounds checks needed). */
class FieldReader {
  constructor(
    private readonly buf: Uint8Array,
    public pos: number,
  ) {}
  u8(): number {
    return this.buf[this.pos++]!;
  }
  u16(): number {
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(): number {
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
  skip(n: number): void {
    this.pos += n;
  }
  /** Latin1 text up to the first NUL within `width` octets. */
  text(width: number): string {
    let s = '';
    for (let i = 0; i < width; i++) {
      const c = this.buf[this.pos + i]!;
      if (c === 0) break;
      s += String.fromCharCode(c);
    }
    this.pos += width;
    return s;
  }
  /** A copy, so decoded messages never alias the caller's (or a deframer's reused) buffer. */
  octets(width: number): Uint8Array {
    const v = this.buf.slice(this.pos, this.pos + width);
    this.pos += width;
    return v;
  }
}

type BodyReader<M> = (r: FieldReader) => M;

const BODY_READERS: { [T in ControlMessageType]: BodyReader<MessageOf<T>> } = {
  [ControlMessageType.StartControlConnectionRequest]: (r) => {
    const protocolVersion = r.u16();
    r.skip(2);
    return {
      type: ControlMessageType.StartControlConnectionRequest,
      protocolVersion,
      framingCapabilities: r.u32(),
      bearerCapabilities: r.u32(),
      maximumChannels: r.u16(),
      firmwareRevision: r.u16(),
      hostName: r.text(TEXT_FIELD_LENGTH),
      vendorName: r.text(TEXT_FIELD_LENGTH),
    };
  },
  [ControlMessageType.StartControlConnectionReply]: (r) => ({
    type: ControlMessageType.StartControlConnectionReply,
    protocolVersion: r.u16(),
    resultCode: r.u8(),
    errorCode: r.u8(),
    framingCapabilities: r.u32(),
    bearerCapabilities: r.u32(),
    maximumChannels: r.u16(),
    firmwareRevision: r.u16(),
    hostName: r.text(TEXT_FIELD_LENGTH),
    vendorName: r.text(TEXT_FIELD_LENGTH),
  }),
  [ControlMessageType.StopControlConnectionRequest]: (r) => ({
    type: ControlMessageType.StopControlConnectionRequest,
    reason: r.u8(),
  }),
  [ControlMessageType.StopControlConnectionReply]: (r) => ({
    type: ControlMessageType.StopControlConnectionReply,
    resultCode: r.u8(),
    errorCode: r.u8(),
  }),
  [ControlMessageType.EchoRequest]: (r) => ({ type: ControlMessageType.EchoRequest, identifier: r.u32() }),
  [ControlMessageType.EchoReply]: (r) => ({
    type: ControlMessageType.EchoReply,
    identifier: r.u32(),
    resultCode: r.u8(),
    errorCode: r.u8(),
  }),
  [ControlMessageType.OutgoingCallRequest]: (r) => {
    const callId = r.u16();
    const callSerialNumber = r.u16();
    const minimumBps = r.u32();
    const maximumBps = r.u32();
    const bearerType = r.u32();
    const framingType = r.u32();
    const receiveWindowSize = r.u16();
    const processingDelay = r.u16();
    const phoneNumberLength = r.u16();
    r.skip(2);
    return {
      type: ControlMessageType.OutgoingCallRequest,
      callId,
      callSerialNumber,
      minimumBps,
      maximumBps,
      bearerType,
      framingType,
      receiveWindowSize,
      processingDelay,
      phoneNumberLength,
      phoneNumber: r.text(TEXT_FIELD_LENGTH),
      subaddress: r.octets(TEXT_FIELD_LENGTH),
    };
  },
  [ControlMessageType.OutgoingCallReply]: (r) => ({
    type: ControlMessageType.OutgoingCallReply,
    callId: r.u16(),
    peerCallId: r.u16(),
    resultCode: r.u8(),
    errorCode: r.u8(),
    causeCode: r.u16(),
    connectSpeed: r.u32(),
    receiveWindowSize: r.u16(),
    processingDelay: r.u16(),
    physicalChannelId: r.u32(),
  }),
  [ControlMessageType.IncomingCallRequest]: (r) => ({
    type: ControlMessageType.IncomingCallRequest,
    callId: r.u16(),
    callSerialNumber: r.u16(),
    bearerType: r.u32(),
    physicalChannelId: r.u32(),
    dialedNumberLength: r.u16(),
    dialingNumberLength: r.u16(),
    dialedNumber: r.text(TEXT_FIELD_LENGTH),
    dialingNumber: r.text(TEXT_FIELD_LENGTH),
    subaddress: r.octets(TEXT_FIELD_LENGTH),
  }),
  [ControlMessageType.IncomingCallReply]: (r) => ({
    type: ControlMessageType.IncomingCallReply,
    callId: r.u16(),
    peerCallId: r.u16(),
    resultCode: r.u8(),
    errorCode: r.u8(),
    receiveWindowSize: r.u16(),
    transmitDelay: r.u16(),
  }),
  [ControlMessageType.IncomingCallConnected]: (r) => {
    const peerCallId = r.u16();
    r.skip(2);
    return {
      type: ControlMessageType.IncomingCallConnected,
      peerCallId,
      connectSpeed: r.u32(),
      receiveWindowSize: r.u16(),
      transmitDelay: r.u16(),
      framingType: r.u32(),
    };
  },
  [ControlMessageType.CallClearRequest]: (r) => ({ type: ControlMessageType.CallClearRequest, callId: r.u16() }),
  [ControlMessageType.CallDisconnectNotify]: (r) => {
    const callId = r.u16();
    const resultCode = r.u8();
    const errorCode = r.u8();
    const causeCode = r.u16();
    r.skip(2);
    return {
      type: ControlMessageType.CallDisconnectNotify,
      callId,
      resultCode,
      errorCode,
      causeCode,
      callStatistics: r.text(CALL_STATISTICS_LENGTH),
    };
  },
  [ControlMessageType.WanErrorNotify]: (r) => {
    const peerCallId = r.u16();
    r.skip(2);
    return {
      type: ControlMessageType.WanErrorNotify,
      peerCallId,
      crcErrors: r.u32(),
      framingErrors: r.u32(),
      hardwareOverruns: r.u32(),
      bufferOverruns: r.u32(),
      timeoutErrors: r.u32(),
      alignmentErrors: r.u32(),
    };
  },
  [ControlMessageType.SetLinkInfo]: (r) => {
    const peerCallId = r.u16();
    r.skip(2);
    return { type: ControlMessageType.SetLinkInfo, peerCallId, sendAccm: r.u32(), receiveAccm: r.u32() };
  },
};

function u16At(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

/**
 * Check a control message header at `offset` (needs CONTROL_HEADER_LENGTH
 * octets). Returns the message's total length, or a failure: 'truncated'
 * (header incomplete), 'magic' (cookie), 'type' (management or unknown
 * message type), 'length' (length field differs from the type's fixed size).
 */
export function checkControlHeader(buf: Uint8Array, offset = 0, end = buf.length): DecodeResult<ControlMessageType> {
  if (end - offset < CONTROL_HEADER_LENGTH) {
    return fail('truncated', `PPTP control header needs ${CONTROL_HEADER_LENGTH} octets, have ${Math.max(0, end - offset)}`, offset);
  }
  const length = u16At(buf, offset);
  const messageType = u16At(buf, offset + 2);
  const cookie = ((u16At(buf, offset + 4) << 16) | u16At(buf, offset + 6)) >>> 0;
  const type = u16At(buf, offset + 8);
  if (cookie !== PPTP_MAGIC_COOKIE) {
    return fail('magic', `PPTP magic cookie 0x${cookie.toString(16).padStart(8, '0')} is not 0x1a2b3c4d`, offset + 4);
  }
  if (messageType !== PPTP_MESSAGE_CONTROL) {
    const what = messageType === PPTP_MESSAGE_MANAGEMENT ? 'management messages (type 2) are not defined by RFC 2637' : `unknown PPTP message type ${messageType}`;
    return fail('type', what, offset + 2);
  }
  if (!isControlMessageType(type)) {
    return fail('type', `unknown PPTP control message type ${type}`, offset + 8);
  }
  const expected = CONTROL_MESSAGE_LENGTH[type];
  if (length !== expected) {
    return fail('length', `PPTP ${CONTROL_MESSAGE_NAME[type]} length ${length}, the message is ${expected} octets`, offset);
  }
  return ok(type, CONTROL_HEADER_LENGTH);
}

/**
 * Decode one control message at `offset`. `consumed` is the message length.
 * Failures as {@link checkControlHeader}, plus 'truncated' when the header is
 * good but the body has not all arrived.
 */
export function decodeControlMessage(buf: Uint8Array, offset = 0, end = buf.length): DecodeResult<ControlMessage> {
  const header = checkControlHeader(buf, offset, end);
  if (!header.ok) return header;
  const type = header.value;
  const length = CONTROL_MESSAGE_LENGTH[type];
  if (end - offset < length) {
    return fail('truncated', `PPTP ${CONTROL_MESSAGE_NAME[type]} needs ${length} octets, have ${end - offset}`, offset);
  }
  const reader = new FieldReader(buf, offset + CONTROL_HEADER_LENGTH);
  return ok(BODY_READERS[type](reader), length);
}

// ---------------------------------------------------------------------------
// Stream deframing

export interface DeframeResult {
  /** Whole messages completed by this chunk, in order. */
  messages: ControlMessage[];
  /**
   * Set when the stream is broken (bad cookie, length, type): messages
   * before it are still valid; nothing after it is parsed, now or later.
   */
  error?: DecodeFailure;
}

/**
 * Turns TCP reads of any size into whole control messages. Holds at most one
 * partial message ({@link MAX_CONTROL_MESSAGE_LENGTH} octets): the header is
 * checked as soon as its 12 octets are in, so a bogus length never makes it
 * wait for (or buffer) more. After a failure the deframer stays failed: a
 * byte stream cannot be resynchronised safely.
 */
export class ControlDeframer {
  private readonly pending = new Uint8Array(MAX_CONTROL_MESSAGE_LENGTH);
  private have = 0;
  /** Octets needed before the next decode attempt: the header, then the whole message. */
  private want = CONTROL_HEADER_LENGTH;
  private failure: DecodeFailure | undefined;
  /** Octets accepted so far, for failure offsets relative to the stream. */
  private streamOffset = 0;

  /** Octets of an incomplete message held. */
  get buffered(): number {
    return this.have;
  }

  get failed(): DecodeFailure | undefined {
    return this.failure;
  }

  push(chunk: Uint8Array): DeframeResult {
    const messages: ControlMessage[] = [];
    if (this.failure) return { messages, error: this.failure };
    let pos = 0;
    while (pos < chunk.length) {
      const n = Math.min(this.want - this.have, chunk.length - pos);
      this.pending.set(chunk.subarray(pos, pos + n), this.have);
      this.have += n;
      pos += n;
      if (this.have < this.want) break;
      const r = decodeControlMessage(this.pending, 0, this.have);
      if (r.ok) {
        messages.push(r.value);
        this.streamOffset += this.have;
        this.have = 0;
        this.want = CONTROL_HEADER_LENGTH;
      } else if (r.kind === 'truncated' && this.want === CONTROL_HEADER_LENGTH) {
        // Header checked and good: its length is a fixed message size (> 12, <= 220).
        this.want = u16At(this.pending, 0);
      } else {
        this.failure = { ...r, offset: this.streamOffset + r.offset };
        return { messages, error: this.failure };
      }
    }
    return { messages };
  }
}
