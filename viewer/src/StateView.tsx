// The core state and the runtime (connections, redials, storage, breaker bucket, pause), polled
// live; or, with `at`, the core state right after that offset (getState({atOffset})).
import { useEffect, useState, type FormEvent } from "react";
import { callApi, errorText, type StreamTarget } from "./api";
import { formatBytes } from "./format";
import { useRuntimeState, type CoreState, type RuntimeState } from "./runtime";

interface Props {
  target: StreamTarget;
  /** Show the state as of this offset instead of the current one. */
  at: number | null;
  onAtChange: (at: number | null) => void;
}

export function StateView({ target, at, onAtChange }: Props) {
  const { data, error } = useRuntimeState(target);
  return (
    <section className="state-view" aria-label="Stream state">
      {error && (
        <p role="alert" className="error" data-testid="stream-state-error">
          {error}
        </p>
      )}
      {data ? <RuntimeCards data={data} /> : !error && <p className="hint">loading…</p>}
      <AtOffsetForm at={at} maxOffset={data?.coreProcessorState.maxOffset ?? null} onAtChange={onAtChange} />
      {at === null ? (
        data && <CoreStateJson state={data.coreProcessorState} />
      ) : (
        <StateAtOffset key={`${target.namespace}:${target.path}:${at}`} target={target} at={at} />
      )}
    </section>
  );
}

function RuntimeCards({ data }: { data: RuntimeState }) {
  const state = data.coreProcessorState;
  const bucket = state.circuitBreaker;
  const connections = Object.entries(data.runtime.connections);
  const redials = Object.entries(data.runtime.redial ?? {});
  const storage = data.runtime.storage;
  return (
    <>
      <div className="state-cards">
        <dl className="card" aria-label="Gate">
          <dt>paused</dt>
          <dd data-testid="state-paused">{state.paused ? "yes" : "no"}</dd>
          <dt>reason</dt>
          <dd data-testid="state-pause-reason">{state.pauseReason ?? "—"}</dd>
        </dl>
        <dl className="card" aria-label="Circuit breaker bucket">
          <dt>tokens</dt>
          <dd data-testid="state-breaker-tokens">{bucket.availableTokens.toFixed(2)}</dd>
          <dt>burst</dt>
          <dd>{bucket.burstCapacity}</dd>
          <dt>refill / min</dt>
          <dd>{bucket.refillRatePerMinute}</dd>
        </dl>
        <dl className="card" aria-label="Counts">
          <dt>events</dt>
          <dd>{state.eventCount}</dd>
          <dt>max offset</dt>
          <dd>{state.maxOffset}</dd>
          <dt>subscriptions</dt>
          <dd>{Object.keys(state.subscriptionsByKey).length}</dd>
          <dt>children</dt>
          <dd>{typeof state.childCount === "number" ? state.childCount : state.childPaths.length}</dd>
        </dl>
        {storage && (
          <dl className="card" aria-label="Storage" data-testid="state-storage">
            <dt>first kept offset</dt>
            <dd data-testid="storage-first-offset">{storage.firstOffset}</dd>
            <dt>in SQLite</dt>
            <dd data-testid="storage-hot">
              {storage.hotEvents} events, {formatBytes(storage.hotBytes)}
            </dd>
            <dt>archived</dt>
            <dd data-testid="storage-archived">
              {storage.archivedEvents} events in {storage.archivedSegments} {storage.archivedSegments === 1 ? "segment" : "segments"},{" "}
              {formatBytes(storage.archivedBytes)}
            </dd>
          </dl>
        )}
      </div>
      <h3>Connections ({connections.length})</h3>
      <table className="connections" data-testid="state-connections">
        <thead>
          <tr>
            <th>key</th>
            <th>direction</th>
            <th>cursor</th>
            <th>batches</th>
            <th>events sent</th>
          </tr>
        </thead>
        <tbody>
          {connections.map(([key, connection]) => (
            <tr key={key}>
              <td>
                <code>{key}</code>
              </td>
              <td>{String(connection.direction ?? "")}</td>
              <td>{String(connection.cursor ?? "")}</td>
              <td>{String(connection.batchesSent ?? "")}</td>
              <td>{String(connection.eventsSent ?? "")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {redials.length > 0 && (
        <>
          <h3>Failing subscriptions ({redials.length})</h3>
          <table className="connections" data-testid="state-redial">
            <thead>
              <tr>
                <th>key</th>
                <th>failures</th>
                <th>next try</th>
                <th>last failure</th>
              </tr>
            </thead>
            <tbody>
              {redials.map(([key, redial]) => (
                <tr key={key} data-testid="state-redial-row" data-key={key}>
                  <td>
                    <code>{key}</code>
                  </td>
                  <td>{redial.failures}</td>
                  <td data-testid="state-redial-next">{redial.stopped ? "stopped until configured again" : redial.retryAt ? `${redial.retryAt.slice(11, 19)} UTC` : "—"}</td>
                  <td className="error" data-testid="state-redial-cause">
                    {redial.lastError ? `${redial.lastError.code}: ${redial.lastError.message}` : "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}

function AtOffsetForm({ at, maxOffset, onAtChange }: { at: number | null; maxOffset: number | null; onAtChange: (at: number | null) => void }) {
  const [draft, setDraft] = useState(at === null ? "" : String(at));
  useEffect(() => setDraft(at === null ? "" : String(at)), [at]);
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    onAtChange(draft.trim() === "" ? null : Number(draft));
  };
  return (
    <form className="at-offset" aria-label="State at an offset" onSubmit={submit}>
      <h3>{at === null ? "Core state (current)" : `Core state right after offset ${at}`}</h3>
      <label>
        at offset
        <input
          data-testid="state-at-offset"
          type="number"
          min={0}
          max={maxOffset ?? undefined}
          step={1}
          placeholder="current"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
        />
      </label>
      <button type="submit" data-testid="state-at-offset-show">
        Show
      </button>
      {at !== null && (
        <button type="button" data-testid="state-at-offset-current" onClick={() => onAtChange(null)}>
          Current state
        </button>
      )}
    </form>
  );
}

function CoreStateJson({ state }: { state: CoreState }) {
  return (
    <pre className="json" data-testid="stream-state">
      {JSON.stringify(state, null, 2)}
    </pre>
  );
}

/** The state as of `at`, fetched once: a past state never changes. */
function StateAtOffset({ target, at }: { target: StreamTarget; at: number }) {
  const [result, setResult] = useState<{ state: CoreState } | { error: string } | null>(null);
  useEffect(() => {
    let live = true;
    callApi<CoreState>(target, "getState", { atOffset: at }).then(
      (state) => live && setResult({ state }),
      (error: unknown) => live && setResult({ error: errorText(error) }),
    );
    return () => {
      live = false;
    };
  }, [target.namespace, target.path, at]);
  if (result === null) return <p className="hint">loading…</p>;
  if ("error" in result) {
    return (
      <p role="alert" className="error" data-testid="stream-state-error">
        {result.error}
      </p>
    );
  }
  return <CoreStateJson state={result.state} />;
}
