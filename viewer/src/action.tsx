// One operator action at a time, with its outcome shown as "<name>: done" or the error with its code.
import { useState } from "react";
import { errorText } from "./api";

export interface Action {
  /** "" before the first run, "<name>…" while running, then "<name>: done" or "<name>: failed". */
  label: string;
  error: string | null;
  busy: boolean;
  run(name: string, work: () => Promise<unknown>): Promise<void>;
}

export function useAction(after?: () => void): Action {
  const [label, setLabel] = useState("");
  const [error, setError] = useState<string | null>(null);
  return {
    label,
    error,
    busy: label.endsWith("…"),
    async run(name, work) {
      setLabel(`${name}…`);
      setError(null);
      try {
        await work();
        setLabel(`${name}: done`);
      } catch (e) {
        setLabel(`${name}: failed`);
        setError(errorText(e));
      }
      after?.();
    },
  };
}

/** The action's outcome; nothing before the first run. */
export function ActionStatus({ action, testId, errorTestId }: { action: Action; testId: string; errorTestId: string }) {
  if (action.label === "") return null;
  return (
    <>
      <output data-testid={testId}>{action.label}</output>
      {action.error && (
        <p role="alert" className="error" data-testid={errorTestId}>
          {action.error}
        </p>
      )}
    </>
  );
}
