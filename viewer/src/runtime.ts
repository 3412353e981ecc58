// runtimeState polled once a second per stream, shared by every component that shows it.
import { useCallback, useSyncExternalStore } from "react";
import { callApi, errorText, type StreamTarget } from "./api";

export const RUNTIME_POLL_MS = 1000;

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

export interface RuntimeState {
  coreProcessorState: CoreState;
  runtime: { connections: Record<string, Record<string, unknown>>; redial: Record<string, unknown>; idleTeardownAt: string | null };
}

export interface RuntimeSnapshot {
  data: RuntimeState | null;
  error: string | null;
}

interface Poller {
  snapshot: RuntimeSnapshot;
  listeners: Set<() => void>;
  timer: ReturnType<typeof setTimeout> | null;
  inFlight: boolean;
}

const EMPTY: RuntimeSnapshot = { data: null, error: null };
const pollers = new Map<string, Poller>();

function keyOf(target: StreamTarget): string {
  return `${target.namespace}:${target.path}`;
}

function pollerOf(target: StreamTarget): Poller {
  const key = keyOf(target);
  let poller = pollers.get(key);
  if (!poller) {
    poller = { snapshot: EMPTY, listeners: new Set(), timer: null, inFlight: false };
    pollers.set(key, poller);
  }
  return poller;
}

async function poll(target: StreamTarget, poller: Poller): Promise<void> {
  if (poller.inFlight) return;
  poller.inFlight = true;
  if (poller.timer) clearTimeout(poller.timer);
  poller.timer = null;
  try {
    const data = await callApi<RuntimeState>(target, "runtimeState");
    poller.snapshot = { data, error: null };
  } catch (error) {
    poller.snapshot = { data: poller.snapshot.data, error: errorText(error) };
  } finally {
    poller.inFlight = false;
  }
  if (poller.listeners.size === 0) return;
  for (const listener of poller.listeners) listener();
  poller.timer = setTimeout(() => void poll(target, poller), RUNTIME_POLL_MS);
}

/** Fetch runtimeState now (after an operation), instead of waiting for the next poll. */
export function refreshRuntimeState(target: StreamTarget): void {
  void poll(target, pollerOf(target));
}

export function useRuntimeState(target: StreamTarget): RuntimeSnapshot {
  const poller = pollerOf(target);
  const subscribe = useCallback(
    (listener: () => void) => {
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
  return useSyncExternalStore(subscribe, () => poller.snapshot);
}
