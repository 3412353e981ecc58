// Access tokens for the API, kept in session storage (never in the URL): the API token (a scoped
// token or the master token) and, separately, the admin token that reset and kill need.
import { useSyncExternalStore } from "react";

const API_TOKEN_KEY = "streams-viewer:api-token";
const ADMIN_TOKEN_KEY = "streams-viewer:admin-token";

interface AccessState {
  apiToken: string | null;
  adminToken: string | null;
  /** Set when the API answered 401: the page asks for a token. */
  tokenRequired: boolean;
}

let state: AccessState = {
  apiToken: sessionStorage.getItem(API_TOKEN_KEY),
  adminToken: sessionStorage.getItem(ADMIN_TOKEN_KEY),
  tokenRequired: false,
};
const listeners = new Set<() => void>();

function update(next: Partial<AccessState>): void {
  state = { ...state, ...next };
  for (const listener of listeners) listener();
}

function store(key: string, value: string | null): void {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, value);
}

export function accessState(): AccessState {
  return state;
}

export function useAccess(): AccessState {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    accessState,
  );
}

/**
 * Switch the API token. The page reloads: a stream's mirror keeps the token it was opened with,
 * and every stream on the page must use the new one.
 */
export function setApiToken(token: string | null): void {
  store(API_TOKEN_KEY, token?.trim() || null);
  location.reload();
}

export function setAdminToken(token: string | null): void {
  const value = token?.trim() || null;
  store(ADMIN_TOKEN_KEY, value);
  update({ adminToken: value });
}

export function requireToken(): void {
  if (!state.tokenRequired) update({ tokenRequired: true });
}

/** What a token allows, read from its claims (the server verifies them; this only describes). */
export interface TokenScope {
  kind: "scoped" | "opaque";
  namespace?: string;
  paths?: string[];
  ops?: string[];
  expiresAt?: Date;
}

export function describeToken(token: string): TokenScope {
  const parts = token.split(".");
  if (parts.length !== 3) return { kind: "opaque" };
  try {
    const base64 = (parts[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    const claims: unknown = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    if (typeof claims !== "object" || claims === null) return { kind: "opaque" };
    const { ns, paths, ops, exp } = claims as Record<string, unknown>;
    return {
      kind: "scoped",
      namespace: typeof ns === "string" ? ns : undefined,
      paths: Array.isArray(paths) ? paths.map(String) : undefined,
      ops: Array.isArray(ops) ? ops.map(String) : undefined,
      expiresAt: typeof exp === "number" ? new Date(exp * 1000) : undefined,
    };
  } catch {
    return { kind: "opaque" };
  }
}

/** The operations the viewer offers under a scope, for the token panel. */
export function allowedOperations(scope: TokenScope): string {
  if (scope.kind === "opaque") return "every operation except reset and kill (those need the admin token)";
  const ops = scope.ops ?? [];
  const allowed = [
    ops.includes("read") ? "read events, state and live updates" : null,
    ops.includes("append") ? "append (composer, load tool)" : null,
    ops.includes("configure") ? "configure (pause/resume, breaker)" : null,
  ].filter((op): op is string => op !== null);
  return allowed.length > 0 ? allowed.join("; ") : "nothing the viewer can use";
}
