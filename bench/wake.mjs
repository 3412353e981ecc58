// Scenario 11: one stream with N hibernatable WebSockets wakes (the `simulateHibernation` test
// hook drops all memory and boots again, as a real wake does). Measures the boot's commits and the
// time until every socket has received everything it missed (the new `woken`, which keeps the open
// sockets in the roster, docs/protocol.md#boot); checks each socket got each event once, in order,
// with no gap.
//
//   node bench/wake.mjs [--sockets=1000] [--root=<checkout>]   # this scenario alone
//
// `bench/run.mjs` runs it too (in its own Miniflare: it needs the test hooks, which the main
// phase leaves off).
import path from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import WebSocket from "ws";
import { REPO_ROOT, startStreams } from "../miniflare/helpers/mf.mjs";

/** A socket's frames, checked as they arrive: afterOffset must equal the previous throughOffset. */
class Socket {
  constructor(url) {
    this.through = null;
    this.offsets = new Set();
    this.problems = [];
    this.ws = new WebSocket(url);
    this.ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== "batch") return;
      if (this.through !== null && frame.afterOffset !== this.through) this.problems.push(`after ${frame.afterOffset} != ${this.through}`);
      for (const e of frame.events) {
        if (this.offsets.has(e.offset)) this.problems.push(`offset ${e.offset} twice`);
        this.offsets.add(e.offset);
      }
      this.through = frame.throughOffset;
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
    });
  }
}

async function until(pred, what, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`wake bench: ${what} not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs the scenario once; resolves to {sockets, bootCommits, wakeMs, events}. */
export async function runWake({ root = REPO_ROOT, sockets = 1000 } = {}) {
  // The test harness's Miniflare: test hooks on, the streams worker is the first worker.
  const mf = await startStreams({ root });
  const open = [];
  try {
    const base = await mf.ready;
    const ns = await mf.getDurableObjectNamespace("STREAM", "streams");
    const stream = ns.get(ns.idFromName("bench:/wake"));
    const url = (i) => {
      const u = new URL(`/api/streams/subscribe?namespace=bench&path=/wake&subscriptionKey=s${i}`, base);
      u.protocol = u.protocol.replace("http", "ws");
      return u;
    };
    for (let i = 0; i < sockets; i++) {
      const s = new Socket(url(i));
      open.push(s);
      await s.opened;
    }
    const settled = async () => {
      const { maxOffset } = (await stream.runtimeState()).coreProcessorState;
      await until(() => open.every((s) => s.through >= maxOffset), `every socket through ${maxOffset}`);
      return maxOffset;
    };
    const before = await settled();
    const t0 = performance.now();
    const { bootCommits } = await stream.simulateHibernation();
    const after = await settled();
    const wakeMs = performance.now() - t0;
    const problems = open.flatMap((s, i) => s.problems.map((p) => `socket ${i}: ${p}`));
    const missing = open.filter((s) => Array.from({ length: after - before }, (_, k) => before + 1 + k).some((o) => !s.offsets.has(o)));
    if (problems.length || missing.length) {
      throw new Error(`wake bench: ${problems.slice(0, 5).join("; ")} ${missing.length} sockets missed events`);
    }
    return { sockets, bootCommits, wakeMs, events: after - before };
  } finally {
    for (const s of open) s.ws.terminate();
    await mf.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { sockets: { type: "string", default: "1000" }, root: { type: "string", default: REPO_ROOT } } });
  const result = await runWake({ root: path.resolve(values.root), sockets: Number(values.sockets) });
  console.log(JSON.stringify(result));
}
