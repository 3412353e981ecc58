// Screenshots of each view of the viewer at 1280×800 on a small demo stream. `npm test` writes them
// to build/screenshots/ (ignored, so a test run leaves the checkout clean); `npm run screenshots`
// sets VIEWER_SCREENSHOT_DIR=docs to refresh the committed docs/viewer-*.png.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./helpers/mf.mjs";
import { startViewer, waitForMatch, waitForRow, waitForText } from "./helpers/viewer.mjs";

const OUT = path.resolve(REPO_ROOT, process.env.VIEWER_SCREENSHOT_DIR ?? path.join("build", "screenshots"));

let v;
before(async () => {
  v = await startViewer();
  fs.mkdirSync(OUT, { recursive: true });
});
afterEach(() => v.closePages());
after(() => v?.stop());

async function shoot(page, name) {
  await page.waitForTimeout(300);
  const file = path.join(OUT, `viewer-${name}.png`);
  await page.screenshot({ path: file });
  assert.ok(fs.statSync(file).size > 10_000, `${file} was written`);
}

test("each view at 1280×800", async () => {
  const p = "/demo/orders";
  const events = [];
  for (let i = 1; i <= 40; i++) {
    events.push({ type: "shop/order-placed", payload: { orderId: `o-${i}`, total: 10 + i } });
    if (i % 5 === 0) events.push({ type: "shop/payment-captured", payload: { orderId: `o-${i}` }, idempotencyKey: `pay-o-${i}` });
    if (i % 12 === 0) events.push({ type: "shop/order-shipped", payload: { orderId: `o-${i}`, carrier: "dhl" } });
  }
  const namespace = `demo${Math.random().toString(36).slice(2, 8)}`;
  await v.api(p, "appendBatch", { events }, { namespace });
  for (const region of ["eu", "us"]) {
    await v.api(`${p}/${region}`, "append", { event: { type: "shop/region-opened", payload: { region } } }, { namespace });
  }
  await v.api("/demo/users/u1", "appendBatch", { events: [{ type: "user/signed-up" }, { type: "user/logged-in" }] }, { namespace });
  const last = events.length + 2; // after created and woken

  const { page: list } = await v.openStream({ path: p, namespace });
  await waitForRow(list, last);
  await list.locator('[data-event-type="shop/payment-captured"]').last().locator("button").click();
  await shoot(list, "events");

  const { page: feed } = await v.openStream({ path: p, namespace, view: "feed" });
  await feed.waitForSelector('[data-testid="feed-child-stream-link"]');
  await shoot(feed, "feed");

  const { page: state } = await v.openStream({ path: p, namespace, view: "state" });
  await waitForText(state, "stream-status", "subscribed");
  await waitForMatch(state, "stream-state", /"maxOffset"/);
  await shoot(state, "state");

  const split = await v.open(`/split?${new URLSearchParams({ namespace, left: p, right: `${p}/eu` })}`);
  await waitForRow(split, last, { scope: '[data-testid="split-left"]' });
  await waitForText(split, "stream-status", "subscribed", { scope: '[data-testid="split-right"]' });
  await shoot(split, "split");

  const browser = await v.open(`/streams?${new URLSearchParams({ namespace })}`);
  await browser.waitForSelector('[data-testid="stream-list-row"][data-path="/demo/orders/eu"]', { timeout: 20_000 });
  await shoot(browser, "streams");

  const bad = await v.open(`/?${new URLSearchParams({ namespace, path: "/demo//orders" })}`);
  await bad.getByTestId("stream-invalid").waitFor();
  await shoot(bad, "invalid");
});
