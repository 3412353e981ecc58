// Names derived from (namespace, path): the Web Lock, the BroadcastChannel and the OPFS directory.
// All carry the mirror schema version, so a tab running newer code never waits on (or reads)
// a mirror of an older shape.
import { MIRROR_SCHEMA_VERSION } from "./protocol.js";

export const DEFAULT_NAMESPACE = "default";

/** The writer lock: one tab per stream mirrors it. */
export function writerLockName(namespace: string, path: string): string {
  return `streams-mirror:v${MIRROR_SCHEMA_VERSION}:${namespace}:${path}`;
}

/** Change notices and follower requests between the tabs of one stream. */
export function channelName(namespace: string, path: string): string {
  return `streams-mirror:v${MIRROR_SCHEMA_VERSION}:${namespace}:${path}`;
}

/** A short, filesystem- and VFS-name-safe key: FNV-1a of `ns:path` plus a readable tail. */
export function mirrorFileKey(namespace: string, path: string): string {
  const name = `${namespace}:${path}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i += 1) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const tail = (path.split("/").at(-1) || "root").toLowerCase().replace(/[^a-z0-9]+/g, "_").slice(0, 24);
  return `${hash.toString(16).padStart(8, "0")}-${tail}`;
}
