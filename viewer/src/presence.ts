// Whether the page may open a stream's live mirror: a name the server would refuse shows an error
// (and asks nothing), a path nothing was written to shows an empty state (the page creates no
// stream by looking at it; reads create nothing), and only a stream that exists is subscribed to.
import type { AppendInput } from "@streams/client/browser";
import { callApi, type StreamTarget } from "./api";
import type { CommittedEvent } from "./events";
import { namespaceProblem, pathProblem } from "./route";
import { useRuntimeState } from "./runtime";

export type StreamPhase =
  | { kind: "invalid"; message: string }
  | { kind: "refused"; message: string }
  | { kind: "loading"; retrying: string | null }
  | { kind: "missing" }
  | { kind: "live" };

/** Streams this page has had live: a reset (an empty log until the next call) keeps them live. */
const seenLive = new Set<string>();

export function nameProblem(target: StreamTarget): string | null {
  const namespace = namespaceProblem(target.namespace);
  if (namespace !== null) return `The namespace ${namespace}.`;
  const path = pathProblem(target.path);
  return path === null ? null : `The path ${path}.`;
}

/** The phase of `target`; polls runtimeState (once a second, backing off on errors) only for a valid name. */
export function useStreamPhase(target: StreamTarget): StreamPhase {
  const problem = nameProblem(target);
  const runtime = useRuntimeState(problem === null ? target : null);
  if (problem !== null) return { kind: "invalid", message: problem };
  const key = `${target.namespace}\u0000${target.path}`;
  if (seenLive.has(key)) return { kind: "live" };
  if (runtime.refused && runtime.error !== null) return { kind: "refused", message: runtime.error };
  const state = runtime.data?.coreProcessorState;
  if (!state) return { kind: "loading", retrying: runtime.error };
  if (state.maxOffset === 0) return { kind: "missing" };
  seenLive.add(key);
  return { kind: "live" };
}

/** Appends over HTTP (before the stream exists there is no mirror to append through). */
export function appendOverApi(target: StreamTarget): (event: AppendInput) => Promise<CommittedEvent> {
  return (event) => callApi<CommittedEvent>(target, "append", { event });
}
