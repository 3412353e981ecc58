// The two ways to reach the Worker, behind one interface: public HTTP (+ its subscribe route, as a
// WebSocket or as Server-Sent Events) from anywhere, or a service binding from inside another Worker.
import { StreamError, fromHttpError, fromRpcError } from "./errors.js";
import { eventStreamLink } from "./event-stream.js";
import { socketLink, type Link, type LinkHandlers, type WebSocketConstructor, type WebSocketLike } from "./link.js";
import type { StreamsService } from "./types.js";

export type MethodName = "append" | "appendBatch" | "getEvent" | "getEvents" | "getState" | "runtimeState" | "reduce" | "reset" | "kill" | "deleteStream";

/** A stream, fully named. */
export interface Target {
  namespace: string;
  path: string;
}

/** How a subscription reaches the subscribe route: a WebSocket, or Server-Sent Events over `fetch`. */
export type SubscribeTransport = "websocket" | "sse";

/** Query parameters of the subscribe route (besides namespace and path). */
export interface SocketParams {
  subscriptionKey: string;
  replayAfterOffset?: number;
  eventTypes?: readonly string[];
  events?: boolean;
}

/**
 * A bearer token, or a function that returns the current one. A function is called for every
 * request and every socket (re)connection, so it can hand out a refreshed token; a socket closed
 * with 4002 (its token expired) reconnects with the next one.
 */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

