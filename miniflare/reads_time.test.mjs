// getEvents by time, from the tail, by type, and long-poll (docs/protocol.md#getevents-by-time-tail-and-type,
// #long-poll): over DO RPC, the service binding and HTTP, with their errors.
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { startStreams, call, callService, http, tryCallService, uniqueName, splitName } from "./helpers/mf.mjs";
import { expectError, assertError, assertContiguous } from "./helpers/assertions.mjs";
import { waitFor } from "./helpers/subscribers.mjs";

let mf;
before(async () => {
  mf = await startStreams();
});
after(async () => {
  await mf?.dispose();
});

const offsets = (events) => events.map((e) => e.offset);

/** Appends `count` events of `type`, then waits until the clock has passed their `createdAt`. */
async function appendAt(name, type, count) {
  const events = await call(mf, name, "appendBatch", { events: Array.from({ length: count }, (_, i) => ({ type, payload: { i } })) });
  await waitFor(() => Date.now(), (now) => now > Date.parse(events.at(-1).createdAt), { intervalMs: 1, what: "the clock past the batch" });
  return events;
}

/** Waits until `name` has `n` long-polls waiting for a commit (the pendingWork test hook). */
function longPollsWaiting(name, n = 1) {
  return waitFor(() => call(mf, name, "pendingWork"), (p) => p.longPolls === n, { timeoutMs: 20_000, what: `${n} long-poll(s) waiting on ${name}` });
}

test("sinceTime returns the events created at or after it, ascending and paged; createdAt never goes backwards", async () => {
  const name = uniqueName();
  await appendAt(name, "app/early", 5);
  const late = await appendAt(name, "app/late", 150);
  const since = late[0].createdAt;
  const page = await call(mf, name, "getEvents", { sinceTime: since });
  assert.equal(page.length, 100, "paged as afterOffset is: 100 by default");
  assert.equal(page[0].offset, late[0].offset);
  assertContiguous(offsets(page), late[0].offset);
  const all = await call(mf, name, "getEvents", {});
  for (let i = 1; i < all.length; i++) assert.ok(all[i].createdAt >= all[i - 1].createdAt, "createdAt ascends with offsets");
  assert.ok(page.every((e) => e.createdAt >= since));
  const limited = await call(mf, name, "getEvents", { sinceTime: since, limit: 3, eventTypes: ["app/late"] });
  assert.deepEqual(offsets(limited), offsets(late.slice(0, 3)));
  // An earlier offset's time in another form (an offset from UTC) reads the same.
  const plusOne = new Date(Date.parse(since)).toISOString().replace("Z", "+00:00");
  assert.deepEqual(offsets(await call(mf, name, "getEvents", { sinceTime: plusOne, limit: 3 })), offsets(late.slice(0, 3)));
  assert.deepEqual(await call(mf, name, "getEvents", { sinceTime: "2999-01-01T00:00:00Z" }), [], "nothing yet");
  assert.equal((await call(mf, name, "getEvents", { sinceTime: "2000-01-01T00:00:00Z" }))[0].offset, 1, "a time before the stream: from the start");
});

test("last returns the last N events ascending, before beforeOffset when given", async () => {
  const name = uniqueName();
  await appendAt(name, "app/x", 30); // offsets 1..32 with created and woken
  assert.deepEqual(offsets(await call(mf, name, "getEvents", { last: 5 })), [28, 29, 30, 31, 32]);
  assert.deepEqual(offsets(await call(mf, name, "getEvents", { last: 3, beforeOffset: 10 })), [7, 8, 9]);
  assert.equal((await call(mf, name, "getEvents", { last: 1000 })).length, 32, "more than there is: everything");
  assert.deepEqual(offsets(await call(mf, name, "getEvents", { last: 10, eventTypes: "events.iterate.com/stream/created" })), []);
  assert.deepEqual(offsets(await call(mf, name, "getEvents", { last: 40, eventTypes: "events.iterate.com/stream/created" })), [1]);
});

