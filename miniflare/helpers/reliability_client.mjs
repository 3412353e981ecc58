// Client worker for the reliability suite: the standard client (client-worker.mjs) plus values
// that JSON cannot carry. The Node side can only send JSON, so a request names the non-JSON
// values to plant into the argument before the RPC call is made from inside workerd:
//
//   POST {target:"do"|"service", name?, method, arg, plant:[{at:["event","payload"], value:"NaN"}]}
//     → env.STREAM.getByName(name)[method](arg with the planted values)   (or env.STREAMS[method])
//
// `at` is a property path into `arg` (created as needed); `value` is one of the names in VALUES.
// Requests without `plant` go to the standard client unchanged. Outcomes have the same shape:
// {ok:true, hasResult, result?} | {ok:false, error, name}.
import base from "./client-worker.mjs";

function nested(depth) {
  let v = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const VALUES = {
  NaN: () => NaN,
  Infinity: () => Infinity,
  "-Infinity": () => -Infinity,
  BigInt: () => 10n,
  Date: () => new Date(0),
  Map: () => new Map([["a", 1]]),
  Set: () => new Set([1]),
  Uint8Array: () => new Uint8Array([1, 2, 3]),
  ArrayBuffer: () => new ArrayBuffer(4),
  RegExp: () => /x/,
  Error: () => new Error("boom"),
  function: () => () => 1,
  functionInArray: () => [() => 1],
  invalidDate: () => new Date(NaN),
  boxedString: () => new String("s"),
  undefined: () => undefined,
  loneSurrogate: () => "a\ud800b",
  "nested-200": () => nested(200),
  "nested-1000": () => nested(1_000),
  "nested-3000": () => nested(3_000),
  "nested-10000": () => nested(10_000),
};

function plant(arg, at, value) {
  if (!(value in VALUES)) throw new Error(`reliability-client: unknown value ${JSON.stringify(value)}`);
  if (at.length === 0) return VALUES[value]();
  let o = arg;
  for (const k of at.slice(0, -1)) {
    if (typeof o[k] !== "object" || o[k] === null) o[k] = {};
    o = o[k];
  }
  o[at[at.length - 1]] = VALUES[value]();
  return arg;
}

async function outcomeOf(fn) {
  try {
    const result = await fn();
    return result === undefined ? { ok: true, hasResult: false } : { ok: true, hasResult: true, result };
  } catch (e) {
    return { ok: false, error: e && typeof e === "object" && "message" in e ? String(e.message) : String(e), name: e?.name };
  }
}

export default {
  async fetch(request, env, ctx) {
    const body = await request.clone().json().catch(() => null);
    if (!body || !Array.isArray(body.plant)) return base.fetch(request, env, ctx);
    let arg = body.arg ?? {};
    for (const p of body.plant) arg = plant(arg, p.at, p.value);
    const target = body.target === "service" ? env.STREAMS : env.STREAM.getByName(body.name);
    const outcome = await outcomeOf(() => target[body.method](arg));
    return new Response(JSON.stringify(outcome), { headers: { "content-type": "application/json" } });
  },
};
