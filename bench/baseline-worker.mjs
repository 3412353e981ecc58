// The Miniflare worker of the baseline JS DO (bench/baseline-do.mjs), shared by bench/run.mjs and
// bench/profile.mjs: both compare against the same baseline.
import path from "node:path";
import { COMPATIBILITY_DATE, REPO_ROOT } from "../miniflare/helpers/mf.mjs";

export const BASELINE_WORKER = {
  name: "baseline",
  modules: true,
  modulesRoot: REPO_ROOT,
  scriptPath: path.join(REPO_ROOT, "bench", "baseline-do.mjs"),
  compatibilityDate: COMPATIBILITY_DATE,
  durableObjects: { BASE: { className: "Baseline", useSQLite: true } },
};
