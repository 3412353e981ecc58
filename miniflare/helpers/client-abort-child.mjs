// Child process for the "abort leaves nothing behind" test: subscriptions stopped in each state
// (open via abort, open via return(), connecting, back-off); then it only returns. If any
// timer or socket were left, the process would not exit and the parent would see a hang.
// argv: <baseUrl> <token> [websocket|sse]
import WebSocket from "ws";
import { createStreamsClient } from "../../client/dist/index.js";

const [url, token, transport = "websocket"] = process.argv.slice(2);
const client = createStreamsClient({ baseUrl: url, token, WebSocket });
const path = `/abort-${process.pid}`;
await client.append(path, { type: "app/x" });

// 1. Open, stopped by an AbortSignal while next() is pending.
const controller = new AbortController();
const aborted = client.subscribe(path, { transport, afterOffset: 0, signal: controller.signal });
let received = 0;
for await (const item of aborted) {
  received += item.events?.length ?? 0;
  setTimeout(() => controller.abort(), 50); // abort while the loop waits for the next batch
}

// 2. Open, stopped by break (return()).
const broken = client.subscribe(path, { transport, afterOffset: 0 });
for await (const item of broken) {
  received += item.events?.length ?? 0;
  break;
}

// 3. Connecting (never answered: nothing listens on port 9), stopped by close().
const nowhere = createStreamsClient({ baseUrl: "http://127.0.0.1:9", WebSocket });
const connecting = nowhere.subscribe(path, { transport, timing: { connectTimeoutMs: 60_000 } });
const waiter = connecting.whenConnected(60_000).catch((e) => e.code);
await connecting.close();

// 4. In back-off (the refused connect scheduled a long retry), stopped by abort.
const backoffAbort = new AbortController();
const backingOff = nowhere.subscribe(path, { transport, signal: backoffAbort.signal, timing: { backoffBaseMs: 60_000 } });
while (backingOff.status().state !== "backoff") await new Promise((r) => setTimeout(r, 5));
backoffAbort.abort();

const states = [aborted, broken, connecting, backingOff].map((s) => s.status().state);
console.log(JSON.stringify({ states, received, waiter: await waiter }));
