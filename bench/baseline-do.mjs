// Baseline Durable Object for the benchmark: the floor cost of the runtime.
//
// SQLite-backed, it stores the same bytes as `Stream` (the committed event JSON) with one INSERT
// per event into `events("offset" INTEGER PRIMARY KEY, json TEXT)` and reads with one SELECT.
// Nothing else: no validation, no state, no idempotency, no transaction, no side effects.
// One exception, forced by the platform: SQLite here refuses values over ~2 MB (SQLITE_TOOBIG),
// so an event whose JSON may exceed PART_BYTES is stored as 1 MiB BLOB parts in `parts` (its
// `events.json` is NULL). Ordinary (~100-byte) events never take that branch.
// It has the method names the bench driver calls on `Stream` (append, appendBatch, getEvents,
// kill), so the driver code is shared. Not part of the product; never deployed.
import { DurableObject } from "cloudflare:workers";

const PART_BYTES = 1 << 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Baseline extends DurableObject {
  #sql;
  #next;

  constructor(ctx, env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS events ("offset" INTEGER PRIMARY KEY, json TEXT)`);
    this.#sql.exec(
      `CREATE TABLE IF NOT EXISTS parts ("offset" INTEGER NOT NULL, idx INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY ("offset", idx)) WITHOUT ROWID`,
    );
    this.#next = this.#sql.exec(`SELECT COALESCE(MAX("offset"), 0) AS m FROM events`).one().m + 1;
  }

  #insert(event) {
    // Same key order as a committed event (docs/protocol.md#committed-event): input fields, then offset, createdAt.
    const committed = { ...event, offset: this.#next, createdAt: new Date().toISOString() };
    const json = JSON.stringify(committed);
    if (json.length * 3 <= PART_BYTES) {
      // At most 3 UTF-8 bytes per UTF-16 unit: certainly under the cap, no encoding needed.
      this.#sql.exec(`INSERT INTO events ("offset", json) VALUES (?, ?)`, this.#next, json);
    } else {
      const bytes = encoder.encode(json);
      this.#sql.exec(`INSERT INTO events ("offset", json) VALUES (?, NULL)`, this.#next);
      for (let idx = 0, at = 0; at < bytes.length; idx++, at += PART_BYTES) {
        this.#sql.exec(
          `INSERT INTO parts ("offset", idx, bytes) VALUES (?, ?, ?)`,
          this.#next,
          idx,
          bytes.subarray(at, at + PART_BYTES),
        );
      }
    }
    this.#next += 1;
    return committed;
  }

  append({ event }) {
    return this.#insert(event);
  }

  appendBatch({ events }) {
    return events.map((event) => this.#insert(event));
  }

  getEvents({ afterOffset = 0, limit = 100 } = {}) {
    const rows = this.#sql
      .exec(`SELECT "offset", json FROM events WHERE "offset" > ? ORDER BY "offset" LIMIT ?`, afterOffset, limit)
      .toArray();
    return JSON.parse("[" + rows.map((r) => r.json ?? this.#joinParts(r.offset)).join(",") + "]");
  }

  #joinParts(offset) {
    const parts = this.#sql
      .exec(`SELECT bytes FROM parts WHERE "offset" = ? ORDER BY idx`, offset)
      .toArray()
      .map((r) => new Uint8Array(r.bytes));
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return decoder.decode(all);
  }

  kill() {
    // Like Stream.kill: reply first, abort on the next turn; the next call constructs anew.
    setTimeout(() => this.ctx.abort("kill requested"), 0);
  }
}

export default {
  fetch() {
    return new Response("baseline: DO RPC only", { status: 404 });
  },
};
