/**
 * PPP authentication protocols: one instance per session and role, created
 * when LCP has agreed on the method (which methods are offered, in which
 * order, is the PPP core's decision).
 *
 *   method         PPP protocol        LCP Authentication-Protocol option
 *   pap            0xc023 (RFC 1334)   c0 23
 *   chap-md5       0xc223 (RFC 1994)   c2 23 05
 *   mschapv2       0xc223 (RFC 2759)   c2 23 81
 *   eap-mschapv2   0xc227 (RFC 3748)   c2 27
 */
import type { AuthHost, AuthMethod, AuthProtocol, ClientCredentials, Verifier, VerifyContext } from './types.js';
import type { AuthTiming } from './machine.js';
import { PapClient, PapServer } from './pap.js';
import { ChapMd5Client, ChapMd5Server } from './chap-md5.js';
import { MsChapV2Client, MsChapV2Server } from './mschapv2.js';
import { EapClient, EapServer } from './eap.js';

export * from './types.js';
export { DEFAULT_AUTH_TIMING, type AuthTiming } from './machine.js';
export {
  deriveMppeMasterKeys,
  getAsymmetricStartKey,
  getMasterKey,
  getNewKeyFromSha,
  initialSessionKey,
  mppeKeyLength,
  mppeSessionKeys,
  msChapV2Hlak,
  eapMsChapV2Msk,
  hlakFromMsk,
  nextSessionKey,
  reduceSessionKey,
  startKeyFor,
  type MppeBits,
  type MppeDirection,
  type MppeRole,
} from './mppe-keys.js';
export { ntPasswordHash, verifyMsChapV2Response, stripDomain } from './mschapv2-crypto.js';
export { chapMd5Response } from './chap-md5.js';
export { PapClient, PapServer, ChapMd5Client, ChapMd5Server, MsChapV2Client, MsChapV2Server, EapClient, EapServer };

/** CHAP Algorithm octets of the LCP Authentication-Protocol option (RFC 1994 2.1, RFC 2759 2). */
export const CHAP_ALGORITHM = { 'chap-md5': 0x05, mschapv2: 0x81 } as const;

export function createAuthServer(
  method: AuthMethod,
  host: AuthHost,
  opts: { verifier: Verifier; ctx: VerifyContext; serverName: string; timing?: Partial<AuthTiming> },
): AuthProtocol {
  switch (method) {
    case 'pap':
      return new PapServer(host, opts);
    case 'chap-md5':
      return new ChapMd5Server(host, opts);
    case 'mschapv2':
      return new MsChapV2Server(host, opts);
    case 'eap-mschapv2':
      return new EapServer(host, opts);
  }
}

export function createAuthClient(
  method: AuthMethod,
  host: AuthHost,
  opts: { credentials: ClientCredentials; hostName?: string; timing?: Partial<AuthTiming> },
): AuthProtocol {
  switch (method) {
    case 'pap':
      return new PapClient(host, opts);
    case 'chap-md5':
      return new ChapMd5Client(host, opts);
    case 'mschapv2':
      return new MsChapV2Client(host, opts);
    case 'eap-mschapv2':
      return new EapClient(host, opts);
  }
}
