// The independent model of a stream (crates/streams-model, written from docs/protocol.md and
// sharing no code with the reducer) as the oracle of the Miniflare model tests
// (docs/architecture.md#tests). The model runs as one child process per test file; each check sends
// it a log and the stream's live state, and it answers with the first difference between the
// state it folds from that log and the live one.
import { execFileSync, spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SYSTEM = "events.iterate.com/stream/";

/** Builds the model binary (cargo makes this a no-op when it is current) and returns its path. */
function modelBinary() {
  const out = execFileSync("cargo", ["build", "--quiet", "-p", "streams-model", "--bin", "streams-model", "--message-format=json"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  for (const line of out.split("\n").reverse()) {
    if (!line.startsWith("{")) continue;
    const msg = JSON.parse(line);
    if (msg.reason === "compiler-artifact" && msg.executable) return msg.executable;
  }
  throw new Error("cargo built no streams-model executable");
}

/**
 * The model only reads what a domain event's envelope says (its type, offset, time and key), so
 * their payloads and metadata stay here: a log of several MiB events checks as fast as a small one.
 */
const forModel = (e) => (e.type.startsWith(SYSTEM) ? e : { type: e.type, idempotencyKey: e.idempotencyKey, offset: e.offset, createdAt: e.createdAt });

let shared;

/**
 * The model process of this test file, started on first use. `check(log, state, liveBatches)` →
 * {ok, diff?, error?, state}, where liveBatches lists the [first, last] offsets of each caller's batch
 * (after which the model expects the breaker's trip exactly when the docs say). The process holds
 * the event loop only while a check is waiting, so a test file never has to close it.
 */
function model() {
  if (shared) return shared;
  const child = spawn(modelBinary(), [], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting = [];
  const hold = (on) => {
    for (const handle of [child, child.stdin, child.stdout]) on ? handle.ref?.() : handle.unref?.();
  };
  hold(false);
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    waiting.shift()?.resolve(JSON.parse(line));
    if (waiting.length === 0) hold(false);
  });
  child.on("exit", (code) => {
    shared = undefined;
    for (const w of waiting.splice(0)) w.reject(new Error(`the model exited (${code}) before answering`));
  });
  shared = {
    check(log, state, liveBatches = [], name = undefined) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        hold(true);
        child.stdin.write(`${JSON.stringify({ check: { log: log.map(forModel), state, liveBatches, name } })}\n`);
      });
    },
  };
  return shared;
}

/** Fails with the model's first difference unless `state` is what the model folds from `log`
 * (`name`, `<namespace>:<path>`: an empty log reads as the initial state named after it). */
export async function assertModelState(log, state, note, liveBatches = [], name = undefined) {
  const verdict = await model().check(log, state, liveBatches, name);
  if (!verdict.ok) {
    const why = verdict.diff ?? `the model refused the log: ${verdict.error}`;
    throw new Error(`${note}: the live state differs from the model (docs/protocol.md): ${why}`);
  }
}
