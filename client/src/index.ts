// @streams/client: a TypeScript client for the streams Worker, over HTTP or a service binding.
export { createStreamsClient, DEFAULT_NAMESPACE } from "./client.js";
export type { BindingClientOptions, EventsOptions, HttpClientOptions, StreamRef, StreamsClient, StreamsClientOptions } from "./client.js";
export { StreamError, isStreamError, fromHttpError, fromRpcError } from "./errors.js";
export type { ClientErrorCode, ErrorCode } from "./errors.js";
export { mintToken, MAX_TOKEN_BYTES } from "./token.js";
export type { MintTokenOptions, TokenOp } from "./token.js";
export { Subscription } from "./subscribe.js";
export type { ResetItem, SubscribeOptions, SubscriptionItem } from "./subscribe.js";
// The reconnect core, for runtimes that manage their own connection (the browser runtime).
export { Reconnector, backoffDelay, DEFAULT_TIMING, DEFAULT_CONNECT_WAIT_MS } from "./reconnect.js";
export type { ConnectionState, ConnectionStatus, ReconnectTiming, ReconnectorOptions } from "./reconnect.js";
export { socketLink, closeQuietly, CLOSE_REPLACED, CLOSE_TOKEN_EXPIRED } from "./link.js";
export { eventStreamLink } from "./event-stream.js";
export type { Link, LinkClose, LinkHandlers, WebSocketConstructor, WebSocketLike } from "./link.js";
export { httpTransport, bindingTransport } from "./transport.js";
export type { MethodName, SocketParams, StreamsBinding, SubscribeTransport, Target, TokenSource, Transport } from "./transport.js";
export type * from "./types.js";
