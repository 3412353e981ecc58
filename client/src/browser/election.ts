// Writer election with Web Locks: the holder of the stream's lock mirrors it, the other tabs follow.
// The request is abortable: releasing before the grant withdraws it (the lock is never taken
// later), releasing after frees the lock. A failure other than that abort is reported, not only logged.

/** The part of `navigator.locks` the election uses. */
export interface LockManagerLike {
  request(name: string, options: { mode: "exclusive"; signal: AbortSignal }, callback: (lock: unknown) => Promise<void>): Promise<unknown>;
}

export interface WriterLock {
  /** Withdraws a queued request or frees a held lock. Idempotent. */
  release(): void;
}

export function requestWriterLock(
  locks: LockManagerLike,
  name: string,
  on: { granted(): void; failed(error: Error): void },
): WriterLock {
  const abort = new AbortController();
  let released = false;
  let free: () => void = () => {};
  const held = new Promise<void>((resolve) => (free = resolve));
  locks
    .request(name, { mode: "exclusive", signal: abort.signal }, async () => {
      // Granted in the same moment as a release: give it straight back.
      if (released) return;
      on.granted();
      await held;
    })
    .catch((e: unknown) => {
      if (released && isAbort(e)) return;
      on.failed(e instanceof Error ? e : new Error(String(e)));
    });
  return {
    release() {
      if (released) return;
      released = true;
      abort.abort();
      free();
    },
  };
}

function isAbort(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}
