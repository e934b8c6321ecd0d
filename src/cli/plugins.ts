/**
 * Where the CLI finds implementations that other parts of the tree provide:
 * the local user store (src/aaa) for `users` and the demo user, and the
 * protocol clients (src/client) for `connect`.
 *
 * Each is looked up first in an in-process registry (tests, embedders), then
 * by convention in a module:
 *   - user store: `src/aaa/index.ts` exporting `openUserStore(file): Promise<UserStoreAdmin>`;
 *   - client for scheme S: `src/client/S.ts` exporting `connect(opts: ClientOptions): Promise<void>`.
 * A missing module means "not available yet", reported as such.
 */
import type { Logger } from '../util/log.js';
import type { UserAttributes } from '../ppp/auth/types.js';

// ---------------------------------------------------------------------------
// User store

export interface UserRecord {
  username: string;
  disabled?: boolean;
  attributes?: UserAttributes;
}

/** The administrative side of the local user store. */
export interface UserStoreAdmin {
  list(): Promise<UserRecord[]>;
  /** Fails (VpnError ERR_USER_STORE) if the user exists. */
  add(username: string, password: string, attributes?: UserAttributes): Promise<void>;
  /** False if there was no such user. */
  remove(username: string): Promise<boolean>;
  /** Fails (VpnError ERR_AUTH_UNKNOWN_USER) if there is no such user. */
  setPassword(username: string, password: string): Promise<void>;
}

export type UserStoreOpener = (file: string) => Promise<UserStoreAdmin>;

let userStoreOpener: UserStoreOpener | undefined;

export function registerUserStore(opener: UserStoreOpener | undefined): void {
  userStoreOpener = opener;
}

/** Dynamic import of a conventional module; undefined when it does not exist. */
async function importOptional(specifier: string, marker: string): Promise<Record<string, unknown> | undefined> {
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === undefined) && String((e as Error).message).includes(marker)) return undefined;
    throw e;
  }
}

export async function findUserStore(): Promise<UserStoreOpener | undefined> {
  if (userStoreOpener) return userStoreOpener;
  const mod = await importOptional('../aaa/index.js', 'aaa/index');
  return typeof mod?.openUserStore === 'function' ? (mod.openUserStore as UserStoreOpener) : undefined;
}

// ---------------------------------------------------------------------------
// Protocol clients

/** URL schemes `vpngw connect` understands (each needs a client implementation). */
export const CLIENT_SCHEMES = ['sstp', 'pptp', 'l2tp'] as const;
export type ClientScheme = (typeof CLIENT_SCHEMES)[number];

export interface ClientOptions {
  url: URL;
  username: string;
  password: string;
  log: Logger;
  /** Aborted on SIGINT/SIGTERM: disconnect cleanly and resolve. */
  signal: AbortSignal;
  /** Progress for the operator (stderr). */
  progress(message: string): void;
}

/** Connect, stay connected until the signal aborts or the server disconnects; rejects with a VpnError on failure. */
export type ClientConnect = (opts: ClientOptions) => Promise<void>;

const clients = new Map<ClientScheme, ClientConnect>();

export function registerClient(scheme: ClientScheme, connect: ClientConnect | undefined): void {
  if (connect) clients.set(scheme, connect);
  else clients.delete(scheme);
}

export async function findClient(scheme: ClientScheme): Promise<ClientConnect | undefined> {
  const registered = clients.get(scheme);
  if (registered) return registered;
  const mod = await importOptional(`../client/${scheme}.js`, `client/${scheme}`);
  return typeof mod?.connect === 'function' ? (mod.connect as ClientConnect) : undefined;
}
