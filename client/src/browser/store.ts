// The browser runtime: one shared store per (namespace, path) and tab. The tab holding the
// stream's Web Lock is the writer: it owns the SQLite mirror in a dedicated worker and the one
// subscription socket; the other tabs follow through the BroadcastChannel.
//
// Every reconnect goes through the client's reconnect core (one path, one timer, an epoch per
// connection), and every batch is applied in one serial chain that first checks the epoch, so a
// late frame of an old socket is never written.
import { StreamError } from "../errors.js";
import { socketLink, type Link, type LinkHandlers, type WebSocketConstructor } from "../link.js";
import { Reconnector, type ConnectionStatus } from "../reconnect.js";
import { currentToken, httpTransport, type MethodName, type Transport } from "../transport.js";
import type { RuntimeState, SubscriberBatch } from "../types.js";
import { FollowerLink, type ChannelLike, type ChannelMessage, type FollowerOp, type LeaderStatus } from "./channel.js";
import { requestWriterLock, type LockManagerLike, type WriterLock } from "./election.js";
import { channelName, DEFAULT_NAMESPACE, writerLockName } from "./names.js";
import type { MirrorDb, MirrorState } from "./protocol.js";
import { QueryRegistry } from "./queries.js";
import type {
  AppendInput,
  BrowserProcessor,
  MirroredEvent,
  OpenStreamOptions,
  QueryHandle,
  SqlValue,
  StreamSnapshot,
  StreamStatus,
  StreamStore,
} from "./types.js";
import { workerMirrorDb, type WorkerLike } from "./worker-client.js";

/** Everything the runtime takes from the browser; the unit tests pass fakes. */
export interface BrowserPlatform {
  origin: string;
  createWorker(url: string | URL): WorkerLike;
  /** `navigator.locks`; without it this tab is always the writer. */
  locks: LockManagerLike | undefined;
  createChannel(name: string): ChannelLike;
  WebSocket: WebSocketConstructor;
  fetch: typeof fetch;
  /** Stable per browser profile: the subscription key of this profile's writer. */
  subscriberId(): string;
  /** Whether the browser granted persistent storage. */
  persisted(): Promise<boolean>;
}

/** How long append/appendBatch wait for the connection while (re)connecting. */
export const CALL_WAIT_MS = 10_000;
/** A tab whose lock request is not granted within this shows as a follower. */
export const FOLLOWER_AFTER_MS = 250;
/** Consecutive failures at one offset after which the snapshot shows a persistent error. */
export const PERSISTENT_FAILURES = 5;
const SIZE_REFRESH_MS = 1_000;
const CATCH_UP_PAGE = 1_000;
/** At most this many events go into one mirror transaction. */
const MAX_WRITE_EVENTS = 5_000;

type Timer = ReturnType<typeof setTimeout>;

export class SharedStream {
  readonly key: string;
  readonly namespace: string;
  readonly path: string;
  #options: OpenStreamOptions;
  #platform: BrowserPlatform;
  #http: Transport;
  /** For reset/kill: the admin token travels in the header only, never on the socket. */
  #admin: Transport;
  #tabId = crypto.randomUUID();
  #snapshot: StreamSnapshot;
  #listeners = new Set<() => void>();
  #queries = new QueryRegistry();
  #processors = new Map<string, BrowserProcessor<unknown>>();
  #processorStates = new Map<string, unknown>();

  #refs = 0;
  #disposeTimer: Timer | undefined;
  #onDisposed: () => void;
  #closed = false;

  #channel: ChannelLike;
  #follower: FollowerLink;
  #lock: WriterLock | undefined;
  #followerTimer: Timer | undefined;

  // Writer only.
  #db: (MirrorDb & { terminate(): void }) | undefined;
  #mirror: MirrorState = { streamId: null, checkpoint: 0, firstOffset: 1, localCount: 0, processors: {} };
  #core: Reconnector | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Batches received and not yet applied, with the epoch of the connection they came on. */
  #inbox: { batch: SubscriberBatch; epoch: number }[] = [];
  #everOpen = false;
  #failures = { offset: -1, count: 0 };
  #sizeTimer: Timer | undefined;
  /** What `error` shows while all is well: why OPFS was not used, when it was asked for. */
  #healthyError: string | null = null;
  #waiters = new Set<{ resolve(): void; reject(e: Error): void; timer: Timer }>();

