// `createStreamsClient`: the same interface over HTTP or over a service binding.
import { StreamError } from "./errors.js";
import type { WebSocketConstructor } from "./link.js";
import { Subscription, type SubscribeOptions } from "./subscribe.js";
import { bindingTransport, httpTransport, type MethodName, type StreamsBinding, type Target, type TokenSource, type Transport } from "./transport.js";
import type { CoreState, EventInput, GetEventsOptions, ListStreamsOptions, RuntimeState, StreamEvent, StreamList, StreamTarget } from "./types.js";

export const DEFAULT_NAMESPACE = "default";

interface CommonOptions {
  /** Used when a call names only a path. Default "default". */
  namespace?: string;
}

export interface HttpClientOptions extends CommonOptions {
  /** Where the Worker is served, e.g. `http://127.0.0.1:8787` (the routes are under `/api/streams/`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>`. A function is asked for every request and every
   * socket (re)connection, so expiring scoped tokens can be refreshed (see docs/client.md). */
  token?: TokenSource;
  /** Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Default: the global `WebSocket`. Node 20 has none: pass `WebSocket` from the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Put the token in the socket URL (`?access_token=`; the Worker accepts only scoped tokens
   * there) rather than in a header. Default: true in browsers, which cannot send headers. */
  tokenInQuery?: boolean;
}

export interface BindingClientOptions extends CommonOptions {
  /** A service binding to the streams Worker (`services = [{binding = "STREAMS", service = "streams"}]`). */
  binding: StreamsBinding;
  /** Only for `subscribe()`: its socket goes through the Worker's public route, which checks the
   * API token when the Worker has one. Method calls never need it. */
  token?: TokenSource;
}

export type StreamsClientOptions = HttpClientOptions | BindingClientOptions;

/** A path (in the client's namespace) or `{namespace?, path}`. */
export type StreamRef = string | StreamTarget;

export interface EventsOptions {
  /** Start after this offset (default 0: from the first event). */
  afterOffset?: number;
  /** Stop before this offset (default: the end, as it is when each page is read). */
  beforeOffset?: number;
  /** Events per request, 1 to 1000 (default 100). */
  pageSize?: number;
}

export interface StreamsClient {
  readonly namespace: string;
  append(stream: StreamRef, event: EventInput, options?: { streamPath?: string }): Promise<StreamEvent>;
  appendBatch(stream: StreamRef, events: EventInput[], options?: { streamPath?: string }): Promise<StreamEvent[]>;
  /** By offset (`not_found` when there is none) or by idempotency key (`undefined` when there is none). */
  getEvent(stream: StreamRef, by: { offset: number } | { idempotencyKey: string }): Promise<StreamEvent | undefined>;
  /** A page by offset, time (`sinceTime`), tail (`last`) or type, optionally long-polled (`waitMs`). */
  getEvents(stream: StreamRef, range?: GetEventsOptions): Promise<StreamEvent[]>;
  /** The core state right after `atOffset` (the current state without it). */
  getState(stream: StreamRef, options?: { atOffset?: number }): Promise<CoreState>;
  /** The directory, page by page (each a `{streams, next}`), following `next` until it is null. */
  listStreams(options?: Omit<ListStreamsOptions, "after">): AsyncIterableIterator<StreamList>;
  runtimeState(stream: StreamRef): Promise<RuntimeState>;
  /** The state `event` would reduce to, from the current state or from `coreProcessorState`. */
  reduce(stream: StreamRef, event: StreamEvent, options?: { coreProcessorState?: Partial<CoreState> }): Promise<CoreState>;
  /** Deletes the stream's events (needs the admin token over HTTP). */
  reset(stream: StreamRef): Promise<void>;
  /** Restarts the stream's object (needs the admin token over HTTP). */
  kill(stream: StreamRef): Promise<void>;
  /** Deletes the stream's events, archived segments, state and subscriptions (needs the admin token over HTTP). */
  deleteStream(stream: StreamRef): Promise<void>;
  /** Every event after `afterOffset`, one page request at a time; ends when it has caught up. */
  events(stream: StreamRef, options?: EventsOptions): AsyncIterableIterator<StreamEvent>;
  /** Live batches over a WebSocket, exactly once and in order across reconnects. */
  subscribe(stream: StreamRef, options?: SubscribeOptions): Subscription;
}

