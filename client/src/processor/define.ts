// defineProcessor: checks a processor definition once, at module load, and fills in defaults.
import type { EventInput, Json, StreamEvent } from "../types.js";

/** What `onEvent` receives for each input event, after `reduce` has folded it into `state`. */
export interface OnEventContext<State> {
  event: StreamEvent;
  /** The state after this event. */
  state: State;
  namespace: string;
  path: string;
  /**
   * Appends to the stream that delivered `event`. The host sets the idempotency key
   * (`<slug>:<subscription key>:<input offset>:<n>`, n counting this call's appends from 0) and `source`, so a
   * redelivery returns the events already written instead of writing them again.
   */
  append(event: Omit<EventInput, "idempotencyKey" | "offset">): Promise<StreamEvent>;
}

export interface ProcessorOptions<State> {
  /** Identity: storage rows, idempotency keys, the announcement. */
  slug: string;
  /** A different version discards the stored state and replays the stream from offset 0. */
  version: string;
  /** Server-side filter; omit for every event. */
  eventTypes?: readonly string[];
  /** JSON; copied for every fresh start. */
  initialState: State;
  /** Pure and synchronous. Its result must be JSON. */
  reduce(state: State, event: StreamEvent): State;
  /** Optional side effects, once per input event per attempt. */
  onEvent?(context: OnEventContext<State>): Promise<void> | void;
  /** Failed attempts at one checkpoint before the processor halts (default 3). */
  maxConsecutiveFailures?: number;
  /**
   * What happens when the stream's retention removed events after the checkpoint
   * (docs/processors.md#when-retention-removed-the-checkpoint): `"halt"` (default) halts with a
   * `trimmed` error; `"startFromFirstKept"` moves the checkpoint to the first kept offset − 1,
   * keeps the state, and goes on from there.
   */
  onTrimmed?: OnTrimmed;
  description?: string;
}

export type OnTrimmed = "halt" | "startFromFirstKept";

export interface Processor<State = Json> {
  readonly slug: string;
  readonly version: string;
  readonly eventTypes: readonly string[] | undefined;
  readonly maxConsecutiveFailures: number;
  readonly onTrimmed: OnTrimmed;
  readonly description: string | undefined;
  /** A fresh copy of the initial state. */
  initialState(): State;
  reduce(state: State, event: StreamEvent): State;
  onEvent?(context: OnEventContext<State>): Promise<void> | void;
}

function nonBlank(value: unknown, what: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new TypeError(`defineProcessor: ${what} must be a non-empty string`);
  return value;
}

export function defineProcessor<State>(options: ProcessorOptions<State>): Processor<State> {
  const slug = nonBlank(options.slug, "slug");
  const version = nonBlank(options.version, `version of "${slug}"`);
  if (typeof options.reduce !== "function") throw new TypeError(`defineProcessor: reduce of "${slug}" must be a function`);
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    throw new TypeError(`defineProcessor: onEvent of "${slug}" must be a function`);
  }
  let eventTypes: readonly string[] | undefined;
  if (options.eventTypes !== undefined) {
    if (!Array.isArray(options.eventTypes) || options.eventTypes.length === 0) {
      throw new TypeError(`defineProcessor: eventTypes of "${slug}" must be a non-empty array (omit it for every event)`);
    }
    eventTypes = Object.freeze(options.eventTypes.map((t, i) => nonBlank(t, `eventTypes[${i}] of "${slug}"`)));
  }
  const maxConsecutiveFailures = options.maxConsecutiveFailures ?? 3;
  if (!Number.isInteger(maxConsecutiveFailures) || maxConsecutiveFailures < 1) {
    throw new TypeError(`defineProcessor: maxConsecutiveFailures of "${slug}" must be a positive integer`);
  }
  const onTrimmed = options.onTrimmed ?? "halt";
  if (onTrimmed !== "halt" && onTrimmed !== "startFromFirstKept") {
    throw new TypeError(`defineProcessor: onTrimmed of "${slug}" must be "halt" or "startFromFirstKept"`);
  }
  const initialJson = JSON.stringify(options.initialState);
  if (initialJson === undefined) throw new TypeError(`defineProcessor: initialState of "${slug}" must be JSON`);
  return Object.freeze({
    slug,
    version,
    eventTypes,
    maxConsecutiveFailures,
    onTrimmed,
    description: options.description,
    initialState: () => JSON.parse(initialJson) as State,
    reduce: options.reduce,
    onEvent: options.onEvent,
  });
}
