// `@streams/client/processor`: stream processors with exactly-once state in a Durable Object.
export { defineProcessor } from "./define.js";
export type { OnEventContext, OnTrimmed, Processor, ProcessorOptions } from "./define.js";
export { ProcessorHost, StreamUnavailableError } from "./host.js";
export type { BatchOutcome, ProcessorFailure, ProcessorHostOptions, ProcessorStatus } from "./host.js";
export type { ProcessorHostContext, ProcessorKey } from "./store.js";
export type { Announcement, BatchArgs, DialArgs, DialReply, StreamsAppender } from "./wire.js";
