// Scenarios 13 and 14: inbound sockets that must not cost other callers.
//
// 13. Single-append throughput on a 30,000-event stream with a socket filtered on a type that
//     never occurs (`eventTypes=app/rare&replayAfterOffset=0`) parked at its tail, against the same
//     stream shape without it. The socket's stored cursor keeps each commit's scan to the new event
//     (docs/protocol.md#websocket-frames); target ≥ 0.9.
// 14. One append issued while a socket replays a 100,000-event stream from offset 0: its latency
//     as Node sees it (through the driver Worker), against an append with no replay, and where the
//     replay stood (the socket's stored cursor) when a call after it was answered: the replay
//     yields between pages, so calls do not wait for it to end.
//
//   node bench/sockets.mjs [--root=<checkout>] [--appends=500] [--rounds=7]   # these scenarios alone
//
// `bench/run.mjs` runs it too. Scenario 13's appends are timed inside workerd by a small driver
// Worker (RPC to the Stream DO), so Node's own overhead stays out; the sockets are `ws` clients in
// Node. Scenario 14 is timed from Node: workerd's clock does not move while the object computes.
import path from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import WebSocket from "ws";
import { COMPATIBILITY_DATE, REPO_ROOT, startStreams } from "../miniflare/helpers/mf.mjs";

const DRIVER = `
export default {
  async fetch(request, env) {
    const { op, name, n, type } = await request.json();
    const stream = env.STREAM.get(env.STREAM.idFromName(name));
    if (op === "fill") {
      for (let done = 0; done < n; done += 1000) {
        await stream.appendBatch({ events: Array.from({ length: Math.min(1000, n - done) }, () => ({ type })) });
      }
      return Response.json({});
    }
    if (op === "cursor") {
      const { coreProcessorState, runtime } = await stream.runtimeState();
      return Response.json({ cursor: runtime.connections[type]?.cursor ?? null, maxOffset: coreProcessorState.maxOffset });
    }
    const t0 = Date.now();
    for (let i = 0; i < n; i++) await stream.append({ event: { type, payload: { i } } });
    return Response.json({ ms: Date.now() - t0 });
  },
};`;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function socketUrl(base, streamPath, params) {
  const u = new URL(`/api/streams/subscribe?${new URLSearchParams({ namespace: "bench", path: streamPath, ...params })}`, base);
  u.protocol = u.protocol.replace("http", "ws");
  return u;
}

async function openSocket(url, onFrame = () => {}) {
  const ws = new WebSocket(url);
  ws.on("message", (data) => onFrame(JSON.parse(String(data))));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return ws;
}

/** Runs both scenarios once; resolves to their numbers. */
export async function runSockets({ root = REPO_ROOT, events = 30_000, appends = 500, rounds = 7, replayEvents = 100_000 } = {}) {
  const mf = await startStreams({
    root,
    workers: [
      {
        name: "socket-driver",
        modules: [{ type: "ESModule", path: "driver.mjs", contents: DRIVER }],
        compatibilityDate: COMPATIBILITY_DATE,
        durableObjects: { STREAM: { className: "Stream", scriptName: "streams", useSQLite: true } },
      },
    ],
  });
  const sockets = [];
  try {
    const base = await mf.ready;
    const driver = await mf.getWorker("socket-driver");
    const drive = async (body) => (await driver.fetch("http://driver/", { method: "POST", body: JSON.stringify(body) })).json();

    // 13: two streams of the same length; one gets the filtered socket.
    for (const name of ["bench:/filtered", "bench:/plain"]) await drive({ op: "fill", name, n: events, type: "app/x" });
    const parked = [];
    sockets.push(await openSocket(socketUrl(base, "/filtered", { subscriptionKey: "rare", eventTypes: "app/rare", replayAfterOffset: "0" }), (f) => parked.push(f)));
    const rates = { filtered: [], plain: [] };
    for (let round = 0; round <= rounds; round++) {
      const order = round % 2 ? ["plain", "filtered"] : ["filtered", "plain"];
      for (const which of order) {
        const { ms } = await drive({ op: "appends", name: `bench:/${which}`, n: appends, type: "app/x" });
        if (round > 0) rates[which].push((appends * 1000) / Math.max(ms, 1));
      }
    }
    const withSocket = median(rates.filtered);
    const without = median(rates.plain);
    if (parked.some((f) => f.events.length > 0)) throw new Error("sockets bench: the filtered socket received events");

    // 14: an append during a replay from offset 0, and one on a warm stream with no socket.
    const idle = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await drive({ op: "appends", name: "bench:/plain", n: 1, type: "app/y" });
      idle.push(performance.now() - t);
    }
    await drive({ op: "fill", name: "bench:/replay", n: replayEvents, type: "app/x" });
    const frames = [];
    let firstFrame;
    const first = new Promise((resolve) => (firstFrame = resolve));
    sockets.push(await openSocket(socketUrl(base, "/replay", { subscriptionKey: "replay", replayAfterOffset: "0" }), (f) => (frames.push(f), firstFrame())));
    await first;
    const t0 = performance.now();
    await drive({ op: "appends", name: "bench:/replay", n: 1, type: "app/during" });
    const wallMs = performance.now() - t0;
    // Where the replay stood when a call after the append was answered (its stored cursor).
    const { cursor: cursorAtReply, maxOffset } = await drive({ op: "cursor", name: "bench:/replay", type: "replay" });
    const deadline = Date.now() + 300_000;
    while (!frames.some((f) => f.events.some((e) => e.type === "app/during"))) {
      if (Date.now() > deadline) throw new Error("sockets bench: the replay did not finish");
      await new Promise((r) => setTimeout(r, 10));
    }
    const delivered = frames.flatMap((f) => f.events.map((e) => e.offset));
    if (delivered.some((o, i) => o !== i + 1)) throw new Error("sockets bench: the replay is not every offset once, in order");
    return {
      events,
      appends,
      withSocket,
      without,
      ratio: withSocket / without,
      replayEvents,
      idleAppendMs: median(idle),
      duringReplayAppendMs: wallMs,
      cursorAtReply,
      maxOffset,
      replayFrames: frames.length,
      replayedEvents: delivered.length,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    await mf.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: { root: { type: "string", default: REPO_ROOT }, appends: { type: "string", default: "500" }, rounds: { type: "string", default: "7" } },
  });
  console.log(JSON.stringify(await runSockets({ root: path.resolve(values.root), appends: Number(values.appends), rounds: Number(values.rounds) })));
}
