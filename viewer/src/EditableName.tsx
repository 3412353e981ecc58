// A stream path or namespace shown as text and edited in place: Enter submits, Escape cancels.
import { useState, type KeyboardEvent } from "react";

interface Props {
  /** Test id prefix and wording: "stream-path" / "path", "stream-namespace" / "namespace". */
  testId: string;
  label: string;
  value: string;
  /** Why a value is refused, or null. */
  problem: (value: string) => string | null;
  onSubmit: (value: string) => void;
}

export function EditableName({ testId, label, value, problem, onSubmit }: Props) {
  const [draft, setDraft] = useState<string | null>(null);
  if (draft === null) {
    return (
      <div className="editable-name">
        <code data-testid={testId} title={value}>
          {value}
        </code>
        <button type="button" className="link-button" data-testid={`${testId}-change`} aria-label={`Edit ${label}`} onClick={() => setDraft(value)}>
          edit
        </button>
      </div>
    );
  }
  const trimmed = draft.trim();
  const refusal = problem(trimmed);
  const submit = (): void => {
    if (refusal !== null) return;
    setDraft(null);
    if (trimmed !== value) onSubmit(trimmed);
  };
  const onKeyDown = (event: KeyboardEvent<HTMLInputElement>): void => {
    if (event.key === "Enter") {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      setDraft(null);
    }
  };
  return (
    <div className="editable-name editing">
      <input
        autoFocus
        data-testid={`${testId}-input`}
        aria-label={label}
        aria-invalid={refusal !== null}
        value={draft}
        spellCheck={false}
        onChange={(event) => setDraft(event.target.value)}
        onKeyDown={onKeyDown}
      />
      <button type="button" data-testid={`${testId}-go`} disabled={refusal !== null || trimmed === value} onClick={submit}>
        Go
      </button>
      <button type="button" data-testid={`${testId}-cancel`} onClick={() => setDraft(null)}>
        Cancel
      </button>
      {refusal !== null && trimmed !== "" && (
        <small className="field-error" role="alert">
          {label} {refusal}
        </small>
      )}
    </div>
  );
}
