// `@streams/client/react`: the browser runtime as hooks. Components that open the same
// (namespace, path) share one store; React StrictMode's mount/unmount/mount keeps it open.
import { useLayoutEffect, useMemo, useReducer, useSyncExternalStore } from "react";
import { openStream, sharedStream, storeHandle } from "../browser/index.js";
import type { OpenStreamOptions, QuerySnapshot, SqlValue, StreamStore, UseStreamResult } from "../browser/types.js";

const keepOpen = () => {};

/** The shared store of `options.path` (opened on mount, released on unmount) and its snapshot. */
export function useStream(options: OpenStreamOptions): UseStreamResult {
  const shared = sharedStream(options);
  // The hook owns the reference; `close()` on the returned store does nothing.
  const store = useMemo(() => storeHandle(shared, keepOpen), [shared]);
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  useLayoutEffect(() => {
    const handle = openStream(options);
    // The store seen in render was collected before this commit: render again with the new one.
    if (sharedStream(options) !== shared) rerender();
    return () => handle.close();
    // The store is chosen by (namespace, path); other options only matter when it is created.
  }, [shared]);
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return { store, snapshot };
}

/** A live query over the store's mirror; re-renders only when its rows change. */
export function useStreamQuery<Row = Record<string, SqlValue>>(
  store: StreamStore,
  sql: string,
  params: readonly SqlValue[] = [],
): QuerySnapshot<Row> {
  const paramsKey = JSON.stringify(params, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
  const handle = useMemo(() => store.query<Row>(sql, params), [store, sql, paramsKey]);
  return useSyncExternalStore(handle.subscribe, handle.getSnapshot, handle.getSnapshot);
}

export type { OpenStreamOptions, QuerySnapshot, StreamSnapshot, StreamStore, UseStreamResult } from "../browser/types.js";
