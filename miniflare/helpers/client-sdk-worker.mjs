// A Worker that uses @streams/client through its service binding (client/dist, built by
// scripts/build.sh). POST a JSON body:
//   {op:"call", namespace?, method, args:[path, ...rest]}   → client[method](...args)
//   {op:"events", namespace?, args:[path, options]}          → every event of client.events()
//   {op:"subscribe", namespace?, token?, path, options, append?:[event inputs], untilEvents, timeoutMs}
//        subscribes, appends `append` one by one once connected, and collects items until
//        `untilEvents` events arrived (or the timeout); → {items, checkpoint, streamId}
// Answer: {ok:true, result} | {ok:false, error:{name, code, status, message, isStreamError}}.
import { createStreamsClient } from "../../client/dist/index.js";
import { describeError } from "./describe-error.mjs";

async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

async function subscribe(client, { path, options = {}, append = [], untilEvents, timeoutMs = 10_000 }) {
  const items = [];
  const sub = client.subscribe(path, options);
  const timer = setTimeout(() => sub.close(), timeoutMs);
  let seen = 0;
  try {
    const writer = (async () => {
      await sub.whenConnected();
      for (const event of append) await client.append(path, event);
    })();
    for await (const item of sub) {
      items.push(item);
      if (item.type === "batch") seen += item.events.length;
      if (seen >= untilEvents) break;
    }
    await writer;
    return { items, checkpoint: sub.checkpoint, streamId: sub.streamId, status: sub.status() };
  } finally {
    clearTimeout(timer);
    await sub.close();
  }
}

export default {
  async fetch(request, env) {
    const body = await request.json();
    const client = createStreamsClient({
      binding: env.STREAMS,
      ...(body.namespace !== undefined ? { namespace: body.namespace } : {}),
      ...(body.token !== undefined ? { token: body.token } : {}),
    });
    try {
      let result;
      if (body.op === "call") result = await client[body.method](...body.args);
      else if (body.op === "events") result = await collect(client.events(...body.args));
      else if (body.op === "subscribe") result = await subscribe(client, body);
      else throw new Error(`unknown op ${body.op}`);
      return Response.json({ ok: true, result: result ?? null, undefinedResult: result === undefined });
    } catch (e) {
      return Response.json({ ok: false, error: describeError(e) });
    }
  },
};
