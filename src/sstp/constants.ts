/**
 * SSTP constants: first what MS-SSTP fixes (section numbers of MS-SSTP
 * v20240423), then what this gateway chooses.
 */

// ---------------------------------------------------------------------------
// From the spec
// ---------------------------------------------------------------------------

/** 2.2.1: Version field, major 1 minor 0. */
export const SSTP_VERSION = 0x10;
/** 2.2.1: the C bit (lowest bit of the second octet): 1 = control packet, 0 = data packet. */
export const SSTP_C_BIT = 0x01;
/** 2.2.1: SSTP header (Version, Reserved|C, R|Length). */
export const SSTP_HEADER_LEN = 4;
/** 2.2.1: Length is 12 bits, the whole packet including the header. */
export const SSTP_MAX_PACKET_LEN = 0x0fff;
/** 2.2.2: control header = SSTP header + Message Type (2) + Num Attributes (2). */
export const SSTP_CONTROL_HEADER_LEN = 8;
/** 2.2.4: attribute header = Reserved (1) + Attribute ID (1) + R|Length (2). */
export const SSTP_ATTRIBUTE_HEADER_LEN = 4;
/** Largest PPP frame one data packet can carry. */
export const SSTP_MAX_DATA_PAYLOAD = SSTP_MAX_PACKET_LEN - SSTP_HEADER_LEN;

