// Tabs of one stream talk over a BroadcastChannel: the writer announces changes and its status;
// followers read the writer's mirror through requests (a SQLite file in OPFS has one writer
// connection at a time), so every tab sees the same rows. Notices only wake queries up — the rows
// always come from SQLite.
import type { MirrorOp } from "./protocol.js";
import type { StreamSnapshot } from "./types.js";

/** What followers copy from the writer's snapshot. */
export type LeaderStatus = Omit<StreamSnapshot, "namespace" | "path" | "role">;

export type ChannelMessage =
  | { kind: "changed" }
  | { kind: "status"; status: LeaderStatus }
  | { kind: "hello" }
  | { kind: "request"; from: string; id: number; op: FollowerOp; args: unknown[] }
  | { kind: "response"; to: string; id: number; ok: true; result: unknown }
  | { kind: "response"; to: string; id: number; ok: false; error: string };

/** What a follower may ask of the writer. */
export type FollowerOp = Extract<MirrorOp, "query" | "readEvents" | "exportFile" | "sizeBytes"> | "clearLocal";

export interface ChannelLike {
  postMessage(message: ChannelMessage): void;
  addEventListener(type: "message", listener: (event: { data: ChannelMessage }) => void): void;
  close(): void;
}

/** How long a follower waits for the writer to answer a request. */
export const FOLLOWER_REQUEST_TIMEOUT_MS = 10_000;

/** The follower side: requests to the writer, matched by id. */
export class FollowerLink {
  #channel: ChannelLike;
  #tabId: string;
  #nextId = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();

  constructor(channel: ChannelLike, tabId: string) {
    this.#channel = channel;
    this.#tabId = tabId;
  }

  request(op: FollowerOp, args: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the writer tab did not answer ${op} within ${FOLLOWER_REQUEST_TIMEOUT_MS} ms`));
      }, FOLLOWER_REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      this.#channel.postMessage({ kind: "request", from: this.#tabId, id, op, args });
    });
  }

  /** A response on the channel; ignores other tabs' responses. */
  receive(message: Extract<ChannelMessage, { kind: "response" }>): void {
    if (message.to !== this.#tabId) return;
    const waiter = this.#pending.get(message.id);
    if (!waiter) return;
    this.#pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new Error(message.error));
  }

  /** Fails every open request (this tab became the writer, or closed). */
  abandon(reason: string): void {
    for (const w of this.#pending.values()) {
      clearTimeout(w.timer);
      w.reject(new Error(reason));
    }
    this.#pending.clear();
  }
}
