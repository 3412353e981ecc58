// EchoHost: the test-only outbound subscriber of the acceptance checklist, built on the processor
// host (client/src/processor). Its one processor `echo-example` counts input events (`seen`) and,
// for each, appends `output-echoed {seen}` through the STREAMS service binding; the host keys that
// append `echo-example:<subscription key>:<input offset>:0`, so a re-delivery cannot duplicate it.
//
// Test controls and bookkeeping (kept in the DO's KV storage, beside the host's own table):
// configure({delayMs, failDials, ignoreFirstOffset}), inspect() → {seen, checkpoint, delivered, dials, batches,
// received, lastBatch, inFlight, maxInFlight, status (the host's status())}, abort().
import { DurableObject } from "cloudflare:workers";
import { defineProcessor, ProcessorHost } from "../../client/src/processor/index.ts";

const INPUT_TYPE = "events.iterate.com/echo-example/input-received";
const OUTPUT_TYPE = "events.iterate.com/echo-example/output-echoed";

const echo = defineProcessor({
  slug: "echo-example",
  version: "0.1.0",
  eventTypes: [INPUT_TYPE],
  initialState: { seen: 0, delivered: [] },
  reduce: (state, event) => ({ seen: state.seen + 1, delivered: [...state.delivered, event.offset] }),
  onEvent: async ({ state, append }) => {
    await append({ type: OUTPUT_TYPE, payload: { seen: state.seen } });
  },
});

export class EchoHost extends DurableObject {
  host = new ProcessorHost(this.ctx, { processors: [echo], streams: this.env.STREAMS });

  async #load() {
    return (await this.ctx.storage.get("echo")) ?? { dials: [], batches: 0, delayMs: 0, failDials: false };
  }

  async #save(value) {
    await this.ctx.storage.put("echo", value);
  }

  async requestStreamSubscription(args) {
    const book = await this.#load();
    book.dials.push(args);
    book.stream = { namespace: args.namespace, path: args.path };
    await this.#save(book);
    if (book.failDials) throw new Error("echo host refuses dials");
    // A subscriber that does not look at firstOffset answers its own checkpoint, trimmed or not.
    if (book.ignoreFirstOffset) delete args.firstOffset;
    return this.host.requestStreamSubscription(args);
  }

  async processEventBatch(args) {
    const { events } = args;
    const book = await this.#load();
    book.batches += 1;
    // Every offset received (re-deliveries included) and the last batch's shape.
    book.received = [...(book.received ?? []), ...events.map((e) => e.offset)];
    book.lastBatch = {
      keys: Object.keys(args),
      subscriptionKey: args.subscriptionKey,
      streamMaxOffset: args.streamMaxOffset,
      stateMaxOffset: args.state?.maxOffset,
      processorName: args.processorName,
      count: events.length,
    };
    book.inFlight = (book.inFlight ?? 0) + 1;
    book.maxInFlight = Math.max(book.maxInFlight ?? 0, book.inFlight);
    await this.#save(book);
    if (book.delayMs) await new Promise((resolve) => setTimeout(resolve, book.delayMs));
    const outcome = await this.host.processEventBatch(args);
    // Only a delivery that resolved leaves flight (a rejected one stays counted).
    const after = await this.#load();
    after.inFlight -= 1;
    await this.#save(after);
    return outcome;
  }

  async inspect() {
    const book = await this.#load();
    const status = book.stream ? this.host.status({ ...book.stream, slug: echo.slug }) : undefined;
    const delivered = status?.state.delivered ?? [];
    // `checkpoint` is the last input processed (the host's own checkpoint, `status.checkpoint`, is
    // the last offset the stream read, which also covers the filtered-out events after it).
    return { ...book, seen: status?.state.seen ?? 0, delivered, checkpoint: delivered.at(-1) ?? 0, status };
  }

  async configure(options) {
    await this.#save({ ...(await this.#load()), ...options });
  }

  abort() {
    this.ctx.abort("echo host aborted by the test");
  }
}

export default {
  async fetch() {
    return new Response("echo worker", { status: 404 });
  },
};
