import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { VpnError } from '../util/errors.js';
import { CallIdAllocator } from './callid.js';
import { CallState, type PptpCall } from './call.js';
import {
  ControlMessageType as T,
  DisconnectResult,
  GeneralError,
  OutgoingCallResult,
  StartControlResult,
  StopReason,
  decodeControlMessage,
  encodeControlMessage,
  type ControlMessage,
} from './codec.js';
import {
  ControlState,
  PptpClientConnection,
  PptpServerConnection,
  type ControlEvents,
  type PptpClientOptions,
  type PptpServerOptions,
} from './control.js';

const SERVER_ADDR = '198.18.0.1';
const CLIENT_ADDR = '198.18.0.2';

type Side = 'server' | 'client';

/** Decode one transport write (each write is exactly one control message). */
function one(bytes: Uint8Array): ControlMessage {
  const r = decodeControlMessage(bytes);
  if (!r.ok || r.consumed !== bytes.length) throw new Error(`not one control message: ${JSON.stringify(r)}`);
  return r.value;
}

function recordEvents(side: Side, log: string[]): ControlEvents {
  return {
    onEstablished: (p) => log.push(`${side}:established:${p.hostName}`),
    onCallEstablished: (c) => log.push(`${side}:call-up:${c.localCallId}->${c.peerCallId}`),
    onCallCleared: (c, why) => log.push(`${side}:call-cleared:${c.localCallId}:${why}`),
    onLinkInfo: (c) => log.push(`${side}:link-info:${c.localCallId}`),
    onClosed: (why) => log.push(`${side}:closed:${why}`),
  };
}

/**
 * A server (PAC) and a client (PNS) joined by an in-memory TCP: writes are
 * queued and delivered by pump(), in order, in chunks of `chunk` octets; a
 * close() is delivered as the peer's transportClosed() after the bytes
 * written before it (FIN after data).
 */
function backToBack(
  o: {
    server?: Partial<PptpServerOptions>;
    client?: Partial<PptpClientOptions>;
    chunk?: number;
    serverIds?: CallIdAllocator;
  } = {},
) {
  const clock = new VirtualClock();
  const events: string[] = [];
  const wire: { from: Side; msg?: ControlMessage; bytes?: Uint8Array; fin?: true }[] = [];
  const sent: { from: Side; msg: ControlMessage }[] = [];
  const closedTransport: Record<Side, boolean> = { server: false, client: false };
  const blackhole: Record<Side, boolean> = { server: false, client: false };
  const serverIds = o.serverIds ?? new CallIdAllocator({ start: 100 });
  const clientIds = new CallIdAllocator({ start: 500 });
  const transport = (from: Side) => ({
    write: (bytes: Uint8Array) => {
      const msg = one(bytes);
      sent.push({ from, msg });
      wire.push({ from, bytes, msg });
    },
    close: () => {
      expect(closedTransport[from]).toBe(false);
      closedTransport[from] = true;
      wire.push({ from, fin: true });
    },
  });
  const server = new PptpServerConnection({
    transport: transport('server'),
    clock,
    peerAddress: CLIENT_ADDR,
    callIds: serverIds,
    events: recordEvents('server', events),
    ...o.server,
  });
  const client = new PptpClientConnection({
    transport: transport('client'),
    clock,
    peerAddress: SERVER_ADDR,
    callIds: clientIds,
    events: recordEvents('client', events),
    ...o.client,
  });
  const chunk = o.chunk ?? Infinity;
  const pump = (): void => {
    for (let steps = 0; wire.length > 0; steps++) {
      if (steps > 10_000) throw new Error('pump did not settle');
      const item = wire.shift()!;
      // A side that is blackholed receives nothing (a dead peer or a cut path).
      const to: Side = item.from === 'server' ? 'client' : 'server';
      if (blackhole[to]) continue;
      const dest = to === 'server' ? server : client;
      if (item.fin) {
        dest.transportClosed();
        continue;
      }
      const b = item.bytes!;
      for (let i = 0; i < b.length; i += chunk) dest.input(b.subarray(i, Math.min(b.length, i + chunk)));
    }
  };
  const advance = (ms: number): void => {
    clock.advance(ms);
    pump();
  };
  /** Messages sent since the last call, as short names. */
  let seen = 0;
  const newlySent = (): string[] => {
    const out = sent.slice(seen).map((s) => `${s.from}:${T[s.msg.type]}`);
    seen = sent.length;
    return out;
  };
  return { clock, server, client, events, sent, pump, advance, newlySent, closedTransport, blackhole, serverIds, clientIds };
}

/** Bring a pair up to one established call. */
function established(o: Parameters<typeof backToBack>[0] = {}) {
  const t = backToBack(o);
  t.client.start();
  t.pump();
  const call = t.client.openCall();
  t.pump();
  const serverCall = t.server.activeCalls[0]!;
  t.newlySent();
  t.events.length = 0;
  return { ...t, call, serverCall };
}

