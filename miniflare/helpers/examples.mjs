// Shared by the tests of examples/*: type-checks an example's Worker (strict) against the runtime
// types `wrangler types` generates from its own wrangler.toml, in a temporary directory.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./mf.mjs";

/** `example`: the example's directory (with wrangler.toml and tsconfig.json); `source`: its entry. */
export function typeCheckExample(example, source, { env } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${path.basename(example)}-example-`));
  try {
    const bin = (name) => path.join(REPO_ROOT, "node_modules", ".bin", name);
    const types = path.join(dir, "worker-configuration.d.ts");
    const envArgs = env ? ["--env", env] : [];
    execFileSync(bin("wrangler"), ["types", types, "--config", path.join(example, "wrangler.toml"), ...envArgs], { cwd: dir, stdio: "pipe" });
    const tsconfig = path.join(dir, "tsconfig.json");
    fs.writeFileSync(tsconfig, JSON.stringify({ extends: path.join(example, "tsconfig.json"), files: [source, types] }));
    execFileSync(bin("tsc"), ["-p", tsconfig], { stdio: "pipe" });
  } catch (e) {
    assert.fail(`${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
