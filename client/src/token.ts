// Scoped access tokens for the streams Worker: HS256 JWTs naming one namespace, the paths and the
// operations they grant, and an expiry. WebCrypto only, so minting runs in Node, Workers and
// browsers alike, but the secret belongs on a server: mint there and hand the token to the page.
import { StreamError } from "./errors.js";

/**
 * `read`: getEvent, getEvents, runtimeState, reduce, subscribe. `append`: append, appendBatch.
 * `configure`: with `append`, appending a control event (`S/configured`, `S/metadata-updated`,
 * `S/child-stream-created`, `S/subscription-configured`, `S/subscription-removed`, `S/paused`,
 * `S/resumed`).
 */
export type TokenOp = "read" | "append" | "configure";

export interface MintTokenOptions {
  /** The Worker's `STREAMS_JWT_SECRET` (or the previous one while it is still accepted). */
  secret: string;
  /** The one namespace the token is for. */
  ns: string;
  /** Exact paths (`/agents/a1`) or subtrees (`/agents/a1/**`: that path and all below); at least one. */
  paths: readonly string[];
  /** At least one operation. */
  ops: readonly TokenOp[];
  /** Lifetime from now, in seconds. A socket opened with the token is closed with 4002 when it ends. */
  ttlSeconds: number;
  /** `sub`: who the token is for (e.g. a user id). Sockets opened with tokens of the same `sub`
   * may take over each other's subscription keys, so a refreshed token keeps its subscriptions;
   * without `sub` only the very same token may. */
  sub?: string;
  /** The clock in milliseconds since the epoch; defaults to `Date.now()`. */
  now?: number;
}

/** The Worker refuses longer tokens. */
export const MAX_TOKEN_BYTES = 4096;

const NAMESPACE_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const SEGMENT_RE = /^[A-Za-z0-9_.~-]+$/;
const MAX_PATH_BYTES = 1023;
export const TOKEN_OPS: readonly TokenOp[] = ["read", "append", "configure"];
const utf8 = new TextEncoder();

/** Signs a token the Worker accepts; throws `invalid_request` for options it would refuse. */
export async function mintToken(options: MintTokenOptions): Promise<string> {
  const { secret, ns, paths, ops, ttlSeconds } = options;
  if (typeof secret !== "string" || secret === "") invalid("secret must be a non-empty string");
  if (typeof ns !== "string" || !NAMESPACE_RE.test(ns)) invalid(`ns ${JSON.stringify(ns)} must match ${NAMESPACE_RE.source}`);
  if (!Array.isArray(paths) || paths.length === 0) invalid("paths must be a non-empty array");
  for (const scope of paths) {
    if (!isPathScope(scope)) invalid(`path scope ${JSON.stringify(scope)} is not a path or a path ending in /**`);
  }
  if (!Array.isArray(ops) || ops.length === 0 || !ops.every((op) => TOKEN_OPS.includes(op))) {
    invalid(`ops must be a non-empty array of ${TOKEN_OPS.map((op) => JSON.stringify(op)).join(", ")}`);
  }
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) invalid("ttlSeconds must be a positive number");
  if (options.sub !== undefined && (typeof options.sub !== "string" || options.sub === "")) invalid("sub must be a non-empty string");
  const issuedAt = Math.floor((options.now ?? Date.now()) / 1000);
  const claims = { ...(options.sub === undefined ? {} : { sub: options.sub }), ns, paths: [...paths], ops: [...new Set(ops)], iat: issuedAt, exp: issuedAt + Math.ceil(ttlSeconds) };
  const input = `${base64url(utf8.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })))}.${base64url(utf8.encode(JSON.stringify(claims)))}`;
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const token = `${input}.${base64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8.encode(input))))}`;
  if (token.length > MAX_TOKEN_BYTES) invalid(`the token would be ${token.length} bytes; the limit is ${MAX_TOKEN_BYTES}`);
  return token;
}

/** `/`, `/a/b`, or either followed by `/**` (`/**` alone is every path). */
function isPathScope(scope: unknown): boolean {
  if (typeof scope !== "string") return false;
  const path = scope === "/**" ? "/" : scope.endsWith("/**") ? scope.slice(0, -3) : scope;
  if (path === "/") return true;
  if (!path.startsWith("/") || utf8.encode(path).length > MAX_PATH_BYTES) return false;
  return path
    .slice(1)
    .split("/")
    .every((segment) => SEGMENT_RE.test(segment) && segment !== "." && segment !== "..");
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function invalid(message: string): never {
  throw new StreamError("invalid_request", `mintToken: ${message}`);
}