test("eventTypes keeps only those types; a page with no match means its whole window was examined", async () => {
  const name = uniqueName();
  await call(mf, name, "appendBatch", { events: Array.from({ length: 300 }, (_, i) => ({ type: i === 250 ? "app/rare" : "app/common" })) });
  // The rare event is at offset 253 (after created and woken).
  const first = await call(mf, name, "getEvents", { eventTypes: ["app/rare"] });
  assert.deepEqual(first, [], "offsets 1..100 hold no match");
  // Continue after afterOffset + limit when a page is empty.
  let after = 0;
  const found = [];
  for (;;) {
    const page = await call(mf, name, "getEvents", { afterOffset: after, eventTypes: ["app/rare"] });
    if (page.length > 0) {
      found.push(...page);
      after = page.at(-1).offset;
    } else after += 100;
    if (after >= 302) break;
  }
  assert.deepEqual(offsets(found), [253]);
  assert.equal(found[0].type, "app/rare");
  const both = await call(mf, name, "getEvents", { afterOffset: 250, limit: 5, eventTypes: "app/rare, app/common" });
  assert.deepEqual(offsets(both), [251, 252, 253, 254, 255]);
  assert.equal((await call(mf, name, "getEvents", { afterOffset: 250, limit: 5, eventTypes: "*" })).length, 5, "* is every type");
});

test("errors: bad sinceTime, last with afterOffset, waitMs out of range, and the rest", async () => {
  const name = uniqueName();
  const cases = [
    [{ sinceTime: "yesterday" }, 'sinceTime "yesterday" is not an ISO 8601 time (e.g. 2026-01-05T10:00:00Z)'],
    [{ sinceTime: "2026-13-01T00:00:00Z" }, 'sinceTime "2026-13-01T00:00:00Z" is not an ISO 8601 time (e.g. 2026-01-05T10:00:00Z)'],
    [{ sinceTime: 17 }, "sinceTime must be a string"],
    [{ last: 3, afterOffset: 1 }, "getEvents takes at most one of afterOffset, sinceTime and last"],
    [{ sinceTime: "2026-01-05T10:00:00Z", afterOffset: 1 }, "getEvents takes at most one of afterOffset, sinceTime and last"],
    [{ last: 0 }, "last must be an integer from 1 to 1000"],
    [{ last: 1001 }, "last must be an integer from 1 to 1000"],
    [{ last: 2, limit: 2 }, "last and limit are exclusive"],
    [{ waitMs: 60001 }, "waitMs must be an integer from 0 to 60000"],
    [{ waitMs: -5 }, "waitMs must be an integer from 0 to 60000"],
    [{ eventTypes: [3] }, "eventTypes must be an array of strings"],
  ];
  for (const [arg, message] of cases) {
    await expectError(mf, name, "getEvents", arg, "invalid_request", message);
    const { namespace, path } = splitName(name);
    assertError(await tryCallService(mf, "getEvents", { namespace, path, ...arg }), "invalid_request", message);
  }
  const { namespace, path } = splitName(name);
  const q = (extra) => `/api/streams/getEvents?namespace=${namespace}&path=${encodeURIComponent(path)}&${extra}`;
  for (const [extra, message] of [
    ["sinceTime=soon", 'sinceTime "soon" is not an ISO 8601 time (e.g. 2026-01-05T10:00:00Z)'],
    ["last=5&afterOffset=2", "getEvents takes at most one of afterOffset, sinceTime and last"],
    ["waitMs=70000", "waitMs must be an integer from 0 to 60000"],
    ["waitMs=x", "waitMs must be an integer from 0 to 60000"],
  ]) {
    const res = await http(mf, "GET", q(extra));
    assert.equal(res.status, 400, extra);
    assert.deepEqual(res.json, { error: { code: "invalid_request", message } }, extra);
  }
});

