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

/** The events a stream writes about its own connections: hidden by default (docs/viewer.md#events-view). */
export const PRESENCE_TYPES: readonly string[] = [`${SYSTEM_PREFIX}subscriber-connected`, `${SYSTEM_PREFIX}subscriber-disconnected`];

export function isPresence(type: string): boolean {
  return PRESENCE_TYPES.includes(type);
}

/** "1 event", "2 events" (also for other nouns: "1 filtered event"). */
export function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

export type EventKind = "presence" | "system" | "app";

/** How a type is coloured: the stream's presence events, its other own events, and caller events. */
export function eventKind(type: string): EventKind {
  if (isPresence(type)) return "presence";
  return type.startsWith(SYSTEM_PREFIX) ? "system" : "app";
}

/** A stable hue (0–359) for a caller event type, from its first two segments: related types share a colour family. */
export function typeHue(type: string): number {
  const family = type.split("/").slice(0, 2).join("/");
  let hash = 0;
  for (let i = 0; i < family.length; i++) hash = (hash * 31 + family.charCodeAt(i)) >>> 0;
  return hash % 360;
}

/** A type as shown: the stream's own types without the long prefix (`S/woken`). */
export function shortType(type: string): string {
  return type.startsWith(SYSTEM_PREFIX) ? `S/${type.slice(SYSTEM_PREFIX.length)}` : type;
}
