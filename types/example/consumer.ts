// A TypeScript Worker that calls `streams` through a service binding.
// `npm test` type-checks it against ../streams.d.ts (tsc --noEmit).
import type { StreamEvent, StreamsService } from "../streams";

interface Env {
  STREAMS: StreamsService;
}

export default {
  async fetch(_request: Request, env: Env): Promise<Response> {
    const event: StreamEvent = await env.STREAMS.append({
      path: "/agents/a1",
      event: { type: "app/message", payload: { text: "hi" }, idempotencyKey: "m-1" },
    });
    const page = await env.STREAMS.getEvents({ path: "/agents/a1", afterOffset: event.offset - 1, limit: 10 });
    const state = await env.STREAMS.runtimeState({ namespace: "default", path: "/agents/a1" });
    return Response.json({ appended: event.offset, read: page.length, maxOffset: state.coreProcessorState.maxOffset });
  },
};

// The declarations must also refuse what the Worker refuses: each line below
// fails to type-check, and tsc fails if one of them ever starts to pass.
export async function misuse(env: Env): Promise<void> {
  // @ts-expect-error: `path` is required
  await env.STREAMS.append({ event: { type: "x" } });
  // @ts-expect-error: unknown event key
  await env.STREAMS.append({ path: "/a", event: { type: "x", foo: 1 } });
  // @ts-expect-error: getEvents has no `after` argument
  await env.STREAMS.getEvents({ path: "/a", after: 1 });
  // @ts-expect-error: test hooks are not on the entrypoint
  await env.STREAMS.runIdleTeardownNow({ path: "/a" });
}
