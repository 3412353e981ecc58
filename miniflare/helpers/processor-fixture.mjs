// Test processor host for miniflare/processor_*.test.mjs (bundled with esbuild: it imports the
// processor host's TypeScript source). One DO class `Processors` hosts two processors:
//
//   counter  app/add {n}: total += n, count += 1, offsets += [offset]; onEvent appends
//            app/summed {input, total}. Version from the COUNTER_VERSION binding (default "1").
//            Test behaviours, read from the input payload: failTimes k → reduce throws on its
//            first k attempts at that offset (payload.tag keeps tests apart); poison → reduce always throws; delayMs → onEvent
//            waits that long before appending; gate → onEvent waits until the test calls openGate({gate}).
//   tally    app/add and app/mul: counts events per type (no side effects).
//
// `KeptProcessors` hosts `kept` alone (dialled as KEPT_PROCESSORS).
// `ClientProcessors` is the same host appending through createStreamsClient({binding}) instead of
// the bare service binding; `FlakyProcessors` appends through a client whose calls fail with the
// code given to `failAppendsWith(code)` (`network`, `protocol`, `timeout`; `null` heals it).
// `onEventOffsets({namespace, path})` lists the input offsets `onEvent` ran for in this isolate,
// `onEventEndedOffsets` those whose `onEvent` has returned or thrown, `receivedBatches()` how many
// batches reached the object (tests wait on them, not on sleeps); `openGate({gate})` releases a held onEvent. The worker's fetch handler makes calls on either DO and returns JSON
// outcomes, so error messages survive (POST {name, method, arg, viaClient?}); abort() restarts
// the object.
import { DurableObject } from "cloudflare:workers";
import { defineProcessor, ProcessorHost } from "../../client/src/processor/index.ts";
import { createStreamsClient, StreamError } from "../../client/src/index.ts";

/** Attempts per "<payload.tag>:<offset>" in this isolate, for failTimes. */
const attempts = new Map();
/** Input offsets onEvent ran for, per "<namespace>:<path>", in this isolate. */
const onEventRuns = new Map();
/** Input offsets whose onEvent has returned or thrown, per "<namespace>:<path>", in this isolate. */
const onEventEnds = new Map();
/** Gates onEvent waits on (payload.gate) until the test opens them, by name, in this isolate. */
const gates = new Map();

