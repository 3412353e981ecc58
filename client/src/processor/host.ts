// ProcessorHost: the two methods a stream calls on an outbound subscriber, for any number of
// processors, with the checkpoint committed in the same SQLite transaction as the state.
import type { Processor } from "./define.js";
import { ProcessorStore, type ProcessorHostContext, type ProcessorKey, type ProcessorRow } from "./store.js";
import type { EventInput, StreamEvent } from "../types.js";
import { appendTo, type Announcement, type BatchArgs, type DialArgs, type DialReply, type StreamsAppender } from "./wire.js";

const ERROR_OCCURRED = "events.iterate.com/stream/error-occurred";
/** The largest state JSON, in UTF-8 bytes: a Durable Object's SQLite row limit (docs/processors.md#defineprocessoroptions). */
export const MAX_STATE_BYTES = 2_000_000;

export interface ProcessorHostOptions {
  /** Each with its own state type; the host only moves states through JSON. */
  processors: readonly Processor<unknown>[];
  /** The streams service binding or a `createStreamsClient` instance (for `onEvent` appends and the halt report). */
  streams: StreamsAppender;
  /** Where the host reports its own recovery failures (default `console.error`). */
  log?: (message: string, error?: unknown) => void;
}

export interface ProcessorFailure {
  offset: number | null;
  name: string;
  message: string;
  /** `trimmed` for a halt because retention removed events after the checkpoint. */
  code?: string;
  stack?: string;
}

export interface ProcessorStatus<State = unknown> {
  namespace: string;
  path: string;
  slug: string;
  version: string;
  checkpoint: number;
  /** The highest checkpoint any version reached on this life of the stream: `onEvent` runs only for events past it. */
  handledThrough: number;
  state: State;
  failures: number;
  halted: boolean;
  lastError: ProcessorFailure | null;
  /** Set by `resume({skip: true})` until the checkpoint passes it (after a `trimmed` halt: checkpoint + 1, until the next dial steps over the removed events). */
  skipOffset: number | null;
  connectionId: string | null;
  streamId: string | null;
}

export interface BatchOutcome {
  /** committed: state and checkpoint written; skipped: nothing new; superseded: from an old connection, dropped. */
  outcome: "committed" | "skipped" | "superseded";
  checkpoint: number;
}

/**
 * Thrown by `append` inside `onEvent` when the stream could not take the event for a reason that
 * is not the event's fault (the stream restarting, paused, or unreachable). The batch is rejected
 * and redelivered, but the attempt does not count towards halting.
 */
export class StreamUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`stream unavailable: ${messageOf(cause)}`, { cause });
    this.name = "StreamUnavailableError";
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function coded(code: string, message: string): Error {
  return new Error(`${code}: ${message}`);
}

/**
 * Failures of the stream or of the way to it, which a later attempt can get past: the stream
 * restarting (`internal`), paused, or unreachable (`network`, `timeout`, `protocol` from
 * `createStreamsClient`; an uncoded error from a broken binding). docs/processors.md#failures-halting-and-resume
 */
const TRANSIENT_CODES: ReadonlySet<string> = new Set(["internal", "stream_paused", "network", "timeout", "protocol"]);

function isTransientStreamError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const fromMessage = /^([a-z_]+): /.exec(messageOf(error))?.[1];
  const c = typeof code === "string" ? code : fromMessage;
  return c === undefined || TRANSIENT_CODES.has(c);
}

function failureOf(error: unknown, offset: number | null): ProcessorFailure {
  const e = error instanceof Error ? error : new Error(String(error));
  return { offset, name: e.name, message: e.message, ...(typeof e.stack === "string" ? { stack: e.stack } : {}) };
}

/** The stream's `trimmed` message (docs/protocol.md#retention). */
function trimmedMessage(needed: number, firstOffset: number): string {
  return `Offset ${needed} was removed by retention; the first kept offset is ${firstOffset}.`;
}

function failureCode(row: ProcessorRow): string | undefined {
  return row.lastError ? (JSON.parse(row.lastError) as ProcessorFailure).code : undefined;
}

/** Whether `resume({skip: true})` after a `trimmed` halt told the next dial to start from the first kept offset. */
function skipsTrimmedEvents(row: ProcessorRow): boolean {
  return row.skipOffset === row.checkpoint + 1 && failureCode(row) === "trimmed";
}

