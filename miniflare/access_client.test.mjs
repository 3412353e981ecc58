// Tokens minted by @streams/client verify on the Worker: `mintToken` in Node and inside workerd,
// `streams token` from a shell, and the examples of docs/access.md run as written.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { mintToken, MAX_TOKEN_BYTES, StreamError } from "@streams/client";
import { startStreams, http, REPO_ROOT, COMPATIBILITY_DATE } from "./helpers/mf.mjs";
import { codeBlocks } from "./helpers/docs.mjs";

const run = promisify(execFile);
const SECRET = "client-test-secret";
const CLI = path.join(REPO_ROOT, "client", "dist", "cli.js");
const DOC_BLOCKS = codeBlocks(fs.readFileSync(path.join(REPO_ROOT, "docs", "access.md"), "utf8")).filter((b) => b.testedBy === "miniflare/access_client.test.mjs");

let mf;
before(async () => {
  mf = await startStreams({ bindings: { STREAMS_JWT_SECRET: SECRET } });
});
after(() => mf?.dispose());

const bearer = (t) => ({ authorization: `Bearer ${t}` });
const append = (tok, ns, p) => http(mf, "POST", `/api/streams/append?namespace=${ns}&path=${encodeURIComponent(p)}`, { headers: bearer(tok), body: { event: { type: "app/x" } } });
const read = (tok, ns, p) => http(mf, "GET", `/api/streams/getEvents?namespace=${ns}&path=${encodeURIComponent(p)}`, { headers: bearer(tok) });

/** Reads a token's claims without checking it (the Worker checks). */
const claimsOf = (tok) => JSON.parse(Buffer.from(tok.split(".")[1], "base64url").toString("utf8"));

test("mintToken in Node: the Worker accepts it within its scope and refuses it outside", async () => {
  const tok = await mintToken({ secret: SECRET, ns: "mint", paths: ["/m/**", "/exact"], ops: ["read", "append"], ttlSeconds: 60 });
  const c = claimsOf(tok);
  assert.equal(c.exp - c.iat, 60);
  assert.ok(Math.abs(c.iat - Date.now() / 1000) < 5);
  assert.deepEqual({ ns: c.ns, paths: c.paths, ops: c.ops }, { ns: "mint", paths: ["/m/**", "/exact"], ops: ["read", "append"] });
  for (const p of ["/m", "/m/a/b", "/exact"]) {
    assert.equal((await append(tok, "mint", p)).status, 200, p);
    assert.equal((await read(tok, "mint", p)).status, 200, p);
  }
  for (const [ns, p, message] of [["mint", "/mm", 'token does not cover path "/mm"'], ["mint", "/exact/x", 'token does not cover path "/exact/x"'], ["other", "/m", 'token does not cover namespace "other"']]) {
    const res = await append(tok, ns, p);
    assert.equal(res.status, 403);
    assert.deepEqual(res.json, { error: { code: "forbidden", message } });
  }
  const readOnly = await mintToken({ secret: SECRET, ns: "mint", paths: ["/**"], ops: ["read"], ttlSeconds: 60 });
  assert.equal((await append(readOnly, "mint", "/m")).json.error.message, "token does not allow append");
  const wrongSecret = await mintToken({ secret: "other", ns: "mint", paths: ["/**"], ops: ["read"], ttlSeconds: 60 });
  assert.equal((await read(wrongSecret, "mint", "/m")).status, 401);
  // `now` sets the clock: a token minted an hour ago for ten minutes is expired.
  const stale = await mintToken({ secret: SECRET, ns: "mint", paths: ["/**"], ops: ["read"], ttlSeconds: 600, now: Date.now() - 3600_000 });
  assert.deepEqual((await read(stale, "mint", "/m")).json, { error: { code: "unauthorized", message: "token expired" } });
});

test("mintToken refuses what the Worker would refuse", async () => {
  const good = { secret: SECRET, ns: "mint", paths: ["/a"], ops: ["read"], ttlSeconds: 60 };
  const cases = [
    [{ secret: "" }, /secret must be a non-empty string/],
    [{ ns: "Bad" }, /ns "Bad" must match/],
    [{ paths: [] }, /paths must be a non-empty array/],
    [{ paths: ["a"] }, /path scope "a" is not a path/],
    [{ paths: ["/a/*"] }, /path scope "\/a\/\*" is not a path/],
    [{ paths: ["/a/../b"] }, /is not a path/],
    [{ ops: [] }, /ops must be a non-empty array/],
    [{ ops: ["reset"] }, /ops must be a non-empty array/],
    [{ ttlSeconds: 0 }, /ttlSeconds must be a positive number/],
    [{ ttlSeconds: Number.NaN }, /ttlSeconds must be a positive number/],
    [{ paths: Array.from({ length: 200 }, (_, i) => `/p${i}-${"x".repeat(20)}`) }, new RegExp(`the limit is ${MAX_TOKEN_BYTES}`)],
  ];
  for (const [change, message] of cases) {
    await assert.rejects(mintToken({ ...good, ...change }), (e) => e instanceof StreamError && e.code === "invalid_request" && message.test(e.message), JSON.stringify(change));
  }
});

