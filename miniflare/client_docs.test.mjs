// The README's "Clients" snippets are the files in examples/client/, verbatim; this runs each one
// against the built Worker: the Node example, the Worker example (type-checked, bundled with
// esbuild as wrangler would, and served next to the streams Worker with a service binding) and
// the CLI session.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import * as esbuild from "esbuild";
import { REPO_ROOT, COMPATIBILITY_DATE, startStreams } from "./helpers/mf.mjs";
import { codeBlocks } from "./helpers/docs.mjs";

const run = promisify(execFile);
const EXAMPLES = path.join(REPO_ROOT, "examples", "client");
const example = (file) => fs.readFileSync(path.join(EXAMPLES, file), "utf8");
const readmeBlocks = codeBlocks(fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8"));

let mf;
let url;

before(async () => {
  const bundle = await esbuild.build({
    entryPoints: [path.join(EXAMPLES, "worker.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    write: false,
    logLevel: "silent",
  });
  mf = await startStreams({
    miniflare: { host: "127.0.0.1", port: 0 },
    workers: [{ name: "example", modules: true, script: bundle.outputFiles[0].text, compatibilityDate: COMPATIBILITY_DATE, serviceBindings: { STREAMS: "streams" } }],
  });
  url = String(await mf.ready).replace(/\/$/, "");
});
after(() => mf?.dispose());

test("README: each Clients snippet is an example file, verbatim, marked as run by this test", () => {
  for (const [file, lang] of [["node.mjs", "js"], ["worker.ts", "ts"], ["cli.sh", "sh"]]) {
    const block = readmeBlocks.find((b) => b.code === example(file).trimEnd());
    assert.ok(block, `README.md has no code block equal to examples/client/${file}`);
    assert.equal(block.lang, lang, `${file}: fence language`);
    assert.equal(block.testedBy, "miniflare/client_docs.test.mjs", `${file}: tested-by marker`);
  }
});

test("the Node example appends, follows the stream from its checkpoint and exits by itself", async () => {
  const { stdout } = await run(process.execPath, [path.join(EXAMPLES, "node.mjs")], { cwd: REPO_ROOT, env: { ...process.env, STREAMS_URL: url }, timeout: 30_000 });
  assert.equal(stdout, '3 app/order-placed {"id":1}\n');
});

test("the Worker example type-checks and serves through its service binding", async () => {
  await run(process.execPath, [path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", EXAMPLES], { cwd: REPO_ROOT, timeout: 60_000 });
  const worker = await mf.getWorker("example");
  const first = await (await worker.fetch("http://site/home")).json();
  assert.deepEqual(first, { offset: 3, recent: ["events.iterate.com/stream/created", "events.iterate.com/stream/woken", "app/visited"] });
  const second = await (await worker.fetch("http://site/about")).json();
  assert.equal(second.offset, 4);
});

test("the CLI session prints what its comments say", async () => {
  const script = example("cli.sh").replaceAll("http://127.0.0.1:8787", url);
  // Its own process group, so the `tail` it ends with can be interrupted like Ctrl-C would.
  const session = spawn("bash", ["-c", script], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  session.stdout.on("data", (d) => (stdout += d));
  session.stderr.on("data", (d) => (stderr += d));
  const ended = new Promise((resolve) => session.on("close", resolve));
  const lines = () => stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  // append ×3, get ×3, state, then the tail's one app/hello.
  const deadline = Date.now() + 60_000;
  while (lines().length < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  process.kill(-session.pid, "SIGINT");
  await ended;
  const [hello, a, b, ...rest] = lines();
  assert.deepEqual([hello?.type, hello?.offset, a?.offset, b?.offset], ["app/hello", 3, 4, 5], `stdout ${stdout}; stderr ${stderr}`);
  assert.deepEqual(rest.slice(0, 3).map((e) => e.offset), [3, 4, 5], "get --from 2");
  assert.equal(rest[3].coreProcessorState.path, "/cli/demo", "state");
  assert.deepEqual(rest.slice(4).map((e) => [e.type, e.offset]), [["app/hello", 3]], "tail --types app/hello");
  assert.match(stderr, /^streams: not_found: No stream event found at offset 99\.$/m);
});
