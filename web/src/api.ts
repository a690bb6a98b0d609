// Talking to ehub: login, the session, and fetch with the bearer token.
//
// The session (access token, refresh token, user) lives in memory and in
// sessionStorage — per tab, gone when the tab closes — and never in a
// cookie: requests carry `Authorization: Bearer`, which a cross-site page
// cannot make the browser add, so there is no CSRF surface. The access
// token (15 min) is refreshed shortly before it expires, and once more on a
// 401; refresh tokens rotate on every use (README "Users, login and tokens").

export type Role = "viewer" | "agent" | "analyst" | "manager" | "admin";

export interface User {
  id: number;
  email: string;
  role: Role;
  agent_id: number | null;
}

export interface Session {
  tenant: string;
  access_token: string;
  refresh_token: string;
  expires_at: number; // ms
  user: User;
}

const KEY = "ehub.session";

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public body?: any) {
    super(message);
  }
}

type Listener = (s: Session | null) => void;
let session: Session | null = load();
const listeners = new Set<Listener>();
let refreshing: Promise<Session | null> | null = null;

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

function save(s: Session | null) {
  session = s;
  try {
    if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
    else sessionStorage.removeItem(KEY);
  } catch {
    /* private mode: memory only */
  }
  for (const l of listeners) l(s);
}

export function currentSession(): Session | null {
  return session;
}

export function onSession(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

function fromLogin(tenant: string, j: any): Session {
  return {
    tenant,
    access_token: j.access_token,
    refresh_token: j.refresh_token,
    expires_at: Date.now() + (Number(j.expires_in) || 900) * 1000,
    user: { id: j.user.id, email: j.user.email, role: j.user.role, agent_id: j.user.agent_id ?? null },
  };
}

async function readError(r: Response): Promise<ApiError> {
  let body: any = null;
  try {
    body = await r.json();
  } catch {
    /* not JSON */
  }
  const e = body && body.error;
  return new ApiError(r.status, e?.code || "http_" + r.status, e?.message || r.statusText || "request failed", body);
}

export async function login(tenant: string, email: string, password: string): Promise<Session> {
  const r = await fetch("/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ tenant, email, password }),
  });
  if (!r.ok) throw await readError(r);
  const s = fromLogin(tenant, await r.json());
  save(s);
  return s;
}

export async function logout(): Promise<void> {
  const s = session;
  save(null);
  if (s) {
    try {
      await fetch("/v1/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: s.refresh_token }),
      });
    } catch {
      /* offline: the token expires anyway */
    }
  }
}

async function refresh(): Promise<Session | null> {
  const s = session;
  if (!s) return null;
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const r = await fetch("/v1/auth/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: s.refresh_token }),
        });
        if (r.status === 401) {
          save(null);
          return null;
        }
        if (!r.ok) return session; // server busy: keep what we have
        const n = fromLogin(s.tenant, await r.json());
        save(n);
        return n;
      } catch {
        return session;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** A valid access token, refreshed when it has under a minute left. */
export async function token(): Promise<string | null> {
  let s = session;
  if (!s) return null;
  if (s.expires_at - Date.now() < 60_000) s = await refresh();
  return s ? s.access_token : null;
}

export interface RequestOpts {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  raw?: boolean; // return the Response
}

export async function api<T = any>(path: string, o: RequestOpts = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const t = await token();
    const h: Record<string, string> = { ...(o.headers || {}) };
    if (t) h.Authorization = "Bearer " + t;
    let body: BodyInit | undefined;
    if (o.body !== undefined) {
      h["Content-Type"] = "application/json";
      body = JSON.stringify(o.body);
    }
    const r = await fetch(path, { method: o.method || "GET", headers: h, body });
    if (r.status === 401 && attempt === 0 && session) {
      if (await refresh()) continue;
    }
    if (r.status === 401) save(null);
    if (!r.ok) throw await readError(r);
    if (o.raw) return r as unknown as T;
    if (r.status === 204) return null as T;
    const ct = r.headers.get("Content-Type") || "";
    return (ct.includes("json") ? await r.json() : await r.text()) as T;
  }
}

/** GET without credentials (the public system routes). */
export async function publicGet<T = any>(path: string): Promise<{ status: number; body: T }> {
  const r = await fetch(path);
  const ct = r.headers.get("Content-Type") || "";
  const body = ct.includes("json") ? await r.json() : await r.text();
  return { status: r.status, body: body as T };
}

/** Follows next_cursor through a list route, up to max items. */
export async function listAll<T = any>(path: string, max = 5000, onPage?: (items: T[]) => void): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  const sep = path.includes("?") ? "&" : "?";
  do {
    const url: string = `${path}${sep}limit=500${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`;
    const j: any = await api(url);
    const items: T[] = j.items || [];
    out.push(...items);
    onPage?.(items);
    cursor = j.next_cursor ?? null;
  } while (cursor && out.length < max);
  return out;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403) return "Your role may not do this.";
    if (e.status === 429) return "Too many attempts — wait a minute and try again.";
    return e.message;
  }
  return e instanceof Error ? e.message : String(e);
}
