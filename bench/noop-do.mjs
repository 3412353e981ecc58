// No-op Durable Object for bench/profile.mjs: `append({event})` (and `appendBatch`) answers what a committed event
// looks like (the input plus offset and createdAt) and stores nothing, so timing it from the
// driver gives the floor of one DO RPC call with an append-sized argument and result.
// Not part of the product; never deployed.
import { DurableObject } from "cloudflare:workers";

export class Noop extends DurableObject {
  #next = 1;

  append({ event }) {
    return { ...event, offset: this.#next++, createdAt: new Date().toISOString() };
  }

  appendBatch({ events }) {
    const createdAt = new Date().toISOString();
    return events.map((event) => ({ ...event, offset: this.#next++, createdAt }));
  }

  getEvents() {
    return [];
  }
}
