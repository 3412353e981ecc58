// Reads by time, tail and offset, long-poll and the directory (docs/protocol.md#getevents-by-time-tail-and-type, #getstate, #long-poll, #liststreams):
//
// R1. getEvents({sinceTime}) and getEvents({last: 100}) on a stream of --events events (default
//     1,000,000): ms per read, median of --reads reads at random times.
// R2. getState({atOffset}) at a random offset of a --state-events (default 100,000) event stream.
// R3. Long-poll wake-up: a getEvents({waitMs}) parked at the tail, then one append; ms from the
//     append's start until the poll answers.
// R4. The directory under --streams (default 1,000) streams writing at once: ms from the first
//     append until listStreams lists every one of them with its final maxOffset.
//
//   node bench/reads.mjs [--events=1000000] [--state-events=100000] [--streams=1000] [--reads=21]
//
// Everything is timed from Node through the client worker (miniflare/helpers/mf.mjs), so each
// figure includes one Node → workerd round trip (about 1 ms here).
import { parseArgs } from "node:util";
import { call, callManyService, callService, startStreams, stub, uniqueName } from "../miniflare/helpers/mf.mjs";

const { values } = parseArgs({
  options: { events: { type: "string", default: "1000000" }, "state-events": { type: "string", default: "100000" }, streams: { type: "string", default: "1000" }, reads: { type: "string", default: "21" } },
});
const EVENTS = Number(values.events);
const STATE_EVENTS = Number(values["state-events"]);
const STREAMS = Number(values.streams);
const READS = Number(values.reads);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fill(mf, name, n) {
  const s = await stub(mf, name);
  const started = Date.now();
  for (let done = 0; done < n; done += 1000) {
    await s.appendBatch({ events: Array.from({ length: Math.min(1000, n - done) }, (_, i) => ({ type: (done + i) % 10 === 0 ? "app/tenth" : "app/n" })) });
  }
  return Date.now() - started;
}

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const mf = await startStreams();
const rows = [];
const row = (what, ms) => {
  rows.push([what, ms]);
  console.log(`${what}: ${ms.toFixed(1)} ms`);
};
try {
  const big = uniqueName("bench-big");
  const fillMs = await fill(mf, big, EVENTS);
  const first = (await call(mf, big, "getEvents", { limit: 1 }))[0].createdAt;
  const last = (await call(mf, big, "getEvents", { last: 1 }))[0].createdAt;
  const span = Date.parse(last) - Date.parse(first);
  const since = [];
  const tail = [];
  for (let i = 0; i < READS; i++) {
    const at = new Date(Date.parse(first) + Math.random() * span).toISOString();
    since.push(await timed(() => call(mf, big, "getEvents", { sinceTime: at })));
    tail.push(await timed(() => call(mf, big, "getEvents", { last: 100 })));
  }
  row(`R1 getEvents sinceTime (100 events) on ${EVENTS.toLocaleString("en")} events`, median(since));
  row(`R1 getEvents last 100 on ${EVENTS.toLocaleString("en")} events`, median(tail));

  const mid = uniqueName("bench-state");
  await fill(mf, mid, STATE_EVENTS);
  const states = [];
  for (let i = 0; i < READS; i++) states.push(await timed(() => call(mf, mid, "getState", { atOffset: 1 + Math.floor(Math.random() * STATE_EVENTS) })));
  row(`R2 getState at a random offset of ${STATE_EVENTS.toLocaleString("en")} events`, median(states));

  const poll = uniqueName("bench-poll");
  await call(mf, poll, "append", { event: { type: "app/n" } });
  const wakes = [];
  for (let i = 0; i < READS; i++) {
    const max = (await call(mf, poll, "getEvents", { last: 1 }))[0].offset;
    let answered;
    const waiting = call(mf, poll, "getEvents", { afterOffset: max, waitMs: 30000 }).then(() => (answered = performance.now()));
    await sleep(50);
    const t0 = performance.now();
    await call(mf, poll, "append", { event: { type: "app/n" } });
    await waiting;
    wakes.push(answered - t0);
  }
  row("R3 long-poll wake-up after an append (incl. the append)", median(wakes));

  const namespace = `bench${Date.now().toString(36)}`;
  const paths = Array.from({ length: STREAMS }, (_, i) => `/fleet/s${i}`);
  const t0 = performance.now();
  // One request to the client worker, which makes the appends concurrently inside workerd.
  const outcomes = await callManyService(mf, paths.map((path) => ({ method: "appendBatch", arg: { namespace, path, events: [{ type: "app/n" }, { type: "app/n" }] } })));
  if (outcomes.some((o) => !o.ok)) throw new Error(`an append failed: ${JSON.stringify(outcomes.find((o) => !o.ok))}`);
  const written = performance.now() - t0;
  let listedAt;
  for (;;) {
    let fresh = 0;
    let after;
    do {
      const page = await callService(mf, "listStreams", { namespace, prefix: "/fleet/", limit: 1000, ...(after ? { after } : {}) });
      fresh += page.streams.filter((s) => s.maxOffset === 4).length;
      after = page.next;
    } while (after);
    if (fresh === STREAMS) {
      listedAt = performance.now() - t0;
      break;
    }
    await sleep(50);
  }
  row(`R4 ${STREAMS.toLocaleString("en")} streams written at once (all appends answered)`, written);
  row(`R4 … until listStreams shows all ${STREAMS.toLocaleString("en")} with their final maxOffset`, listedAt);
  console.log(`(filling ${EVENTS.toLocaleString("en")} events took ${(fillMs / 1000).toFixed(0)} s)`);
} finally {
  await mf.dispose();
}
console.log("| Scenario | ms (median) |\n|---|---|");
for (const [what, ms] of rows) console.log(`| ${what} | ${ms.toFixed(1)} |`);
