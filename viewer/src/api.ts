// The HTTP API, for what the mirror does not cover: runtimeState, admin operations with the admin
// token, and operator events. A 401 makes the page ask for a token.
import { accessState, requireToken } from "./access";

export interface StreamTarget {
  namespace: string;
  path: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export async function callApi<T>(
  target: StreamTarget,
  method: string,
  body: unknown = {},
  token: string | null = accessState().apiToken,
): Promise<T> {
  const search = new URLSearchParams({ namespace: target.namespace, path: target.path });
  return request<T>(`/api/streams/${method}?${search}`, { method: "POST", body: JSON.stringify(body) }, token);
}

/** One entry of the directory (docs/protocol.md#liststreams). */
export interface DirectoryEntry {
  path: string;
  streamId: string | null;
  createdAt: string | null;
  maxOffset: number;
  lastEventAt: string | null;
}

export interface DirectoryPage {
  streams: DirectoryEntry[];
  /** The cursor of the next page (`after`), or null on the last page. */
  next: string | null;
}

/** A page of the namespace's streams whose path starts with `prefix`, sorted by path. */
export function listStreams(args: { namespace: string; prefix: string; after: string | null; limit: number }): Promise<DirectoryPage> {
  const search = new URLSearchParams({ namespace: args.namespace, limit: String(args.limit) });
  if (args.prefix !== "") search.set("prefix", args.prefix);
  if (args.after !== null) search.set("after", args.after);
  return request<DirectoryPage>(`/api/streams/listStreams?${search}`, { method: "GET" }, accessState().apiToken);
}

async function request<T>(url: string, init: RequestInit, token: string | null): Promise<T> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError("internal", `HTTP ${res.status}: ${text.slice(0, 200)}`, res.status);
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } }).error;
    if (res.status === 401) requireToken();
    throw new ApiError(error?.code ?? "internal", error?.message ?? `HTTP ${res.status}`, res.status);
  }
  return json as T;
}

/** `code: message` for an error from the API or the mirror. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && !error.message.startsWith(`${code}:`) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
