// Insert N generated events over S seconds in batches of B (to watch the viewer under load).
import type { AppendInput, StreamStore } from "@streams/client/browser";
import { useState, type FormEvent } from "react";
import { errorText } from "./api";
import { counted } from "./events";

const LOAD_TYPES = ["app/load/click", "app/load/view", "app/load/order", "app/load/ping", "app/load/error"];

function loadEvent(i: number): AppendInput {
  const type = LOAD_TYPES[i % LOAD_TYPES.length] ?? "app/load/ping";
  return { type, payload: { n: i, at: Date.now(), note: i % 7 === 0 ? "every seventh" : null } };
}

export function LoadTool({ store }: { store: StreamStore }) {
  const [count, setCount] = useState("80");
  const [seconds, setSeconds] = useState("0");
  const [batch, setBatch] = useState("100");
  const [state, setState] = useState("");

  const run = async (event: FormEvent): Promise<void> => {
    event.preventDefault();
    const total = Math.max(0, Math.floor(Number(count)));
    const size = Math.min(1000, Math.max(1, Math.floor(Number(batch))));
    const batches = Math.ceil(total / size);
    const spacingMs = batches > 1 ? (Math.max(0, Number(seconds)) * 1000) / (batches - 1) : 0;
    const startedAt = performance.now();
    setState("inserting");
    try {
      for (let b = 0; b < batches; b++) {
        const wait = startedAt + b * spacingMs - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const events = Array.from({ length: Math.min(size, total - b * size) }, (_, i) => loadEvent(b * size + i));
        await store.appendBatch(events);
        setState(`inserting: ${Math.min(total, (b + 1) * size)}/${total}`);
      }
      setState(`done: ${counted(total, "event")}`);
    } catch (error) {
      setState(`error: ${errorText(error)}`);
    }
  };

  return (
    <section className="panel" aria-label="Load tool">
      <h2>Load</h2>
      <form className="load-form" onSubmit={(event) => void run(event)}>
        <label>
          Events
          <input data-testid="load-count" type="number" min={1} value={count} onChange={(e) => setCount(e.target.value)} />
        </label>
        <label>
          Seconds
          <input data-testid="load-seconds" type="number" min={0} step="any" value={seconds} onChange={(e) => setSeconds(e.target.value)} />
        </label>
        <label>
          Batch size
          <input data-testid="load-batch" type="number" min={1} max={1000} value={batch} onChange={(e) => setBatch(e.target.value)} />
        </label>
        <button type="submit" data-testid="load-start" disabled={state.startsWith("inserting")}>
          Insert events
        </button>
      </form>
      {state !== "" && <output data-testid="insert-state">{state}</output>}
    </section>
  );
}