describe('PPTP control connection back to back: set-up', () => {
  it('SCCRQ/SCCRP then OCRQ/OCRP bring both sides to an established call with matching ids', () => {
    const t = backToBack();
    expect(t.server.state).toBe(ControlState.Idle);
    t.client.start();
    expect(t.client.state).toBe(ControlState.WaitCtlReply);
    t.pump();
    expect(t.server.state).toBe(ControlState.Established);
    expect(t.client.state).toBe(ControlState.Established);
    const call = t.client.openCall();
    expect(call.state).toBe(CallState.WaitReply);
    t.pump();
    expect(t.newlySent()).toEqual([
      'client:StartControlConnectionRequest',
      'server:StartControlConnectionReply',
      'client:OutgoingCallRequest',
      'server:OutgoingCallReply',
    ]);
    expect(t.events).toEqual(['server:established:vpngw', 'client:established:vpngw', 'server:call-up:100->500', 'client:call-up:500->100']);

    const sccrp = t.sent[1]!.msg;
    expect(sccrp).toEqual({
      type: T.StartControlConnectionReply,
      protocolVersion: 0x0100,
      resultCode: StartControlResult.Success,
      errorCode: 0,
      framingCapabilities: 3,
      bearerCapabilities: 3,
      maximumChannels: 1,
      firmwareRevision: 1,
      hostName: 'vpngw',
      vendorName: 'vpngw',
    });
    const ocrq = t.sent[2]!.msg;
    expect(ocrq).toMatchObject({ type: T.OutgoingCallRequest, callId: 500, callSerialNumber: 1, receiveWindowSize: 64, maximumBps: 100_000_000 });
    const ocrp = t.sent[3]!.msg;
    expect(ocrp).toEqual({
      type: T.OutgoingCallReply,
      callId: 100,
      peerCallId: 500,
      resultCode: OutgoingCallResult.Connected,
      errorCode: 0,
      causeCode: 0,
      connectSpeed: 100_000_000,
      receiveWindowSize: 64,
      processingDelay: 0,
      physicalChannelId: 0,
    });

    const serverCall = t.server.activeCalls[0]!;
    expect(serverCall.info).toEqual({
      role: 'pac',
      localCallId: 100,
      peerCallId: 500,
      peerAddress: CLIENT_ADDR,
      peerReceiveWindow: 64,
      peerProcessingDelay: 0,
      localReceiveWindow: 64,
      connectSpeed: 100_000_000,
      callSerialNumber: 1,
      sendAccm: 0xffffffff,
      receiveAccm: 0xffffffff,
    });
    expect(call.info).toMatchObject({ role: 'pns', localCallId: 500, peerCallId: 100, peerAddress: SERVER_ADDR, peerReceiveWindow: 64 });
    expect(t.server.peer).toMatchObject({ hostName: 'vpngw', protocolVersion: 0x0100, maximumChannels: 0 });
    expect(t.serverIds.isAllocated(100)).toBe(true);
  });

  it('works the same when TCP delivers one byte at a time', () => {
    const t = established({ chunk: 1 });
    expect(t.call.state).toBe(CallState.Established);
    expect(t.serverCall.state).toBe(CallState.Established);
    t.call.disconnect();
    t.pump();
    expect(t.server.state).toBe(ControlState.Closed);
    expect(t.client.state).toBe(ControlState.Closed);
  });

  it('a later protocol version is answered with ours; an earlier one is refused with result 5 and the TCP closes', () => {
    const later = serverAlone();
    later.feed({ ...SCCRQ, protocolVersion: 0x0200 });
    expect(later.out()).toEqual([{ ...later.sccrp(StartControlResult.Success) }]);
    expect(later.server.state).toBe(ControlState.Established);

    const earlier = serverAlone();
    earlier.feed({ ...SCCRQ, protocolVersion: 0x00ff });
    expect(earlier.out()).toEqual([earlier.sccrp(StartControlResult.UnsupportedVersion)]);
    expect(earlier.server.state).toBe(ControlState.Closed);
    expect(earlier.server.closeReason).toBe('version-unsupported');
    expect(earlier.closed()).toBe(true);
  });

  it('a second SCCRQ on an established connection gets result 3 (already exists) and changes nothing', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.out();
    s.feed(SCCRQ);
    expect(s.out()).toEqual([s.sccrp(StartControlResult.AlreadyExists)]);
    expect(s.server.state).toBe(ControlState.Established);
    expect(s.server.counters.unexpected).toBe(1);
  });

  it('closes an accepted TCP connection that sends no SCCRQ within 30 s, sending nothing', () => {
    const s = serverAlone();
    s.clock.advance(29_999);
    expect(s.server.state).toBe(ControlState.Idle);
    s.clock.advance(1);
    expect(s.server.state).toBe(ControlState.Closed);
    expect(s.server.closeReason).toBe('handshake-timeout');
    expect(s.out()).toEqual([]);
    expect(s.closed()).toBe(true);
  });

  it('the client gives up when no SCCRP comes within 60 s', () => {
    const t = backToBack();
    t.blackhole.server = true;
    t.blackhole.client = true; // nor does the server's close (after its own 30 s) reach the client
    t.client.start();
    t.advance(59_999);
    expect(t.client.state).toBe(ControlState.WaitCtlReply);
    t.advance(1);
    expect(t.client.closeReason).toBe('handshake-timeout');
    expect(t.closedTransport.client).toBe(true);
  });

  it('the client closes when the PAC refuses the control connection', () => {
    const c = clientAlone();
    c.client.start();
    c.feed({ ...c.sccrp(), resultCode: StartControlResult.NotAuthorized });
    expect(c.client.closeReason).toBe('rejected');
    expect(c.closed()).toBe(true);
  });

  it('the client stops with Stop-Protocol when the PAC answers with an older version (section 3.1.1)', () => {
    const c = clientAlone();
    c.client.start();
    c.out();
    c.feed({ ...c.sccrp(), protocolVersion: 0x0001 });
    expect(c.out()).toEqual([{ type: T.StopControlConnectionRequest, reason: StopReason.StopProtocol }]);
    expect(c.client.state).toBe(ControlState.WaitStopReply);
    c.feed({ type: T.StopControlConnectionReply, resultCode: 1, errorCode: 0 });
    expect(c.client.closeReason).toBe('version-unsupported');
  });

  it('opening a call before establishment or past the limit throws typed errors', () => {
    const t = backToBack();
    expect(() => t.client.openCall()).toThrow(VpnError);
    try {
      t.client.openCall();
    } catch (e) {
      expect((e as VpnError).code).toBe('ERR_PROTOCOL');
    }
    t.client.start();
    t.pump();
    t.client.openCall();
    try {
      t.client.openCall();
      expect.unreachable();
    } catch (e) {
      expect((e as VpnError).code).toBe('ERR_LIMIT');
    }
  });
});

