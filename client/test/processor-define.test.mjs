// defineProcessor checks its options when the module loads and throws a TypeError naming the
// option that is wrong (docs/processors.md#defineprocessoroptions).
import { test } from "node:test";
import assert from "node:assert/strict";
import { defineProcessor } from "../dist/processor/index.js";

const valid = { slug: "p", version: "1", initialState: { n: 0 }, reduce: (s) => s };

test("defineProcessor: each wrong option is a TypeError naming it", () => {
  const cases = [
    [{ slug: "" }, 'defineProcessor: slug must be a non-empty string'],
    [{ slug: 5 }, 'defineProcessor: slug must be a non-empty string'],
    [{ version: "  " }, 'defineProcessor: version of "p" must be a non-empty string'],
    [{ reduce: undefined }, 'defineProcessor: reduce of "p" must be a function'],
    [{ onEvent: "later" }, 'defineProcessor: onEvent of "p" must be a function'],
    [{ eventTypes: [] }, 'defineProcessor: eventTypes of "p" must be a non-empty array (omit it for every event)'],
    [{ eventTypes: "app/x" }, 'defineProcessor: eventTypes of "p" must be a non-empty array (omit it for every event)'],
    [{ eventTypes: ["app/x", " "] }, 'defineProcessor: eventTypes[1] of "p" must be a non-empty string'],
    [{ maxConsecutiveFailures: 0 }, 'defineProcessor: maxConsecutiveFailures of "p" must be a positive integer'],
    [{ maxConsecutiveFailures: 1.5 }, 'defineProcessor: maxConsecutiveFailures of "p" must be a positive integer'],
    [{ initialState: undefined }, 'defineProcessor: initialState of "p" must be JSON'],
    [{ initialState: () => 1 }, 'defineProcessor: initialState of "p" must be JSON'],
  ];
  for (const [change, message] of cases) {
    assert.throws(() => defineProcessor({ ...valid, ...change }), (e) => e instanceof TypeError && e.message === message, JSON.stringify(change) ?? String(change));
  }
});

test("defineProcessor: defaults (maxConsecutiveFailures 3), a frozen result, and a fresh initial state each time", () => {
  const p = defineProcessor(valid);
  assert.equal(p.maxConsecutiveFailures, 3);
  assert.equal(defineProcessor({ ...valid, maxConsecutiveFailures: 7 }).maxConsecutiveFailures, 7);
  assert.ok(Object.isFrozen(p));
  const a = p.initialState();
  a.n = 99;
  assert.deepEqual(p.initialState(), { n: 0 }, "a copy for every fresh start");
});
