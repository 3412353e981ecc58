// One Server-Sent Events response of the subscribe route (docs/protocol.md#server-sent-events) as
// a link: each `data:` event is a frame, a comment (the Worker's heartbeat) is a sign of life, the
// `close` event carries the stream's close code, and the end of the body is the close. Read with
// `fetch` streaming, so it works in Node, Workers and browsers, with headers where they are allowed.
import { fromHttpError } from "./errors.js";
import { closeFrom, type Link, type LinkClose, type LinkHandlers } from "./link.js";

/** One dispatched event: its `event:` name (default "message") and its joined `data:` lines. */
export interface ServerSentEvent {
  event: string;
  data: string;
}

/**
 * The event-stream format, fed chunk by chunk: lines end in LF or CRLF, a blank line dispatches,
 * `:` starts a comment. `id:` and `retry:` are not needed here (the subscription keeps its own
 * checkpoint and back-off).
 */
export class EventStreamParser {
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #onEvent: (event: ServerSentEvent) => void;
  #onComment: () => void;

  constructor(onEvent: (event: ServerSentEvent) => void, onComment: () => void) {
    this.#onEvent = onEvent;
    this.#onComment = onComment;
  }

  push(text: string): void {
    // A large batch arrives in many chunks: look for its end only in the new text.
    let from = this.#buffer.length;
    this.#buffer += text;
    let end: number;
    while ((end = this.#buffer.indexOf("\n", from)) >= 0) {
      const raw = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 1);
      from = 0;
      this.#line(raw.endsWith("\r") ? raw.slice(0, -1) : raw);
    }
  }

  #line(line: string): void {
    if (line === "") {
      if (this.#data.length > 0) this.#onEvent({ event: this.#event || "message", data: this.#data.join("\n") });
      this.#event = "";
      this.#data = [];
      return;
    }
    if (line.startsWith(":")) {
      this.#onComment();
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
  }
}

/**
 * Opens the event stream with `open` and reports it through `handlers`. A refusal before the stream
 * starts (any status but 200) is the server's error, fatal when it is a 4xx (retrying cannot help),
 * as for a refused WebSocket upgrade.
 */
export function eventStreamLink(open: (signal: AbortSignal) => Promise<Response>, handlers: LinkHandlers): Link {
  const abort = new AbortController();
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let done = false;
  const stop = () => {
    done = true;
    abort.abort();
    reader?.cancel().catch(() => {});
  };
  const finish = (info: LinkClose) => {
    if (done) return;
    stop();
    handlers.close(info);
  };
  void (async () => {
    let response: Response;
    try {
      response = await open(abort.signal);
    } catch (e) {
      finish({ code: 1006, reason: `event stream failed: ${describe(e)}` });
      return;
    }
    if (done) {
      response.body?.cancel().catch(() => {});
      return;
    }
    const type = response.headers.get("content-type") ?? "";
    if (response.status !== 200 || !response.body || !type.includes("text/event-stream")) {
      const error = fromHttpError(response.status, await response.text().catch(() => ""));
      const reason = `event stream refused with HTTP ${response.status}`;
      const refused = response.status >= 400 && response.status < 500;
      finish(refused ? { code: 1006, reason, fatal: error } : { code: 1006, reason: `${reason}: ${error.message}` });
      return;
    }
    reader = response.body.getReader();
    handlers.open();
    let closed: LinkClose | undefined;
    const parser = new EventStreamParser(
      ({ event, data }) => {
        if (done) return;
        if (event === "close") closed = closeEvent(data);
        else if (event === "message") handlers.message(data);
      },
      () => !done && handlers.alive?.(),
    );
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (done) return;
        if (ended) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
    } catch (e) {
      finish({ code: 1006, reason: `the event stream broke: ${describe(e)}` });
      return;
    }
    finish(closed ?? { code: 1006, reason: "the event stream ended" });
  })();
  return {
    // The stream cannot be written to: pings go unsent, and its heartbeats prove it alive instead.
    send: () => {},
    close: stop,
  };
}

/** The `close` event's `{code, reason}`. */
function closeEvent(data: string): LinkClose {
  try {
    const { code, reason } = JSON.parse(data) as { code?: unknown; reason?: unknown };
    if (typeof code === "number") return closeFrom(code, typeof reason === "string" ? reason : "");
  } catch {
    // not the Worker's close event: treat as an unexplained end
  }
  return { code: 1006, reason: `a close event without a code: ${data.slice(0, 200)}` };
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
}
