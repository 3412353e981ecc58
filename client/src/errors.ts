import type { StreamErrorCode } from "./types.js";

/** Codes the client itself raises (no server answer to carry one). */
export type ClientErrorCode =
  /** The server could not be reached, or the connection broke mid-call. */
  | "network"
  /** Waiting for a (re)connection took longer than allowed. */
  | "timeout"
  /** The server answered something that is not the protocol (e.g. a proxy's HTML page). */
  | "protocol"
  /** Another subscriber took this subscription's key (the server closed the socket with 4001). */
  | "subscription_replaced"
  /** The subscription was stopped (abort or `close()`) while the call waited. */
  | "closed";

export type ErrorCode = StreamErrorCode | ClientErrorCode;

/** Every code the Worker sends: a Record, so a code added to `StreamErrorCode` must be listed here. */
const SERVER_CODE_LIST: Record<StreamErrorCode, true> = {
  batch_too_large: true,
  event_too_large: true,
  forbidden: true,
  idempotency_conflict: true,
  internal: true,
  invalid_event: true,
  invalid_namespace: true,
  invalid_path: true,
  invalid_request: true,
  method_not_allowed: true,
  not_found: true,
  offset_mismatch: true,
  stream_paused: true,
  subscriber_not_allowed: true,
  subscription_key_in_use: true,
  trimmed: true,
  unauthorized: true,
};
const SERVER_CODES: ReadonlySet<string> = new Set(Object.keys(SERVER_CODE_LIST));

/**
 * Every failure of the client: `code` is the server's error code (or a client code), `status`
 * the HTTP status when the call went over HTTP. The same call fails with the same code over
 * either transport.
 */
export class StreamError extends Error {
  override readonly name = "StreamError";
  readonly code: ErrorCode;
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
  }

  /** `<code>: <message>`, the form the Worker uses over RPC and the CLI prints. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }

  /** Whether a retry of the same call (with the same idempotency keys) may succeed. */
  get retryable(): boolean {
    return this.code === "network" || this.code === "internal" || this.code === "timeout";
  }
}

export function isStreamError(value: unknown): value is StreamError {
  return value instanceof StreamError;
}

/** An RPC rejection (`Error("<code>: <message>")`) as a StreamError; anything else is `internal`. */
export function fromRpcError(error: unknown): StreamError {
  if (error instanceof StreamError) return error;
  const text = error instanceof Error ? error.message : String(error);
  const colon = text.indexOf(": ");
  const code = colon > 0 ? text.slice(0, colon) : "";
  if (SERVER_CODES.has(code)) return new StreamError(code as StreamErrorCode, text.slice(colon + 2), { cause: error });
  return new StreamError("internal", text, { cause: error });
}

/** An HTTP error answer as a StreamError: the `{"error":{code,message}}` body, else `protocol`. */
export function fromHttpError(status: number, body: string): StreamError {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    const code = parsed.error?.code;
    const message = parsed.error?.message;
    if (typeof code === "string" && SERVER_CODES.has(code) && typeof message === "string") {
      return new StreamError(code as StreamErrorCode, message, { status });
    }
  } catch {
    // not JSON: fall through
  }
  return new StreamError("protocol", `HTTP ${status}: ${body.slice(0, 200)}`, { status });
}
