// Keeps the documentation true: every error code, method, route and setting the code defines is
// documented, and every snippet in README.md runs (against the built Worker under Miniflare).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT, http, startStreams } from "./helpers/mf.mjs";
import {
  codeBlocks,
  configurationNames,
  errorCodes,
  httpStatusByCode,
  markdownSection,
  methodNames,
  routePaths,
  rustMessagePatterns,
  rustSources,
} from "./helpers/docs.mjs";

const run = promisify(execFile);
const read = (file) => fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
const DEV_ORIGIN = "127.0.0.1:8787";
const SNIPPET_TIMEOUT_MS = 30_000;

const protocol = read("docs/protocol.md");
const operations = read("docs/operations.md");
const readme = read("README.md");
const sources = rustSources(REPO_ROOT);

const errorRow = (table, code) => table.split("\n").find((line) => line.startsWith(`| \`${code}\` |`));

test("docs: every error code in the Rust error enum has a row in the protocol's error table", () => {
  const codes = errorCodes(sources);
  assert.ok(codes.length >= 14, `found only ${codes.length} error codes: ${codes}`);
  const table = markdownSection(protocol, "Errors");
  for (const code of codes) assert.ok(errorRow(table, code), `docs/protocol.md#errors has no table row for \`${code}\``);
});

test("docs: every error message in the protocol's error table is one the code produces", () => {
  const patterns = rustMessagePatterns(sources);
  const table = markdownSection(protocol, "Errors");
  const rows = table.split("\n").filter((line) => /^\| `[a-z_]+` \|/.test(line));
  let checked = 0;
  for (const row of rows) {
    const messages = [...row.split("|")[3].matchAll(/`([^`]+)`/g)].map((m) => m[1]).filter((m) => !/^(reset|kill)$/.test(m));
    for (const message of messages) {
      checked++;
      assert.ok(patterns.some((p) => p.test(message)), `docs/protocol.md#errors lists \`${message}\`, which no Rust string produces`);
    }
  }
  assert.ok(checked >= 30, `checked only ${checked} messages`);
});

test("docs: each error row gives the HTTP status the API layer sends", () => {
  const table = markdownSection(protocol, "Errors");
  for (const [code, status] of httpStatusByCode(sources)) {
    const row = errorRow(table, code);
    assert.ok(row, `docs/protocol.md#errors has no table row for \`${code}\``);
    assert.match(row.split("|")[2], new RegExp(`\\b${status}\\b`), `the row for ${code} does not give HTTP ${status}`);
  }
});

test("docs: every stream method and HTTP route is in the protocol reference", () => {
  const methods = methodNames(sources);
  assert.ok(methods.includes("append") && methods.includes("simulateHibernation"), `methods: ${methods}`);
  const rpc = markdownSection(protocol, "RPC methods");
  for (const method of methods) {
    assert.ok(rpc.includes(`\`${method}\``), `docs/protocol.md#rpc-methods does not mention \`${method}\``);
  }
  const routes = routePaths(sources);
  assert.ok(routes.includes("/api/streams/"), `routes: ${routes}`);
  const http = markdownSection(protocol, "HTTP routes");
  for (const route of routes) {
    assert.ok(http.includes(route), `docs/protocol.md#http-routes does not mention ${route}`);
  }
});

test("docs: every variable and secret the Worker reads is in the operations guide's configuration table", () => {
  // The Worker's own sources: test-only variables (STREAMS_PROPTEST_SEED…) are in docs/architecture.md#tests.
  const worker = sources.filter(({ file }) => !file.split(path.sep).includes("tests") && !file.startsWith(path.join("crates", "streams-model")));
  const names = configurationNames(worker, read("wrangler.toml"));
  for (const expected of ["STREAMS_API_TOKEN", "STREAMS_ADMIN_TOKEN", "STREAM_IDLE_TEARDOWN_MS"]) {
    assert.ok(names.includes(expected), `did not find ${expected} among ${names}`);
  }
  const table = markdownSection(operations, "Configuration");
  for (const name of names) {
    assert.ok(table.includes(`| \`${name}\` |`), `docs/operations.md#configuration has no row for ${name}`);
  }
});

