/**
 * Loading configuration: YAML text -> schema validation (every issue at
 * once, each with its dotted path and, when it came from a file, its line
 * and column) -> cross-field rules -> relative paths resolved against the
 * config file's directory -> deep freeze.
 *
 *   text --yaml--> object --zod--> Config --crossCheck--> resolvePaths --> deepFreeze
 *     \ syntax errors (line:col)    \ schema issues (path, line:col)
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, isPair, type Document, type Node } from 'yaml';
import { z } from 'zod';
import { ConfigError, VpnError, type ConfigIssue } from '../util/errors.js';
import { configSchema, crossCheck, type Config } from './schema.js';

/** An issue with the place in the file it refers to (1-based), when known. */
export interface LocatedIssue extends ConfigIssue {
  line?: number;
  column?: number;
}

export type CheckResult = { ok: true; config: Config } | { ok: false; issues: LocatedIssue[] };

/** `['pools', 'default', 'ranges', 0]` -> `pools.default.ranges[0]`. */
export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function zodIssues(error: z.ZodError): { path: PropertyKey[]; message: string }[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  for (const iss of error.issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) out.push({ path: [...iss.path, k], message: 'unknown key' });
    } else if (iss.code === 'invalid_key') {
      out.push({ path: iss.path, message: iss.issues[0]?.message ?? iss.message });
    } else {
      out.push({ path: iss.path, message: iss.message });
    }
  }
  return out;
}

/** Validate an already-parsed object: schema, then cross-field rules. Does not freeze or resolve paths. */
export function validate(input: unknown): CheckResult {
  const r = configSchema.safeParse(input ?? {});
  if (!r.success) return { ok: false, issues: zodIssues(r.error).map((i) => ({ path: formatPath(i.path), message: i.message })) };
  const cross = crossCheck(r.data);
  if (cross.length) return { ok: false, issues: cross };
  return { ok: true, config: r.data };
}

/** The deepest YAML node along `p` (the key node when `p` names a key whose value is missing). */
function locate(doc: Document, p: readonly (string | number)[]): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = (node as Node | null) ?? undefined;
  for (const seg of p) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
      if (!pair) return found;
      found = (pair.value as Node | null) ?? (pair.key as Node);
      node = pair.value;
      // Unknown keys and missing values point at the key itself.
      if (!pair.value) return pair.key as Node;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) return found;
      found = item as Node;
      node = item;
    } else {
      return found;
    }
  }
  return found;
}

function splitPath(p: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of p.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

function withLocation(issue: ConfigIssue, doc: Document, lc: LineCounter, keyOnly: boolean): LocatedIssue {
  const segs = splitPath(issue.path);
  let node = locate(doc, segs);
  if (keyOnly && isMap(doc.contents)) {
    // For an unknown key, point at the key, not its value.
    const parent = locate(doc, segs.slice(0, -1));
    if (isMap(parent)) {
      const pair = parent.items.find((it) => isScalar(it.key) && String(it.key.value) === String(segs[segs.length - 1]));
      if (pair) node = pair.key as Node;
    }
  }
  const offset = node?.range?.[0];
  if (offset === undefined) return issue;
  const { line, col } = lc.linePos(offset);
  return { ...issue, message: `${issue.message} (line ${line}, column ${col})`, line, column: col };
}

/**
 * Check config text: every issue at once (YAML syntax errors with their line
 * and column; schema and cross-field issues with path and location).
 */
export function checkConfig(text: string): CheckResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
        const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
        const first = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return { path: '', message: `YAML syntax error: ${first}${where}`, ...(pos ? { line: pos.line, column: pos.col } : {}) };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, issues: [{ path: '', message: `YAML error: ${(e as Error).message}` }] };
  }
  const r = validate(data);
  if (r.ok) return r;
  return { ok: false, issues: r.issues.map((i) => withLocation(i, doc, lc, i.message === 'unknown key')) };
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** Resolve every path-valued field against `baseDir`. Returns a new object. */
export function resolvePaths(c: Config, baseDir: string): Config {
  const abs = (p: string) => path.resolve(baseDir, p);
  return {
    ...c,
    stateDir: abs(c.stateDir),
    users: { ...c.users, file: abs(c.users.file) },
    sstp: { ...c.sstp, certificate: abs(c.sstp.certificate), key: abs(c.sstp.key) },
  };
}

/** Parse, validate, resolve and freeze config text; throws ConfigError with every issue. */
export function parseConfig(text: string, opts: { baseDir?: string; source?: string } = {}): Readonly<Config> {
  const r = checkConfig(text);
  if (!r.ok) throw new ConfigError(r.issues, opts.source);
  return deepFreeze(resolvePaths(r.config, opts.baseDir ?? process.cwd()));
}

/** The embedded default: the schema's defaults, validated and frozen. */
export function defaultConfig(): Readonly<Config> {
  const r = validate({});
  if (!r.ok) throw new ConfigError(r.issues, 'the embedded default configuration');
  return deepFreeze(resolvePaths(r.config, process.cwd()));
}

/**
 * Load the config file at `file` (relative paths inside it resolve against
 * its directory), or the embedded default when no file is given.
 */
export async function loadConfig(file?: string): Promise<Readonly<Config>> {
  if (file === undefined) return defaultConfig();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new VpnError('ERR_CONFIG_READ', `cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      cause: e,
    });
  }
  return parseConfig(text, { baseDir: path.dirname(path.resolve(file)), source: file });
}
