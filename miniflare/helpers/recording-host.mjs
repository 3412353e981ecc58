// RecordingHost: an outbound subscriber for the delivery tests, loaded in place of EchoHost
// (`startStreams({echoScriptPath})`, same class name and binding). It appends nothing; it records
// every dial and every batch it receives (without the state, to stay small), counts the dials that
// have answered (`dialsEnded`), and can be told to
// refuse dials, fail the next N batches, answer dials and batches slowly, or hold every dial until
// the test calls `releaseDials()` (`holdDials: true`: a dial known to be in flight, no race).
import { DurableObject } from "cloudflare:workers";

export class EchoHost extends DurableObject {
  /** The held dials' resumptions (holdDials). */
  #held = [];

  async #load() {
    return (
      (await this.ctx.storage.get("host")) ?? {
        dials: [],
        batches: [],
        reply: { replayAfterOffset: 0 },
        failDials: false,
        failBatches: 0,
        delayMs: 0,
        dialDelayMs: 0,
        inFlight: 0,
        maxInFlight: 0,
      }
    );
  }

  async #save(value) {
    await this.ctx.storage.put("host", value);
  }

  async requestStreamSubscription(args) {
    const host = await this.#load();
    const { streamRuntimeState, ...rest } = args;
    host.dials.push({ ...rest, keys: Object.keys(args), stateStreamId: streamRuntimeState?.coreProcessorState?.streamId });
    await this.#save(host);
    try {
      if (host.dialDelayMs) await new Promise((resolve) => setTimeout(resolve, host.dialDelayMs));
      if (host.holdDials) await new Promise((resolve) => this.#held.push(resolve));
      if (host.failDials) throw new Error("recording host refuses dials");
      return host.reply;
    } finally {
      // How many dials have answered (or failed): tests wait on this, not on a sleep.
      const after = await this.#load();
      after.dialsEnded = (after.dialsEnded ?? 0) + 1;
      await this.#save(after);
    }
  }

  async processEventBatch(args) {
    const host = await this.#load();
    const { state, events, ...rest } = args;
    host.inFlight += 1;
    host.maxInFlight = Math.max(host.maxInFlight, host.inFlight);
    const failing = host.failBatches > 0;
    if (failing) host.failBatches -= 1;
    host.batches.push({ ...rest, keys: Object.keys(args), offsets: events.map((e) => e.offset), stateStreamId: state?.streamId, failed: failing });
    await this.#save(host);
    if (host.delayMs) await new Promise((resolve) => setTimeout(resolve, host.delayMs));
    const after = await this.#load();
    after.inFlight -= 1;
    await this.#save(after);
    if (failing) throw new Error("recording host fails this batch");
  }

  async inspect() {
    return this.#load();
  }

  /** Lets every held dial go on. */
  releaseDials() {
    for (const resume of this.#held.splice(0)) resume();
  }

  async configure(options) {
    await this.#save({ ...(await this.#load()), ...options });
  }

  abort() {
    this.ctx.abort("recording host aborted by the test");
  }
}

export default {
  async fetch() {
    return new Response("recording host worker", { status: 404 });
  },
};