describe('PPTP control connection back to back: call limits and admission', () => {
  it('a second call on one connection is refused with General error / No-Resource', () => {
    const t = backToBack({ client: { maxCalls: 2 } });
    t.client.start();
    t.pump();
    const first = t.client.openCall();
    t.pump();
    const second = t.client.openCall();
    t.pump();
    expect(t.sent.at(-1)!.msg).toMatchObject({
      type: T.OutgoingCallReply,
      callId: 0,
      peerCallId: second.localCallId,
      resultCode: OutgoingCallResult.GeneralError,
      errorCode: GeneralError.NoResource,
    });
    expect(second.state).toBe(CallState.Cleared);
    expect(second.clearReason).toBe('rejected');
    expect(first.state).toBe(CallState.Established);
    expect(t.server.counters.callsRejected).toBe(1);
    expect(t.server.activeCalls).toHaveLength(1);
    expect(t.clientIds.isAllocated(second.localCallId)).toBe(false);
  });

  it('admitCall can refuse with its own result code, without consuming a Call ID', () => {
    const t = backToBack({ server: { admitCall: () => ({ accept: false, resultCode: OutgoingCallResult.DoNotAccept }) } });
    t.client.start();
    t.pump();
    const call = t.client.openCall();
    t.pump();
    expect(t.sent.find((s) => s.msg.type === T.OutgoingCallReply)!.msg).toMatchObject({ resultCode: OutgoingCallResult.DoNotAccept, callId: 0 });
    expect(call.clearReason).toBe('rejected');
    expect(t.serverIds.inUse).toBe(0);
    // The client's only call is gone, so it stops the control connection ([MS-PTPT] 3.3.4.2).
    expect(t.client.state).toBe(ControlState.Closed);
    expect(t.server.state).toBe(ControlState.Closed);
  });

  it('an admitCall that throws refuses the call with PAC-Error instead of breaking the connection', () => {
    const t = backToBack({
      server: {
        admitCall: () => {
          throw new Error('boom');
        },
      },
    });
    t.client.start();
    t.pump();
    t.client.openCall();
    t.pump();
    expect(t.sent.find((s) => s.msg.type === T.OutgoingCallReply)!.msg).toMatchObject({
      resultCode: OutgoingCallResult.GeneralError,
      errorCode: GeneralError.PacError,
    });
  });

  it('Call IDs are shared across connections: exhaustion refuses, release makes the id usable again', () => {
    const ids = new CallIdAllocator({ min: 7, max: 7 });
    const a = established({ serverIds: ids });
    expect(a.serverCall.localCallId).toBe(7);
    const b = backToBack({ serverIds: ids });
    b.client.start();
    b.pump();
    const refused = b.client.openCall();
    b.pump();
    expect(refused.clearReason).toBe('rejected');
    expect(b.sent.find((s) => s.msg.type === T.OutgoingCallReply)!.msg).toMatchObject({ errorCode: GeneralError.NoResource });
    a.call.disconnect();
    a.pump();
    expect(ids.inUse).toBe(0);
    const c = established({ serverIds: ids });
    expect(c.serverCall.localCallId).toBe(7);
  });
});