test("README: the Documentation list links every file of docs/", () => {
  const list = markdownSection(readme, "Documentation");
  for (const file of fs.readdirSync(path.join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md"))) {
    assert.ok(list.includes(`](docs/${file})`), `README.md#documentation does not link docs/${file}`);
  }
});

test("docs: relative links in the Markdown files point at files and headings that exist", () => {
  const inDir = (dir) => fs.readdirSync(path.join(REPO_ROOT, dir)).filter((f) => f.endsWith(".md")).map((f) => path.join(dir, f));
  const files = [...inDir("."), ...inDir("docs"), ...inDir("bench")];
  for (const file of files) {
    const text = read(file);
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // external
      const [linkPath, anchor] = target.split("#");
      const resolved = linkPath ? path.join(path.dirname(file), linkPath) : file;
      assert.ok(fs.existsSync(path.join(REPO_ROOT, resolved)), `${file} links to missing ${resolved}`);
      if (anchor && resolved.endsWith(".md")) {
        const anchors = headingAnchors(read(resolved));
        assert.ok(anchors.has(anchor), `${file} links to ${resolved}#${anchor}, which has no such heading`);
      }
    }
  }
});

function headingAnchors(markdown) {
  const anchors = new Set();
  for (const [, heading] of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    anchors.add(heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-"));
  }
  return anchors;
}

// ---- README snippets, executed ----

let mf;
let origin;

/** The README's shell snippets use curl; install it when the machine lacks it. */
async function ensureCurl() {
  const found = await run("bash", ["-c", "command -v curl"]).then(() => true, () => false);
  if (!found) await run("bash", ["-c", "apt-get install -y curl || (apt-get update && apt-get install -y curl)"], { timeout: 300_000 });
}

before(async () => {
  await ensureCurl();
  mf = await startStreams({ miniflare: { host: "127.0.0.1", port: 0 } });
  origin = new URL(await mf.ready).host;
});

after(async () => {
  await mf?.dispose();
});

const localised = (code) => code.replaceAll(DEV_ORIGIN, origin);

/** Runs a bash snippet; returns its stdout split per command line, with each line's expected output. */
async function runShell(code) {
  const lines = code.split("\n");
  const script = ["set -euo pipefail"];
  const expectations = [];
  lines.forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith("#")) return;
    script.push(localised(line), `printf '\\n@@@${i}@@@\\n'`);
    const inline = line.match(/\s#\s+(?:\d{3}:\s*)?([[{].*)$/);
    const next = lines[i + 1]?.match(/^#\s+([[{].*)$/);
    const expected = next?.[1] ?? inline?.[1];
    if (expected) expectations.push({ i, line, expected });
  });
  const { stdout } = await run("bash", ["-c", script.join("\n")], { cwd: REPO_ROOT, timeout: SNIPPET_TIMEOUT_MS });
  const outputs = new Map();
  let rest = stdout;
  for (const [, index] of stdout.matchAll(/@@@(\d+)@@@/g)) {
    const [before, after] = rest.split(`@@@${index}@@@`);
    outputs.set(Number(index), before.trim());
    rest = after;
  }
  for (const { i, line, expected } of expectations) {
    const pattern = new RegExp("^" + expected.trim().split("…").map(escapeRegExp).join(".*") + "$", "s");
    assert.match(outputs.get(i) ?? "", pattern, `README: \`${line.trim()}\` printed something other than the documented ${expected}`);
  }
  return outputs;
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function runNode(code) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", localised(code)], { cwd: REPO_ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), SNIPPET_TIMEOUT_MS);
    child.on("close", (status) => {
      clearTimeout(timer);
      if (status === 0) resolve(stdout);
      else reject(new Error(`snippet exited with ${status}\n${stderr}\n---\n${code}`));
    });
  });
}

/**
 * Compiles a TypeScript snippet as a consumer's project would: strict, from a folder inside
 * node_modules, so package imports resolve only through installed packages and their exports.
 */
async function typeCheckAsConsumer(code, line) {
  const dir = path.join(REPO_ROOT, "node_modules", ".cache", "readme-snippets");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `readme-line-${line}.ts`);
  fs.writeFileSync(file, code.endsWith("\n") ? code : code + "\n");
  const config = path.join(dir, `tsconfig-${line}.json`);
  const compilerOptions = {
    target: "ES2022", module: "ES2022", moduleResolution: "bundler", lib: ["ES2022", "DOM"],
    strict: true, noEmit: true, skipLibCheck: true, types: [],
  };
  fs.writeFileSync(config, JSON.stringify({ compilerOptions, files: [file] }));
  const tsc = path.join(REPO_ROOT, "node_modules", ".bin", "tsc");
  await run(tsc, ["-p", config], { cwd: dir, timeout: SNIPPET_TIMEOUT_MS }).catch((e) => {
    assert.fail(`README.md line ${line}: the TypeScript snippet does not compile for a consumer:\n${e.stdout}${e.stderr}`);
  });
}

