/**
 * A PPTP gateway in one network namespace and room for clients in others,
 * run inside the test process (gateway-lab.ts):
 *
 *   ns A (server)                                     ns B (clients)
 *   TUN <gw 198.18.128.1/24>  veth a <S.1/24> ──────── veth b <S.2/24>
 *   lo <behind.1/32>   TCP 1723 on 0.0.0.0 and the raw GRE socket, both in A
 *
 * PptpService with its local user store; the service opens its listener and
 * raw GRE socket in ns A (`netns` option). Tests add namespaces (NAT, relay)
 * with {@link PptpLab.link2}.
 */
import { PptpService, type PptpServiceOptions } from '../../src/pptp/service.js';
import { startTunnelLab, type TunnelLab } from './gateway-lab.js';

export { GATEWAY, USERS, bulkTransfer, labSubnet } from './gateway-lab.js';
export { waitUntil } from './wait.js';

export interface PptpLab extends TunnelLab<PptpService> {
  service: PptpService;
}

export async function startPptpLab(
  opts: { extraConfig?: string; /** More keys of the `pptp` section, e.g. `lcpEchoInterval: 1s`. */ pptp?: string; service?: PptpServiceOptions; maxSessions?: number } = {},
): Promise<PptpLab> {
  const L = await startTunnelLab({
    name: 'pptp',
    tunPrefix: 'tpv',
    maxSessions: opts.maxSessions ?? 64,
    sections: () => `
sstp: {enabled: false}
pptp: {enabled: true, listen: 0.0.0.0, port: 1723${opts.pptp ? `, ${opts.pptp}` : ''}}
limits: {maxSessionsPerUser: 16, maxHalfOpenPerSource: 64, authFailuresPerSourcePerMinute: 1000}
${opts.extraConfig ?? ''}`,
    servers: (a) => [new PptpService({ netns: a.name, ...opts.service })],
  });
  return { ...L, service: L.servers[0]! };
}
