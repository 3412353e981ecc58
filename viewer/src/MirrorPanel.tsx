// Connection and mirror: status, writer/follower role, local vs server count, storage, download,
// clear; kill and reset with the admin token.
import type { StreamSnapshot, StreamStore } from "@streams/client/browser";
import { useState } from "react";
import { useAccess } from "./access";
import { callApi, errorText } from "./api";
import { refreshRuntimeState } from "./runtime";

function formatBytes(bytes: number | null): string {
  if (bytes === null) return "…";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function downloadName(snapshot: StreamSnapshot): string {
  const slug = snapshot.path === "/" ? "root" : snapshot.path.slice(1).replace(/[^A-Za-z0-9_.~-]+/g, "_");
  return `${snapshot.namespace}__${slug}.sqlite3`;
}

export function MirrorPanel({ store, snapshot }: { store: StreamStore; snapshot: StreamSnapshot }) {
  const { adminToken } = useAccess();
  const [action, setAction] = useState("idle");
  const [error, setError] = useState<string | null>(null);
  const busy = action.endsWith("…");
  const target = { namespace: snapshot.namespace, path: snapshot.path };

  const run = async (name: string, work: () => Promise<void>): Promise<void> => {
    setAction(`${name}…`);
    setError(null);
    try {
      await work();
      setAction(`${name}: done`);
    } catch (e) {
      setAction(`${name}: failed`);
      setError(errorText(e));
    }
    refreshRuntimeState(target);
  };

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
        <button type="button" data-testid="mirror-download" disabled={busy} onClick={() => void run("download", download)}>
          Download SQLite
        </button>
        <button type="button" data-testid="mirror-clear" disabled={busy} onClick={() => void run("clear local copy", () => store.clearLocal())}>
          Clear local copy
        </button>
        <button
          type="button"
          data-testid="stream-kill"
          disabled={busy || !adminToken}
          title={adminToken ? "Abort the stream's incarnation (storage is kept)" : "Needs the admin token (Access)"}
          onClick={() => void run("kill", async () => void (await callApi(target, "kill", {}, adminToken)))}
        >
          Kill
        </button>
        <button
          type="button"
          data-testid="stream-reset"
          disabled={busy || !adminToken}
          title={adminToken ? "Delete every event: the stream starts a new life" : "Needs the admin token (Access)"}
          onClick={() => {
            if (confirm(`Reset ${snapshot.path}? Every event is deleted.`)) void run("reset", async () => void (await callApi(target, "reset", {}, adminToken)));
          }}
        >
          Reset
        </button>
      </div>
      <output data-testid="mirror-action">{action}</output>
      {error && (
        <p role="alert" className="error" data-testid="mirror-action-error">
          {error}
        </p>
      )}
    </section>
  );
}
