// The core state and the runtime (connections, subscriptions, breaker bucket, pause), polled live.
import type { StreamTarget } from "./api";
import { useRuntimeState } from "./runtime";

export function StateView({ target }: { target: StreamTarget }) {
  const { data, error } = useRuntimeState(target);
  if (!data) {
    return (
      <section className="state-view" aria-label="Stream state">
        {error ? <p role="alert" data-testid="stream-state-error">{error}</p> : <p data-testid="stream-state">loading…</p>}
      </section>
    );
  }
  const state = data.coreProcessorState;
  const bucket = state.circuitBreaker;
  const connections = Object.entries(data.runtime.connections);
  return (
    <section className="state-view" aria-label="Stream state">
      {error && <p role="alert" data-testid="stream-state-error">{error}</p>}
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
        </dl>
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
      <h3>Core state</h3>
      <pre className="json" data-testid="stream-state">
        {JSON.stringify(state, null, 2)}
      </pre>
    </section>
  );
}
