// Types for callers of the `streams` Worker (STREAM.md §3, §6, §9, §11).
// Bind it with `services = [{ binding = "STREAMS", service = "streams" }]` and
// declare `STREAMS: StreamsService` in your Env.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What you append (STREAM.md §3.1). Unknown keys are rejected. */
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

/** A committed event, keys in this order on the wire (STREAM.md §3.2). */
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

/** The reduction of every event (STREAM.md §6.1). */
export interface CoreState {
  namespace: string;
  path: string;
  createdAt: string;
  incarnationId: string;
  metadata: { [key: string]: Json };
  config: {
    simulatedStorageSyncDelayMs: number;
    circuitBreaker?: { burstCapacity: number; refillRatePerMinute: number };
  };
  eventCount: number;
  maxOffset: number;
  childPaths: string[];
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

/** `runtimeState()` (STREAM.md §11). */
export interface RuntimeState {
  coreProcessorState: CoreState;
  runtime: {
    connections: { [subscriptionKey: string]: ConnectionReport };
    redial: { [subscriptionKey: string]: { failures: number; retryAt: string } };
    idleTeardownAt: string | null;
  };
}

/** Which stream: `namespace` defaults to "default". */
export interface StreamTarget {
  namespace?: string;
  path: string;
}

/**
 * The Worker entrypoint, reached through a service binding (STREAM.md §9.2).
 * Every method rejects with an Error whose message is `<code>: <message>`.
 */
export interface StreamsService {
  append(args: StreamTarget & { streamPath?: string; event: EventInput }): Promise<StreamEvent>;
  appendBatch(args: StreamTarget & { streamPath?: string; events: EventInput[] }): Promise<StreamEvent[]>;
  getEvent(args: StreamTarget & ({ offset: number } | { idempotencyKey: string })): Promise<StreamEvent | undefined>;
  getEvents(
    args: StreamTarget & { afterOffset?: number; beforeOffset?: number | null; limit?: number },
  ): Promise<StreamEvent[]>;
  runtimeState(args: StreamTarget): Promise<RuntimeState>;
  reduce(args: StreamTarget & { event: StreamEvent; coreProcessorState?: Partial<CoreState> }): Promise<CoreState>;
  reset(args: StreamTarget): Promise<void>;
  kill(args: StreamTarget): Promise<void>;
}

/** Stable error codes (STREAM.md §8). */
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
  | "unauthorized";

/** A batch pushed to a subscriber (STREAM.md §10). */
export interface SubscriberBatch {
  type: "batch";
  subscriptionKey: string;
  events: StreamEvent[];
  streamMaxOffset: number;
  state: CoreState;
}

/** What an outbound subscriber implements (STREAM.md §10.2). */
export interface OutboundSubscriber {
  requestStreamSubscription(args: {
    namespace: string;
    path: string;
    subscriptionKey: string;
    streamMaxOffset: number;
    subscriptionConfiguredEvent: { offset: number; type: string; payload: Json; createdAt: string };
    streamRuntimeState: { coreProcessorState: CoreState };
    [merged: string]: unknown;
  }): Promise<{ replayAfterOffset?: number; eventTypes?: string[]; subscriber?: { [key: string]: Json } } | undefined | null>;
  processEventBatch(args: {
    namespace: string;
    path: string;
    subscriptionKey: string;
    events: StreamEvent[];
    streamMaxOffset: number;
    state: CoreState;
    [merged: string]: unknown;
  }): Promise<unknown>;
}
