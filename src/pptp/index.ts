/**
 * PPTP (RFC 2637) control plane: control-message codec and deframer,
 * control connection (PAC server and PNS client roles), calls, Call ID
 * allocation, and the enhanced-GRE reference codec for the data plane.
 */
export * from './codec.js';
export * from './gre.js';
export { CallIdAllocator, type CallIdRange } from './callid.js';
export {
  CallState,
  PNS_MAXIMUM_BPS,
  PNS_MINIMUM_BPS,
  PptpCall,
  type CallClearReason,
  type CallHost,
  type CallInfo,
  type CallParams,
  type CallRole,
  type OutgoingCallOptions,
  type WanErrors,
} from './call.js';
export {
  CALL_SETUP_TIMEOUT_MS,
  DEFAULT_CONNECT_SPEED,
  ECHO_INTERVAL_MS,
  ECHO_REPLY_TIMEOUT_MS,
  FIRMWARE_REVISION,
  HOST_NAME,
  MAX_CALLS_PER_CONNECTION,
  RECEIVE_WINDOW_SIZE,
  REPLY_TIMEOUT_MS,
  SERVER_HANDSHAKE_TIMEOUT_MS,
  VENDOR_NAME,
  ControlConnection,
  ControlState,
  PptpClientConnection,
  PptpServerConnection,
  type CallAdmission,
  type ControlCloseReason,
  type ControlConnectionOptions,
  type ControlCounters,
  type ControlEvents,
  type ControlTransport,
  type PeerInfo,
  type PptpClientOptions,
  type PptpServerOptions,
} from './control.js';
