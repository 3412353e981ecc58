// Two streams side by side (`/split?left=&right=`); the same path twice shares one store.
import { useState } from "react";
import { Composer } from "./Composer";
import { EditableName } from "./EditableName";
import { EventsView } from "./EventsView";
import { Link } from "./Link";
import { appendOverApi, useStreamPhase } from "./presence";
import { ALL_EVENTS, type EventFilter } from "./queries";
import { navigate, pathProblem, streamRoute, type SplitRoute } from "./route";
import { useViewerStream } from "./StreamPage";

export function SplitPage({ route }: { route: SplitRoute }) {
  return (
    <div className="split">
      <Pane side="left" route={route} />
      <Pane side="right" route={route} />
    </div>
  );
}

function Pane({ side, route }: { side: "left" | "right"; route: SplitRoute }) {
  const path = route[side];
  const target = { namespace: route.namespace, path };
  const phase = useStreamPhase(target);
  return (
    <section className="pane" aria-label={`${side === "left" ? "Left" : "Right"} stream`} data-testid={`split-${side}`}>
      <header className="pane-header">
        <EditableName testId="stream-path" label={`${side} path`} value={path} problem={pathProblem} onSubmit={(next) => navigate({ ...route, [side]: next })} />
        {phase.kind === "live" ? (
          <LivePaneStatus namespace={route.namespace} path={path} />
        ) : (
          <span className="badge" data-testid="header-status">
            {phase.kind === "missing" ? "no stream yet" : phase.kind === "loading" ? "loading" : "refused"}
          </span>
        )}
        <Link to={streamRoute(route.namespace, path)}>open</Link>
      </header>
      {phase.kind === "live" ? (
        <LivePane namespace={route.namespace} path={path} />
      ) : (
        <>
          <div className="notice" role={phase.kind === "invalid" || phase.kind === "refused" ? "alert" : undefined} data-testid="split-notice">
            <p className={phase.kind === "invalid" || phase.kind === "refused" ? "error notice-message" : "hint"}>
              {phase.kind === "invalid" || phase.kind === "refused"
                ? phase.message
                : phase.kind === "missing"
                  ? "Nothing has been written here yet: append an event to create the stream."
                  : "loading…"}
            </p>
          </div>
          {phase.kind === "missing" && <Composer append={appendOverApi(target)} />}
        </>
      )}
    </section>
  );
}

function LivePaneStatus({ namespace, path }: { namespace: string; path: string }) {
  const { snapshot } = useViewerStream(namespace, path);
  return (
    <>
      <span className={`badge status-${snapshot.status}`} data-testid="stream-status">
        {snapshot.status}
      </span>
      <span data-testid="subscription-status">{snapshot.role}</span>
      <span>
        <span data-testid="event-count">{snapshot.localCount}</span> events
      </span>
    </>
  );
}

function LivePane({ namespace, path }: { namespace: string; path: string }) {
  const { store, snapshot } = useViewerStream(namespace, path);
  const [filter, setFilter] = useState<EventFilter>({ ...ALL_EVENTS, hidePresence: true });
  return (
    <>
      <EventsView store={store} clearVersion={snapshot.clearVersion} filter={filter} onFilterChange={setFilter} compact />
      <Composer append={(event) => store.append(event)} />
    </>
  );
}
