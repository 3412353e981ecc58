// The developer commands as a new user runs them: `wrangler deploy --dry-run` from a fresh clone
// (its [build] is the project's own offline build script), and `npm run dev` (a start with nothing
// changed builds nothing; SIGTERM or SIGINT to it stops wrangler and workerd and frees the port; it
// serves the viewer with its security headers).
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./helpers/mf.mjs";

const WRANGLER = path.join(REPO_ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
/** What build.sh produces; a clone whose inputs match reuses them instead of compiling. */
const ARTEFACTS = ["build", "client/dist", "viewer/dist"];
/** Any download attempt fails at once instead of reaching the network. */
const OFFLINE = { HTTPS_PROXY: "http://127.0.0.1:9", HTTP_PROXY: "http://127.0.0.1:9", https_proxy: "http://127.0.0.1:9", http_proxy: "http://127.0.0.1:9" };
/** The settings bootstrap.sh exports; the [build] command must set them up itself. */
const BUILD_ENV = ["WASM_BINDGEN_BIN", "ESBUILD_BIN", "WASM_OPT_BIN"];

const git = (args, opts = {}) => execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8", ...opts }).trim();
const withoutBuildEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !BUILD_ENV.includes(k)));

before(() => {
  // Up to date already when `npm test` built first; otherwise this builds once, here.
  execFileSync("bash", ["scripts/build.sh"], { cwd: REPO_ROOT, stdio: "ignore" });
});

/** A commit of the working tree as it is (tracked and untracked files, ignored ones left out). */
function workingTreeCommit(tmp) {
  const identity = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@localhost", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@localhost" };
  const env = { ...process.env, ...identity, GIT_INDEX_FILE: path.join(tmp, "index") };
  git(["add", "--all"], { env });
  const tree = git(["write-tree"], { env });
  return git(["commit-tree", tree, "-p", "HEAD", "-m", "working tree"], { env });
}

test("wrangler deploy --dry-run works from a fresh clone: [build] is the project's own offline build", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "streams-clone-"));
  try {
    const clone = path.join(tmp, "clone");
    git(["clone", "--quiet", "--shared", "--no-checkout", REPO_ROOT, clone]);
    git(["checkout", "--quiet", workingTreeCommit(tmp)], { cwd: clone });
    // The installed packages, as `npm ci` would leave them for this lock file: hard links (never a
    // symlink, which an install in the clone would empty through), with the lock file older than
    // the install so bootstrap.sh sees nothing to do.
    execFileSync("cp", ["-al", path.join(REPO_ROOT, "node_modules"), path.join(clone, "node_modules")]);
    const installed = fs.statSync(path.join(clone, "node_modules", ".package-lock.json")).mtimeMs / 1000;
    fs.utimesSync(path.join(clone, "package-lock.json"), installed - 60, installed - 60);
    for (const dir of ARTEFACTS) {
      if (fs.existsSync(path.join(REPO_ROOT, dir))) fs.cpSync(path.join(REPO_ROOT, dir), path.join(clone, dir), { recursive: true });
    }

    const outdir = path.join(tmp, "out");
    const output = execFileSync("node", [WRANGLER, "deploy", "--dry-run", "--outdir", outdir], {
      cwd: clone,
      env: { ...withoutBuildEnv(), ...OFFLINE, WRANGLER_SEND_METRICS: "false" },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    assert.match(output, /Running: bash scripts\/build\.sh/, output);
    assert.match(output, /build\.sh: worker up to date/, `the clone rebuilt instead of reusing build/:\n${output}`);
    assert.match(output, /env\.STREAM \(Stream\)\s+Durable Object/, output);
    const files = fs.readdirSync(outdir);
    const wasm = files.find((f) => f.endsWith("index_bg.wasm"));
    assert.ok(files.includes("entry.js") && wasm, `bundle: ${files}`);
    assert.ok(fs.readFileSync(path.join(outdir, "entry.js"), "utf8").includes(wasm), "entry.js imports the built wasm module");
    assert.deepEqual(fs.readFileSync(path.join(outdir, wasm)), fs.readFileSync(path.join(REPO_ROOT, "build", "index_bg.wasm")), "the bundle carries build/index_bg.wasm");
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function portIsFree(port) {
  const server = net.createServer();
  const free = await new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => resolve(true));
  });
  if (free) await new Promise((resolve) => server.close(resolve));
  return free;
}

/** [pid, command] of every live process in process group `pgid`. */
function processGroup(pgid) {
  const members = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the ")" that ends the command name: state ppid pgrp …
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") members.push([Number(pid), fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")]);
    } catch {
      // the process ended while we looked
    }
  }
  return members;
}