describe('PPTP control connection back to back: keep-alive', () => {
  it('sends Echo-Request after 60 s without control messages, and again 60 s after each reply', () => {
    const t = established({ client: { echoIntervalMs: 3_600_000 } });
    t.advance(59_999);
    expect(t.newlySent()).toEqual([]);
    t.advance(1);
    expect(t.newlySent()).toEqual(['server:EchoRequest', 'client:EchoReply']);
    expect(t.sent.at(-2)!.msg).toEqual({ type: T.EchoRequest, identifier: 1 });
    expect(t.sent.at(-1)!.msg).toEqual({ type: T.EchoReply, identifier: 1, resultCode: 1, errorCode: 0 });
    t.advance(59_999);
    expect(t.newlySent()).toEqual([]);
    t.advance(1);
    expect(t.newlySent()).toEqual(['server:EchoRequest', 'client:EchoReply']);
    expect(t.server.counters.echoRequestsSent).toBe(2);
    expect(t.server.state).toBe(ControlState.Established);
  });

  it('any received control message restarts the idle time', () => {
    const t = established({ client: { echoIntervalMs: 3_600_000 } });
    t.advance(30_000);
    t.call.setLinkInfo(0, 0xffffffff);
    t.pump();
    expect(t.newlySent()).toEqual(['client:SetLinkInfo']);
    t.advance(59_999); // 89.999 s since start, 59.999 s since the Set-Link-Info
    expect(t.newlySent()).toEqual([]);
    t.advance(1);
    expect(t.newlySent()).toEqual(['server:EchoRequest', 'client:EchoReply']);
  });

  it('both sides probe when both are idle, and each answers the other', () => {
    const t = established();
    t.advance(60_000);
    expect(t.newlySent().sort()).toEqual(['client:EchoReply', 'client:EchoRequest', 'server:EchoReply', 'server:EchoRequest']);
    expect(t.server.state).toBe(ControlState.Established);
    expect(t.client.state).toBe(ControlState.Established);
  });

  it('closes the TCP connection when the Echo-Reply does not come within 60 s, clearing the call first', () => {
    const t = established({ client: { echoIntervalMs: 3_600_000 } });
    t.blackhole.client = true; // the client vanished
    t.advance(60_000);
    expect(t.newlySent()).toEqual(['server:EchoRequest']);
    t.advance(59_999);
    expect(t.server.state).toBe(ControlState.Established);
    t.advance(1);
    expect(t.server.state).toBe(ControlState.Closed);
    expect(t.server.closeReason).toBe('echo-timeout');
    expect(t.events).toEqual(['server:call-cleared:100:control-closed', 'server:closed:echo-timeout']);
    expect(t.newlySent()).toEqual([]); // section 3.1.4: just close the TCP connection
    expect(t.closedTransport.server).toBe(true);
    expect(t.serverIds.inUse).toBe(0);
  });

  it('an Echo-Reply with the wrong identifier does not count', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.feed(OCRQ);
    s.out();
    s.clock.advance(60_000);
    expect(s.out()).toEqual([{ type: T.EchoRequest, identifier: 1 }]);
    s.feed({ type: T.EchoReply, identifier: 2, resultCode: 1, errorCode: 0 });
    expect(s.server.counters.unexpected).toBe(1);
    s.clock.advance(60_000);
    expect(s.server.closeReason).toBe('echo-timeout');
  });

  it('answers an Echo-Request before SCCRQ with General error / Not-Connected', () => {
    const s = serverAlone();
    s.feed({ type: T.EchoRequest, identifier: 42 });
    expect(s.out()).toEqual([{ type: T.EchoReply, identifier: 42, resultCode: 2, errorCode: GeneralError.NotConnected }]);
    expect(s.server.state).toBe(ControlState.Idle);
  });
});

