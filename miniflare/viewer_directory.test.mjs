// The viewer's stream browser (`/streams?namespace=&prefix=`) over the directory (listStreams), and
// the stream page's links back to it and to its children.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { FIRST_EVENT, startViewer, waitForText } from "./helpers/viewer.mjs";

/** The browser's page size (viewer/src/StreamsPage.tsx). */
const DIRECTORY_PAGE_SIZE = 50;

let v;
before(async () => {
  v = await startViewer();
});
afterEach(() => v.closePages());
after(() => v?.stop());

/** Rows of the listing: [path, events]. */
const rows = (page) =>
  page.$$eval('[data-testid="stream-list-row"]', (trs) => trs.map((tr) => [tr.dataset.path, Number(tr.querySelector('[data-testid="stream-list-events"]').textContent)]));

/**
 * Waits until the listing shows exactly `paths` with their events (their max offset now, from the
 * server; the directory is a few seconds fresh).
 */
async function waitForListing(page, namespace, paths, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const have = await rows(page);
    const want = await Promise.all(paths.map(async (path) => [path, (await v.api(path, "runtimeState", {}, { namespace })).coreProcessorState.maxOffset]));
    if (JSON.stringify(have) === JSON.stringify(want)) return;
    if (Date.now() > deadline) assert.deepEqual(have, want);
    await page.waitForTimeout(250);
  }
}

test("the stream browser: path, events, last activity, a prefix filter, a link into each stream; the stream page links back and shows its children", async () => {
  const namespace = `dir${Math.random().toString(36).slice(2, 8)}`;
  for (const path of ["/shop", "/shop/eu", "/shop/us", "/blog"]) await v.api(path, "append", { event: FIRST_EVENT }, { namespace });
  await v.api("/shop/eu", "appendBatch", { events: [{ type: "app/a" }, { type: "app/b" }] }, { namespace });

  const page = await v.open(`/streams?${new URLSearchParams({ namespace })}`);
  await page.getByTestId("stream-list").waitFor();
  // /shop has created, woken, app/first and one child-stream-created per child.
  // The root appears too: it was told of its children /blog and /shop.
  await waitForListing(page, namespace, ["/", "/blog", "/shop", "/shop/eu", "/shop/us"]);
  assert.deepEqual((await rows(page)).slice(2, 4), [["/shop", 5], ["/shop/eu", 5]], "created, woken, app/first (+ a child each, + app/a and app/b)");
  assert.match(await page.locator('[data-path="/shop/eu"] time').first().textContent(), /s ago$/);

  await page.getByTestId("stream-list-prefix").fill("/shop/");
  await page.getByTestId("stream-list-prefix").press("Enter");
  await waitForListing(page, namespace, ["/shop/eu", "/shop/us"]);
  assert.equal(new URL(page.url()).searchParams.get("prefix"), "/shop/");

  await page.locator('[data-path="/shop/eu"] a').click();
  await waitForText(page, "stream-path", "/shop/eu");
  await waitForText(page, "stream-status", "subscribed");
  await page.getByTestId("stream-list-link").click();
  assert.equal(new URL(page.url()).searchParams.get("prefix"), "/shop/", "back to the streams next to it");
  await waitForListing(page, namespace, ["/shop/eu", "/shop/us"]);

  await page.goto(`${v.origin}/?${new URLSearchParams({ namespace, path: "/shop" })}`);
  await page.getByTestId("stream-child-link").first().waitFor();
  assert.deepEqual(await page.getByTestId("stream-child-link").allTextContents(), ["/shop/eu", "/shop/us"]);
  await page.getByTestId("stream-children-directory").click();
  assert.equal(new URL(page.url()).searchParams.get("prefix"), "/shop/");
  await waitForListing(page, namespace, ["/shop/eu", "/shop/us"]);
});

test("the stream browser pages through the directory with its cursor", async () => {
  const namespace = `dir${Math.random().toString(36).slice(2, 8)}`;
  const paths = Array.from({ length: DIRECTORY_PAGE_SIZE + 5 }, (_, i) => `/many/s${String(i).padStart(3, "0")}`);
  for (const path of paths) await v.api(path, "append", { event: FIRST_EVENT }, { namespace });
  // The directory reports a stream at its first commit and its max offset a moment later: wait
  // until it lists every stream at offset 3 before paging.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const listing = await (await fetch(`${v.origin}/api/streams/listStreams?${new URLSearchParams({ namespace, prefix: "/many/", limit: "1000" })}`)).json();
    if (listing.streams.length === paths.length && listing.streams.every((s) => s.maxOffset === 3)) break;
    assert.ok(Date.now() < deadline, `the directory is not fresh: ${JSON.stringify(listing).slice(0, 300)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const page = await v.open(`/streams?${new URLSearchParams({ namespace, prefix: "/many/" })}`);
  // A directory page may hold fewer than the limit and still have a next: follow it to the end.
  await page.getByTestId("stream-list-next").waitFor({ timeout: 20_000 });
  const first = await rows(page);
  assert.ok(first.length > 0 && first.length <= DIRECTORY_PAGE_SIZE, `${first.length} rows`);
  const seen = [...first];
  while ((await page.getByTestId("stream-list-next").count()) > 0) {
    const before = new URL(page.url()).searchParams.get("after");
    await page.getByTestId("stream-list-next").click();
    await page.waitForFunction((b) => new URL(location.href).searchParams.get("after") !== b, before);
    await page.waitForFunction(() => document.querySelector('[data-testid="stream-list"], [data-testid="stream-list-empty"]') !== null);
    seen.push(...(await rows(page)));
  }
  assert.deepEqual(seen, paths.map((path) => [path, 3]), "every stream once, in path order");
  await page.getByTestId("stream-list-first").click();
  await page.waitForFunction(() => !new URL(location.href).searchParams.has("after"));
  await page.getByTestId("stream-list").waitFor();
  assert.deepEqual(await rows(page), first);
});