/** The package.json scripts a "two commands" block names; such a block cannot run inside `npm test`. */
function npmScriptsOnly(code) {
  const commands = code.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
  const scripts = commands.map((c) => c.match(/^npm (?:run )?([a-z:-]+)$/)?.[1]);
  return scripts.every(Boolean) ? scripts : null;
}

test("README: every snippet runs, in order, against the built Worker", async () => {
  const blocks = codeBlocks(readme);
  assert.ok(blocks.length >= 4, `expected the tour's snippets, found ${blocks.length} blocks`);
  const { scripts } = JSON.parse(read("package.json"));
  for (const block of blocks) {
    const where = `README.md line ${block.line} (\`\`\`${block.lang})`;
    if (block.testedBy) {
      const file = path.join(REPO_ROOT, block.testedBy);
      assert.ok(fs.existsSync(file), `${where} is marked tested-by ${block.testedBy}, which does not exist`);
      const test = fs.readFileSync(file, "utf8");
      assert.ok(test.includes(block.code) || test.includes("README.md"), `${block.testedBy} neither contains nor reads the snippet at ${where}`);
      continue;
    }
    switch (block.lang) {
      case "sh": {
        const npm = npmScriptsOnly(block.code);
        if (npm) {
          for (const s of npm) assert.ok(s === "test" ? scripts.test : scripts[s], `${where}: package.json has no "${s}" script`);
          break;
        }
        await runShell(block.code);
        break;
      }
      case "js":
      case "mjs":
        await runNode(block.code);
        break;
      case "ts":
        await typeCheckAsConsumer(block.code, block.line);
        break;
      case "json":
        JSON.parse(block.code);
        break;
      default:
        assert.fail(`${where}: no test runs \`\`\`${block.lang || "(no language)"} blocks; use sh, js, ts or json, or mark it <!-- tested-by: … -->`);
    }
  }
});

test("README: the tour's first append lands at offset 3 and the subscriber sees it, then closes cleanly", async () => {
  // The generic run above proves the snippets succeed; this pins what the tour promises.
  const blocks = codeBlocks(readme);
  const subscribe = blocks.find((b) => b.lang === "js" && b.code.includes("/api/streams/subscribe"));
  assert.ok(subscribe, "the tour has a WebSocket snippet");
  assert.match(subscribe.code, /onopen\s*=.*send/, "the WebSocket snippet sends from onopen, not before the socket is open");
  const out = await runNode(subscribe.code);
  assert.match(out, /^3 app\/hello$/m);
  assert.match(out, /^closed 1000$/m);
});

test("docs: the export script in operations.md writes the stream as JSON lines", async () => {
  const exporter = codeBlocks(operations).find((b) => b.lang === "js" && b.code.includes("getEvents"));
  assert.ok(exporter, "operations.md has an export script");
  const out = await runNode(exporter.code);
  const events = out.trim().split("\n").map((line) => JSON.parse(line));
  assert.ok(events.length >= 3, `exported ${events.length} events`);
  events.forEach((event, i) => assert.equal(event.offset, i + 1, "offsets are gap-free from 1"));
  assert.equal(events[0].type, "events.iterate.com/stream/created");
});

test("docs: the system event examples in protocol.md append as documented", async () => {
  const example = codeBlocks(markdownSection(protocol, "System events")).find((b) => b.lang === "json");
  assert.ok(example, "protocol.md#system-events has an example batch");
  const events = JSON.parse(example.code);
  const stream = "namespace=docs-examples&path=/demo"; // the documented path, in a namespace of its own
  const appended = await http(mf, "POST", `/api/streams/appendBatch?${stream}`, { body: { events } });
  assert.equal(appended.status, 200, appended.text);
  assert.deepEqual(appended.json.map((e) => e.type), events.map((e) => e.type));
  const { json } = await http(mf, "GET", `/api/streams/runtimeState?${stream}`);
  const state = json.coreProcessorState;
  assert.deepEqual(state.config.circuitBreaker, { burstCapacity: 100, refillRatePerMinute: 600 });
  assert.deepEqual(state.metadata, { owner: "team-a" });
  assert.equal(state.paused, false);
  assert.deepEqual(state.childPaths, ["/demo/jobs"]);
});

