// Helpers for miniflare/processor_*.test.mjs: a Miniflare with the streams worker plus the
// processor fixture (miniflare/helpers/processor-fixture.mjs) bound as PROCESSORS.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startStreams, COMPATIBILITY_DATE } from "./mf.mjs";
import { bundledModules } from "./bundle.mjs";
import { S } from "./assertions.mjs";
import { waitFor } from "./subscribers.mjs";

const HELPERS = path.dirname(fileURLToPath(import.meta.url));

/** startStreams with the fixture worker `processors` (DO class Processors) that streams may dial. */
export function startWithProcessors({ persistDir, counterVersion, bindings = {}, miniflare = {} } = {}) {
  return startStreams({
    bindings: { STREAM_SUBSCRIBER_BINDINGS: "ECHO_HOST,PROCESSORS,KEPT_PROCESSORS", ...bindings },
    subscriberObjects: {
      PROCESSORS: { className: "Processors", scriptName: "processors", useSQLite: true },
      KEPT_PROCESSORS: { className: "KeptProcessors", scriptName: "processors", useSQLite: true },
    },
    workers: [
      {
        name: "processors",
        modules: bundledModules(path.join(HELPERS, "processor-fixture.mjs")),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: {
          PROCESSORS: { className: "Processors", useSQLite: true },
          CLIENT_PROCESSORS: { className: "ClientProcessors", useSQLite: true },
          FLAKY_PROCESSORS: { className: "FlakyProcessors", useSQLite: true },
          LEGACY_PROCESSORS: { className: "LegacyProcessors", useSQLite: true },
          EDGE_PROCESSORS: { className: "EdgeProcessors", useSQLite: true },
          KEPT_PROCESSORS: { className: "KeptProcessors", useSQLite: true },
        },
        serviceBindings: { STREAMS: "streams" },
        bindings: counterVersion ? { COUNTER_VERSION: counterVersion } : {},
      },
    ],
    miniflare: { ...miniflare, ...(persistDir ? { durableObjectsPersist: persistDir } : {}) },
  });
}

/**
 * `env.PROCESSORS.getByName(host)[method](arg)` as {ok, result} | {ok:false, error}
 * (`{viaClient: true}`: the ClientProcessors host instead; `{flaky: true}`: FlakyProcessors;
 * `{legacy: true}`: LegacyProcessors; `{edge: true}`: EdgeProcessors; `{kept: true}`: KeptProcessors).
 */
export async function tryHost(mf, host, method, arg, { viaClient = false, flaky = false, legacy = false, edge = false, kept = false } = {}) {
  const worker = await mf.getWorker("processors");
  const res = await worker.fetch("http://processors/", { method: "POST", body: JSON.stringify({ name: host, method, arg, viaClient, flaky, legacy, edge, kept }) });
  return res.json();
}

/** The same, throwing Error(message) on a rejection. */
export async function callHost(mf, host, method, arg) {
  const outcome = await tryHost(mf, host, method, arg);
  if (!outcome.ok) throw new Error(outcome.error);
  return outcome.result;
}

/** The `S/subscription-configured` input wiring key → processor `processorName` in host DO `host` (of `bindingName`). */
export function processorSubscription(key, host, processorName, bindingName = "PROCESSORS") {
  return {
    type: S("subscription-configured"),
    payload: {
      subscriptionKey: key,
      subscriber: {
        type: "callable",
        callable: {
          type: "workers-rpc",
          via: { type: "env-binding", bindingType: "durable-object-namespace", bindingName, durableObject: { name: host } },
          ...(processorName ? { transformInput: { shallowMerge: { processorName } } } : {}),
        },
      },
    },
  };
}

/** status() of processor `slug` for stream `name` (`ns:/path`) in host DO `host`. */
export function processorStatus(mf, host, name, slug) {
  const i = name.indexOf(":");
  return callHost(mf, host, "processorStatus", { namespace: name.slice(0, i), path: name.slice(i + 1), slug });
}

/** Polls status() until pred holds. */
export function waitForProcessor(mf, host, name, slug, pred, opts = {}) {
  return waitFor(() => processorStatus(mf, host, name, slug), pred, { what: `processor ${slug} on ${name}`, ...opts });
}

let hostCounter = 0;
/** A fresh Processors DO name. */
export function uniqueHostName(prefix = "host") {
  hostCounter += 1;
  return `${prefix}-${hostCounter}-${Math.random().toString(36).slice(2, 10)}`;
}
