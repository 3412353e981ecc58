// Migration of the first storage layout's databases: one 100000-event stream, from the committed
// fixture miniflare/fixtures/storage-v1-large/ (checks: miniflare/helpers/storage_migration.mjs).
import { migrationTests } from "./helpers/storage_migration.mjs";
import { LARGE_FIXTURE_DIR } from "./helpers/storage.mjs";

migrationTests(LARGE_FIXTURE_DIR);
