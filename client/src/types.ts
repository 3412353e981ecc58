// Wire types of the `streams` Worker: events, state, the service-binding surface and the
// batches pushed to subscribers. `types/streams.d.ts` re-exports this file.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What you append . Unknown keys are rejected. */
export interface EventInput {
  /** 1 to 256 bytes. `events.iterate.com/stream/...` types are the stream's own. */
  type: string;
  payload?: Json;
  metadata?: { [key: string]: Json };
  source?: { processor?: { slug: string; version: string } };
  /** Trimmed, then 1 to 1024 bytes. A repeat returns the original event. */
  idempotencyKey?: string;
  /** Precondition: the offset this event must get. */
  offset?: number;
}

/** A committed event, keys in this order on the wire. */
export interface StreamEvent {
  type: string;
  payload?: Json;
  metadata?: { [key: string]: Json };
  source?: { processor?: { slug: string; version: string } };
  idempotencyKey?: string;
  /** 1-based, gap-free. */
  offset: number;
  /** `YYYY-MM-DDTHH:MM:SS.sssZ`. */
  createdAt: string;
}

export interface CircuitBreakerState {
  availableTokens: number;
  lastRefillAtMs: number | null;
  burstCapacity: number;
  refillRatePerMinute: number;
}

export interface ConnectionEntry {
  direction: "inbound" | "outbound";
  connectedAtOffset: number;
  subscriber?: { [key: string]: Json };
}

/** The reduction of every event. */
export interface CoreState {
  namespace: string;
  path: string;
  createdAt: string;
  /** The identity of this life of the log: a UUID v4 made at creation, a new one on `reset`
   * (`null` for streams created before stream ids existed). */
  streamId: string | null;
  incarnationId: string;
  metadata: { [key: string]: Json };
  config: {
    simulatedStorageSyncDelayMs: number;
    circuitBreaker?: { burstCapacity: number; refillRatePerMinute: number };
  };
  eventCount: number;
  maxOffset: number;
  /** The first 100 immediate children; `listStreams({prefix: path + "/"})` lists them all. */
  childPaths: string[];
  /** Streams created below this path, each counted once. */
  childCount: number;
  paused: boolean;
  pauseReason: string | null;
  processorsBySlug: { [slug: string]: { announcedAtOffset: number; announcement: { [key: string]: Json } } };
  subscriptionsByKey: {
    [key: string]: { latestConfiguredEvent: { offset: number; type: string; payload: Json; createdAt: string } };
  };
  connectionsByKey: { [key: string]: ConnectionEntry };
  circuitBreaker: CircuitBreakerState;
}

export interface ConnectionReport {
  direction: "inbound" | "outbound";
  startedAt: string;
  cursor: number;
  batchesSent: number;
  eventsSent: number;
  lastDeliveredAt?: string;
}

/** `runtimeState()`. */
export interface RuntimeState {
  coreProcessorState: CoreState;
  runtime: {
    connections: { [subscriptionKey: string]: ConnectionReport };
    /** `lastError`: why the last dial or delivery failed (docs/protocol.md#runtimestate). */
    /** `retryAt` is null and `stopped` true for a key the stream dials no more until it is configured again (a `trimmed` checkpoint). */
    redial: { [subscriptionKey: string]: { failures: number; retryAt: string | null; stopped?: boolean; lastError?: { code: string; message: string } } };
    idleTeardownAt: string | null;
    /** Where the log is: the first kept offset, and each storage tier's size. */
    storage: StorageFigures;
  };
}

/** `runtime.storage`: the first offset retention kept, the SQLite hot tier and the R2 archive. */
export interface StorageFigures {
  firstOffset: number;
  hotEvents: number;
  hotBytes: number;
  archivedSegments: number;
  archivedEvents: number;
  archivedBytes: number;
}

/** Which stream: `namespace` defaults to "default". */
export interface StreamTarget {
  namespace?: string;
  path: string;
}

/**
 * The Worker entrypoint, reached through a service binding.
 * Every method rejects with an Error whose message is `<code>: <message>`.
 */
