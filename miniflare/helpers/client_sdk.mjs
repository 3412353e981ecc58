// Harness for the @streams/client tests: the streams Worker on a real local port (so the HTTP
// transport and its WebSocket go over TCP) plus a Worker that uses the client through a
// service binding (client-sdk-worker.mjs). Both transports answer through the same shape:
//   {ok:true, result, undefinedResult} | {ok:false, error:{name, code, status, message, isStreamError}}
import path from "node:path";
import WebSocket from "ws";
import { startStreams, HELPERS_DIR, COMPATIBILITY_DATE, MODULES_RULES } from "./mf.mjs";
import { createStreamsClient } from "../../client/dist/index.js";
import { describeError } from "./describe-error.mjs";

export const API_TOKEN = "client-test-api-token";
export const ADMIN_TOKEN = "client-test-admin-token";

export const SDK_WORKER = Object.freeze({
  name: "sdk",
  modules: true,
  modulesRoot: path.resolve(HELPERS_DIR, "..", ".."),
  scriptPath: path.join(HELPERS_DIR, "client-sdk-worker.mjs"),
  modulesRules: MODULES_RULES,
  compatibilityDate: COMPATIBILITY_DATE,
  serviceBindings: { STREAMS: "streams" },
});

/**
 * Starts the Worker listening on 127.0.0.1:`port` (0: any free port) with both tokens set.
 * `persist`: a directory for Durable Object storage (to restart the whole runtime on it).
 * Resolves to {mf, url} (url: the base URL, e.g. "http://127.0.0.1:40123/").
 */
export async function startClientStreams({ port = 0, persist, bindings = {} } = {}) {
  const mf = await startStreams({
    bindings: { STREAMS_API_TOKEN: API_TOKEN, STREAMS_ADMIN_TOKEN: ADMIN_TOKEN, ...bindings },
    miniflare: { host: "127.0.0.1", port, ...(persist ? { durableObjectsPersist: persist } : {}) },
    workers: [SDK_WORKER],
  });
  const url = String(await mf.ready);
  return { mf, url };
}

async function outcome(promise) {
  try {
    const result = await promise;
    return { ok: true, result: result ?? null, undefinedResult: result === undefined };
  } catch (e) {
    return { ok: false, error: describeError(e) };
  }
}

/** The client inside a Worker, over the service binding. */
export function viaBinding(mf, { namespace } = {}) {
  const post = async (body) => {
    const worker = await mf.getWorker("sdk");
    const res = await worker.fetch("http://sdk/", { method: "POST", body: JSON.stringify({ ...body, ...(namespace !== undefined ? { namespace } : {}) }) });
    return res.json();
  };
  return {
    name: "binding",
    call: (method, ...args) => post({ op: "call", method, args }),
    events: (...args) => post({ op: "events", args }),
    subscribe: (body) => post({ op: "subscribe", ...body }),
  };
}

/** The client in Node, over HTTP and a `ws` WebSocket. */
export function viaHttp(url, { token = ADMIN_TOKEN, namespace } = {}) {
  const client = createStreamsClient({ baseUrl: url, WebSocket, ...(token ? { token } : {}), ...(namespace !== undefined ? { namespace } : {}) });
  return {
    name: "http",
    client,
    call: (method, ...args) => outcome(client[method](...args)),
    events: (...args) =>
      outcome(
        (async () => {
          const out = [];
          for await (const e of client.events(...args)) out.push(e);
          return out;
        })(),
      ),
  };
}

let counter = 0;
/** A fresh stream path. */
export function uniquePath(prefix = "c") {
  counter += 1;
  return `/${prefix}${counter}-${Math.random().toString(36).slice(2, 10)}`;
}