test("the service binding and HTTP GET take the same arguments", async () => {
  const name = uniqueName();
  const late = await appendAt(name, "app/t", 4);
  const { namespace, path } = splitName(name);
  assert.deepEqual(offsets(await callService(mf, "getEvents", { namespace, path, last: 2 })), [5, 6]);
  const since = encodeURIComponent(late[2].createdAt);
  const res = await http(mf, "GET", `/api/streams/getEvents?namespace=${namespace}&path=${encodeURIComponent(path)}&sinceTime=${since}&eventTypes=app/t&limit=10`);
  assert.equal(res.status, 200);
  assert.ok(res.json.length >= 2 && res.json.every((e) => e.createdAt >= late[2].createdAt && e.type === "app/t"));
  const tail = await http(mf, "GET", `/api/streams/getEvents?namespace=${namespace}&path=${encodeURIComponent(path)}&last=1`);
  assert.deepEqual(offsets(tail.json), [6]);
});

test("long-poll: waitMs answers as soon as an event is committed, and [] when none comes", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/a" } }); // offsets 1..3
  const waiting = call(mf, name, "getEvents", { afterOffset: 3, waitMs: 30000 });
  await longPollsWaiting(name);
  await call(mf, name, "append", { event: { type: "app/b" } });
  const woken = await waiting;
  assert.deepEqual(offsets(woken), [4]);
  assert.equal(woken[0].type, "app/b");
  assert.deepEqual(await call(mf, name, "getEvents", { afterOffset: 4, waitMs: 150 }), [], "no event in time: []");
  assert.deepEqual(offsets(await call(mf, name, "getEvents", { afterOffset: 2, waitMs: 30000 })), [3, 4], "events already there: no wait");
});

test("long-poll with eventTypes waits past commits of other types for a match", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "app/a" } });
  const { namespace, path } = splitName(name);
  const waiting = http(mf, "GET", `/api/streams/getEvents?namespace=${namespace}&path=${encodeURIComponent(path)}&afterOffset=3&eventTypes=app/wanted&waitMs=30000`);
  await longPollsWaiting(name);
  await call(mf, name, "append", { event: { type: "app/other" } });
  await longPollsWaiting(name); // woken by app/other, it waits again
  await call(mf, name, "append", { event: { type: "app/wanted" } });
  const res = await waiting;
  assert.equal(res.status, 200);
  assert.deepEqual(offsets(res.json), [5]);
});

test("over a trimmed range: sinceTime and last start at the first kept offset; afterOffset, atOffset and Last-Event-ID before it are trimmed", async () => {
  const name = uniqueName();
  await call(mf, name, "append", { event: { type: "events.iterate.com/stream/configured", payload: { config: { retention: { maxEvents: 50 } } } } });
  for (let i = 0; i < 3; i++) await call(mf, name, "appendBatch", { events: Array.from({ length: 60 }, () => ({ type: "app/x" })) });
  const { firstOffset: first } = (
    await waitFor(() => call(mf, name, "runtimeState"), (rs) => rs.runtime.storage.firstOffset > 1, { timeoutMs: 30_000, what: "retention removed the oldest events" })
  ).runtime.storage;
  const message = (n) => `trimmed: Offset ${n} was removed by retention; the first kept offset is ${first}.`;
  assert.equal((await call(mf, name, "getEvents", { sinceTime: "2000-01-01T00:00:00Z", limit: 1 }))[0].offset, first, "a time before the kept events");
  const tail = await call(mf, name, "getEvents", { last: 1000 });
  assert.equal(tail[0].offset, first, "a tail longer than what is kept");
  const { namespace, path } = splitName(name);
  assert.equal((await tryCallService(mf, "getEvents", { namespace, path, afterOffset: first - 2 })).error, message(first - 1));
  assert.equal((await tryCallService(mf, "getState", { namespace, path, atOffset: first - 2 })).error, message(first - 1));
  const sse = await mf.dispatchFetch(`http://localhost/api/streams/subscribe?${new URLSearchParams({ namespace, path })}`, {
    headers: { accept: "text/event-stream", "last-event-id": String(first - 2) },
  });
  assert.equal(sse.status, 410, "refused before the stream starts");
  assert.equal((await sse.json()).error.message, message(first - 1).replace("trimmed: ", ""));
});
