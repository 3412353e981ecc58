// Miniflare harness for the streams worker .
//
//   const mf = await startStreams();            // needs `npm run build` (build/index.js) first
//   const ev = await call(mf, uniqueName(), "append", { event: { type: "x" } });
//   await mf.dispose();
//
// Workers in the one Miniflare:
//   streams  src/entry.mjs (+ build/), DO STREAM (Stream, SQLite), ECHO_HOST -> echo's EchoHost,
//            vars STREAMS_TEST_HOOKS=1, STREAM_REDIAL_BASE_MS=200, STREAM_SUBSCRIBER_BINDINGS=ECHO_HOST,
//            STREAMS_OPEN_ACCESS=true (the API is closed by default; tests of the closed default pass
//            `{bindings: {STREAMS_OPEN_ACCESS: undefined}}`).
//            It is the first worker, so mf.dispatchFetch() reaches its fetch handler.
//   client   miniflare/helpers/client-worker.mjs: makes RPC calls from inside workerd and returns
//            JSON, so error messages survive (errors thrown through Miniflare's Node proxy lose their message).
//   echo     miniflare/helpers/echo-host.mjs: the EchoHost fixture DO (bundled with esbuild: it
//            imports the processor host's TypeScript source).
import { Miniflare } from "miniflare";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bundledModules } from "./bundle.mjs";

const HELPERS = path.dirname(fileURLToPath(import.meta.url));
export const HELPERS_DIR = HELPERS;
export const REPO_ROOT = path.resolve(HELPERS, "..", "..");
export const COMPATIBILITY_DATE = "2025-09-23";

export const DEFAULT_BINDINGS = Object.freeze({
  STREAMS_TEST_HOOKS: "1",
  STREAM_REDIAL_BASE_MS: "200",
  STREAM_SUBSCRIBER_BINDINGS: "ECHO_HOST",
  // As `npm run dev`: with no token or JWT secret configured, the API is open (docs/access.md#closed-by-default).
  STREAMS_OPEN_ACCESS: "true",
});

