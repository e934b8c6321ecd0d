/**
 * The local user store: a YAML (or JSON) file of users, validated with zod
 * (every problem reported with its path), held in memory as an immutable
 * map that {@link UserStore.reload} swaps atomically. Sessions keep what
 * they were given at authentication, so a reload never drops one; a file
 * that does not validate leaves the old store in place.
 *
 * File format (YAML; the same structure in JSON when the name ends in .json):
 *
 *   version: 1
 *   users:
 *     alice:
 *       password: "wonderland"        # cleartext: every method works
 *       staticIpv4: 198.18.128.10     # optional: always this inner address
 *       tunnels: [sstp, l2tp]         # optional: default all
 *       methods: [mschapv2, eap-mschapv2]   # optional: default all the credential allows
 *       mppe: require                 # optional: deny | allow | require
 *       maxSessions: 2                # optional
 *       enabled: true                 # optional, default true
 *       expires: 2027-01-01           # optional: password expired from then (00:00 UTC for a date)
 *     bob:
 *       ntHash: 44ebba8d5312b8d611474411f56989ae   # MD4(UTF-16LE(password)): MS-CHAPv2 and EAP-MSCHAPv2 only
 *
 * Exactly one of password and ntHash. PAP and CHAP-MD5 need the cleartext
 * password; MS-CHAPv2 needs only the NT hash (RFC 2759 8.3), which is what
 * {@link UserStore.add} / {@link UserStore.passwd} store when the user's
 * methods do not include PAP or CHAP-MD5.
 *
 * Edits (add, del, passwd, update) re-read the file, apply the change to it
 * (YAML comments are kept), validate the result, write it atomically
 * (temporary file, mode 0600, rename) and swap the in-memory store.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Document, isMap, parseDocument } from 'yaml';
import { z } from 'zod';
import { VpnError, type ConfigIssue } from '../util/errors.js';
import type { AuthMethod } from '../ppp/auth/types.js';
import { ntPasswordHash } from '../ppp/auth/mschapv2-crypto.js';
import { parseIpv4 } from '../pool/ipv4.js';

// From the specs / the product.
export const TUNNELS = ['sstp', 'pptp', 'l2tp'] as const;
export type Tunnel = (typeof TUNNELS)[number];
export const USER_METHODS = ['pap', 'chap-md5', 'mschapv2', 'eap-mschapv2'] as const satisfies readonly AuthMethod[];
/** Methods that need the cleartext password (RFC 1334, RFC 1994); the others need only the NT hash. */
export const CLEARTEXT_METHODS: readonly AuthMethod[] = ['pap', 'chap-md5'];
export const MPPE_POLICIES = ['deny', 'allow', 'require'] as const;
export type MppePolicy = (typeof MPPE_POLICIES)[number];

// Our choices.
/** PAP and CHAP carry the name in one-octet-length or bounded fields: 255 octets. */
const MAX_USERNAME_OCTETS = 255;
/** RFC 2759 8.3: passwords of up to 256 Unicode characters. */
const MAX_PASSWORD_CHARS = 256;

export interface UserRecord {
  readonly username: string;
  /** Cleartext password, when the file holds one. */
  readonly password?: string;
  /** MD4(UTF-16LE(password)): from the file, or derived from the password. */
  readonly ntHash: Uint8Array;
  readonly enabled: boolean;
  readonly staticIpv4?: string;
  readonly tunnels?: readonly Tunnel[];
  readonly methods?: readonly AuthMethod[];
  readonly mppe?: MppePolicy;
  readonly maxSessions?: number;
  /** Password expiry, epoch milliseconds. */
  readonly expiresAt?: number;
  readonly expires?: string;
}

/** What `users list` shows: everything but secrets. */
export interface UserSummary {
  username: string;
  credential: 'password' | 'nt-hash';
  enabled: boolean;
  staticIpv4?: string;
  tunnels?: Tunnel[];
  methods?: AuthMethod[];
  mppe?: MppePolicy;
  maxSessions?: number;
  expires?: string;
}

