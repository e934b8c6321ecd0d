/**
 * Enhanced GRE for PPTP: RFC 2637 section 4.1 (header), 4.2-4.4 (sliding
 * window, out-of-sequence packets, acknowledgment time-outs), with the
 * Windows profile [MS-PTPT] 3.1.2 and 3.1.5.7-3.1.5.9.
 *
 * This TypeScript version is the reference the WASM data plane is tested
 * against, and the codec the in-process client uses. Header, big-endian:
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |    Key (HW) Payload Length    |       Key (LW) Call ID        |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                  Sequence Number (Optional)                   |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |               Acknowledgment Number (Optional)                |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Section 4.1: C, R, s, Recur and Flags are zero; K is one; S is one when a
 * payload is present and zero for an acknowledgment-only packet; A is one
 * when the Acknowledgment Number is present; Ver is 1; Protocol Type is
 * 0x880B (PPP). Payload Length counts the payload only (not the GRE header).
 * Call ID is the *receiver's* Call ID (the one the peer chose in its
 * Outgoing-Call-Request/-Reply). The optional fields are packed: an
 * acknowledgment-only packet (S=0, A=1) is 12 octets, the acknowledgment in
 * octets 8-11, where the sequence number would otherwise be.
 *
 * The payload is a PPP frame without HDLC framing: no flags, no escapes, no
 * FCS (section 4). It starts with FF 03 unless address/control compression
 * was negotiated (LCP frames always carry FF 03, RFC 1661 6.6).
 *
 * ---------------------------------------------------------------------------
 * Rules for the data plane (one GRE stream per call; seq/ack are u32, all
 * comparisons in serial-number arithmetic, RFC 1982: a is after b when
 * (a - b) mod 2^32 is in 1 .. 2^31-1). {@link GreSequenceState} is the
 * reference implementation.
 *
 * Receiving (GRE_RX), in this order; every drop is counted by reason:
 *  1. Header checks as {@link decodeGre} (Drop.GRE_HEADER); the packet's
 *     Call ID must name an installed PPTP session (Drop.GRE_UNKNOWN_CALL),
 *     and its outer source address should be the control connection's peer
 *     ([MS-PTPT] 3.1.5 allows the check; we do it: anything else is a spoof).
 *  2. A present: the acknowledgment tells which of our packets arrived
 *     (section 4.2.5: it acknowledges every packet up to and including it).
 *     Keep the highest seen (serially), for statistics; it is ignored when not
 *     after the current value.
 *  3. S clear: acknowledgment only, nothing to deliver. Stop here. (S clear
 *     with a non-zero Payload Length, or S set with zero, contradicts section
 *     4.1 and is dropped in step 1.)
 *  4. Payload Length greater than what follows the header: drop
 *     (Drop.GRE_HEADER); octets after the payload (IP padding) are ignored.
 *  5. Sequence number: the first data packet of a call is accepted whatever
 *     its number. After that, a packet whose number is after the last accepted
 *     one is delivered and becomes the last accepted (a gap means loss; PPP
 *     and MPPE cope with loss). A packet whose number is not after the last
 *     accepted (a duplicate, or one overtaken by a later packet) is dropped
 *     (Drop.GRE_SEQUENCE). Section 4.3 says out-of-sequence packets MUST be
 *     discarded or reordered before PPP sees them: PPP, and stateful MPPE,
 *     assume in-order delivery. [MS-PTPT] 3.1.5.8 reorders with a queue; we
 *     discard, as the Linux kernel's PPTP driver does, because a reorder queue
 *     means per-call buffers and a timer on the packet path.
 *
 * Sending (GRE_TX):
 *  6. Data packets carry S=1 and the next sequence number. The first one a
 *     call sends is 1, then +1 per data packet, wrapping at 2^32 (the Linux
 *     kernel and pptp-linux start at 1; receivers accept any first number).
 *     Acknowledgment-only packets consume no sequence number.
 *  7. Piggyback: when data has been accepted since the last acknowledgment
 *     sent, the next data packet carries A=1 and the last accepted number.
 *     Otherwise A=0 and the header is 12 octets.
 *  8. Acknowledgment-only packet (S=0, A=1, Payload Length 0, 12 octets):
 *     when data has been accepted but not acknowledged and no data packet has
 *     carried the acknowledgment within 100 ms ([MS-PTPT] 3.1.2 "Packet
 *     Acknowledgment Timer"; pptp-linux waits up to 500 ms). Never send one
 *     when there is nothing new to acknowledge. A batch-driven data plane may
 *     check this at the end of each batch plus on a coarse 100 ms tick.
 *  9. The peer's receive window (Packet Recv. Window Size of its
 *     Outgoing-Call-Request or -Reply) is recorded but NOT enforced:
 *     sections 4.2.1-4.2.4 describe a transmitter that stops at the window
 *     and halves it on acknowledgment time-outs (4.4), but [MS-PTPT]
 *     3.1.5.7 and 3.1.5.9 (Windows) and the Linux kernel implement neither,
 *     and pptp-linux advertises a window of 3 while acknowledging at most
 *     every 500 ms, so enforcing it would throttle a session to a few packets
 *     per second. No retransmission ever happens at this layer (4.2).
 * 10. Our advertised receive window (control.ts: 64) only tells an RFC-strict
 *     peer how far it may run ahead; excess packets are simply delivered or
 *     dropped by rule 5 (section 4.2.4 allows discarding window overflow).
 *
 * The largest PPP frame is 1532 octets without IP and GRE headers (RFC 2637
 * section 1.4 gives this MTU), so a GRE packet fits one data-plane slot.
 */
