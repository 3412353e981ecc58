// Viewer benchmark: time to the first event row for a 100k-event stream, in headless Chromium
// against the Worker served locally (static assets + API), as a user opening the page would see.
//
//   bash scripts/bench.sh viewer [--events=100000]     (needs `npm run build` first; bench.sh builds)
//
// Reported (milliseconds from navigation start, the page's `viewer:first-event-row` mark and
// the moment the last row is drawn):
//   first row, fresh tab     an empty mirror: the first replayed batch is drawn
//   all rows mirrored        the count reaches the stream's length and its last row is drawn
//   first row, reload        the mirror is reopened from OPFS
// Results go to stdout and bench/results/viewer.json.
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../miniflare/helpers/mf.mjs";
import { freshPath, startViewer } from "../miniflare/helpers/viewer.mjs";

const { values: opts } = parseArgs({ options: { events: { type: "string", default: "100000" } } });
const EVENTS = Math.max(1000, parseInt(opts.events, 10));
const BATCH = 1000;

const v = await startViewer();
try {
  const p = freshPath("bench");
  const seedStart = performance.now();
  for (let done = 0; done < EVENTS; done += BATCH) {
    const events = Array.from({ length: Math.min(BATCH, EVENTS - done) }, (_, i) => ({
      type: `bench/type-${(done + i) % 5}`,
      payload: { i: done + i, note: "x".repeat(40) },
    }));
    await v.api(p, "appendBatch", { events });
  }
  const seedMs = performance.now() - seedStart;
  // created, woken, the events; the page adds its own subscriber-connected.
  const expected = EVENTS + 3;

  const page = await v.open(`/?${new URLSearchParams({ path: p })}`);
  const firstRow = await markTime(page, "viewer:first-event-row");
  await page.waitForFunction((n) => document.querySelector('[data-testid="event-count"]')?.textContent === String(n), expected, {
    timeout: 600_000,
    polling: 100,
  });
  // The last row drawn is the last bench event: the page's own presence event is hidden.
  await page.waitForSelector(`[data-testid="event-row"][data-event-offset="${expected - 1}"]`, { timeout: 60_000 });
  const allRows = await page.evaluate(() => performance.now());
  const storage = await page.getByTestId("storage-kind").textContent();

  await page.reload();
  const reloadFirstRow = await markTime(page, "viewer:first-event-row");

  const result = {
    events: expected,
    seedMs: Math.round(seedMs),
    firstRowFreshMs: Math.round(firstRow),
    allRowsMirroredMs: Math.round(allRows),
    firstRowReloadMs: Math.round(reloadFirstRow),
    storage: storage?.trim(),
    at: new Date().toISOString(),
  };
  console.log(JSON.stringify(result, null, 2));
  const out = path.join(REPO_ROOT, "bench", "results");
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, "viewer.json"), JSON.stringify(result, null, 2) + "\n");
  await v.closePages();
} finally {
  await v.stop();
}

/** Milliseconds from navigation start to the performance mark `name` (waits for it). */
async function markTime(page, name) {
  await page.waitForFunction((mark) => performance.getEntriesByName(mark).length > 0, name, { timeout: 600_000, polling: 50 });
  return page.evaluate((mark) => performance.getEntriesByName(mark)[0].startTime, name);
}
