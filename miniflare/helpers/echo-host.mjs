// EchoHost: the test-only outbound subscriber. It keeps
// {seen, checkpoint}; its dial reply asks for input events after its
// checkpoint; for each input it appends `output-echoed {seen}` through the
// STREAMS service binding, keyed so a re-delivery cannot duplicate it.
import { DurableObject } from "cloudflare:workers";

const INPUT_TYPE = "events.iterate.com/echo-example/input-received";
const OUTPUT_TYPE = "events.iterate.com/echo-example/output-echoed";

export class EchoHost extends DurableObject {
  async #load() {
    return (await this.ctx.storage.get("echo")) ?? { seen: 0, checkpoint: 0, dials: [], batches: 0, delayMs: 0, failDials: false };
  }

  async #save(value) {
    await this.ctx.storage.put("echo", value);
  }

  async requestStreamSubscription(args) {
    const echo = await this.#load();
    echo.dials.push(args);
    await this.#save(echo);
    if (echo.failDials) throw new Error("echo host refuses dials");
    return {
      replayAfterOffset: echo.checkpoint,
      eventTypes: [INPUT_TYPE],
      subscriber: { processor: { announcement: { slug: "echo-example", version: "0.1.0" } } },
    };
  }

  async processEventBatch(args) {
    const { namespace, path, events } = args;
    const echo = await this.#load();
    echo.batches += 1;
    // Test bookkeeping: every offset received (re-deliveries included) and the last batch's shape.
    echo.received = [...(echo.received ?? []), ...events.map((e) => e.offset)];
    echo.lastBatch = {
      keys: Object.keys(args),
      subscriptionKey: args.subscriptionKey,
      streamMaxOffset: args.streamMaxOffset,
      stateMaxOffset: args.state?.maxOffset,
      processorName: args.processorName,
      count: events.length,
    };
    echo.inFlight = (echo.inFlight ?? 0) + 1;
    echo.maxInFlight = Math.max(echo.maxInFlight ?? 0, echo.inFlight);
    await this.#save(echo);
    if (echo.delayMs) await new Promise((resolve) => setTimeout(resolve, echo.delayMs));
    for (const event of events) {
      if (event.type !== INPUT_TYPE || event.offset <= echo.checkpoint) continue;
      echo.seen += 1;
      await this.env.STREAMS.append({
        namespace,
        path,
        event: { type: OUTPUT_TYPE, payload: { seen: echo.seen }, idempotencyKey: `echo-example/output:${event.offset}` },
      });
      echo.checkpoint = event.offset;
      echo.delivered = [...(echo.delivered ?? []), event.offset];
    }
    echo.inFlight -= 1;
    await this.#save(echo);
  }

  // Test controls, called from the client worker through the ECHO_HOST binding.
  async inspect() {
    return this.#load();
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
