// examples/chat: the app Worker and its processor Durable Object beside the streams Worker, set up
// under Miniflare from the same two configs `npm run dev:chat` gives wrangler (streams'
// wrangler.toml in its `chat-example` environment, and examples/chat/wrangler.toml): the
// environment is the top-level Worker plus the processor binding, the example type-checks, and
// posting messages gives the last 20 back and per-author counts from the processor.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { unstable_readConfig } from "wrangler";
import { startStreams, REPO_ROOT, COMPATIBILITY_DATE } from "./helpers/mf.mjs";
import { bundledModules } from "./helpers/bundle.mjs";
import { typeCheckExample } from "./helpers/examples.mjs";
import { waitFor } from "./helpers/subscribers.mjs";

const EXAMPLE = path.join(REPO_ROOT, "examples", "chat");
const SOURCE = path.join(EXAMPLE, "src", "index.ts");
const ENV = "chat-example";
const quiet = { logLevel: "none" };
const streamsTop = unstable_readConfig({ config: path.join(REPO_ROOT, "wrangler.toml") }, quiet);
const streamsEnv = unstable_readConfig({ config: path.join(REPO_ROOT, "wrangler.toml"), env: ENV }, quiet);
const chat = unstable_readConfig({ config: path.join(EXAMPLE, "wrangler.toml"), env: ENV }, quiet);
const [processorBinding] = streamsEnv.durable_objects.bindings.filter((b) => b.script_name === chat.name);
const CLIENT = path.join(REPO_ROOT, "client", "src");

let mf;
before(async () => {
  assert.ok(processorBinding, `streams' ${ENV} environment binds a Durable Object of ${chat.name}`);
  mf = await startStreams({
    bindings: { STREAM_SUBSCRIBER_BINDINGS: streamsEnv.vars.STREAM_SUBSCRIBER_BINDINGS },
    subscriberObjects: { [processorBinding.name]: { className: processorBinding.class_name, scriptName: chat.name, useSQLite: true } },
    workers: [
      {
        name: chat.name,
        modules: bundledModules(SOURCE, {
          alias: { "@streams/client/processor": path.join(CLIENT, "processor", "index.ts"), "@streams/client": path.join(CLIENT, "index.ts") },
        }),
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: Object.fromEntries(chat.durable_objects.bindings.map((b) => [b.name, { className: b.class_name, useSQLite: true }])),
        serviceBindings: Object.fromEntries(chat.services.map((s) => [s.binding, s.service])),
      },
    ],
  });
});
after(async () => {
  await mf?.dispose();
});

test(`streams' ${ENV} environment is the top-level Worker plus the processor binding; one npm script runs both configs`, () => {
  assert.equal(streamsEnv.name, streamsTop.name, "the same Worker name, so the app's service binding finds it");
  assert.deepEqual(chat.services, [{ binding: "STREAMS", service: streamsTop.name }]);
  const envBindings = streamsEnv.durable_objects.bindings.filter((b) => b !== processorBinding);
  assert.deepEqual(envBindings, streamsTop.durable_objects.bindings, "every top-level Durable Object binding, nothing else");
  for (const kind of ["r2_buckets", "services", "kv_namespaces", "d1_databases"]) {
    assert.deepEqual(streamsEnv[kind], streamsTop[kind], `every top-level ${kind} binding`);
  }
  assert.deepEqual({ ...streamsEnv.vars, STREAM_SUBSCRIBER_BINDINGS: "" }, { ...streamsTop.vars, STREAM_SUBSCRIBER_BINDINGS: "" }, "every top-level var");
  assert.deepEqual(streamsEnv.vars.STREAM_SUBSCRIBER_BINDINGS.split(","), [processorBinding.name], "the processor binding is allowed");
  assert.ok(chat.durable_objects.bindings.some((b) => b.name === processorBinding.name && b.class_name === processorBinding.class_name));
  const script = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")).scripts["dev:chat"];
  assert.match(script, /-c examples\/chat\/wrangler\.toml -c wrangler\.toml --env chat-example/);
  for (const file of [path.join(EXAMPLE, "wrangler.toml"), path.join(REPO_ROOT, "wrangler.toml")]) {
    assert.doesNotMatch(fs.readFileSync(file, "utf8"), /^\s*(main|script_name|directory)\s*=\s*"\//m, `${file} has no absolute path`);
  }
});

test("the example type-checks (strict) against `wrangler types` of its wrangler.toml", () => {
  typeCheckExample(EXAMPLE, SOURCE, { env: ENV });
});

test("messages go in through the service binding; the last 20 come back; the processor counts them per author", async () => {
  const app = await mf.getWorker(chat.name);
  const room = `room-${Math.random().toString(36).slice(2, 8)}`;
  const post = (author, text) =>
    app.fetch(`http://chat/rooms/${room}/messages`, { method: "POST", body: JSON.stringify({ author, text }) });
  const posted = await post("ada", "hello");
  assert.equal(posted.status, 201);
  assert.deepEqual((await posted.json()).payload, { author: "ada", text: "hello" });
  for (const [author, text] of [["bob", "hi ada"], ["ada", "how are you?"]]) assert.equal((await post(author, text)).status, 201);

  const messages = await (await app.fetch(`http://chat/rooms/${room}/messages`)).json();
  assert.deepEqual(messages, [
    { author: "ada", text: "hello" },
    { author: "bob", text: "hi ada" },
    { author: "ada", text: "how are you?" },
  ]);
  const counts = () => app.fetch(`http://chat/rooms/${room}/counts`).then((r) => r.json());
  await waitFor(counts, (c) => c.byAuthor.ada === 2 && c.byAuthor.bob === 1, { what: "the processor's counts", timeoutMs: 30_000 });

  for (let i = 1; i <= 30; i++) assert.equal((await post(i % 3 === 0 ? "cy" : "bob", `m${i}`)).status, 201);
  const last = await (await app.fetch(`http://chat/rooms/${room}/messages`)).json();
  assert.deepEqual(last.map((m) => m.text), Array.from({ length: 20 }, (_, i) => `m${i + 11}`), "the last 20, oldest first");
  await waitFor(counts, (c) => c.byAuthor.ada === 2 && c.byAuthor.bob === 21 && c.byAuthor.cy === 10, { what: "counts of 33 messages", timeoutMs: 30_000 });
});

test("a message without author or text is refused with 400, and nothing is appended", async () => {
  const app = await mf.getWorker(chat.name);
  const room = `room-${Math.random().toString(36).slice(2, 8)}`;
  for (const body of ["not json", JSON.stringify({ text: "anonymous" }), JSON.stringify({ author: " ", text: "x" }), JSON.stringify({ author: "ada" })]) {
    assert.equal((await app.fetch(`http://chat/rooms/${room}/messages`, { method: "POST", body })).status, 400, body);
  }
  assert.deepEqual(await (await app.fetch(`http://chat/rooms/${room}/messages`)).json(), []);
});