describe('PPTP control connection back to back: clearing calls and stopping', () => {
  it('client hangs up: CCRQ, CDN(Request) with the PAC Call ID, then the idle PAC stops the connection', () => {
    const t = established({ client: { stopWhenIdle: false } });
    t.call.disconnect();
    expect(t.call.state).toBe(CallState.WaitDisconnect);
    t.pump();
    expect(t.newlySent()).toEqual([
      'client:CallClearRequest',
      'server:CallDisconnectNotify',
      'server:StopControlConnectionRequest',
      'client:StopControlConnectionReply',
    ]);
    expect(t.sent[4]!.msg).toEqual({ type: T.CallClearRequest, callId: 500 });
    expect(t.sent[5]!.msg).toEqual({ type: T.CallDisconnectNotify, callId: 100, resultCode: DisconnectResult.Request, errorCode: 0, causeCode: 0, callStatistics: '' });
    expect(t.sent[6]!.msg).toEqual({ type: T.StopControlConnectionRequest, reason: StopReason.None });
    expect(t.events).toEqual([
      'server:call-cleared:100:peer-clear',
      'client:call-cleared:500:local',
      'client:closed:peer-stop',
      'server:closed:local-stop',
    ]);
    expect(t.serverIds.inUse + t.clientIds.inUse).toBe(0);
    expect(t.clock.armed).toBe(0);
  });

  it('client hangs up with both sides stopping when idle: the crossing Stop requests still close both cleanly', () => {
    const t = established();
    t.call.disconnect();
    t.pump();
    expect(t.server.state).toBe(ControlState.Closed);
    expect(t.client.state).toBe(ControlState.Closed);
    expect(t.closedTransport).toEqual({ server: true, client: true });
    expect(t.events.filter((e) => e.includes('call-cleared'))).toEqual(['server:call-cleared:100:peer-clear', 'client:call-cleared:500:local']);
    expect(t.clock.armed).toBe(0);
  });

  it('server hangs up: CDN(Admin-Shutdown), the client clears its call', () => {
    const t = established({ client: { stopWhenIdle: false } });
    t.serverCall.disconnect();
    t.pump();
    expect(t.newlySent()).toEqual(['server:CallDisconnectNotify', 'server:StopControlConnectionRequest', 'client:StopControlConnectionReply']);
    expect(t.sent[4]!.msg).toMatchObject({ type: T.CallDisconnectNotify, callId: 100, resultCode: DisconnectResult.AdminShutdown });
    expect(t.events).toEqual([
      'server:call-cleared:100:local',
      'client:call-cleared:500:peer-disconnect',
      'client:closed:peer-stop',
      'server:closed:local-stop',
    ]);
  });

  it('client stops the control connection with a call up: calls are implicitly cleared on both sides (section 2.3)', () => {
    const t = established();
    t.client.stop(StopReason.StopLocalShutdown);
    expect(t.client.state).toBe(ControlState.WaitStopReply);
    t.pump();
    expect(t.newlySent()).toEqual(['client:StopControlConnectionRequest', 'server:StopControlConnectionReply']);
    expect(t.sent[4]!.msg).toEqual({ type: T.StopControlConnectionRequest, reason: StopReason.StopLocalShutdown });
    expect(t.events).toEqual([
      'client:call-cleared:500:control-closed',
      'server:call-cleared:100:control-closed',
      'server:closed:peer-stop',
      'client:closed:local-stop',
    ]);
  });

  it('server stops the control connection: CDN for each call, then StopCCRQ', () => {
    const t = established({ client: { stopWhenIdle: false } });
    t.server.stop(StopReason.StopLocalShutdown);
    t.pump();
    expect(t.newlySent()).toEqual(['server:CallDisconnectNotify', 'server:StopControlConnectionRequest', 'client:StopControlConnectionReply']);
    expect(t.sent[5]!.msg).toEqual({ type: T.StopControlConnectionRequest, reason: StopReason.StopLocalShutdown });
    expect(t.events).toEqual([
      'server:call-cleared:100:local',
      'client:call-cleared:500:peer-disconnect',
      'client:closed:peer-stop',
      'server:closed:local-stop',
    ]);
  });

  it('closes after 60 s when the Stop-Control-Connection-Reply never comes', () => {
    const t = established();
    t.blackhole.client = true;
    t.server.stop();
    t.advance(59_999);
    expect(t.server.state).toBe(ControlState.WaitStopReply);
    t.advance(1);
    expect(t.server.closeReason).toBe('stop-reply-timeout');
    expect(t.closedTransport.server).toBe(true);
  });

  it('the TCP connection dropping clears calls and closes without sending', () => {
    const t = established();
    t.server.transportClosed();
    expect(t.events).toEqual(['server:call-cleared:100:control-closed', 'server:closed:peer-closed']);
    expect(t.closedTransport.server).toBe(false); // the socket is already gone; nothing to close
    expect(t.newlySent()).toEqual([]);
    t.server.stop();
    t.server.transportClosed();
    expect(t.events).toHaveLength(2);
  });

  it('a PAC connection that never gets a call is stopped after 60 s', () => {
    const t = backToBack();
    t.client.start();
    t.pump();
    t.advance(59_999);
    expect(t.server.state).toBe(ControlState.Established);
    t.advance(1);
    expect(t.newlySent()).toContain('server:StopControlConnectionRequest');
    expect(t.server.state).toBe(ControlState.Closed);
  });

  it('the client clears a call whose Outgoing-Call-Reply never comes (CCRQ after 60 s)', () => {
    const long = 3_600_000; // keep echoes and the PAC's own call-setup stop out of the picture
    const t = backToBack({ server: { callSetupTimeoutMs: long, echoIntervalMs: long }, client: { echoIntervalMs: long } });
    t.client.start();
    t.pump();
    t.blackhole.server = true;
    const call = t.client.openCall();
    t.advance(60_000);
    expect(call.clearReason).toBe('reply-timeout');
    expect(t.sent.filter((s) => s.from === 'client').map((s) => T[s.msg.type])).toEqual([
      'StartControlConnectionRequest',
      'OutgoingCallRequest',
      'CallClearRequest',
      'StopControlConnectionRequest',
    ]);
  });

  it('the client matches a CDN carrying its own Call ID (as accel-ppp sends it)', () => {
    const c = clientAlone();
    c.client.start();
    c.feed(c.sccrp());
    const call = c.client.openCall();
    c.feed({ type: T.OutgoingCallReply, callId: 9, peerCallId: call.localCallId, resultCode: 1, errorCode: 0, causeCode: 0, connectSpeed: 1, receiveWindowSize: 3, processingDelay: 0, physicalChannelId: 0 });
    expect(call.state).toBe(CallState.Established);
    expect(call.peerReceiveWindow).toBe(3);
    c.feed({ type: T.CallDisconnectNotify, callId: call.localCallId, resultCode: 4, errorCode: 0, causeCode: 0, callStatistics: '' });
    expect(call.clearReason).toBe('peer-disconnect');
  });

  it('event handlers may act re-entrantly, and a throwing handler does not break the connection', () => {
    const log: string[] = [];
    const t = backToBack({
      server: {
        events: {
          onCallEstablished: (c: PptpCall) => {
            log.push('up');
            c.disconnect(); // e.g. the data plane had no room
          },
          onCallCleared: () => {
            throw new Error('handler bug');
          },
        },
      },
      client: { stopWhenIdle: false },
    });
    t.client.start();
    t.pump();
    t.client.openCall();
    t.pump();
    expect(log).toEqual(['up']);
    expect(t.sent.map((s) => `${s.from}:${T[s.msg.type]}`)).toEqual([
      'client:StartControlConnectionRequest',
      'server:StartControlConnectionReply',
      'client:OutgoingCallRequest',
      'server:OutgoingCallReply',
      'server:CallDisconnectNotify',
      'server:StopControlConnectionRequest',
      'client:StopControlConnectionReply',
    ]);
    expect(t.server.state).toBe(ControlState.Closed);
  });
});

