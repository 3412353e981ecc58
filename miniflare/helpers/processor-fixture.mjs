// Test processor host for miniflare/processor_*.test.mjs (bundled with esbuild: it imports the
// processor host's TypeScript source). One DO class `Processors` hosts two processors:
//
//   counter  app/add {n}: total += n, count += 1, offsets += [offset]; onEvent appends
//            app/summed {input, total}. Version from the COUNTER_VERSION binding (default "1").
//            Test behaviours, read from the input payload: failTimes k → reduce throws on its
//            first k attempts at that offset (payload.tag keeps tests apart); poison → reduce always throws; delayMs → onEvent
//            waits that long before appending.
//   tally    app/add and app/mul: counts events per type (no side effects).
//
// `ClientProcessors` is the same host appending through createStreamsClient({binding}) instead of
// the bare service binding. The worker's fetch handler makes calls on either DO and returns JSON
// outcomes, so error messages survive (POST {name, method, arg, viaClient?}); abort() restarts
// the object.
import { DurableObject } from "cloudflare:workers";
import { defineProcessor, ProcessorHost } from "../../client/src/processor/index.ts";
import { createStreamsClient } from "../../client/src/index.ts";

/** Attempts per "<payload.tag>:<offset>" in this isolate, for failTimes. */
const attempts = new Map();

function counter(version) {
  return defineProcessor({
    slug: "counter",
    version,
    eventTypes: ["app/add"],
    initialState: { total: 0, count: 0, offsets: [] },
    reduce(state, event) {
      const { n, failTimes, poison } = event.payload;
      const at = `${event.payload.tag}:${event.offset}`;
      const tries = (attempts.get(at) ?? 0) + 1;
      attempts.set(at, tries);
      if (poison) throw new Error(`poison event at ${event.offset}`);
      if (failTimes && tries <= failTimes) throw new Error(`attempt ${tries} at ${event.offset} fails`);
      return { total: state.total + n, count: state.count + 1, offsets: [...state.offsets, event.offset] };
    },
    async onEvent({ event, state, append }) {
      if (event.payload.delayMs) await new Promise((resolve) => setTimeout(resolve, event.payload.delayMs));
      await append({ type: "app/summed", payload: { input: event.offset, total: state.total } });
    },
  });
}

const tally = defineProcessor({
  slug: "tally",
  version: "1",
  eventTypes: ["app/add", "app/mul"],
  initialState: {},
  reduce: (state, event) => ({ ...state, [event.type]: (state[event.type] ?? 0) + 1 }),
});

export class Processors extends DurableObject {
  host = new ProcessorHost(this.ctx, {
    processors: [counter(this.env.COUNTER_VERSION ?? "1"), tally],
    streams: this.streams(),
    log: () => {},
  });

  /** Where the host appends: the service binding itself. */
  streams() {
    return this.env.STREAMS;
  }

  requestStreamSubscription(args) {
    return this.host.requestStreamSubscription(args);
  }

  processEventBatch(args) {
    return this.host.processEventBatch(args);
  }

  processorStatus(args) {
    return this.host.status(args);
  }

  resumeProcessor(args) {
    return this.host.resume(args);
  }

  abort() {
    this.ctx.abort("processor host aborted by the test");
  }
}

/** The same host, appending through a `createStreamsClient` over the service binding. */
export class ClientProcessors extends Processors {
  streams() {
    return createStreamsClient({ binding: this.env.STREAMS });
  }
}

export default {
  async fetch(request, env) {
    const { name, method, arg, viaClient } = await request.json();
    let outcome;
    try {
      const ns = viaClient ? env.CLIENT_PROCESSORS : env.PROCESSORS;
      outcome = { ok: true, result: await ns.getByName(name)[method](arg) };
    } catch (e) {
      outcome = { ok: false, error: String(e?.message ?? e) };
    }
    return Response.json(outcome);
  },
};