export interface StreamsService {
  append(args: StreamTarget & { streamPath?: string; event: EventInput }): Promise<StreamEvent>;
  appendBatch(args: StreamTarget & { streamPath?: string; events: EventInput[] }): Promise<StreamEvent[]>;
  getEvent(args: StreamTarget & ({ offset: number } | { idempotencyKey: string })): Promise<StreamEvent | undefined>;
  getEvents(args: StreamTarget & GetEventsOptions): Promise<StreamEvent[]>;
  getState(args: StreamTarget & { atOffset?: number }): Promise<CoreState>;
  runtimeState(args: StreamTarget): Promise<RuntimeState>;
  reduce(args: StreamTarget & { event: StreamEvent; coreProcessorState?: Partial<CoreState> }): Promise<CoreState>;
  reset(args: StreamTarget): Promise<void>;
  kill(args: StreamTarget): Promise<void>;
  deleteStream(args: StreamTarget): Promise<void>;
  listStreams(args?: ListStreamsOptions): Promise<StreamList>;
}

/**
 * `getEvents` arguments (docs/protocol.md#getevents-by-time-tail-and-type, #long-poll): at most one of
 * `afterOffset`, `sinceTime` and `last`; `limit` not with `last`.
 */
export interface GetEventsOptions {
  afterOffset?: number;
  beforeOffset?: number | null;
  limit?: number;
  /** ISO 8601: the events with `createdAt` at or after it. */
  sinceTime?: string;
  /** The last N events (1 to 1000), ascending. */
  last?: number;
  /** Only these types; an empty page means: continue after `afterOffset + limit`. */
  eventTypes?: string[];
  /** Long-poll: wait up to this long (0 to 60000 ms) for a first event. */
  waitMs?: number;
}

/** `listStreams` arguments (docs/protocol.md#liststreams). */
export interface ListStreamsOptions {
  namespace?: string;
  prefix?: string;
  /** The `next` of the previous page. */
  after?: string;
  /** 1 to 1000, default 100. */
  limit?: number;
}

/** One stream in the directory. */
export interface StreamListEntry {
  path: string;
  streamId: string | null;
  createdAt: string;
  maxOffset: number;
  lastEventAt: string;
}

/** A page of the directory; `next` is null once the listing is complete. */
export interface StreamList {
  streams: StreamListEntry[];
  next: string | null;
}

/** Stable error codes. */
export type StreamErrorCode =
  | "batch_too_large"
  | "event_too_large"
  | "forbidden"
  | "idempotency_conflict"
  | "internal"
  | "invalid_event"
  | "invalid_namespace"
  | "invalid_path"
  | "invalid_request"
  | "method_not_allowed"
  | "not_found"
  | "offset_mismatch"
  | "stream_paused"
  | "subscriber_not_allowed"
  | "subscription_key_in_use"
  | "trimmed"
  | "unauthorized";

/** A batch pushed to a subscriber. */
export interface SubscriberBatch {
  type: "batch";
  subscriptionKey: string;
  /** The cursor before this batch: equals the previous batch's `throughOffset` on a connection,
   * and the checkpoint a consumer resumed from on its first batch. */
  afterOffset: number;
  /** The cursor after this batch: the last offset read, before filtering (`events` may be empty
   * or end earlier). Store it as the checkpoint. */
  throughOffset: number;
  /** Random per connection (per socket inbound, per dial outbound). */
  connectionId: string;
  /** The life of the log this batch belongs to (see `CoreState.streamId`). */
  streamId: string | null;
  events: StreamEvent[];
  streamMaxOffset: number;
  /** The core state when the batch was read: on a socket's first batch and on every state-only
   * (`events: false`) batch; absent otherwise (call `runtimeState` for it). Outbound
   * `processEventBatch` arguments always carry it. */
  state?: CoreState;
}

/** What an outbound subscriber implements. */
export interface OutboundSubscriber {
  requestStreamSubscription(args: {
    namespace: string;
    path: string;
    subscriptionKey: string;
    connectionId: string;
    streamMaxOffset: number;
    subscriptionConfiguredEvent: { offset: number; type: string; payload: Json; createdAt: string };
    streamRuntimeState: { coreProcessorState: CoreState };
    [merged: string]: unknown;
  }): Promise<{ replayAfterOffset?: number; eventTypes?: string[]; subscriber?: { [key: string]: Json } } | undefined | null>;
  /** The same batch an inbound socket gets, without `type`, plus the stream's name. */
  processEventBatch(args: Omit<SubscriberBatch, "type"> & { namespace: string; path: string; [merged: string]: unknown }): Promise<unknown>;
}