test("mintToken inside workerd (WebCrypto of the Workers runtime): the Worker accepts its token", async () => {
  const minter = new Miniflare({
    modulesRoot: REPO_ROOT,
    modules: [
      {
        type: "ESModule",
        path: path.join(REPO_ROOT, "minter.mjs"),
        contents: `import { mintToken } from "./client/dist/token.js";
export default { async fetch(request) { return new Response(await mintToken(await request.json())); } };`,
      },
      ...["token.js", "errors.js"].map((f) => ({ type: "ESModule", path: path.join(REPO_ROOT, "client", "dist", f), contents: fs.readFileSync(path.join(REPO_ROOT, "client", "dist", f), "utf8") })),
    ],
    compatibilityDate: COMPATIBILITY_DATE,
  });
  try {
    const res = await minter.dispatchFetch("http://minter/", { method: "POST", body: JSON.stringify({ secret: SECRET, ns: "inworker", paths: ["/w/**"], ops: ["append"], ttlSeconds: 120 }) });
    const tok = await res.text();
    assert.equal(res.status, 200, tok);
    assert.equal((await append(tok, "inworker", "/w/1")).status, 200);
    assert.equal((await read(tok, "inworker", "/w/1")).status, 403);
  } finally {
    await minter.dispose();
  }
});

test("`streams token` prints a token the Worker accepts; the secret comes from the environment only", async () => {
  const env = { ...process.env, STREAMS_JWT_SECRET: SECRET };
  const { stdout } = await run(process.execPath, [CLI, "token", "--namespace", "cli", "/c/**", "--ops", "append,read", "--ttl", "90"], { env });
  const tok = stdout.trim();
  assert.deepEqual(claimsOf(tok).paths, ["/c/**"]);
  assert.equal((await append(tok, "cli", "/c/x")).status, 200);
  assert.equal((await read(tok, "cli", "/c/x")).status, 200);
  const other = await run(process.execPath, [CLI, "token", "/c", "--ops", "read", "--ttl", "90", "--secret-env", "MY_SECRET"], { env: { ...process.env, MY_SECRET: SECRET } });
  assert.equal(claimsOf(other.stdout.trim()).ns, "default");
  assert.equal(claimsOf(other.stdout.trim()).sub, undefined);
  const owned = await run(process.execPath, [CLI, "token", "/c", "--ops", "read", "--ttl", "90", "--sub", "user-7"], { env });
  assert.equal(claimsOf(owned.stdout.trim()).sub, "user-7", "--sub names who the token is for");
  for (const [args, secret, status, message] of [
    [["token", "/c", "--ops", "read", "--ttl", "90"], undefined, 2, /\$STREAMS_JWT_SECRET is not set/],
    [["token", "--ops", "read", "--ttl", "90"], SECRET, 2, /expected at least one path scope/],
    [["token", "/c", "--ops", "write", "--ttl", "90"], SECRET, 2, /--ops must list read, append and\/or configure/],
    [["token", "/c", "--ops", "read", "--ttl", "0"], SECRET, 2, /--ttl must be a positive number/],
    [["token", "c", "--ops", "read", "--ttl", "9"], SECRET, 6, /invalid_request: mintToken: path scope "c"/],
  ]) {
    const { STREAMS_JWT_SECRET: _, ...rest } = process.env;
    const failed = await run(process.execPath, [CLI, ...args], { env: secret ? { ...rest, STREAMS_JWT_SECRET: secret } : rest }).then(() => null, (e) => e);
    assert.ok(failed, `${args.join(" ")} succeeded`);
    assert.equal(failed.code, status, `${args.join(" ")}: ${failed.stderr}`);
    assert.match(failed.stderr, message);
  }
});

test("docs/access.md: the mintToken and `streams token` examples run as written and give accepted tokens", async () => {
  assert.equal(DOC_BLOCKS.length, 2, "expected the js and sh examples");
  const [js, sh] = [DOC_BLOCKS.find((b) => b.lang === "js"), DOC_BLOCKS.find((b) => b.lang === "sh")];
  const env = { ...process.env, STREAMS_JWT_SECRET: SECRET };
  const node = await run(process.execPath, ["--input-type=module", "-e", `${js.code}\nconsole.log(token);`], { env, cwd: REPO_ROOT });
  // The installed package puts `streams` on the PATH.
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), "streams-bin-"));
  try {
    fs.symlinkSync(CLI, path.join(bin, "streams"));
    const shell = await run("bash", ["-euc", `${sh.code}\necho "$TOKEN"`], { env: { ...env, PATH: `${bin}:${process.env.PATH}` } });
    for (const [tok, canAppend] of [[node.stdout.trim(), true], [shell.stdout.trim(), false]]) {
      assert.equal((await read(tok, "default", "/users/u1/inbox")).status, 200);
      assert.equal((await append(tok, "default", "/users/u1")).status, canAppend ? 200 : 403);
      assert.equal((await read(tok, "default", "/users/u2")).status, 403);
    }
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
});
