// The API token (asked for when the API answers 401) and the admin token for reset and kill.
import { useState, type FormEvent } from "react";
import { allowedOperations, describeToken, setAdminToken, setApiToken, useAccess } from "./access";

function TokenForm({ label, testId, onSave }: { label: string; testId: string; onSave: (token: string) => void }) {
  const [draft, setDraft] = useState("");
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    if (draft.trim()) onSave(draft);
    setDraft("");
  };
  return (
    <form className="token-form" onSubmit={submit}>
      <input type="password" autoComplete="off" aria-label={label} data-testid={`${testId}-input`} value={draft} onChange={(e) => setDraft(e.target.value)} />
      <button type="submit" data-testid={`${testId}-save`}>
        Use token
      </button>
    </form>
  );
}

export function TokenScope({ token }: { token: string }) {
  const scope = describeToken(token);
  return (
    <div data-testid="token-scope">
      {scope.kind === "scoped" ? (
        <p>
          Scoped token for namespace <code>{scope.namespace ?? "?"}</code>, paths{" "}
          <code>{(scope.paths ?? []).join(", ") || "?"}</code>
          {scope.expiresAt && <>, expires {scope.expiresAt.toLocaleString()}</>}.
        </p>
      ) : (
        <p>Opaque token (the master API token).</p>
      )}
      <p data-testid="token-allows">Allows: {allowedOperations(scope)}.</p>
    </div>
  );
}

/** Shown over the page when the API needs a token and none (or a refused one) is set. */
export function TokenPrompt() {
  const { apiToken } = useAccess();
  return (
    <div className="token-prompt" role="dialog" aria-modal="true" aria-label="Access token required" data-testid="token-prompt">
      <h2>This stream needs an access token</h2>
      <p>
        {apiToken ? "The API refused the token in use. " : ""}Paste a scoped token (or the API token). It stays in this
        tab's session storage and is never put in the URL.
      </p>
      {apiToken && <TokenScope token={apiToken} />}
      <TokenForm label="Access token" testId="token" onSave={setApiToken} />
    </div>
  );
}

export function AccessPanel() {
  const { apiToken, adminToken } = useAccess();
  return (
    <section className="panel" aria-label="Access">
      <h2>Access</h2>
      {apiToken ? (
        <>
          <TokenScope token={apiToken} />
          <button type="button" onClick={() => setApiToken(null)}>
            Forget token
          </button>
        </>
      ) : (
        <p className="hint">No API token: requests go without one.</p>
      )}
      <details>
        <summary>{adminToken ? "Admin token set (reset, kill)" : "Admin token (for reset and kill)"}</summary>
        {adminToken ? (
          <button type="button" data-testid="admin-token-forget" onClick={() => setAdminToken(null)}>
            Forget admin token
          </button>
        ) : (
          <TokenForm label="Admin token" testId="admin-token" onSave={setAdminToken} />
        )}
      </details>
    </section>
  );
}
