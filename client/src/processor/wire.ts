// What the stream sends an outbound subscriber, what the host replies, and the one call it makes back.
import type { StreamsClient } from "../client.js";
import type { EventInput, OutboundSubscriber, StreamEvent, StreamsService } from "../types.js";

/**
 * `requestStreamSubscription` arguments (the `transformInput.shallowMerge` keys included);
 * `firstOffset` is the stream's first kept offset (docs/protocol.md#outbound-subscribers).
 */
export type DialArgs = Parameters<OutboundSubscriber["requestStreamSubscription"]>[0] & { firstOffset?: number };

/** `processEventBatch` arguments. */
export type BatchArgs = Parameters<OutboundSubscriber["processEventBatch"]>[0];

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

/** Where processors append: the streams service binding or a `createStreamsClient` instance. */
export type StreamsAppender = Pick<StreamsService, "append"> | Pick<StreamsClient, "namespace" | "append">;

/** Appends `event` to the stream `target` through either kind of appender. */
export function appendTo(streams: StreamsAppender, target: { namespace: string; path: string }, event: EventInput): Promise<StreamEvent> {
  // A client has its namespace as a string; on a service binding every property is an RPC stub.
  if (typeof (streams as { namespace?: unknown }).namespace === "string") {
    return (streams as Pick<StreamsClient, "append">).append(target, event);
  }
  return (streams as Pick<StreamsService, "append">).append({ ...target, event });
}
