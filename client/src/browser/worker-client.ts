// The page side of the mirror worker: each MirrorDb call is one request; replies are matched by id.
import type { MirrorDb, MirrorOp, WorkerRequest, WorkerResponse } from "./protocol.js";

/** What the runtime needs of a dedicated Worker (the unit tests pass a fake). */
export interface WorkerLike {
  postMessage(message: WorkerRequest): void;
  addEventListener(type: "message", listener: (event: { data: WorkerResponse }) => void): void;
  addEventListener(type: "error", listener: (event: { message?: string }) => void): void;
  terminate(): void;
}

/** A proxy whose every method is one request to `send` (the worker, or the leader tab). */
export function proxyMirrorDb(send: (op: MirrorOp, args: unknown[]) => Promise<unknown>): MirrorDb {
  const call =
    <K extends MirrorOp>(op: K) =>
    (...args: Parameters<MirrorDb[K]>) =>
      send(op, args) as ReturnType<MirrorDb[K]>;
  return {
    open: call("open"),
    setupProcessors: call("setupProcessors"),
    apply: call("apply"),
    applyProcessor: call("applyProcessor"),
    discard: call("discard"),
    query: call("query"),
    readEvents: call("readEvents"),
    exportFile: call("exportFile"),
    sizeBytes: call("sizeBytes"),
    close: call("close"),
  };
}

export function workerMirrorDb(worker: WorkerLike): MirrorDb & { terminate(): void } {
  let nextId = 1;
  let dead: string | undefined;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const failAll = (message: string) => {
    dead = message;
    for (const p of pending.values()) p.reject(new Error(message));
    pending.clear();
  };
  worker.addEventListener("message", (event) => {
    const reply = event.data;
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    pending.delete(reply.id);
    if (reply.ok) waiter.resolve(reply.result);
    else waiter.reject(new Error(reply.error));
  });
  worker.addEventListener("error", (event) => failAll(`mirror worker failed: ${event.message ?? "unknown error"}`));
  const db = proxyMirrorDb(
    (op, args) =>
      new Promise((resolve, reject) => {
        if (dead !== undefined) return reject(new Error(dead));
        const id = nextId++;
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, op, args });
      }),
  );
  return {
    ...db,
    terminate() {
      worker.terminate();
      failAll("the mirror worker was stopped");
    },
  };
}
