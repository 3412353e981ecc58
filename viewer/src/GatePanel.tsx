// Pause gate and circuit breaker: the state from runtimeState, operator events over the API.
import { useState, type FormEvent } from "react";
import { ActionStatus, useAction } from "./action";
import { callApi, type StreamTarget } from "./api";
import { CONFIGURED, PAUSED, RESUMED, type AppendInput } from "./events";
import { refreshRuntimeState, useRuntimeState } from "./runtime";

export function GatePanel({ target }: { target: StreamTarget }) {
  const { data } = useRuntimeState(target);
  const action = useAction(() => refreshRuntimeState(target));
  const state = data?.coreProcessorState;
  // The form shows the stream's breaker until the user edits a field (then their draft, until applied).
  const [draft, setDraft] = useState<{ burst: string; refill: string } | null>(null);
  const burst = draft?.burst ?? (state ? String(state.circuitBreaker.burstCapacity) : "");
  const refill = draft?.refill ?? (state ? String(state.circuitBreaker.refillRatePerMinute) : "");
  const setBurst = (value: string): void => setDraft({ burst: value, refill });
  const setRefill = (value: string): void => setDraft({ burst, refill: value });

  const run = (name: string, event: AppendInput): Promise<void> => action.run(name, () => callApi(target, "append", { event }));

  const configure = (event: FormEvent): void => {
    event.preventDefault();
    void run("configure breaker", {
      type: CONFIGURED,
      payload: { config: { circuitBreaker: { burstCapacity: Number(burst), refillRatePerMinute: Number(refill) } } },
    }).then(() => setDraft(null));
  };

  const gate = state === undefined ? "…" : state.paused ? "Paused" : "Active";
  return (
    <section className="panel" aria-label="Stream gate">
      <h2>Gate</h2>
      <p>
        <span className={`badge gate-${state === undefined ? "unknown" : gate.toLowerCase()}`} data-testid="stream-gate-status">
          {gate}
        </span>{" "}
        {state?.paused && (
          <span data-testid="stream-pause-reason">{state.pauseReason ?? "unknown reason"}</span>
        )}
      </p>
      {state?.paused ? (
        <button type="button" data-testid="stream-resume-button" onClick={() => void run("resume", { type: RESUMED, payload: { reason: "operator resume from the viewer" } })}>
          Resume stream
        </button>
      ) : (
        <button type="button" data-testid="stream-pause-button" disabled={!state} onClick={() => void run("pause", { type: PAUSED, payload: { reason: "operator pause from the viewer" } })}>
          Pause stream
        </button>
      )}
      <form className="breaker-form" aria-label="Circuit breaker" onSubmit={configure}>
        <label>
          Burst capacity
          <input data-testid="circuit-breaker-burst-capacity" type="number" min={1} step={1} required value={burst} onChange={(e) => setBurst(e.target.value)} />
        </label>
        <label>
          Refill per minute
          <input data-testid="circuit-breaker-refill-rate" type="number" min={1} step={1} required value={refill} onChange={(e) => setRefill(e.target.value)} />
        </label>
        <button type="submit" data-testid="circuit-breaker-apply" disabled={!state || state.paused}>
          Configure breaker
        </button>
      </form>
      {state?.config.circuitBreaker && (
        <p className="hint" data-testid="circuit-breaker-config">
          configured: burst {state.config.circuitBreaker.burstCapacity}, refill {state.config.circuitBreaker.refillRatePerMinute}/min
        </p>
      )}
      <ActionStatus action={action} testId="stream-control-action" errorTestId="stream-control-error" />
    </section>
  );
}
