/**
 * Where the CLI finds implementations that other parts of the tree provide:
 * the local user store (src/aaa) for `users` and the demo user, and the
 * protocol clients (src/client) for `connect`.
 *
 * Each is looked up first in an in-process registry (tests, embedders), then
 * by convention in a module:
 *   - user store: `src/aaa/index.ts` exporting `openUserStore(file): Promise<UserStoreAdmin>`,
 *     else `src/aaa/user-store.ts`'s `UserStore` class through {@link adaptAaaStore};
 *   - client for scheme S: `src/client/S.ts` exporting `connect(opts: ClientOptions): Promise<void>`.
 * A missing module means "not available yet", reported as such.
 */
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { VpnError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { AuthMethod, UserAttributes } from '../ppp/auth/types.js';
import { isMissingModule } from '../admin/gateway.js';

// ---------------------------------------------------------------------------
// User store

export interface UserRecord {
  username: string;
  disabled?: boolean;
  attributes?: UserAttributes;
  /** Methods the user may use; absent: every method the stored credential allows. */
  methods?: AuthMethod[];
  /** Tunnel protocols the user may use; absent: all. */
  tunnels?: string[];
  /** What the store keeps: the cleartext password, or only its NT hash (MS-CHAPv2 and EAP-MSCHAPv2). */
  credential?: 'password' | 'nt-hash';
}

/** Restrictions given when a user is added (absent: no restriction). */
export interface UserAccess {
  /** The store keeps only the NT hash when none of these needs the cleartext password (PAP, CHAP-MD5). */
  methods?: readonly AuthMethod[];
  tunnels?: readonly string[];
}

/** The administrative side of the local user store. */
export interface UserStoreAdmin {
  list(): Promise<UserRecord[]>;
  /** Fails (VpnError ERR_USER_STORE) if the user exists. */
  add(username: string, password: string, attributes?: UserAttributes, access?: UserAccess): Promise<void>;
  /** False if there was no such user. */
  remove(username: string): Promise<boolean>;
  /** Fails (VpnError ERR_AUTH_UNKNOWN_USER) if there is no such user. Keeps the user's methods, and so how the password is stored. */
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
    if (isMissingModule(e, marker)) return undefined;
    throw e;
  }
}

/** The shape of src/aaa/user-store.ts's UserStore that the adapter below relies on. */
interface AaaStore {
  list(): { username: string; enabled: boolean; staticIpv4?: string; methods?: AuthMethod[]; tunnels?: string[]; credential?: 'password' | 'nt-hash' }[];
  get(username: string): unknown;
  add(username: string, user: { password: string; staticIpv4?: string; methods?: AuthMethod[]; tunnels?: string[] }): Promise<void>;
  del(username: string): Promise<void>;
  passwd(username: string, password: string): Promise<void>;
}
interface AaaStoreClass {
  load(file: string): Promise<AaaStore>;
  ensure(file: string, opts: { demoUser?: boolean }): Promise<{ store: AaaStore }>;
}

function isAaaStoreClass(c: unknown): c is AaaStoreClass {
  return typeof c === 'function' && typeof (c as Partial<AaaStoreClass>).load === 'function' && typeof (c as Partial<AaaStoreClass>).ensure === 'function';
}

/** Create the users file's directory (private, like the state directory `serve` makes); a permission failure says what to do. */
async function ensureDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'EACCES' || code === 'EPERM' ? ': run as root, or name a users file in a directory you can write (--file, or users.file / stateDir in --config)' : '';
    throw new VpnError('ERR_USER_STORE', `cannot create ${dir} for the users file: ${code ?? String(e)}${hint}`, { cause: e });
  }
}

/**
 * UserStoreAdmin over src/aaa's UserStore. Reading never creates the file
 * (a missing file lists no users, and `serve` still creates the demo user on
 * first start); the first edit creates it, and its directory when needed.
 */
export function adaptAaaStore(UserStore: AaaStoreClass): UserStoreOpener {
  return async (file) => {
    let cached: AaaStore | undefined;
    const existing = async (): Promise<AaaStore | undefined> => {
      if (cached) return cached;
      try {
        await access(file);
      } catch {
        return undefined;
      }
      return (cached = await UserStore.load(file));
    };
    const writable = async (): Promise<AaaStore> => {
      if (cached) return cached;
      // `vpngw users add` may come before the first `vpngw serve` made the state directory.
      await ensureDirectory(path.dirname(file));
      return (cached = (await UserStore.ensure(file, { demoUser: false })).store);
    };
    return {
      async list() {
        const s = await existing();
        return (s?.list() ?? []).map((u) => ({
          username: u.username,
          ...(u.enabled ? {} : { disabled: true }),
          ...(u.staticIpv4 !== undefined ? { attributes: { staticIpv4: u.staticIpv4 } } : {}),
          ...(u.methods ? { methods: [...u.methods] } : {}),
          ...(u.tunnels ? { tunnels: [...u.tunnels] } : {}),
          ...(u.credential ? { credential: u.credential } : {}),
        }));
      },
      async add(username, password, attributes, access) {
        const s = await writable();
        await s.add(username, {
          password,
          ...(attributes?.staticIpv4 !== undefined ? { staticIpv4: attributes.staticIpv4 } : {}),
          ...(access?.methods ? { methods: [...access.methods] } : {}),
          ...(access?.tunnels ? { tunnels: [...access.tunnels] } : {}),
        });
      },
      async remove(username) {
        const s = await existing();
        if (!s?.get(username)) return false;
        await s.del(username);
        return true;
      },
      async setPassword(username, password) {
        const s = await existing();
        if (!s?.get(username)) throw new VpnError('ERR_AUTH_UNKNOWN_USER', `no user ${username}`);
        await s.passwd(username, password);
      },
    };
  };
}

export async function findUserStore(): Promise<UserStoreOpener | undefined> {
  if (userStoreOpener) return userStoreOpener;
  const index = await importOptional('../aaa/index.js', 'aaa/index');
  if (typeof index?.openUserStore === 'function') return index.openUserStore as UserStoreOpener;
  const mod = await importOptional('../aaa/user-store.js', 'aaa/user-store');
  return isAaaStoreClass(mod?.UserStore) ? adaptAaaStore(mod.UserStore) : undefined;
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
  /** PEM file of the CA the server certificate must chain to (--ca). */
  ca?: string;
  /** Pinned SHA-256 fingerprint of the server certificate (--fingerprint). */
  fingerprint?: string;
  /** TUN device name (--tun). */
  tun?: string;
  /** Prefixes routed through the tunnel (--route, repeatable). */
  routes?: string[];
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
