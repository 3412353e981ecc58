// @streams/client as a user outside the repository gets it (docs/client.md#installing): `npm pack`
// of a pristine copy of client/ (its `prepack` builds dist/), the tarball's contents, then a
// scratch project in a temporary directory that installs only the tarball and `ws` (from npm's
// cache when it has them, as after `npm ci`), runs the README's Node snippet and `npx streams`
// against the built Worker.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT, startStreams } from "./helpers/mf.mjs";

const run = promisify(execFile);
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const NPX = process.platform === "win32" ? "npx.cmd" : "npx";
const rootLock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package-lock.json"), "utf8"));
const WS_VERSION = rootLock.packages["node_modules/ws"].version;

let scratch;
let mf;
let url;
let tarball;
let app;

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "streams-client-package-"));
  mf = await startStreams({ miniflare: { host: "127.0.0.1", port: 0 } });
  url = String(await mf.ready).replace(/\/$/, "");
});
after(async () => {
  await mf?.dispose();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

test("the scratch directory is outside the repository", () => {
  const relative = path.relative(REPO_ROOT, fs.realpathSync(scratch));
  assert.ok(relative.startsWith("..") || path.isAbsolute(relative), `${scratch} is inside ${REPO_ROOT}`);
});

test("npm pack of a fresh copy of client/ builds it (prepack) into a tarball with dist/, types, the CLI and the browser assets", async () => {
  // Only the package's sources: no dist/ to pick up, so what the tarball holds was built by prepack.
  const copy = path.join(scratch, "source", "client");
  fs.mkdirSync(copy, { recursive: true });
  for (const entry of ["package.json", "tsconfig.json", "build.mjs", "bundle-browser.mjs", "src"]) {
    fs.cpSync(path.join(REPO_ROOT, "client", entry), path.join(copy, entry), { recursive: true });
  }
  // The build's tools (typescript, esbuild, the sqlite-wasm it copies) as `npm ci` at the root installs them.
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(scratch, "source", "node_modules"), "dir");
  const out = path.join(scratch, "out");
  fs.mkdirSync(out);
  const { stdout } = await run(NPM, ["pack", "--pack-destination", out, "--json"], { cwd: copy, timeout: 180_000, maxBuffer: 1 << 26 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf("[")));
  tarball = path.join(out, packed.filename);
  assert.ok(fs.existsSync(tarball));
  const files = new Map(packed.files.map((f) => [f.path, f]));
  for (const file of [
    "package.json",
    "dist/index.js",
    "dist/index.d.ts",
    "dist/processor/index.js",
    "dist/processor/index.d.ts",
    "dist/browser/index.js",
    "dist/browser/index.d.ts",
    "dist/react/index.d.ts",
    "dist/cli.js",
    "dist/browser/assets/mirror-worker.js",
    "dist/browser/assets/sqlite3.wasm",
    "bundle-browser.mjs",
  ]) {
    assert.ok(files.has(file), `the tarball has no ${file} (it has ${[...files.keys()].filter((f) => !f.startsWith("src/")).join(", ")})`);
  }
  assert.ok(files.get("dist/cli.js").mode & 0o111, "the CLI is executable");
  assert.ok(![...files.keys()].some((f) => f.startsWith("test/") || f.startsWith("node_modules/")), "no tests or dependencies in the tarball");
});

test("a scratch project installs the tarball and ws (no repository on its resolution path)", async () => {
  assert.ok(tarball, "the pack test ran first");
  app = path.join(scratch, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "scratch-app", private: true, type: "module" }, null, 2));
  await run(NPM, ["install", tarball, `ws@${WS_VERSION}`, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: app,
    timeout: 300_000,
    maxBuffer: 1 << 26,
  });
  const installed = path.join(app, "node_modules", "@streams", "client");
  assert.ok(!fs.lstatSync(installed).isSymbolicLink(), "a copy, not a link into the repository");
  assert.equal(JSON.parse(fs.readFileSync(path.join(installed, "package.json"), "utf8")).name, "@streams/client");
  assert.ok(fs.existsSync(path.join(installed, "dist", "browser", "assets", "sqlite3.wasm")));
});

test("the README's Node snippet runs in the scratch project", async () => {
  assert.ok(app, "the install test ran first");
  const snippet = fs.readFileSync(path.join(REPO_ROOT, "examples", "client", "node.mjs"), "utf8");
  assert.ok(fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8").includes(snippet.trimEnd()), "examples/client/node.mjs is the README's snippet");
  fs.writeFileSync(path.join(app, "index.mjs"), snippet);
  const { stdout } = await run(process.execPath, ["index.mjs"], { cwd: app, env: { ...process.env, STREAMS_URL: url }, timeout: 30_000 });
  assert.equal(stdout, '3 app/order-placed {"id":1}\n');
});

test("npx streams runs the installed CLI in the scratch project", async () => {
  assert.ok(app, "the install test ran first");
  const env = { ...process.env, STREAMS_URL: url };
  const streams = (...args) => run(NPX, ["--no-install", "streams", ...args], { cwd: app, env, timeout: 60_000 });
  const appended = JSON.parse((await streams("append", "/package/demo", '{"type":"app/hello","payload":{"n":1}}')).stdout);
  assert.deepEqual([appended.offset, appended.type, appended.payload], [3, "app/hello", { n: 1 }]);
  const lines = (await streams("get", "/package/demo", "--from", "2")).stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((e) => e.type), ["app/hello"]);
  const refused = await streams("get", "/package/demo", "--offset", "99").then(
    () => assert.fail("a missing offset must fail"),
    (e) => e,
  );
  assert.equal(refused.code, 5);
  assert.match(refused.stderr, /^streams: not_found: /);
});
