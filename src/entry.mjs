// The platform's wrapper, and the only JavaScript in the request path.
// worker-build exports the Rust `Stream` inside a Proxy that does not extend
// DurableObject, so the runtime would refuse JS RPC on it. This class extends
// DurableObject, builds the Rust object, and forwards exactly the allowlisted
// methods (streams_core::rpc::StreamMethod) plus the runtime's handlers. It never decides.
import { DurableObject } from "cloudflare:workers";
import entrypoint, { Stream as RustStream, Directory as RustDirectory } from "../build/index.js";

export class Stream extends DurableObject {
  #inner;

  constructor(ctx, env) {
    super(ctx, env);
    this.#inner = new RustStream(ctx, env);
  }

  fetch(request) { return this.#inner.fetch(request); }
  alarm() { return this.#inner.alarm(); }
  webSocketMessage(ws, message) { return this.#inner.webSocketMessage(ws, message); }
  webSocketClose(ws, code, reason, wasClean) { return this.#inner.webSocketClose(ws, code, reason, wasClean); }
  webSocketError(ws, error) { return this.#inner.webSocketError(ws, error); }

  append(arg) { return this.#inner.append(arg); }
  appendBatch(arg) { return this.#inner.appendBatch(arg); }
  getEvent(arg) { return this.#inner.getEvent(arg); }
  getEvents(arg) { return this.#inner.getEvents(arg); }
  getState(arg) { return this.#inner.getState(arg); }
  runtimeState(arg) { return this.#inner.runtimeState(arg); }
  reduce(arg) { return this.#inner.reduce(arg); }
  reset(arg) { return this.#inner.reset(arg); }
  kill(arg) { return this.#inner.kill(arg); }
  deleteStream(arg) { return this.#inner.deleteStream(arg); }
  runIdleTeardownNow(arg) { return this.#inner.runIdleTeardownNow(arg); }
  simulateHibernation(arg) { return this.#inner.simulateHibernation(arg); }
  memoryUsage(arg) { return this.#inner.memoryUsage(arg); }
  runArchiveNow(arg) { return this.#inner.runArchiveNow(arg); }
  pendingWork(arg) { return this.#inner.pendingWork(arg); }
  notifyChildStreamCreated(arg) { return this.#inner.notifyChildStreamCreated(arg); }
}

// One shard of the stream directory (docs/architecture.md#the-directory).
export class Directory extends DurableObject {
  #inner;

  constructor(ctx, env) {
    super(ctx, env);
    this.#inner = new RustDirectory(ctx, env);
  }

  fetch(request) { return this.#inner.fetch(request); }
  record(arg) { return this.#inner.record(arg); }
  remove(arg) { return this.#inner.remove(arg); }
  list(arg) { return this.#inner.list(arg); }
}

export default entrypoint;
