// runtimeState polled once a second per stream, shared by every component that shows it.
import { useCallback, useSyncExternalStore } from "react";
import type { RuntimeState as ClientRuntimeState, StorageFigures } from "@streams/client";
import { ApiError, callApi, errorText, type StreamTarget } from "./api";

export const RUNTIME_POLL_MS = 1000;
/** After a failed poll the next waits twice as long, up to this. */
const MAX_RETRY_MS = 15_000;

export interface CoreState {
  namespace: string;
  path: string;
  streamId?: string | null;
  eventCount: number;
  maxOffset: number;
  paused: boolean;
  pauseReason: string | null;
  config: { circuitBreaker?: { burstCapacity: number; refillRatePerMinute: number } } & Record<string, unknown>;
  circuitBreaker: { availableTokens: number; lastRefillAtMs: number | null; burstCapacity: number; refillRatePerMinute: number };
  subscriptionsByKey: Record<string, unknown>;
  connectionsByKey: Record<string, { direction: string; connectedAtOffset: number }>;
  childPaths: string[];
  [key: string]: unknown;
}

/** `runtime.redial[key]`: a subscription's failed dials or deliveries, the last one's cause, whether it stopped. */
export type Redial = ClientRuntimeState["runtime"]["redial"][string];

export interface RuntimeState {
  coreProcessorState: CoreState;
  runtime: {
    connections: Record<string, Record<string, unknown>>;
    redial: Record<string, Redial>;
    idleTeardownAt: string | null;
    storage?: StorageFigures;
  };
}

export interface RuntimeSnapshot {
  data: RuntimeState | null;
  error: string | null;
  /**
   * The API refused the request itself (a 4xx: a bad name, a token that does not cover it): asking
   * again gives the same answer, so the poll stopped.
   */
  refused: boolean;
}

interface Poller {
  snapshot: RuntimeSnapshot;
  listeners: Set<() => void>;
  timer: ReturnType<typeof setTimeout> | null;
  inFlight: boolean;
  /** No poll before this time (ms since the epoch): see holdPolling. */
  heldUntil: number;
  /** Failed polls in a row (each doubles the wait). */
  failures: number;
}

/** How long a killed or reset incarnation may still refuse calls after the operation returned. */
const SHUTDOWN_GRACE_MS = 500;

const EMPTY: RuntimeSnapshot = { data: null, error: null, refused: false };
const pollers = new Map<string, Poller>();

function keyOf(target: StreamTarget): string {
  return `${target.namespace}:${target.path}`;
}

function pollerOf(target: StreamTarget): Poller {
  const key = keyOf(target);
  let poller = pollers.get(key);
  if (!poller) {
    poller = { snapshot: EMPTY, listeners: new Set(), timer: null, inFlight: false, heldUntil: 0, failures: 0 };
    pollers.set(key, poller);
  }
  return poller;
}

function schedule(target: StreamTarget, poller: Poller, delayMs: number): void {
  if (poller.timer) clearTimeout(poller.timer);
  poller.timer = setTimeout(() => void poll(target, poller), delayMs);
}

async function poll(target: StreamTarget, poller: Poller): Promise<void> {
  if (poller.inFlight) return;
  const held = poller.heldUntil - Date.now();
  if (held > 0) {
    if (poller.listeners.size > 0) schedule(target, poller, Math.min(held, RUNTIME_POLL_MS));
    return;
  }
  poller.inFlight = true;
  if (poller.timer) clearTimeout(poller.timer);
  poller.timer = null;
  try {
    const data = await callApi<RuntimeState>(target, "runtimeState");
    poller.snapshot = { data, error: null, refused: false };
    poller.failures = 0;
  } catch (error) {
    const refused = error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429;
    poller.snapshot = { data: poller.snapshot.data, error: errorText(error), refused };
    poller.failures += 1;
  } finally {
    poller.inFlight = false;
  }
  if (poller.listeners.size === 0) return;
  for (const listener of poller.listeners) listener();
  if (poller.snapshot.refused) return;
  schedule(target, poller, Math.min(MAX_RETRY_MS, RUNTIME_POLL_MS * 2 ** poller.failures));
}

/**
 * Run kill or reset with the polls of that stream held until shortly after it returns: the
 * incarnation answers `internal` ("shutting down; retry") until it is gone, and the page should
 * not provoke that. The state is fetched again once the hold ends.
 */
export async function holdPolling<T>(target: StreamTarget, work: () => Promise<T>): Promise<T> {
  const poller = pollerOf(target);
  poller.heldUntil = Number.POSITIVE_INFINITY;
  try {
    return await work();
  } finally {
    poller.heldUntil = Date.now() + SHUTDOWN_GRACE_MS;
    if (poller.listeners.size > 0) schedule(target, poller, SHUTDOWN_GRACE_MS);
  }
}

/** Fetch runtimeState now (after an operation), instead of waiting for the next poll. */
export function refreshRuntimeState(target: StreamTarget): void {
  void poll(target, pollerOf(target));
}

const NO_TARGET_SNAPSHOT = (): RuntimeSnapshot => EMPTY;

/** The polled runtimeState of `target`; null asks nothing (a name the server would refuse). */
export function useRuntimeState(target: StreamTarget | null): RuntimeSnapshot {
  const poller = target === null ? null : pollerOf(target);
  const subscribe = useCallback(
    (listener: () => void) => {
      if (poller === null || target === null) return () => {};
      poller.listeners.add(listener);
      if (poller.listeners.size === 1) void poll(target, poller);
      return () => {
        poller.listeners.delete(listener);
        if (poller.listeners.size === 0 && poller.timer) {
          clearTimeout(poller.timer);
          poller.timer = null;
        }
      };
    },
    [poller],
  );
  return useSyncExternalStore(subscribe, poller === null ? NO_TARGET_SNAPSHOT : () => poller.snapshot);
}
