// Event types the viewer writes or recognises (`S/x` = events.iterate.com/stream/x).
export const SYSTEM_PREFIX = "events.iterate.com/stream/";
export const PAUSED = `${SYSTEM_PREFIX}paused`;
export const RESUMED = `${SYSTEM_PREFIX}resumed`;
export const CONFIGURED = `${SYSTEM_PREFIX}configured`;

export interface AppendInput {
  type: string;
  payload?: unknown;
  metadata?: Record<string, unknown>;
  idempotencyKey?: string;
}

export interface CommittedEvent extends AppendInput {
  offset: number;
  createdAt: string;
}
