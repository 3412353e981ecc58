// Test Worker (runs inside workerd, next to "streams"): a full rebuild of a stream's state, folding
// events through the stream's own pure `reduce` (docs/protocol.md#reduce) one after another, without
// a round trip to Node per event. POST {name, events, state} → {ok:true, state} | {ok:false, error}.
export default {
  async fetch(request, env) {
    const { name, events, state } = await request.json();
    const stream = env.STREAM.getByName(name);
    let folded = state;
    for (const event of events) {
      try {
        folded = await stream.reduce({ event, coreProcessorState: folded });
      } catch (e) {
        return Response.json({ ok: false, error: `reduce @${event.offset}: ${e?.message ?? e}` });
      }
    }
    return Response.json({ ok: true, state: folded });
  },
};