  constructor(key: string, options: OpenStreamOptions, platform: BrowserPlatform, onDisposed: () => void) {
    this.key = key;
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.path = options.path;
    this.#options = options;
    this.#platform = platform;
    this.#onDisposed = onDisposed;
    const baseUrl = options.baseUrl ?? platform.origin;
    this.#http = httpTransport({ baseUrl, token: options.token, fetch: platform.fetch });
    this.#admin = options.adminToken ? httpTransport({ baseUrl, token: options.adminToken, fetch: platform.fetch }) : this.#http;
    this.#snapshot = Object.freeze({
      namespace: this.namespace,
      path: this.path,
      status: "connecting",
      role: "electing",
      error: null,
      streamId: null,
      serverMaxOffset: null,
      localCount: 0,
      firstOffset: 1,
      checkpoint: 0,
      subscribedAfterOffset: null,
      storage: Object.freeze({ kind: options.mirror ?? "opfs", persisted: false, bytes: null }),
      clearVersion: 0,
    });
    for (const p of options.processors ?? []) this.#processors.set(p.slug, p);
    this.#channel = platform.createChannel(channelName(this.namespace, this.path));
    this.#follower = new FollowerLink(this.#channel, this.#tabId);
    this.#channel.addEventListener("message", (event) => this.#onChannel(event.data));
    this.#elect();
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- references (one per open handle; the last one closes the store a tick later) ----

  retain(processors: readonly BrowserProcessor<any>[] = []): void {
    if (this.#disposeTimer !== undefined) clearTimeout(this.#disposeTimer);
    this.#disposeTimer = undefined;
    this.#refs += 1;
    const added = processors.filter((p) => !this.#processors.has(p.slug));
    for (const p of added) this.#processors.set(p.slug, p);
    if (added.length > 0 && this.#db) void this.#serial(() => this.#setupProcessors());
  }

  release(): void {
    this.#refs = Math.max(0, this.#refs - 1);
    this.collectSoon();
  }

  /** Closes the store after this tick unless a reference is taken meanwhile (React StrictMode remounts). */
  collectSoon(): void {
    if (this.#refs > 0 || this.#closed || this.#disposeTimer !== undefined) return;
    this.#disposeTimer = setTimeout(() => {
      this.#disposeTimer = undefined;
      if (this.#refs === 0) void this.dispose();
    }, 0);
  }

  // ---- the public surface ----

  getSnapshot = (): StreamSnapshot => this.#snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  query<Row>(sql: string, params: readonly SqlValue[] = []): QueryHandle<Row> {
    return this.#queries.query<Row>(sql, params);
  }

  async append(event: AppendInput): Promise<MirroredEvent> {
    await this.#whenReady();
    return (await this.#call("append", { event })) as MirroredEvent;
  }

  async appendBatch(events: readonly AppendInput[]): Promise<MirroredEvent[]> {
    await this.#whenReady();
    return (await this.#call("appendBatch", { events })) as MirroredEvent[];
  }

  async reset(): Promise<void> {
    await this.#admin.call("reset", { namespace: this.namespace, path: this.path }, {});
  }

  async kill(): Promise<void> {
    await this.#admin.call("kill", { namespace: this.namespace, path: this.path }, {});
  }

  async clearLocal(): Promise<void> {
    if (this.#snapshot.role === "follower") {
      await this.#follower.request("clearLocal", []);
      return;
    }
    await this.#serial(async () => {
      await this.#discard(this.#mirror.streamId, "cleared");
    });
    this.#core?.restart("the local mirror was cleared");
  }

  async download(): Promise<Blob> {
    const bytes = (await this.#read("exportFile", [])) as Uint8Array;
    return new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/x-sqlite3" });
  }

  async dispose(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onDisposed();
    for (const t of [this.#disposeTimer, this.#followerTimer, this.#sizeTimer]) if (t !== undefined) clearTimeout(t);
    this.#core?.stop();
    this.#follower.abandon("the stream store is closed");
    this.#queries.clear();
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new StreamError("closed", "the stream store is closed"));
    }
    this.#waiters.clear();
    this.#set({ status: "closed" });
    this.#listeners.clear();
    this.#channel.close();
    // The lock goes last: a follower promoted by it must find the SQLite file released.
    const db = this.#db;
    this.#db = undefined;
    if (db) {
      await Promise.race([this.#chain.then(() => db.close()), new Promise((r) => setTimeout(r, 2_000))]).catch(() => {});
      db.terminate();
    }
    this.#lock?.release();
  }

  // ---- election ----

  #elect(): void {
    const locks = this.#platform.locks;
    if (!locks) {
      void this.#lead();
      return;
    }
    this.#lock = requestWriterLock(locks, writerLockName(this.namespace, this.path), {
      granted: () => void this.#lead(),
      failed: (e) => this.#set({ status: "error", error: `writer lock request failed: ${e.message}` }),
    });
    this.#followerTimer = setTimeout(() => {
      this.#followerTimer = undefined;
      if (!this.#closed && this.#snapshot.role === "electing") this.#follow();
    }, FOLLOWER_AFTER_MS);
  }

  #follow(): void {
    this.#set({ role: "follower" });
    this.#queries.setRunner((sql, params) => this.#follower.request("query", [sql, params]) as Promise<Record<string, SqlValue>[]>);
    this.#channel.postMessage({ kind: "hello" });
  }

  async #lead(): Promise<void> {
    if (this.#closed) return;
    if (this.#followerTimer !== undefined) clearTimeout(this.#followerTimer);
    this.#followerTimer = undefined;
    this.#follower.abandon("this tab became the writer");
    this.#queries.setRunner(undefined);
    this.#set({ role: "leader", status: "connecting" });
    const db = workerMirrorDb(this.#platform.createWorker(this.#options.workerUrl ?? defaultWorkerUrl()));
    try {
      const opened = await db.open({ namespace: this.namespace, path: this.path, mirror: this.#options.mirror ?? "opfs" });
      const persisted = opened.kind === "opfs" ? await this.#platform.persisted().catch(() => false) : false;
      if (this.#closed) throw new Error("closed");
      this.#db = db;
      this.#healthyError = opened.fallbackReason;
      this.#set({ storage: Object.freeze({ kind: opened.kind, persisted, bytes: null }), error: opened.fallbackReason });
      await this.#setupProcessors();
    } catch (e) {
      if (this.#db !== db) db.terminate();
      if (!this.#closed) this.#set({ status: "error", error: `the local mirror could not be opened: ${message(e)}` });
      return;
    }
    if (this.#closed) return;
    this.#queries.setRunner((sql, params) => db.query(sql, params));
    this.#changed();
    this.#core = new Reconnector({
      dial: (handlers, epoch) => this.#dial(handlers, epoch),
      onMessage: (text, epoch) => this.#onFrame(text, epoch),
      onStatus: (status) => this.#onConnection(status),
      onStop: (error) => {
        if (error && !this.#closed) this.#set({ status: "error", error: error.message });
      },
      // Exactly min(30 s, 250 ms·2^(n−1)), no jitter: there is one writer per stream and profile.
      random: () => 1,
      timing: { connectTimeoutMs: 20_000 },
    });
    this.#core.start();
  }

  // ---- the writer's connection ----

  #dial(handlers: LinkHandlers, epoch: number): Link {
    let link: Link | undefined;
    let ended = false;
    void this.#serial(() => this.#prepare(epoch))
      .then(() => currentToken(this.#options.token))
      .then((token) => {
        if (ended || this.#core?.epoch !== epoch) return;
        const url = new URL("api/streams/subscribe", withSlash(this.#options.baseUrl ?? this.#platform.origin));
        url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
        url.searchParams.set("namespace", this.namespace);
        url.searchParams.set("path", this.path);
        url.searchParams.set("subscriptionKey", `browser:${this.#platform.subscriberId()}`);
        url.searchParams.set("replayAfterOffset", String(this.#mirror.checkpoint));
        if (token) url.searchParams.set("access_token", token);
        this.#set({ subscribedAfterOffset: this.#mirror.checkpoint });
        link = socketLink(new this.#platform.WebSocket(url.href), handlers);
      })
      .catch((e: unknown) => {
        if (ended) return;
        const reason = `subscribe failed: ${message(e)}`;
        // A refused token stays refused: stop instead of retrying forever.
        const refused = e instanceof StreamError && (e.status === 401 || e.status === 403);
        handlers.close(refused ? { code: 1006, reason, fatal: e } : { code: 1006, reason });
      });
    return {
      send: (text) => link?.send(text),
      close: () => {
        ended = true;
        link?.close();
      },
    };
  }

  /**
   * Before subscribing: the mirror must belong to the server's life of the stream, and continue
   * from an offset the stream still keeps (docs/browser.md#trimmed-streams).
   */
  async #prepare(epoch: number): Promise<void> {
    const runtime = (await this.#call("runtimeState", {})) as RuntimeState;
    if (this.#core?.epoch !== epoch) return;
    const server = runtime.coreProcessorState;
    const serverId = server.streamId ?? null;
    // Older Workers report no storage figures: nothing was trimmed there.
    const keptFrom = runtime.runtime?.storage?.firstOffset ?? 1;
    this.#set({ serverMaxOffset: server.maxOffset });
    const m = this.#mirror;
    const hasRows = m.localCount > 0 || m.checkpoint > 0;
    if (hasRows && (serverId === null || m.streamId !== serverId)) await this.#discard(serverId, "stream changed");
    else if (hasRows && server.maxOffset < m.checkpoint) await this.#discard(serverId, "server behind");
    else if (m.streamId !== serverId) await this.#discard(serverId, "fresh");
    // A replay from before the first kept offset would be refused (410 `trimmed`), and a mirror with
    // a hole is no mirror: start (again) at the first kept offset.
    if (this.#mirror.checkpoint + 1 < keptFrom) await this.#discard(serverId, this.#mirror.localCount > 0 ? "trimmed" : "fresh", keptFrom - 1);
    await this.#catchUpProcessors();
  }

  #onFrame(text: string, epoch: number): void {
    let frame: { type?: unknown };
    try {
      frame = JSON.parse(text) as { type?: unknown };
    } catch {
      return;
    }
    if (frame.type !== "batch") return;
    const batch = frame as SubscriberBatch;
    this.#inbox.push({ batch, epoch });
    if (this.#inbox.length === 1) void this.#serial(() => this.#drain());
  }

  /**
   * Applies what has arrived. Batches that continue each other (same connection, same life,
   * `afterOffset` = the previous `throughOffset`) are written as one transaction: a replay of many
   * small batches costs a few commits, not one per batch.
   */
  async #drain(): Promise<void> {
    while (this.#inbox.length > 0) {
      const first = this.#inbox.shift() as { batch: SubscriberBatch; epoch: number };
      let merged = first.batch;
      while (this.#inbox.length > 0 && merged.events.length < MAX_WRITE_EVENTS) {
        const next = this.#inbox[0] as { batch: SubscriberBatch; epoch: number };
        if (next.epoch !== first.epoch || next.batch.streamId !== merged.streamId || next.batch.afterOffset !== merged.throughOffset) break;
        this.#inbox.shift();
        merged = { ...next.batch, afterOffset: merged.afterOffset, events: [...merged.events, ...next.batch.events] };
      }
      await this.#applyBatch(merged, first.epoch);
    }
  }

  async #applyBatch(batch: SubscriberBatch, epoch: number): Promise<void> {
    const core = this.#core;
    const db = this.#db;
    if (!core || !db || this.#closed || core.epoch !== epoch) return;
    this.#set({ serverMaxOffset: batch.streamMaxOffset });
    const streamId = batch.streamId ?? null;
    const empty = this.#mirror.streamId === null && this.#mirror.checkpoint === 0 && this.#mirror.localCount === 0;
    if (streamId !== this.#mirror.streamId && empty && batch.afterOffset === 0) {
      // The stream did not exist yet when this mirror was prepared (reads create nothing,
      // docs/protocol.md#reads-create-nothing): the subscription created it, and this is its life.
      await this.#discard(streamId, "fresh");
    } else if (streamId !== this.#mirror.streamId) {
      await this.#discard(streamId, "stream changed");
      core.restart("the stream was reset");
      return;
    }
    if (batch.afterOffset !== this.#mirror.checkpoint) {
      this.#applyFailed(`batch after offset ${batch.afterOffset} does not continue the mirror at ${this.#mirror.checkpoint}`, epoch);
      return;
    }
    try {
      const writes = [...this.#processors.values()].map((p) => {
        const result = p.apply(this.#processorStates.get(p.slug), batch.events);
        return { slug: p.slug, statements: result.statements, state: result.state };
      });
      this.#mirror = await db.apply({
        streamId,
        afterOffset: batch.afterOffset,
        throughOffset: batch.throughOffset,
        events: batch.events,
        processors: writes.map((w) => ({ slug: w.slug, statements: w.statements, state: JSON.stringify(w.state) })),
      });
      for (const w of writes) this.#processorStates.set(w.slug, w.state);
    } catch (e) {
      this.#applyFailed(`applying the batch after offset ${batch.afterOffset} failed: ${message(e)}`, epoch);
      return;
    }
    core.progressed();
    this.#failures = { offset: -1, count: 0 };
    this.#set({ ...this.#mirrorFields(), error: this.#healthyError, status: core.state === "open" ? "subscribed" : this.#snapshot.status });
    this.#changed();
  }

  /** The one way a failed batch is handled: resubscribe from the durable checkpoint, after the back-off. */
  #applyFailed(reason: string, epoch: number): void {
    const at = this.#mirror.checkpoint;
    this.#failures = this.#failures.offset === at ? { offset: at, count: this.#failures.count + 1 } : { offset: at, count: 1 };
    const persistent = this.#failures.count >= PERSISTENT_FAILURES;
    this.#set({ error: persistent ? `${reason} (${this.#failures.count} consecutive failures at offset ${at}; still retrying)` : reason });
    this.#core?.drop(reason, epoch);
  }

  #onConnection(status: ConnectionStatus): void {
    if (this.#closed) return;
    const persistent = this.#failures.count >= PERSISTENT_FAILURES;
    let next: StreamStatus;
    switch (status.state) {
      case "open":
        this.#everOpen = true;
        next = "subscribed";
        break;
      case "idle":
      case "connecting":
        next = this.#everOpen ? "reconnecting" : "connecting";
        break;
      case "backoff":
      case "suspended":
        next = "reconnecting";
        break;
      case "stopped":
        next = "error";
        break;
    }
    const patch: Partial<StreamSnapshot> = { status: persistent && next !== "subscribed" ? "error" : next };
    if (status.state === "backoff" && !persistent) patch.error = status.reason ?? null;
    if (status.state === "open" && !persistent) patch.error = this.#healthyError;
    if (persistent) patch.status = "error";
    this.#set(patch);
  }

  async #setupProcessors(): Promise<void> {
    const db = this.#db;
    if (!db) return;
    const processors = [...this.#processors.values()];
    this.#mirror = await db.setupProcessors(processors.map(({ slug, version, tables, schema }) => ({ slug, version, tables, schema })));
    this.#loadProcessorStates();
    this.#set(this.#mirrorFields());
    if (this.#core) await this.#catchUpProcessors();
  }

  /** A processor behind the mirror (new, or rebuilt after a version change) catches up from the local rows. */
  async #catchUpProcessors(): Promise<void> {
    const db = this.#db;
    if (!db) return;
    for (const p of this.#processors.values()) {
      let at = this.#mirror.processors[p.slug]?.checkpoint ?? 0;
      while (at < this.#mirror.checkpoint) {
        const events = await db.readEvents(at, CATCH_UP_PAGE);
        const through = events.at(-1)?.offset ?? this.#mirror.checkpoint;
        const result = p.apply(this.#processorStates.get(p.slug), events);
        this.#mirror = await db.applyProcessor({
          slug: p.slug,
          afterOffset: at,
          throughOffset: through,
          statements: result.statements,
          state: JSON.stringify(result.state),
        });
        this.#processorStates.set(p.slug, result.state);
        at = through;
      }
    }
    this.#changed();
  }

  #loadProcessorStates(): void {
    this.#processorStates.clear();
    for (const p of this.#processors.values()) {
      const row = this.#mirror.processors[p.slug];
      this.#processorStates.set(p.slug, row ? JSON.parse(row.state) : structuredClone(p.initialState));
    }
  }

  async #discard(streamId: string | null, why: "stream changed" | "server behind" | "trimmed" | "fresh" | "cleared", startAfter = 0): Promise<void> {
    const db = this.#db;
    if (!db) return;
    this.#mirror = await db.discard(streamId, startAfter);
    this.#loadProcessorStates();
    const bump = why === "fresh" ? 0 : 1;
    this.#set({ ...this.#mirrorFields(), clearVersion: this.#snapshot.clearVersion + bump });
    this.#changed();
  }

  #mirrorFields(): Pick<StreamSnapshot, "streamId" | "checkpoint" | "firstOffset" | "localCount"> {
    const m = this.#mirror;
    return { streamId: m.streamId, checkpoint: m.checkpoint, firstOffset: m.firstOffset, localCount: m.localCount };
  }

  /** The mirror changed: local queries re-run, followers are told, the file size is refreshed soon. */
  #changed(): void {
    this.#queries.refresh();
    this.#channel.postMessage({ kind: "changed" });
    if (this.#sizeTimer === undefined) {
      this.#sizeTimer = setTimeout(() => {
        this.#sizeTimer = undefined;
        const db = this.#db;
        if (!db) return;
        db.sizeBytes().then(
          (bytes) => this.#set({ storage: Object.freeze({ ...this.#snapshot.storage, bytes }) }),
          () => {},
        );
      }, SIZE_REFRESH_MS);
    }
  }

  #serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(step);
    this.#chain = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  // ---- calls ----

  #call(method: MethodName, args: Record<string, unknown>): Promise<unknown> {
    return this.#http.call(method, { namespace: this.namespace, path: this.path }, args);
  }

  /** Resolves once the stream is subscribed (this tab's writer, or the writer tab it follows). */
  #whenReady(): Promise<void> {
    if (this.#closed) return Promise.reject(new StreamError("closed", "the stream store is closed"));
    if (this.#snapshot.status === "subscribed") return Promise.resolve();
    // A caller waiting means "try now": skip the rest of a back-off.
    if (this.#core?.state === "backoff") this.#core.restart("a call is waiting for the connection");
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          const s = this.#snapshot;
          reject(new StreamError("timeout", `no connection within ${CALL_WAIT_MS} ms (${s.status}${s.error ? `: ${s.error}` : ""})`));
        }, CALL_WAIT_MS),
      };
      this.#waiters.add(waiter);
    });
  }

  async #read(op: "exportFile" | "sizeBytes", args: unknown[]): Promise<unknown> {
    if (this.#snapshot.role === "follower") return this.#follower.request(op, args);
    const db = this.#db;
    if (!db) throw new StreamError("closed", "the local mirror is not open");
    return db[op]();
  }

  // ---- tabs ----

  #onChannel(message: ChannelMessage): void {
    if (this.#closed) return;
    const role = this.#snapshot.role;
    switch (message.kind) {
      case "changed":
        if (role === "follower") this.#queries.refresh();
        break;
      case "status":
        if (role === "follower") {
          this.#set(message.status);
          this.#queries.refresh();
        }
        break;
      case "hello":
        if (role === "leader") this.#channel.postMessage({ kind: "status", status: this.#leaderStatus() });
        break;
      case "request":
        if (role === "leader") void this.#serve(message.from, message.id, message.op, message.args);
        break;
      case "response":
        this.#follower.receive(message);
        break;
    }
  }

  async #serve(to: string, id: number, op: FollowerOp, args: unknown[]): Promise<void> {
    try {
      const db = this.#db;
      if (!db) throw new Error("the writer's mirror is not open yet");
      let result: unknown;
      if (op === "clearLocal") result = await this.clearLocal();
      else if (op === "query") result = await db.query(args[0] as string, args[1] as SqlValue[]);
      else if (op === "readEvents") result = await db.readEvents(args[0] as number, args[1] as number);
      else result = await db[op]();
      this.#channel.postMessage({ kind: "response", to, id, ok: true, result });
    } catch (e) {
      this.#channel.postMessage({ kind: "response", to, id, ok: false, error: message(e) });
    }
  }

  #leaderStatus(): LeaderStatus {
    const { namespace: _n, path: _p, role: _r, ...status } = this.#snapshot;
    return status;
  }

  #set(patch: Partial<StreamSnapshot>): void {
    const next = { ...this.#snapshot, ...patch };
    if (this.#closed) next.status = "closed";
    const prev = this.#snapshot;
    if (Object.keys(next).every((k) => next[k as keyof StreamSnapshot] === prev[k as keyof StreamSnapshot])) return;
    this.#snapshot = Object.freeze(next);
    if (next.status === "subscribed" && this.#waiters.size > 0) {
      for (const w of this.#waiters) {
        clearTimeout(w.timer);
        w.resolve();
      }
      this.#waiters.clear();
    }
    if (next.role === "leader" && !this.#closed) this.#channel.postMessage({ kind: "status", status: this.#leaderStatus() });
    for (const listener of [...this.#listeners]) listener();
  }
}

function defaultWorkerUrl(): URL {
  return new URL("./mirror-worker.js", import.meta.url);
}

function withSlash(base: string): string {
  return base.endsWith("/") ? base : `${base}/`;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export type { StreamStore };
