// Two streams side by side (`/split?left=&right=`); the same path twice shares one store.
import { Composer } from "./Composer";
import { EditableName } from "./EditableName";
import { EventsView } from "./EventsView";
import { navigate, pathProblem, routeHref, type SplitRoute } from "./route";
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
  const { store, snapshot } = useViewerStream(route.namespace, path);
  return (
    <section className="pane" aria-label={`${side === "left" ? "Left" : "Right"} stream`} data-testid={`split-${side}`}>
      <header className="pane-header">
        <EditableName testId="stream-path" label={`${side} path`} value={path} problem={pathProblem} onSubmit={(next) => navigate({ ...route, [side]: next })} />
        <span className={`badge status-${snapshot.status}`} data-testid="stream-status">
          {snapshot.status}
        </span>
        <span data-testid="subscription-status">{snapshot.role}</span>
        <span>
          <span data-testid="event-count">{snapshot.localCount}</span> events
        </span>
        <a href={routeHref({ kind: "stream", namespace: route.namespace, path, view: "events" })}>open</a>
      </header>
      <EventsView store={store} clearVersion={snapshot.clearVersion} compact />
      <Composer store={store} />
    </section>
  );
}
