// The shapes the stream sends an outbound subscriber, and the one call the host makes back.
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface EventInput {
  type: string;
  payload?: Json;
  metadata?: { [key: string]: Json };
  source?: { processor?: { slug: string; version: string } };
  idempotencyKey?: string;
  offset?: number;
}

export interface StreamEvent {
  type: string;
  payload?: Json;
  metadata?: { [key: string]: Json };
  source?: { processor?: { slug: string; version: string } };
  idempotencyKey?: string;
  offset: number;
  createdAt: string;
}

/** The streams service binding's `append` (the Worker entrypoint). */
export interface StreamsBindingAppender {
  append(args: { namespace: string; path: string; event: EventInput }): Promise<StreamEvent>;
}

/** A `createStreamsClient(...)` instance's `append`. */
export interface StreamsClientAppender {
  readonly namespace: string;
  append(stream: { namespace: string; path: string }, event: EventInput): Promise<StreamEvent>;
}

/** Where processors append: the streams service binding or a `createStreamsClient` instance. */
export type StreamsAppender = StreamsBindingAppender | StreamsClientAppender;

/** Appends `event` to the stream `target` through either kind of appender. */
export function appendTo(streams: StreamsAppender, target: { namespace: string; path: string }, event: EventInput): Promise<StreamEvent> {
  // A client has its namespace as a string; on a service binding every property is an RPC stub.
  if (typeof (streams as Partial<StreamsClientAppender>).namespace === "string") {
    return (streams as StreamsClientAppender).append(target, event);
  }
  return (streams as StreamsBindingAppender).append({ ...target, event });
}

/** `requestStreamSubscription` arguments (the `transformInput.shallowMerge` keys included). */
export interface DialArgs {
  namespace: string;
  path: string;
  subscriptionKey?: string;
  connectionId?: string;
  streamRuntimeState?: { coreProcessorState?: { streamId?: string | null } };
  processorName?: string;
  [merged: string]: unknown;
}

/** `processEventBatch` arguments. */
export interface BatchArgs {
  namespace: string;
  path: string;
  subscriptionKey?: string;
  connectionId?: string;
  streamId?: string | null;
  afterOffset: number;
  throughOffset: number;
  events: StreamEvent[];
  processorName?: string;
  [merged: string]: unknown;
}

export interface Announcement {
  slug: string;
  version: string;
  consumes: string[];
  description?: string;
}

export interface DialReply {
  replayAfterOffset: number;
  eventTypes: string[];
  subscriber: { processor: { announcement: Announcement } };
}
