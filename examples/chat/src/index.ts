// examples/chat: a chat app Worker beside streams (wrangler.toml says how to run both).
//
//   POST /rooms/<room>/messages {author, text}   appends chat/message-posted to the stream /chat/<room>
//   GET  /rooms/<room>/messages                  the last 20 messages, oldest first
//   GET  /rooms/<room>/counts                    messages per author, from the ChatCounts processor
//
// Each room is a stream. The first message of a room also wires it to the processor: the batch
// that appends it starts with the room's `S/subscription-configured`, keyed so that every later
// message finds it already there (an idempotency hit, nothing written).
import { DurableObject } from "cloudflare:workers";
import { createStreamsClient, type StreamEvent, type StreamsBinding, type StreamsClient } from "@streams/client";
import { defineProcessor, ProcessorHost, type BatchArgs, type DialArgs } from "@streams/client/processor";

interface Env {
  STREAMS: StreamsBinding;
  CHAT_COUNTS: DurableObjectNamespace<ChatCounts>;
}

const MESSAGE = "chat/message-posted";
const RECENT = 20;
/** One host object serves every room. */
const COUNTS_OBJECT = "chat-counts";

interface Message {
  author: string;
  text: string;
}

interface Counts {
  byAuthor: Record<string, number>;
}

const messageCounts = defineProcessor({
  slug: "message-counts",
  version: "1",
  eventTypes: [MESSAGE],
  initialState: { byAuthor: {} } as Counts,
  reduce: (state, event): Counts => {
    const { author } = event.payload as unknown as Message;
    return { byAuthor: { ...state.byAuthor, [author]: (state.byAuthor[author] ?? 0) + 1 } };
  },
});

export class ChatCounts extends DurableObject<Env> {
  host = new ProcessorHost(this.ctx, { processors: [messageCounts], streams: this.env.STREAMS });
  requestStreamSubscription(args: DialArgs) { return this.host.requestStreamSubscription(args); }
  processEventBatch(args: BatchArgs) { return this.host.processEventBatch(args); }
  counts(path: string): Counts { return this.host.status({ namespace: "default", path, slug: messageCounts.slug }).state as Counts; }
}

/** The room's wiring to ChatCounts (docs/processors.md#wiring-a-stream-to-a-processor). */
const wiring = {
  type: "events.iterate.com/stream/subscription-configured",
  payload: {
    subscriptionKey: "message-counts",
    subscriber: {
      type: "callable",
      callable: {
        type: "workers-rpc",
        via: { type: "env-binding", bindingType: "durable-object-namespace", bindingName: "CHAT_COUNTS", durableObject: { name: COUNTS_OBJECT } },
      },
    },
  },
  idempotencyKey: "chat-example:wiring:1",
};

async function post(streams: StreamsClient, path: string, body: unknown): Promise<Response> {
  const { author, text } = (body ?? {}) as Partial<Message>;
  if (typeof author !== "string" || author.trim() === "" || typeof text !== "string") {
    return Response.json({ error: "send {author, text}" }, { status: 400 });
  }
  const [, message] = await streams.appendBatch(path, [wiring, { type: MESSAGE, payload: { author: author.trim(), text } }]);
  return Response.json(message, { status: 201 });
}

/** The last `RECENT` messages, read backwards a page at a time from the end of the stream. */
async function recent(streams: StreamsClient, path: string): Promise<Message[]> {
  const { maxOffset } = (await streams.runtimeState(path)).coreProcessorState;
  const messages: StreamEvent[] = [];
  for (let before = maxOffset + 1; messages.length < RECENT && before > 1; ) {
    const after = Math.max(0, before - 1 - 100);
    const page = await streams.getEvents(path, { afterOffset: after, beforeOffset: before, limit: 100 });
    messages.unshift(...page.filter((e) => e.type === MESSAGE));
    before = after + 1;
  }
  return messages.slice(-RECENT).map((e) => e.payload as unknown as Message);
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const route = /^\/rooms\/([a-z0-9-]{1,64})\/(messages|counts)$/.exec(new URL(request.url).pathname);
    if (!route) return new Response("not found", { status: 404 });
    const [, room, what] = route;
    const path = `/chat/${room}`;
    const streams = createStreamsClient({ binding: env.STREAMS });
    if (what === "counts") return Response.json(await env.CHAT_COUNTS.getByName(COUNTS_OBJECT).counts(path));
    if (request.method === "POST") return post(streams, path, await request.json().catch(() => null));
    return Response.json(await recent(streams, path));
  },
};
