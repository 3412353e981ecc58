// `subscribe()`: an async iterator (or an `onBatch` loop) of batches over the subscribe route (a
// WebSocket, or Server-Sent Events) that resumes after any drop from the last checkpoint it handed
// out, verifies continuity on every batch, and reports a reset of the stream as one `{type:"reset"}` item.
import { StreamError } from "./errors.js";
import { DEFAULT_CONNECT_WAIT_MS, Reconnector, type ConnectionStatus, type ReconnectTiming } from "./reconnect.js";
import type { SocketParams, SubscribeTransport, Target, Transport } from "./transport.js";
import type { SubscriberBatch } from "./types.js";

/** The stream was reset: what follows is its new life, from offset 1. */
export interface ResetItem {
  type: "reset";
  streamId: string | null;
  previousStreamId: string | null;
}

export type SubscriptionItem = SubscriberBatch | ResetItem;

export interface SubscribeOptions {
  /** `"websocket"` (default) or `"sse"`: Server-Sent Events over `fetch`, through any HTTP proxy. */
  transport?: SubscribeTransport;
  /** Resume after this offset (a stored checkpoint); `0` replays everything; omitted: the live tail. */
  afterOffset?: number;
  /** The `streamId` the checkpoint belongs to: a different one on the first batch is a reset. */
  streamId?: string | null;
  /** Only these event types (`*` or empty: all). Batches still advance `throughOffset`. */
  eventTypes?: readonly string[];
  /** `false`: state-only batches (no events; missed appends coalesce). */
  events?: boolean;
  /** Stable per consumer; a second socket on the key replaces the first. Default: a random UUID. */
  subscriptionKey?: string;
  signal?: AbortSignal;
  /** Called with each item, one at a time (awaited). A throw stops the subscription with that error. */
  onBatch?: (item: SubscriptionItem) => void | Promise<void>;
  /** Connection changes, for status displays and logs. */
  onStatus?: (status: ConnectionStatus) => void;
  /** Back-off and liveness intervals (defaults: 250 ms … 30 s, ping every 15 s, pong within 10 s;
   * over SSE, which cannot ping, silence for 15 s + 20 s: the Worker sends a heartbeat every 15 s). */
  timing?: Partial<ReconnectTiming>;
  /** Batches received ahead of the consumer; past it the socket is released until it catches up. */
  maxBufferedBatches?: number;
  /** For the back-off jitter. */
  random?: () => number;
}

/** Where the consumer is: the last checkpoint handed out and the life of the log it belongs to. */
interface Position {
  checkpoint: number | undefined;
  streamId: string | null | undefined;
}

const DEFAULT_MAX_BUFFERED = 64;
/** Over SSE the "ping" is only a deadline: some frame or heartbeat (every 15 s) must arrive within it. */
const SSE_PONG_TIMEOUT_MS = 20_000;

export class Subscription implements AsyncIterableIterator<SubscriptionItem> {
  readonly subscriptionKey: string;
  /** Settles when the subscription has stopped: resolves on abort/close, rejects on a fatal error. */
  readonly done: Promise<void>;
  #transport: Transport;
  #target: Target;
  #options: SubscribeOptions;
  #core: Reconnector;
  /** What the consumer has been given. */
  #handedOut: Position;
  /** What the current connection has verified (handed out + queued). */
  #received: Position;
  #queue: SubscriptionItem[] = [];
  #pulls: { resolve: (r: IteratorResult<SubscriptionItem>) => void; reject: (e: unknown) => void }[] = [];
  #error: StreamError | undefined;
  /** A new streamId seen on the connection being replaced. */
  #resetSeen: ResetItem | undefined;
  #stopped = false;
  #resolveDone!: () => void;
  #rejectDone!: (e: unknown) => void;
  #maxBuffered: number;
  #onAbort = () => this.#stop();

