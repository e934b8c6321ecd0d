/**
 * The PPTP protocol server as `vpngw serve` finds it (src/admin/gateway.ts
 * findProtocolServer: `src/<protocol>/server.js` exporting
 * createProtocolServer). The implementation is ./service.ts.
 */
export { createProtocolServer, PptpService, type PptpServiceOptions } from './service.js';
