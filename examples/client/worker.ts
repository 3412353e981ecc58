import { createStreamsClient, StreamError, type StreamsBinding } from "@streams/client";

interface Env {
  STREAMS: StreamsBinding; // services = [{ binding = "STREAMS", service = "streams" }]
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const streams = createStreamsClient({ binding: env.STREAMS });
    try {
      const visit = await streams.append("/site/visits", { type: "app/visited", payload: { url: request.url } });
      const recent = await streams.getEvents("/site/visits", { afterOffset: Math.max(0, visit.offset - 5), limit: 5 });
      return Response.json({ offset: visit.offset, recent: recent.map((e) => e.type) });
    } catch (e) {
      if (e instanceof StreamError) return Response.json({ error: e.code }, { status: 502 });
      throw e;
    }
  },
};