/** 2.2.2: Message Type values. */
export const MessageType = {
  CallConnectRequest: 0x0001,
  CallConnectAck: 0x0002,
  CallConnectNak: 0x0003,
  CallConnected: 0x0004,
  CallAbort: 0x0005,
  CallDisconnect: 0x0006,
  CallDisconnectAck: 0x0007,
  EchoRequest: 0x0008,
  EchoResponse: 0x0009,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const MESSAGE_NAMES: Readonly<Record<MessageType, string>> = {
  [MessageType.CallConnectRequest]: 'SSTP_MSG_CALL_CONNECT_REQUEST',
  [MessageType.CallConnectAck]: 'SSTP_MSG_CALL_CONNECT_ACK',
  [MessageType.CallConnectNak]: 'SSTP_MSG_CALL_CONNECT_NAK',
  [MessageType.CallConnected]: 'SSTP_MSG_CALL_CONNECTED',
  [MessageType.CallAbort]: 'SSTP_MSG_CALL_ABORT',
  [MessageType.CallDisconnect]: 'SSTP_MSG_CALL_DISCONNECT',
  [MessageType.CallDisconnectAck]: 'SSTP_MSG_CALL_DISCONNECT_ACK',
  [MessageType.EchoRequest]: 'SSTP_MSG_ECHO_REQUEST',
  [MessageType.EchoResponse]: 'SSTP_MSG_ECHO_RESPONSE',
};

export function isMessageType(v: number): v is MessageType {
  return v >= MessageType.CallConnectRequest && v <= MessageType.EchoResponse;
}

/** 2.2.4 and 2.2.8 (AttribID): attribute identifiers. 0 only appears inside a Status Info. */
export const AttributeId = {
  NoError: 0x00,
  EncapsulatedProtocolId: 0x01,
  StatusInfo: 0x02,
  CryptoBinding: 0x03,
  CryptoBindingRequest: 0x04,
} as const;
export type AttributeId = (typeof AttributeId)[keyof typeof AttributeId];

export function isAttributeId(v: number): v is Exclude<AttributeId, 0> {
  return v >= AttributeId.EncapsulatedProtocolId && v <= AttributeId.CryptoBindingRequest;
}

/** 2.2.5: Encapsulated Protocol ID attribute: header + Protocol ID (2); "MUST be set to 0x006". */
export const ENCAPSULATED_PROTOCOL_ATTR_LEN = 6;
/** 2.2.5: the only protocol SSTP version 1 carries. */
export const SSTP_ENCAPSULATED_PROTOCOL_PPP = 0x0001;
/** 2.2.6: Crypto Binding Request attribute: "Its value MUST be 40 (that is, 0x028)". */
export const CRYPTO_BINDING_REQUEST_ATTR_LEN = 40;
/** 2.2.7: Crypto Binding attribute: "Its value MUST be 104 (that is, 0x068)". */
export const CRYPTO_BINDING_ATTR_LEN = 104;
/** 2.2.8: Status Info attribute: "MUST be the length of the AttribValue field plus 12". */
export const STATUS_INFO_MIN_LEN = 12;
/** 2.2.8: AttribValue carries at most 64 octets of the offending attribute. */
export const STATUS_INFO_MAX_VALUE_LEN = 64;

/** 2.2.6, 2.2.10: nonce in Crypto Binding Request / Crypto Binding. */
export const SSTP_NONCE_LEN = 32;
/** 2.2.7: Cert Hash and Compound MAC fields are 32 octets each (SHA-1 values are zero-padded). */
export const BINDING_FIELD_LEN = 32;

/** 2.2.6: Hash Protocol Bitmask bits. */
export const HashProtocol = {
  Sha1: 0x01,
  Sha256: 0x02,
} as const;
export type HashProtocol = (typeof HashProtocol)[keyof typeof HashProtocol];

/** 2.2.8: Status values. */
export const AttribStatus = {
  NoError: 0x00000000,
  DuplicateAttribute: 0x00000001,
  UnrecognizedAttribute: 0x00000002,
  InvalidAttribValueLength: 0x00000003,
  ValueNotSupported: 0x00000004,
  UnacceptedFrameReceived: 0x00000005,
  RetryCountExceeded: 0x00000006,
  InvalidFrameReceived: 0x00000007,
  NegotiationTimeout: 0x00000008,
  AttribNotSupportedInMsg: 0x00000009,
  RequiredAttributeMissing: 0x0000000a,
  StatusInfoNotSupportedInMsg: 0x0000000b,
} as const;
export type AttribStatus = (typeof AttribStatus)[keyof typeof AttribStatus];

/** 3.1.2, 3.2.2.1, 3.3.2: timer values the spec recommends ("SHOULD be set to"). */
export const SPEC_TIMERS = {
  /** 3.2.2.1 / 3.3.2: negotiation timer, 60 s. */
  negotiationMs: 60_000,
  /** 3.1.2.3: hello timer, 60 s. */
  helloMs: 60_000,
  /** 3.1.2.1: TIMER_VAL_ABORT_STATE_TIMER_1, 3 s. */
  abortT1Ms: 3_000,
  /** 3.1.2.1: TIMER_VAL_ABORT_STATE_TIMER_2, 1 s. */
  abortT2Ms: 1_000,
  /** 3.1.2.2: TIMER_VAL_DISCONNECT_STATE_TIMER_1, 5 s. */
  disconnectT1Ms: 5_000,
  /** 3.1.2.2: TIMER_VAL_DISCONNECT_STATE_TIMER_2, 1 s. */
  disconnectT2Ms: 1_000,
} as const;

/** 3.2.4.1 / 4.1: the HTTP layer. */
export const SSTP_HTTP_METHOD = 'SSTP_DUPLEX_POST';
export const SSTP_HTTP_PATH = '/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/';
/** 3.2.4.1: "content length of ULONGLONG_MAX (18446744073709551615)". */
export const SSTP_HTTP_CONTENT_LENGTH = '18446744073709551615';

// ---------------------------------------------------------------------------
// Our choices
// ---------------------------------------------------------------------------

/**
 * Every timer a call runs. Defaults are the spec's, plus the time a fresh
 * connection has to send its Call Connect Request (the spec's negotiation
 * timer, started on the "New HTTPS Connection Received" event).
 */
export interface SstpTimers {
  /** From HTTP 200 to the first Call Connect Request (server) . */
  connectRequestMs: number;
  /** From Call Connect Ack to a verified Call Connected (both sides); from Request to Ack (client). */
  negotiationMs: number;
  helloMs: number;
  abortT1Ms: number;
  abortT2Ms: number;
  disconnectT1Ms: number;
  disconnectT2Ms: number;
}

export const DEFAULT_TIMERS: Readonly<SstpTimers> = {
  connectRequestMs: SPEC_TIMERS.negotiationMs,
  ...SPEC_TIMERS,
};

/** How many Call Connect Naks the server sends before it aborts (3.3.5.2.2 leaves it to us). */
export const DEFAULT_MAX_NAKS = 3;
/** How many times the client resends Call Connect Request after a Nak (3.2.5.3.3 <10>). */
export const DEFAULT_CLIENT_CONNECT_RETRIES = 3;

/** HTTP request head bounds (server side). */
export const HTTP_MAX_HEADER_BYTES = 8 * 1024;
export const HTTP_MAX_HEADERS = 32;
/** How long a client has to deliver its whole HTTP request head. */
export const HTTP_REQUEST_TIMEOUT_MS = 30_000;
/** How long the client waits for the HTTP response (4.1: "A response is expected within 60 seconds"). */
export const HTTP_RESPONSE_TIMEOUT_MS = 60_000;
