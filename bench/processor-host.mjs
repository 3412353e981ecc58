// Bench processor Worker (scenario 10): the DO `BenchProcessor` hosts one processor, `sum`, that
// adds up `payload.i` of the bench events through the processor host (client/src/processor;
// bench/run.mjs bundles this file with esbuild). No side effects: the number is delivery,
// reduction and the per-batch SQLite commit.
import { DurableObject } from "cloudflare:workers";
import { defineProcessor, ProcessorHost } from "../client/src/processor/index.ts";

const sum = defineProcessor({
  slug: "sum",
  version: "1",
  eventTypes: ["bench/x"],
  initialState: { total: 0, count: 0 },
  reduce: (state, event) => ({ total: state.total + event.payload.i, count: state.count + 1 }),
});

export class BenchProcessor extends DurableObject {
  host = new ProcessorHost(this.ctx, { processors: [sum], streams: this.env.STREAMS });

  requestStreamSubscription(args) {
    return this.host.requestStreamSubscription(args);
  }

  processEventBatch(args) {
    return this.host.processEventBatch(args);
  }

  processorStatus(args) {
    return this.host.status(args);
  }
}

export default {
  fetch: () => new Response("bench processor", { status: 404 }),
};
