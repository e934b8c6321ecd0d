/**
 * An SSTP gateway in one network namespace and room for clients in
 * another, run inside the test process (gateway-lab.ts):
 *
 *   ns A (server)                                 ns B (clients)
 *   TUN <gw 198.18.128.1/24>  veth a <S.1/24> ──── veth b <S.2/24>
 *   lo <behind.1/32>            TLS listener S.1:port (native.tcpListener in A)
 *
 * SstpService with its local user store; only the listening socket is made
 * in ns A by the native addon and handed over.
 */
import { native } from '../../src/dataplane/native.js';
import { SstpService, type SstpServiceOptions } from '../../src/sstp/service.js';
import { startTunnelLab, type TunnelLab } from './gateway-lab.js';

export { GATEWAY, USERS } from './gateway-lab.js';
export { waitUntil } from './wait.js';

export interface SstpLab extends TunnelLab<SstpService> {
  port: number;
  service: SstpService;
  fingerprint: string;
}

export async function startSstpLab(opts: { extraConfig?: string; service?: SstpServiceOptions; maxSessions?: number } = {}): Promise<SstpLab> {
  const L = await startTunnelLab({
    name: 'sstp',
    tunPrefix: 'tsv',
    maxSessions: opts.maxSessions ?? 256,
    sections: (link) => `
auth: {sstp: [mschapv2, eap-mschapv2, pap, chap-md5]}
sstp: {listen: ${link.host(1)}, port: 443}
limits: {maxSessionsPerUser: 200, maxHalfOpenPerSource: 256, authFailuresPerSourcePerMinute: 1000}
${opts.extraConfig ?? ''}`,
    servers: (a, link) => {
      const fd = native.tcpListener({ netns: a.name, address: link.host(1), port: 443, backlog: 1024 });
      return [new SstpService({ listenFd: fd, certNames: [link.host(1)], ...opts.service })];
    },
  });
  const service = L.servers[0]!;
  return { ...L, port: 443, service, fingerprint: service.certificate!.fingerprint256 };
}