test("docs: committed files cite only what is in the repository (no outside documents, machine paths or tracker numbers)", async () => {
  const { stdout } = await run("git", ["ls-files"], { cwd: REPO_ROOT });
  const outside = /\b(?:STREAM|TOOLCHAIN|WORKERS-RS-NOTES|UPSTREAM-CONSUMERS)\.md\b|\bshared\/spec\b|\/work\/|\bissues? #?\d+\b/;
  // A bare "§4.4" in code cites a section of an outside document; RFCs and RELIABILITY.md's own
  // scenario numbers are fine.
  const section = /(?<!RFC \d+ |RELIABILITY\.md |§\d[\w.]*\/)§\d/;
  const self = path.relative(REPO_ROOT, new URL(import.meta.url).pathname);
  const text = /\.(md|rs|mjs|js|ts|tsx|sh|toml|json|html|css|ya?ml)$/;
  const checked = stdout.split("\n").filter((f) => text.test(f) && f !== self && fs.existsSync(path.join(REPO_ROOT, f)));
  assert.ok(checked.length > 50, `only ${checked.length} files checked`);
  const offenders = [];
  for (const file of checked) {
    const ownSections = file === "RELIABILITY.md";
    read(file).split("\n").forEach((line, i) => {
      if (outside.test(line) || (!ownSections && section.test(line))) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, []);
});

// ---- every documented limit and error message is exercised by a test

/** Every test file's text: Miniflare and client tests, cargo integration tests, and the unit tests inside Rust sources. */
function testTexts() {
  const texts = [];
  const walk = (dir, keep) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file, keep);
      else if (keep(entry.name)) texts.push({ file: path.relative(REPO_ROOT, file), text: fs.readFileSync(file, "utf8") });
    }
  };
  walk(path.join(REPO_ROOT, "miniflare"), (n) => n.endsWith(".test.mjs") && n !== "docs.test.mjs");
  walk(path.join(REPO_ROOT, "client", "test"), (n) => n.endsWith(".test.mjs"));
  for (const dir of ["tests", "crates/streams-core/tests"]) walk(path.join(REPO_ROOT, dir), (n) => n.endsWith(".rs"));
  for (const { file, text } of sources) {
    const at = path.basename(file) === "tests.rs" ? 0 : text.indexOf("#[cfg(test)]");
    if (at >= 0) texts.push({ file, text: text.slice(at) });
  }
  // Quotes as a string literal escapes them (`\"k\"`, `subscriber\'s`) read as the message has them.
  return texts.map(({ file, text }) => ({ file, text: text.replace(/\\(["'])/g, "$1") }));
}

test("docs: every MAX_* limit of the Rust code is exercised by a test (by name or by value)", () => {
  const limits = [];
  for (const { text } of sources) {
    for (const [, name, expr] of text.matchAll(/pub const (MAX_[A-Z0-9_]+): [a-z0-9]+ = ([^;]+);/g)) {
      const value = expr.replaceAll("_", "").split("*").reduce((product, factor) => product * Number(factor.trim()), 1);
      if (Number.isFinite(value)) limits.push({ name, value });
    }
  }
  assert.ok(limits.length >= 15, `found only ${limits.length} limits`);
  const texts = testTexts();
  const missing = [];
  for (const { name, value } of limits) {
    const spelled = String(value).replace(/\B(?=(\d{3})+(?!\d))/g, "_");
    const mib = value % (1024 * 1024) === 0 ? value / (1024 * 1024) : null;
    const forms = [new RegExp(`\\b${name}\\b`), new RegExp(`(?<![\\d_.])(${value}|${spelled})(?![\\d_])`)];
    if (mib) forms.push(new RegExp(`\\b${mib} \\* 1024 \\* 1024\\b|\\b${mib} << 20\\b`));
    if (!texts.some(({ text }) => forms.some((re) => re.test(text)))) missing.push(`${name} = ${value}`);
  }
  assert.deepEqual(missing, [], "limits no test mentions (by name or value)");
});

test("docs: every error message in the protocol's error table is exercised by a test", () => {
  const table = markdownSection(protocol, "Errors");
  const texts = testTexts();
  const missing = [];
  let checked = 0;
  for (const row of table.split("\n").filter((line) => /^\| `[a-z_]+` \|/.test(line))) {
    const messages = [...row.split("|")[3].matchAll(/`([^`]+)`/g)].map((m) => m[1]).filter((m) => !/^(reset|kill)$/.test(m));
    for (const message of messages) {
      checked++;
      // The fixed text between placeholders (`<n>`, `<reason>`…): its longest piece must be in a test.
      const piece = message
        .split(/<[^>]+>|…/)
        .map((p) => p.trim())
        .sort((a, b) => b.length - a.length)[0];
      if (!piece || piece.length < 6) continue;
      if (!texts.some(({ text }) => text.includes(piece))) missing.push(message);
    }
  }
  assert.ok(checked >= 30, `checked only ${checked} messages`);
  assert.deepEqual(missing, [], "documented error messages no test exercises");
});
