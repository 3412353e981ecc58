// The `streams` CLI (client/dist/cli.js) against the real Worker on a local port: JSON lines on
// stdout, `streams: <code>: <message>` on stderr, an exit status per error kind, and `tail`
// printing each appended event exactly once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { startClientStreams, uniquePath, viaHttp, ADMIN_TOKEN, API_TOKEN } from "./helpers/client_sdk.mjs";
import { REPO_ROOT } from "./helpers/mf.mjs";
import { S } from "./helpers/assertions.mjs";

const CLI = path.join(REPO_ROOT, "client", "dist", "cli.js");
let mf;
let url;
let http;

before(async () => {
  ({ mf, url } = await startClientStreams());
  http = viaHttp(url);
});
after(() => mf?.dispose());

/** Runs the CLI to completion: {code, stdout, stderr, lines (parsed stdout JSON lines)}. */
function run(args, { env = {}, stdin } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, STREAMS_URL: url, STREAMS_TOKEN: API_TOKEN, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, get lines() { return stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)); } }));
    child.stdin.end(stdin ?? "");
  });
}

test("append, get and state print JSON lines and exit 0", async () => {
  const p = uniquePath("cli");
  const one = await run(["append", p, '{"type":"app/one","payload":{"n":1},"idempotencyKey":"k1"}']);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.lines.length, 1);
  assert.deepEqual([one.lines[0].type, one.lines[0].payload], ["app/one", { n: 1 }]);

  const many = await run(["append", p], { stdin: '{"type":"app/a"}\n\n{"type":"app/b"}\n{"type":"app/c"}\n' });
  assert.equal(many.code, 0, many.stderr);
  assert.deepEqual(many.lines.map((e) => [e.type, e.offset]), [["app/a", one.lines[0].offset + 1], ["app/b", one.lines[0].offset + 2], ["app/c", one.lines[0].offset + 3]]);

  const child = await run(["append", p, '{"type":"app/kid"}', "--stream-path", "kid"]);
  assert.equal(child.code, 0, child.stderr);
  const kid = await run(["get", `${p}/kid`]);
  assert.ok(kid.lines.some((e) => e.type === "app/kid"), "--stream-path appends to the child");

  const byOffset = await run(["get", p, "--offset", String(one.lines[0].offset)]);
  assert.deepEqual(byOffset.lines, one.lines);
  const byKey = await run(["get", p, "--key", "k1"]);
  assert.deepEqual(byKey.lines, one.lines);
  const all = await run(["get", p]);
  assert.equal(all.code, 0);
  assert.deepEqual(all.lines.map((e) => e.offset), Array.from({ length: all.lines.length }, (_, i) => i + 1));
  const some = await run(["get", p, "--from", String(one.lines[0].offset), "--before", String(one.lines[0].offset + 3)]);
  assert.deepEqual(some.lines.map((e) => e.type), ["app/a", "app/b"]);

  const state = await run(["--url", url, "state", p]);
  assert.equal(state.code, 0, state.stderr);
  assert.equal(state.lines[0].coreProcessorState.path, p);
  assert.equal(state.lines[0].coreProcessorState.maxOffset, all.lines.length);

  const ns = await run(["append", p, '{"type":"app/ns"}', "--namespace", "cli-ns"]);
  assert.equal(ns.code, 0, ns.stderr);
  const nsState = await run(["state", p, "--namespace", "cli-ns"]);
  assert.equal(nsState.lines[0].coreProcessorState.namespace, "cli-ns");
});