/** Fields of a user as written in the file (what add/update accept, besides the credential). */
export interface UserFields {
  enabled?: boolean;
  staticIpv4?: string;
  tunnels?: Tunnel[];
  methods?: AuthMethod[];
  mppe?: MppePolicy;
  maxSessions?: number;
  expires?: string;
}

export class UserStoreError extends VpnError {
  readonly issues: readonly ConfigIssue[];
  constructor(source: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n');
    super('ERR_USER_STORE', `${source} is invalid (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines}`, { details: { issues } });
    this.issues = issues;
  }
}

const usernameSchema = z.string().refine(
  (s) => s.length > 0 && Buffer.byteLength(s, 'utf8') <= MAX_USERNAME_OCTETS && !/[\u0000-\u001f\u007f]/.test(s) && s.trim() === s,
  { error: `a user name is 1..${MAX_USERNAME_OCTETS} octets of UTF-8, without control characters or surrounding spaces` },
);

const expirySchema = z
  .string({ error: 'expected a date like 2027-01-01 or a timestamp like 2027-01-01T12:00:00Z' })
  .refine((s) => /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)), {
    error: 'expected a date like 2027-01-01 or a timestamp like 2027-01-01T12:00:00Z',
  });

const userSchema = z
  .object(
    {
      password: z
        .string({ error: 'expected a string (quote a password YAML would read as a number or boolean)' })
        .min(1, { error: 'an empty password is not allowed' })
        .max(MAX_PASSWORD_CHARS, { error: `at most ${MAX_PASSWORD_CHARS} characters (RFC 2759 8.3)` })
        .optional(),
      ntHash: z
        .string({ error: 'expected 32 hexadecimal digits, quoted' })
        .regex(/^[0-9a-fA-F]{32}$/, { error: 'expected 32 hexadecimal digits (MD4 of the UTF-16LE password)' })
        .optional(),
      enabled: z.boolean({ error: 'expected true or false' }).default(true),
      staticIpv4: z
        .string({ error: 'expected a dotted-quad IPv4 address' })
        .refine((s) => parseIpv4(s) !== undefined, { error: 'expected a dotted-quad IPv4 address' })
        .optional(),
      tunnels: z
        .array(z.enum(TUNNELS, { error: `expected one of ${TUNNELS.join(', ')}` }), { error: 'expected a list of tunnel protocols' })
        .min(1, { error: 'an empty list would lock the user out; remove the key to allow all' })
        .optional(),
      methods: z
        .array(z.enum(USER_METHODS, { error: `expected one of ${USER_METHODS.join(', ')}` }), { error: 'expected a list of authentication methods' })
        .min(1, { error: 'an empty list would lock the user out; remove the key to allow all' })
        .optional(),
      mppe: z.enum(MPPE_POLICIES, { error: `expected one of ${MPPE_POLICIES.join(', ')}` }).optional(),
      maxSessions: z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' }).min(1).max(65536).optional(),
      expires: expirySchema.optional(),
    },
    { error: 'expected a mapping of user settings' },
  )
  .strict()
  .superRefine((u, ctx) => {
    if (u.password === undefined && u.ntHash === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give a password or an ntHash' });
    }
    if (u.password !== undefined && u.ntHash !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['ntHash'], message: 'give a password or an ntHash, not both' });
    }
    if (u.password === undefined && u.ntHash !== undefined) {
      const clear = (u.methods ?? []).filter((m) => CLEARTEXT_METHODS.includes(m));
      if (clear.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['methods'], message: `${clear.join(' and ')} need the cleartext password; this user has only an NT hash` });
      }
    }
  });

const storeSchema = z
  .object(
    {
      version: z.literal(1, { error: 'the only user store version is 1' }).default(1),
      users: z.preprocess((v) => v ?? {}, z.record(usernameSchema, userSchema, { error: 'expected a mapping of user names to users' })),
    },
    { error: 'expected a mapping with a `users` key' },
  )
  .strict();

type StoreFile = z.output<typeof storeSchema>;

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function zodIssues(error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of error.issues) {
    if (iss.code === 'unrecognized_keys') for (const k of iss.keys) out.push({ path: formatPath([...iss.path, k]), message: 'unknown key' });
    else if (iss.code === 'invalid_key') out.push({ path: formatPath(iss.path), message: iss.issues[0]?.message ?? iss.message });
    else out.push({ path: formatPath(iss.path), message: iss.message });
  }
  return out;
}

