// `@streams/client/browser`: openStream() gives a live, self-healing SQLite mirror of one stream.
import { SharedStream, type BrowserPlatform } from "./store.js";
import { DEFAULT_NAMESPACE } from "./names.js";
import type { OpenStreamOptions, StreamStore } from "./types.js";

export type * from "./types.js";
export { eventFeed, planFeed, EVENT_FEED_SLUG, LIFECYCLE_TYPES, MAX_GROUP_EVENTS, type FeedState, type FeedGroup } from "./event-feed.js";
export { CALL_WAIT_MS, PERSISTENT_FAILURES, type BrowserPlatform } from "./store.js";
export { writerLockName } from "./names.js";

const SUBSCRIBER_ID_KEY = "streams-browser-subscriber-id";
const stores = new Map<string, SharedStream>();

function storeKey(options: OpenStreamOptions): string {
  return `${options.namespace ?? DEFAULT_NAMESPACE}\0${options.path}`;
}

/** The browser's own implementations of what the runtime needs. */
export function browserPlatform(): BrowserPlatform {
  return {
    origin: globalThis.location.origin,
    createWorker: (url) => new Worker(url, { type: "module", name: "streams-mirror" }),
    locks: (globalThis.navigator as { locks?: BrowserPlatform["locks"] }).locks,
    createChannel: (name) => new BroadcastChannel(name) as unknown as ReturnType<BrowserPlatform["createChannel"]>,
    WebSocket: globalThis.WebSocket,
    fetch: globalThis.fetch.bind(globalThis),
    subscriberId() {
      let id = globalThis.localStorage?.getItem(SUBSCRIBER_ID_KEY);
      if (!id) {
        id = crypto.randomUUID();
        globalThis.localStorage?.setItem(SUBSCRIBER_ID_KEY, id);
      }
      return id;
    },
    persisted: async () => (await globalThis.navigator.storage?.persisted?.()) ?? false,
  };
}

/**
 * The shared store of `(namespace, path)` in this tab, created on first use. A store nobody
 * retains closes after the current tick.
 */
export function sharedStream(options: OpenStreamOptions, platform: BrowserPlatform = browserPlatform()): SharedStream {
  const key = storeKey(options);
  let store = stores.get(key);
  if (!store || store.closed) {
    const created = new SharedStream(key, options, platform, () => {
      if (stores.get(key) === created) stores.delete(key);
    });
    stores.set(key, created);
    created.collectSoon();
    store = created;
  }
  return store;
}

/**
 * A handle on the live mirror of one stream. Handles of one `(namespace, path)` share one store,
 * one socket and one worker; the store closes when the last handle is closed (a close followed by
 * an open in the same tick keeps it). The first handle's options (baseUrl, token, mirror) win.
 */
export function openStream(options: OpenStreamOptions, platform?: BrowserPlatform): StreamStore {
  const store = sharedStream(options, platform);
  store.retain(options.processors);
  return storeHandle(store, () => store.release());
}

/** A StreamStore over a shared store; `close` runs `onClose` once. */
export function storeHandle(store: SharedStream, onClose: () => void): StreamStore {
  let closed = false;
  return {
    namespace: store.namespace,
    path: store.path,
    getSnapshot: store.getSnapshot,
    subscribe: store.subscribe,
    query: (sql, params) => store.query(sql, params),
    append: (event) => store.append(event),
    appendBatch: (events) => store.appendBatch(events),
    reset: () => store.reset(),
    kill: () => store.kill(),
    clearLocal: () => store.clearLocal(),
    download: () => store.download(),
    close() {
      if (closed) return;
      closed = true;
      onClose();
    },
  };
}
