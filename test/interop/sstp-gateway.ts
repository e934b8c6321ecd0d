/**
 * The real SSTP gateway for the interop tests, run inside the test process
 * but living in the guest link's namespace: its TUN device and its TLS
 * listener are there, so the qemu guest reaches it on the tap directly, and
 * nothing depends on routing back to the test process's namespace.
 *
 *   guest (sstpc + pppd, or our client)      link.ns (namespace of the tap)
 *   eth <link.guestAddr> ═══ tap ═══════════ <link.hostAddr>:443  TLS listener (native.tcpListener)
 *   ppp0 / TUN <pool address> ◄─ SSTP ─►     TUN <inner.gateway>/24 (the gateway's inner address)
 *
 * The gateway is assembled as `vpngw serve` does it (interop-gateway.ts),
 * with SstpService and its self-signed certificate naming link.hostAddr.
 * Everything it logs at debug level is kept as JSON records, so a test can
 * check what the server saw (crypto binding verified, session up, methods).
 */
import { readFileSync } from 'node:fs';
import type { AuthMethod } from '../../src/ppp/auth/types.js';
import { native } from '../../src/dataplane/native.js';
import { SstpService } from '../../src/sstp/service.js';
import type { NetLab } from '../lib/netns.js';
import type { GuestLink } from './guest/guest.js';
import { startGatewayOnLink, type InteropGatewayBase } from './interop-gateway.js';

export { INTEROP_USERS, type LogRecord } from './interop-gateway.js';

export interface InteropGateway extends InteropGatewayBase {
  service: SstpService;
  port: number;
  /** SHA-256 fingerprint of the certificate (colon-separated hex, as node prints it). */
  fingerprint: string;
  certPem: string;
  /** The certificate file (visible to the guest at the same path). */
  certFile: string;
}

export interface InteropGatewayOptions {
  /** Server methods in order of preference (default: MS-CHAPv2, EAP-MSCHAPv2, PAP). */
  methods?: readonly AuthMethod[];
  /** SSTP Hello interval (config sstp.helloInterval), e.g. '2s'; default the config's. */
  helloInterval?: string;
  /** Also echo the log to stderr (VPNGW_TEST_LOG=1 does too). */
  echoLog?: boolean;
}

/**
 * Start the gateway in `link.ns`, listening on `link.hostAddr:443`, with an
 * inner network of its own from the lab.
 */
export async function startInteropGateway(lab: NetLab, link: GuestLink, opts: InteropGatewayOptions = {}): Promise<InteropGateway> {
  const methods = opts.methods ?? ['mschapv2', 'eap-mschapv2', 'pap'];
  const gw = await startGatewayOnLink(lab, link, {
    sections: `
auth: {sstp: [${methods.join(', ')}]}
sstp: {listen: ${link.hostAddr}, port: 443${opts.helloInterval ? `, helloInterval: ${opts.helloInterval}` : ''}}
`,
    servers: () => {
      const fd = native.tcpListener({ netns: link.netns, address: link.hostAddr, port: 443, backlog: 64 });
      // The certificate names the address sstpc connects to (it checks the common name).
      return [new SstpService({ listenFd: fd, certNames: [link.hostAddr] })];
    },
    ...(opts.echoLog !== undefined ? { echoLog: opts.echoLog } : {}),
  });
  const service = gw.servers[0]!;
  const cert = service.certificate!;
  return {
    ...gw,
    service,
    port: 443,
    fingerprint: cert.fingerprint256,
    certPem: cert.certPem,
    certFile: gw.config.sstp.certificate!,
  };
}

/** The certificate file's PEM, read back (what the guest will read). */
export function readPem(file: string): string {
  return readFileSync(file, 'utf8');
}