export type StoreCheck = { ok: true; users: ReadonlyMap<string, UserRecord> } | { ok: false; issues: ConfigIssue[] };

/** Validate a parsed store object and build its records; every problem at once. */
export function checkUserStore(input: unknown): StoreCheck {
  const r = storeSchema.safeParse(input ?? {});
  if (!r.success) return { ok: false, issues: zodIssues(r.error) };
  const issues: ConfigIssue[] = [];
  const byAddress = new Map<string, string>();
  const users = new Map<string, UserRecord>();
  for (const [username, u] of Object.entries(r.data.users)) {
    if (u.staticIpv4 !== undefined) {
      const other = byAddress.get(u.staticIpv4);
      if (other !== undefined) issues.push({ path: `users.${username}.staticIpv4`, message: `${u.staticIpv4} is also the static address of ${other}` });
      else byAddress.set(u.staticIpv4, username);
    }
    users.set(username, toRecord(username, u));
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, users };
}

function toRecord(username: string, u: StoreFile['users'][string]): UserRecord {
  const ntHash = u.ntHash !== undefined ? new Uint8Array(Buffer.from(u.ntHash, 'hex')) : ntPasswordHash(u.password!);
  return Object.freeze({
    username,
    ...(u.password !== undefined ? { password: u.password } : {}),
    ntHash,
    enabled: u.enabled,
    ...(u.staticIpv4 !== undefined ? { staticIpv4: u.staticIpv4 } : {}),
    ...(u.tunnels ? { tunnels: Object.freeze([...new Set(u.tunnels)]) } : {}),
    ...(u.methods ? { methods: Object.freeze([...new Set(u.methods)]) } : {}),
    ...(u.mppe !== undefined ? { mppe: u.mppe } : {}),
    ...(u.maxSessions !== undefined ? { maxSessions: u.maxSessions } : {}),
    ...(u.expires !== undefined ? { expires: u.expires, expiresAt: Date.parse(u.expires) } : {}),
  });
}

/** The methods a user may use: the listed ones, or every method the stored credential allows. */
export function allowedMethods(u: UserRecord): readonly AuthMethod[] {
  if (u.methods) return u.methods;
  return u.password !== undefined ? USER_METHODS : USER_METHODS.filter((m) => !CLEARTEXT_METHODS.includes(m));
}

type Format = 'yaml' | 'json';

function formatOf(file: string): Format {
  return path.extname(file).toLowerCase() === '.json' ? 'json' : 'yaml';
}

interface Parsed {
  data: unknown;
  /** YAML document (edits keep comments); undefined for JSON. */
  doc: Document | undefined;
}

