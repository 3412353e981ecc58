// The public interface of the browser runtime (`@streams/client/browser`) and the React
// bindings (`@streams/client/react`): a live, self-healing SQLite mirror of one stream.

import type { TokenSource } from "../transport.js";
import type { EventInput, Json, StreamEvent } from "../types.js";

export type { Json };
/** What you append (the stream rejects unknown keys). */
export type AppendInput = EventInput;
/** A committed event as the stream delivers it. */
export type MirroredEvent = StreamEvent;

/** A SQL value as SQLite returns it to JavaScript. */
export type SqlValue = null | number | string | bigint | Uint8Array;

/** One statement a browser processor wants run inside the mirror's write transaction. */
export interface SqlStatement {
  sql: string;
  params?: readonly SqlValue[];
}

/**
 * A browser processor keeps its own tables in the mirror. `apply` is pure: given its state and
 * the events of one batch it returns the new state and the statements that bring its tables
 * there. The statements and the new checkpoint/state row commit in the same transaction as the
 * events, so its tables never lag or lead the mirror.
 */
export interface BrowserProcessor<State = Json> {
  /** Stable identity: its `processor_state` row and its tables belong to it. */
  slug: string;
  /** Bump when the tables or the state change shape: its tables are dropped and rebuilt from the local mirror. */
  version: number;
  /** Tables it owns (dropped on a rebuild, a reset or `clearLocal`). */
  tables: readonly string[];
  /** `CREATE TABLE/INDEX IF NOT EXISTS …` statements. */
  schema: readonly string[];
  /** The state before the first event; states are stored as JSON, so keep them JSON-serialisable. */
  initialState: State;
  apply(state: State, events: readonly MirroredEvent[]): { state: State; statements: SqlStatement[] };
}

export type MirrorKind = "opfs" | "memory";

export interface OpenStreamOptions {
  /** Origin of the streams Worker (default: the page's origin). */
  baseUrl?: string;
  /** Default "default". */
  namespace?: string;
  path: string;
  /** A bearer token (API or scoped token): `Authorization: Bearer` on HTTP, `access_token` on the
   * socket. A function is asked again for every request and every reconnection, so a socket closed
   * because its token expired (4002) comes back with a fresh one. Scoped tokens should carry `sub`. */
  token?: TokenSource;
  /** The admin token for `reset()`/`kill()`, sent in the header only (default: `token`). */
  adminToken?: string;
  /** "opfs" (default) keeps the mirror across reloads when the OPFS SAH-pool VFS is available, else memory. */
  mirror?: MirrorKind;
  processors?: readonly BrowserProcessor<any>[];
  /** URL of the bundled mirror worker (default: `mirror-worker.js` next to the importing bundle). */
  workerUrl?: string | URL;
}

export type StreamStatus = "connecting" | "subscribed" | "reconnecting" | "closed" | "error";
export type StreamRole = "electing" | "leader" | "follower";

export interface MirrorStorage {
  /** Where the mirror lives: OPFS (survives reloads) or memory (this tab only, until it closes). */
  kind: MirrorKind;
  /** OPFS and the browser granted persistent storage (not evicted under pressure). */
  persisted: boolean;
  /** Size of the database file in bytes (null until known). */
  bytes: number | null;
}

/** Immutable; a new object on every change (safe for `useSyncExternalStore`). */
export interface StreamSnapshot {
  namespace: string;
  path: string;
  status: StreamStatus;
  role: StreamRole;
  /** The last problem (connection, lock, mirror write, persistent apply failure); when healthy null, or why OPFS was not used. */
  error: string | null;
  /** Identity of the mirrored life of the log (changes on `reset`). */
  streamId: string | null;
  /** The stream's `maxOffset` as last reported by the server. */
  serverMaxOffset: number | null;
  /** Events in the local mirror. */
  localCount: number;
  /** The offset the mirror starts at: 1, or the stream's first kept offset when retention had
   * trimmed the stream before the mirror started (docs/browser.md#trimmed-streams). */
  firstOffset: number;
  /** Last offset applied to the mirror; the next subscription starts after it. */
  checkpoint: number;
  /** `afterOffset` the current (or last) subscription started from; null before the first one. */
  subscribedAfterOffset: number | null;
  storage: MirrorStorage;
  /** Bumped each time the local mirror is discarded (reset seen, `clearLocal`, retention passed the mirror while it was away): a React key for views. */
  clearVersion: number;
}

export type QueryStatus = "pending" | "ok" | "error";

export interface QuerySnapshot<Row = Record<string, SqlValue>> {
  status: QueryStatus;
  rows: readonly Row[];
  /** Set with status "error"; the previous rows are kept. */
  error: string | null;
}

/** A reactive query over the local mirror; re-runs after each mirror change, notifies only when its rows change. */
export interface QueryHandle<Row = Record<string, SqlValue>> {
  getSnapshot(): QuerySnapshot<Row>;
  subscribe(listener: () => void): () => void;
}

export interface StreamStore {
  readonly namespace: string;
  readonly path: string;
  getSnapshot(): StreamSnapshot;
  subscribe(listener: () => void): () => void;
  /** A query over the mirror (tables `events`, `mirror_meta`, `processor_state`, and processor tables). */
  query<Row = Record<string, SqlValue>>(sql: string, params?: readonly SqlValue[]): QueryHandle<Row>;
  /** While reconnecting, waits (bounded) for the connection instead of failing. */
  append(event: AppendInput): Promise<MirroredEvent>;
  appendBatch(events: readonly AppendInput[]): Promise<MirroredEvent[]>;
  /** Needs the admin token (`adminToken`, else `token`). The mirror is discarded and rebuilt from the stream's new life. */
  reset(): Promise<void>;
  /** Needs the admin token (`adminToken`, else `token`). The mirror reconnects and catches up; nothing is lost. */
  kill(): Promise<void>;
  /** Drops the local mirror and rebuilds it from offset 1 (or the stream's first kept offset). */
  clearLocal(): Promise<void>;
  /** The mirror as a SQLite database file. */
  download(): Promise<Blob>;
  /** Releases this handle; the shared store closes with its last handle. */
  close(): void;
}

/** `useStream(options)`: the shared store for `(namespace, path)` and its current snapshot. */
export interface UseStreamResult {
  store: StreamStore;
  snapshot: StreamSnapshot;
}

export type UseStream = (options: OpenStreamOptions) => UseStreamResult;
export type UseStreamQuery = <Row = Record<string, SqlValue>>(
  store: StreamStore,
  sql: string,
  params?: readonly SqlValue[],
) => QuerySnapshot<Row>;

/** A row of the mirror's `events` table (`offset` primary key; an index on `(type, offset)`). */
export interface EventRow {
  offset: number;
  type: string;
  created_at: string;
  idempotency_key: string | null;
  /** The committed event as JSON. */
  json: string;
}

/**
 * A row of `feed_items`, the table of the event-feed processor (`eventFeed()`): consecutive events
 * of one type form one group (at most 200 events; the events are `first_offset..last_offset`);
 * lifecycle events (created, woken, child stream created) are single markers. `id` is dense from 0.
 */
export interface FeedItemRow {
  id: number;
  kind: "group" | "lifecycle";
  type: string;
  first_offset: number;
  last_offset: number;
  event_count: number;
}
