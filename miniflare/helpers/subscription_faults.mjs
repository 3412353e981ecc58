// Helpers for miniflare/reliability_subscriptions.test.mjs (RELIABILITY.md §6): an inbound
// subscriber that resumes after its socket is closed, a keyed writer that retries across
// incarnations, and fault injection at seeded points of a write phase.
import assert from "node:assert/strict";
import { openRawSubscriber } from "./subscribers.mjs";
import { callWithRetry, sleep } from "./reliability.mjs";

/**
 * An inbound WebSocket subscriber (public HTTP route, real TCP socket so the server's close frame
 * is observed) that reconnects whenever its socket closes, with the same subscriptionKey and
 * `replayAfterOffset` = the last offset it received (or its first replayAfterOffset if it has
 * received nothing yet).
 *
 *   connections[i] = {sub, replayAfterOffset, openedAtMs, closeEvent}  (sub: a Subscriber)
 *   refusals       = errors of subscribe attempts that failed and were retried
 */
export class ResumingSubscriber {
  constructor(mf, name, { subscriptionKey, replayAfterOffset = 0, params = {}, reconnect = true } = {}) {
    this.mf = mf;
    this.name = name;
    this.key = subscriptionKey;
    this.firstReplay = replayAfterOffset;
    this.params = params;
    this.reconnect = reconnect;
    this.connections = [];
    this.refusals = [];
    this.stopped = false;
    this.loop = null;
  }

  /** Opens the first connection and starts watching it. */
  async start() {
    await this.#open(this.firstReplay);
    this.loop = this.#watch();
    return this;
  }

  /** The highest offset received over all connections (or the first replayAfterOffset). */
  lastOffset() {
    let last = this.firstReplay;
    for (const c of this.connections) {
      const offsets = c.sub.offsets();
      if (offsets.length) last = Math.max(last, offsets[offsets.length - 1]);
    }
    return last;
  }

  current() {
    return this.connections[this.connections.length - 1];
  }

  /** True when the newest connection is open and has had its initial push. */
  isLive() {
    const c = this.current();
    return Boolean(c && c.sub.closeEvent === null && c.sub.frames.length > 0);
  }

  /** Every event received, in arrival order, duplicates across connections included. */
  allEvents() {
    return this.connections.flatMap((c) => c.sub.events());
  }

  /** offset → event, over all connections. */
  union() {
    const map = new Map();
    for (const e of this.allEvents()) if (!map.has(e.offset)) map.set(e.offset, e);
    return map;
  }

