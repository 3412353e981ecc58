// Screenshots of each view of the viewer at 1280×800 on a small demo stream. `npm test` writes them
// to build/screenshots/ (ignored, so a test run leaves the checkout clean); `npm run screenshots`
// sets VIEWER_SCREENSHOT_DIR=docs to refresh the committed docs/viewer-*.png.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./helpers/mf.mjs";
import { startViewer, waitForMatch, waitForRow, waitForText } from "./helpers/viewer.mjs";
import { decodePng } from "./helpers/png.mjs";

const OUT = path.resolve(REPO_ROOT, process.env.VIEWER_SCREENSHOT_DIR ?? path.join("build", "screenshots"));

let v;
before(async () => {
  v = await startViewer();
  fs.mkdirSync(OUT, { recursive: true });
});
afterEach(() => v.closePages());
after(() => v?.stop());

/**
 * Writes the screenshot and checks what it shows, from its decoded pixels: not one flat colour, and
 * each of `parts` painted where the page laid it out. A part is a selector of an element the view
 * must show, or `{selector, background, ink}` naming the stylesheet's palette colours (`--top`, …)
 * it must be painted in. Each part's own opaque background must cover much of its box and its text
 * colour be present in it. A blank, unstyled or half-rendered page fails here, whatever the file's size.
 */
async function shoot(page, name, parts) {
  // Rendered: web fonts loaded and two frames painted since the last change the test waited for.
  await page.evaluate(() => document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))));
  const file = path.join(OUT, `viewer-${name}.png`);
  const image = decodePng(await page.screenshot({ path: file }));
  assert.deepEqual([image.width, image.height], [1280, 800], file);
  const colours = new Set();
  for (let y = 0; y < image.height; y += 4) for (let x = 0; x < image.width; x += 4) colours.add(image.pixel(x, y).join());
  assert.ok(colours.size >= 50, `${file}: only ${colours.size} colours, the page did not render`);
  for (const { selector, ...palette } of parts.map((p) => (typeof p === "string" ? { selector: p } : p))) {
    // The first match on screen (a list may be scrolled to its end).
    let part, box;
    for (const candidate of await page.locator(selector).all()) {
      box = await candidate.boundingBox();
      part = candidate;
      if (box && box.y + box.height > 0 && box.y < image.height && box.x + box.width > 0 && box.x < image.width) break;
    }
    assert.ok(box && box.width >= 4 && box.height >= 4, `${name}: ${selector} is laid out (${JSON.stringify(box)})`);
    const style = await part.evaluate((el) => {
      const s = getComputedStyle(el);
      return { background: s.backgroundColor, color: s.color, text: el.innerText.trim().length > 0 };
    });
    const region = pixelsIn(image, box);
    assert.ok(region.length > 0, `${name}: ${selector} is on screen (${JSON.stringify(box)})`);
    for (const [which, variable] of Object.entries(palette)) {
      const expected = PALETTE[variable];
      assert.ok(expected, `${variable} is a colour of viewer/src/styles.css`);
      const count = region.filter((p) => near(p, expected, which === "ink" ? 48 : 6)).length;
      const enough = which === "ink" ? count >= 5 : count / region.length >= 0.2;
      assert.ok(enough, `${name}: ${selector} is painted with ${variable} as its ${which}: ${count} of ${region.length} pixels`);
    }
    const background = rgba(style.background);
    if (background[3] === 1) {
      const share = region.filter((p) => near(p, background, 6)).length / region.length;
      assert.ok(share >= 0.2, `${name}: ${selector}'s background ${style.background} covers ${(share * 100).toFixed(1)}% of its box`);
    }
    if (style.text) {
      const ink = region.filter((p) => near(p, rgba(style.color), 48)).length;
      assert.ok(ink >= 5, `${name}: ${selector}'s text (${style.color}) is painted: ${ink} pixels of that colour in its box`);
    }
  }
}

/** The `--name: #rrggbb` colours of the viewer's stylesheet, as [r, g, b]. */
const PALETTE = Object.fromEntries(
  [...fs.readFileSync(path.join(REPO_ROOT, "viewer", "src", "styles.css"), "utf8").matchAll(/(--[\w-]+):\s*#([0-9a-f]{6});/gi)].map(([, name, hex]) => [
    name,
    [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)),
  ]),
);

/** The pixels of the screenshot inside a layout box (clipped to the image). */
function pixelsIn(image, box) {
  const pixels = [];
  const [x0, y0] = [Math.max(0, Math.floor(box.x)), Math.max(0, Math.floor(box.y))];
  const [x1, y1] = [Math.min(image.width, Math.ceil(box.x + box.width)), Math.min(image.height, Math.ceil(box.y + box.height))];
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) pixels.push(image.pixel(x, y));
  return pixels;
}

/** `rgb(…)` / `rgba(…)` as [r, g, b, alpha]. */
function rgba(css) {
  const [r, g, b, a = 1] = css.match(/[\d.]+/g).map(Number);
  return [r, g, b, a];
}

const near = (pixel, colour, tolerance) => pixel.every((v, i) => Math.abs(v - colour[i]) <= tolerance);

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
  await shoot(list, "events", [{ selector: ".topbar", background: "--top" }, { selector: '[data-testid="stream-status"]', background: "--good-soft", ink: "--good" }, '[data-testid="event-row"]', '[data-event-type="shop/payment-captured"] [data-testid="event-json"]']);

  const { page: feed } = await v.openStream({ path: p, namespace, view: "feed" });
  await feed.waitForSelector('[data-testid="feed-child-stream-link"]');
  await shoot(feed, "feed", [{ selector: ".topbar", background: "--top" }, '[data-testid="feed-child-stream-link"]']);

  const { page: state } = await v.openStream({ path: p, namespace, view: "state" });
  await waitForText(state, "stream-status", "subscribed");
  await waitForMatch(state, "stream-state", /"maxOffset"/);
  await shoot(state, "state", [{ selector: ".topbar", background: "--top" }, { selector: '[data-testid="stream-status"]', background: "--good-soft", ink: "--good" }, '[data-testid="stream-state"]']);

  const split = await v.open(`/split?${new URLSearchParams({ namespace, left: p, right: `${p}/eu` })}`);
  await waitForRow(split, last, { scope: '[data-testid="split-left"]' });
  await waitForText(split, "stream-status", "subscribed", { scope: '[data-testid="split-right"]' });
  await shoot(split, "split", ['[data-testid="split-left"] [data-testid="event-row"]', { selector: '[data-testid="split-right"] [data-testid="stream-status"]', background: "--good-soft", ink: "--good" }]);

  const browser = await v.open(`/streams?${new URLSearchParams({ namespace })}`);
  await browser.waitForSelector('[data-testid="stream-list-row"][data-path="/demo/orders/eu"]', { timeout: 20_000 });
  await shoot(browser, "streams", [{ selector: ".topbar", background: "--top" }, '[data-testid="stream-list-row"]']);

  const bad = await v.open(`/?${new URLSearchParams({ namespace, path: "/demo//orders" })}`);
  await bad.getByTestId("stream-invalid").waitFor();
  await shoot(bad, "invalid", ['[data-testid="stream-invalid"]', { selector: '[data-testid="stream-invalid"] .notice-message', ink: "--bad" }]);
});