function gate(name) {
  if (!gates.has(name)) {
    let open;
    const opened = new Promise((resolve) => (open = resolve));
    gates.set(name, { opened, open });
  }
  return gates.get(name);
}

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
    async onEvent({ event, state, append, namespace, path }) {
      const runs = `${namespace}:${path}`;
      onEventRuns.set(runs, [...(onEventRuns.get(runs) ?? []), event.offset]);
      try {
        if (event.payload.delayMs) await new Promise((resolve) => setTimeout(resolve, event.payload.delayMs));
        if (event.payload.gate) await gate(event.payload.gate).opened;
        await append({ type: "app/summed", payload: { input: event.offset, total: state.total } });
      } finally {
        onEventEnds.set(runs, [...(onEventEnds.get(runs) ?? []), event.offset]);
      }
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

/**
 * edge (EdgeProcessors only): the documented edges of a processor (docs/processors.md). It halts
 * after 2 failures, not the default 3. Payload: nonJson → reduce returns undefined (not JSON);
 * stateBytes n → the state holds a string of n bytes; appendWith {idempotencyKey?, offset?} →
 * onEvent's append is given them.
 */
const edge = defineProcessor({
  slug: "edge",
  version: "1",
  eventTypes: ["app/edge"],
  maxConsecutiveFailures: 2,
  initialState: { count: 0 },
  reduce(state, event) {
    if (event.payload?.nonJson) return undefined;
    const next = { count: state.count + 1 };
    if (event.payload?.stateBytes) next.blob = "x".repeat(event.payload.stateBytes);
    return next;
  },
  async onEvent({ event, append }) {
    if (event.payload?.appendWith) await append({ type: "app/edge-out", ...event.payload.appendWith });
  },
});

/**
 * kept (KeptProcessors only): counter's reduce with `onTrimmed: "startFromFirstKept"`; onEvent
 * appends app/kept-out {input} (docs/processors.md#when-retention-removed-the-checkpoint).
 */
const kept = defineProcessor({
  slug: "kept",
  version: "1",
  eventTypes: ["app/add"],
  onTrimmed: "startFromFirstKept",
  initialState: { total: 0, count: 0, offsets: [] },
  reduce: (state, event) => ({ total: state.total + event.payload.n, count: state.count + 1, offsets: [...state.offsets, event.offset] }),
  async onEvent({ event, append }) {
    await append({ type: "app/kept-out", payload: { input: event.offset } });
  },
});

/** The host's table as it was before `handled_through`, with one row at checkpoint 5 for default:/legacy. */
function createLegacyTable(ctx) {
  ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS streams_processor (
    namespace TEXT NOT NULL, path TEXT NOT NULL, slug TEXT NOT NULL,
    version TEXT NOT NULL, stream_id TEXT, checkpoint INTEGER NOT NULL, state TEXT NOT NULL, connection_id TEXT,
    failures INTEGER NOT NULL, last_error TEXT, failed_offset INTEGER,
    halted INTEGER NOT NULL, halt_reported INTEGER NOT NULL, skip_offset INTEGER,
    PRIMARY KEY (namespace, path, slug))`);
  ctx.storage.sql.exec(
    `INSERT OR IGNORE INTO streams_processor VALUES ('default', '/legacy', 'counter', '1', NULL, 5, ?, 'old', 0, NULL, NULL, 0, 0, NULL)`,
    JSON.stringify({ total: 3, count: 1, offsets: [4] }),
  );
  return true;
}

export class Processors extends DurableObject {
  /** Set on LegacyProcessors: the table exists in its old layout before the host opens it. */
  legacy = this.constructor === LegacyProcessors && createLegacyTable(this.ctx);
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

  /** How many processEventBatch calls reached this object (running or waiting for their turn). */
  batchesReceived = 0;

  processEventBatch(args) {
    this.batchesReceived += 1;
    return this.host.processEventBatch(args);
  }

  receivedBatches() {
    return this.batchesReceived;
  }

  openGate({ gate: name }) {
    gate(name).open();
    return true;
  }

  processorStatus(args) {
    return this.host.status(args);
  }

  resumeProcessor(args) {
    return this.host.resume(args);
  }

  onEventOffsets({ namespace, path }) {
    return onEventRuns.get(`${namespace}:${path}`) ?? [];
  }

  onEventEndedOffsets({ namespace, path }) {
    return onEventEnds.get(`${namespace}:${path}`) ?? [];
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

export class LegacyProcessors extends Processors {}

/** A host of the `edge` processor alone. */
export class EdgeProcessors extends Processors {
  host = new ProcessorHost(this.ctx, { processors: [edge], streams: this.env.STREAMS, log: () => {} });
}

/** A host of the `kept` processor alone. */
export class KeptProcessors extends Processors {
  host = new ProcessorHost(this.ctx, { processors: [kept], streams: this.env.STREAMS, log: () => {} });
}

/** The same host, appending through a client that fails with a chosen client code until healed. */
export class FlakyProcessors extends Processors {
  failWith = null;

  streams() {
    const healthy = createStreamsClient({ binding: this.env.STREAMS });
    // The way to the stream is down (network), or a proxy answers in its place (protocol).
    const broken = createStreamsClient({
      baseUrl: "http://streams.invalid",
      fetch: async () => {
        if (this.failWith === "network") throw new TypeError("fetch failed: connection refused");
        return new Response("<html><body>502 Bad Gateway</body></html>", { status: 502, headers: { "content-type": "text/html" } });
      },
    });
    return {
      namespace: healthy.namespace,
      append: (target, event) => {
        if (this.failWith === null) return healthy.append(target, event);
        if (this.failWith === "timeout") return Promise.reject(new StreamError("timeout", "no connection within 10000 ms"));
        return broken.append(target, event);
      },
    };
  }

  failAppendsWith(code) {
    this.failWith = code;
  }
}

export default {
  async fetch(request, env) {
    const { name, method, arg, viaClient, flaky, legacy, edge, kept } = await request.json();
    let outcome;
    try {
      const ns = kept ? env.KEPT_PROCESSORS : edge ? env.EDGE_PROCESSORS : legacy ? env.LEGACY_PROCESSORS : flaky ? env.FLAKY_PROCESSORS : viaClient ? env.CLIENT_PROCESSORS : env.PROCESSORS;
      outcome = { ok: true, result: await ns.getByName(name)[method](arg) };
    } catch (e) {
      outcome = { ok: false, error: String(e?.message ?? e) };
    }
    return Response.json(outcome);
  },
};