test("errors: stderr carries the code, the exit status its kind", async () => {
  const p = uniquePath("clierr");
  await run(["append", p, '{"type":"app/x","idempotencyKey":"dup"}']);
  await run(["append", `${p}-paused`, JSON.stringify({ type: S("paused"), payload: { reason: "maint" } })]);
  const cases = [
    [["append", p, '{"type":"app/x","foo":1}'], 6, 'streams: invalid_event: event[0]: unknown key "foo"'],
    [["get", p, "--offset", "999"], 5, "streams: not_found: No stream event found at offset 999."],
    [["get", p, "--key", "nope"], 5, 'streams: not_found: no event with idempotency key "nope"'],
    [["append", p, '{"type":"app/x","offset":1}'], 7, /^streams: offset_mismatch: expected offset \d+, got 1$/],
    [["append", p, '{"type":"app/x","idempotencyKey":"dup","offset":1}'], 7, /^streams: idempotency_conflict: /],
    [["append", `${p}-paused`, '{"type":"app/x"}'], 8, "streams: stream_paused: stream paused: maint"],
    [["append", "no-slash", '{"type":"app/x"}'], 6, /^streams: invalid_path: /],
    [["state", p, "--namespace", "BAD"], 6, /^streams: invalid_namespace: /],
    [["state", p, "--token", "wrong"], 4, "streams: unauthorized: missing or invalid bearer token"],
    [["state", p, "--url", "http://127.0.0.1:9"], 3, /^streams: network: /],
    [["append", p, "{not json"], 2, /^streams: the event is not JSON/],
    [["get", p, "--offset", "-1"], 2, /^streams: /],
    [["get", p, "--offset", "x"], 2, /^streams: --offset must be a non-negative integer/],
    [["state"], 2, /^streams: expected one stream path/],
    [["frobnicate", p], 2, /^streams: unknown command "frobnicate"/],
    [["state", p, "--types", "a"], 2, /^streams: state does not take --types/],
    [[], 2, /^usage: streams /],
  ];
  for (const [args, code, stderr] of cases) {
    const r = await run(args);
    assert.equal(r.code, code, `${args.join(" ")}: exit ${r.code}, stderr ${r.stderr}`);
    assert.equal(r.stdout, "", `${args.join(" ")}: nothing on stdout`);
    const first = r.stderr.split("\n")[0];
    if (typeof stderr === "string") assert.equal(first, stderr, args.join(" "));
    else assert.match(first, stderr, args.join(" "));
  }
  const noUrl = await run(["state", p], { env: { STREAMS_URL: "" } });
  assert.equal(noUrl.code, 2);
  assert.match(noUrl.stderr, /^streams: no server: pass --url or set STREAMS_URL/);
  const kill = await run(["state", p], { env: { STREAMS_TOKEN: "" } });
  assert.equal(kill.code, 4, "no token while the Worker requires one");
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  for (const c of ["append", "get", "tail", "state"]) assert.match(help.stdout, new RegExp(`streams ${c} `));
});

for (const sse of [[], ["--sse"]]) test(`tail${sse.length > 0 ? " --sse" : ""} follows a live stream: each appended event printed once, in order; --types filters; a signal ends it with 0`, async () => {
  const p = uniquePath("tail");
  await http.client.append(p, { type: "app/before" });
  const child = spawn(process.execPath, [CLI, "tail", p, "--from", "0", "--types", "app/t,app/before", ...sse], {
    env: { PATH: process.env.PATH, STREAMS_URL: url, STREAMS_TOKEN: ADMIN_TOKEN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  const lines = () => stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const waitLines = async (n) => {
    const deadline = Date.now() + 30_000;
    while (lines().length < n) {
      if (Date.now() > deadline) assert.fail(`tail printed ${lines().length} of ${n} lines; stderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitLines(1);
  for (let i = 0; i < 30; i++) {
    await http.client.append(p, { type: i % 3 === 2 ? "app/other" : "app/t", payload: { i } });
  }
  await http.client.appendBatch(p, Array.from({ length: 10 }, (_, i) => ({ type: "app/t", payload: { i: 30 + i } })));
  // A last event after the rest: events arrive in order, so a duplicate of any earlier one would be
  // printed before this one is.
  await http.client.append(p, { type: "app/t", payload: { i: "last" } });
  const expected = [{ type: "app/before" }, ...Array.from({ length: 40 }, (_, i) => i).filter((i) => i >= 30 || i % 3 !== 2).map((i) => ({ type: "app/t", i })), { type: "app/t", i: "last" }];
  await waitLines(expected.length);
  child.kill("SIGTERM");
  const { code } = await exited;
  assert.equal(code, 0, `tail exit; stderr: ${stderr}`);
  const got = lines();
  assert.deepEqual(got.map((e) => (e.type === "app/t" ? { type: e.type, i: e.payload.i } : { type: e.type })), expected);
  const offsets = got.map((e) => e.offset);
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), "in offset order");
  assert.equal(new Set(offsets).size, offsets.length, "no event twice");
});

test("tail of a path the Worker refuses exits with the code (over a WebSocket and over SSE)", async () => {
  for (const sse of [[], ["--sse"]]) {
    const r = await run(["tail", "no-slash", ...sse]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /^streams: invalid_path: /);
  }
});