function parseText(text: string, format: Format): Parsed | ConfigIssue[] {
  if (format === 'json') {
    try {
      return { data: JSON.parse(text) as unknown, doc: undefined };
    } catch (e) {
      return [{ path: '', message: `not valid JSON: ${(e as Error).message}` }];
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    // With prettyErrors (the default) the first line of the message ends with "at line L, column C:".
    return doc.errors.map((e) => ({ path: '', message: `YAML ${e.code}: ${e.message.split('\n')[0]!.replace(/:$/, '')}` }));
  }
  return { data: doc.toJS() as unknown, doc };
}

export type ReloadResult = { ok: true; users: number } | { ok: false; issues: ConfigIssue[] };

/** A new user: the password, how to store it follows from the methods. */
export interface NewUser extends UserFields {
  password: string;
}

const HEADER = '# vpngw user store (see src/aaa/user-store.ts for the format). Keep it private: mode 0600.\n';

export class UserStore {
  private users: ReadonlyMap<string, UserRecord>;
  private edits: Promise<unknown> = Promise.resolve();
  /** In-memory stores (no file) keep their object here. */
  private memory: unknown;

  private constructor(
    readonly file: string | undefined,
    users: ReadonlyMap<string, UserRecord>,
    memory?: unknown,
  ) {
    this.users = users;
    this.memory = memory;
  }

  /** Load a store file; throws {@link UserStoreError} listing every problem (or when it cannot be read). */
  static async load(file: string): Promise<UserStore> {
    const r = await UserStore.read(file);
    if (!r.ok) throw new UserStoreError(`user store ${file}`, r.issues);
    return new UserStore(file, r.users);
  }

  /** An in-memory store (tests, embedding); edits stay in memory. Throws {@link UserStoreError}. */
  static fromObject(input: unknown): UserStore {
    const r = checkUserStore(input);
    if (!r.ok) throw new UserStoreError('user store', r.issues);
    return new UserStore(undefined, r.users, structuredClone(input ?? {}));
  }

  /**
   * First start: create an empty store file (mode 0600) if there is none,
   * optionally with a user `demo` whose generated password is returned once
   * (the caller prints it; it is never logged). Then load it.
   */
  static async ensure(file: string, opts: { demoUser?: boolean } = {}): Promise<{ store: UserStore; created: boolean; demoPassword?: string }> {
    let exists = true;
    try {
      await readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserStoreError(`user store ${file}`, [{ path: '', message: `cannot read: ${(e as Error).message}` }]);
      exists = false;
    }
    if (exists) return { store: await UserStore.load(file), created: false };
    const demoPassword = opts.demoUser ? randomBytes(12).toString('base64url') : undefined;
    const body = { version: 1, users: demoPassword ? { demo: { password: demoPassword } } : {} };
    await writeAtomic(file, formatOf(file) === 'json' ? JSON.stringify(body, null, 2) + '\n' : HEADER + yamlText(body));
    return { store: await UserStore.load(file), created: true, ...(demoPassword ? { demoPassword } : {}) };
  }

  private static async read(file: string): Promise<StoreCheck & { parsed?: Parsed }> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      return { ok: false, issues: [{ path: '', message: `cannot read: ${(e as Error).message}` }] };
    }
    const parsed = parseText(text, formatOf(file));
    if (Array.isArray(parsed)) return { ok: false, issues: parsed };
    const r = checkUserStore(parsed.data);
    return r.ok ? { ...r, parsed } : r;
  }

  get size(): number {
    return this.users.size;
  }

  get(username: string): UserRecord | undefined {
    return this.users.get(username);
  }

  list(): UserSummary[] {
    return [...this.users.values()]
      .sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0))
      .map((u) => ({
        username: u.username,
        credential: u.password !== undefined ? 'password' : 'nt-hash',
        enabled: u.enabled,
        ...(u.staticIpv4 !== undefined ? { staticIpv4: u.staticIpv4 } : {}),
        ...(u.tunnels ? { tunnels: [...u.tunnels] } : {}),
        ...(u.methods ? { methods: [...u.methods] } : {}),
        ...(u.mppe !== undefined ? { mppe: u.mppe } : {}),
        ...(u.maxSessions !== undefined ? { maxSessions: u.maxSessions } : {}),
        ...(u.expires !== undefined ? { expires: u.expires } : {}),
      }));
  }

  /**
   * Re-read the file and swap the store atomically. A file that does not
   * validate keeps the old store and returns every problem.
   */
  async reload(): Promise<ReloadResult> {
    if (!this.file) return { ok: true, users: this.users.size };
    const r = await UserStore.read(this.file);
    if (!r.ok) return { ok: false, issues: r.issues };
    this.users = r.users;
    return { ok: true, users: r.users.size };
  }

  /** Add a user; throws {@link UserStoreError} if it exists or the result would not validate. */
  add(username: string, user: NewUser): Promise<void> {
    return this.edit((data) => {
      const users = usersOf(data);
      if (Object.hasOwn(users, username)) return [{ path: `users.${username}`, message: 'user exists' }];
      const { password, ...fields } = user;
      users[username] = { ...credentialFor(password, fields.methods), ...definedOnly(fields) };
      return [];
    });
  }

  /** Remove a user (sessions already up are not touched). */
  del(username: string): Promise<void> {
    return this.edit((data) => {
      const users = usersOf(data);
      if (!Object.hasOwn(users, username)) return [{ path: `users.${username}`, message: 'no such user' }];
      delete users[username];
      return [];
    });
  }

  /** Set a new password, stored as an NT hash when the user's methods allow it. */
  passwd(username: string, password: string): Promise<void> {
    return this.edit((data) => {
      const users = usersOf(data);
      const u = users[username] as Record<string, unknown> | undefined;
      if (!u || typeof u !== 'object') return [{ path: `users.${username}`, message: 'no such user' }];
      delete u.password;
      delete u.ntHash;
      Object.assign(u, credentialFor(password, u.methods as AuthMethod[] | undefined));
      return [];
    });
  }

  /** Change a user's settings (undefined values remove the setting). The credential is passwd()'s job. */
  update(username: string, fields: { [K in keyof UserFields]?: UserFields[K] | undefined }): Promise<void> {
    return this.edit((data) => {
      const users = usersOf(data);
      const u = users[username] as Record<string, unknown> | undefined;
      if (!u || typeof u !== 'object') return [{ path: `users.${username}`, message: 'no such user' }];
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) delete u[k];
        else u[k] = v;
      }
      return [];
    });
  }

  /**
   * Serialize edits: read the current file (or memory), apply, validate,
   * write atomically, swap. Throws {@link UserStoreError} and changes nothing
   * on any problem.
   */
  private edit(apply: (data: Record<string, unknown>) => ConfigIssue[]): Promise<void> {
    const run = async (): Promise<void> => {
      const source = this.file ? `user store ${this.file}` : 'user store';
      let data: Record<string, unknown>;
      let parsed: Parsed | undefined;
      if (this.file) {
        const r = await UserStore.read(this.file);
        if (!r.ok) throw new UserStoreError(source, r.issues);
        parsed = r.parsed!;
        data = (parsed.data ?? {}) as Record<string, unknown>;
      } else {
        data = structuredClone((this.memory ?? {}) as Record<string, unknown>);
      }
      const problems = apply(data);
      if (problems.length > 0) throw new UserStoreError(source, problems);
      const check = checkUserStore(data);
      if (!check.ok) throw new UserStoreError(source, check.issues);
      if (this.file) await writeAtomic(this.file, serialize(data, parsed!, formatOf(this.file)));
      else this.memory = data;
      this.users = check.users;
    };
    const next = this.edits.then(run, run);
    this.edits = next.catch(() => undefined);
    return next;
  }
}

