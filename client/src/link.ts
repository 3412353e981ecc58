// A "link" is one connection (a WebSocket, or a Server-Sent Events response) as the reconnect core
// sees it: callbacks in, send/close out. Both transports turn their sockets into links here.
import { StreamError } from "./errors.js";

export interface LinkClose {
  code: number;
  reason: string;
  /** Set when retrying cannot help (the server refused the subscription, or replaced it). */
  fatal?: StreamError;
}

export interface LinkHandlers {
  open(): void;
  message(text: string): void;
  close(info: LinkClose): void;
  /** A sign of life that is not a frame (an event stream's heartbeat comment). */
  alive?(): void;
}

export interface Link {
  send(text: string): void;
  /** Ends the connection now; no handler runs afterwards. */
  close(): void;
}

/** The close code the server uses when another socket takes the subscription key. */
export const CLOSE_REPLACED = 4001;
/** The close code the server uses when the socket's scoped token expired: reconnecting with a
 * fresh token (a token function) continues the subscription. */
export const CLOSE_TOKEN_EXPIRED = 4002;

/** What the client needs of a WebSocket: the standard surface (browsers, workerd, undici, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

/** A constructor with the `WebSocket` shape; `ws` also takes `(url, {headers})`. */
export type WebSocketConstructor = new (url: string, protocolsOrOptions?: any) => WebSocketLike;

const decoder = new TextDecoder();

function textOf(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return decoder.decode(data);
  if (ArrayBuffer.isView(data)) return decoder.decode(data);
  return String(data);
}

/** A close sent by the stream; fatal when another subscriber took the key (4001). */
export function closeFrom(code: number, reason: string): LinkClose {
  if (code !== CLOSE_REPLACED) return { code, reason };
  return { code, reason, fatal: new StreamError("subscription_replaced", "another subscriber connected with this subscriptionKey") };
}

/**
 * Wires a socket to handlers. `open` is skipped when the socket is already open (workerd's
 * accepted sockets). Once the link is closed, by either side, no handler runs again.
 */
export function socketLink(socket: WebSocketLike, handlers: LinkHandlers, { alreadyOpen = false } = {}): Link {
  let done = false;
  const finish = (info: LinkClose) => {
    if (done) return;
    done = true;
    handlers.close(info);
  };
  socket.addEventListener("open", () => {
    if (!done) handlers.open();
  });
  socket.addEventListener("message", (event: { data: unknown }) => {
    if (!done) handlers.message(textOf(event.data));
  });
  socket.addEventListener("close", (event: { code?: number; reason?: string }) => {
    finish(closeFrom(event.code ?? 1006, event.reason ?? ""));
  });
  socket.addEventListener("error", (event: { message?: string; error?: unknown }) => {
    // Browsers and undici follow an error with a close; `ws` does too. Report it as a close
    // now so a socket that errors before it ever opened is not left waiting.
    const detail = event.message ?? (event.error instanceof Error ? event.error.message : "WebSocket error");
    finish({ code: 1006, reason: detail });
    closeQuietly(socket);
  });
  if (alreadyOpen) queueMicrotask(() => !done && handlers.open());
  return {
    send(text) {
      if (!done && socket.readyState === 1) socket.send(text);
    },
    close() {
      done = true;
      closeQuietly(socket);
    },
  };
}

/** Closes without waiting for the peer; `ws` sockets are also torn down (no 30 s close timer). */
export function closeQuietly(socket: WebSocketLike): void {
  try {
    if (socket.readyState === 0 || socket.readyState === 1) socket.close(1000, "client closed");
  } catch {
    // already closing
  }
  const terminate = (socket as { terminate?: () => void }).terminate;
  if (typeof terminate === "function") {
    try {
      terminate.call(socket);
    } catch {
      // already gone
    }
  }
}