/** A body of exactly `bytes` spaces, streamed in 1 MiB chunks with no content-length, then ended. */
function chunked(bytes) {
  let left = bytes;
  return new ReadableStream({
    pull(controller) {
      if (left === 0) return controller.close();
      const n = Math.min(left, 1024 * 1024);
      left -= n;
      controller.enqueue(new Uint8Array(n).fill(0x20));
    },
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * `npm run dev` on a free port with its own storage, in its own process group (so that everything
 * it started can be found afterwards); resolves once the API answers without a token.
 */
async function startDev() {
  const port = await freePort();
  // Its own inspector port too: wrangler's default (9229) is taken by any other dev server on the machine.
  const inspectorPort = await freePort();
  const persist = fs.mkdtempSync(path.join(os.tmpdir(), "streams-dev-"));
  const dev = spawn("npm", ["run", "dev", "--", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persist], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: process.env,
  });
  let log = "";
  dev.stdout.on("data", (d) => (log += d));
  dev.stderr.on("data", (d) => (log += d));
  try {
    await waitFor(`npm run dev on port ${port}`, async () => {
      if (dev.exitCode !== null) assert.fail(`npm run dev exited early:\n${log}`);
      const res = await fetch(`http://127.0.0.1:${port}/api/streams/runtimeState?path=/dev-check`).catch(() => null);
      return res?.status === 200;
    }, 120_000);
  } catch (e) {
    for (const [pid] of processGroup(dev.pid)) process.kill(pid, "SIGKILL");
    fs.rmSync(persist, { recursive: true, force: true });
    throw e;
  }
  return { port, persist, dev, logged: () => log };
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  test(`npm run dev with nothing changed builds nothing, and ${signal} to it stops wrangler and workerd and frees the port`, async () => {
    const { port, persist, dev, logged } = await startDev();
    const group = dev.pid;
    try {
      // Over-limit streamed uploads get the Worker's own 413 through wrangler's proxy, which
      // answers a POST whose upload breaks off with a plain-text 503 "Your worker restarted
      // mid-request": the Worker reads such a body to its end before refusing it.
      for (const bytes of [16 * 1024 * 1024 + 1, 20 * 1024 * 1024, 20 * 1024 * 1024, 20 * 1024 * 1024]) {
        const res = await fetch(`http://127.0.0.1:${port}/api/streams/append?path=/dev-check`, { method: "POST", body: chunked(bytes), duplex: "half" });
        const text = await res.text();
        assert.equal(res.status, 413, `${bytes} bytes: ${text}`);
        assert.equal(JSON.parse(text).error.code, "batch_too_large");
      }
      const log = logged();
      assert.match(log, /build\.sh: worker up to date/, log);
      assert.doesNotMatch(log, /Compiling to Wasm|wasm-opt/, `a start with nothing changed must not build:\n${log}`);
      const running = processGroup(group).map(([, cmd]) => cmd);
      assert.ok(running.some((cmd) => /wrangler/.test(cmd)), running.join("\n"));
      assert.ok(running.some((cmd) => /workerd/.test(cmd)), running.join("\n"));

      process.kill(dev.pid, signal);
      await waitFor("wrangler and workerd to stop", () => processGroup(group).length === 0, 30_000);
      assert.ok(await portIsFree(port), `port ${port} is still taken`);
    } finally {
      for (const [pid] of processGroup(group)) process.kill(pid, "SIGKILL");
      fs.rmSync(persist, { recursive: true, force: true });
    }
  });
}

test("npm run dev serves the viewer page with its security headers and no inline script, and the API open for local development", async () => {
  const { port, persist, dev } = await startDev();
  const origin = `http://127.0.0.1:${port}`;
  try {
    for (const page of ["/", "/split", "/?path=/demo"]) {
      const res = await fetch(origin + page);
      const html = await res.text();
      assert.equal(res.status, 200, page);
      assert.match(res.headers.get("content-type") ?? "", /text\/html/, page);
      const csp = res.headers.get("content-security-policy") ?? "";
      const directives = Object.fromEntries(csp.split(";").map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([name, ...values]) => [name, values]));
      assert.deepEqual(directives["script-src"], ["'self'", "'wasm-unsafe-eval'"], `${page}: ${csp}`);
      assert.deepEqual(directives["frame-ancestors"], ["'none'"], `${page}: ${csp}`);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", page);
      assert.equal(res.headers.get("referrer-policy"), "no-referrer", page);
      // Every script the page loads comes from a file of this origin.
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
      assert.ok(scripts.length > 0, page);
      for (const [, attributes, body] of scripts) {
        assert.equal(body.trim(), "", `${page}: inline script`);
        assert.match(attributes, /\bsrc="\/[^"/]/, `${page}: a script from another origin: ${attributes}`);
      }
      assert.doesNotMatch(html, /\son[a-z]+\s*=/i, `${page}: an inline event handler`);
    }
    const asset = await fetch(`${origin}/assets/viewer.js`);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get("x-content-type-options"), "nosniff");
  } finally {
    for (const [pid] of processGroup(dev.pid)) process.kill(pid, "SIGKILL");
    fs.rmSync(persist, { recursive: true, force: true });
  }
});
