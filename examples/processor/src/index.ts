// The processor Worker of examples/processor (wrangler.toml). `GET /status?path=/orders` shows the
// counter of one stream; `POST /resume?path=/orders&skip=1` clears a halt, stepping over the event
// that failed.
import { DurableObject } from "cloudflare:workers";
import { defineProcessor, ProcessorHost, type BatchArgs, type DialArgs, type ProcessorKey, type StreamsAppender } from "@streams/client/processor";

interface Env {
  STREAMS: StreamsAppender;
  COUNTER: DurableObjectNamespace<Counter>;
}

const counter = defineProcessor({
  slug: "counter",
  version: "1",
  eventTypes: ["app/add"],
  initialState: { total: 0 },
  reduce: (state, event) => ({ total: state.total + Number((event.payload as { n?: unknown }).n ?? 0) }),
  onEvent: async ({ event, state, append }) => {
    await append({ type: "app/total", payload: { after: event.offset, total: state.total } });
  },
});

export class Counter extends DurableObject<Env> {
  host = new ProcessorHost(this.ctx, { processors: [counter], streams: this.env.STREAMS });
  requestStreamSubscription(args: DialArgs) { return this.host.requestStreamSubscription(args); }
  processEventBatch(args: BatchArgs) { return this.host.processEventBatch(args); }
  processorStatus(args: ProcessorKey) { return this.host.status(args); }
  resumeProcessor(args: ProcessorKey & { skip?: boolean }) { return this.host.resume(args); }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const key = { namespace: url.searchParams.get("namespace") ?? "default", path: url.searchParams.get("path") ?? "/", slug: "counter" };
    const stub = env.COUNTER.getByName("counter-1");
    if (request.method === "POST" && url.pathname === "/resume") {
      return Response.json(await stub.resumeProcessor({ ...key, skip: url.searchParams.get("skip") === "1" }));
    }
    if (url.pathname === "/status") return Response.json(await stub.processorStatus(key));
    return new Response("not found", { status: 404 });
  },
};