// ---------------------------------------------------------------------------
// One side driven directly with raw bytes, for bad and unexpected messages.

const SCCRQ: Extract<ControlMessage, { type: T.StartControlConnectionRequest }> = {
  type: T.StartControlConnectionRequest,
  protocolVersion: 0x0100,
  framingCapabilities: 3,
  bearerCapabilities: 3,
  maximumChannels: 65535,
  firmwareRevision: 1,
  hostName: 'local',
  vendorName: 'cananian',
};

const OCRQ: Extract<ControlMessage, { type: T.OutgoingCallRequest }> = {
  type: T.OutgoingCallRequest,
  callId: 0x4242,
  callSerialNumber: 0,
  minimumBps: 2400,
  maximumBps: 10_000_000,
  bearerType: 3,
  framingType: 3,
  receiveWindowSize: 3,
  processingDelay: 0,
  phoneNumberLength: 0,
  phoneNumber: '',
  subaddress: new Uint8Array(64),
};

function driver<C extends PptpServerConnection | PptpClientConnection>(make: (o: PptpServerOptions) => C) {
  const clock = new VirtualClock();
  const written: ControlMessage[] = [];
  let closes = 0;
  const events: string[] = [];
  const conn = make({
    transport: { write: (b) => written.push(one(b)), close: () => closes++ },
    clock,
    peerAddress: CLIENT_ADDR,
    callIds: new CallIdAllocator({ start: 100 }),
    events: recordEvents('x' as Side, events),
  });
  return {
    clock,
    events,
    conn,
    feed: (m: ControlMessage) => conn.input(encodeControlMessage(m)),
    raw: (b: Uint8Array) => conn.input(b),
    out: () => written.splice(0),
    closed: () => closes === 1,
  };
}

function serverAlone() {
  const d = driver((o) => new PptpServerConnection(o));
  return {
    ...d,
    server: d.conn,
    sccrp: (resultCode: number) => ({
      type: T.StartControlConnectionReply,
      protocolVersion: 0x0100,
      resultCode,
      errorCode: 0,
      framingCapabilities: 3,
      bearerCapabilities: 3,
      maximumChannels: 1,
      firmwareRevision: 1,
      hostName: 'vpngw',
      vendorName: 'vpngw',
    }),
  };
}

function clientAlone() {
  const d = driver((o) => new PptpClientConnection(o));
  return {
    ...d,
    client: d.conn,
    sccrp: (): Extract<ControlMessage, { type: T.StartControlConnectionReply }> => ({
      type: T.StartControlConnectionReply,
      protocolVersion: 0x0100,
      resultCode: 1,
      errorCode: 0,
      framingCapabilities: 1,
      bearerCapabilities: 1,
      maximumChannels: 0,
      firmwareRevision: 0,
      hostName: '',
      vendorName: 'Microsoft',
    }),
  };
}

const garbage = (() => {
  const b = encodeControlMessage({ type: T.EchoRequest, identifier: 1 });
  b[4] = 0x47; // "GET / HTTP/1.1" would fail the same way: not the magic cookie
  return b;
})();

