// Types for callers of the `streams` Worker. They are the `@streams/client` package's own
// wire types (client/src/types.ts), re-exported for code that binds the Worker directly:
// bind it with `services = [{ binding = "STREAMS", service = "streams" }]` and declare
// `STREAMS: StreamsService` in your Env.
export type * from "../client/src/types.js";
