// Connection and mirror: status, writer/follower role, local vs server count, storage, download,
// clear; kill and reset with the admin token.
import type { StreamSnapshot, StreamStore } from "@streams/client/browser";
import { useAccess } from "./access";
import { ActionStatus, useAction, type Action } from "./action";
import { callApi, type StreamTarget } from "./api";
import { formatBytes } from "./format";
import { holdPolling, refreshRuntimeState } from "./runtime";

function downloadName(snapshot: StreamSnapshot): string {
  const slug = snapshot.path === "/" ? "root" : snapshot.path.slice(1).replace(/[^A-Za-z0-9_.~-]+/g, "_");
  return `${snapshot.namespace}__${slug}.sqlite3`;
}

export function MirrorPanel({ store, snapshot }: { store: StreamStore; snapshot: StreamSnapshot }) {
  const { adminToken } = useAccess();
  const target = { namespace: snapshot.namespace, path: snapshot.path };
  const action = useAction(() => refreshRuntimeState(target));
  const busy = action.busy;

  const download = async (): Promise<void> => {
    const blob = await store.download();
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = downloadName(snapshot);
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  return (
    <section className="panel" aria-label="Connection">
      <h2>Connection</h2>
      <dl className="facts">
        <dt>status</dt>
        <dd>
          <span className={`badge status-${snapshot.status}`} data-testid="stream-status">
            {snapshot.status}
          </span>
        </dd>
        <dt>role</dt>
        <dd data-testid="subscription-status">{snapshot.role === "leader" ? "leader (writer)" : snapshot.role}</dd>
        <dt>local / server</dt>
        <dd>
          <span data-testid="event-count">{snapshot.localCount}</span> / <span data-testid="server-max-offset">{snapshot.serverMaxOffset ?? "…"}</span>
        </dd>
        <dt>storage</dt>
        <dd data-testid="storage-kind">
          {snapshot.storage.kind}
          {snapshot.storage.persisted ? ", persisted" : ""}, {formatBytes(snapshot.storage.bytes)}
        </dd>
      </dl>
      {snapshot.error !== null && (
        <p role="alert" className="error" data-testid="stream-error">
          {snapshot.error}
        </p>
      )}
      <div className="buttons">
        <button type="button" data-testid="mirror-download" disabled={busy} onClick={() => void action.run("download", download)}>
          Download SQLite
        </button>
        <button type="button" data-testid="mirror-clear" disabled={busy} onClick={() => void action.run("clear local copy", () => store.clearLocal())}>
          Clear local copy
        </button>
        <AdminButton
          name="kill"
          label="Kill"
          title="Abort the stream's incarnation (storage is kept)"
          action={action}
          target={target}
          adminToken={adminToken}
        />
        <AdminButton
          name="reset"
          label="Reset"
          title="Delete every event: the stream starts a new life"
          confirmation={`Reset ${snapshot.path}? Every event is deleted.`}
          action={action}
          target={target}
          adminToken={adminToken}
        />
      </div>
      <ActionStatus action={action} testId="mirror-action" errorTestId="mirror-action-error" />
    </section>
  );
}

interface AdminButtonProps {
  name: "kill" | "reset";
  label: string;
  title: string;
  confirmation?: string;
  action: Action;
  target: StreamTarget;
  adminToken: string | null;
}

/** Kill or reset over the API with the admin token; disabled until one is set. */
function AdminButton({ name, label, title, confirmation, action, target, adminToken }: AdminButtonProps) {
  return (
    <button
      type="button"
      data-testid={`stream-${name}`}
      disabled={action.busy || !adminToken}
      title={adminToken ? title : "Needs the admin token (Access)"}
      onClick={() => {
        if (confirmation === undefined || confirm(confirmation)) {
          void action.run(name, () => holdPolling(target, () => callApi(target, name, {}, adminToken)));
        }
      }}
    >
      {label}
    </button>
  );
}