  constructor(transport: Transport, target: Target, options: SubscribeOptions = {}) {
    this.#transport = transport;
    this.#target = target;
    this.#options = options;
    this.subscriptionKey = options.subscriptionKey ?? crypto.randomUUID();
    this.#maxBuffered = options.maxBufferedBatches ?? DEFAULT_MAX_BUFFERED;
    this.#handedOut = { checkpoint: options.afterOffset, streamId: options.streamId };
    this.#received = { ...this.#handedOut };
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // Iterator users see the error from next(); only onBatch users need `done`.
    if (!options.onBatch) this.done.catch(() => {});
    const via = options.transport ?? "websocket";
    const timing = via === "sse" && options.timing?.pongTimeoutMs === undefined ? { ...options.timing, pongTimeoutMs: SSE_PONG_TIMEOUT_MS } : options.timing;
    this.#core = new Reconnector({
      dial: (handlers) => this.#transport.dial(this.#target, this.#socketParams(), handlers, via),
      onMessage: (text, epoch) => this.#onFrame(text, epoch),
      onDrop: () => this.#rewind(),
      onStop: (error) => this.#finish(error),
      ...(options.onStatus ? { onStatus: options.onStatus } : {}),
      ...(timing ? { timing } : {}),
      ...(options.random ? { random: options.random } : {}),
    });
    if (options.signal?.aborted) {
      this.#stop();
      return;
    }
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#core.start();
    if (options.onBatch) void this.#runCallback(options.onBatch);
  }

  /** The last `throughOffset` handed out (or the starting checkpoint; on a live tail, the first batch's `afterOffset`): resume from here. */
  get checkpoint(): number | undefined {
    return this.#handedOut.checkpoint;
  }

  /** The life of the log the checkpoint belongs to (`undefined` before the first batch). */
  get streamId(): string | null | undefined {
    return this.#handedOut.streamId;
  }

  status(): ConnectionStatus {
    return this.#core.status();
  }

  /** Resolves once the socket is open; rejects with `timeout` after `timeoutMs`, `closed` when stopped. */
  whenConnected(timeoutMs: number = DEFAULT_CONNECT_WAIT_MS): Promise<void> {
    return this.#core.whenConnected(timeoutMs);
  }

  /**
   * Runs `call` once the subscription is connected (waiting at most `timeoutMs` while it
   * reconnects), so a call made during a reconnect waits instead of failing.
   */
  async whenReady<T>(call: () => Promise<T>, timeoutMs: number = DEFAULT_CONNECT_WAIT_MS): Promise<T> {
    await this.whenConnected(timeoutMs);
    return call();
  }

  next(): Promise<IteratorResult<SubscriptionItem>> {
    const item = this.#queue.shift();
    if (item) return Promise.resolve(this.#handOut(item));
    if (this.#error) return Promise.reject(this.#error);
    if (this.#stopped) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => this.#pulls.push({ resolve, reject }));
  }

  /** Stops the subscription (break / return in a for-await loop). */
  return(): Promise<IteratorResult<SubscriptionItem>> {
    this.#stop();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Stops: closes the socket and clears every timer; pending next() calls end. */
  close(): Promise<void> {
    this.#stop();
    return this.done.catch(() => {});
  }

  #socketParams(): SocketParams {
    const params: SocketParams = { subscriptionKey: this.subscriptionKey };
    // Before a reset is handed out, `received` may already point at the new life.
    const from = this.#received.checkpoint;
    if (from !== undefined) params.replayAfterOffset = from;
    if (this.#options.eventTypes) params.eventTypes = this.#options.eventTypes;
    if (this.#options.events === false) params.events = false;
    return params;
  }

  #onFrame(text: string, epoch: number): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      this.#core.drop("a frame that is not JSON", epoch);
      return;
    }
    if (!isBatch(frame)) return;
    const known = this.#received.streamId;
    if (known !== undefined && frame.streamId !== known) {
      // A new life of the log: say so once, then read it from the start.
      this.#resetSeen = { type: "reset", streamId: frame.streamId, previousStreamId: known };
      this.#core.restart(`stream reset (streamId ${known} → ${frame.streamId})`);
      this.#deliver();
      return;
    }
    const expected = this.#received.checkpoint;
    // State-only batches coalesce, so only event batches are checked for continuity.
    if (this.#options.events !== false && expected !== undefined && frame.afterOffset !== expected) {
      this.#core.drop(`continuity: expected afterOffset ${expected}, got ${frame.afterOffset}`, epoch);
      return;
    }
    if (frame.throughOffset < frame.afterOffset) {
      this.#core.drop(`a batch through ${frame.throughOffset} after ${frame.afterOffset}`, epoch);
      return;
    }
    // A live tail starts where its first batch starts: a drop before the first hand-out resumes
    // there, never at the (later) tail of the next connection.
    if (this.#handedOut.checkpoint === undefined) this.#handedOut = { checkpoint: frame.afterOffset, streamId: frame.streamId };
    this.#received = { checkpoint: frame.throughOffset, streamId: frame.streamId };
    this.#queue.push(frame);
    this.#deliver();
    if (this.#queue.length > this.#maxBuffered) this.#core.suspend(`consumer is ${this.#queue.length} batches behind`);
  }

  /** After a drop: resume from what the consumer has (batches queued ahead of it are read again). */
  #rewind(): void {
    this.#queue.length = 0;
    this.#received = { ...this.#handedOut };
    const reset = this.#resetSeen;
    this.#resetSeen = undefined;
    if (reset && (this.#handedOut.streamId === undefined || reset.previousStreamId === this.#handedOut.streamId)) {
      this.#queue.push(reset);
      this.#received = { checkpoint: 0, streamId: reset.streamId };
    }
  }

  #deliver(): void {
    while (this.#pulls.length > 0 && this.#queue.length > 0) {
      const pull = this.#pulls.shift()!;
      pull.resolve(this.#handOut(this.#queue.shift()!));
    }
  }

  #handOut(item: SubscriptionItem): IteratorResult<SubscriptionItem> {
    if (item.type === "reset") {
      this.#handedOut = { checkpoint: 0, streamId: item.streamId };
    } else {
      this.#handedOut = { checkpoint: item.throughOffset, streamId: item.streamId };
      this.#core.progressed();
    }
    if (this.#queue.length === 0) this.#core.resume();
    return { done: false, value: item };
  }

  async #runCallback(onBatch: (item: SubscriptionItem) => void | Promise<void>): Promise<void> {
    try {
      for (;;) {
        const result = await this.next();
        if (result.done) return;
        await onBatch(result.value);
      }
    } catch (e) {
      if (!this.#stopped) this.#core.stop(e instanceof StreamError ? e : new StreamError("internal", `onBatch threw: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    }
  }

  #stop(): void {
    this.#core.stop();
    this.#finish(undefined);
  }

  #finish(error: StreamError | undefined): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    if (error) this.#error = error;
    // Items not yet handed out are dropped: the checkpoint says where to resume.
    this.#queue.length = 0;
    for (const pull of this.#pulls.splice(0)) {
      if (error) pull.reject(error);
      else pull.resolve({ done: true, value: undefined });
    }
    if (error) this.#rejectDone(error);
    else this.#resolveDone();
  }
}

function isBatch(frame: unknown): frame is SubscriberBatch {
  if (typeof frame !== "object" || frame === null) return false;
  const f = frame as Partial<SubscriberBatch>;
  return f.type === "batch" && Array.isArray(f.events) && typeof f.afterOffset === "number" && typeof f.throughOffset === "number";
}
