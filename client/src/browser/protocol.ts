// Messages between a page and its mirror worker (one dedicated Worker per store). The page-side
// `MirrorDb` interface is what the runtime uses; the worker, a follower's proxy to the leader and
// the unit tests' fake all implement it.
import type { MirrorKind, MirroredEvent, SqlStatement, SqlValue } from "./types.js";

/** Bumped when the mirror's tables change shape; part of the Web Lock name and the OPFS directory. */
export const MIRROR_SCHEMA_VERSION = 1;

/** The mirror's own row in `processor_state`. */
export const MIRROR_SLUG = "events";

export interface ProcessorSetup {
  slug: string;
  version: number;
  tables: readonly string[];
  schema: readonly string[];
}

export interface ProcessorRow {
  checkpoint: number;
  state: string;
}

/** What the mirror holds, as one transaction saw it. */
export interface MirrorState {
  streamId: string | null;
  checkpoint: number;
  /** The offset the mirror starts at: its first row, or (empty) the one after its checkpoint. */
  firstOffset: number;
  localCount: number;
  processors: Record<string, ProcessorRow>;
}

export interface OpenResult {
  kind: MirrorKind;
  /** Why OPFS was not used when it was asked for. */
  fallbackReason: string | null;
  state: MirrorState;
}

/** One batch for the mirror and the processors' writes for it, committed together. */
export interface ApplyRequest {
  streamId: string | null;
  afterOffset: number;
  throughOffset: number;
  events: readonly MirroredEvent[];
  processors: readonly { slug: string; statements: readonly SqlStatement[]; state: string }[];
}

/** A processor catching up from the local mirror: its writes and its new checkpoint. */
export interface ProcessorApplyRequest {
  slug: string;
  afterOffset: number;
  throughOffset: number;
  statements: readonly SqlStatement[];
  state: string;
}

export interface MirrorDb {
  open(args: { namespace: string; path: string; mirror: MirrorKind }): Promise<OpenResult>;
  /** Creates (or, on a version change, rebuilds) processor tables; returns the mirror state after. */
  setupProcessors(processors: readonly ProcessorSetup[]): Promise<MirrorState>;
  apply(request: ApplyRequest): Promise<MirrorState>;
  applyProcessor(request: ProcessorApplyRequest): Promise<MirrorState>;
  /** Empties the mirror and every processor table and records `streamId` as the mirrored life;
   * the next batch starts after `startAfter` (default 0; a trimmed stream's first kept offset − 1). */
  discard(streamId: string | null, startAfter?: number): Promise<MirrorState>;
  query(sql: string, params: readonly SqlValue[]): Promise<Record<string, SqlValue>[]>;
  readEvents(afterOffset: number, limit: number): Promise<MirroredEvent[]>;
  exportFile(): Promise<Uint8Array>;
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

export type MirrorOp = keyof MirrorDb;

export interface WorkerRequest {
  id: number;
  op: MirrorOp;
  args: unknown[];
}

export type WorkerResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
