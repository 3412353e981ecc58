// Test client Worker (runs inside workerd, next to "streams").
//
// Errors thrown through Miniflare's Node proxy lose their message, so the tests make their
// calls from here and get JSON back. POST a JSON body:
//   {target:"do", name, method, arg?}            -> env.STREAM.getByName(name)[method](arg)
//   {target:"service", method, arg?}             -> env.STREAMS[method](arg)
//   {target:"do-by-id", name, method, arg?}      -> the same object reached by id only (no name):
//                                                   env.STREAM.get(idFromString(idFromName(name)))
//   {target:"do"|"service", name?, methods:[{method, arg?}, ...]}
//                                                -> all calls concurrently (Promise.all, one stub),
//                                                   body is an array of outcomes
// Outcome: {ok:true, hasResult:true, result} | {ok:true, hasResult:false} (result undefined)
//        | {ok:false, error: e.message, name: e.name}
// A missing `arg` key means "call with no arguments"; `arg: null` passes null.

function outcomeOf(promise) {
  return Promise.resolve()
    .then(() => promise())
    .then(
      (result) =>
        result === undefined ? { ok: true, hasResult: false } : { ok: true, hasResult: true, result },
      (e) => ({
        ok: false,
        error: e && typeof e === "object" && "message" in e ? String(e.message) : String(e),
        name: e && typeof e === "object" && e.name ? String(e.name) : undefined,
      }),
    );
}

function json(value, status = 200) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    text = JSON.stringify({ ok: false, error: `client-worker: result is not JSON-serializable: ${e.message}`, clientError: true });
  }
  return new Response(text, { status, headers: { "content-type": "application/json" } });
}

function targetOf(env, body) {
  if (body.target === "do") {
    if (typeof body.name !== "string") throw new Error("client-worker: `name` is required for target \"do\"");
    return env.STREAM.getByName(body.name);
  }
  if (body.target === "do-by-id") {
    if (typeof body.name !== "string") throw new Error("client-worker: `name` is required for target \"do-by-id\"");
    return env.STREAM.get(env.STREAM.idFromString(env.STREAM.idFromName(body.name).toString()));
  }
  if (body.target === "service") return env.STREAMS;
  throw new Error(`client-worker: unknown target ${JSON.stringify(body.target)}`);
}

function invoke(target, spec) {
  const { method } = spec;
  if (typeof method !== "string") throw new Error("client-worker: `method` must be a string");
  return "arg" in spec ? target[method](spec.arg) : target[method]();
}

export default {
  async fetch(request, env) {
    if (request.method !== "POST") return json({ ok: false, error: "client-worker: POST only", clientError: true }, 405);
    let body;
    try {
      body = await request.json();
    } catch (e) {
      return json({ ok: false, error: `client-worker: bad JSON: ${e.message}`, clientError: true }, 400);
    }
    let target;
    try {
      target = targetOf(env, body);
    } catch (e) {
      return json({ ok: false, error: e.message, clientError: true }, 400);
    }
    if (Array.isArray(body.methods)) {
      const outcomes = await Promise.all(body.methods.map((spec) => outcomeOf(() => invoke(target, spec))));
      return json(outcomes);
    }
    return json(await outcomeOf(() => invoke(target, body)));
  },
};