  async #open(replayAfterOffset) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const sub = await openRawSubscriber(this.mf, this.name, { subscriptionKey: this.key, replayAfterOffset, ...this.params });
        this.connections.push({ sub, replayAfterOffset, openedAtMs: Date.now(), closeEvent: null });
        return;
      } catch (e) {
        // A subscribe that reaches an incarnation that is shutting down is refused (docs/protocol.md#kill-and-reset); retry.
        this.refusals.push(String(e?.message ?? e).slice(0, 120));
        if (Date.now() >= deadline) throw new Error(`resubscribe to ${this.name} failed for 15 s; last error: ${e?.message ?? e}`);
        await sleep(10);
      }
    }
  }

  async #watch() {
    while (!this.stopped) {
      const c = this.current();
      if (c.sub.closeEvent !== null) {
        c.closeEvent = c.sub.closeEvent;
        if (!this.reconnect) return;
        await this.#open(this.lastOffset());
        continue;
      }
      await sleep(2);
    }
  }

  /** Waits until the union of received events reaches `offset`. */
  async waitForOffset(offset, { timeoutMs = 30_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    while (this.lastOffset() < offset) {
      if (Date.now() >= deadline) assert.fail(`${this.key}: offset ${offset} not received within ${timeoutMs} ms (last ${this.lastOffset()})`);
      await sleep(5);
    }
  }

  /** Waits until the newest connection is open and has had its initial push. */
  async waitLive({ timeoutMs = 30_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    while (!this.isLive()) {
      if (Date.now() >= deadline) assert.fail(`${this.key}: no live connection within ${timeoutMs} ms`);
      await sleep(2);
    }
  }

  /** Stops reconnecting and drops every socket (no close handshake is awaited). */
  async stop() {
    this.stopped = true;
    await this.loop?.catch(() => {});
    for (const c of this.connections) {
      c.closeEvent ??= c.sub.closeEvent;
      try {
        c.sub.ws.terminate();
      } catch {
        // already gone
      }
    }
  }
}

/** Splits `total` into seeded batch sizes in [min, max] (the last one may be smaller). */
export function seededBatchSizes(rand, total, min, max) {
  const sizes = [];
  let left = total;
  while (left > 0) {
    const n = Math.min(left, min + rand.int(max - min + 1));
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

/**
 * Appends `inputs` (keyed event inputs) in the given batch sizes, one call at a time, through a
 * seeded surface per batch (`do` | `service` | `http`), retrying `internal`/transport failures
 * with the same keys. `progress.acked` counts acknowledged events; `progress.done` is set at the end.
 * Returns {acked: Map key → committed event, retriedCalls, retryableErrors: Map text → count}.
 */
export async function writeKeyed(mf, name, inputs, sizes, { rand, surfaces = ["do"], progress }) {
  const acked = new Map();
  const retryableErrors = new Map();
  let retriedCalls = 0;
  let i = 0;
  for (const size of sizes) {
    const group = inputs.slice(i, i + size);
    i += size;
    const surface = surfaces.length === 1 ? surfaces[0] : rand.pick(surfaces);
    const { outcome, attempts, retryableErrors: errs } = await callWithRetry(mf, surface, name, "appendBatch", { events: group }, { maxAttempts: 1000, timeoutMs: 30_000 });
    for (const e of errs) {
      const k = `${surface}: ${e.slice(0, 80)}`;
      retryableErrors.set(k, (retryableErrors.get(k) ?? 0) + 1);
    }
    if (attempts > 1) retriedCalls++;
    assert.ok(outcome.ok, `appendBatch of ${group[0].idempotencyKey}… via ${surface}: ${outcome.error}`);
    assert.equal(outcome.result.length, group.length);
    outcome.result.forEach((ev, j) => {
      assert.ok(!acked.has(group[j].idempotencyKey), `${group[j].idempotencyKey} acknowledged twice`);
      acked.set(group[j].idempotencyKey, ev);
    });
    progress.acked += group.length;
  }
  progress.done = true;
  return { acked, retriedCalls, retryableErrors };
}

/**
 * Runs `inject(k)` once each time `progress.acked` reaches one of the sorted `points`, while the
 * write phase is not done; `ready()` (optional) is awaited before each injection.
 * Returns the values `inject` returned, in order.
 */
export async function injectAt(points, progress, inject, { ready } = {}) {
  const results = [];
  for (let k = 0; k < points.length; k++) {
    while (progress.acked < points[k] && !progress.done) await sleep(1);
    if (progress.done) break;
    if (ready) await ready();
    if (progress.done) break;
    results.push(await inject(k));
  }
  return results;
}

/** `n` seeded points in [lo, hi), sorted ascending. */
export function seededPoints(rand, n, lo, hi) {
  return Array.from({ length: n }, () => lo + rand.int(hi - lo)).sort((a, b) => a - b);
}

/** Frame-shape problems of one connection (docs/protocol.md#subscriptions): the state on its first batch only. */
export function frameProblems(sub) {
  const problems = [];
  const first = sub.frames.findIndex((f) => f.type === "batch");
  for (const [i, f] of sub.frames.entries()) {
    if (f.type !== "batch") continue;
    if (i === first && f.state?.maxOffset !== f.streamMaxOffset) problems.push(`frame ${i}: state.maxOffset ${f.state?.maxOffset} != streamMaxOffset ${f.streamMaxOffset}`);
    if (i !== first && "state" in f) problems.push(`frame ${i} repeats the state`);
    if (f.events.length > 100) problems.push(`frame ${i}: ${f.events.length} events`);
    for (const e of f.events) if (e.offset > f.streamMaxOffset) problems.push(`frame ${i}: event ${e.offset} beyond streamMaxOffset ${f.streamMaxOffset}`);
  }
  return problems;
}

/** Offsets that occur more than once in `offsets`. */
export function repeated(offsets) {
  const seen = new Set();
  const dup = [];
  for (const o of offsets) {
    if (seen.has(o)) dup.push(o);
    seen.add(o);
  }
  return dup;
}