export const MODULES_RULES = [
  { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
  { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
];

/**
 * Start one Miniflare with the streams, client and echo workers; resolves once it is ready.
 *
 * opts.bindings  merged over DEFAULT_BINDINGS for the streams worker; a value of `undefined`
 *                removes that binding (e.g. `{STREAMS_TEST_HOOKS: undefined}`).
 * opts.root      project root holding src/entry.mjs and build/ (default: this repo).
 * opts.streams / opts.client / opts.echo
 *                extra Miniflare worker options merged into that worker (shallow).
 * opts.echoScriptPath  alternative EchoHost module (default miniflare/helpers/echo-host.mjs).
 * opts.workers   more Miniflare worker definitions, after the three above (e.g. a processor host,
 *                miniflare/helpers/processors.mjs).
 * opts.subscriberObjects  extra Durable Object bindings of the streams worker (subscribers it may dial;
 *                list them in STREAM_SUBSCRIBER_BINDINGS too).
 * opts.viewer   serve viewer/dist/ as static assets in front of the streams worker, routed as
 *                wrangler.toml does: `/api/*` always reaches the worker, `/` and `/split` are the
 *                page, any other path reaches the worker (needs `node viewer/build.mjs` first).
 * opts.miniflare extra top-level Miniflare options (e.g. {log: new Log(LogLevel.DEBUG)}).
 */
export async function startStreams(opts = {}) {
  const root = path.resolve(opts.root ?? REPO_ROOT);
  const bindings = { ...DEFAULT_BINDINGS, ...(opts.bindings ?? {}) };
  for (const [k, v] of Object.entries(bindings)) if (v === undefined) delete bindings[k];

  const mf = new Miniflare({
    ...(opts.miniflare ?? {}),
    workers: [
      {
        name: "streams",
        modules: true,
        modulesRoot: root,
        scriptPath: path.join(root, "src", "entry.mjs"),
        modulesRules: MODULES_RULES,
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: {
          STREAM: { className: "Stream", useSQLite: true },
          DIRECTORY: { className: "Directory", useSQLite: true },
          ECHO_HOST: { className: "EchoHost", scriptName: "echo", useSQLite: true },
          ...(opts.subscriberObjects ?? {}),
        },
        bindings,
        ...(opts.viewer ? { assets: viewerAssets(root) } : {}),
        ...(opts.streams ?? {}),
      },
      {
        name: "client",
        modules: true,
        modulesRoot: HELPERS,
        scriptPath: path.join(HELPERS, "client-worker.mjs"),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: {
          STREAM: { className: "Stream", scriptName: "streams", useSQLite: true },
        },
        serviceBindings: { STREAMS: "streams" },
        ...(opts.client ?? {}),
      },
      {
        name: "echo",
        modules: bundledModules(path.resolve(opts.echoScriptPath ?? path.join(HELPERS, "echo-host.mjs"))),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: {
          ECHO_HOST: { className: "EchoHost", useSQLite: true },
          STREAM: { className: "Stream", scriptName: "streams", useSQLite: true },
        },
        serviceBindings: { STREAMS: "streams" },
        ...(opts.echo ?? {}),
      },
      ...(opts.workers ?? []),
    ],
  });
  try {
    await mf.ready;
  } catch (e) {
    await mf.dispose().catch(() => {});
    throw e;
  }
  return mf;
}

/** Miniflare's form of wrangler.toml's [assets] (run_worker_first = ["/api/*"]). */
function viewerAssets(root) {
  const directory = path.join(root, "viewer", "dist");
  if (!fs.existsSync(path.join(directory, "index.html"))) {
    throw new Error(`${directory}/index.html is missing: run \`node viewer/build.mjs\` (or \`npm run build\`) first`);
  }
  return {
    directory,
    routerConfig: { has_user_worker: true, static_routing: { user_worker: ["/api/*"] } },
    assetConfig: { html_handling: "auto-trailing-slash", not_found_handling: "none" },
  };
}

/** The http://127.0.0.1:<port> origin a started Miniflare listens on (for a browser). */
export async function originOf(mf) {
  return new URL(await mf.ready).origin;
}

const clients = new WeakMap();
async function clientOf(mf) {
  let c = clients.get(mf);
  if (!c) {
    c = mf.getWorker("client");
    clients.set(mf, c);
  }
  return c;
}

async function postClient(mf, body) {
  const client = await clientOf(mf);
  const res = await client.fetch("http://client/", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`client worker returned non-JSON (HTTP ${res.status}): ${text.slice(0, 500)}`);
  }
}

function withArg(body, args) {
  // args is the rest-args array of the caller: [] = no argument, [x] = argument x (even undefined → absent).
  if (args.length > 0 && args[0] !== undefined) body.arg = args[0];
  return body;
}

function unwrap(outcome) {
  if (!outcome.ok) {
    const err = new Error(outcome.error);
    err.remoteName = outcome.name;
    throw err;
  }
  return outcome.hasResult ? outcome.result : undefined;
}

/** Raw outcome of `env.STREAM.getByName(name)[method](arg)`: {ok, hasResult, result} | {ok:false, error}. */
export function tryCall(mf, name, method, ...arg) {
  return postClient(mf, withArg({ target: "do", name, method }, arg));
}

/** Raw outcome of the call on the object of `name` reached by id only, so it gets no name from the runtime. */
export function tryCallById(mf, name, method, ...arg) {
  return postClient(mf, withArg({ target: "do-by-id", name, method }, arg));
}

/** Raw outcome of `env.STREAMS[method](arg)` (the Worker entrypoint through a service binding). */
export function tryCallService(mf, method, ...arg) {
  return postClient(mf, withArg({ target: "service", method }, arg));
}

/** DO RPC via the client worker; throws Error(message) on rejection, returns the result. */
export async function call(mf, name, method, ...arg) {
  return unwrap(await tryCall(mf, name, method, ...arg));
}

/** Entrypoint RPC via the service binding; throws Error(message) on rejection. */
export async function callService(mf, method, ...arg) {
  return unwrap(await tryCallService(mf, method, ...arg));
}

/**
 * Concurrent DO calls on one stub: calls = [{method, arg?}, ...]. Resolves to the array of raw
 * outcomes ({ok, hasResult, result} | {ok:false, error}), in input order. Never throws for call errors.
 */
export function callMany(mf, name, calls) {
  return postClient(mf, { target: "do", name, methods: calls });
}

/** Same as callMany, against the service binding. */
export function callManyService(mf, calls) {
  return postClient(mf, { target: "service", methods: calls });
}

/** Direct stub from Node (successful calls only: rejections lose their message through the proxy). */
export async function stub(mf, name) {
  const ns = await mf.getDurableObjectNamespace("STREAM", "streams");
  return ns.get(ns.idFromName(name));
}

/**
 * HTTP against the streams worker's fetch handler: mf.dispatchFetch("http://localhost" + path).
 * body: a string / Uint8Array / ArrayBuffer is sent as is; anything else is JSON-encoded (with
 * content-type application/json unless headers set one). The response body is always consumed.
 * Resolves to {status, headers, text, json} where json is the parsed body or undefined.
 */
export async function http(mf, method, urlPath, { body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      const hasType = Object.keys(init.headers).some((h) => h.toLowerCase() === "content-type");
      if (!hasType) init.headers["content-type"] = "application/json";
    }
  }
  const res = await mf.dispatchFetch("http://localhost" + urlPath, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: jsonOrUndefined(text) };
}

/** The parsed JSON of `text`, or undefined when it is not JSON. */
export function jsonOrUndefined(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** startStreams with Durable Object storage persisted to a fresh temp dir (to inspect on disk). */
export async function startPersistedStreams(prefix, opts = {}) {
  const persistDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const mf = await startStreams({ ...opts, miniflare: { ...(opts.miniflare ?? {}), durableObjectsPersist: persistDir } });
  return { mf, persistDir };
}

/** Disposes what startPersistedStreams started and removes its dir. */
export async function stopPersistedStreams(mf, persistDir) {
  await mf?.dispose();
  if (persistDir) fs.rmSync(persistDir, { recursive: true, force: true });
}

/** Whether the STREAM object `name` has any file under a Miniflare persistence dir (ever stored anything). */
export async function doHasFiles(mf, persistDir, name) {
  const ns = await mf.getDurableObjectNamespace("STREAM", "streams");
  const id = ns.idFromName(name).toString();
  const walk = (dir) =>
    fs.readdirSync(dir, { withFileTypes: true }).some((entry) =>
      entry.isDirectory() ? walk(path.join(dir, entry.name)) : entry.name.startsWith(id),
    );
  return fs.existsSync(persistDir) && walk(persistDir);
}

let counter = 0;
/** A fresh stream name `t:/<prefix><n>-<random>` (prefix defaults to "t", giving `t:/tN-xxxx`). */
export function uniqueName(prefix = "t") {
  counter += 1;
  const rand = Math.random().toString(36).slice(2, 10);
  return `t:/${prefix}${counter}-${rand}`;
}

/** Split a DO name on its first ":" → {namespace, path} (for entrypoint/HTTP arguments). */
export function splitName(name) {
  const i = name.indexOf(":");
  return { namespace: name.slice(0, i), path: name.slice(i + 1) };
}
