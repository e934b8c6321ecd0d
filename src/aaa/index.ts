/** Authentication, authorization (and later accounting): the local user store and the verifiers over it. */
export {
  UserStore,
  UserStoreError,
  checkUserStore,
  allowedMethods,
  TUNNELS,
  USER_METHODS,
  CLEARTEXT_METHODS,
  MPPE_POLICIES,
  type Tunnel,
  type MppePolicy,
  type UserRecord,
  type UserSummary,
  type UserFields,
  type NewUser,
  type ReloadResult,
  type StoreCheck,
} from './user-store.js';
export { LocalVerifier, secretsEqual, type LocalVerifierOptions } from './local-verifier.js';
export { FailureLimiter, type FailureLimiterOptions, type LimitVerdict } from './rate-limit.js';
export { throttleVerifier, sourceOf, DEFAULT_FAILURE_DELAY_MS, type ThrottleOptions } from './throttle.js';
export { ReloadableLocalVerifier, openGatewayVerifier, sessionPolicyVerifier, type GatewayVerifier, type SessionPolicy } from './gateway-verifier.js';
