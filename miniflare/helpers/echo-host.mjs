// Placeholder for the EchoHost test fixture (STREAM.md §14). The real fixture replaces this.
import { DurableObject } from "cloudflare:workers";

export class EchoHost extends DurableObject {}

export default {
  async fetch() {
    return new Response("echo worker", { status: 404 });
  },
};
