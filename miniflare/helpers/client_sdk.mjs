// Harness for the @streams/client tests: the streams Worker on a real local port (so the HTTP
// transport and its WebSocket go over TCP) plus a Worker that uses the client through a
// service binding (client-sdk-worker.mjs). Both transports answer through the same shape:
//   {ok:true, result, undefinedResult} | {ok:false, error:{name, code, status, message, isStreamError}}
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import WebSocket from "ws";
import { startStreams, HELPERS_DIR, COMPATIBILITY_DATE, MODULES_RULES } from "./mf.mjs";
import { createStreamsClient } from "../../client/dist/index.js";
import { describeError } from "./describe-error.mjs";
import { startProxy, freePort } from "./tcp_proxy.mjs";

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

/** startClientStreams on a free port with a TCP proxy in front (helpers/tcp_proxy.mjs): {mf, url, proxy}. */
export async function startProxiedClientStreams({ bindings = {} } = {}) {
  const port = await freePort();
  const { mf, url } = await startClientStreams({ port, bindings });
  return { mf, url, proxy: await startProxy(port) };
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

/** Polls `pred` every 5 ms; `what` may be a function, to describe the situation at the failure. */
export async function until(pred, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.fail(`${typeof what === "function" ? what() : what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Runs client-abort-child.mjs (subscriptions stopped in every state, over `transport`) and asserts
 * that the process exits by itself, every subscription stopped, within 15 s.
 */
export async function assertAbortLeavesNothing(url, token, transport = "websocket") {
  const child = spawn(process.execPath, [path.join(HELPERS_DIR, "client-abort-child.mjs"), url, token, transport], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  let timer;
  const hung = new Promise((resolve) => (timer = setTimeout(() => resolve({ code: "hung" }), 15_000)));
  const exit = await Promise.race([new Promise((resolve) => child.on("close", (code) => resolve({ code }))), hung]);
  clearTimeout(timer);
  if (exit.code === "hung") child.kill("SIGKILL");
  assert.equal(exit.code, 0, `child exit ${exit.code}; stdout ${out}; stderr ${err}`);
  const report = JSON.parse(out.trim().split("\n").at(-1));
  assert.deepEqual(report.states, ["stopped", "stopped", "stopped", "stopped"]);
  assert.ok(report.received > 0);
}