function usersOf(data: Record<string, unknown>): Record<string, unknown> {
  if (data.users === null || typeof data.users !== 'object') data.users = {};
  return data.users as Record<string, unknown>;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The stored form of a password: the NT hash unless PAP or CHAP-MD5 may be used. */
function credentialFor(password: string, methods: readonly AuthMethod[] | undefined): { password: string } | { ntHash: string } {
  const needsCleartext = !methods || methods.some((m) => CLEARTEXT_METHODS.includes(m));
  if (needsCleartext) return { password };
  return { ntHash: Buffer.from(ntPasswordHash(password)).toString('hex') };
}

function yamlText(data: unknown): string {
  return new Document(data).toString();
}

function serialize(data: Record<string, unknown>, parsed: Parsed, format: Format): string {
  if (format === 'json') return JSON.stringify(data, null, 2) + '\n';
  const doc = parsed.doc;
  if (!doc || !isMap(doc.contents)) return HEADER + yamlText(data);
  // Rewrite the users mapping user by user so comments elsewhere survive.
  const users = (data.users ?? {}) as Record<string, unknown>;
  const node = doc.get('users', true);
  if (!isMap(node)) {
    doc.set('users', doc.createNode(users));
    return doc.toString();
  }
  for (const item of [...node.items]) {
    const key = String((item.key as { value?: unknown } | null)?.value ?? item.key);
    if (!Object.hasOwn(users, key)) node.delete(key);
  }
  const old = ((doc.toJS() as { users?: Record<string, unknown> | null }).users ?? {}) as Record<string, unknown>;
  for (const [name, u] of Object.entries(users)) {
    if (JSON.stringify(old[name]) !== JSON.stringify(u)) node.set(name, doc.createNode(u));
  }
  return doc.toString();
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new VpnError('ERR_USER_STORE', `cannot replace user store ${file}: ${(e as Error).message}`, { cause: e });
  }
}
