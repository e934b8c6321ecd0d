/**
 * The PPP engine (RFC 1661 and its NCPs), transport-agnostic: what the
 * tunnels (SSTP, PPTP, L2TP) and the client use. One {@link PppSession} per
 * link; frames in through `input()`, out through the `send` option.
 */
export {
  PppSession,
  Phase,
  PPP_DOWN_REASONS,
  DEFAULT_AUTH_FACTORY,
  DEFAULT_AUTH_TIMEOUT_MS,
  type PppSessionOptions,
  type ServerSessionOptions,
  type ClientSessionOptions,
  type ServerAuthOptions,
  type ClientAuthOptions,
  type ServerIpcpOptions,
  type ClientIpcpOptions,
  type PppSessionEvents,
  type PppUpInfo,
  type PppDownInfo,
  type PppDownReason,
  type PppDropReason,
  type PppCounters,
  type AuthFactory,
  type TunnelKind,
} from './session.js';
export { decodeFrame, encodeFrame, frameHeaderLength, isValidProtocol, NO_COMPRESSION, type PppFrame, type FrameFlags } from './frame.js';
export { Code, PPP_IPV4, PPP_IPV6, PPP_COMPRESSED, PPP_LCP, PPP_IPCP, PPP_IPV6CP, PPP_CCP, PPP_PAP, PPP_CHAP, PPP_EAP, protocolName } from './protocols.js';
export { DEFAULT_FSM_TIMERS, type FsmTimers } from './fsm.js';
export { DEFAULT_ECHO_INTERVAL_MS, DEFAULT_ECHO_FAILURES } from './lcp/lcp.js';
export { DEFAULT_MRU, MIN_MRU } from './lcp/options.js';
export type { IpcpResult, NameServers } from './ipcp/ipcp.js';
export { linkLocalAddress, type Ipv6cpResult } from './ipv6cp/ipv6cp.js';
export { DEFAULT_MPPE_POLICY, type MppePolicy, type MppePolicyName, type MppeBits, type MppeSession } from './ccp/mppe.js';
