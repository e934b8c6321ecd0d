/**
 * The real PPTP gateway for the interop test, in the guest link's namespace
 * (interop-gateway.ts): the control listener on link.hostAddr:1723 and the
 * raw GRE socket (IP protocol 47) are both opened in link.ns, so the guest's
 * GRE reaches the data plane directly.
 *
 *   guest (pptp + pppd, or our client)        link.ns
 *   eth <guestAddr> ═══ TCP 1723 ════════════ PptpService (control, this process)
 *                   ═══ GRE (proto 47) ══════ raw socket ─► WASM data plane (MPPE) ─► TUN <inner.gateway>
 *
 * Policy as the task asks of a stock deployment: MS-CHAPv2 only, MPPE
 * required at 128 bits, stateless mode allowed when the client asks (pppd's
 * default; `mppe-stateful` lets it accept stateful). A scenario may change the
 * MPPE strengths and stateless mode for the sessions it starts ({@link
 * PptpInteropGateway.setMppe}).
 */
import { native } from '../../src/dataplane/native.js';
import { PptpService } from '../../src/pptp/service.js';
import type { MppeBits } from '../../src/ppp/ccp/mppe.js';
import type { NetLab } from '../lib/netns.js';
import type { GuestLink } from './guest/guest.js';
import { startGatewayOnLink, type InteropGatewayBase } from './interop-gateway.js';

export { INTEROP_USERS, type LogRecord } from './interop-gateway.js';

export interface PptpInteropGateway extends InteropGatewayBase {
  service: PptpService;
  port: number;
  /**
   * The MPPE policy for sessions from now on: mppe.stateless (allow stateless
   * MPPE and ask for it, or not) and mppe.strengths, applied as a reload
   * (SIGHUP) applies them; no reload when nothing changes.
   */
  setMppe(mppe: GatewayMppe): void;
}

/** What a scenario sets of the gateway's `mppe` section. */
export interface GatewayMppe {
  stateless: boolean;
  strengths: readonly MppeBits[];
}

/** The `mppe` section the gateway starts with (and every scenario had before strengths were per scenario). */
export const GATEWAY_MPPE_DEFAULT: Readonly<GatewayMppe> = { stateless: true, strengths: [128] };

export interface PptpGatewayOptions {
  /** LCP Echo-Request interval of the gateway (config pptp.lcpEchoInterval), e.g. '1s'; default the config's. */
  lcpEchoInterval?: string;
  /** Control-connection Echo-Request interval and reply timeout (pptp.echoInterval, pptp.echoTimeout), e.g. '2s'. */
  echoInterval?: string;
  echoTimeout?: string;
  echoLog?: boolean;
}

export const PPTP_PORT = 1723;

export async function startPptpGateway(lab: NetLab, link: GuestLink, opts: PptpGatewayOptions = {}): Promise<PptpInteropGateway> {
  const keys = [
    `enabled: true`,
    `listen: ${link.hostAddr}`,
    `port: ${PPTP_PORT}`,
    ...(opts.lcpEchoInterval ? [`lcpEchoInterval: ${opts.lcpEchoInterval}`] : []),
    ...(opts.echoInterval ? [`echoInterval: ${opts.echoInterval}`] : []),
    ...(opts.echoTimeout ? [`echoTimeout: ${opts.echoTimeout}`] : []),
  ];
  const gw = await startGatewayOnLink(lab, link, {
    sections: `
auth: {pptp: [mschapv2]}
mppe: {policy: require, strengths: [${GATEWAY_MPPE_DEFAULT.strengths.join(', ')}], stateless: ${GATEWAY_MPPE_DEFAULT.stateless}}
sstp: {enabled: false}
pptp: {${keys.join(', ')}}
`,
    servers: () => {
      const fd = native.tcpListener({ netns: link.netns, address: link.hostAddr, port: PPTP_PORT, backlog: 64 });
      return [new PptpService({ listenFd: fd, netns: link.netns })];
    },
    ...(opts.echoLog !== undefined ? { echoLog: opts.echoLog } : {}),
  });
  return {
    ...gw,
    service: gw.servers[0]!,
    port: PPTP_PORT,
    setMppe({ stateless, strengths }) {
      const cfg = gw.gateway.ctx.config();
      const same = cfg.mppe.stateless === stateless && cfg.mppe.strengths.join() === strengths.join();
      if (!same) gw.gateway.reload({ ...cfg, mppe: { ...cfg.mppe, stateless, strengths: [...strengths] } });
    },
  };
}