describe('PPTP server connection: bad and unexpected messages in each state', () => {
  it('idle: malformed bytes close at once, sending nothing', () => {
    const s = serverAlone();
    s.raw(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(s.server.closeReason).toBe('protocol-error');
    expect(s.out()).toEqual([]);
    expect(s.closed()).toBe(true);
    expect(s.clock.armed).toBe(0);
  });

  it('idle: a management message, an unknown type and a wrong length are protocol errors', () => {
    for (const mutate of [(b: Uint8Array) => (b[3] = 2), (b: Uint8Array) => (b[9] = 99), (b: Uint8Array) => (b[1] = 17)]) {
      const s = serverAlone();
      const b = encodeControlMessage({ type: T.EchoRequest, identifier: 1 });
      mutate(b);
      s.raw(b);
      expect(s.server.closeReason).toBe('protocol-error');
    }
  });

  it('idle: an OCRQ before SCCRQ gets General error / Not-Connected and the connection waits on', () => {
    const s = serverAlone();
    s.feed(OCRQ);
    expect(s.out()).toEqual([
      {
        type: T.OutgoingCallReply,
        callId: 0,
        peerCallId: 0x4242,
        resultCode: OutgoingCallResult.GeneralError,
        errorCode: GeneralError.NotConnected,
        causeCode: 0,
        connectSpeed: 0,
        receiveWindowSize: 64,
        processingDelay: 0,
        physicalChannelId: 0,
      },
    ]);
    expect(s.server.state).toBe(ControlState.Idle);
  });

  it('idle: StopCCRQ is answered and the connection closes', () => {
    const s = serverAlone();
    s.feed({ type: T.StopControlConnectionRequest, reason: 1 });
    expect(s.out()).toEqual([{ type: T.StopControlConnectionReply, resultCode: 1, errorCode: 0 }]);
    expect(s.server.closeReason).toBe('peer-stop');
  });

  it('established: a malformed message after a good one: the good one is handled, calls get CDN(General error, Bad-Format), then StopCCRQ, then close', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.feed(OCRQ);
    s.out();
    const sli = encodeControlMessage({ type: T.SetLinkInfo, peerCallId: 100, sendAccm: 0, receiveAccm: 0xffffffff });
    s.raw(new Uint8Array([...sli, ...garbage]));
    expect(s.events).toEqual(['x:established:local', 'x:call-up:100->16962', 'x:link-info:100', 'x:call-cleared:100:local', 'x:closed:protocol-error']);
    expect(s.out()).toEqual([
      { type: T.CallDisconnectNotify, callId: 100, resultCode: DisconnectResult.GeneralError, errorCode: GeneralError.BadFormat, causeCode: 0, callStatistics: '' },
      { type: T.StopControlConnectionRequest, reason: StopReason.None },
    ]);
    expect(s.closed()).toBe(true);
    expect(s.clock.armed).toBe(0);
    s.feed(SCCRQ); // nothing is read after the close
    expect(s.out()).toEqual([]);
  });

  it('established: messages of the wrong direction or for unknown calls are ignored and counted', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.feed(OCRQ);
    s.out();
    const wrong: ControlMessage[] = [
      { type: T.StartControlConnectionReply, protocolVersion: 0x100, resultCode: 1, errorCode: 0, framingCapabilities: 0, bearerCapabilities: 0, maximumChannels: 0, firmwareRevision: 0, hostName: '', vendorName: '' },
      { type: T.OutgoingCallReply, callId: 1, peerCallId: 100, resultCode: 1, errorCode: 0, causeCode: 0, connectSpeed: 0, receiveWindowSize: 0, processingDelay: 0, physicalChannelId: 0 },
      { type: T.IncomingCallRequest, callId: 1, callSerialNumber: 0, bearerType: 1, physicalChannelId: 0, dialedNumberLength: 0, dialingNumberLength: 0, dialedNumber: '', dialingNumber: '', subaddress: new Uint8Array(64) },
      { type: T.IncomingCallReply, callId: 1, peerCallId: 100, resultCode: 1, errorCode: 0, receiveWindowSize: 0, transmitDelay: 0 },
      { type: T.IncomingCallConnected, peerCallId: 100, connectSpeed: 0, receiveWindowSize: 0, transmitDelay: 0, framingType: 1 },
      { type: T.CallDisconnectNotify, callId: 100, resultCode: 1, errorCode: 0, causeCode: 0, callStatistics: '' },
      { type: T.WanErrorNotify, peerCallId: 100, crcErrors: 0, framingErrors: 0, hardwareOverruns: 0, bufferOverruns: 0, timeoutErrors: 0, alignmentErrors: 0 },
      { type: T.CallClearRequest, callId: 0x9999 },
      { type: T.SetLinkInfo, peerCallId: 0x9999, sendAccm: 0, receiveAccm: 0 },
      { type: T.StopControlConnectionReply, resultCode: 1, errorCode: 0 },
      { type: T.EchoReply, identifier: 5, resultCode: 1, errorCode: 0 },
    ];
    for (const m of wrong) s.feed(m);
    expect(s.server.counters.unexpected).toBe(wrong.length);
    expect(s.out()).toEqual([]);
    expect(s.server.state).toBe(ControlState.Established);
    expect(s.server.activeCalls[0]!.state).toBe(CallState.Established);
  });

  it('established: Set-Link-Info records the ACCMs on the call', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.feed(OCRQ);
    s.feed({ type: T.SetLinkInfo, peerCallId: 100, sendAccm: 0, receiveAccm: 0x000a0000 });
    const call = s.server.activeCalls[0]!;
    expect(call.info).toMatchObject({ sendAccm: 0, receiveAccm: 0x000a0000 });
    expect(s.events).toContain('x:link-info:100');
  });

  it('established: the OCRQ of pptp-linux (window 3, 10 Mbit/s) is accepted; connect speed echoes its maximum', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.out();
    s.feed(OCRQ);
    expect(s.out()[0]).toMatchObject({ type: T.OutgoingCallReply, callId: 100, peerCallId: 0x4242, connectSpeed: 10_000_000, receiveWindowSize: 64 });
    expect(s.server.activeCalls[0]!.peerReceiveWindow).toBe(3);
  });

  it('wait_stop_reply: new calls are ignored, a malformed message closes without more messages', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.server.stop();
    s.out();
    expect(s.server.state).toBe(ControlState.WaitStopReply);
    s.feed(OCRQ);
    s.feed(SCCRQ);
    expect(s.out()).toEqual([]);
    s.feed({ type: T.EchoRequest, identifier: 3 }); // still answered: the peer is alive
    expect(s.out()).toEqual([{ type: T.EchoReply, identifier: 3, resultCode: 1, errorCode: 0 }]);
    s.raw(garbage);
    expect(s.server.closeReason).toBe('protocol-error');
    expect(s.out()).toEqual([]);
  });

  it('wait_stop_reply: a crossing StopCCRQ is answered and closes', () => {
    const s = serverAlone();
    s.feed(SCCRQ);
    s.server.stop();
    s.out();
    s.feed({ type: T.StopControlConnectionRequest, reason: 1 });
    expect(s.out()).toEqual([{ type: T.StopControlConnectionReply, resultCode: 1, errorCode: 0 }]);
    expect(s.server.closeReason).toBe('peer-stop');
  });
});