import { fail, ok, type DecodeResult } from '../util/decode.js';

// ---------------------------------------------------------------------------
// From the spec

export const IPPROTO_GRE = 47;
/** Protocol Type for PPP (section 4.1). */
export const GRE_PROTOCOL_PPP = 0x880b;
/** Enhanced GRE version (section 4.1). */
export const GRE_VERSION_ENHANCED = 1;
/** Header without the optional fields. */
export const GRE_BASE_HEADER_LENGTH = 8;
/** Header with both sequence and acknowledgment numbers. */
export const GRE_MAX_HEADER_LENGTH = 16;

/** First octet. */
export const GRE_FLAG_C = 0x80;
export const GRE_FLAG_R = 0x40;
export const GRE_FLAG_K = 0x20;
export const GRE_FLAG_S = 0x10;
/** Strict source route present. */
export const GRE_FLAG_SSR = 0x08;
export const GRE_RECUR_MASK = 0x07;
/** Second octet. */
export const GRE_FLAG_A = 0x80;
export const GRE_FLAGS_MASK = 0x78;
export const GRE_VERSION_MASK = 0x07;

// ---------------------------------------------------------------------------
// Our choices (see rules 6 and 8 above)

/** Sequence number of the first data packet a call sends. */
export const GRE_FIRST_SEQUENCE = 1;
/** Longest an acknowledgment waits for a data packet to carry it ([MS-PTPT] 3.1.2). */
export const GRE_ACK_DELAY_MS = 100;

export interface GreHeader {
  /** The receiver's Call ID (Key, low 16 bits). */
  callId: number;
  /** Payload octets after the header (Key, high 16 bits); 0 for acknowledgment-only. */
  payloadLength: number;
  /** Present (S=1) on data packets. */
  sequence?: number | undefined;
  /** Present (A=1) when acknowledging. */
  acknowledgment?: number | undefined;
}

export interface GrePacket {
  header: GreHeader;
  /** A view into the decoded buffer (no copy); empty for acknowledgment-only packets. */
  payload: Uint8Array;
}

export function greHeaderLength(h: Pick<GreHeader, 'sequence' | 'acknowledgment'>): number {
  return GRE_BASE_HEADER_LENGTH + (h.sequence !== undefined ? 4 : 0) + (h.acknowledgment !== undefined ? 4 : 0);
}

/**
 * Write the header into `out` at `offset`; returns its length. The payload
 * (h.payloadLength octets) is the caller's to place right after it. Throws
 * RangeError on a caller bug: no room, a payload without a sequence number
 * (S must be 1 when a payload is present, section 4.1), or a packet with
 * neither sequence nor acknowledgment.
 */
