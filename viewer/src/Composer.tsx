// Append one event typed as JSON; the outcome reads "appended at offset N" or the error with its code.
import { useState } from "react";
import { errorText } from "./api";
import type { AppendInput } from "@streams/client/browser";

const EXAMPLE = JSON.stringify({ type: "app/manual-event", payload: { message: "hello from the viewer" } }, null, 2);

type Outcome = { kind: "idle" } | { kind: "appending" } | { kind: "appended"; offset: number } | { kind: "error"; message: string };

function outcomeText(outcome: Outcome): string {
  switch (outcome.kind) {
    case "idle":
      return "";
    case "appending":
      return "appending…";
    case "appended":
      return `appended at offset ${outcome.offset}`;
    case "error":
      return `error: ${outcome.message}`;
  }
}

/** `append` writes one event: the mirror's store on a live stream, the HTTP API before the stream exists. */
export function Composer({ append }: { append: (event: AppendInput) => Promise<{ offset: number }> }) {
  const [text, setText] = useState(EXAMPLE);
  const [outcome, setOutcome] = useState<Outcome>({ kind: "idle" });
  const run = async (): Promise<void> => {
    let event: AppendInput;
    try {
      event = JSON.parse(text) as AppendInput;
    } catch (error) {
      setOutcome({ kind: "error", message: `invalid JSON: ${(error as Error).message}` });
      return;
    }
    setOutcome({ kind: "appending" });
    try {
      const committed = await append(event);
      setOutcome({ kind: "appended", offset: Number(committed.offset) });
    } catch (error) {
      setOutcome({ kind: "error", message: errorText(error) });
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
          if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) void run();
        }}
      />
      <div className="buttons">
        <button type="button" className="primary" data-testid="composer-append" disabled={outcome.kind === "appending"} onClick={() => void run()}>
          Append event
        </button>
        {outcome.kind !== "idle" && (
          <output data-testid="composer-state" className={outcome.kind === "error" ? "error" : undefined} role={outcome.kind === "error" ? "alert" : undefined}>
            {outcomeText(outcome)}
          </output>
        )}
      </div>
    </section>
  );
}