/** The token to send now; a failing token function is a `network` error (worth retrying). */
export async function currentToken(source: TokenSource | undefined): Promise<string | undefined> {
  if (typeof source !== "function") return source;
  try {
    return await source();
  } catch (e) {
    throw new StreamError("network", `the token function failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/**
 * A link whose socket opens once `open` (which may wait for a token function) settles; a failure
 * to open is reported as a close, retryable unless it is a refusal (4xx).
 */
function deferredLink(handlers: LinkHandlers, open: () => Promise<Link | undefined>): Link {
  let link: Link | undefined;
  let closed = false;
  open().then(
    (opened) => {
      if (closed) opened?.close();
      else link = opened;
    },
    (e: unknown) => {
      if (closed) return;
      const error = e instanceof StreamError ? e : new StreamError("network", String(e), { cause: e });
      const reason = `subscribe failed: ${error.message}`;
      const fatal = error.status !== undefined && error.status >= 400 && error.status < 500;
      handlers.close(fatal ? { code: 1006, reason, fatal: error } : { code: 1006, reason });
    },
  );
  return {
    send: (text) => link?.send(text),
    close: () => {
      closed = true;
      link?.close();
    },
  };
}

export interface Transport {
  /** One method call; rejects with a StreamError. `undefined` results stay `undefined`. */
  call(method: MethodName, target: Target, args: Record<string, unknown>): Promise<unknown>;
  /** One page of the directory (docs/protocol.md#liststreams). */
  listStreams(args: Record<string, string | number>): Promise<unknown>;
  /** Opens one subscription connection. Failures are reported through `handlers.close`. */
  dial(target: Target, params: SocketParams, handlers: LinkHandlers, via?: SubscribeTransport): Link;
}

/** A service binding to the streams Worker: the entrypoint's methods plus `fetch` (for sockets). */
export interface StreamsBinding extends StreamsService {
  fetch(input: string, init?: { headers?: Record<string, string> }): Promise<Response>;
}

function socketQuery(target: Target, params: SocketParams): URLSearchParams {
  const q = new URLSearchParams({ namespace: target.namespace, path: target.path, subscriptionKey: params.subscriptionKey });
  if (params.replayAfterOffset !== undefined) q.set("replayAfterOffset", String(params.replayAfterOffset));
  if (params.eventTypes !== undefined && params.eventTypes.length > 0) q.set("eventTypes", params.eventTypes.join(","));
  if (params.events === false) q.set("events", "false");
  return q;
}

export interface HttpTransportOptions {
  baseUrl: string;
  token?: TokenSource | undefined;
  fetch?: typeof fetch | undefined;
  WebSocket?: WebSocketConstructor | undefined;
  /** Send the socket's token as `?access_token=` instead of a header (default: in browsers). */
  tokenInQuery?: boolean | undefined;
}

/** A page or a dedicated worker: sockets there cannot carry headers. */
const IN_BROWSER = typeof (globalThis as { document?: unknown }).document !== "undefined" || typeof (globalThis as { importScripts?: unknown }).importScripts === "function";

export function httpTransport(options: HttpTransportOptions): Transport {
  const base = new URL(options.baseUrl.endsWith("/") ? options.baseUrl : `${options.baseUrl}/`);
  const doFetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
  const authorization = (token: string | undefined): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

  const openSocket = (target: Target, params: SocketParams, handlers: LinkHandlers, token: string | undefined): Link => {
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new StreamError("network", "no WebSocket available: pass a `WebSocket` constructor (e.g. from the `ws` package)");
    const query = socketQuery(target, params);
    const inQuery = options.tokenInQuery ?? IN_BROWSER;
    if (token && inQuery) query.set("access_token", token);
    const url = new URL(`api/streams/subscribe?${query}`, base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // `ws` and undici take headers as the second argument; browsers cannot send any.
    const socket = token && !inQuery ? new WS(url.href, { headers: authorization(token) }) : new WS(url.href);
    if (!reportsRefusals(socket)) return socketLink(socket, explainRefusal(handlers, () => transport.call("getEvents", target, probeRange(params))));
    const link = socketLink(socket, handlers);
    watchRefusal(socket, handlers, link);
    return link;
  };

  const openEvents = (target: Target, params: SocketParams, handlers: LinkHandlers, token: string | undefined): Link => {
    if (!doFetch) throw new StreamError("network", "no fetch available: pass `fetch` to createStreamsClient");
    const query = socketQuery(target, params);
    // As for sockets: a browser page sends the (scoped) token in the query, so a cross-origin
    // request stays a simple one; a master token only ever travels in the header.
    const inQuery = options.tokenInQuery ?? IN_BROWSER;
    if (token && inQuery) query.set("access_token", token);
    const url = new URL(`api/streams/subscribe?${query}`, base);
    const headers = { accept: "text/event-stream", ...(token && !inQuery ? authorization(token) : {}) };
    return eventStreamLink((signal) => doFetch(url, { headers, signal }), handlers);
  };

  const transport: Transport = {
    async call(method, target, args) {
      if (!doFetch) throw new StreamError("network", "no fetch available: pass `fetch` to createStreamsClient");
      const url = new URL(`api/streams/${method}`, base);
      url.searchParams.set("namespace", target.namespace);
      url.searchParams.set("path", target.path);
      const headers = authorization(await currentToken(options.token));
      let response: Response;
      let text: string;
      try {
        response = await doFetch(url, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify(args),
        });
        text = await response.text();
      } catch (e) {
        throw new StreamError("network", `${method} ${url.host}: ${e instanceof Error ? causeText(e) : String(e)}`, { cause: e });
      }
      if (!response.ok) throw fromHttpError(response.status, text);
      try {
        const value: unknown = JSON.parse(text);
        return value === null ? undefined : value;
      } catch {
        throw new StreamError("protocol", `HTTP ${response.status}: the body is not JSON: ${text.slice(0, 200)}`, { status: response.status });
      }
    },

    async listStreams(args) {
      if (!doFetch) throw new StreamError("network", "no fetch available: pass `fetch` to createStreamsClient");
      const url = new URL("api/streams/listStreams", base);
      for (const [key, value] of Object.entries(args)) url.searchParams.set(key, String(value));
      let response: Response;
      let text: string;
      try {
        response = await doFetch(url, { headers: authorization(await currentToken(options.token)) });
        text = await response.text();
      } catch (e) {
        throw new StreamError("network", `listStreams ${url.host}: ${e instanceof Error ? causeText(e) : String(e)}`, { cause: e });
      }
      if (!response.ok) throw fromHttpError(response.status, text);
      return JSON.parse(text) as unknown;
    },

    dial(target, params, handlers, via = "websocket") {
      const open = via === "sse" ? openEvents : openSocket;
      const token = options.token;
      if (typeof token !== "function") return open(target, params, handlers, token);
      return deferredLink(handlers, async () => open(target, params, handlers, await currentToken(token)));
    },
  };
  return transport;
}

/** `ws` (Node 20) reports the response to a refused upgrade; standard WebSockets (browsers, Node 22) do not. */
function reportsRefusals(socket: WebSocketLike): boolean {
  return typeof (socket as { on?: unknown }).on === "function";
}

/** A read that the subscription's replay point would be refused for, and that writes nothing. */
function probeRange(params: SocketParams): Record<string, unknown> {
  return params.replayAfterOffset === undefined ? { last: 1 } : { afterOffset: params.replayAfterOffset, limit: 1 };
}

/**
 * A standard WebSocket does not say why its upgrade failed. When one closes before it opened,
 * `probe` (a read of the same stream from the same offset, with the same token) asks the Worker: a
 * 4xx there (`trimmed`, `unauthorized`, `forbidden`, `invalid_path`, …) ends the subscription as a
 * refused `ws` upgrade does; anything else leaves the close retryable.
 */
function explainRefusal(handlers: LinkHandlers, probe: () => Promise<unknown>): LinkHandlers {
  let opened = false;
  return {
    ...handlers,
    open: () => {
      opened = true;
      handlers.open();
    },
    close: (info) => {
      if (opened || info.fatal) {
        handlers.close(info);
        return;
      }
      probe().then(
        () => handlers.close(info),
        (e: unknown) => {
          const refused = e instanceof StreamError && e.status !== undefined && e.status >= 400 && e.status < 500;
          handlers.close(refused ? { ...info, reason: `upgrade refused: ${e.message}`, fatal: e } : info);
        },
      );
    },
  };
}

/**
 * `ws` reports a refused upgrade (e.g. 400 or 401) with the response; a refusal that a retry
 * cannot fix (4xx) ends the subscription with the server's error instead of retrying forever.
 */
function watchRefusal(socket: WebSocketLike, handlers: LinkHandlers, link: Link): void {
  const on = (socket as { on?: (event: string, listener: (...args: any[]) => void) => void }).on;
  if (typeof on !== "function") return;
  on.call(socket, "unexpected-response", (request: { destroy(): void }, response: AsyncIterable<Uint8Array> & { statusCode: number }) => {
    void (async () => {
      const chunks: Uint8Array[] = [];
      try {
        for await (const chunk of response) chunks.push(chunk);
      } catch {
        // the body is best effort
      }
      const status = response.statusCode;
      const error = fromHttpError(status, new TextDecoder().decode(concat(chunks)));
      const reason = `upgrade refused with HTTP ${status}`;
      link.close();
      request.destroy();
      handlers.close(status >= 400 && status < 500 ? { code: 1006, reason, fatal: error } : { code: 1006, reason: `${reason}: ${error.message}` });
    })();
  });
}

export function bindingTransport(binding: StreamsBinding, { token }: { token?: TokenSource | undefined } = {}): Transport {
  return {
    async call(method, target, args) {
      try {
        // Reflect.apply: an RPC stub would read `.call` as a remote method.
        const fn = binding[method] as (arg: unknown) => Promise<unknown>;
        return await Reflect.apply(fn, binding, [{ namespace: target.namespace, path: target.path, ...args }]);
      } catch (e) {
        throw fromRpcError(e);
      }
    },

    async listStreams(args) {
      try {
        const fn = binding.listStreams as (arg: unknown) => Promise<unknown>;
        return await Reflect.apply(fn, binding, [args]);
      } catch (e) {
        throw fromRpcError(e);
      }
    },

    dial(target, params, handlers, via = "websocket") {
      // Sockets go through the Worker's fetch handler, which checks the API token when one is set.
      const url = `https://streams/api/streams/subscribe?${socketQuery(target, params)}`;
      return deferredLink(handlers, async () => {
        const bearer = await currentToken(token);
        const auth: Record<string, string> = bearer ? { authorization: `Bearer ${bearer}` } : {};
        if (via === "sse") return eventStreamLink(() => binding.fetch(url, { headers: { accept: "text/event-stream", ...auth } }), handlers);
        const headers: Record<string, string> = { upgrade: "websocket", ...auth };
        let response: Response;
        try {
          response = await binding.fetch(url, { headers });
        } catch (e) {
          throw new StreamError("network", fromRpcError(e).message, { cause: e });
        }
        const socket = (response as { webSocket?: (WebSocketLike & { accept(): void }) | null }).webSocket;
        if (response.status !== 101 || !socket) {
          const error = fromHttpError(response.status, await response.text().catch(() => ""));
          throw response.status >= 400 && response.status < 500 ? error : new StreamError(error.code, `upgrade refused with HTTP ${response.status}: ${error.message}`);
        }
        socket.accept();
        return socketLink(socket, handlers, { alreadyOpen: true });
      });
    },
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Node's fetch hides the socket error in `cause` ("fetch failed"). */
function causeText(e: Error): string {
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
}