export function encodeGreHeaderInto(h: GreHeader, out: Uint8Array, offset = 0): number {
  const length = greHeaderLength(h);
  if (offset < 0 || offset + length > out.length) throw new RangeError(`GRE header needs ${length} octets at offset ${offset}`);
  if ((h.sequence !== undefined) !== (h.payloadLength > 0)) throw new RangeError('GRE S=1 exactly when a payload is present (section 4.1)');
  if (h.sequence === undefined && h.acknowledgment === undefined) throw new RangeError('GRE packet needs a sequence or an acknowledgment number');
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint8(offset, GRE_FLAG_K | (h.sequence !== undefined ? GRE_FLAG_S : 0));
  v.setUint8(offset + 1, (h.acknowledgment !== undefined ? GRE_FLAG_A : 0) | GRE_VERSION_ENHANCED);
  v.setUint16(offset + 2, GRE_PROTOCOL_PPP);
  v.setUint16(offset + 4, h.payloadLength & 0xffff);
  v.setUint16(offset + 6, h.callId & 0xffff);
  let at = offset + GRE_BASE_HEADER_LENGTH;
  if (h.sequence !== undefined) {
    v.setUint32(at, h.sequence >>> 0);
    at += 4;
  }
  if (h.acknowledgment !== undefined) v.setUint32(at, h.acknowledgment >>> 0);
  return length;
}

/**
 * A whole GRE packet: a data packet when `payload` is given (then `sequence`
 * is required), acknowledgment-only otherwise.
 */
export function encodeGre(
  h: { callId: number; sequence?: number | undefined; acknowledgment?: number | undefined },
  payload?: Uint8Array,
): Uint8Array {
  const header: GreHeader = { ...h, payloadLength: payload?.length ?? 0 };
  if (header.payloadLength > 0xffff) throw new RangeError('GRE payload longer than 65535 octets');
  const length = greHeaderLength(header);
  const out = new Uint8Array(length + header.payloadLength);
  encodeGreHeaderInto(header, out, 0);
  if (payload) out.set(payload, length);
  return out;
}

/**
 * Decode one GRE packet (the IP payload). `consumed` is header + payload;
 * octets after the payload are not part of it. Failures: 'truncated' (header
 * incomplete), 'version' (Ver is not 1), 'type' (Protocol Type is not PPP),
 * 'value' (C, R, s, Recur or Flags set, K clear, or S set without a payload
 * or clear with one), 'missing' (neither S nor A: nothing to carry), 'length'
 * (Payload Length runs past the packet).
 */
export function decodeGre(buf: Uint8Array, offset = 0, end = buf.length): DecodeResult<GrePacket> {
  const avail = end - offset;
  if (avail < GRE_BASE_HEADER_LENGTH) return fail('truncated', `GRE header needs 8 octets, have ${Math.max(0, avail)}`, offset);
  const f0 = buf[offset]!;
  const f1 = buf[offset + 1]!;
  const version = f1 & GRE_VERSION_MASK;
  if (version !== GRE_VERSION_ENHANCED) return fail('version', `GRE version ${version}, PPTP uses enhanced GRE version 1`, offset + 1);
  const protocol = (buf[offset + 2]! << 8) | buf[offset + 3]!;
  if (protocol !== GRE_PROTOCOL_PPP) return fail('type', `GRE protocol type 0x${protocol.toString(16).padStart(4, '0')} is not PPP (0x880b)`, offset + 2);
  if ((f0 & GRE_FLAG_K) === 0) return fail('value', 'GRE K bit clear: PPTP packets carry a key (section 4.1)', offset);
  if (f0 & (GRE_FLAG_C | GRE_FLAG_R | GRE_FLAG_SSR | GRE_RECUR_MASK)) {
    return fail('value', `GRE C/R/s/Recur bits set (0x${f0.toString(16)}): must be zero (section 4.1)`, offset);
  }
  if (f1 & GRE_FLAGS_MASK) return fail('value', `GRE Flags bits set (0x${f1.toString(16)}): must be zero (section 4.1)`, offset + 1);
  const hasSeq = (f0 & GRE_FLAG_S) !== 0;
  const hasAck = (f1 & GRE_FLAG_A) !== 0;
  if (!hasSeq && !hasAck) return fail('missing', 'GRE packet with neither sequence nor acknowledgment number', offset);
  const headerLength = GRE_BASE_HEADER_LENGTH + (hasSeq ? 4 : 0) + (hasAck ? 4 : 0);
  if (avail < headerLength) return fail('truncated', `GRE header needs ${headerLength} octets, have ${avail}`, offset);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const payloadLength = v.getUint16(offset + 4);
  const callId = v.getUint16(offset + 6);
  let at = offset + GRE_BASE_HEADER_LENGTH;
  let sequence: number | undefined;
  let acknowledgment: number | undefined;
  if (hasSeq) {
    sequence = v.getUint32(at);
    at += 4;
  }
  if (hasAck) {
    acknowledgment = v.getUint32(at);
    at += 4;
  }
  const header: GreHeader = { callId, payloadLength, sequence, acknowledgment };
  if (hasSeq !== (payloadLength > 0)) {
    // Section 4.1: S is one exactly when a payload is present (the WASM data plane drops the same way).
    return fail('value', `GRE S bit ${hasSeq ? 'set' : 'clear'} with payload length ${payloadLength}`, offset);
  }
  if (payloadLength > avail - headerLength) {
    return fail('length', `GRE payload length ${payloadLength} exceeds the ${avail - headerLength} octets after the header`, offset + 4);
  }
  return ok({ header, payload: buf.subarray(at, at + payloadLength) }, headerLength + payloadLength);
}

