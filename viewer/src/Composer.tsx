// Append one event typed as JSON; an error is shown with its code.
import type { AppendInput, StreamStore } from "@streams/client/browser";
import { useState } from "react";
import { errorText } from "./api";

const EXAMPLE = JSON.stringify({ type: "app/manual-event", payload: { message: "hello from the viewer" } }, null, 2);

export function Composer({ store }: { store: StreamStore }) {
  const [text, setText] = useState(EXAMPLE);
  const [state, setState] = useState<"idle" | "appending" | "appended" | "error">("idle");
  const [message, setMessage] = useState<string | null>(null);
  const append = async (): Promise<void> => {
    let event: AppendInput;
    try {
      event = JSON.parse(text) as AppendInput;
    } catch (error) {
      setState("error");
      setMessage(`invalid JSON: ${(error as Error).message}`);
      return;
    }
    setState("appending");
    setMessage(null);
    try {
      const committed = await store.append(event);
      setState("appended");
      setMessage(`appended at offset ${committed.offset}`);
    } catch (error) {
      setState("error");
      setMessage(errorText(error));
    }
  };
  return (
    <section className="panel composer" aria-label="Append an event" data-testid="stream-composer">
      <h2>Append</h2>
      <textarea
        data-testid="composer-textarea"
        aria-label="Event JSON"
        rows={6}
        spellCheck={false}
        value={text}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) void append();
        }}
      />
      <button type="button" data-testid="composer-append" disabled={state === "appending"} onClick={() => void append()}>
        Append event
      </button>
      <output data-testid="composer-state" className={state === "error" ? "error" : undefined}>
        {state}
        {message !== null && `: ${message}`}
      </output>
    </section>
  );
}
