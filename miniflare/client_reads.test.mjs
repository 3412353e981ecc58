// @streams/client and the CLI for the directory, time/tail reads and the state at an offset
// (docs/client.md#methods, #the-cli): listStreams pages, getEvents({sinceTime, last}), getState({atOffset}),
// `streams ls`, `streams get --since/--last`, `streams state --at`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { startClientStreams, viaHttp, API_TOKEN } from "./helpers/client_sdk.mjs";
import { REPO_ROOT } from "./helpers/mf.mjs";
import { pollUntil } from "./helpers/assertions.mjs";

const CLI = path.join(REPO_ROOT, "client", "dist", "cli.js");
let mf;
let url;
before(async () => {
  ({ mf, url } = await startClientStreams());
});
after(() => mf?.dispose());

function run(args, namespace) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "--namespace", namespace, ...args], {
      env: { PATH: process.env.PATH, STREAMS_URL: url, STREAMS_TOKEN: API_TOKEN },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr, lines: stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)) }));
  });
}

test("the client lists the directory page by page, reads by time and tail, and reads the state at an offset", async () => {
  const namespace = `cr${Math.random().toString(36).slice(2, 8)}`;
  const { client } = viaHttp(url, { namespace });
  for (const p of ["/x/a", "/x/b", "/x/c"]) await client.append(p, { type: "app/n" });
  await client.appendBatch("/x/a", Array.from({ length: 10 }, (_, i) => ({ type: "app/n", payload: { i } })));
  const pages = await pollUntil(
    async () => {
      const out = [];
      for await (const page of client.listStreams({ prefix: "/x/", limit: 2 })) out.push(page);
      return out;
    },
    (out) => out.flatMap((p) => p.streams).length === 3,
    { timeoutMs: 30_000, what: "three streams listed" },
  );
  assert.deepEqual(pages.map((p) => p.streams.map((s) => s.path)), [["/x/a", "/x/b"], ["/x/c"]]);
  const tail = await client.getEvents("/x/a", { last: 3 });
  assert.deepEqual(tail.map((e) => e.offset), [11, 12, 13]);
  const since = await client.getEvents("/x/a", { sinceTime: tail[0].createdAt, eventTypes: ["app/n"] });
  assert.ok(since.length >= 3 && since.every((e) => e.createdAt >= tail[0].createdAt));
  const state = await client.getState("/x/a", { atOffset: 3 });
  assert.equal(state.maxOffset, 3);

  const ls = await run(["ls", "/x/"], namespace);
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(ls.lines.map((s) => s.path), ["/x/a", "/x/b", "/x/c"]);
  const last = await run(["get", "/x/a", "--last", "2"], namespace);
  assert.deepEqual(last.lines.map((e) => e.offset), [12, 13]);
  const recent = await run(["get", "/x/a", "--since", "10m"], namespace);
  assert.equal(recent.lines.length, 13, "everything was written in the last ten minutes");
  const at = await run(["state", "/x/a", "--at", "2"], namespace);
  assert.deepEqual([at.code, at.lines[0].maxOffset], [0, 2]);
  const bad = await run(["state", "/x/a", "--at", "x"], namespace);
  assert.notEqual(bad.code, 0);
});
