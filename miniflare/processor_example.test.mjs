// examples/processor: the processor Worker type-checks against the Workers runtime types, runs
// under Miniflare beside the streams Worker, and processes a stream once subscription.json is
// appended. The README's processor snippet is part of that file, so this test runs it too.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startStreams, call, REPO_ROOT, COMPATIBILITY_DATE } from "./helpers/mf.mjs";
import { bundledModules } from "./helpers/bundle.mjs";
import { typeCheckExample } from "./helpers/examples.mjs";
import { facts, waitFor, waitForLog } from "./helpers/subscribers.mjs";

const EXAMPLE = path.join(REPO_ROOT, "examples", "processor");
const SOURCE = path.join(EXAMPLE, "src", "index.ts");
const toml = fs.readFileSync(path.join(EXAMPLE, "wrangler.toml"), "utf8");
const tomlValue = (key) => {
  const m = new RegExp(`^${key}\\s*=\\s*"([^"]+)"`, "m").exec(toml);
  assert.ok(m, `wrangler.toml has ${key}`);
  return m[1];
};
const WORKER = tomlValue("name");
const binding = /\[\[durable_objects\.bindings\]\]\s*name\s*=\s*"([^"]+)"\s*class_name\s*=\s*"([^"]+)"/.exec(toml);
assert.ok(binding, "wrangler.toml declares the Durable Object binding");
const [, BINDING_NAME, CLASS_NAME] = binding;

let mf;
before(async () => {
  mf = await startStreams({
    bindings: { STREAM_SUBSCRIBER_BINDINGS: BINDING_NAME },
    subscriberObjects: { [BINDING_NAME]: { className: CLASS_NAME, scriptName: WORKER, useSQLite: true } },
    workers: [
      {
        name: WORKER,
        modules: bundledModules(SOURCE, { alias: { "@streams/client/processor": path.join(REPO_ROOT, "client", "src", "processor", "index.ts") } }),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: { [BINDING_NAME]: { className: CLASS_NAME, useSQLite: true } },
        serviceBindings: { STREAMS: "streams" },
      },
    ],
  });
});
after(async () => {
  await mf?.dispose();
});

test("the README's processor snippet is the example's code", () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  const marker = readme.indexOf("<!-- tested-by: miniflare/processor_example.test.mjs -->");
  assert.ok(marker >= 0, "README has the processor snippet marker");
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(marker));
  assert.ok(block, "a ts block follows the marker");
  assert.ok(fs.readFileSync(SOURCE, "utf8").includes(block[1]), "examples/processor/src/index.ts contains the README snippet verbatim");
});

test("the example type-checks (strict) against `wrangler types` of its wrangler.toml", () => {
  typeCheckExample(EXAMPLE, SOURCE);
});

test("subscription.json wires a stream to the example's counter: totals exactly once, status over fetch", async () => {
  const subscription = JSON.parse(fs.readFileSync(path.join(EXAMPLE, "subscription.json"), "utf8"));
  const name = `default:/orders-${Math.random().toString(36).slice(2, 8)}`;
  const streamPath = name.slice("default:".length);
  const configured = await call(mf, name, "append", { event: subscription });
  await waitForLog(mf, name, (l) => facts(l, "subscriber-connected", { subscriptionKey: "counter" }).some((e) => e.offset > configured.offset), { what: "counter connected" });
  const inputs = await call(mf, name, "appendBatch", { events: [1, 2, 3, 4, 5].map((n) => ({ type: "app/add", payload: { n } })) });

  const worker = await mf.getWorker(WORKER);
  const status = await waitFor(
    async () => (await worker.fetch(`http://example/status?path=${encodeURIComponent(streamPath)}`)).json(),
    (s) => s.state.total === 15,
    { what: "the example's total reaches 15" },
  );
  assert.equal(status.halted, false);
  assert.ok(status.checkpoint >= inputs.at(-1).offset);
  const log = await waitForLog(mf, name, (l) => l.filter((e) => e.type === "app/total").length === 5);
  assert.deepEqual(
    log.filter((e) => e.type === "app/total").map((e) => [e.idempotencyKey, e.payload.total]),
    inputs.map((e, i) => [`counter:counter:${e.offset}:0`, [1, 3, 6, 10, 15][i]]),
  );
  const resumed = await (await worker.fetch(`http://example/resume?path=${encodeURIComponent(streamPath)}`, { method: "POST" })).json();
  assert.equal(resumed.halted, false, "resume of a running processor changes nothing");
});
