import { createStreamsClient } from "@streams/client";
import WebSocket from "ws"; // Node 20 has no global WebSocket; Node 22 and browsers can omit this

const streams = createStreamsClient({
  baseUrl: process.env.STREAMS_URL ?? "http://127.0.0.1:8787",
  token: process.env.STREAMS_TOKEN, // when the Worker requires one
  WebSocket,
});

await streams.append("/shop/orders", { type: "app/order-placed", payload: { id: 1 }, idempotencyKey: "order-1" });

// Follow the stream from a checkpoint: every matching event exactly once, in order, across reconnects.
let checkpoint = 0; // store it with your own state; resume with subscribe({afterOffset: checkpoint})
const stop = new AbortController();
for await (const item of streams.subscribe("/shop/orders", { afterOffset: checkpoint, eventTypes: ["app/order-placed"], signal: stop.signal })) {
  if (item.type === "reset") {
    checkpoint = 0; // the stream was reset: drop what you derived from it; its new life follows
    continue;
  }
  for (const event of item.events) console.log(event.offset, event.type, JSON.stringify(event.payload));
  checkpoint = item.throughOffset;
  if (item.events.length > 0) stop.abort(); // a real consumer keeps going
}