export function createStreamsClient(options: StreamsClientOptions): StreamsClient {
  const transport: Transport =
    "binding" in options
      ? bindingTransport(options.binding, { token: options.token })
      : httpTransport({ baseUrl: options.baseUrl, token: options.token, fetch: options.fetch, WebSocket: options.WebSocket, tokenInQuery: options.tokenInQuery });
  return new Client(transport, options.namespace ?? DEFAULT_NAMESPACE);
}

class Client implements StreamsClient {
  readonly namespace: string;
  #transport: Transport;

  constructor(transport: Transport, namespace: string) {
    this.#transport = transport;
    this.namespace = namespace;
  }

  #target(stream: StreamRef): Target {
    if (typeof stream === "string") return { namespace: this.namespace, path: stream };
    return { namespace: stream.namespace ?? this.namespace, path: stream.path };
  }

  #call<T>(method: MethodName, stream: StreamRef, args: Record<string, unknown> = {}): Promise<T> {
    return this.#transport.call(method, this.#target(stream), args) as Promise<T>;
  }

  append(stream: StreamRef, event: EventInput, options: { streamPath?: string } = {}): Promise<StreamEvent> {
    return this.#call("append", stream, withStreamPath({ event }, options));
  }

  appendBatch(stream: StreamRef, events: EventInput[], options: { streamPath?: string } = {}): Promise<StreamEvent[]> {
    return this.#call("appendBatch", stream, withStreamPath({ events }, options));
  }

  getEvent(stream: StreamRef, by: { offset: number } | { idempotencyKey: string }): Promise<StreamEvent | undefined> {
    return this.#call("getEvent", stream, { ...by });
  }

  getEvents(stream: StreamRef, range: GetEventsOptions = {}): Promise<StreamEvent[]> {
    return this.#call("getEvents", stream, { ...range });
  }

  getState(stream: StreamRef, options: { atOffset?: number } = {}): Promise<CoreState> {
    return this.#call("getState", stream, { ...options });
  }

  async *listStreams(options: Omit<ListStreamsOptions, "after"> = {}): AsyncIterableIterator<StreamList> {
    let after: string | null = null;
    do {
      const args: Record<string, string | number> = { namespace: options.namespace ?? this.namespace };
      if (options.prefix !== undefined) args.prefix = options.prefix;
      if (options.limit !== undefined) args.limit = options.limit;
      if (after !== null) args.after = after;
      const page = (await this.#transport.listStreams(args)) as StreamList;
      yield page;
      after = page.next;
    } while (after !== null);
  }

  runtimeState(stream: StreamRef): Promise<RuntimeState> {
    return this.#call("runtimeState", stream);
  }

  reduce(stream: StreamRef, event: StreamEvent, options: { coreProcessorState?: Partial<CoreState> } = {}): Promise<CoreState> {
    return this.#call("reduce", stream, options.coreProcessorState === undefined ? { event } : { event, coreProcessorState: options.coreProcessorState });
  }

  async reset(stream: StreamRef): Promise<void> {
    await this.#call("reset", stream);
  }

  async kill(stream: StreamRef): Promise<void> {
    await this.#call("kill", stream);
  }

  async deleteStream(stream: StreamRef): Promise<void> {
    await this.#call("deleteStream", stream);
  }

  async *events(stream: StreamRef, options: EventsOptions = {}): AsyncIterableIterator<StreamEvent> {
    const limit = options.pageSize ?? 100;
    let after = options.afterOffset ?? 0;
    for (;;) {
      const range: { afterOffset: number; limit: number; beforeOffset?: number } = { afterOffset: after, limit };
      if (options.beforeOffset !== undefined) range.beforeOffset = options.beforeOffset;
      const page = await this.getEvents(stream, range);
      if (page.length === 0) return;
      for (const event of page) yield event;
      const last = page[page.length - 1];
      if (!last || last.offset <= after) throw new StreamError("protocol", `getEvents after ${after} returned no later event`);
      after = last.offset;
    }
  }

  subscribe(stream: StreamRef, options: SubscribeOptions = {}): Subscription {
    return new Subscription(this.#transport, this.#target(stream), options);
  }
}

function withStreamPath<T extends object>(args: T, options: { streamPath?: string }): T & { streamPath?: string } {
  return options.streamPath === undefined ? args : { ...args, streamPath: options.streamPath };
}
