/**
 * SSTP (MS-SSTP): what the rest of the gateway uses. One object per TLS
 * connection (SstpServerConnection / SstpClientConnection) over an abstract
 * transport; PPP frames go up through onPppFrame and down through
 * sendPppFrame; PPP authentication success comes in through authenticated().
 */
export { SstpServerConnection, SstpServerCall, ServerState } from './server.js';
export type { SstpServerConnectionOptions, SstpServerCallOptions } from './server.js';
export { SstpClientConnection, SstpClientCall, ClientState } from './client.js';
export type { SstpClientConnectionOptions, SstpClientCallOptions } from './client.js';
export { CallState, isPppControlFrame } from './call.js';
export type { SstpTransport, SstpCallEvents, SstpCallEnd, SstpEndReason, SstpCallStats } from './call.js';
export { certificateHashes, certificateHash, HLAK_LEN } from './binding.js';
export type { CertificateHashes } from './binding.js';
export type { SstpHttpRequest, HttpRejectStatus } from './http.js';
export { DEFAULT_TIMERS, HashProtocol, SSTP_MAX_DATA_PAYLOAD } from './constants.js';
export type { SstpTimers } from './constants.js';
export { SstpService, createProtocolServer, ServiceState } from './service.js';
export type { SstpServiceOptions } from './service.js';
export { SstpServerSession } from './server-session.js';
export type { SstpServerSessionOptions } from './server-session.js';
export { SstpStreamPath, MAX_WRITE_BACKLOG } from './datapath.js';
export { createSelfSignedCertificate, loadOrCreateCertificate, fingerprint256, parseFingerprint } from './cert.js';
export type { ServerCertificate, CertAlgorithm } from './cert.js';
