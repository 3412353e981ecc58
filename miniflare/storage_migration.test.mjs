// Migration of the first storage layout's databases: streams of every shape (small and
// chunk-sized events, keys, batches, breaker, subscriptions, child notices, 2500 events) from the
// committed fixture miniflare/fixtures/storage-v1/ (checks: miniflare/helpers/storage_migration.mjs).
//
// STORAGE_FIXTURE=<dir> runs the same checks on another fixture, e.g. one written with
// `node miniflare/fixtures/make-v1-fixture.mjs --out=<dir>`.
import { migrationTests } from "./helpers/storage_migration.mjs";
import { FIXTURE_DIR } from "./helpers/storage.mjs";

migrationTests(process.env.STORAGE_FIXTURE || FIXTURE_DIR);
