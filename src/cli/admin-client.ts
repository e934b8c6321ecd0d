/**
 * HTTP client of the admin API (src/admin/server.ts), for `vpngw sessions`.
 */
import { VpnError, ERROR_CODES, type ErrorCode } from '../util/errors.js';
import type { SessionInfo } from '../admin/types.js';

/** Our choice: an admin request that takes longer than this has failed. */
export const ADMIN_CLIENT_TIMEOUT_MS = 20_000;

export class AdminClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  private async request(method: string, path: string): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
        signal: AbortSignal.timeout(ADMIN_CLIENT_TIMEOUT_MS),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
      throw new VpnError('ERR_ADMIN', `cannot reach the admin API at ${this.baseUrl} (${cause}): is vpngw serve running?`, { cause: e });
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (res.ok) return body;
    const err = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401) throw new VpnError('ERR_ADMIN', 'the admin API refused the bearer token (set admin.token in the config or VPNGW_ADMIN_TOKEN)');
    const code = (ERROR_CODES as readonly string[]).includes(err?.code ?? '') ? (err!.code as ErrorCode) : 'ERR_ADMIN';
    throw new VpnError(code, err?.message ?? `admin API answered ${res.status}`, { details: { status: res.status } });
  }

  async sessions(): Promise<SessionInfo[]> {
    return (await this.request('GET', '/sessions')) as SessionInfo[];
  }

  /** False when the session does not exist. */
  async kill(id: string): Promise<boolean> {
    try {
      await this.request('DELETE', `/sessions/${encodeURIComponent(id)}`);
      return true;
    } catch (e) {
      if (e instanceof VpnError && e.details?.status === 404) return false;
      throw e;
    }
  }

  async killUser(user: string): Promise<number> {
    const r = (await this.request('DELETE', `/sessions?user=${encodeURIComponent(user)}`)) as { killed: number };
    return r.killed;
  }
}