// ---------------------------------------------------------------------------
// Sequence and acknowledgment reference (rules 2, 5, 6, 7, 8 above)

/** Serial-number comparison (RFC 1982) on 32 bits: is `a` after `b`? */
export function seqAfter(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}

export type GreReceiveVerdict = 'deliver' | 'stale';

/**
 * One call's GRE numbering, both directions, as the data plane keeps it per
 * session. Pure state, no timers: the caller decides when an
 * acknowledgment-only packet is due ({@link ackDue} + its own 100 ms clock).
 */
export class GreSequenceState {
  private nextSeq = GRE_FIRST_SEQUENCE;
  private anyReceived = false;
  private lastAccepted = 0;
  private lastAckSent: number | undefined;
  private peerAck: number | undefined;
  private lastSent: number | undefined;

  /** Rule 5: judge a received data packet's sequence number. */
  receive(sequence: number): GreReceiveVerdict {
    const seq = sequence >>> 0;
    if (!this.anyReceived || seqAfter(seq, this.lastAccepted)) {
      this.anyReceived = true;
      this.lastAccepted = seq;
      return 'deliver';
    }
    return 'stale';
  }

  /** Rule 2: the peer acknowledged up to `ack`. */
  acknowledged(ack: number): void {
    const a = ack >>> 0;
    if (this.peerAck === undefined || seqAfter(a, this.peerAck)) this.peerAck = a;
  }

  /** Rule 6/7: header fields for the next data packet (consumes a sequence number). */
  nextData(): { sequence: number; acknowledgment: number | undefined } {
    const sequence = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    this.lastSent = sequence;
    return { sequence, acknowledgment: this.takeAck() };
  }

  /** Rule 8: is there something accepted but not yet acknowledged? */
  get ackDue(): boolean {
    return this.anyReceived && this.lastAckSent !== this.lastAccepted;
  }

  /** Rule 8: the acknowledgment for an acknowledgment-only packet, or undefined when none is due. */
  nextAckOnly(): number | undefined {
    return this.takeAck();
  }

  /** Highest sequence number accepted, if any. */
  get highestReceived(): number | undefined {
    return this.anyReceived ? this.lastAccepted : undefined;
  }

  /** Highest acknowledgment received, if any. */
  get highestAcknowledged(): number | undefined {
    return this.peerAck;
  }

  /** Data packets sent that the peer has not acknowledged yet (statistics; never enforced, rule 9). */
  get unacknowledged(): number {
    if (this.lastSent === undefined) return 0;
    const base = this.peerAck ?? (GRE_FIRST_SEQUENCE - 1) >>> 0;
    return seqAfter(this.lastSent, base) ? (this.lastSent - base) >>> 0 : 0;
  }

  private takeAck(): number | undefined {
    if (!this.ackDue) return undefined;
    this.lastAckSent = this.lastAccepted;
    return this.lastAccepted;
  }
}