function isOffset(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function nonEmptyString(value: unknown, what: string): string {
  if (typeof value !== "string" || value === "") throw coded("invalid_request", `${what} must be a non-empty string`);
  return value;
}

function checkBatch(args: BatchArgs): void {
  const { afterOffset, throughOffset, events } = args;
  if (!isOffset(afterOffset) || !isOffset(throughOffset) || afterOffset > throughOffset) {
    throw coded("invalid_request", `afterOffset and throughOffset must be offsets with afterOffset ≤ throughOffset (got ${afterOffset}, ${throughOffset})`);
  }
  if (!Array.isArray(events)) throw coded("invalid_request", "events must be an array");
  let previous = afterOffset;
  for (const event of events) {
    const offset = (event as StreamEvent | null)?.offset;
    if (!isOffset(offset) || offset <= previous || offset > throughOffset || typeof event.type !== "string") {
      throw coded("invalid_request", `events must be ascending offsets in (${afterOffset}, ${throughOffset}]; got ${JSON.stringify(offset)} after ${previous}`);
    }
    previous = offset;
  }
}

export class ProcessorHost {
  readonly #store: ProcessorStore;
  readonly #processors = new Map<string, Processor<unknown>>();
  readonly #streams: StreamsAppender;
  readonly #log: (message: string, error?: unknown) => void;
  /** Per (namespace, path, slug): the tail of its batch queue, which never rejects. */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(ctx: ProcessorHostContext, options: ProcessorHostOptions) {
    if (!options || !Array.isArray(options.processors) || options.processors.length === 0) {
      throw new TypeError("ProcessorHost: processors must be a non-empty array of defineProcessor(...) results");
    }
    for (const p of options.processors) {
      if (this.#processors.has(p.slug)) throw new TypeError(`ProcessorHost: two processors have the slug "${p.slug}"`);
      this.#processors.set(p.slug, p);
    }
    if (typeof options.streams?.append !== "function") {
      throw new TypeError("ProcessorHost: streams must be the streams service binding or a createStreamsClient instance");
    }
    this.#streams = options.streams;
    this.#log = options.log ?? ((message, error) => console.error(message, error));
    this.#store = new ProcessorStore(ctx.storage);
  }

  /**
   * The dial: accepts the connection and says where to replay from, unless the processor is halted
   * or retention removed events after its checkpoint (docs/processors.md#when-retention-removed-the-checkpoint).
   */
  async requestStreamSubscription(args: DialArgs): Promise<DialReply> {
    const processor = this.#select(args?.processorName);
    const key = this.#key(args, processor.slug);
    const connectionId = args.connectionId ?? null;
    if (connectionId !== null && typeof connectionId !== "string") throw coded("invalid_request", "connectionId must be a string");
    const dialStreamId = args.streamRuntimeState?.coreProcessorState?.streamId;
    const streamId = typeof dialStreamId === "string" ? dialStreamId : null;
    // A stream without retention (or older than `firstOffset`) keeps everything.
    const firstOffset = isOffset(args.firstOffset) && args.firstOffset > 0 ? args.firstOffset : 1;
    const trimmedAfter = (row: ProcessorRow) => row.checkpoint + 1 < firstOffset;
    let skipped: { row: ProcessorRow; why: string } | undefined;
    const row = this.#store.transaction(() => {
      let current = this.#current(key, processor);
      // A new stream id is a new life of the log (a reset): the state of the old one is discarded.
      if (streamId !== null && current.streamId !== null && current.streamId !== streamId) current = this.#fresh(processor);
      const skipsTrimmed = skipsTrimmedEvents(current);
      if (!current.halted && trimmedAfter(current)) {
        if (processor.onTrimmed === "halt" && !skipsTrimmed) {
          const failure: ProcessorFailure = { offset: current.checkpoint + 1, name: "StreamError", code: "trimmed", message: trimmedMessage(current.checkpoint + 1, firstOffset) };
          const halted: ProcessorRow = { ...current, halted: true, haltReported: false, failures: 0, failedOffset: null, lastError: JSON.stringify(failure) };
          this.#store.write(key, halted);
          return halted;
        }
        skipped = { row: current, why: skipsTrimmed ? "resume({skip: true})" : 'onTrimmed: "startFromFirstKept"' };
        current = { ...current, checkpoint: firstOffset - 1, skipOffset: current.skipOffset !== null && current.skipOffset < firstOffset ? null : current.skipOffset };
      } else if (skipsTrimmed) {
        // A skip meant for removed events never steps over a kept one.
        current = { ...current, skipOffset: null };
      }
      if (!current.halted) this.#store.write(key, { ...current, connectionId, streamId: streamId ?? current.streamId });
      return current;
    });
    if (row.halted) {
      await this.#reportHalt(key, args.subscriptionKey, processor, row);
      // A checkpoint retention removed is refused as `trimmed`: the stream stops dialling this subscription.
      if (trimmedAfter(row)) throw coded("trimmed", trimmedMessage(row.checkpoint + 1, firstOffset));
      throw this.#haltedError(key, row);
    }
    if (skipped) {
      this.#log(
        `processor "${key.slug}" on ${key.namespace}:${key.path}: offsets ${skipped.row.checkpoint + 1} to ${firstOffset - 1} were removed by retention; ` +
          `starting after ${firstOffset - 1} with the state of checkpoint ${skipped.row.checkpoint} (${skipped.why})`,
      );
    }
    const types = processor.eventTypes ? [...processor.eventTypes] : ["*"];
    const announcement: Announcement = { slug: processor.slug, version: processor.version, consumes: types };
    if (processor.description !== undefined) announcement.description = processor.description;
    return { replayAfterOffset: row.checkpoint, eventTypes: types, subscriber: { processor: { announcement } } };
  }

  /** A delivery: reduced and committed after every earlier batch of the same processor and stream. */
  processEventBatch(args: BatchArgs): Promise<BatchOutcome> {
    try {
      const processor = this.#select(args?.processorName);
      const key = this.#key(args, processor.slug);
      nonEmptyString(args.subscriptionKey, "subscriptionKey");
      checkBatch(args);
      const queue = JSON.stringify([key.namespace, key.path, key.slug]);
      const run = (this.#queues.get(queue) ?? Promise.resolve()).then(() => this.#ingest(key, processor, args));
      const tail = run.then(
        () => {},
        () => {},
      );
      this.#queues.set(queue, tail);
      void tail.then(() => {
        if (this.#queues.get(queue) === tail) this.#queues.delete(queue);
      });
      return run;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  status(args: ProcessorKey): ProcessorStatus {
    const processor = this.#select(args?.slug);
    const key = this.#key(args, processor.slug);
    return this.#statusOf(key, this.#current(key, processor));
  }

  /**
   * Clears a halt; with `skip: true` the next delivery steps over the event that failed, or, after
   * a `trimmed` halt, the next dial over the removed events (docs/processors.md#when-retention-removed-the-checkpoint).
   */
  resume(args: ProcessorKey & { skip?: boolean }): ProcessorStatus {
    const processor = this.#select(args?.slug);
    const key = this.#key(args, processor.slug);
    if (args.skip !== undefined && typeof args.skip !== "boolean") throw coded("invalid_request", "skip must be a boolean");
    const row = this.#store.transaction(() => {
      const current = this.#current(key, processor);
      if (!current.halted) return current;
      // After a trimmed halt the offset to step over is the first one retention removed.
      const stepOver = failureCode(current) === "trimmed" ? current.checkpoint + 1 : current.failedOffset;
      const resumed: ProcessorRow = {
        ...current,
        halted: false,
        haltReported: false,
        failures: 0,
        skipOffset: args.skip && stepOver !== null ? stepOver : current.skipOffset,
      };
      this.#store.write(key, resumed);
      return resumed;
    });
    return this.#statusOf(key, row);
  }

  #select(name: unknown): Processor<unknown> {
    if (name !== undefined && name !== null) {
      if (typeof name !== "string") throw coded("invalid_request", "processorName must be a string");
      const p = this.#processors.get(name);
      if (!p) throw coded("processor_unknown", `no processor "${name}" in this host (it has ${this.#slugs()})`);
      return p;
    }
    if (this.#processors.size === 1) return this.#processors.values().next().value!;
    throw coded(
      "processor_unknown",
      `this host runs several processors (${this.#slugs()}); name one with transformInput.shallowMerge: {processorName: "<slug>"}`,
    );
  }

  #slugs(): string {
    return [...this.#processors.keys()].map((s) => `"${s}"`).join(", ");
  }

  #key(args: { namespace?: unknown; path?: unknown }, slug: string): ProcessorKey {
    return { namespace: nonEmptyString(args.namespace, "namespace"), path: nonEmptyString(args.path, "path"), slug };
  }

  /**
   * The stored row, or a fresh one (not yet written) when there is none or it is of another
   * version; a fresh row of a new version keeps how far the old ones handled the stream.
   */
  #current(key: ProcessorKey, processor: Processor<unknown>): ProcessorRow {
    const row = this.#store.read(key);
    if (!row) return this.#fresh(processor);
    return row.version === processor.version ? row : { ...this.#fresh(processor, row.handledThrough), streamId: row.streamId };
  }

  #fresh(processor: Processor<unknown>, handledThrough = 0): ProcessorRow {
    return {
      version: processor.version,
      streamId: null,
      checkpoint: 0,
      handledThrough,
      state: JSON.stringify(processor.initialState()),
      connectionId: null,
      failures: 0,
      lastError: null,
      failedOffset: null,
      halted: false,
      haltReported: false,
      skipOffset: null,
    };
  }

  async #ingest(key: ProcessorKey, processor: Processor<unknown>, batch: BatchArgs): Promise<BatchOutcome> {
    const row = this.#store.read(key);
    if (!row || row.version !== processor.version) {
      throw coded("processor_not_dialled", `processor "${key.slug}" ${processor.version} has not accepted a dial from ${key.namespace}:${key.path}`);
    }
    if (row.connectionId !== (batch.connectionId ?? null)) return { outcome: "superseded", checkpoint: row.checkpoint };
    if (row.halted) throw this.#haltedError(key, row);
    if (batch.afterOffset > row.checkpoint) {
      throw coded(
        "processor_gap",
        `batch after offset ${batch.afterOffset} but processor "${key.slug}" is at checkpoint ${row.checkpoint}; replay from the checkpoint`,
      );
    }
    if (batch.throughOffset <= row.checkpoint) return { outcome: "skipped", checkpoint: row.checkpoint };

    let offset: number | null = null;
    let committed: ProcessorRow | undefined;
    try {
      let state = JSON.parse(row.state);
      for (const event of batch.events) {
        if (event.offset <= row.checkpoint || event.offset === row.skipOffset) continue;
        offset = event.offset;
        const next = processor.reduce(state, event);
        if (typeof (next as { then?: unknown } | null)?.then === "function") {
          throw new TypeError(`reduce of "${key.slug}" returned a promise; it must be synchronous`);
        }
        state = next;
        // An earlier version already ran the side effects of what it handled (docs/processors.md#versions).
        if (processor.onEvent && event.offset > row.handledThrough) {
          await processor.onEvent({ event, state, namespace: key.namespace, path: key.path, append: this.#appender(key, processor, batch.subscriptionKey, event) });
        }
      }
      const json = JSON.stringify(state);
      if (json === undefined) throw new TypeError(`reduce of "${key.slug}" returned a value that is not JSON`);
      // Checked here, not left to SQLite: a local runtime stores bigger rows than the platform does.
      const stateBytes = json.length * 3 > MAX_STATE_BYTES ? new TextEncoder().encode(json).byteLength : json.length;
      if (stateBytes > MAX_STATE_BYTES) {
        throw new TypeError(`reduce of "${key.slug}" returned a state of ${stateBytes} bytes of JSON; the limit is ${MAX_STATE_BYTES}`);
      }
      committed = this.#store.transaction(() => {
        const now = this.#store.read(key);
        if (!now || now.connectionId !== row.connectionId || now.checkpoint !== row.checkpoint || now.version !== row.version) return undefined;
        const skipOffset = now.skipOffset !== null && now.skipOffset <= batch.throughOffset ? null : now.skipOffset;
        const next: ProcessorRow = {
          ...now,
          checkpoint: batch.throughOffset,
          handledThrough: Math.max(now.handledThrough, batch.throughOffset),
          state: json,
          failures: 0,
          lastError: null,
          failedOffset: null,
          skipOffset,
        };
        this.#store.write(key, next);
        return next;
      });
    } catch (error) {
      return this.#fail(key, batch.subscriptionKey, processor, row, offset, error);
    }
    if (!committed) return { outcome: "superseded", checkpoint: this.#store.read(key)?.checkpoint ?? row.checkpoint };
    return { outcome: "committed", checkpoint: committed.checkpoint };
  }

  /** `append` for `onEvent`: keyed by slug, wiring and input, so two wirings of one slug never collide. */
  #appender(key: ProcessorKey, processor: Processor<unknown>, subscriptionKey: string, input: StreamEvent) {
    let n = 0;
    return async (event: Omit<EventInput, "idempotencyKey" | "offset">): Promise<StreamEvent> => {
      const own = event as EventInput;
      if (own.idempotencyKey !== undefined || own.offset !== undefined) {
        throw new TypeError(`append inside onEvent sets idempotencyKey itself (${key.slug}:<subscription key>:<input offset>:<n>) and takes no offset`);
      }
      const idempotencyKey = `${key.slug}:${subscriptionKey}:${input.offset}:${n++}`;
      const source = event.source ?? { processor: { slug: processor.slug, version: processor.version } };
      try {
        return await appendTo(this.#streams, { namespace: key.namespace, path: key.path }, { ...event, source, idempotencyKey });
      } catch (error) {
        throw isTransientStreamError(error) ? new StreamUnavailableError(error) : error;
      }
    };
  }

  /** Counts the failure (unless the stream was unavailable or the batch is stale), halts at the limit, rejects. */
  async #fail(key: ProcessorKey, subscriptionKey: string, processor: Processor<unknown>, row: ProcessorRow, offset: number | null, error: unknown): Promise<never> {
    const transient = error instanceof StreamUnavailableError;
    let recorded: ProcessorRow | undefined;
    try {
      recorded = this.#store.transaction(() => {
        const now = this.#store.read(key);
        if (transient || !now || now.connectionId !== row.connectionId || now.checkpoint !== row.checkpoint || now.version !== row.version) {
          return undefined;
        }
        const failures = now.failures + 1;
        const next: ProcessorRow = {
          ...now,
          failures,
          lastError: JSON.stringify(failureOf(error, offset)),
          failedOffset: offset,
          halted: failures >= processor.maxConsecutiveFailures,
          haltReported: false,
        };
        this.#store.write(key, next);
        return next;
      });
    } catch (storageError) {
      this.#log(`processor "${key.slug}": could not record a failure on ${key.namespace}:${key.path}`, storageError);
    }
    if (recorded?.halted) await this.#reportHalt(key, subscriptionKey, processor, recorded);
    const attempt = recorded ? ` (attempt ${recorded.failures} of ${processor.maxConsecutiveFailures})` : "";
    throw coded(
      transient ? "stream_unavailable" : "processor_failed",
      `processor "${key.slug}" failed at offset ${offset ?? "-"}${attempt}; nothing committed: ${messageOf(error)}`,
    );
  }

  /** Appends the halt's one `error-occurred`, keyed like the processor's own appends (slug, subscription key) so retries cannot repeat it. Never rejects. */
  async #reportHalt(key: ProcessorKey, subscriptionKey: string, processor: Processor<unknown>, row: ProcessorRow): Promise<void> {
    if (row.haltReported) return;
    try {
      const failure: ProcessorFailure = row.lastError ? JSON.parse(row.lastError) : { offset: null, name: "Error", message: "unknown" };
      const error: { name: string; message: string; code?: string; stack?: string } = { name: failure.name, message: failure.message };
      if (failure.code !== undefined) error.code = failure.code;
      if (failure.stack !== undefined) error.stack = failure.stack;
      const why =
        failure.code === "trimmed"
          ? `halted at checkpoint ${row.checkpoint}: trimmed`
          : `halted after ${row.failures} failed attempts at offset ${failure.offset ?? "-"} (checkpoint ${row.checkpoint})`;
      await appendTo(this.#streams, { namespace: key.namespace, path: key.path }, {
        type: ERROR_OCCURRED,
        payload: {
          message: `processor "${key.slug}" ${processor.version} ${why}: ${failure.message}`,
          error,
        },
        source: { processor: { slug: processor.slug, version: processor.version } },
        idempotencyKey: `processor-ingest-failed:${key.slug}:${subscriptionKey}:${row.checkpoint}`,
      });
      this.#store.transaction(() => {
        const now = this.#store.read(key);
        if (now?.halted && now.checkpoint === row.checkpoint) this.#store.write(key, { ...now, haltReported: true });
      });
    } catch (error) {
      this.#log(`processor "${key.slug}": could not report its halt to ${key.namespace}:${key.path}; the next dial retries`, error);
    }
  }

  #haltedError(key: ProcessorKey, row: ProcessorRow): Error {
    const failure: ProcessorFailure | null = row.lastError ? JSON.parse(row.lastError) : null;
    return coded(
      "processor_halted",
      `processor "${key.slug}" on ${key.namespace}:${key.path} is halted at checkpoint ${row.checkpoint} after ${row.failures} failures` +
        `${failure ? ` (offset ${failure.offset ?? "-"}: ${failure.message})` : ""}; call resume`,
    );
  }

  #statusOf(key: ProcessorKey, row: ProcessorRow): ProcessorStatus {
    return {
      ...key,
      version: row.version,
      checkpoint: row.checkpoint,
      handledThrough: row.handledThrough,
      state: JSON.parse(row.state),
      failures: row.failures,
      halted: row.halted,
      lastError: row.lastError ? JSON.parse(row.lastError) : null,
      skipOffset: row.skipOffset,
      connectionId: row.connectionId,
      streamId: row.streamId,
    };
  }
}
