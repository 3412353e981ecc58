// A first-layout database whose first call reaches the object without its name (by id only, as
// through another process's dev registry): the object knows its name from its own `S/created`,
// so it brings the layout up to date and answers (docs/protocol.md#naming-and-paths,
// docs/operations.md#migrations-and-state-versions).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStreams } from "./helpers/mf.mjs";
import { readLog } from "./helpers/reliability.mjs";
import { readManifest, unpackFixture, digestOf } from "./helpers/storage.mjs";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "streams-storage-nameless-"));
let mf;
after(async () => {
  await mf?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a first-layout stream reached by id only answers with its stored events, then named calls go on", async () => {
  const manifest = readManifest();
  unpackFixture(dir, manifest);
  mf = await startStreams({ miniflare: { durableObjectsPersist: dir } });
  const name = "fixture:/v1/main";
  const recorded = manifest.streams[name].events;
  assert.ok(recorded.length > 10, "the fixture records this stream's events");
  const ns = await mf.getDurableObjectNamespace("STREAM", "streams");
  const byId = ns.get(ns.idFromString(ns.idFromName(name).toString()));
  const page = await byId.getEvents({ afterOffset: 0, limit: 1000 });
  assert.ok(page.length >= Math.min(recorded.length, 1000), `the nameless read returned ${page.length} events`);
  for (const [offset, length, sha] of recorded.filter(([offset]) => offset <= page.length)) {
    assert.deepEqual(digestOf(page[offset - 1]), [length, sha], `event @${offset}`);
  }
  const log = await readLog(mf, name);
  assert.deepEqual(log.slice(0, page.length), page, "a named read sees the same log");
});