describe('PPTP client connection: bad and unexpected messages in each state', () => {
  it('wait_ctl_reply: malformed bytes close without a Stop request', () => {
    const c = clientAlone();
    c.client.start();
    c.out();
    c.raw(garbage);
    expect(c.client.closeReason).toBe('protocol-error');
    expect(c.out()).toEqual([]);
  });

  it('wait_ctl_reply: other messages are ignored', () => {
    const c = clientAlone();
    c.client.start();
    c.out();
    c.feed({ type: T.CallDisconnectNotify, callId: 1, resultCode: 1, errorCode: 0, causeCode: 0, callStatistics: '' });
    c.feed({ type: T.IncomingCallRequest, callId: 1, callSerialNumber: 0, bearerType: 1, physicalChannelId: 0, dialedNumberLength: 0, dialingNumberLength: 0, dialedNumber: '', dialingNumber: '', subaddress: new Uint8Array(64) });
    expect(c.client.counters.unexpected).toBe(2);
    expect(c.client.state).toBe(ControlState.WaitCtlReply);
  });

  it('established: malformed bytes: StopCCRQ then close; calls cleared', () => {
    const c = clientAlone();
    c.client.start();
    c.feed(c.sccrp());
    const call = c.client.openCall();
    c.out();
    c.raw(garbage);
    expect(c.out()).toEqual([{ type: T.StopControlConnectionRequest, reason: StopReason.None }]);
    expect(call.clearReason).toBe('control-closed');
    expect(c.client.closeReason).toBe('protocol-error');
  });

  it('established: an Incoming-Call-Request is refused (Do-Not-Accept), an OCRQ too; CCRQ and SLI are ignored', () => {
    const c = clientAlone();
    c.client.start();
    c.feed(c.sccrp());
    c.out();
    c.feed({ type: T.IncomingCallRequest, callId: 77, callSerialNumber: 0, bearerType: 1, physicalChannelId: 0, dialedNumberLength: 0, dialingNumberLength: 0, dialedNumber: '', dialingNumber: '', subaddress: new Uint8Array(64) });
    c.feed(OCRQ);
    c.feed({ type: T.CallClearRequest, callId: 1 });
    c.feed({ type: T.SetLinkInfo, peerCallId: 1, sendAccm: 0, receiveAccm: 0 });
    expect(c.out()).toEqual([
      { type: T.IncomingCallReply, callId: 0, peerCallId: 77, resultCode: 3, errorCode: 0, receiveWindowSize: 64, transmitDelay: 0 },
      expect.objectContaining({ type: T.OutgoingCallReply, peerCallId: 0x4242, resultCode: OutgoingCallResult.DoNotAccept }),
    ]);
    expect(c.client.counters.unexpected).toBe(2);
  });

  it('established: WAN-Error-Notify is recorded on the call and counted', () => {
    const c = clientAlone();
    c.client.start();
    c.feed(c.sccrp());
    const call = c.client.openCall();
    c.feed({ type: T.OutgoingCallReply, callId: 9, peerCallId: call.localCallId, resultCode: 1, errorCode: 0, causeCode: 0, connectSpeed: 1, receiveWindowSize: 3, processingDelay: 0, physicalChannelId: 0 });
    c.feed({ type: T.WanErrorNotify, peerCallId: call.localCallId, crcErrors: 4, framingErrors: 3, hardwareOverruns: 2, bufferOverruns: 1, timeoutErrors: 0, alignmentErrors: 7 });
    expect(call.wanErrors).toEqual({ notifies: 1, crcErrors: 4, framingErrors: 3, hardwareOverruns: 2, bufferOverruns: 1, timeoutErrors: 0, alignmentErrors: 7 });
    expect(c.client.counters.wanErrorNotifies).toBe(1);
  });

  it('wait_stop_reply: malformed bytes close without more messages', () => {
    const c = clientAlone();
    c.client.start();
    c.feed(c.sccrp());
    c.client.stop();
    c.out();
    c.raw(garbage);
    expect(c.client.closeReason).toBe('protocol-error');
    expect(c.out()).toEqual([]);
  });
});
